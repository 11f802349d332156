//! Abuse limits: the in-process stores, the Redis stores shared by
//! instances, and the fallback from Redis to the process. (The background
//! audit writer is in `audit.rs`.)
//!
//! Redis is found through `PORTCULLIS_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`). The tests that need it are `#[ignore]`d so
//! `cargo test` works on a machine without Redis; `cargo test --
//! --include-ignored` runs them, and an unreachable server then fails them.
//! Each Redis test works under a key prefix of its own, so tests never share
//! a budget or a counter, and every key they leave behind expires.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration as StdDuration;

use portcullis_domain::error::Failure;
use portcullis_domain::limits::{
    Bucket, Charge, Decision, FailureCounter, FailureState, LockoutPolicy, RateLimiter, Reservation,
};
use portcullis_infra::limits::{
    FallbackFailures, FallbackLimiter, GovernorRateLimiter, InMemoryFailureCounter, MAX_KEYS,
    Quota, Quotas, RedisFailureCounter, RedisRateLimiter, connect_redis,
};
use time::Duration;
use tokio::task::JoinSet;
use uuid::Uuid;

const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Nothing listens there: connections are refused at once.
const UNREACHABLE_REDIS_URL: &str = "redis://127.0.0.1:1";

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// Sign-up allows a burst of `burst` and then one request a minute, so
/// nothing refills while a test runs; the other buckets keep their defaults.
fn sign_up_burst(burst: u32) -> Quotas {
    Quotas {
        sign_up: Quota {
            per_minute: 1,
            burst,
        },
        ..Quotas::default()
    }
}

/// Spends `n` requests of `key`'s sign-up budget, one after the other.
async fn spend(limiter: &dyn RateLimiter, key: &str, n: usize) -> Vec<Decision> {
    let mut decisions = Vec::with_capacity(n);
    for _ in 0..n {
        decisions.push(
            limiter
                .check(Bucket::SignUp, key)
                .await
                .expect("a decision"),
        );
    }
    decisions
}

fn allowed(decisions: &[Decision]) -> usize {
    decisions
        .iter()
        .filter(|d| matches!(d, Decision::Allowed))
        .count()
}

/// Every refusal of a one-a-minute budget says to come back within a minute.
fn assert_retry_after_within_a_minute(decisions: &[Decision]) {
    for decision in decisions {
        if let Decision::Limited { retry_after_secs } = decision {
            assert!(
                (1..=60).contains(retry_after_secs),
                "retry after {retry_after_secs}s"
            );
        }
    }
}

/// A policy without slow-down: `lock_after` attempts, then a 15-minute lock.
fn locks_after(lock_after: u32) -> LockoutPolicy {
    LockoutPolicy {
        slow_after: lock_after,
        lock_after,
        lock_duration: Duration::minutes(15),
        window: Duration::days(1),
        max_failures: 100,
    }
}

/// Reserves one attempt on `key` under `policy`.
async fn reserve(
    counter: &dyn FailureCounter,
    key: &str,
    policy: &LockoutPolicy,
) -> Result<Reservation, Failure> {
    counter.reserve(&[Charge { key, policy }]).await
}

/// The lock `policy` imposes at the `count`-th failure, in whole seconds.
fn lock_secs(policy: &LockoutPolicy, count: u32) -> Option<u64> {
    policy
        .lock_for(count)
        .map(|lock| u64::try_from(lock.whole_seconds()).unwrap())
}

/// Reserves attempts one by one up to the policy's long lock, checking
/// after each the count and the lock the policy asks for; then one more is
/// refused and counts nothing.
async fn fail_until_locked(counter: &dyn FailureCounter, key: &str, policy: &LockoutPolicy) {
    for count in 1..=policy.lock_after {
        let reserved = reserve(counter, key, policy).await.expect("a reservation");
        assert_eq!(
            reserved,
            Reservation::Reserved(vec![count]),
            "attempt {count}"
        );
        assert_eq!(
            counter.state(key).await.unwrap(),
            FailureState {
                failures: count,
                locked_for_secs: lock_secs(policy, count),
            },
            "after attempt {count}"
        );
    }
    assert_refused(reserve(counter, key, policy).await.unwrap(), 900);
    assert_eq!(
        counter.state(key).await.unwrap().failures,
        policy.lock_after
    );
}

