//! Log out: end this session, every session, or every other session; their
//! refresh and access tokens stop working.

use super::{AuthService, record_outcome};
use crate::audit::{AuthEvent, AuthEventKind, Outcome};
use crate::context::{Principal, RequestContext};
use crate::error::Failure;
use crate::ids::SessionId;
use crate::session::{Revocation, RevokeReason};

/// Which sessions a logout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogoutScope {
    /// The session of the presented access token.
    #[default]
    This,
    /// Every session of the user.
    All,
    /// Every session but the current one.
    Others,
}

impl LogoutScope {
    /// The name kept in the audit event's detail.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::This => "this",
            Self::All => "all",
            Self::Others => "others",
        }
    }
}

impl AuthService {
    /// Ends sessions of the caller; returns the ids of the sessions this
    /// request revoked.
    ///
    /// # Errors
    /// A `Failure` only.
    #[tracing::instrument(name = "auth.log_out", skip_all, fields(outcome))]
    pub async fn log_out(
        &self,
        caller: &Principal,
        scope: LogoutScope,
        ctx: &RequestContext,
    ) -> Result<Vec<SessionId>, Failure> {
        let now = self.ports.clock.now();
        let event = AuthEvent::new(AuthEventKind::Logout, Outcome::Success, now, ctx)
            .user(caller.user_id)
            .session(caller.session_id)
            .detail(format!("scope={}", scope.as_str()));
        let sessions = &self.ports.sessions;
        let revoked = match scope {
            LogoutScope::This => {
                let changed = sessions
                    .revoke(
                        caller.user_id,
                        caller.session_id,
                        now,
                        RevokeReason::Logout,
                        &event,
                    )
                    .await?;
                if changed {
                    vec![caller.session_id]
                } else {
                    Vec::new()
                }
            }
            LogoutScope::All => {
                sessions
                    .revoke_all(caller.user_id, None, now, RevokeReason::LogoutAll, &event)
                    .await?
            }
            LogoutScope::Others => {
                sessions
                    .revoke_all(
                        caller.user_id,
                        Some(caller.session_id),
                        now,
                        RevokeReason::LogoutOthers,
                        &event,
                    )
                    .await?
            }
        };
        if !revoked.is_empty() {
            self.ports.audit.committed(&event);
        }
        for session_id in &revoked {
            self.ports.revocations.record(Revocation {
                session_id: *session_id,
                revoked_at: now,
            });
        }
        // The caller's own session is dead to this instance even if another
        // request revoked it first.
        if scope != LogoutScope::Others {
            self.ports.revocations.record(Revocation {
                session_id: caller.session_id,
                revoked_at: now,
            });
        }
        record_outcome("success");
        Ok(revoked)
    }
}
