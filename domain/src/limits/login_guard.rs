//! The guard in front of every credential check: spends the client's request
//! budget, reserves the attempt on the account's and the client's failure
//! counts before the password is checked (refusing while either is locked),
//! and hears how the check ended: a failure stays counted, a success clears
//! the account and gives the client its reservation back. It records the
//! audit events of what it refuses or locks.
//!
//! Request budgets fail open (the lockout still protects accounts); the
//! lockout fails closed (without its counters, no password is checked).

use std::sync::Arc;

use super::{Bucket, Charge, Decision, FailureCounter, LimitPolicy, RateLimiter, Reservation};
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
            account_key: Self::account_key(email),
            client_key: ctx.client.limit_key().map(|key| format!("client:{key}")),
        }
    }
}

impl LoginAttempt {
    /// The failure counter of the account of `email`.
    pub fn account_key(email: &Email) -> String {
        format!("account:{}", email.as_str())
    }
}

/// A reserved attempt: counted as a failure until the guard hears how its
/// password check ended ([`LoginGuard::failed`], [`LoginGuard::succeeded`]
/// or [`LoginGuard::abandoned`]).
#[must_use = "a reservation stays counted as a failure until it is resolved"]
#[derive(Debug)]
pub struct Reserved {
    attempt: LoginAttempt,
    account_failures: u32,
    client_failures: Option<u32>,
    /// `false` when the limits are disabled.
    counted: bool,
}

impl Reserved {
    fn unlimited(attempt: LoginAttempt) -> Self {
        Self {
            attempt,
            account_failures: 0,
            client_failures: None,
            counted: false,
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
        let key = ctx.client.limit_key().unwrap_or("unknown");
        self.admit_key(bucket, key, ctx).await
    }

    /// Spends one request of `key`'s budget in `bucket` (a client, or an
    /// email for the per-address recovery budget).
    ///
    /// # Errors
    /// As [`LoginGuard::admit`].
    pub async fn admit_key(
        &self,
        bucket: Bucket,
        key: &str,
        ctx: &RequestContext,
    ) -> Result<(), RateLimited> {
        if !self.policy.enabled {
            return Ok(());
        }
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

    /// Reserves `attempt` before its password is checked: it counts as a
    /// failure of the account and of the client at once, atomically, so
    /// parallel guesses get no more checks than the policy allows.
    ///
    /// # Errors
    /// `RateLimited` with the longest lock in force (nothing is counted);
    /// `Failure::Unavailable` when the counters cannot be written.
    pub async fn reserve(
        &self,
        attempt: LoginAttempt,
        ctx: &RequestContext,
    ) -> Result<Reserved, GuardError> {
        if !self.policy.enabled {
            return Ok(Reserved::unlimited(attempt));
        }
        let mut charges = vec![Charge {
            key: &attempt.account_key,
            policy: &self.policy.account,
        }];
        if let Some(client_key) = &attempt.client_key {
            charges.push(Charge {
                key: client_key,
                policy: &self.policy.client,
            });
        }
        let reservation = self
            .failures
            .reserve(&charges)
            .await
            .map_err(Failure::into_unavailable)?;
        match reservation {
            Reservation::Reserved(counts) => Ok(Reserved {
                account_failures: counts.first().copied().unwrap_or(0),
                client_failures: counts.get(1).copied(),
                attempt,
                counted: true,
            }),
            Reservation::Refused { retry_after_secs } => {
                self.record(
                    AuthEvent::new(
                        AuthEventKind::RateLimitHit,
                        Outcome::Failure,
                        self.clock.now(),
                        ctx,
                    )
                    .detail("login_locked"),
                );
                Err(RateLimited {
                    retry_after_secs: retry_after_secs.max(1),
                }
                .into())
            }
        }
    }

    /// Records a failed attempt (`user` when the email belongs to an
    /// account). It was counted when it was reserved; the count that reached
    /// a policy's long lock or ceiling records `account_locked`.
    pub fn failed(&self, reserved: Reserved, user: Option<UserId>, ctx: &RequestContext) {
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
        if !reserved.counted {
            return;
        }
        if self.policy.account.locks_at(reserved.account_failures) {
            let mut locked =
                AuthEvent::new(AuthEventKind::AccountLocked, Outcome::Failure, now, ctx)
                    .detail(format!("failures={}", reserved.account_failures));
            if let Some(user) = user {
                locked = locked.user(user);
            }
            self.record(locked);
        }
        if let Some(count) = reserved.client_failures
            && self.policy.client.locks_at(count)
        {
            self.record(
                AuthEvent::new(AuthEventKind::AccountLocked, Outcome::Failure, now, ctx)
                    .detail(format!("client_locked failures={count}")),
            );
        }
    }

    /// After a successful log-in: forgets the account's failures and gives
    /// the client its reservation back (a success never clears a client's
    /// count). A counter that cannot be written must not fail the log-in
    /// (logged).
    pub async fn succeeded(&self, reserved: Reserved) {
        if !reserved.counted {
            return;
        }
        if let Err(error) = self.failures.clear(&reserved.attempt.account_key).await {
            tracing::warn!(error = %error, "could not reset the failure count");
        }
        self.release_client(&reserved).await;
    }

    /// When no password was checked (the hasher or the database failed):
    /// gives both reservations back (logged when that fails).
    pub async fn abandoned(&self, reserved: Reserved) {
        if !reserved.counted {
            return;
        }
        if let Err(error) = self.failures.release(&reserved.attempt.account_key).await {
            tracing::warn!(error = %error, "could not release a login reservation");
        }
        self.release_client(&reserved).await;
    }

    async fn release_client(&self, reserved: &Reserved) {
        if let Some(client_key) = &reserved.attempt.client_key
            && let Err(error) = self.failures.release(client_key).await
        {
            tracing::warn!(error = %error, "could not release a login reservation");
        }
    }

    fn record(&self, event: AuthEvent) {
        self.audit.record(event);
    }
}
