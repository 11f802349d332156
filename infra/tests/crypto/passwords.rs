//! `Argon2Hasher`: hashing, verifying, rehash hints, the dummy verification
//! and the bounded worker pool.

use std::time::{Duration as StdDuration, Instant};

use portcullis_domain::error::Failure;
use portcullis_domain::password::{Password, PasswordHash, PasswordHasher as _};
use portcullis_infra::crypto::{Argon2Backend, Argon2Hasher, HashPoolConfig};

const BACKENDS: [Argon2Backend; 2] = [Argon2Backend::Fast, Argon2Backend::Reference];

fn hasher() -> Argon2Hasher {
    hasher_on(Argon2Backend::default())
}

fn hasher_on(backend: Argon2Backend) -> Argon2Hasher {
    Argon2Hasher::new(HashPoolConfig {
        workers: 2,
        queue: 8,
        backend,
    })
    .unwrap()
}

fn password(text: &str) -> Password {
    Password::new(text.to_owned())
}

fn hash_with(params: argon2::Params, algorithm: argon2::Algorithm, text: &str) -> PasswordHash {
    use argon2::PasswordHasher as _;
    let phc = argon2::Argon2::new(algorithm, argon2::Version::V0x13, params)
        .hash_password(text.as_bytes())
        .unwrap();
    PasswordHash::new(phc.to_string())
}

#[tokio::test]
async fn a_hashed_password_verifies_and_needs_no_rehash() {
    for backend in BACKENDS {
        let hasher = hasher_on(backend);
        let secret = password("tulips in the rain 🌧 at noon");

        let hash = hasher.hash(&secret).await.unwrap();
        let verification = hasher.verify(&secret, &hash).await.unwrap();

        assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verification.matches, "{backend:?}");
        assert!(!verification.needs_rehash, "{backend:?}");
    }
}

#[tokio::test]
async fn two_hashes_of_one_password_differ_by_salt() {
    let hasher = hasher();
    let secret = password("tulips in the rain at noon");

    let first = hasher.hash(&secret).await.unwrap();
    let second = hasher.hash(&secret).await.unwrap();

    assert_ne!(first, second);
    // 16 bytes of salt: 22 characters of unpadded base64.
    let salt = first.as_str().split('$').nth(4).unwrap();
    assert_eq!(salt.len(), 22);
}

#[tokio::test]
async fn a_wrong_password_does_not_match() {
    for backend in BACKENDS {
        let hasher = hasher_on(backend);
        let hash = hasher
            .hash(&password("tulips in the rain at noon"))
            .await
            .unwrap();

        let verification = hasher
            .verify(&password("tulips in the rain at noon "), &hash)
            .await
            .unwrap();

        assert!(!verification.matches, "{backend:?}");
    }
}

#[tokio::test]
async fn hashes_with_other_settings_match_and_ask_for_a_rehash() {
    let text = "correct horse battery staple";
    let older = [
        hash_with(
            argon2::Params::new(4096, 2, 1, Some(32)).unwrap(),
            argon2::Algorithm::Argon2id,
            text,
        ),
        hash_with(
            argon2::Params::new(19_456, 3, 1, Some(32)).unwrap(),
            argon2::Algorithm::Argon2id,
            text,
        ),
        hash_with(
            argon2::Params::new(19_456, 2, 1, Some(32)).unwrap(),
            argon2::Algorithm::Argon2i,
            text,
        ),
    ];

    for backend in BACKENDS {
        let hasher = hasher_on(backend);
        for hash in &older {
            let verification = hasher.verify(&password(text), hash).await.unwrap();
            assert!(verification.matches, "{backend:?}");
            assert!(verification.needs_rehash, "{backend:?}");
        }
    }
}

#[tokio::test]
async fn a_stored_hash_that_is_not_phc_is_an_unexpected_error() {
    for backend in BACKENDS {
        let result = hasher_on(backend)
            .verify(
                &password("whatever it is"),
                &PasswordHash::new("not a hash".to_owned()),
            )
            .await;
        assert!(matches!(result, Err(Failure::Unexpected(_))), "{backend:?}");
    }
}

