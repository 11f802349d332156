//! Refresh: exchange a refresh token for a new pair of the same session,
//! rotating it. A session has one current refresh token: a rotated token
//! replayed inside the grace interval gets a new token that supersedes the
//! current one; any other token of the session revokes it (reuse
//! detection). The decision is `session::decide_refresh`, the rule every
//! adapter applies under the session's lock.

use time::OffsetDateTime;

use super::{AuthService, TokenPair, record_outcome};
use crate::audit::{AuthEvent, AuthEventKind, Outcome};
use crate::context::RequestContext;
use crate::error::Failure;
use crate::ids::{SessionId, UserId};
use crate::limits::{Bucket, RateLimited};
use crate::session::{
    MalformedRefreshToken, RefreshDecision, RefreshToken, Revocation, RevokeReason, RotateOutcome,
    Session, Supersession, decide_refresh, decide_replay,
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
    /// A token of the session other than the current one, presented outside
    /// the grace interval: the session is now revoked.
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
        let grace = self.sessions.reuse_grace;
        let next = self.ports.secrets.refresh_token();
        let next_hash = self.ports.secrets.digest(&next);
        let idle = session.next_idle_expiry(now, &self.sessions);
        let refreshed = AuthEvent::new(AuthEventKind::TokenRefreshed, Outcome::Success, now, ctx)
            .user(session.user_id)
            .session(session.id);

        let decision = match decide_refresh(session.id, Some(&session), Some(&record), now, grace) {
            RefreshDecision::Rotate => match self
                .ports
                .sessions
                .rotate(session.id, &hash, &next_hash, now, idle, &refreshed)
                .await?
            {
                RotateOutcome::Rotated => {
                    self.ports.audit.committed(&refreshed);
                    return self.issue(session, next, now, idle).await;
                }
                // Lost a race with a concurrent refresh of the same token:
                // the grace interval runs from that rotation, as stored.
                RotateOutcome::AlreadyRotated { rotated_at } => {
                    decide_replay(rotated_at, now, grace)
                }
                RotateOutcome::SessionInactive => return Err(RefreshError::InvalidGrant),
            },
            other => other,
        };
        let decision = match decision {
            RefreshDecision::GraceReplay => {
                let refreshed = refreshed.detail("grace_replay");
                let decided = self
                    .ports
                    .sessions
                    .supersede(Supersession {
                        session: session.id,
                        presented: &hash,
                        next: &next_hash,
                        now,
                        idle_expires_at: idle,
                        grace,
                        event: &refreshed,
                    })
                    .await?;
                if decided == RefreshDecision::GraceReplay {
                    self.ports.audit.committed(&refreshed);
                }
                decided
            }
            other => other,
        };
        match decision {
            RefreshDecision::GraceReplay => self.issue(session, next, now, idle).await,
            RefreshDecision::Reuse => Err(self.revoke_for_reuse(&session, now, ctx).await),
            // `Rotate` after a lost race or under the lock: a rotated token
            // never becomes current again, so this cannot be; refuse it.
            RefreshDecision::Refused | RefreshDecision::Rotate => Err(RefreshError::InvalidGrant),
        }
    }

    /// The pair for `session` after a refresh at `now` stored `next` as its
    /// current token.
    async fn issue(
        &self,
        mut session: Session,
        next: RefreshToken,
        now: OffsetDateTime,
        idle: OffsetDateTime,
    ) -> Result<TokenPair, RefreshError> {
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
