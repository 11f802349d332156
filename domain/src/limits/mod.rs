//! Abuse limits: per-client request budgets and per-account login lockout.
//! The guard that applies them to a log-in is in `login_guard`.
//!
//! The policy (how many failures slow down, how many lock, for how long) lives
//! here; the stores behind the ports only count, atomically and with expiry,
//! in process or in Redis.

use async_trait::async_trait;
use time::Duration;

use crate::error::Failure;

mod login_guard;

pub use login_guard::{GuardError, LoginAttempt, LoginGuard, RateLimited};

/// A request budget, per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    SignUp,
    LogIn,
    Refresh,
}

impl Bucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignUp => "signup",
            Self::LogIn => "login",
            Self::Refresh => "refresh",
        }
    }
}

/// The answer of a limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Limited { retry_after_secs: u64 },
}

/// Counts requests per client against a budget (GCRA or similar).
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Spends one request of `key`'s budget in `bucket`.
    async fn check(&self, bucket: Bucket, key: &str) -> Result<Decision, Failure>;
}

/// The state of one failure counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureState {
    /// Consecutive failures within the window.
    pub failures: u32,
    /// Seconds left of a lock in force, if any.
    pub locked_for_secs: Option<u64>,
}

/// Atomic failure counters with expiry, keyed by account or client.
#[async_trait]
pub trait FailureCounter: Send + Sync + 'static {
    /// The current state of `key`.
    async fn state(&self, key: &str) -> Result<FailureState, Failure>;
    /// Adds a failure (the count expires `window` after the last failure) and,
    /// when `lock_for(new_count)` says so, locks the key for that long.
    /// Returns the state after the failure.
    async fn add_failure(
        &self,
        key: &str,
        window: Duration,
        lock_for: &(dyn Fn(u32) -> Option<Duration> + Send + Sync),
    ) -> Result<FailureState, Failure>;
    /// Forgets `key` (after a success).
    async fn clear(&self, key: &str) -> Result<(), Failure>;
}

/// How consecutive log-in failures are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// From this many failures on, each further failure locks briefly
    /// (1 s, 2 s, 4 s, ... capped at 60 s): the slow-down.
    pub slow_after: u32,
    /// At this many failures the key locks for `lock_duration`.
    pub lock_after: u32,
    pub lock_duration: Duration,
    /// Failures are forgotten this long after the last one.
    pub window: Duration,
}

impl LockoutPolicy {
    /// Per account (normalised email): 5 failures slow down, 10 lock 15 minutes.
    pub fn account_default() -> Self {
        Self {
            slow_after: 5,
            lock_after: 10,
            lock_duration: Duration::minutes(15),
            window: Duration::minutes(15),
        }
    }

    /// Per client address: higher, since many people can share one address.
    pub fn client_default() -> Self {
        Self {
            slow_after: 20,
            lock_after: 50,
            lock_duration: Duration::minutes(15),
            window: Duration::minutes(15),
        }
    }

    /// The lock that the `count`-th consecutive failure imposes.
    pub fn lock_for(&self, count: u32) -> Option<Duration> {
        if count >= self.lock_after {
            Some(self.lock_duration)
        } else if count >= self.slow_after {
            let step = (count - self.slow_after).min(6);
            Some(Duration::seconds(1 << step))
        } else {
            None
        }
    }

    /// Whether the `count`-th failure starts the long lock (an `account_locked` event).
    pub fn locks_at(&self, count: u32) -> bool {
        count == self.lock_after
    }
}

/// The abuse limits in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitPolicy {
    /// `false` disables every limit (benchmarks only).
    pub enabled: bool,
    pub account: LockoutPolicy,
    pub client: LockoutPolicy,
}

impl Default for LimitPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            account: LockoutPolicy::account_default(),
            client: LockoutPolicy::client_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_first_slow_down_then_lock() {
        let policy = LockoutPolicy::account_default();
        assert_eq!(policy.lock_for(4), None);
        assert_eq!(policy.lock_for(5), Some(Duration::seconds(1)));
        assert_eq!(policy.lock_for(6), Some(Duration::seconds(2)));
        assert_eq!(policy.lock_for(9), Some(Duration::seconds(16)));
        assert_eq!(policy.lock_for(10), Some(Duration::minutes(15)));
        assert!(policy.locks_at(10));
        assert!(!policy.locks_at(11));
    }
}
