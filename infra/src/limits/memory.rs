//! In-process stores with a hard memory cap and O(1) eviction: governor's
//! GCRA over a bounded `quick_cache` state store for request budgets, and a
//! bounded `quick_cache` of failure counters. Past the cap, each insert
//! evicts one cold key (S3-FIFO: keys seen once go first, keys seen again
//! are kept longer), so a flood of distinct clients costs neither memory nor
//! CPU per decision and needs no pruning job.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use governor::clock::{Clock, DefaultClock};
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::{Quota as GovernorQuota, RateLimiter as Governor};
use portcullis_domain::error::Failure;
use portcullis_domain::limits::lockout::secs_from_ms;
use portcullis_domain::limits::{
    Bucket, Charge, Counter, Decision, FailureCounter, FailureState, RateLimiter, Reservation,
    reserve,
};
use quick_cache::sync::{Cache, EntryAction, EntryResult};
use quick_cache::{Weighter, unsync};

use super::{Quota, Quotas};

/// Most clients a request budget keeps, per bucket (about 120 bytes each).
pub const MAX_KEYS: usize = 100_000;

/// Most bytes of keys and counters the failure counter keeps by default
/// (about 200,000 keys of e-mail length).
pub const FAILURE_BYTES: u64 = 32 * 1024 * 1024;

/// What a failure counter entry costs beside its key: the counter, the
/// key's allocation, the cache's slot and bookkeeping.
const ENTRY_OVERHEAD: u64 = 96;

