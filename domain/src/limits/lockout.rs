//! The lockout policy and the counter arithmetic every failure store applies
//! under its own atomicity (in process, in Redis's Lua script, in the test
//! kit). Pure: times are milliseconds on the store's own clock, so the
//! in-process store can use a monotonic clock and Redis its server time.
//!
//! An attempt is *reserved* before its password is checked: it counts as a
//! failure at once, and a key that is locked refuses the reservation and
//! counts nothing. A success gives the reservation back. So parallel guesses
//! get no more checks than the policy allows, and the count, which outlives
//! every lock by a whole window, makes locks grow.

use time::Duration;

use super::FailureState;

/// The most failures any policy counts before it locks a key for its whole
/// window (NIST SP 800-63B-4 §3.2.2: at most 100 consecutive failed attempts).
pub const MAX_FAILURES_CEILING: u32 = 100;

/// The longest slow-down lock, before the long locks start.
const SLOW_DOWN_CAP: Duration = Duration::seconds(60);

/// How consecutive failed log-ins of one key (an account, or a client
/// address) are answered.
///
/// With `n` the failures counted since the last success or since the key was
/// forgotten:
/// - `n < slow_after`: no lock;
/// - `slow_after <= n < lock_after`: a slow-down lock of 1 s, 2 s, 4 s, ...
///   (at most 60 s);
/// - `lock_after <= n < max_failures`: a long lock of `lock_duration`,
///   doubling with each further failure (15 min, 30, 60, ...), at most the
///   window;
/// - `n >= max_failures`: locked for the whole window.
///
/// The count is forgotten only when a whole `window` has passed after both
/// the last failure and the end of its lock, so a lock never outlives its
/// count and at most `max_failures` attempts fit in any window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub slow_after: u32,
    pub lock_after: u32,
    /// The first long lock.
    pub lock_duration: Duration,
    /// How long a count outlives its last failure and its lock.
    pub window: Duration,
    /// At this many failures the key locks for the whole window (at most 100).
    pub max_failures: u32,
}

impl LockoutPolicy {
    /// Per account (normalised email): 5 failures slow down, 10 lock 15
    /// minutes, locks double from there, and 100 is the ceiling per day.
    pub fn account_default() -> Self {
        Self {
            slow_after: 5,
            lock_after: 10,
            lock_duration: Duration::minutes(15),
            window: Duration::days(1),
            max_failures: MAX_FAILURES_CEILING,
        }
    }

    /// Per client address: higher, and forgotten after an hour, since many
    /// people can share one address.
    pub fn client_default() -> Self {
        Self {
            slow_after: 20,
            lock_after: 50,
            lock_duration: Duration::minutes(15),
            window: Duration::hours(1),
            max_failures: MAX_FAILURES_CEILING,
        }
    }

    /// The lock that the `count`-th failure imposes.
    pub fn lock_for(&self, count: u32) -> Option<Duration> {
        let longest = self.window.max(self.lock_duration);
        if count >= self.max_failures {
            Some(longest)
        } else if count >= self.lock_after {
            let doublings = (count - self.lock_after).min(30);
            Some(
                self.lock_duration
                    .saturating_mul(1_i32 << doublings)
                    .min(longest),
            )
        } else if count >= self.slow_after {
            let doublings = (count - self.slow_after).min(6);
            Some(Duration::seconds(1_i64 << doublings).min(SLOW_DOWN_CAP))
        } else {
            None
        }
    }

    /// Whether the `count`-th failure starts the long lock or reaches the
    /// ceiling (an `account_locked` event).
    pub fn locks_at(&self, count: u32) -> bool {
        count == self.lock_after || count == self.max_failures
    }

    /// `counter` charged with one more failure at `now_ms`: its lock is the
    /// longer of the one in force and the one the new count imposes.
    pub fn charge(&self, counter: Counter, now_ms: u64) -> Counter {
        let mut next = counter.at(now_ms);
        next.failures = next.failures.saturating_add(1);
        if let Some(lock) = self.lock_for(next.failures) {
            next.locked_until_ms = next
                .locked_until_ms
                .max(now_ms.saturating_add(millis(lock)));
        }
        next.expires_at_ms = now_ms
            .max(next.locked_until_ms)
            .saturating_add(millis(self.window));
        next
    }

