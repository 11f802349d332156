//! Redis with an in-process fallback: when Redis fails, the answer comes from
//! the local store and a warning is logged (at most every 30 s). Limits are
//! then per instance until Redis answers again; nothing fails because of it.

use std::sync::Mutex;
use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use portcullis_domain::error::Failure;
use portcullis_domain::limits::{
    Bucket, Charge, Decision, FailureCounter, FailureState, RateLimiter, Reservation,
};

use super::{GovernorRateLimiter, InMemoryFailureCounter, RedisFailureCounter, RedisRateLimiter};

struct WarnEvery {
    last: Mutex<Option<Instant>>,
}

impl WarnEvery {
    fn new() -> Self {
        Self {
            last: Mutex::new(None),
        }
    }

    fn warn(&self, what: &str, error: &Failure) {
        let now = Instant::now();
        if let Ok(mut last) = self.last.lock()
            && last.is_none_or(|at| now.duration_since(at) > StdDuration::from_secs(30))
        {
            *last = Some(now);
            tracing::warn!(error = %error, "{what}: Redis unavailable, using this instance's local limits until it returns");
        }
    }
}

/// Request budgets in Redis, falling back to governor in process.
pub struct FallbackLimiter {
    redis: RedisRateLimiter,
    local: GovernorRateLimiter,
    warn: WarnEvery,
}

impl FallbackLimiter {
    pub fn new(redis: RedisRateLimiter, local: GovernorRateLimiter) -> Self {
        Self {
            redis,
            local,
            warn: WarnEvery::new(),
        }
    }
}

#[async_trait]
impl RateLimiter for FallbackLimiter {
    async fn check(&self, bucket: Bucket, key: &str) -> Result<Decision, Failure> {
        match self.redis.check(bucket, key).await {
            Ok(decision) => Ok(decision),
            Err(error) => {
                self.warn.warn("rate limiter", &error);
                Ok(self.local.decide(bucket, key))
            }
        }
    }
}

/// Failure counters in Redis, falling back to a local map.
pub struct FallbackFailures {
    redis: RedisFailureCounter,
    local: InMemoryFailureCounter,
    warn: WarnEvery,
}

impl FallbackFailures {
    pub fn new(redis: RedisFailureCounter, local: InMemoryFailureCounter) -> Self {
        Self {
            redis,
            local,
            warn: WarnEvery::new(),
        }
    }
}

#[async_trait]
impl FailureCounter for FallbackFailures {
    async fn state(&self, key: &str) -> Result<FailureState, Failure> {
        match self.redis.state(key).await {
            Ok(state) => Ok(state),
            Err(error) => {
                self.warn.warn("login lockout", &error);
                self.local.state_now(key)
            }
        }
    }

    async fn reserve(&self, charges: &[Charge<'_>]) -> Result<Reservation, Failure> {
        match self.redis.reserve(charges).await {
            Ok(reservation) => Ok(reservation),
            Err(error) => {
                self.warn.warn("login lockout", &error);
                self.local.reserve_now(charges)
            }
        }
    }

    async fn release(&self, key: &str) -> Result<(), Failure> {
        let local = self.local.release_now(key);
        match self.redis.release(key).await {
            Ok(()) => local,
            Err(error) => {
                self.warn.warn("login lockout", &error);
                local
            }
        }
    }

    async fn clear(&self, key: &str) -> Result<(), Failure> {
        let local = self.local.clear_now(key);
        match self.redis.clear(key).await {
            Ok(()) => local,
            Err(error) => {
                self.warn.warn("login lockout", &error);
                local
            }
        }
    }
}
