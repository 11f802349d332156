//! Rate limiting and failure counting, in process or in Redis.
//!
//! In process is the single-instance default: a hard memory cap with O(1)
//! eviction, nothing to run.
//! With Redis, every instance shares exact counts. When Redis cannot be
//! reached, the [`Fallback`] wrappers answer from the in-process stores and
//! log a warning (at most every 30 s), so the service never fails a request
//! because its limiter is down; limits are then per instance until Redis
//! returns.

mod fallback;
mod memory;
mod redis_store;

pub use fallback::{FallbackFailures, FallbackLimiter};
pub use memory::{FAILURE_BYTES, GovernorRateLimiter, InMemoryFailureCounter, MAX_KEYS};
pub use redis_store::{RedisFailureCounter, RedisRateLimiter, connect_redis};

use portcullis_domain::limits::Bucket;

/// A request budget: a sustained rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub per_minute: u32,
    pub burst: u32,
}

/// The budgets of each bucket, per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub sign_up: Quota,
    pub log_in: Quota,
    pub refresh: Quota,
    /// Recovery and confirmation requests per client.
    pub recovery: Quota,
    /// Password-reset requests per email address.
    pub recovery_email: Quota,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            sign_up: Quota {
                per_minute: 10,
                burst: 5,
            },
            log_in: Quota {
                per_minute: 30,
                burst: 10,
            },
            refresh: Quota {
                per_minute: 120,
                burst: 30,
            },
            recovery: Quota {
                per_minute: 10,
                burst: 5,
            },
            recovery_email: Quota {
                per_minute: 1,
                burst: 3,
            },
        }
    }
}

impl Quotas {
    pub fn for_bucket(&self, bucket: Bucket) -> Quota {
        match bucket {
            Bucket::SignUp => self.sign_up,
            Bucket::LogIn => self.log_in,
            Bucket::Refresh => self.refresh,
            Bucket::Recovery => self.recovery,
            Bucket::RecoveryEmail => self.recovery_email,
        }
    }
}
