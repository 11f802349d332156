//! Delete the account: the signed-in user, with the current password. Every
//! session and access token dies at once; sessions, tasks and pending
//! tokens are deleted; the audit trail stays, naming the user id only; a
//! notice goes to the address.

use super::{AccountDeletion, AccountService, record_outcome};
use crate::audit::{AuthEvent, AuthEventKind, Outcome};
use crate::context::{Principal, RequestContext};
use crate::error::Failure;
use crate::mail::{Mail, MailKind};
use crate::password::Password;

/// What a deletion presents.
#[derive(Debug)]
pub struct DeleteAccount {
    pub current_password: Password,
}

/// Why the account was not deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteAccountError {
    /// The current password is wrong (counted toward the lockout).
    #[error("wrong password")]
    WrongPassword,
    /// The account is locked after repeated wrong passwords.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    /// The caller's account no longer exists.
    #[error("account gone")]
    NotFound,
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl DeleteAccountError {
    /// The stable outcome name that spans and metrics carry.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::WrongPassword => "wrong_password",
            Self::RateLimited { .. } => "rate_limited",
            Self::NotFound => "not_found",
            Self::Failure(_) => "error",
        }
    }
}

crate::mfa::from_confirmation!(DeleteAccountError);

impl AccountService {
    /// Deletes the caller's account.
    ///
    /// # Errors
    /// `WrongPassword`, `RateLimited`, `NotFound`, or a `Failure`.
    #[tracing::instrument(name = "account.delete", skip_all, fields(outcome))]
    pub async fn delete_account(
        &self,
        caller: &Principal,
        input: DeleteAccount,
        ctx: &RequestContext,
    ) -> Result<(), DeleteAccountError> {
        let result = self.delete_account_inner(caller, input, ctx).await;
        record_outcome(result.as_ref().map_or_else(|e| e.outcome(), |()| "success"));
        result
    }

    async fn delete_account_inner(
        &self,
        caller: &Principal,
        DeleteAccount { current_password }: DeleteAccount,
        ctx: &RequestContext,
    ) -> Result<(), DeleteAccountError> {
        let Some(user) = self.caller(caller.user_id).await? else {
            return Err(DeleteAccountError::NotFound);
        };
        self.confirm_password(&user, &current_password, ctx).await?;
        let now = self.ports.clock.now();
        let event = AuthEvent::new(AuthEventKind::AccountDeleted, Outcome::Success, now, ctx)
            .user(user.id)
            .session(caller.session_id);
        let notice = Mail::notice(MailKind::AccountDeleted, user.id, user.email.clone(), now);
        let deleted = self
            .ports
            .accounts
            .delete(AccountDeletion {
                user: user.id,
                now,
                notice: &notice,
                event: &event,
            })
            .await?;
        let Some(revoked) = deleted else {
            return Err(DeleteAccountError::NotFound);
        };
        self.ports.audit.committed(&event);
        self.revoked_here(&revoked, now);
        if let Err(error) = self
            .ports
            .failures
            .clear(&crate::limits::LoginAttempt::account_key(&user.email))
            .await
        {
            tracing::debug!(%error, "the deleted account's lockout could not be cleared");
        }
        Ok(())
    }
}
