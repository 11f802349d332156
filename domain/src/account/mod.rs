//! The account lifecycle by email, one use case per file: `verify_email`,
//! `resend_verification`, `forgot_password`, `reset_password`,
//! `change_password`, `change_email`, `delete` and `export`.
//!
//! This file holds the service, its ports, its policy and what the use cases
//! share (confirming the current password, revoking sessions where they are
//! checked). Every change goes to the repository as one [`AccountChange`]:
//! the token it consumes, what it sets, the sessions it revokes, the token it
//! issues, the messages it sends and its audit event commit together.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::amr::AuthMethod;
use crate::audit::{AuditSink, AuthEvent};
use crate::clock::Clock;
use crate::context::RequestContext;
use crate::email::Email;
use crate::error::Failure;
use crate::ids::{SessionId, UserId};
use crate::limits::{Bucket, FailureCounter, LimitPolicy, LoginGuard, RateLimited, RateLimiter};
use crate::mail::Mail;
use crate::mfa::{Confirmation, Confirmations, MfaRepository, Proof, SecondFactorCrypto};
use crate::one_time::TokenPurpose;
use crate::password::{Password, PasswordHash, PasswordHasher, PasswordPolicy};
use crate::session::{Revocation, RevocationCache, RevokeReason, SecretGenerator, TokenHash};
use crate::user::{NewToken, User, UserRepository};

mod change_email;
mod change_password;
mod delete;
mod export;
mod forgot_password;
mod resend_verification;
mod reset_password;
mod verify_email;

pub use change_email::{ChangeEmail, ChangeEmailError};
pub use change_password::{ChangePassword, ChangePasswordError};
pub use delete::{DeleteAccount, DeleteAccountError};
pub use export::{AccountExport, SecondFactorsExport};
pub use forgot_password::ForgotPassword;
pub use resend_verification::ResendVerificationError;
pub use reset_password::{ResetPassword, ResetPasswordError};
pub use verify_email::{VerifyEmail, VerifyEmailError};

/// Lifetimes and limits of the account flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountPolicy {
    /// How long a reset link works (30 min).
    pub reset_ttl: Duration,
    /// How long a verification or email-change link works (24 h).
    pub confirm_ttl: Duration,
    /// The least time between two verification emails (1 min).
    pub resend_interval: Duration,
    /// Log-in of an unverified account answers `email_not_verified`.
    pub require_verified_email: bool,
}

impl Default for AccountPolicy {
    fn default() -> Self {
        Self {
            reset_ttl: Duration::minutes(30),
            confirm_ttl: Duration::hours(24),
            resend_interval: Duration::minutes(1),
            require_verified_email: false,
        }
    }
}

/// A live one-time token, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingToken {
    pub user: UserId,
    pub purpose: TokenPurpose,
    /// The address an email change moves to.
    pub new_email: Option<Email>,
    /// The session that asked for it, if any.
    pub session: Option<SessionId>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// Sessions a change revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokeSessions {
    /// The one session spared (the caller's), if any.
    pub except: Option<SessionId>,
    pub reason: RevokeReason,
}

/// Everything one account change does, committed together or not at all.
#[derive(Debug, Clone, Copy)]
pub struct AccountChange<'a> {
    pub user: UserId,
    pub now: OffsetDateTime,
    /// A token that must still be live: it is deleted, and without it the
    /// whole change is refused with [`ChangeError::TokenGone`].
    pub consume: Option<&'a TokenHash>,
    /// A new password hash. Every live reset token of the account dies.
    pub password: Option<&'a PasswordHash>,
    /// A new address (unique, else [`ChangeError::EmailTaken`]). The live
    /// tokens of the old address die.
    pub email: Option<&'a Email>,
    /// Marks the account's (new) address confirmed at `now`.
    pub verify: bool,
    pub revoke: Option<RevokeSessions>,
    /// A token to store, voiding the live ones of its purpose; refused with
    /// [`ChangeError::TooSoon`] when one was issued less than `not_within` ago.
    pub issue: Option<NewToken<'a>>,
    pub not_within: Option<Duration>,
    pub mail: &'a [Mail],
    pub event: &'a AuthEvent,
}

impl<'a> AccountChange<'a> {
    /// A change of `user` at `now` recorded by `event` that does nothing yet.
    pub fn new(user: UserId, now: OffsetDateTime, event: &'a AuthEvent) -> Self {
        Self {
            user,
            now,
            consume: None,
            password: None,
            email: None,
            verify: false,
            revoke: None,
            issue: None,
            not_within: None,
            mail: &[],
            event,
        }
    }
}

/// Why a change was not made (nothing of it was).
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The token to consume is used, voided or expired.
    #[error("token used, voided or expired")]
    TokenGone,
    /// The account no longer exists.
    #[error("account gone")]
    UserGone,
    /// The new address belongs to another account.
    #[error("email already registered")]
    EmailTaken,
    /// A token of that purpose was issued too recently.
    #[error("too soon")]
    TooSoon { retry_after_secs: u64 },
    #[error(transparent)]
    Failure(#[from] Failure),
}

