//! Log in: verify an email and password and open a session.

use time::OffsetDateTime;

use super::{AuthService, TokenPair, record_outcome};
use crate::amr::AuthMethod;
use crate::audit::{AuthEvent, AuthEventKind, Outcome};
use crate::context::RequestContext;
use crate::email::Email;
use crate::error::Failure;
use crate::limits::{Bucket, GuardError, LoginAttempt, RateLimited};
use crate::mfa::{CHALLENGE_TTL, Challenge};
use crate::one_time::OneTimeToken;
use crate::password::{Password, Verification};
use crate::user::User;

/// What a log-in presents.
#[derive(Debug)]
pub struct LogIn {
    pub email: Email,
    pub password: Password,
}

/// Why a log-in failed. One variant for every credential problem, on purpose.
#[derive(Debug, thiserror::Error)]
pub enum LogInError {
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The password is right but the address is not confirmed, and the
    /// service requires it. Only ever told after a right password.
    #[error("email not verified")]
    EmailNotVerified,
    /// The password is right and the account has a second factor: the
    /// log-in continues at the second step with this challenge token.
    #[error("second factor required")]
    SecondFactorRequired {
        mfa_token: OneTimeToken,
        methods: Vec<&'static str>,
    },
    /// Too many attempts from this client, or the account (existing or not)
    /// is locked after repeated failures; the right password gets this too.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl LogInError {
    /// The stable outcome name that spans and metrics carry.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::InvalidCredentials => "invalid_credentials",
            Self::EmailNotVerified => "email_not_verified",
            Self::SecondFactorRequired { .. } => "second_factor_required",
            Self::RateLimited { .. } => "rate_limited",
            Self::Failure(_) => "error",
        }
    }
}

impl From<RateLimited> for LogInError {
    fn from(limited: RateLimited) -> Self {
        Self::RateLimited {
            retry_after_secs: limited.retry_after_secs,
        }
    }
}

impl From<GuardError> for LogInError {
    fn from(error: GuardError) -> Self {
        match error {
            GuardError::RateLimited(limited) => limited.into(),
            GuardError::Failure(failure) => failure.into(),
        }
    }
}

impl AuthService {
    /// Verifies credentials and opens a session.
    ///
    /// An unknown email pays for a full verification against a dummy hash, so
    /// every failure costs the same and answers the same. Failures are counted
    /// per normalised email (existing or not) and per client address. Each
    /// attempt is reserved (counted as a failure) before its password is
    /// checked and given back on success, so a wave of parallel guesses gets
    /// no more checks than the policy allows; a locked key answers
    /// `RateLimited`, whatever the password, before any password is checked.
    ///
    /// # Errors
    /// `InvalidCredentials` for any credential problem, `RateLimited`, or a `Failure`.
    #[tracing::instrument(name = "auth.log_in", skip_all, fields(outcome))]
    pub async fn log_in(
        &self,
        input: LogIn,
        ctx: &RequestContext,
    ) -> Result<TokenPair, LogInError> {
        let result = self.log_in_inner(input, ctx).await;
        record_outcome(result.as_ref().map_or_else(|e| e.outcome(), |_| "success"));
        result
    }

    async fn log_in_inner(
        &self,
        LogIn { email, password }: LogIn,
        ctx: &RequestContext,
    ) -> Result<TokenPair, LogInError> {
        self.guard.admit(Bucket::LogIn, ctx).await?;
        let reserved = self
            .guard
            .reserve(LoginAttempt::new(&email, ctx), ctx)
            .await?;
        let (found, verified) = match self.check(&email, &password).await {
            Ok(checked) => checked,
            Err(failure) => {
                self.guard.abandoned(reserved).await;
                return Err(failure.into());
            }
        };
        let known = found.as_ref().map(|user| user.id);
        let (Some(user), Some(verification)) = (found, verified) else {
            self.guard.failed(reserved, known, ctx);
            return Err(LogInError::InvalidCredentials);
        };

        self.guard.succeeded(reserved).await;
        if self.account.require_verified_email && user.email_verified_at.is_none() {
            return Err(LogInError::EmailNotVerified);
        }
        let now = self.ports.clock.now();
        let user = if verification.needs_rehash {
            self.upgrade_hash(user, &password, now).await
        } else {
            user
        };
        if user.second_factor {
            return Err(self.challenge(&user, now, ctx).await?);
        }
        Ok(self
            .open_session(
                user,
                now,
                ctx,
                AuthEventKind::LoginSucceeded,
                vec![AuthMethod::Pwd],
            )
            .await?)
    }

    /// Opens the second step of `user`'s log-in: a challenge of its own,
    /// single use, for a few minutes and a few tries.
    async fn challenge(
        &self,
        user: &User,
        now: OffsetDateTime,
        ctx: &RequestContext,
    ) -> Result<LogInError, Failure> {
        let token = self.ports.secrets.one_time_token();
        let challenge = Challenge {
            user: user.id,
            expires_at: now + CHALLENGE_TTL,
            tries: 0,
        };
        self.ports
            .mfa
            .open_challenge(&self.ports.secrets.digest_one_time(&token), &challenge)
            .await?;
        self.ports.audit.record(
            AuthEvent::new(
                AuthEventKind::SecondFactorRequired,
                Outcome::Success,
                now,
                ctx,
            )
            .user(user.id),
        );
        Ok(LogInError::SecondFactorRequired {
            mfa_token: token,
            methods: vec!["totp", "recovery_code"],
        })
    }

    /// The account of `email`, if any, and the verification of `password`
    /// when it matches. An unknown email pays for a dummy verification.
    async fn check(
        &self,
        email: &Email,
        password: &Password,
    ) -> Result<(Option<User>, Option<Verification>), Failure> {
        let found = self.ports.users.find_by_email(email).await?;
        let verified = match &found {
            Some(user) => {
                let verification = self
                    .ports
                    .hasher
                    .verify(password, &user.password_hash)
                    .await?;
                verification.matches.then_some(verification)
            }
            None => {
                self.ports.hasher.verify_dummy(password).await?;
                None
            }
        };
        Ok((found, verified))
    }

    /// Replaces an outdated hash; a failure here must not fail the log-in.
    async fn upgrade_hash(&self, mut user: User, password: &Password, now: OffsetDateTime) -> User {
        match self.ports.hasher.hash(password).await {
            Ok(hash) => match self
                .ports
                .users
                .update_password_hash(user.id, &hash, now)
                .await
            {
                Ok(()) => {
                    user.password_hash = hash;
                    user.updated_at = now;
                }
                Err(error) => {
                    tracing::warn!(error = %error, "could not store upgraded password hash")
                }
            },
            Err(error) => tracing::warn!(error = %error, "could not rehash password"),
        }
        user
    }
}