/// A refusal with a lock of at most `max_secs` left.
fn assert_refused(reservation: Reservation, max_secs: u64) {
    match reservation {
        Reservation::Refused { retry_after_secs } => {
            assert!(
                (1..=max_secs).contains(&retry_after_secs),
                "{reservation:?}"
            );
        }
        Reservation::Reserved(_) => panic!("reserved, expected a refusal"),
    }
}

/// A lock in force, no longer than `max_secs`.
fn assert_locked(state: FailureState, failures: u32, max_secs: u64) {
    assert_eq!(state.failures, failures, "{state:?}");
    let left = state.locked_for_secs.expect("locked");
    assert!((1..=max_secs).contains(&left), "{state:?}");
}

/// Fires `n` reservations of one key at once, alternating between
/// `counters`; returns how many were reserved.
async fn concurrent_reservations(
    counters: &[Arc<dyn FailureCounter>],
    key: &'static str,
    policy: LockoutPolicy,
    n: usize,
) -> usize {
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let counter = Arc::clone(&counters[i % counters.len()]);
        tasks.spawn(async move { reserve(counter.as_ref(), key, &policy).await });
    }
    tasks
        .join_all()
        .await
        .into_iter()
        .filter(|r| matches!(r.as_ref().expect("an answer"), Reservation::Reserved(_)))
        .count()
}

fn redis_url() -> String {
    std::env::var("PORTCULLIS_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned())
}

/// A key prefix no other test uses.
fn unique_prefix() -> String {
    format!("test-{}", Uuid::new_v4())
}

/// A plain connection to the test Redis, to look at keys from outside.
async fn raw_redis() -> redis::aio::MultiplexedConnection {
    let url = redis_url();
    let client = redis::Client::open(url.as_str()).expect("a Redis URL");
    client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|error| {
            panic!(
                "Redis is unreachable at {url} ({error}); start it or run without --include-ignored"
            )
        })
}

/// The keys under `prefix`.
async fn keys_under(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(conn)
        .await
        .unwrap();
    keys.sort();
    keys
}

