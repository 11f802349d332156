//! Forgot password: ask for a reset link by email.
//!
//! The answer is the same, in the same time, for every address: the limits
//! are checked (invisibly) before the answer, and everything that depends on
//! whether the account exists runs after it, in the background. An unknown
//! address queues nothing. A new link voids the older one.

use tracing::Instrument as _;

use super::{AccountChange, AccountService, ChangeError};
use crate::audit::{AuthEvent, AuthEventKind, Outcome};
use crate::context::RequestContext;
use crate::email::Email;
use crate::limits::Bucket;
use crate::mail::{Mail, MailKind};
use crate::one_time::TokenPurpose;
use crate::user::NewToken;

/// What a forgot-password request names.
#[derive(Debug)]
pub struct ForgotPassword {
    pub email: Email,
}

impl AccountService {
    /// Starts a password reset for `input.email` if an account has it.
    /// Never fails and never tells: over budget, unknown or known, the
    /// caller sees the same.
    #[tracing::instrument(name = "account.forgot_password", skip_all)]
    pub async fn forgot_password(&self, input: ForgotPassword, ctx: &RequestContext) {
        if self.admit_client(ctx).await.is_err() {
            return;
        }
        let email_key = format!("email:{}", input.email.as_str());
        if self
            .guard
            .admit_key(Bucket::RecoveryEmail, &email_key, ctx)
            .await
            .is_err()
        {
            return;
        }
        let service = self.clone();
        let ctx = ctx.clone();
        let span = tracing::info_span!("account.send_reset_link", outcome = tracing::field::Empty);
        self.ports.background.spawn(Box::pin(
            async move {
                let outcome = service.send_reset_link(input, &ctx).await;
                tracing::Span::current().record("outcome", outcome);
            }
            .instrument(span),
        ));
    }

    /// The part of a forgot-password request that depends on the account;
    /// returns its outcome name.
    async fn send_reset_link(
        &self,
        ForgotPassword { email }: ForgotPassword,
        ctx: &RequestContext,
    ) -> &'static str {
        let user = match self.ports.users.find_by_email(&email).await {
            Ok(Some(user)) => user,
            Ok(None) => return "unknown_email",
            Err(error) => {
                tracing::warn!(%error, "reset link not sent: the account could not be read");
                return "error";
            }
        };
        let now = self.ports.clock.now();
        let token = self.ports.secrets.one_time_token();
        let hash = self.ports.secrets.digest_one_time(&token);
        let expires_at = now + self.account.reset_ttl;
        let mail = [Mail::link(
            MailKind::ResetPassword,
            user.id,
            user.email.clone(),
            token,
            expires_at,
        )];
        let event = AuthEvent::new(
            AuthEventKind::PasswordResetRequested,
            Outcome::Success,
            now,
            ctx,
        )
        .user(user.id);
        let mut change = AccountChange::new(user.id, now, &event);
        change.issue = Some(NewToken {
            hash: &hash,
            purpose: TokenPurpose::ResetPassword,
            new_email: None,
            session: None,
            created_at: now,
            expires_at,
        });
        change.mail = &mail;
        match self.ports.accounts.apply(change).await {
            Ok(_) => {
                self.ports.audit.committed(&event);
                "success"
            }
            Err(ChangeError::UserGone) => "unknown_email",
            Err(error) => {
                tracing::warn!(%error, "reset link not sent");
                "error"
            }
        }
    }
}
