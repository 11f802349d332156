//! In-process stores: governor's GCRA for request budgets, a bounded map for
//! failure counters.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota as GovernorQuota, RateLimiter as Governor};
use portcullis_domain::error::Failure;
use portcullis_domain::limits::{Bucket, Decision, FailureCounter, FailureState, RateLimiter};
use time::Duration;

use super::{Quota, Quotas};

/// Most keys a limiter keeps; past it, idle keys are dropped first.
const MAX_KEYS: usize = 100_000;

fn governor_quota(quota: Quota) -> GovernorQuota {
    let rate = NonZeroU32::new(quota.per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(quota.burst.max(1)).unwrap_or(NonZeroU32::MIN);
    GovernorQuota::per_minute(rate).allow_burst(burst)
}

/// GCRA budgets per bucket and client, in process (governor).
pub struct GovernorRateLimiter {
    sign_up: DefaultKeyedRateLimiter<String>,
    log_in: DefaultKeyedRateLimiter<String>,
    refresh: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl GovernorRateLimiter {
    pub fn new(quotas: Quotas) -> Self {
        Self {
            sign_up: Governor::keyed(governor_quota(quotas.sign_up)),
            log_in: Governor::keyed(governor_quota(quotas.log_in)),
            refresh: Governor::keyed(governor_quota(quotas.refresh)),
            clock: DefaultClock::default(),
        }
    }

    fn limiter(&self, bucket: Bucket) -> &DefaultKeyedRateLimiter<String> {
        match bucket {
            Bucket::SignUp => &self.sign_up,
            Bucket::LogIn => &self.log_in,
            Bucket::Refresh => &self.refresh,
        }
    }

    /// Drops keys whose budget is full again; bounds memory under a flood of
    /// distinct clients.
    pub fn prune(&self) {
        for limiter in [&self.sign_up, &self.log_in, &self.refresh] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Keys held across buckets.
    pub fn len(&self) -> usize {
        self.sign_up.len() + self.log_in.len() + self.refresh.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The decision for `key`, synchronously (also used by the Redis fallback).
    pub fn decide(&self, bucket: Bucket, key: &str) -> Decision {
        let limiter = self.limiter(bucket);
        if limiter.len() >= MAX_KEYS {
            limiter.retain_recent();
        }
        match limiter.check_key(&key.to_owned()) {
            Ok(()) => Decision::Allowed,
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Decision::Limited {
                    retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                }
            }
        }
    }
}

#[async_trait]
impl RateLimiter for GovernorRateLimiter {
    async fn check(&self, bucket: Bucket, key: &str) -> Result<Decision, Failure> {
        Ok(self.decide(bucket, key))
    }
}

struct Entry {
    failures: u32,
    expires: Instant,
    locked_until: Option<Instant>,
}

/// Failure counters in a bounded in-process map.
pub struct InMemoryFailureCounter {
    entries: Mutex<HashMap<String, Entry>>,
    max_keys: usize,
}

impl Default for InMemoryFailureCounter {
    fn default() -> Self {
        Self::with_capacity(200_000)
    }
}

fn to_std(duration: Duration) -> StdDuration {
    StdDuration::try_from(duration).unwrap_or_default()
}

fn secs_until(instant: Instant, now: Instant) -> u64 {
    let left = instant.saturating_duration_since(now);
    (left.as_secs() + u64::from(left.subsec_nanos() > 0)).max(1)
}

impl InMemoryFailureCounter {
    /// A counter keeping at most `max_keys` keys.
    pub fn with_capacity(max_keys: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            max_keys,
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Entry>>, Failure> {
        self.entries
            .lock()
            .map_err(|_| Failure::msg("failure counter lock poisoned"))
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops expired keys.
    pub fn prune(&self) {
        let now = Instant::now();
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, e| e.expires > now || e.locked_until.is_some_and(|l| l > now));
        }
    }

    pub fn state_now(&self, key: &str) -> Result<FailureState, Failure> {
        let now = Instant::now();
        let entries = self.lock()?;
        Ok(match entries.get(key) {
            Some(entry) if entry.expires > now || entry.locked_until.is_some_and(|l| l > now) => {
                FailureState {
                    failures: if entry.expires > now {
                        entry.failures
                    } else {
                        0
                    },
                    locked_for_secs: entry
                        .locked_until
                        .filter(|l| *l > now)
                        .map(|l| secs_until(l, now)),
                }
            }
            _ => FailureState::default(),
        })
    }

    pub fn add_failure_now(
        &self,
        key: &str,
        window: Duration,
        lock_for: &(dyn Fn(u32) -> Option<Duration> + Send + Sync),
    ) -> Result<FailureState, Failure> {
        let now = Instant::now();
        let mut entries = self.lock()?;
        if entries.len() >= self.max_keys && !entries.contains_key(key) {
            entries.retain(|_, e| e.expires > now || e.locked_until.is_some_and(|l| l > now));
            if entries.len() >= self.max_keys {
                // Still full of live keys: forget the least suspicious ones.
                entries.retain(|_, e| e.failures > 1 || e.locked_until.is_some());
            }
        }
        let entry = entries.entry(key.to_owned()).or_insert(Entry {
            failures: 0,
            expires: now,
            locked_until: None,
        });
        if entry.expires <= now {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.expires = now + to_std(window);
        if let Some(lock) = lock_for(entry.failures) {
            let until = now + to_std(lock);
            entry.locked_until = Some(entry.locked_until.map_or(until, |l| l.max(until)));
        }
        Ok(FailureState {
            failures: entry.failures,
            locked_for_secs: entry
                .locked_until
                .filter(|l| *l > now)
                .map(|l| secs_until(l, now)),
        })
    }

    pub fn clear_now(&self, key: &str) -> Result<(), Failure> {
        self.lock()?.remove(key);
        Ok(())
    }
}

#[async_trait]
impl FailureCounter for InMemoryFailureCounter {
    async fn state(&self, key: &str) -> Result<FailureState, Failure> {
        self.state_now(key)
    }

    async fn add_failure(
        &self,
        key: &str,
        window: Duration,
        lock_for: &(dyn Fn(u32) -> Option<Duration> + Send + Sync),
    ) -> Result<FailureState, Failure> {
        self.add_failure_now(key, window, lock_for)
    }

    async fn clear(&self, key: &str) -> Result<(), Failure> {
        self.clear_now(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_domain::limits::LockoutPolicy;

    #[test]
    fn budgets_refuse_past_the_burst_with_a_retry_after() {
        let limiter = GovernorRateLimiter::new(Quotas {
            sign_up: Quota {
                per_minute: 1,
                burst: 2,
            },
            ..Quotas::default()
        });
        assert_eq!(limiter.decide(Bucket::SignUp, "a"), Decision::Allowed);
        assert_eq!(limiter.decide(Bucket::SignUp, "a"), Decision::Allowed);
        assert!(
            matches!(limiter.decide(Bucket::SignUp, "a"), Decision::Limited { retry_after_secs } if (1..=60).contains(&retry_after_secs))
        );
        assert_eq!(
            limiter.decide(Bucket::SignUp, "b"),
            Decision::Allowed,
            "keys are independent"
        );
        assert_eq!(
            limiter.decide(Bucket::LogIn, "a"),
            Decision::Allowed,
            "buckets are independent"
        );
    }

    #[test]
    fn failures_lock_per_policy_and_clear() {
        let counter = InMemoryFailureCounter::default();
        let policy = LockoutPolicy::account_default();
        let lock = move |n| policy.lock_for(n);
        for _ in 0..4 {
            let state = counter.add_failure_now("k", policy.window, &lock).unwrap();
            assert_eq!(state.locked_for_secs, None);
        }
        let state = counter.add_failure_now("k", policy.window, &lock).unwrap();
        assert_eq!(state.locked_for_secs, Some(1));
        assert_eq!(counter.state_now("k").unwrap().failures, 5);
        counter.clear_now("k").unwrap();
        assert_eq!(counter.state_now("k").unwrap(), FailureState::default());
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_keys() {
        let counter = InMemoryFailureCounter::with_capacity(1_000);
        let never = |_| None;
        for i in 0..10_000 {
            counter
                .add_failure_now(&format!("k{i}"), Duration::minutes(15), &never)
                .unwrap();
        }
        assert!(counter.len() <= 1_000);
    }
}
