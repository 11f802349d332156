//! What every request handler can reach: the services, the signing keys, the
//! database (for readiness) and the instruments.
//!
//! A leaf: it imports no sibling but `metrics`, so routes, the security scheme
//! and the wiring can all name it without importing each other.

use std::sync::Arc;

use portcullis_domain::auth::AuthService;
use portcullis_domain::task::TaskService;
use portcullis_infra::crypto::SigningKeys;
use portcullis_infra::db::Database;

use crate::metrics::Metrics;

/// What every request handler can reach.
pub struct AppState {
    pub auth: AuthService,
    pub tasks: TaskService,
    pub keys: SigningKeys,
    pub db: Database,
    pub metrics: Arc<Metrics>,
}