fn governor_quota(quota: Quota) -> GovernorQuota {
    let rate = NonZeroU32::new(quota.per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(quota.burst.max(1)).unwrap_or(NonZeroU32::MIN);
    GovernorQuota::per_minute(rate).allow_burst(burst)
}

/// GCRA state (the theoretical arrival time) per client, at most
/// `capacity` clients.
#[derive(Clone)]
struct CappedStateStore {
    cache: Arc<Cache<String, Nanos>>,
}

impl CappedStateStore {
    fn new(capacity: usize) -> Self {
        Self {
            cache: Arc::new(Cache::new(capacity.max(1))),
        }
    }

    /// Clients held.
    fn len(&self) -> usize {
        self.cache.len()
    }
}

impl StateStore for CappedStateStore {
    type Key = String;

    fn measure_and_replace<T, F, E>(&self, key: &String, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // The shard's write lock makes read-decide-write one step per key.
        let held = self
            .cache
            .entry(key.as_str(), None, |_, tat| match f(Some(*tat)) {
                Ok((decision, next)) => {
                    *tat = next;
                    EntryAction::Retain(Ok(decision))
                }
                Err(limited) => EntryAction::Retain(Err(limited)),
            });
        match held {
            EntryResult::Retained(decision) => decision,
            EntryResult::Vacant(guard) | EntryResult::Replaced(guard, _) => {
                let (decision, next) = f(None)?;
                let _ = guard.insert(next);
                Ok(decision)
            }
            // Never asked for (no removal, no timeout): decide as a new key.
            EntryResult::Removed(..) | EntryResult::Timeout => {
                f(None).map(|(decision, _)| decision)
            }
        }
    }
}

/// One bucket's budgets, and a handle on its store to count what it holds.
struct Budget {
    limiter: Governor<String, CappedStateStore, DefaultClock>,
    store: CappedStateStore,
}

/// GCRA budgets per bucket and client, in process (governor), each bucket
/// holding at most [`MAX_KEYS`] clients.
pub struct GovernorRateLimiter {
    sign_up: Budget,
    log_in: Budget,
    refresh: Budget,
    recovery: Budget,
    recovery_email: Budget,
    clock: DefaultClock,
}

impl GovernorRateLimiter {
    pub fn new(quotas: Quotas) -> Self {
        Self::with_capacity(quotas, MAX_KEYS)
    }

    /// Budgets keeping at most `capacity` clients per bucket.
    pub fn with_capacity(quotas: Quotas, capacity: usize) -> Self {
        let budget = |quota| {
            let store = CappedStateStore::new(capacity);
            Budget {
                limiter: Governor::new(
                    governor_quota(quota),
                    store.clone(),
                    DefaultClock::default(),
                ),
                store,
            }
        };
        Self {
            sign_up: budget(quotas.sign_up),
            log_in: budget(quotas.log_in),
            refresh: budget(quotas.refresh),
            recovery: budget(quotas.recovery),
            recovery_email: budget(quotas.recovery_email),
            clock: DefaultClock::default(),
        }
    }

    fn limiter(&self, bucket: Bucket) -> &Budget {
        match bucket {
            Bucket::SignUp => &self.sign_up,
            Bucket::LogIn => &self.log_in,
            Bucket::Refresh => &self.refresh,
            Bucket::Recovery => &self.recovery,
            Bucket::RecoveryEmail => &self.recovery_email,
        }
    }

    /// Clients held in `bucket`.
    pub fn len_of(&self, bucket: Bucket) -> usize {
        self.limiter(bucket).store.len()
    }

    /// Clients held across buckets.
    pub fn len(&self) -> usize {
        [
            Bucket::SignUp,
            Bucket::LogIn,
            Bucket::Refresh,
            Bucket::Recovery,
            Bucket::RecoveryEmail,
        ]
        .into_iter()
        .map(|bucket| self.len_of(bucket))
        .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The decision for `key`, synchronously (also used by the Redis fallback).
    pub fn decide(&self, bucket: Bucket, key: &str) -> Decision {
        match self.limiter(bucket).limiter.check_key(&key.to_owned()) {
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

/// Weighs a failure counter entry by its key's length.
#[derive(Clone, Copy)]
struct KeyBytes;

impl Weighter<String, Counter> for KeyBytes {
    fn weight(&self, key: &String, _: &Counter) -> u64 {
        ENTRY_OVERHEAD + key.len() as u64
    }
}

type Counters = unsync::Cache<String, Counter, KeyBytes>;

/// Failure counters in process, at most a fixed number of bytes. One lock
/// around the cache makes a reservation over an account and a client one
/// atomic step; each step is O(1).
pub struct InMemoryFailureCounter {
    counters: Mutex<Counters>,
    origin: Instant,
}

impl Default for InMemoryFailureCounter {
    fn default() -> Self {
        Self::with_capacity(FAILURE_BYTES)
    }
}

impl InMemoryFailureCounter {
    /// A counter keeping at most `max_bytes` of keys and counters.
    pub fn with_capacity(max_bytes: u64) -> Self {
        let max_bytes = max_bytes.max(ENTRY_OVERHEAD * 2);
        let estimated = usize::try_from(max_bytes / (ENTRY_OVERHEAD + 32)).unwrap_or(1);
        Self {
            counters: Mutex::new(unsync::Cache::with_weighter(estimated, max_bytes, KeyBytes)),
            origin: Instant::now(),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Counters>, Failure> {
        self.counters
            .lock()
            .map_err(|_| Failure::msg("failure counter lock poisoned"))
    }

    /// Milliseconds on this store's monotonic clock (never 0).
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.counters.lock().map_or(0, |c| c.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held, as weighed against the cap.
    pub fn weight(&self) -> u64 {
        self.counters.lock().map_or(0, |c| c.weight())
    }

    pub fn state_now(&self, key: &str) -> Result<FailureState, Failure> {
        let now = self.now_ms();
        let counters = self.lock()?;
        Ok(counters.peek(key).copied().unwrap_or_default().state(now))
    }

    pub fn reserve_now(&self, charges: &[Charge<'_>]) -> Result<Reservation, Failure> {
        let now = self.now_ms();
        let mut counters = self.lock()?;
        let read: Vec<_> = charges
            .iter()
            .map(|c| (c.policy, counters.get(c.key).copied().unwrap_or_default()))
            .collect();
        Ok(match reserve(&read, now) {
            Ok(next) => {
                for (charge, counter) in charges.iter().zip(&next) {
                    counters.insert(charge.key.to_owned(), *counter);
                }
                Reservation::Reserved(next.iter().map(|c| c.failures).collect())
            }
            Err(left_ms) => Reservation::Refused {
                retry_after_secs: secs_from_ms(left_ms),
            },
        })
    }

    pub fn release_now(&self, key: &str) -> Result<(), Failure> {
        let now = self.now_ms();
        let mut counters = self.lock()?;
        if let Some(mut counter) = counters.peek_mut(key) {
            *counter = counter.refunded(now);
        }
        Ok(())
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

    async fn reserve(&self, charges: &[Charge<'_>]) -> Result<Reservation, Failure> {
        self.reserve_now(charges)
    }

    async fn release(&self, key: &str) -> Result<(), Failure> {
        self.release_now(key)
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
    fn reservations_lock_per_policy_and_clear() {
        let counter = InMemoryFailureCounter::default();
        let policy = LockoutPolicy::account_default();
        let charge = [Charge {
            key: "k",
            policy: &policy,
        }];
        for n in 1..=4 {
            assert_eq!(
                counter.reserve_now(&charge).unwrap(),
                Reservation::Reserved(vec![n])
            );
        }
        assert_eq!(
            counter.reserve_now(&charge).unwrap(),
            Reservation::Reserved(vec![5])
        );
        assert_eq!(
            counter.reserve_now(&charge).unwrap(),
            Reservation::Refused {
                retry_after_secs: 1
            }
        );
        assert_eq!(counter.state_now("k").unwrap().failures, 5);
        counter.release_now("k").unwrap();
        assert_eq!(counter.state_now("k").unwrap().failures, 4);
        counter.clear_now("k").unwrap();
        assert_eq!(counter.state_now("k").unwrap(), FailureState::default());
    }
}
