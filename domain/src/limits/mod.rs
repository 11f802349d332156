//! Abuse limits: per-client request budgets and per-account login lockout.
//! The guard that applies them to a log-in is in `login_guard`.
//!
//! The policy (how many failures slow down, how many lock, for how long) and
//! the counter arithmetic live in `lockout`; the stores behind the ports only
//! apply it atomically and with expiry, in process or in Redis.

use crate::error::Failure;
use async_trait::async_trait;

pub mod lockout;
mod login_guard;

pub use lockout::{Counter, LockoutPolicy, MAX_FAILURES_CEILING, reserve};
pub use login_guard::{GuardError, LoginAttempt, LoginGuard, RateLimited, Reserved};

/// A request budget, per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    SignUp,
    LogIn,
    Refresh,
    /// Account recovery and confirmation requests, per client.
    Recovery,
    /// Password-reset requests, per email address (existing or not).
    RecoveryEmail,
}

impl Bucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignUp => "signup",
            Self::LogIn => "login",
            Self::Refresh => "refresh",
            Self::Recovery => "recovery",
            Self::RecoveryEmail => "recovery_email",
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
    /// Failures counted (reservations included) and not yet forgotten.
    pub failures: u32,
    /// Seconds left of a lock in force, if any.
    pub locked_for_secs: Option<u64>,
}

/// One counter an attempt is charged to, and the policy that counts it.
#[derive(Debug, Clone, Copy)]
pub struct Charge<'a> {
    pub key: &'a str,
    pub policy: &'a LockoutPolicy,
}

/// The answer to a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Counted: the new count of each charged key, in the order given.
    Reserved(Vec<u32>),
    /// A key is locked; nothing was counted.
    Refused { retry_after_secs: u64 },
}

/// Atomic failure counters with expiry, keyed by account or client. Every
/// store applies the arithmetic of [`lockout`]: [`reserve`], [`Counter`].
#[async_trait]
pub trait FailureCounter: Send + Sync + 'static {
    /// The current state of `key`.
    async fn state(&self, key: &str) -> Result<FailureState, Failure>;
    /// Reserves one attempt on every key of `charges`, atomically, before
    /// its password is checked: when any key is locked, refuses with the
    /// longest lock and counts nothing; otherwise counts one failure on each
    /// key, whose policy then imposes the lock of the new count. A lock never
    /// shortens, and a count is forgotten a whole window after both its last
    /// failure and the end of its lock.
    async fn reserve(&self, charges: &[Charge<'_>]) -> Result<Reservation, Failure>;
    /// Gives one reservation of `key` back (the attempt was no failure, or
    /// no password was checked): one failure fewer; a lock it set runs out.
    async fn release(&self, key: &str) -> Result<(), Failure>;
    /// Forgets `key`, count and lock (after a successful log-in).
    async fn clear(&self, key: &str) -> Result<(), Failure>;
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
