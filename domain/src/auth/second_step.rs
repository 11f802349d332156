//! The second step of a log-in: the challenge token of `mfa_required` and a
//! TOTP code or a recovery code open the session, which remembers both
//! factors (`amr`: `pwd`, `otp`, `mfa`). A challenge works once, for five
//! minutes and five tries; wrong codes also count toward the account's
//! lockout.

use super::{AuthService, TokenPair, record_outcome};
use crate::amr::AuthMethod;
use crate::audit::{AuthEvent, AuthEventKind, Outcome};
use crate::context::RequestContext;
use crate::error::Failure;
use crate::limits::{GuardError, LoginAttempt};
use crate::mfa::{CHALLENGE_TRIES, Proof, ProofError, check_proof};
use crate::one_time::OneTimeToken;

/// What the second step presents.
#[derive(Debug)]
pub struct SecondStep {
    pub mfa_token: OneTimeToken,
    pub proof: Proof,
}

/// Why the second step failed.
#[derive(Debug, thiserror::Error)]
pub enum SecondStepError {
    /// The challenge is unknown, used, expired or out of tries: log in again.
    #[error("invalid or expired challenge")]
    InvalidChallenge,
    /// The code is wrong, replayed or spent; the challenge has tries left.
    #[error("invalid second factor")]
    InvalidCode,
    /// The account is locked after repeated failures.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl SecondStepError {
    /// The stable outcome name that spans and metrics carry.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::InvalidChallenge => "invalid_challenge",
            Self::InvalidCode => "invalid_code",
            Self::RateLimited { .. } => "rate_limited",
            Self::Failure(_) => "error",
        }
    }
}

impl AuthService {
    /// Completes a log-in with its second factor.
    ///
    /// # Errors
    /// `InvalidChallenge`, `InvalidCode`, `RateLimited`, or a `Failure`.
    #[tracing::instrument(name = "auth.second_step", skip_all, fields(outcome))]
    pub async fn second_step(
        &self,
        input: SecondStep,
        ctx: &RequestContext,
    ) -> Result<TokenPair, SecondStepError> {
        let result = self.second_step_inner(input, ctx).await;
        record_outcome(result.as_ref().map_or_else(|e| e.outcome(), |_| "success"));
        result
    }

    async fn second_step_inner(
        &self,
        SecondStep { mfa_token, proof }: SecondStep,
        ctx: &RequestContext,
    ) -> Result<TokenPair, SecondStepError> {
        let token = self.ports.secrets.digest_one_time(&mfa_token);
        let now = self.ports.clock.now();
        let Some(challenge) = self.ports.mfa.challenge(&token, now).await? else {
            return Err(SecondStepError::InvalidChallenge);
        };
        let Some(user) = self.ports.users.find_by_id(challenge.user).await? else {
            return Err(SecondStepError::InvalidChallenge);
        };
        let reserved = self
            .guard
            .reserve(LoginAttempt::new(&user.email, ctx), ctx)
            .await
            .map_err(|error| match error {
                GuardError::RateLimited(limited) => SecondStepError::RateLimited {
                    retry_after_secs: limited.retry_after_secs,
                },
                GuardError::Failure(failure) => SecondStepError::Failure(failure),
            })?;
        let checked = check_proof(
            &*self.ports.mfa,
            &*self.ports.factors,
            &user,
            &proof,
            now,
            ctx,
        )
        .await;
        match checked {
            Ok(method) => {
                self.guard.succeeded(reserved).await;
                // The challenge is spent by the first success only.
                if !self.ports.mfa.consume_challenge(&token).await? {
                    return Err(SecondStepError::InvalidChallenge);
                }
                let amr = vec![AuthMethod::Pwd, method, AuthMethod::Mfa];
                Ok(self
                    .open_session(user, now, ctx, AuthEventKind::LoginSucceeded, amr)
                    .await?)
            }
            Err(ProofError::Invalid) => {
                self.guard.failed(reserved, Some(user.id), ctx);
                self.ports.audit.record(
                    AuthEvent::new(
                        AuthEventKind::SecondFactorFailed,
                        Outcome::Failure,
                        now,
                        ctx,
                    )
                    .user(user.id),
                );
                let tries = self
                    .ports
                    .mfa
                    .fail_challenge(&token, CHALLENGE_TRIES)
                    .await?;
                if tries >= CHALLENGE_TRIES {
                    Err(SecondStepError::InvalidChallenge)
                } else {
                    Err(SecondStepError::InvalidCode)
                }
            }
            Err(ProofError::Failure(failure)) => {
                self.guard.abandoned(reserved).await;
                Err(failure.into())
            }
        }
    }
}