/// A deletion: the account, its sessions, tasks and tokens go; its audit
/// events stay (they name the user id only); its revocations reach every
/// instance; the notice is queued.
#[derive(Debug, Clone, Copy)]
pub struct AccountDeletion<'a> {
    pub user: UserId,
    pub now: OffsetDateTime,
    pub notice: &'a Mail,
    pub event: &'a AuthEvent,
}

/// Where accounts' tokens and changes live (the user repository's tables
/// and the outbox). Every change is one transaction that also stores its
/// event and queues its messages.
#[async_trait]
pub trait AccountRepository: Send + Sync + 'static {
    /// The live (unused, unexpired at `now`) token with this digest.
    async fn find_token(
        &self,
        token: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<PendingToken>, Failure>;

    /// Applies `change` atomically, serialised with every other change of
    /// the same account. Returns the sessions it revoked.
    ///
    /// # Errors
    /// See [`ChangeError`]; storage failures as `Failure`.
    async fn apply(&self, change: AccountChange<'_>) -> Result<Vec<SessionId>, ChangeError>;

    /// Deletes the account as [`AccountDeletion`] says; returns the sessions
    /// it revoked, or `None` when there was no such account.
    async fn delete(
        &self,
        deletion: AccountDeletion<'_>,
    ) -> Result<Option<Vec<SessionId>>, Failure>;

    /// Everything stored about the account (no hash, token or secret), at
    /// most `limit` events, newest first.
    async fn export(&self, user: UserId, limit: u64) -> Result<Option<AccountExport>, Failure>;
}

/// Runs work after the answer has left, so that the answer cannot tell
/// what the work found (forgot-password). Bounded: under a flood, work is
/// dropped and the adapter says so in its logs and metrics.
pub trait Background: Send + Sync + 'static {
    /// Starts `work`, or drops it when too much is already running.
    fn spawn(&self, work: Pin<Box<dyn Future<Output = ()> + Send + 'static>>);
}

/// The ports `AccountService` needs.
#[derive(Clone)]
pub struct AccountPorts {
    pub users: Arc<dyn UserRepository>,
    pub accounts: Arc<dyn AccountRepository>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub revocations: Arc<dyn RevocationCache>,
    pub secrets: Arc<dyn SecretGenerator>,
    pub clock: Arc<dyn Clock>,
    pub audit: Arc<dyn AuditSink>,
    pub limiter: Arc<dyn RateLimiter>,
    pub failures: Arc<dyn FailureCounter>,
    pub background: Arc<dyn Background>,
    pub mfa: Arc<dyn MfaRepository>,
    pub factors: Arc<dyn SecondFactorCrypto>,
}

/// The account use cases.
#[derive(Clone)]
pub struct AccountService {
    ports: AccountPorts,
    policy: PasswordPolicy,
    account: AccountPolicy,
    /// The same counters as log-in's: the recovery budgets, and a reset
    /// clears the lockout.
    guard: LoginGuard,
    /// Current password and second factor, counted like log-in attempts.
    confirm: Confirmations,
}

impl AccountService {
    /// Builds the service.
    pub fn new(
        ports: AccountPorts,
        policy: PasswordPolicy,
        account: AccountPolicy,
        limits: LimitPolicy,
    ) -> Self {
        let guard = LoginGuard::new(
            ports.limiter.clone(),
            ports.failures.clone(),
            ports.audit.clone(),
            ports.clock.clone(),
            limits,
        );
        let confirm = Confirmations::new(
            guard.clone(),
            ports.hasher.clone(),
            ports.mfa.clone(),
            ports.factors.clone(),
            ports.clock.clone(),
        );
        Self {
            ports,
            policy,
            account,
            guard,
            confirm,
        }
    }

    /// The lifetimes and limits in force.
    pub fn policy(&self) -> &AccountPolicy {
        &self.account
    }

    /// The caller's account, or `None` when it was deleted meanwhile.
    async fn caller(&self, user: UserId) -> Result<Option<User>, Failure> {
        self.ports.users.find_by_id(user).await
    }

    /// Checks the current `password` of `user`, counted like a log-in
    /// attempt: a session thief cannot guess more often than the lockout allows.
    pub(crate) async fn confirm_password(
        &self,
        user: &User,
        password: &Password,
        ctx: &RequestContext,
    ) -> Result<(), Confirmation> {
        self.confirm.password(user, password, ctx).await
    }

    /// Checks a second-factor `proof` of `user`, counted the same way.
    pub(crate) async fn confirm_factor(
        &self,
        user: &User,
        proof: &Proof,
        ctx: &RequestContext,
    ) -> Result<AuthMethod, Confirmation> {
        self.confirm.factor(user, proof, ctx).await
    }

    /// Makes `revoked` fail here at once; other instances learn of them
    /// through the revocation feed the repository appended to.
    fn revoked_here(&self, revoked: &[SessionId], now: OffsetDateTime) {
        for session in revoked {
            self.ports.revocations.record(Revocation {
                session_id: *session,
                revoked_at: now,
            });
        }
    }

    /// Spends one request of the per-client recovery budget.
    async fn admit_client(&self, ctx: &RequestContext) -> Result<(), RateLimited> {
        self.guard.admit(Bucket::Recovery, ctx).await
    }
}

/// Records the outcome of the current use case on its span.
fn record_outcome(outcome: &'static str) {
    tracing::Span::current().record("outcome", outcome);
}

#[cfg(test)]
mod tests;
