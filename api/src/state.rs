//! What every request handler can reach: the use cases, the signing keys
//! (for the JWKS), the readiness check and the instruments.
//!
//! A leaf: it imports no sibling but `metrics`, so routes, the security scheme
//! and the wiring can all name it without importing each other. Everything
//! in it but the keys is a domain service or a port, so handler tests can
//! build it over the domain's in-memory fakes (`portcullis_domain::testkit`).

use std::sync::Arc;

use async_trait::async_trait;
use portcullis_domain::account::AccountService;
use portcullis_domain::audit::AuditLog;
use portcullis_domain::auth::AuthService;
use portcullis_domain::error::Failure;
use portcullis_domain::mfa::MfaService;
use portcullis_domain::session::SessionService;
use portcullis_domain::task::TaskService;
use portcullis_infra::crypto::SigningKeys;
use portcullis_infra::db::Database;

use crate::metrics::Metrics;

/// What every request handler can reach.
pub struct AppState {
    pub auth: AuthService,
    pub account: AccountService,
    pub mfa: MfaService,
    pub sessions: SessionService,
    pub audit_log: AuditLog,
    pub tasks: TaskService,
    pub keys: SigningKeys,
    pub readiness: Arc<dyn Readiness>,
    pub metrics: Arc<Metrics>,
}

/// The readiness probe's one question: can the service answer requests?
#[async_trait]
pub trait Readiness: Send + Sync + 'static {
    /// `Ok` when the storage the service needs answers.
    ///
    /// # Errors
    /// `Failure::Unavailable` when it does not.
    async fn check(&self) -> Result<(), Failure>;
}

#[async_trait]
impl Readiness for Database {
    async fn check(&self) -> Result<(), Failure> {
        self.ping().await
    }
}