    /// The locks of counts `1..=max_failures`, in milliseconds (0: none): the
    /// schedule a store that cannot call back into Rust (Redis) looks up.
    pub fn schedule_ms(&self) -> Vec<u64> {
        (1..=self.max_failures.max(1))
            .map(|count| self.lock_for(count).map_or(0, millis))
            .collect()
    }
}

/// Whole milliseconds of `duration` (0 when negative).
pub fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.whole_milliseconds()).unwrap_or(0)
}

/// What a store keeps per key, in milliseconds on the store's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counter {
    /// Failures counted (reservations included).
    pub failures: u32,
    /// The lock ends then (0: never locked).
    pub locked_until_ms: u64,
    /// The count is forgotten then.
    pub expires_at_ms: u64,
}

impl Counter {
    /// The counter as it stands at `now_ms`: empty once forgotten.
    pub fn at(self, now_ms: u64) -> Self {
        if now_ms >= self.expires_at_ms {
            Self::default()
        } else {
            self
        }
    }

    /// Milliseconds left of the lock in force at `now_ms`.
    pub fn locked_for_ms(&self, now_ms: u64) -> Option<u64> {
        let left = self.at(now_ms).locked_until_ms.saturating_sub(now_ms);
        (left > 0).then_some(left)
    }

    /// What callers see at `now_ms`.
    pub fn state(&self, now_ms: u64) -> FailureState {
        FailureState {
            failures: self.at(now_ms).failures,
            locked_for_secs: self.locked_for_ms(now_ms).map(secs_from_ms),
        }
    }

    /// One reservation given back at `now_ms`: one failure fewer; a lock it
    /// set runs out, and the count is forgotten when it would have been.
    pub fn refunded(self, now_ms: u64) -> Self {
        let mut next = self.at(now_ms);
        next.failures = next.failures.saturating_sub(1);
        next
    }
}

