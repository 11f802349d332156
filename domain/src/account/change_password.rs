//! Change password: the signed-in user, with the current password, sets a
//! new one. Every other session ends; the caller's stays. Every reset link
//! dies; a notice goes to the address.

use super::{AccountChange, AccountService, ChangeError, RevokeSessions, record_outcome};
use crate::audit::{AuthEvent, AuthEventKind, Outcome};
use crate::context::{Principal, RequestContext};
use crate::error::Failure;
use crate::mail::{Mail, MailKind};
use crate::password::{Password, PasswordRejection};
use crate::session::RevokeReason;

/// What a password change presents.
#[derive(Debug)]
pub struct ChangePassword {
    pub current_password: Password,
    pub new_password: Password,
}

/// Why a password change failed. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    /// The current password is wrong (counted toward the lockout).
    #[error("wrong password")]
    WrongPassword,
    #[error("password rejected: {0}")]
    WeakPassword(#[from] PasswordRejection),
    /// The account is locked after repeated wrong passwords.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    /// The caller's account no longer exists.
    #[error("account gone")]
    NotFound,
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl ChangePasswordError {
    /// The stable outcome name that spans and metrics carry.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::WrongPassword => "wrong_password",
            Self::WeakPassword(_) => "weak_password",
            Self::RateLimited { .. } => "rate_limited",
            Self::NotFound => "not_found",
            Self::Failure(_) => "error",
        }
    }
}

crate::mfa::from_confirmation!(ChangePasswordError);

impl AccountService {
    /// Replaces the caller's password.
    ///
    /// # Errors
    /// `WrongPassword`, `WeakPassword`, `RateLimited`, `NotFound`, or a `Failure`.
    #[tracing::instrument(name = "account.change_password", skip_all, fields(outcome))]
    pub async fn change_password(
        &self,
        caller: &Principal,
        input: ChangePassword,
        ctx: &RequestContext,
    ) -> Result<(), ChangePasswordError> {
        let result = self.change_password_inner(caller, input, ctx).await;
        record_outcome(result.as_ref().map_or_else(|e| e.outcome(), |()| "success"));
        result
    }

    async fn change_password_inner(
        &self,
        caller: &Principal,
        ChangePassword {
            current_password,
            new_password,
        }: ChangePassword,
        ctx: &RequestContext,
    ) -> Result<(), ChangePasswordError> {
        let Some(user) = self.caller(caller.user_id).await? else {
            return Err(ChangePasswordError::NotFound);
        };
        self.confirm_password(&user, &current_password, ctx).await?;
        self.policy.check(&new_password, &user.email)?;
        let password_hash = self.ports.hasher.hash(&new_password).await?;

        let now = self.ports.clock.now();
        let event = AuthEvent::new(AuthEventKind::PasswordChanged, Outcome::Success, now, ctx)
            .user(user.id)
            .session(caller.session_id);
        let notice = [Mail::notice(
            MailKind::PasswordChanged,
            user.id,
            user.email.clone(),
            now,
        )];
        let mut change = AccountChange::new(user.id, now, &event);
        change.password = Some(&password_hash);
        change.revoke = Some(RevokeSessions {
            except: Some(caller.session_id),
            reason: RevokeReason::PasswordChanged,
        });
        change.mail = &notice;
        let revoked = match self.ports.accounts.apply(change).await {
            Ok(revoked) => revoked,
            Err(ChangeError::UserGone) => return Err(ChangePasswordError::NotFound),
            Err(ChangeError::Failure(failure)) => return Err(failure.into()),
            Err(
                error @ (ChangeError::TokenGone
                | ChangeError::EmailTaken
                | ChangeError::TooSoon { .. }),
            ) => return Err(Failure::msg(format!("password change refused: {error}")).into()),
        };
        self.ports.audit.committed(&event);
        self.revoked_here(&revoked, now);
        Ok(())
    }
}