/// Deletes whatever a test left under `prefix` (it would expire anyway).
async fn forget(prefix: &str) {
    let mut conn = raw_redis().await;
    let keys = keys_under(&mut conn, prefix).await;
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

// ---------------------------------------------------------------------------
// In process: governor budgets
// ---------------------------------------------------------------------------

#[tokio::test]
async fn governor_allows_the_burst_then_limits_with_a_retry_after() {
    let limiter = GovernorRateLimiter::new(sign_up_burst(3));

    let decisions = spend(&limiter, "198.51.100.1", 6).await;

    assert!(
        decisions[..3].iter().all(|d| *d == Decision::Allowed),
        "{decisions:?}"
    );
    assert!(
        decisions[3..]
            .iter()
            .all(|d| matches!(d, Decision::Limited { .. })),
        "{decisions:?}"
    );
    assert_retry_after_within_a_minute(&decisions);
}

#[tokio::test]
async fn governor_keys_and_buckets_are_independent() {
    let limiter = GovernorRateLimiter::new(sign_up_burst(2));
    assert_eq!(allowed(&spend(&limiter, "198.51.100.1", 5).await), 2);

    assert_eq!(
        allowed(&spend(&limiter, "198.51.100.2", 5).await),
        2,
        "another client has a budget of its own"
    );
    for bucket in [Bucket::LogIn, Bucket::Refresh] {
        assert_eq!(
            limiter.check(bucket, "198.51.100.1").await.unwrap(),
            Decision::Allowed,
            "{bucket:?} has a budget of its own"
        );
    }
    assert_eq!(limiter.len(), 4, "one entry per bucket and client");
}

// ---------------------------------------------------------------------------
// In process: failure counters
// ---------------------------------------------------------------------------

#[tokio::test]
async fn memory_reservations_count_then_lock_and_a_locked_key_counts_nothing() {
    let counter = InMemoryFailureCounter::default();
    let policy = locks_after(3);

    fail_until_locked(&counter, "ada@example.com", &policy).await;

    assert_eq!(
        counter.state("bob@example.com").await.unwrap(),
        FailureState::default(),
        "keys are independent"
    );
    // One reservation over a locked and a free key counts neither.
    let both = [
        Charge {
            key: "bob@example.com",
            policy: &policy,
        },
        Charge {
            key: "ada@example.com",
            policy: &policy,
        },
    ];
    assert_refused(counter.reserve(&both).await.unwrap(), 900);
    assert_eq!(counter.state("bob@example.com").await.unwrap().failures, 0);
}

#[tokio::test]
async fn memory_release_gives_one_back_and_clear_forgets_counts_and_locks() {
    let counter = InMemoryFailureCounter::default();
    let policy = locks_after(3);
    fail_until_locked(&counter, "ada@example.com", &policy).await;
    reserve(&counter, "bob@example.com", &policy).await.unwrap();
    reserve(&counter, "bob@example.com", &policy).await.unwrap();

    counter.release("bob@example.com").await.unwrap();
    counter.release("ada@example.com").await.unwrap();
    counter.clear("ada@example.com").await.unwrap();

    assert_eq!(
        counter.state("bob@example.com").await.unwrap().failures,
        1,
        "one given back"
    );
    assert_eq!(
        counter.state("ada@example.com").await.unwrap(),
        FailureState::default()
    );
    assert_eq!(
        reserve(&counter, "ada@example.com", &policy).await.unwrap(),
        Reservation::Reserved(vec![1]),
        "counting starts over"
    );
    counter.clear("never-seen").await.unwrap();
    counter.release("never-seen").await.unwrap();
}

#[tokio::test]
async fn memory_counts_outlive_their_lock_so_the_next_lock_is_longer() {
    let counter = InMemoryFailureCounter::default();
    let policy = LockoutPolicy {
        slow_after: 2,
        lock_after: 2,
        lock_duration: Duration::milliseconds(20),
        window: Duration::days(1),
        max_failures: 100,
    };
    reserve(&counter, "ada", &policy).await.unwrap();
    reserve(&counter, "ada", &policy).await.unwrap();

    // Longer than the lock: the lock is gone, the count is not.
    tokio::time::sleep(StdDuration::from_millis(60)).await;

    assert_eq!(
        counter.state("ada").await.unwrap(),
        FailureState {
            failures: 2,
            locked_for_secs: None
        }
    );
    assert_eq!(
        reserve(&counter, "ada", &policy).await.unwrap(),
        Reservation::Reserved(vec![3])
    );
    assert_eq!(policy.lock_for(3), Some(Duration::milliseconds(40)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_reservations_in_parallel_get_no_more_than_the_budget() {
    let counter: Arc<dyn FailureCounter> = Arc::new(InMemoryFailureCounter::default());
    let policy = locks_after(10);

    let reserved = concurrent_reservations(std::slice::from_ref(&counter), "ada", policy, 60).await;

    assert_eq!(reserved, 10);
    assert_locked(counter.state("ada").await.unwrap(), 10, 900);
}

#[test]
fn memory_stores_stay_at_their_cap_under_200k_distinct_keys() {
    let limiter = GovernorRateLimiter::new(Quotas::default());
    let counter = InMemoryFailureCounter::with_capacity(1024 * 1024);
    let policy = locks_after(3);
    // A key an attacker keeps guessing at, locked before the flood.
    for _ in 0..3 {
        counter
            .reserve_now(&[Charge {
                key: "account:victim@example.com",
                policy: &policy,
            }])
            .unwrap();
    }

    for i in 0..200_000u32 {
        let client = format!("2001:db8:{:x}:{:x}::", i >> 16, i & 0xffff);
        assert_eq!(limiter.decide(Bucket::LogIn, &client), Decision::Allowed);
        counter
            .reserve_now(&[Charge {
                key: &format!("account:flood-{i}@example.com"),
                policy: &policy,
            }])
            .unwrap();
        if i % 1_000 == 0 {
            assert_refused(
                counter
                    .reserve_now(&[Charge {
                        key: "account:victim@example.com",
                        policy: &policy,
                    }])
                    .unwrap(),
                900,
            );
        }
    }

    assert!(
        limiter.len_of(Bucket::LogIn) <= MAX_KEYS,
        "{} clients held",
        limiter.len_of(Bucket::LogIn)
    );
    assert!(limiter.len_of(Bucket::LogIn) > MAX_KEYS / 2);
    assert!(
        counter.weight() <= 1024 * 1024,
        "{} bytes",
        counter.weight()
    );
    assert!(counter.len() < 10_000, "{} keys", counter.len());
    assert_locked(
        counter.state_now("account:victim@example.com").unwrap(),
        3,
        900,
    );
}

// ---------------------------------------------------------------------------
// Redis: shared across instances
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Redis: run with --include-ignored (CI does)"]
async fn redis_limiters_on_one_prefix_share_one_budget() {
    let url = redis_url();
    let prefix = unique_prefix();
    let quotas = sign_up_burst(5);
    // Two instances: two handles, two connections, one prefix.
    let first = Arc::new(RedisRateLimiter::new(
        connect_redis(&url, &prefix).unwrap(),
        quotas,
    ));
    let second = Arc::new(RedisRateLimiter::new(
        connect_redis(&url, &prefix).unwrap(),
        quotas,
    ));

    let mut checks = JoinSet::new();
    for n in 0..20 {
        let limiter = Arc::clone(if n % 2 == 0 { &first } else { &second });
        checks.spawn(async move { limiter.check(Bucket::SignUp, "198.51.100.1").await });
    }
    let decisions: Vec<Decision> = checks
        .join_all()
        .await
        .into_iter()
        .map(|d| d.expect("Redis answers"))
        .collect();

    assert_eq!(allowed(&decisions), 5, "{decisions:?}");
    assert_retry_after_within_a_minute(&decisions);
    assert_eq!(
        allowed(&spend(first.as_ref(), "198.51.100.2", 7).await),
        5,
        "another client has a budget of its own"
    );
    assert_eq!(
        second.check(Bucket::LogIn, "198.51.100.1").await.unwrap(),
        Decision::Allowed,
        "another bucket has a budget of its own"
    );
    let elsewhere = RedisRateLimiter::new(connect_redis(&url, &unique_prefix()).unwrap(), quotas);
    assert_eq!(
        elsewhere
            .check(Bucket::SignUp, "198.51.100.1")
            .await
            .unwrap(),
        Decision::Allowed,
        "another prefix shares nothing"
    );
    forget(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Redis: run with --include-ignored (CI does)"]
async fn redis_failure_counters_share_counts_and_locks() {
    let url = redis_url();
    let prefix = unique_prefix();
    let first = RedisFailureCounter::new(connect_redis(&url, &prefix).unwrap());
    let second = RedisFailureCounter::new(connect_redis(&url, &prefix).unwrap());
    let policy = locks_after(4);

    // Attempts land on either instance; both count the same sequence.
    for count in 1..=policy.lock_after {
        let counter = if count % 2 == 0 { &first } else { &second };
        assert_eq!(
            reserve(counter, "ada@example.com", &policy).await.unwrap(),
            Reservation::Reserved(vec![count])
        );
    }
    for counter in [&first, &second] {
        assert_refused(
            reserve(counter, "ada@example.com", &policy).await.unwrap(),
            900,
        );
        assert_locked(
            counter.state("ada@example.com").await.unwrap(),
            policy.lock_after,
            900,
        );
        assert_eq!(
            counter.state("bob@example.com").await.unwrap(),
            FailureState::default()
        );
    }

    first.clear("ada@example.com").await.unwrap();
    assert_eq!(
        second.state("ada@example.com").await.unwrap(),
        FailureState::default(),
        "a success on one instance clears the lock on all"
    );
    forget(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Redis: run with --include-ignored (CI does)"]
async fn redis_reservations_slow_down_then_lock_per_policy() {
    let counter = RedisFailureCounter::new(connect_redis(&redis_url(), &unique_prefix()).unwrap());
    let policy = locks_after(3);
    fail_until_locked(&counter, "ada@example.com", &policy).await;
    // The slow-down: the attempt that reaches it is let through, the next
    // is refused while it lasts.
    let slow = LockoutPolicy::account_default();
    for count in 1..=slow.slow_after {
        assert_eq!(
            reserve(&counter, "bob@example.com", &slow).await.unwrap(),
            Reservation::Reserved(vec![count])
        );
    }
    assert_refused(
        reserve(&counter, "bob@example.com", &slow).await.unwrap(),
        1,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Redis: run with --include-ignored (CI does)"]
async fn redis_reservations_in_parallel_across_instances_get_no_more_than_the_budget() {
    let url = redis_url();
    let prefix = unique_prefix();
    let counters: Vec<Arc<dyn FailureCounter>> = (0..2)
        .map(|_| {
            Arc::new(RedisFailureCounter::new(
                connect_redis(&url, &prefix).unwrap(),
            )) as Arc<dyn FailureCounter>
        })
        .collect();
    let policy = locks_after(10);

    let reserved = concurrent_reservations(&counters, "ada", policy, 60).await;

    assert_eq!(reserved, 10, "the tenth reservation locks the rest out");
    assert_locked(counters[1].state("ada").await.unwrap(), 10, 900);
    forget(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Redis: run with --include-ignored (CI does)"]
async fn redis_a_shorter_lock_never_overwrites_a_longer_one() {
    let counter = RedisFailureCounter::new(connect_redis(&redis_url(), &unique_prefix()).unwrap());
    let long = locks_after(1);
    let short = LockoutPolicy {
        slow_after: 1,
        ..locks_after(50)
    };
    reserve(&counter, "ada", &long).await.unwrap();

    // A policy whose next lock is one second, a release, and a reservation
    // over a free and the locked key: the 15-minute lock stands.
    assert_refused(reserve(&counter, "ada", &short).await.unwrap(), 900);
    counter.release("ada").await.unwrap();
    let both = [
        Charge {
            key: "bob",
            policy: &short,
        },
        Charge {
            key: "ada",
            policy: &short,
        },
    ];
    assert_refused(counter.reserve(&both).await.unwrap(), 900);

    let state = counter.state("ada").await.unwrap();
    assert_eq!(state.failures, 0, "released");
    assert!(state.locked_for_secs.unwrap() > 850, "{state:?}");
    assert_eq!(counter.state("bob").await.unwrap(), FailureState::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Redis: run with --include-ignored (CI does)"]
async fn redis_keys_carry_ttls() {
    let url = redis_url();
    let prefix = unique_prefix();
    let limiter = RedisRateLimiter::new(connect_redis(&url, &prefix).unwrap(), sign_up_burst(5));
    let counter = RedisFailureCounter::new(connect_redis(&url, &prefix).unwrap());
    let policy = LockoutPolicy {
        slow_after: 1,
        lock_after: 2,
        lock_duration: Duration::minutes(5),
        window: Duration::minutes(10),
        max_failures: 100,
    };
    let mut conn = raw_redis().await;

    limiter.check(Bucket::SignUp, "198.51.100.1").await.unwrap();
    reserve(&counter, "ada@example.com", &policy).await.unwrap();

    let keys = keys_under(&mut conn, &prefix).await;
    assert_eq!(keys.len(), 2, "a budget and a counter: {keys:?}");
    // The longest anything may live: a lock (1 s here) and then the window.
    let longest_ms = (policy.window + Duration::seconds(1)).whole_milliseconds();
    for key in &keys {
        let ttl_ms: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            ttl_ms > 0 && i128::from(ttl_ms) <= longest_ms,
            "{key} has PTTL {ttl_ms}"
        );
    }

    // Clearing an account drops its key; the budget keeps its TTL.
    counter.clear("ada@example.com").await.unwrap();
    let left = keys_under(&mut conn, &prefix).await;
    assert_eq!(left.len(), 1, "{left:?}");
    let ttl_ms: i64 = redis::cmd("PTTL")
        .arg(&left[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl_ms > 0, "{} has PTTL {ttl_ms}", left[0]);
    forget(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Redis: run with --include-ignored (CI does)"]
async fn fallbacks_over_a_reachable_redis_share_its_counts() {
    let url = redis_url();
    let prefix = unique_prefix();
    let quotas = sign_up_burst(3);
    let instance = || {
        let redis = connect_redis(&url, &prefix).unwrap();
        (
            FallbackLimiter::new(
                RedisRateLimiter::new(redis.clone(), quotas),
                GovernorRateLimiter::new(quotas),
            ),
            FallbackFailures::new(
                RedisFailureCounter::new(redis),
                InMemoryFailureCounter::default(),
            ),
        )
    };
    let (first_limiter, first_failures) = instance();
    let (second_limiter, second_failures) = instance();

    let mut decisions = spend(&first_limiter, "198.51.100.1", 2).await;
    decisions.extend(spend(&second_limiter, "198.51.100.1", 2).await);
    assert_eq!(allowed(&decisions), 3, "one budget, not one per instance");

    let policy = locks_after(3);
    for _ in 0..policy.lock_after {
        reserve(&first_failures, "ada@example.com", &policy)
            .await
            .unwrap();
    }
    assert_refused(
        reserve(&second_failures, "ada@example.com", &policy)
            .await
            .unwrap(),
        900,
    );
    second_failures.clear("ada@example.com").await.unwrap();
    assert_eq!(
        first_failures.state("ada@example.com").await.unwrap(),
        FailureState::default()
    );
    forget(&prefix).await;
}

// ---------------------------------------------------------------------------
// Redis unreachable: the fallbacks answer from the process
// ---------------------------------------------------------------------------

#[tokio::test]
async fn fallback_limiter_answers_locally_when_redis_is_unreachable() {
    let redis = connect_redis(UNREACHABLE_REDIS_URL, &unique_prefix()).unwrap();
    assert!(redis.ping().await.is_err(), "nothing should answer there");
    let quotas = sign_up_burst(3);
    let limiter = FallbackLimiter::new(
        RedisRateLimiter::new(redis, quotas),
        GovernorRateLimiter::new(quotas),
    );

    // `spend` fails the test on any error: the fallback never returns one.
    let decisions = spend(&limiter, "198.51.100.1", 5).await;

    assert_eq!(
        &decisions[..3],
        &[Decision::Allowed, Decision::Allowed, Decision::Allowed]
    );
    assert!(
        decisions[3..]
            .iter()
            .all(|d| matches!(d, Decision::Limited { .. })),
        "{decisions:?}"
    );
    assert_retry_after_within_a_minute(&decisions);
    assert_eq!(
        limiter.check(Bucket::SignUp, "198.51.100.2").await.unwrap(),
        Decision::Allowed
    );
}

#[tokio::test]
async fn fallback_failures_lock_locally_when_redis_is_unreachable() {
    let redis = connect_redis(UNREACHABLE_REDIS_URL, &unique_prefix()).unwrap();
    let failures = FallbackFailures::new(
        RedisFailureCounter::new(redis),
        InMemoryFailureCounter::default(),
    );
    let policy = locks_after(3);

    assert_eq!(
        failures.state("ada@example.com").await.unwrap(),
        FailureState::default()
    );
    fail_until_locked(&failures, "ada@example.com", &policy).await;

    failures.release("ada@example.com").await.unwrap();
    assert_locked(
        failures.state("ada@example.com").await.unwrap(),
        policy.lock_after - 1,
        900,
    );
    failures.clear("ada@example.com").await.unwrap();
    assert_eq!(
        failures.state("ada@example.com").await.unwrap(),
        FailureState::default()
    );
}

// ---------------------------------------------------------------------------
// Redis hangs, then returns
// ---------------------------------------------------------------------------

/// A TCP proxy in front of Redis that can black-hole traffic: while down it
/// accepts connections and forwards nothing, so commands hang (the harshest
/// fault: nothing is refused, nothing answers).
struct RedisProxy {
    addr: std::net::SocketAddr,
    up: tokio::sync::watch::Sender<bool>,
}

impl RedisProxy {
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, watch) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut watch = watch.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if *watch.borrow() {
                        let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                            _ = watch.wait_for(|up| !*up) => {}
                        }
                    }
                    // Down: hold the connection silently until Redis is back,
                    // then drop it so the client reconnects.
                    let _ = watch.wait_for(|up| *up).await;
                });
            }
        });
        Self { addr, up }
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

/// `host:port` of a `redis://host:port[/db]` URL.
fn redis_host_port(url: &str) -> String {
    let rest = url.trim_start_matches("redis://");
    rest.split('/').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Redis: run with --include-ignored (CI does)"]
async fn fallbacks_ride_out_a_hanging_redis_and_use_it_again_when_it_returns() {
    let url = redis_url();
    let prefix = unique_prefix();
    let proxy = RedisProxy::start(redis_host_port(&url)).await;
    let via_proxy = connect_redis(&format!("redis://{}", proxy.addr), &prefix).unwrap();
    let direct = connect_redis(&url, &prefix).unwrap();
    let instance = FallbackFailures::new(
        RedisFailureCounter::new(via_proxy),
        InMemoryFailureCounter::default(),
    );
    let other = FallbackFailures::new(
        RedisFailureCounter::new(direct),
        InMemoryFailureCounter::default(),
    );
    let policy = locks_after(3);

    // Up: one count, seen by both.
    reserve(&instance, "ada@example.com", &policy)
        .await
        .unwrap();
    assert_eq!(other.state("ada@example.com").await.unwrap().failures, 1);

    // Hanging: the instance still answers (never an error), from memory.
    proxy.set_up(false);
    fail_until_locked(&instance, "bob@example.com", &policy).await;
    assert_locked(
        instance.state("bob@example.com").await.unwrap(),
        policy.lock_after,
        900,
    );
    assert_eq!(
        other.state("bob@example.com").await.unwrap(),
        FailureState::default(),
        "counted locally while Redis hung"
    );

    // Back: the instance returns to Redis by itself (after its back-off)
    // and sees what another instance stored there.
    proxy.set_up(true);
    fail_until_locked(&other, "carol@example.com", &policy).await;
    let give_up = std::time::Instant::now() + StdDuration::from_secs(60);
    loop {
        let state = instance.state("carol@example.com").await.unwrap();
        if state.locked_for_secs.is_some() {
            assert_eq!(state.failures, policy.lock_after);
            break;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "the instance never went back to Redis"
        );
        tokio::time::sleep(StdDuration::from_millis(250)).await;
    }
    forget(&prefix).await;
}
