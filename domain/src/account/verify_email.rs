//! Verify an email: the link of a sign-up or an email change, posted back.
//! A sign-up token confirms the address; an email-change token moves the
//! account to the new address (confirmed by the same act), tells the old
//! address, and ends every other session.

use super::{AccountChange, AccountService, ChangeError, RevokeSessions, record_outcome};
use crate::audit::{AuthEvent, AuthEventKind, Outcome};
use crate::context::RequestContext;
use crate::error::Failure;
use crate::mail::{Mail, MailKind};
use crate::one_time::{OneTimeToken, TokenPurpose};
use crate::session::RevokeReason;
use crate::user::Profile;

/// What a verification presents.
#[derive(Debug)]
pub struct VerifyEmail {
    pub token: OneTimeToken,
}

/// Why a verification failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyEmailError {
    /// Unknown, used, voided or expired: one answer for all.
    #[error("invalid or expired token")]
    InvalidToken,
    /// The new address of an email change was taken meanwhile.
    #[error("email already registered")]
    EmailTaken,
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl VerifyEmailError {
    /// The stable outcome name that spans and metrics carry.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::InvalidToken => "invalid_token",
            Self::EmailTaken => "email_taken",
            Self::Failure(_) => "error",
        }
    }
}

impl AccountService {
    /// Consumes a verification or email-change token and returns the
    /// account as it now is.
    ///
    /// # Errors
    /// `InvalidToken`, `EmailTaken` (email change only), or a `Failure`.
    #[tracing::instrument(name = "account.verify_email", skip_all, fields(outcome))]
    pub async fn verify_email(
        &self,
        input: VerifyEmail,
        ctx: &RequestContext,
    ) -> Result<Profile, VerifyEmailError> {
        let result = self.verify_email_inner(input, ctx).await;
        record_outcome(result.as_ref().map_or_else(|e| e.outcome(), |_| "success"));
        result
    }

    async fn verify_email_inner(
        &self,
        VerifyEmail { token }: VerifyEmail,
        ctx: &RequestContext,
    ) -> Result<Profile, VerifyEmailError> {
        let now = self.ports.clock.now();
        let hash = self.ports.secrets.digest_one_time(&token);
        let Some(pending) = self.ports.accounts.find_token(&hash, now).await? else {
            return Err(VerifyEmailError::InvalidToken);
        };
        let Some(user) = self.caller(pending.user).await? else {
            return Err(VerifyEmailError::InvalidToken);
        };
        let (kind, new_email) = match (pending.purpose, &pending.new_email) {
            (TokenPurpose::VerifyEmail, _) => (AuthEventKind::EmailVerified, None),
            (TokenPurpose::ChangeEmail, Some(new_email)) => {
                (AuthEventKind::EmailChanged, Some(new_email))
            }
            (TokenPurpose::ChangeEmail, None) | (TokenPurpose::ResetPassword, _) => {
                return Err(VerifyEmailError::InvalidToken);
            }
        };
        let event = AuthEvent::new(kind, Outcome::Success, now, ctx).user(user.id);
        let notice = new_email.map(|new_email| {
            Mail::notice(MailKind::EmailChanged, user.id, user.email.clone(), now)
                .naming(new_email.clone())
        });
        let mut change = AccountChange::new(user.id, now, &event);
        change.consume = Some(&hash);
        change.verify = true;
        change.email = new_email;
        if new_email.is_some() {
            change.revoke = Some(RevokeSessions {
                except: pending.session,
                reason: RevokeReason::EmailChanged,
            });
        }
        change.mail = notice.as_slice();
        let revoked = match self.ports.accounts.apply(change).await {
            Ok(revoked) => revoked,
            Err(ChangeError::TokenGone | ChangeError::UserGone) => {
                return Err(VerifyEmailError::InvalidToken);
            }
            Err(ChangeError::EmailTaken) => return Err(VerifyEmailError::EmailTaken),
            Err(ChangeError::TooSoon { .. }) => {
                return Err(Failure::msg("verification refused as too soon").into());
            }
            Err(ChangeError::Failure(failure)) => return Err(failure.into()),
        };
        self.ports.audit.committed(&event);
        self.revoked_here(&revoked, now);
        self.caller(user.id)
            .await?
            .map(|user| user.profile())
            .ok_or(VerifyEmailError::InvalidToken)
    }
}
