//! Change email: the signed-in user, with the current password, asks to
//! move the account to a new address. The new address gets a confirmation
//! link; nothing changes until it is used (`verify_email`). The old address
//! gets a notice. A taken address gets the same answer and nothing happens.

use super::{AccountChange, AccountService, ChangeError, record_outcome};
use crate::audit::{AuthEvent, AuthEventKind, Outcome};
use crate::context::{Principal, RequestContext};
use crate::email::Email;
use crate::error::Failure;
use crate::mail::{Mail, MailKind};
use crate::one_time::TokenPurpose;
use crate::password::Password;
use crate::user::NewToken;

/// What an email change presents.
#[derive(Debug)]
pub struct ChangeEmail {
    pub new_email: Email,
    pub current_password: Password,
}

/// Why an email change was not started.
#[derive(Debug, thiserror::Error)]
pub enum ChangeEmailError {
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

impl ChangeEmailError {
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

crate::mfa::from_confirmation!(ChangeEmailError);

impl AccountService {
    /// Sends a confirmation link to `input.new_email`, unless another
    /// account has it (then nothing happens, and the answer is the same).
    ///
    /// # Errors
    /// `WrongPassword`, `RateLimited`, `NotFound`, or a `Failure`.
    #[tracing::instrument(name = "account.change_email", skip_all, fields(outcome))]
    pub async fn change_email(
        &self,
        caller: &Principal,
        input: ChangeEmail,
        ctx: &RequestContext,
    ) -> Result<(), ChangeEmailError> {
        let result = self.change_email_inner(caller, input, ctx).await;
        record_outcome(result.as_ref().map_or_else(|e| e.outcome(), |()| "success"));
        result
    }

    async fn change_email_inner(
        &self,
        caller: &Principal,
        ChangeEmail {
            new_email,
            current_password,
        }: ChangeEmail,
        ctx: &RequestContext,
    ) -> Result<(), ChangeEmailError> {
        let Some(user) = self.caller(caller.user_id).await? else {
            return Err(ChangeEmailError::NotFound);
        };
        self.confirm_password(&user, &current_password, ctx).await?;
        if new_email == user.email || self.ports.users.find_by_email(&new_email).await?.is_some() {
            // The same answer as a real request: the caller learns nothing
            // about other accounts. The link would fail anyway (unique index).
            return Ok(());
        }
        let now = self.ports.clock.now();
        let token = self.ports.secrets.one_time_token();
        let hash = self.ports.secrets.digest_one_time(&token);
        let expires_at = now + self.account.confirm_ttl;
        let mail = [
            Mail::link(
                MailKind::ConfirmEmailChange,
                user.id,
                new_email.clone(),
                token,
                expires_at,
            ),
            Mail::notice(
                MailKind::EmailChangeRequested,
                user.id,
                user.email.clone(),
                now,
            )
            .naming(new_email.clone()),
        ];
        let event = AuthEvent::new(
            AuthEventKind::EmailChangeRequested,
            Outcome::Success,
            now,
            ctx,
        )
        .user(user.id)
        .session(caller.session_id);
        let mut change = AccountChange::new(user.id, now, &event);
        change.issue = Some(NewToken {
            hash: &hash,
            purpose: TokenPurpose::ChangeEmail,
            new_email: Some(&new_email),
            session: Some(caller.session_id),
            created_at: now,
            expires_at,
        });
        change.mail = &mail;
        match self.ports.accounts.apply(change).await {
            Ok(_) => {
                self.ports.audit.committed(&event);
                Ok(())
            }
            Err(ChangeError::UserGone) => Err(ChangeEmailError::NotFound),
            Err(ChangeError::Failure(failure)) => Err(failure.into()),
            Err(
                error @ (ChangeError::TokenGone
                | ChangeError::EmailTaken
                | ChangeError::TooSoon { .. }),
            ) => Err(Failure::msg(format!("email change refused: {error}")).into()),
        }
    }
}
