//! Export: everything Portcullis stores about the caller, as one document
//! (profile, sessions, audit events, tasks, the state of the second
//! factors). No hash, token or secret.

use time::OffsetDateTime;

use super::AccountService;
use crate::audit::{AuthEvent, AuthEventKind, Outcome};
use crate::context::{Principal, RequestContext};
use crate::error::Failure;
use crate::session::Session;
use crate::task::Task;
use crate::user::Profile;

/// The most events an export carries (newest first).
pub const EXPORT_EVENT_LIMIT: u64 = 10_000;

/// Everything stored about one account.
#[derive(Debug, Clone)]
pub struct AccountExport {
    pub exported_at: OffsetDateTime,
    pub profile: Profile,
    /// Every stored session, ended ones included, newest first.
    pub sessions: Vec<Session>,
    /// Newest first, at most [`EXPORT_EVENT_LIMIT`].
    pub events: Vec<AuthEvent>,
    pub tasks: Vec<Task>,
    /// The state of the second factors (never a seed or a code).
    pub second_factors: SecondFactorsExport,
}

/// What an export says of the second factors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecondFactorsExport {
    pub totp_pending: bool,
    pub totp_active: bool,
    pub recovery_codes_left: u32,
}

impl AccountService {
    /// The caller's data, or `None` when the account no longer exists.
    ///
    /// # Errors
    /// A `Failure` only.
    #[tracing::instrument(name = "account.export", skip_all)]
    pub async fn export(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
    ) -> Result<Option<AccountExport>, Failure> {
        let Some(mut export) = self
            .ports
            .accounts
            .export(caller.user_id, EXPORT_EVENT_LIMIT)
            .await?
        else {
            return Ok(None);
        };
        let now = self.ports.clock.now();
        export.exported_at = now;
        self.ports.audit.record(
            AuthEvent::new(AuthEventKind::AccountExported, Outcome::Success, now, ctx)
                .user(caller.user_id)
                .session(caller.session_id),
        );
        Ok(Some(export))
    }
}
