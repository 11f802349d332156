//! The guard in front of every credential check: spends the client's request
//! budget, refuses while the account or the client is locked, counts
//! failures (slow-down, then lock) and forgets them after a success. It
//! records the audit events of what it refuses or locks.
//!
//! Request budgets fail open (the lockout still protects accounts); the
//! lockout fails closed (without its counters, no password is checked).

use std::sync::Arc;

use super::{Bucket, Decision, FailureCounter, LimitPolicy, RateLimiter};
use crate::audit::{AuditSink, AuthEvent, AuthEventKind, Outcome};
use crate::clock::Clock;
use crate::context::RequestContext;
use crate::email::Email;
use crate::error::Failure;
use crate::ids::UserId;

/// A refusal: too many requests or attempts; retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limited; retry after {retry_after_secs} s")]
pub struct RateLimited {
    pub retry_after_secs: u64,
}

/// Why the guard did not let an attempt through.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    #[error(transparent)]
    Failure(#[from] Failure),
}

/// The counters one log-in attempt is charged to: the normalised email
/// (whether or not an account has it) and the client address, if known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginAttempt {
    account_key: String,
    client_key: Option<String>,
}

impl LoginAttempt {
    /// The attempt to log in as `email` from the client of `ctx`.
    pub fn new(email: &Email, ctx: &RequestContext) -> Self {
        Self {
            account_key: format!("account:{}", email.as_str()),
            client_key: ctx.client.limit_key().map(|key| format!("client:{key}")),
        }
    }
}

/// Applies the abuse limits to sign-ups, log-ins and refreshes.
#[derive(Clone)]
pub struct LoginGuard {
    limiter: Arc<dyn RateLimiter>,
    failures: Arc<dyn FailureCounter>,
    audit: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
    policy: LimitPolicy,
}

impl LoginGuard {
    /// Builds the guard over its ports.
    pub fn new(
        limiter: Arc<dyn RateLimiter>,
        failures: Arc<dyn FailureCounter>,
        audit: Arc<dyn AuditSink>,
        clock: Arc<dyn Clock>,
        policy: LimitPolicy,
    ) -> Self {
        Self {
            limiter,
            failures,
            audit,
            clock,
            policy,
        }
    }

    /// The limits in force.
    pub fn policy(&self) -> &LimitPolicy {
        &self.policy
    }

    /// Spends one request of the client's budget in `bucket`.
    ///
    /// # Errors
    /// `RateLimited` when the budget is spent. A limiter that cannot answer
    /// lets the request through (logged).
    pub async fn admit(&self, bucket: Bucket, ctx: &RequestContext) -> Result<(), RateLimited> {
        if !self.policy.enabled {
            return Ok(());
        }
        let key = ctx.client.limit_key().unwrap_or("unknown");
        match self.limiter.check(bucket, key).await {
            Ok(Decision::Allowed) => Ok(()),
            Ok(Decision::Limited { retry_after_secs }) => {
                self.record(
                    AuthEvent::new(
                        AuthEventKind::RateLimitHit,
                        Outcome::Failure,
                        self.clock.now(),
                        ctx,
                    )
                    .detail(bucket.as_str()),
                );
                Err(RateLimited {
                    retry_after_secs: retry_after_secs.max(1),
                })
            }
            Err(error) => {
                tracing::warn!(error = %error, bucket = bucket.as_str(), "rate limiter unavailable; request allowed");
                Ok(())
            }
        }
    }

    /// Refuses while the account or the client of `attempt` is locked.
    ///
    /// # Errors
    /// `RateLimited` with the longest lock in force; `Failure::Unavailable`
    /// when the counters cannot be read.
    pub async fn ensure_unlocked(
        &self,
        attempt: &LoginAttempt,
        ctx: &RequestContext,
    ) -> Result<(), GuardError> {
        if !self.policy.enabled {
            return Ok(());
        }
        let mut longest = self.locked_for(&attempt.account_key).await?;
        if let Some(client_key) = &attempt.client_key {
            longest = longest.max(self.locked_for(client_key).await?);
        }
        let Some(retry_after_secs) = longest else {
            return Ok(());
        };
        self.record(
            AuthEvent::new(
                AuthEventKind::RateLimitHit,
                Outcome::Failure,
                self.clock.now(),
                ctx,
            )
            .detail("login_locked"),
        );
        Err(RateLimited { retry_after_secs }.into())
    }

    /// Records a failed attempt (`user` when the email belongs to an account)
    /// and counts it against the account and the client; the count that
    /// reaches a policy's lock threshold records `account_locked`.
    ///
    /// # Errors
    /// `Failure::Unavailable` when the counters cannot be written.
    pub async fn failed(
        &self,
        attempt: &LoginAttempt,
        user: Option<UserId>,
        ctx: &RequestContext,
    ) -> Result<(), Failure> {
        let now = self.clock.now();
        let mut failed = AuthEvent::new(AuthEventKind::LoginFailed, Outcome::Failure, now, ctx)
            .detail(if user.is_some() {
                "wrong_password"
            } else {
                "unknown_user"
            });
        if let Some(user) = user {
            failed = failed.user(user);
        }
        self.record(failed);
        if !self.policy.enabled {
            return Ok(());
        }
        let account = self.policy.account;
        let state = self
            .failures
            .add_failure(&attempt.account_key, account.window, &move |n| {
                account.lock_for(n)
            })
            .await
            .map_err(Failure::into_unavailable)?;
        if account.locks_at(state.failures) {
            let mut locked =
                AuthEvent::new(AuthEventKind::AccountLocked, Outcome::Failure, now, ctx)
                    .detail(format!("failures={}", state.failures));
            if let Some(user) = user {
                locked = locked.user(user);
            }
            self.record(locked);
        }
        if let Some(client_key) = &attempt.client_key {
            let client = self.policy.client;
            let state = self
                .failures
                .add_failure(client_key, client.window, &move |n| client.lock_for(n))
                .await
                .map_err(Failure::into_unavailable)?;
            if client.locks_at(state.failures) {
                self.record(
                    AuthEvent::new(AuthEventKind::AccountLocked, Outcome::Failure, now, ctx)
                        .detail(format!("client_locked failures={}", state.failures)),
                );
            }
        }
        Ok(())
    }

    /// Forgets the account's failures after a successful log-in. A counter
    /// that cannot be cleared must not fail the log-in (logged).
    pub async fn succeeded(&self, attempt: &LoginAttempt) {
        if self.policy.enabled
            && let Err(error) = self.failures.clear(&attempt.account_key).await
        {
            tracing::warn!(error = %error, "could not reset the failure count");
        }
    }

    async fn locked_for(&self, key: &str) -> Result<Option<u64>, Failure> {
        Ok(self
            .failures
            .state(key)
            .await
            .map_err(Failure::into_unavailable)?
            .locked_for_secs)
    }

    fn record(&self, event: AuthEvent) {
        self.audit.record(event);
    }
}
