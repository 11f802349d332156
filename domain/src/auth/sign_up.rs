//! Sign up: create an account, open its first session and send the link
//! that confirms its address.

use super::{AuthService, TokenPair, record_outcome};
use crate::audit::{AuthEvent, AuthEventKind, Outcome};
use crate::context::RequestContext;
use crate::email::Email;
use crate::error::Failure;
use crate::ids::UserId;
use crate::limits::{Bucket, RateLimited};
use crate::mail::{Mail, MailKind};
use crate::one_time::TokenPurpose;
use crate::password::{Password, PasswordRejection};
use crate::session::{Session, SessionOpening};
use crate::user::{InsertUserError, NewToken, User};

/// What a sign-up asks for.
#[derive(Debug)]
pub struct SignUp {
    pub email: Email,
    pub password: Password,
}

/// Why a sign-up failed.
#[derive(Debug, thiserror::Error)]
pub enum SignUpError {
    #[error("password rejected: {0}")]
    WeakPassword(#[from] PasswordRejection),
    #[error("email already registered")]
    EmailTaken,
    /// Too many sign-ups from this client.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl SignUpError {
    /// The stable outcome name that spans and metrics carry.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::WeakPassword(_) => "weak_password",
            Self::EmailTaken => "email_taken",
            Self::RateLimited { .. } => "rate_limited",
            Self::Failure(_) => "error",
        }
    }
}

impl From<RateLimited> for SignUpError {
    fn from(limited: RateLimited) -> Self {
        Self::RateLimited {
            retry_after_secs: limited.retry_after_secs,
        }
    }
}

impl AuthService {
    /// Creates an account and opens its first session.
    ///
    /// # Errors
    /// `WeakPassword` with the reason, `EmailTaken`, `RateLimited`, or a `Failure`.
    #[tracing::instrument(name = "auth.sign_up", skip_all, fields(outcome))]
    pub async fn sign_up(
        &self,
        input: SignUp,
        ctx: &RequestContext,
    ) -> Result<TokenPair, SignUpError> {
        let result = self.sign_up_inner(input, ctx).await;
        record_outcome(result.as_ref().map_or_else(|e| e.outcome(), |_| "success"));
        result
    }

    async fn sign_up_inner(
        &self,
        SignUp { email, password }: SignUp,
        ctx: &RequestContext,
    ) -> Result<TokenPair, SignUpError> {
        self.guard.admit(Bucket::SignUp, ctx).await?;
        self.policy.check(&password, &email)?;
        let password_hash = self.ports.hasher.hash(&password).await?;
        let now = self.ports.clock.now();
        let user = User {
            id: UserId::new(),
            email,
            password_hash,
            email_verified_at: None,
            second_factor: false,
            created_at: now,
            updated_at: now,
        };
        let session = Session::open(user.id, now, &self.sessions, ctx.client.clone());
        let refresh = self.ports.secrets.refresh_token();
        let hash = self.ports.secrets.digest(&refresh);
        let event = AuthEvent::new(AuthEventKind::SignUp, Outcome::Success, now, ctx)
            .user(user.id)
            .session(session.id);
        let opening = SessionOpening {
            session: &session,
            first_token: &hash,
            event: &event,
        };
        let token = self.ports.secrets.one_time_token();
        let token_hash = self.ports.secrets.digest_one_time(&token);
        let expires_at = now + self.account.confirm_ttl;
        let verification = NewToken {
            hash: &token_hash,
            purpose: TokenPurpose::VerifyEmail,
            new_email: None,
            session: Some(session.id),
            created_at: now,
            expires_at,
        };
        let mail = Mail::link(
            MailKind::VerifyEmail,
            user.id,
            user.email.clone(),
            token,
            expires_at,
        );
        match self
            .ports
            .users
            .insert(&user, opening, verification, &mail)
            .await
        {
            Ok(()) => self.ports.audit.committed(&event),
            Err(InsertUserError::EmailTaken) => return Err(SignUpError::EmailTaken),
            Err(InsertUserError::Failure(failure)) => return Err(failure.into()),
        }
        Ok(self.pair_for(user.profile(), &session, refresh, now)?)
    }
}
