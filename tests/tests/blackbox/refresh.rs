//! Refresh-token rotation, reuse detection and expiry.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

async fn session_count(app: &TestApp, access: &str) -> usize {
    let body: Value = app.list_sessions(access).await.json().await.unwrap();
    body["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_chain_of_twenty_refreshes_keeps_one_session() {
    let app = spawn_app().await;
    let (_, first) = app.new_user().await;
    let mut current = first.clone();
    for _ in 0..20 {
        let resp = app.refresh(&current.refresh).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let next = Tokens::from(resp).await;
        assert_ne!(next.refresh, current.refresh);
        assert_eq!(next.session_id(), first.session_id());
        assert_eq!(app.me(&next.access).await.status(), StatusCode::OK);
        current = next;
    }
    assert_eq!(session_count(&app, &current.access).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn reuse_after_the_grace_interval_revokes_the_family_only() {
    let app = spawn_with(Options {
        env: vec![("PORTCULLIS_REFRESH_REUSE_GRACE_SECS", "0".to_owned())],
        ..Options::default()
    })
    .await;
    let (email, victim) = app.new_user().await;
    let other = Tokens::from(app.log_in(&email, PASSWORD).await).await;
    let rotated = Tokens::from(app.refresh(&victim.refresh).await).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let reuse = app.refresh(&victim.refresh).await;

    assert_problem(reuse, StatusCode::UNAUTHORIZED, "invalid_grant").await;
    // The whole family is dead: the successor refresh token and its access token.
    assert_problem(
        app.refresh(&rotated.refresh).await,
        StatusCode::UNAUTHORIZED,
        "invalid_grant",
    )
    .await;
    assert_eq!(
        app.me(&rotated.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The user's other session is untouched.
    assert_eq!(app.me(&other.access).await.status(), StatusCode::OK);
    assert_eq!(app.refresh(&other.refresh).await.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn a_replay_within_the_grace_interval_returns_a_working_pair_of_the_same_session() {
    let app = spawn_app().await;
    let (_, first) = app.new_user().await;
    let a = Tokens::from(app.refresh(&first.refresh).await).await;
    let b = Tokens::from(app.refresh(&first.refresh).await).await;
    assert_eq!(a.session_id(), b.session_id());
    assert_eq!(app.refresh(&a.refresh).await.status(), StatusCode::OK);
    assert_eq!(app.refresh(&b.refresh).await.status(), StatusCode::OK);
    assert_eq!(session_count(&app, &b.access).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn parallel_refreshes_of_one_token_never_fork_the_family() {
    let app = spawn_app().await;
    let (_, first) = app.new_user().await;

    let results = futures::future::join_all((0..8).map(|_| app.refresh(&first.refresh))).await;

    let mut sessions = std::collections::HashSet::new();
    let mut pairs = Vec::new();
    for resp in results {
        assert_eq!(resp.status(), StatusCode::OK);
        let tokens = Tokens::from(resp).await;
        sessions.insert(tokens.session_id());
        pairs.push(tokens);
    }
    assert_eq!(sessions.len(), 1, "all pairs belong to the one session");
    assert_eq!(session_count(&app, &pairs[0].access).await, 1);
    // Logging that session out kills every pair handed out.
    assert_eq!(
        app.log_out(&pairs[0].access, Some("this")).await.status(),
        StatusCode::OK
    );
    for pair in &pairs {
        assert_eq!(
            app.me(&pair.access).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_problem(
            app.refresh(&pair.refresh).await,
            StatusCode::UNAUTHORIZED,
            "invalid_grant",
        )
        .await;
    }
    app.stop().await;
}

#[tokio::test]
async fn random_and_malformed_refresh_tokens_are_invalid_grants() {
    let app = spawn_app().await;
    let (_, tokens) = app.new_user().await;
    let mut tampered = tokens.refresh.clone().into_bytes();
    tampered[0] = if tampered[0] == b'A' { b'B' } else { b'A' };
    for token in [
        String::new(),
        "short".to_owned(),
        "A".repeat(43),
        String::from_utf8(tampered).unwrap(),
        "!".repeat(43),
        tokens.access.clone(),
        "x".repeat(4096),
    ] {
        assert_problem(
            app.refresh(&token).await,
            StatusCode::UNAUTHORIZED,
            "invalid_grant",
        )
        .await;
    }
    app.stop().await;
}

#[tokio::test]
async fn an_idle_session_expires() {
    let app = spawn_with(Options {
        env: vec![("PORTCULLIS_SESSION_IDLE_TTL_SECS", "2".to_owned())],
        ..Options::default()
    })
    .await;
    let (_, tokens) = app.new_user().await;
    // Used within the idle window: still alive.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let tokens = Tokens::from(app.refresh(&tokens.refresh).await).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_problem(
        app.refresh(&tokens.refresh).await,
        StatusCode::UNAUTHORIZED,
        "invalid_grant",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn rotation_never_extends_the_absolute_lifetime() {
    let app = spawn_with(Options {
        env: vec![
            ("PORTCULLIS_SESSION_IDLE_TTL_SECS", "2".to_owned()),
            ("PORTCULLIS_SESSION_ABSOLUTE_TTL_SECS", "3".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    let (_, mut tokens) = app.new_user().await;
    assert!(tokens.body["refresh_expires_in"].as_i64().unwrap() <= 2);
    let started = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let resp = app.refresh(&tokens.refresh).await;
        if resp.status() == StatusCode::OK {
            tokens = Tokens::from(resp).await;
            assert!(
                tokens.body["expires_in"].as_i64().unwrap() <= 3,
                "access token outlives the session"
            );
            assert!(
                started.elapsed() < Duration::from_secs(4),
                "session outlived its absolute lifetime"
            );
        } else {
            assert_problem(resp, StatusCode::UNAUTHORIZED, "invalid_grant").await;
            assert!(
                started.elapsed() >= Duration::from_millis(2500),
                "session ended too early"
            );
            break;
        }
    }
    app.stop().await;
}

/// The grace interval of the tests below: long enough for a few requests
/// to land inside it on a loaded machine, short enough to wait out.
const GRACE_SECS: u64 = 3;

async fn spawn_with_grace(secs: u64) -> TestApp {
    spawn_with(Options {
        env: vec![("PORTCULLIS_REFRESH_REUSE_GRACE_SECS", secs.to_string())],
        ..Options::default()
    })
    .await
}

/// Waits until every token rotated or superseded so far is outside the
/// grace interval (the server's time, not a readiness wait).
async fn outlive_the_grace_interval() {
    tokio::time::sleep(Duration::from_millis(GRACE_SECS * 1000 + 300)).await;
}

/// Opens `n` keep-alive connections to the server, so that `n` requests
/// sent together reach it together instead of one per TCP handshake.
async fn warm_up_connections(app: &TestApp, n: usize) {
    for resp in futures::future::join_all((0..n).map(|_| app.health_live())).await {
        assert_eq!(resp.status(), StatusCode::OK);
    }
}

/// The `refresh_token_reuse_detected` events of the user, seen from a
/// fresh session of theirs.
async fn reuse_events(app: &TestApp, email: &str) -> Vec<Value> {
    let fresh = Tokens::from(app.log_in(email, PASSWORD).await).await;
    let resp = app
        .events(&fresh.access, &[("type", "refresh_token_reuse_detected")])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let page: Value = resp.json().await.unwrap();
    page["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn sequential_replays_inside_the_grace_interval_leave_one_chain() {
    let app = spawn_with_grace(GRACE_SECS).await;
    let (email, first) = app.new_user().await;
    let a = Tokens::from(app.refresh(&first.refresh).await).await;
    let b = Tokens::from(app.refresh(&first.refresh).await).await;
    let c = Tokens::from(app.refresh(&first.refresh).await).await;
    for pair in [&a, &b, &c] {
        assert_eq!(pair.session_id(), first.session_id());
    }
    outlive_the_grace_interval().await;

    // The last replay got the session's current token; it still refreshes.
    let resp = app.refresh(&c.refresh).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let d = Tokens::from(resp).await;
    // Any other token of the session revokes it.
    assert_problem(
        app.refresh(&a.refresh).await,
        StatusCode::UNAUTHORIZED,
        "invalid_grant",
    )
    .await;
    for token in [&b.refresh, &d.refresh] {
        assert_problem(
            app.refresh(token).await,
            StatusCode::UNAUTHORIZED,
            "invalid_grant",
        )
        .await;
    }
    assert_eq!(app.me(&d.access).await.status(), StatusCode::UNAUTHORIZED);
    let reuse = reuse_events(&app, &email).await;
    assert_eq!(reuse.len(), 1);
    assert_eq!(reuse[0]["session_id"], first.session_id());
    app.stop().await;
}

#[tokio::test]
async fn after_a_parallel_burst_at_most_one_successor_still_refreshes() {
    let app = spawn_with_grace(GRACE_SECS).await;
    let (email, first) = app.new_user().await;
    warm_up_connections(&app, 8).await;
    let results = futures::future::join_all((0..8).map(|_| app.refresh(&first.refresh))).await;
    let mut pairs = Vec::new();
    for resp in results {
        assert_eq!(resp.status(), StatusCode::OK, "inside the grace interval");
        pairs.push(Tokens::from(resp).await);
    }
    outlive_the_grace_interval().await;

    let mut refreshed = Vec::new();
    for pair in &pairs {
        let resp = app.refresh(&pair.refresh).await;
        if resp.status() == StatusCode::OK {
            refreshed.push(Tokens::from(resp).await);
        } else {
            assert_problem(resp, StatusCode::UNAUTHORIZED, "invalid_grant").await;
        }
    }

    assert!(
        refreshed.len() <= 1,
        "{} of 8 successors still refresh",
        refreshed.len()
    );
    // Seven of them were not current: the session is revoked, with every
    // pair it handed out.
    for pair in pairs.iter().chain(&refreshed) {
        assert_eq!(
            app.me(&pair.access).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    for pair in &refreshed {
        assert_problem(
            app.refresh(&pair.refresh).await,
            StatusCode::UNAUTHORIZED,
            "invalid_grant",
        )
        .await;
    }
    assert_eq!(reuse_events(&app, &email).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn with_grace_zero_a_race_hands_out_one_pair_and_revokes_the_session() {
    let app = spawn_with_grace(0).await;
    warm_up_connections(&app, 8).await;
    // A few rounds, each a fresh session: one round's requests may happen
    // to reach the server one after another, all of them hardly.
    for _ in 0..3 {
        let (email, first) = app.new_user().await;

        let results = futures::future::join_all((0..8).map(|_| app.refresh(&first.refresh))).await;

        let mut pairs = Vec::new();
        for resp in results {
            if resp.status() == StatusCode::OK {
                pairs.push(Tokens::from(resp).await);
            } else {
                assert_problem(resp, StatusCode::UNAUTHORIZED, "invalid_grant").await;
            }
        }
        // The first rotation wins; every other request presented a rotated
        // token, which with no grace interval is reuse, however close the race.
        assert_eq!(pairs.len(), 1, "{} pairs handed out", pairs.len());
        assert_eq!(
            app.me(&pairs[0].access).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_problem(
            app.refresh(&pairs[0].refresh).await,
            StatusCode::UNAUTHORIZED,
            "invalid_grant",
        )
        .await;
        assert_eq!(reuse_events(&app, &email).await.len(), 1);
    }
    app.stop().await;
}
