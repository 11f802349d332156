//! Reset password: the link of a forgot-password email, posted back with a
//! new password. The policy applies; every session of the account ends at
//! once (access tokens included); the login lockout is cleared; every other
//! reset link dies; a notice goes to the address.

use super::{AccountChange, AccountService, ChangeError, RevokeSessions, record_outcome};
use crate::audit::{AuthEvent, AuthEventKind, Outcome};
use crate::context::RequestContext;
use crate::error::Failure;
use crate::limits::LoginAttempt;
use crate::mail::{Mail, MailKind};
use crate::mfa::{Confirmation, Proof};
use crate::one_time::{OneTimeToken, TokenPurpose};
use crate::password::{Password, PasswordRejection};
use crate::session::RevokeReason;

/// What a reset presents.
#[derive(Debug)]
pub struct ResetPassword {
    pub token: OneTimeToken,
    pub new_password: Password,
    /// The second factor, for an account that has one.
    pub proof: Option<Proof>,
}

/// Why a reset failed. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ResetPasswordError {
    /// Unknown, used, voided or expired: one answer for all.
    #[error("invalid or expired token")]
    InvalidToken,
    #[error("password rejected: {0}")]
    WeakPassword(#[from] PasswordRejection),
    /// The account has a second factor and none was presented.
    #[error("second factor required")]
    SecondFactorRequired,
    /// The second factor is wrong, replayed or spent.
    #[error("invalid second factor")]
    InvalidSecondFactor,
    /// Too many wrong codes: the account is locked for a while.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl ResetPasswordError {
    /// The stable outcome name that spans and metrics carry.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::InvalidToken => "invalid_token",
            Self::WeakPassword(_) => "weak_password",
            Self::SecondFactorRequired => "second_factor_required",
            Self::InvalidSecondFactor => "invalid_second_factor",
            Self::RateLimited { .. } => "rate_limited",
            Self::Failure(_) => "error",
        }
    }
}

impl AccountService {
    /// Sets a new password with a reset token.
    ///
    /// # Errors
    /// `InvalidToken`, `WeakPassword`, or a `Failure`.
    #[tracing::instrument(name = "account.reset_password", skip_all, fields(outcome))]
    pub async fn reset_password(
        &self,
        input: ResetPassword,
        ctx: &RequestContext,
    ) -> Result<(), ResetPasswordError> {
        let result = self.reset_password_inner(input, ctx).await;
        record_outcome(result.as_ref().map_or_else(|e| e.outcome(), |()| "success"));
        result
    }

    async fn reset_password_inner(
        &self,
        ResetPassword {
            token,
            new_password,
            proof,
        }: ResetPassword,
        ctx: &RequestContext,
    ) -> Result<(), ResetPasswordError> {
        let hash = self.ports.secrets.digest_one_time(&token);
        let found = self
            .ports
            .accounts
            .find_token(&hash, self.ports.clock.now())
            .await?;
        let Some(pending) = found.filter(|t| t.purpose == TokenPurpose::ResetPassword) else {
            return Err(ResetPasswordError::InvalidToken);
        };
        let Some(user) = self.caller(pending.user).await? else {
            return Err(ResetPasswordError::InvalidToken);
        };
        self.policy.check(&new_password, &user.email)?;
        // A reset proves the mailbox, never the second factor.
        if user.second_factor {
            let Some(proof) = &proof else {
                return Err(ResetPasswordError::SecondFactorRequired);
            };
            match self.confirm_factor(&user, proof, ctx).await {
                Ok(_) => {}
                Err(Confirmation::Wrong) => return Err(ResetPasswordError::InvalidSecondFactor),
                Err(Confirmation::RateLimited(limited)) => {
                    return Err(ResetPasswordError::RateLimited {
                        retry_after_secs: limited.retry_after_secs,
                    });
                }
                Err(Confirmation::Failure(failure)) => return Err(failure.into()),
            }
        }
        let password_hash = self.ports.hasher.hash(&new_password).await?;

        let now = self.ports.clock.now();
        let event = AuthEvent::new(
            AuthEventKind::PasswordResetCompleted,
            Outcome::Success,
            now,
            ctx,
        )
        .user(user.id);
        let notice = [Mail::notice(
            MailKind::PasswordReset,
            user.id,
            user.email.clone(),
            now,
        )];
        let mut change = AccountChange::new(user.id, now, &event);
        change.consume = Some(&hash);
        change.password = Some(&password_hash);
        change.revoke = Some(RevokeSessions {
            except: None,
            reason: RevokeReason::PasswordReset,
        });
        change.mail = &notice;
        let revoked = match self.ports.accounts.apply(change).await {
            Ok(revoked) => revoked,
            Err(ChangeError::TokenGone | ChangeError::UserGone) => {
                return Err(ResetPasswordError::InvalidToken);
            }
            Err(ChangeError::Failure(failure)) => return Err(failure.into()),
            Err(error @ (ChangeError::EmailTaken | ChangeError::TooSoon { .. })) => {
                return Err(Failure::msg(format!("reset refused: {error}")).into());
            }
        };
        self.ports.audit.committed(&event);
        self.revoked_here(&revoked, now);
        // The owner of the mailbox is back in: forget the guesses of others.
        if let Err(error) = self
            .ports
            .failures
            .clear(&LoginAttempt::account_key(&user.email))
            .await
        {
            tracing::warn!(%error, "the login lockout could not be cleared after a reset");
        }
        Ok(())
    }
}
