//! Resend the verification email of the caller's address, at most once a
//! minute. The new link voids the older one.

use super::{AccountChange, AccountService, ChangeError, record_outcome};
use crate::audit::{AuthEvent, AuthEventKind, Outcome};
use crate::context::{Principal, RequestContext};
use crate::error::Failure;
use crate::mail::{Mail, MailKind};
use crate::one_time::TokenPurpose;
use crate::user::NewToken;

/// Why no verification email was sent.
#[derive(Debug, thiserror::Error)]
pub enum ResendVerificationError {
    /// The address is confirmed already.
    #[error("email already verified")]
    AlreadyVerified,
    /// One was sent less than a minute ago.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    /// The caller's account no longer exists.
    #[error("account gone")]
    NotFound,
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl ResendVerificationError {
    /// The stable outcome name that spans and metrics carry.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::AlreadyVerified => "already_verified",
            Self::RateLimited { .. } => "rate_limited",
            Self::NotFound => "not_found",
            Self::Failure(_) => "error",
        }
    }
}

impl AccountService {
    /// Sends the caller a new verification link.
    ///
    /// # Errors
    /// `AlreadyVerified`, `RateLimited` (within a minute of the last one),
    /// `NotFound`, or a `Failure`.
    #[tracing::instrument(name = "account.resend_verification", skip_all, fields(outcome))]
    pub async fn resend_verification(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
    ) -> Result<(), ResendVerificationError> {
        let result = self.resend_verification_inner(caller, ctx).await;
        record_outcome(result.as_ref().map_or_else(|e| e.outcome(), |()| "success"));
        result
    }

    async fn resend_verification_inner(
        &self,
        caller: &Principal,
        ctx: &RequestContext,
    ) -> Result<(), ResendVerificationError> {
        let Some(user) = self.caller(caller.user_id).await? else {
            return Err(ResendVerificationError::NotFound);
        };
        if user.email_verified_at.is_some() {
            return Err(ResendVerificationError::AlreadyVerified);
        }
        let now = self.ports.clock.now();
        let token = self.ports.secrets.one_time_token();
        let hash = self.ports.secrets.digest_one_time(&token);
        let expires_at = now + self.account.confirm_ttl;
        let mail = [Mail::link(
            MailKind::VerifyEmail,
            user.id,
            user.email.clone(),
            token,
            expires_at,
        )];
        let event = AuthEvent::new(
            AuthEventKind::VerificationEmailSent,
            Outcome::Success,
            now,
            ctx,
        )
        .user(user.id)
        .session(caller.session_id);
        let mut change = AccountChange::new(user.id, now, &event);
        change.issue = Some(NewToken {
            hash: &hash,
            purpose: TokenPurpose::VerifyEmail,
            new_email: None,
            session: Some(caller.session_id),
            created_at: now,
            expires_at,
        });
        change.not_within = Some(self.account.resend_interval);
        change.mail = &mail;
        match self.ports.accounts.apply(change).await {
            Ok(_) => {
                self.ports.audit.committed(&event);
                Ok(())
            }
            Err(ChangeError::TooSoon { retry_after_secs }) => {
                Err(ResendVerificationError::RateLimited { retry_after_secs })
            }
            Err(ChangeError::UserGone | ChangeError::TokenGone | ChangeError::EmailTaken) => {
                Err(ResendVerificationError::NotFound)
            }
            Err(ChangeError::Failure(failure)) => Err(failure.into()),
        }
    }
}
