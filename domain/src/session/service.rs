//! The session use cases of a signed-in user: list their active sessions
//! and revoke one of them.

use std::sync::Arc;

use super::{Revocation, RevocationCache, RevokeReason, Session, SessionRepository};
use crate::audit::{AuditSink, AuthEvent, AuthEventKind, Outcome};
use crate::clock::Clock;
use crate::context::{Principal, RequestContext};
use crate::error::Failure;
use crate::ids::SessionId;

/// Why a session could not be revoked.
#[derive(Debug, thiserror::Error)]
pub enum RevokeSessionError {
    /// No active session with that id belongs to the caller.
    #[error("session not found")]
    NotFound,
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl RevokeSessionError {
    /// The stable outcome name that spans and metrics carry.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Failure(_) => "error",
        }
    }
}

/// Lists and revokes the caller's sessions.
#[derive(Clone)]
pub struct SessionService {
    sessions: Arc<dyn SessionRepository>,
    revocations: Arc<dyn RevocationCache>,
    audit: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
}

impl SessionService {
    /// Builds the service over its ports.
    pub fn new(
        sessions: Arc<dyn SessionRepository>,
        revocations: Arc<dyn RevocationCache>,
        audit: Arc<dyn AuditSink>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            sessions,
            revocations,
            audit,
            clock,
        }
    }

    /// The caller's active sessions, newest first.
    ///
    /// # Errors
    /// A `Failure` only.
    pub async fn list(&self, caller: &Principal) -> Result<Vec<Session>, Failure> {
        self.sessions
            .list_active(caller.user_id, self.clock.now())
            .await
    }

    /// Revokes one of the caller's own sessions: its refresh token and its
    /// access tokens stop working (on this instance at once).
    ///
    /// # Errors
    /// `NotFound` for an id that is not an active session of the caller.
    #[tracing::instrument(name = "sessions.revoke", skip_all, fields(outcome))]
    pub async fn revoke(
        &self,
        caller: &Principal,
        session: SessionId,
        ctx: &RequestContext,
    ) -> Result<(), RevokeSessionError> {
        let result = self.revoke_inner(caller, session, ctx).await;
        tracing::Span::current().record(
            "outcome",
            result.as_ref().map_or_else(|e| e.outcome(), |()| "success"),
        );
        result
    }

    async fn revoke_inner(
        &self,
        caller: &Principal,
        session: SessionId,
        ctx: &RequestContext,
    ) -> Result<(), RevokeSessionError> {
        let now = self.clock.now();
        let event = AuthEvent::new(AuthEventKind::SessionRevoked, Outcome::Success, now, ctx)
            .user(caller.user_id)
            .session(session);
        let changed = self
            .sessions
            .revoke(
                caller.user_id,
                session,
                now,
                RevokeReason::RevokedByUser,
                &event,
            )
            .await?;
        if !changed {
            return Err(RevokeSessionError::NotFound);
        }
        self.audit.committed(&event);
        self.revocations.record(Revocation {
            session_id: session,
            revoked_at: now,
        });
        Ok(())
    }
}
