//! Abuse protection: lockout, per-client budgets, trusted proxies, overload.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

fn lockout_env() -> Vec<(&'static str, String)> {
    vec![
        ("PORTCULLIS_LOCKOUT_SLOW_AFTER", "3".to_owned()),
        ("PORTCULLIS_LOCKOUT_LOCK_AFTER", "3".to_owned()),
        ("PORTCULLIS_LOCKOUT_DURATION_SECS", "2".to_owned()),
    ]
}

async fn assert_rate_limited(resp: reqwest::Response) -> u64 {
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert_problem(resp, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    retry_after
}

#[tokio::test]
async fn an_account_locks_after_repeated_failures_then_unlocks() {
    let app = spawn_with(Options {
        env: lockout_env(),
        ..Options::default()
    })
    .await;
    let (email, _) = app.new_user().await;
    for _ in 0..3 {
        assert_problem(
            app.log_in(&email, "wrong password, wrong password").await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
    }
    // Locked: the right password gets the same answer as a wrong one.
    let right = app.log_in(&email, PASSWORD).await;
    let right_headers = right.headers().clone();
    let right_body: Value = {
        assert_rate_limited(right).await;
        serde_json::json!(null)
    };
    let _ = right_body;
    let wrong = app.log_in(&email, "wrong password, wrong password").await;
    assert_eq!(wrong.headers()["retry-after"], right_headers["retry-after"]);
    assert_rate_limited(wrong).await;

    tokio::time::sleep(Duration::from_millis(2_200)).await;
    assert_eq!(
        app.log_in(&email, PASSWORD).await.status(),
        StatusCode::OK,
        "the lock expires"
    );
    app.stop().await;
}

#[tokio::test]
async fn parallel_wrong_guesses_get_no_more_password_checks_than_the_lockout_allows() {
    // The default account lockout (5 then 10); the per-client budget and
    // lockout out of the way, so only the account's count decides.
    let app = spawn_with(Options {
        env: vec![
            ("PORTCULLIS_RATE_LIMIT_LOGIN_PER_MIN", "1000".to_owned()),
            ("PORTCULLIS_RATE_LIMIT_LOGIN_BURST", "1000".to_owned()),
            ("PORTCULLIS_CLIENT_LOCKOUT_SLOW_AFTER", "100".to_owned()),
            ("PORTCULLIS_CLIENT_LOCKOUT_LOCK_AFTER", "100".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    let (email, _) = app.new_user().await;

    let wave = futures::future::join_all((0..40).map(|i| {
        let app = &app;
        let email = email.clone();
        async move {
            app.log_in(&email, &format!("parallel wrong guess {i}"))
                .await
        }
    }))
    .await;

    // A 401 is a password checked; a 429 is refused before any check.
    let mut checked = 0;
    for resp in wave {
        match resp.status() {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_rate_limited(resp).await;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        (1..=10).contains(&checked),
        "{checked} of 40 parallel guesses were checked; the lock is at 10"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_failure_count_outlives_the_lock_up_to_the_daily_ceiling() {
    let app = spawn_with(Options {
        env: vec![
            ("PORTCULLIS_LOCKOUT_SLOW_AFTER", "2".to_owned()),
            ("PORTCULLIS_LOCKOUT_LOCK_AFTER", "2".to_owned()),
            ("PORTCULLIS_LOCKOUT_DURATION_SECS", "1".to_owned()),
            ("PORTCULLIS_LOCKOUT_MAX_FAILURES", "3".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    let (email, _) = app.new_user().await;
    let wrong = "wrong password, wrong password";
    for _ in 0..2 {
        assert_problem(
            app.log_in(&email, wrong).await,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        )
        .await;
    }
    assert!(assert_rate_limited(app.log_in(&email, wrong).await).await <= 1);

    // The one-second lock ends; the count does not: the third failure
    // reaches the ceiling, and the account is locked for the rest of the
    // day, for the right password too.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_problem(
        app.log_in(&email, wrong).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let retry_after = assert_rate_limited(app.log_in(&email, PASSWORD).await).await;
    assert!(
        retry_after > 23 * 3600 && retry_after <= 24 * 3600,
        "Retry-After {retry_after}"
    );
    // Another account is not affected.
    let (other, _) = app.new_user().await;
    assert_eq!(app.log_in(&other, PASSWORD).await.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn unknown_emails_lock_exactly_like_existing_ones() {
    let app = spawn_with(Options {
        env: lockout_env(),
        ..Options::default()
    })
    .await;
    let (email, _) = app.new_user().await;
    let mut existing = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..5 {
        existing.push(
            app.log_in(&email, "wrong password, wrong password")
                .await
                .status(),
        );
        unknown.push(
            app.log_in("ghost@example.com", "wrong password, wrong password")
                .await
                .status(),
        );
    }
    assert_eq!(existing, unknown);
    assert_eq!(existing[..3], [StatusCode::UNAUTHORIZED; 3]);
    assert_eq!(existing[3..], [StatusCode::TOO_MANY_REQUESTS; 2]);
    app.stop().await;
}

#[tokio::test]
async fn a_success_resets_the_count() {
    let app = spawn_with(Options {
        env: lockout_env(),
        ..Options::default()
    })
    .await;
    let (email, _) = app.new_user().await;
    for _ in 0..2 {
        app.log_in(&email, "wrong password, wrong password").await;
    }
    assert_eq!(app.log_in(&email, PASSWORD).await.status(), StatusCode::OK);
    for _ in 0..2 {
        assert_eq!(
            app.log_in(&email, "wrong password, wrong password")
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(app.log_in(&email, PASSWORD).await.status(), StatusCode::OK);
    app.stop().await;
}

fn tight_signup_budget() -> Vec<(&'static str, String)> {
    vec![
        ("PORTCULLIS_RATE_LIMIT_SIGNUP_PER_MIN", "1".to_owned()),
        ("PORTCULLIS_RATE_LIMIT_SIGNUP_BURST", "2".to_owned()),
    ]
}

#[tokio::test]
async fn signups_have_a_per_client_budget_that_a_spoofed_header_cannot_escape() {
    let app = spawn_with(Options {
        env: tight_signup_budget(),
        ..Options::default()
    })
    .await;
    assert_eq!(
        app.sign_up("a1@example.com", PASSWORD).await.status(),
        StatusCode::CREATED
    );
    // A taken email still spends the budget (409 is not free).
    assert_eq!(
        app.sign_up("a1@example.com", PASSWORD).await.status(),
        StatusCode::CONFLICT
    );
    let retry = assert_rate_limited(app.sign_up("a3@example.com", PASSWORD).await).await;
    assert!(retry <= 60);
    // No trusted proxies: X-Forwarded-For from the client changes nothing.
    let spoofed = app
        .request(Method::POST, "/api/v1/auth/signup")
        .header("x-forwarded-for", "198.51.100.77")
        .json(&serde_json::json!({"email": "a4@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_rate_limited(spoofed).await;
    // Log-in has its own budget.
    assert_eq!(
        app.log_in("a1@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );
    app.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let mut env = tight_signup_budget();
    env.push(("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1/32".to_owned()));
    let app = spawn_with(Options {
        env,
        ..Options::default()
    })
    .await;
    let signup_from = |ip: &'static str, email: &'static str| {
        let app = &app;
        async move {
            app.request(Method::POST, "/api/v1/auth/signup")
                .header("x-forwarded-for", format!("6.6.6.6, {ip}"))
                .json(&serde_json::json!({"email": email, "password": PASSWORD}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        signup_from("198.51.100.1", "p1@example.com").await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        signup_from("198.51.100.1", "p2@example.com").await.status(),
        StatusCode::CREATED
    );
    assert_rate_limited(signup_from("198.51.100.1", "p3@example.com").await).await;
    // Another client behind the same proxy is not affected, and the
    // left-most (client-chosen) entry is ignored.
    let resp = signup_from("198.51.100.2", "p4@example.com").await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let tokens = Tokens::from(resp).await;
    let sessions: Value = app
        .list_sessions(&tokens.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions["items"][0]["client_ip"], "198.51.100.2");
    app.stop().await;
}

#[tokio::test]
async fn refresh_has_a_per_client_budget() {
    let app = spawn_with(Options {
        env: vec![
            ("PORTCULLIS_RATE_LIMIT_REFRESH_PER_MIN", "1".to_owned()),
            ("PORTCULLIS_RATE_LIMIT_REFRESH_BURST", "2".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    let (_, tokens) = app.new_user().await;
    let next = Tokens::from(app.refresh(&tokens.refresh).await).await;
    assert_problem(
        app.refresh("garbage").await,
        StatusCode::UNAUTHORIZED,
        "invalid_grant",
    )
    .await;
    assert_rate_limited(app.refresh(&next.refresh).await).await;
    app.stop().await;
}

#[tokio::test]
async fn wrong_password_and_unknown_email_cost_the_same() {
    // No slow-down within the test's attempts: a refused attempt checks no
    // password, so it would say nothing about what a checked one costs.
    let mut env = Vec::new();
    for scope in ["", "CLIENT_"] {
        for (knob, value) in [("SLOW_AFTER", "100"), ("LOCK_AFTER", "100")] {
            env.push((
                &*Box::leak(format!("PORTCULLIS_{scope}LOCKOUT_{knob}").into_boxed_str()),
                value.to_owned(),
            ));
        }
    }
    let app = spawn_with(Options {
        env,
        ..Options::default()
    })
    .await;
    let (email, _) = app.new_user().await;
    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..12 {
        let started = Instant::now();
        let resp = app
            .log_in(&email, &format!("wrong password number {i}"))
            .await;
        wrong.push(started.elapsed());
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let started = Instant::now();
        let resp = app.log_in(&format!("ghost{i}@example.com"), PASSWORD).await;
        unknown.push(started.elapsed());
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let (w, u) = (
        wrong.iter().min().unwrap().as_secs_f64(),
        unknown.iter().min().unwrap().as_secs_f64(),
    );
    // Both pay one full argon2 verification; a missing dummy verify would be
    // an order of magnitude faster. The fastest of each is compared: other
    // tests running beside this one only ever add time, so the minimum is
    // the cost of the work itself, not of the machine's load. The bound is
    // loose on purpose: it is not a speed requirement.
    assert!(
        u > w / 3.0 && u < w * 3.0,
        "fastest wrong {w:.4}s vs unknown {u:.4}s"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_login_flood_gets_503s_while_other_endpoints_keep_answering() {
    let app = spawn_with(Options {
        env: vec![
            ("PORTCULLIS_HASH_WORKERS", "1".to_owned()),
            ("PORTCULLIS_HASH_QUEUE", "2".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    let (_, tokens) = app.new_user().await;
    // Distinct emails: one account's lockout would stop the flood before
    // the hasher's queue does.
    let flood = futures::future::join_all((0..24).map(|i| {
        let app = &app;
        async move {
            app.log_in(&format!("flood{i}@example.com"), "flood password, wrong")
                .await
        }
    }));
    let probes = async {
        let mut statuses = Vec::new();
        for _ in 0..5 {
            statuses.push(app.health_live().await.status());
            statuses.push(app.verify(&tokens.access).await.status());
        }
        statuses
    };
    let (responses, probe_statuses) = tokio::join!(flood, probes);
    assert!(
        probe_statuses.iter().all(|s| *s == StatusCode::OK),
        "{probe_statuses:?}"
    );
    let mut overloaded = 0;
    for resp in responses {
        match resp.status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                overloaded += 1;
                assert!(resp.headers().contains_key("retry-after"));
                assert_problem(resp, StatusCode::SERVICE_UNAVAILABLE, "overloaded").await;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        overloaded > 0,
        "a queue of 2 must shed some of 24 concurrent logins"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_redis_falls_back_to_local_limits() {
    let mut env = lockout_env();
    env.push(("REDIS_URL", "redis://127.0.0.1:1".to_owned()));
    let app = spawn_with(Options {
        env,
        ..Options::default()
    })
    .await;
    let (email, _) = app.new_user().await;
    for _ in 0..3 {
        assert_eq!(
            app.log_in(&email, "wrong password, wrong password")
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_rate_limited(app.log_in(&email, PASSWORD).await).await;
    app.stop().await;
}

#[tokio::test]
#[ignore = "needs Redis at 127.0.0.1:6379: run with --include-ignored (CI does)"]
async fn two_instances_sharing_redis_share_lockouts_and_budgets() {
    let redis = std::env::var("PORTCULLIS_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    // A fresh namespace per run: a random client address behind a trusted proxy.
    // (IPv6: enough room that no other run or test shares its budget.)
    let id = uuid::Uuid::new_v4().as_u128();
    let ip = format!("2001:db8:{:x}:{:x}::1", (id >> 16) as u16, id as u16);
    let mut env = lockout_env();
    env.push(("REDIS_URL", redis));
    env.push(("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1/32".to_owned()));
    env.push(("PORTCULLIS_RATE_LIMIT_SIGNUP_PER_MIN", "1".to_owned()));
    env.push(("PORTCULLIS_RATE_LIMIT_SIGNUP_BURST", "2".to_owned()));
    let first = spawn_with(Options {
        env: env.clone(),
        ..Options::default()
    })
    .await;
    let second = spawn_with(Options {
        env,
        data_dir: Some(first.data_dir.clone()),
        database_url: Some(first.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                first.data_dir.join("portcullis.db").display()
            )
        })),
        ..Options::default()
    })
    .await;
    let signup = |app: &TestApp, email: String| {
        let req = app
            .request(Method::POST, "/api/v1/auth/signup")
            .header("x-forwarded-for", ip.clone())
            .json(&serde_json::json!({"email": email, "password": PASSWORD}));
        async move { req.send().await.unwrap() }
    };
    let email = format!("shared-{}@example.com", uuid::Uuid::new_v4().simple());
    assert_eq!(
        signup(&first, email.clone()).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        signup(&second, format!("x{email}")).await.status(),
        StatusCode::CREATED
    );
    assert_rate_limited(signup(&first, format!("y{email}")).await).await;

    // Failures on one instance lock the account on the other.
    for app in [&first, &second, &first] {
        assert_eq!(
            app.log_in(&email, "wrong password, wrong password")
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_rate_limited(second.log_in(&email, PASSWORD).await).await;
    second.stop().await;
    first.stop().await;
}
