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