/// Milliseconds rounded up to whole seconds (at least 1).
pub fn secs_from_ms(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

/// Reserves one attempt over several counters at once, each with the policy
/// that counts it, read at `now_ms`.
///
/// # Errors
/// When any counter is locked: the milliseconds left of the longest lock;
/// nothing is counted.
pub fn reserve(charges: &[(&LockoutPolicy, Counter)], now_ms: u64) -> Result<Vec<Counter>, u64> {
    let longest = charges
        .iter()
        .filter_map(|(_, counter)| counter.locked_for_ms(now_ms))
        .max();
    if let Some(left) = longest {
        return Err(left);
    }
    Ok(charges
        .iter()
        .map(|(policy, counter)| policy.charge(*counter, now_ms))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: u64 = 60_000;
    const DAY: u64 = 24 * 60 * MINUTE;

    #[test]
    fn account_failures_slow_down_then_lock_with_growing_locks() {
        let policy = LockoutPolicy::account_default();
        let locks: Vec<Option<Duration>> = (1..=18).map(|n| policy.lock_for(n)).collect();
        assert_eq!(locks[..4], [None; 4]);
        let s = Duration::seconds;
        let m = Duration::minutes;
        let h = Duration::hours;
        assert_eq!(
            locks[4..],
            [
                Some(s(1)),
                Some(s(2)),
                Some(s(4)),
                Some(s(8)),
                Some(s(16)),
                Some(m(15)),
                Some(m(30)),
                Some(h(1)),
                Some(h(2)),
                Some(h(4)),
                Some(h(8)),
                Some(h(16)),
                Some(h(24)),
                Some(h(24)),
            ]
        );
        assert_eq!(policy.lock_for(99), Some(h(24)));
        assert_eq!(policy.lock_for(100), Some(h(24)));
        assert!(policy.locks_at(10) && policy.locks_at(100));
        assert!(!policy.locks_at(11));
    }

    #[test]
    fn client_locks_grow_up_to_their_one_hour_window() {
        let policy = LockoutPolicy::client_default();
        assert_eq!(policy.lock_for(19), None);
        assert_eq!(policy.lock_for(20), Some(Duration::seconds(1)));
        assert_eq!(policy.lock_for(49), Some(Duration::seconds(60)));
        assert_eq!(policy.lock_for(50), Some(Duration::minutes(15)));
        assert_eq!(policy.lock_for(52), Some(Duration::hours(1)));
        assert_eq!(policy.lock_for(500), Some(Duration::hours(1)));
    }

    #[test]
    fn the_ceiling_locks_for_the_whole_window_whatever_the_other_settings() {
        let policy = LockoutPolicy {
            slow_after: 1,
            lock_after: 100,
            lock_duration: Duration::seconds(1),
            window: Duration::days(1),
            max_failures: 100,
        };
        assert_eq!(policy.lock_for(99), Some(Duration::seconds(60)));
        assert_eq!(policy.lock_for(100), Some(Duration::days(1)));
        assert_eq!(policy.schedule_ms().len(), 100);
        assert_eq!(policy.schedule_ms()[99], DAY);
    }

    /// Waits out each lock as soon as it ends, for a day: the most guesses
    /// an attacker gets. The count never expires under it.
    fn attempts_in(policy: &LockoutPolicy, span_ms: u64) -> u32 {
        let mut counter = Counter::default();
        let mut now = 0;
        let mut attempts = 0;
        while now < span_ms {
            match reserve(&[(policy, counter)], now) {
                Ok(next) => {
                    counter = next[0];
                    attempts += 1;
                }
                Err(left) => now += left,
            }
        }
        attempts
    }

    #[test]
    fn an_account_takes_at_most_16_guesses_on_its_first_day_and_never_100() {
        let policy = LockoutPolicy::account_default();
        // 1-5 at once, 6-10 within 31 s, then after locks of 15 min, 30 min,
        // 1 h, 2 h, 4 h and 8 h: the 16th after 15 h 45 min locks for 16 h.
        assert_eq!(attempts_in(&policy, DAY), 16);
        // Then one a day: the count outlives every lock.
        assert_eq!(attempts_in(&policy, 10 * DAY), 16 + 9);
        // Even the most lenient settings stop at the ceiling.
        let lenient = LockoutPolicy {
            slow_after: 100,
            lock_after: 100,
            lock_duration: Duration::seconds(1),
            window: Duration::days(1),
            max_failures: 100,
        };
        assert_eq!(attempts_in(&lenient, DAY), 100);
    }

    #[test]
    fn a_count_outlives_its_lock_by_a_whole_window() {
        let policy = LockoutPolicy::account_default();
        let mut counter = Counter::default();
        for n in 0..10 {
            counter = policy.charge(counter, n);
        }
        assert_eq!(counter.failures, 10);
        assert_eq!(counter.locked_until_ms, 9 + 15 * MINUTE);
        assert_eq!(counter.expires_at_ms, 9 + 15 * MINUTE + DAY);
        let after_the_lock = 10 + 15 * MINUTE;
        assert_eq!(counter.locked_for_ms(after_the_lock), None);
        assert_eq!(counter.state(after_the_lock).failures, 10);
        let next = policy.charge(counter, after_the_lock);
        assert_eq!(next.failures, 11);
        assert_eq!(next.locked_for_ms(after_the_lock), Some(30 * MINUTE));
        assert_eq!(counter.at(counter.expires_at_ms), Counter::default());
    }

    #[test]
    fn a_reservation_over_a_locked_key_counts_nothing_anywhere() {
        let account = LockoutPolicy::account_default();
        let client = LockoutPolicy::client_default();
        let mut locked = Counter::default();
        for _ in 0..10 {
            locked = account.charge(locked, 0);
        }
        let free = Counter::default();
        assert_eq!(
            reserve(&[(&account, locked), (&client, free)], 1_000),
            Err(15 * MINUTE - 1_000)
        );
        let both = reserve(&[(&account, free), (&client, free)], 1_000).unwrap();
        assert_eq!(both[0].failures, 1);
        assert_eq!(both[1].failures, 1);
    }

    #[test]
    fn a_refund_gives_back_one_failure_and_leaves_the_lock_to_run_out() {
        let policy = LockoutPolicy::account_default();
        let mut counter = Counter::default();
        for _ in 0..5 {
            counter = policy.charge(counter, 0);
        }
        let refunded = counter.refunded(10);
        assert_eq!(refunded.failures, 4);
        assert_eq!(refunded.locked_for_ms(10), Some(990));
        assert_eq!(Counter::default().refunded(0), Counter::default());
    }

    #[test]
    fn a_charge_never_shortens_a_lock_in_force() {
        let long = LockoutPolicy {
            slow_after: 1,
            lock_after: 1,
            lock_duration: Duration::minutes(15),
            window: Duration::days(1),
            max_failures: 100,
        };
        let short = LockoutPolicy {
            slow_after: 1,
            lock_after: 50,
            ..long
        };
        let locked = long.charge(Counter::default(), 0);
        let charged = short.charge(locked, 1_000);
        assert_eq!(charged.locked_until_ms, 15 * MINUTE);
    }
}
