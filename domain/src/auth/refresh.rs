//! Refresh: exchange a refresh token for a new pair of the same session,
//! rotating it; a rotated token presented after the grace interval revokes
//! the session (reuse detection).

use time::OffsetDateTime;

use super::{AuthService, TokenPair, record_outcome};
use crate::audit::{AuthEvent, AuthEventKind, Outcome};
use crate::context::RequestContext;
use crate::error::Failure;
use crate::ids::{SessionId, UserId};
use crate::limits::{Bucket, RateLimited};
use crate::session::{
    MalformedRefreshToken, RefreshToken, Revocation, RevokeReason, RotateOutcome, Session,
};

/// What a refresh presents, parsed at the edge: a token that has the shape
/// of one of ours, or a string that cannot be one. A malformed one is
/// refused before any lookup, but only after it has spent the client's
/// refresh budget, like any other attempt.
#[derive(Debug)]
pub struct Refresh {
    pub token: Result<RefreshToken, MalformedRefreshToken>,
}

/// Why a refresh failed. Both refusals get the same `invalid_grant` answer;
/// the distinction exists for the audit trail.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Malformed, unknown, expired or revoked token.
    #[error("invalid refresh token")]
    InvalidGrant,
    /// A rotated token presented after the grace interval: the session is now revoked.
    #[error("refresh token reused; session revoked")]
    Reused {
        session_id: SessionId,
        user_id: UserId,
    },
    /// Too many refreshes from this client.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl RefreshError {
    /// The stable outcome name that spans and metrics carry.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::InvalidGrant => "invalid_grant",
            Self::Reused { .. } => "reuse_detected",
            Self::RateLimited { .. } => "rate_limited",
            Self::Failure(_) => "error",
        }
    }
}

impl From<RateLimited> for RefreshError {
    fn from(limited: RateLimited) -> Self {
        Self::RateLimited {
            retry_after_secs: limited.retry_after_secs,
        }
    }
}

impl AuthService {
    /// Exchanges a refresh token for a new pair, rotating it.
    ///
    /// # Errors
    /// `InvalidGrant`, `Reused` (the session has been revoked), `RateLimited`, or a `Failure`.
    #[tracing::instrument(name = "auth.refresh", skip_all, fields(outcome))]
    pub async fn refresh(
        &self,
        input: Refresh,
        ctx: &RequestContext,
    ) -> Result<TokenPair, RefreshError> {
        let result = self.refresh_inner(input, ctx).await;
        record_outcome(result.as_ref().map_or_else(|e| e.outcome(), |_| "success"));
        result
    }

    async fn refresh_inner(
        &self,
        Refresh { token }: Refresh,
        ctx: &RequestContext,
    ) -> Result<TokenPair, RefreshError> {
        self.guard.admit(Bucket::Refresh, ctx).await?;
        let token = token.map_err(|MalformedRefreshToken| RefreshError::InvalidGrant)?;
        let hash = self.ports.secrets.digest(&token);
        let Some((record, session)) = self.ports.sessions.find_by_refresh_token(&hash).await?
        else {
            return Err(RefreshError::InvalidGrant);
        };
        let now = self.ports.clock.now();
        if !session.is_active(now) {
            return Err(RefreshError::InvalidGrant);
        }
        let next = self.ports.secrets.refresh_token();
        let next_hash = self.ports.secrets.digest(&next);
        let idle = session.next_idle_expiry(now, &self.sessions);
        let refreshed = AuthEvent::new(AuthEventKind::TokenRefreshed, Outcome::Success, now, ctx)
            .user(session.user_id)
            .session(session.id);

        let rotated_at = match record.rotated_at {
            Some(at) => Some(at),
            None => {
                match self
                    .ports
                    .sessions
                    .rotate(session.id, &hash, &next_hash, now, idle, &refreshed)
                    .await?
                {
                    RotateOutcome::Rotated => {
                        self.ports.audit.committed(&refreshed);
                        None
                    }
                    // Lost a race with a concurrent refresh of the same token: that
                    // rotation happened just now, so the grace interval applies.
                    RotateOutcome::AlreadyRotated => Some(now),
                    RotateOutcome::SessionInactive => return Err(RefreshError::InvalidGrant),
                }
            }
        };
        if let Some(rotated_at) = rotated_at {
            if now - rotated_at > self.sessions.reuse_grace {
                return Err(self.revoke_for_reuse(&session, now, ctx).await);
            }
            let refreshed = refreshed.detail("grace_replay");
            let added = self
                .ports
                .sessions
                .add_token(session.id, &next_hash, now, idle, &refreshed)
                .await?;
            if !added {
                return Err(RefreshError::InvalidGrant);
            }
            self.ports.audit.committed(&refreshed);
        }
        let mut session = session;
        session.record_use(now, idle);
        let user = self
            .ports
            .users
            .find_profile(session.user_id)
            .await?
            .ok_or(RefreshError::InvalidGrant)?;
        Ok(self.pair_for(user, &session, next, now)?)
    }

    /// Revokes `session` after a reuse and says so.
    async fn revoke_for_reuse(
        &self,
        session: &Session,
        now: OffsetDateTime,
        ctx: &RequestContext,
    ) -> RefreshError {
        tracing::warn!(session_id = %session.id, user_id = %session.user_id, "refresh token reuse detected; revoking session");
        let event = AuthEvent::new(
            AuthEventKind::RefreshTokenReuseDetected,
            Outcome::Failure,
            now,
            ctx,
        )
        .user(session.user_id)
        .session(session.id);
        match self
            .ports
            .sessions
            .revoke(
                session.user_id,
                session.id,
                now,
                RevokeReason::RefreshTokenReuse,
                &event,
            )
            .await
        {
            Ok(changed) => {
                if changed {
                    self.ports.audit.committed(&event);
                }
                self.ports.revocations.record(Revocation {
                    session_id: session.id,
                    revoked_at: now,
                });
                RefreshError::Reused {
                    session_id: session.id,
                    user_id: session.user_id,
                }
            }
            Err(error) => RefreshError::Failure(error),
        }
    }
}