/// A stored string may name any cost; one that asks for 4 TiB, 2^32 passes
/// or more lanes than we allow is refused while it is still a number, on both backends,
/// and costs no time and no memory.
#[tokio::test]
async fn a_stored_hash_with_a_hostile_cost_is_refused_at_once() {
    let hostile = [
        "$argon2id$v=19$m=4294967295,t=1,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
        "$argon2id$v=19$m=19456,t=4294967295,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
        "$argon2id$v=19$m=19456,t=2,p=9$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
        "$argon2id$v=19$m=524288,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
    ];
    for backend in BACKENDS {
        let hasher = hasher_on(backend);
        for phc in hostile {
            let started = Instant::now();
            let result = hasher
                .verify(
                    &password("whatever it is"),
                    &PasswordHash::new(phc.to_owned()),
                )
                .await;
            let Err(Failure::Unexpected(error)) = result else {
                panic!("{backend:?} accepted {phc}: {result:?}");
            };
            assert!(
                error.to_string().contains("more than the accepted cost"),
                "{backend:?}: {error}"
            );
            assert!(
                !error.to_string().contains(phc),
                "the string stays out of the message"
            );
            // One real verification takes milliseconds; 4 TiB would take hours.
            assert!(started.elapsed() < StdDuration::from_secs(5), "{backend:?}");
        }
    }
}

#[tokio::test]
async fn the_dummy_verification_runs_a_full_verification() {
    let hasher = hasher();
    let secret = password("tulips in the rain at noon");
    let reference = hasher.hash(&secret).await.unwrap();
    // Warm up both paths once.
    hasher.verify(&secret, &reference).await.unwrap();
    hasher.verify_dummy(&secret).await.unwrap();

    // Medians of interleaved runs, so one scheduling hiccup cannot decide.
    let mut real = Vec::new();
    let mut dummy = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        hasher.verify(&secret, &reference).await.unwrap();
        real.push(started.elapsed());
        let started = Instant::now();
        hasher.verify_dummy(&secret).await.unwrap();
        dummy.push(started.elapsed());
    }
    real.sort();
    dummy.sort();
    let (real, dummy) = (real[3], dummy[3]);

    // Same parameters, same work: a dummy far cheaper than a real
    // verification would tell an attacker which emails exist.
    assert!(dummy * 3 > real, "dummy {dummy:?} vs real {real:?}");
}

#[tokio::test]
async fn a_full_pool_refuses_at_once_instead_of_queueing() {
    let hasher = Argon2Hasher::new(HashPoolConfig {
        workers: 1,
        queue: 1,
        ..HashPoolConfig::default()
    })
    .unwrap();

    let mut requests = tokio::task::JoinSet::new();
    for i in 0..10 {
        let hasher = hasher.clone();
        requests.spawn(async move {
            hasher
                .hash(&password(&format!("password number {i}")))
                .await
        });
    }
    let outcomes = tokio::time::timeout(StdDuration::from_secs(60), requests.join_all())
        .await
        .expect("hash requests hung");

    let hashed = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    let refused = outcomes
        .iter()
        .filter(|outcome| {
            matches!(
                outcome,
                Err(Failure::Overloaded {
                    retry_after_secs: 1
                })
            )
        })
        .count();
    assert!(hashed >= 1, "nothing was hashed");
    assert!(refused >= 1, "nothing was refused");
    assert_eq!(hashed + refused, 10);
    assert_eq!(hasher.queue_depth(), 0);
}

#[tokio::test]
async fn queue_depth_counts_requests_in_flight() {
    let hasher = Argon2Hasher::new(HashPoolConfig {
        workers: 1,
        queue: 4,
        ..HashPoolConfig::default()
    })
    .unwrap();
    assert_eq!(hasher.queue_depth(), 0);

    let mut requests = tokio::task::JoinSet::new();
    for i in 0..3 {
        let hasher = hasher.clone();
        requests.spawn(async move {
            hasher
                .hash(&password(&format!("password number {i}")))
                .await
        });
    }
    // The three are accepted within one scheduler tick; one hash takes
    // milliseconds, so at least two are still counted when we look.
    let deadline = Instant::now() + StdDuration::from_secs(5);
    let mut seen = 0;
    while seen < 2 && Instant::now() < deadline {
        tokio::task::yield_now().await;
        seen = seen.max(hasher.queue_depth());
    }
    assert!(seen >= 2, "queue depth never rose above {seen}");
    assert!(hasher.queue_depth() <= 3);

    for outcome in requests.join_all().await {
        outcome.unwrap();
    }
    assert_eq!(hasher.queue_depth(), 0);
}

#[test]
fn a_pool_without_workers_is_refused() {
    let result = Argon2Hasher::new(HashPoolConfig {
        workers: 0,
        queue: 4,
        ..HashPoolConfig::default()
    });
    assert!(result.is_err());
}

#[test]
fn the_default_pool_has_a_worker_per_cpu_and_a_queue_of_64() {
    let config = HashPoolConfig::default();
    assert_eq!(
        config.workers,
        std::thread::available_parallelism().unwrap().get()
    );
    assert_eq!(config.queue, 64);
}
