//! Forgot and reset password, from the email itself: one answer for every
//! address, links from the configured public URL only, single use, the
//! newest link only, and a reset that ends every session everywhere.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::mail::PUBLIC_URL;
use crate::helpers::{PASSWORD, Tokens, assert_problem, spawn_app};

const RESET_SUBJECT: &str = "Reset your password";
const NEW_PASSWORD: &str = "a brand new passphrase at dusk";

/// Status, the headers that could differ, and the body of an answer.
async fn shape(resp: reqwest::Response) -> (StatusCode, Vec<(String, String)>, String) {
    let status = resp.status();
    let mut headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .filter(|(name, _)| {
            !matches!(
                name.as_str(),
                "date" | "x-request-id" | "x-trace-id" | "traceparent"
            )
        })
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("").to_owned()))
        .collect();
    headers.sort();
    (status, headers, resp.text().await.unwrap())
}

#[tokio::test]
async fn forgot_password_answers_the_same_for_known_and_unknown_addresses() {
    let app = spawn_app().await;
    let (email, _) = app.new_user().await;
    let unknown = format!("nobody-{}@example.com", uuid::Uuid::new_v4().simple());

    let known_answer = shape(app.forgot_password(&email).await).await;
    let unknown_answer = shape(app.forgot_password(&unknown).await).await;
    assert_eq!(known_answer.0, StatusCode::ACCEPTED);
    assert_eq!(known_answer, unknown_answer);

    app.wait_for_mail(&email, RESET_SUBJECT).await;
    // Give the unknown address's background work every chance to misbehave.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        app.mails().iter().all(|m| m.to != unknown),
        "nothing is sent to an unknown address"
    );
    app.stop().await;
}

#[tokio::test]
async fn over_the_limits_the_answer_is_still_the_same_and_nothing_more_is_sent() {
    let app = crate::helpers::spawn_with(crate::helpers::Options {
        env: vec![
            (
                "PORTCULLIS_RATE_LIMIT_RECOVERY_EMAIL_PER_MIN",
                "1".to_owned(),
            ),
            ("PORTCULLIS_RATE_LIMIT_RECOVERY_EMAIL_BURST", "2".to_owned()),
        ],
        ..crate::helpers::Options::default()
    })
    .await;
    let (email, _) = app.new_user().await;
    let first = shape(app.forgot_password(&email).await).await;
    for _ in 0..4 {
        assert_eq!(shape(app.forgot_password(&email).await).await, first);
    }
    app.wait_for_mails(&email, RESET_SUBJECT, 2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        app.mails_to(&email, RESET_SUBJECT).len(),
        2,
        "the per-address budget held"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_attackers_host_header_changes_no_link() {
    let app = spawn_app().await;
    let (email, _) = app.new_user().await;
    let resp = app
        .request(Method::POST, "/api/v1/auth/password/forgot")
        .header("host", "evil.example")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "host=evil.example;proto=https")
        .json(&serde_json::json!({"email": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let mail = app.wait_for_mail(&email, RESET_SUBJECT).await;
    assert!(!mail.raw.contains("evil.example"), "{}", mail.raw);
    assert!(
        mail.text
            .contains(&format!("{PUBLIC_URL}/account/reset-password#token="))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_reset_works_once_ends_every_session_and_sends_a_notice() {
    let app = spawn_app().await;
    let (email, first) = app.new_user().await;
    let second = Tokens::from(app.log_in(&email, PASSWORD).await).await;

    assert_eq!(
        app.forgot_password(&email).await.status(),
        StatusCode::ACCEPTED
    );
    let token = app
        .link_token(&email, RESET_SUBJECT, "reset-password", 1)
        .await;

    assert_problem(
        app.reset_password(&token, "short").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "password_too_short",
    )
    .await;
    assert_eq!(
        app.me(&first.access).await.status(),
        StatusCode::OK,
        "a refused reset changes nothing"
    );

    assert_eq!(
        app.reset_password(&token, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
    for tokens in [&first, &second] {
        assert_eq!(
            app.me(&tokens.access).await.status(),
            StatusCode::UNAUTHORIZED,
            "access token revoked"
        );
        assert_eq!(
            app.refresh(&tokens.refresh).await.status(),
            StatusCode::UNAUTHORIZED,
            "refresh token revoked"
        );
    }
    assert_eq!(
        app.log_in(&email, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.log_in(&email, NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_problem(
        app.reset_password(&token, "yet another fine passphrase")
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    app.wait_for_mail(&email, "Your password was reset").await;

    let fresh = Tokens::from(app.log_in(&email, NEW_PASSWORD).await).await;
    let events: Value = app.events(&fresh.access, &[]).await.json().await.unwrap();
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"password_reset_requested") && kinds.contains(&"password_reset_completed"),
        "{kinds:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_newer_link_voids_the_older_one() {
    let app = spawn_app().await;
    let (email, _) = app.new_user().await;
    app.forgot_password(&email).await;
    let older = app
        .link_token(&email, RESET_SUBJECT, "reset-password", 1)
        .await;
    app.forgot_password(&email).await;
    let newer = app
        .link_token(&email, RESET_SUBJECT, "reset-password", 2)
        .await;
    assert_ne!(older, newer);

    assert_problem(
        app.reset_password(&older, NEW_PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    assert_eq!(
        app.reset_password(&newer, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
    app.stop().await;
}

#[tokio::test]
async fn a_password_change_voids_a_pending_reset_link() {
    let app = spawn_app().await;
    let (email, tokens) = app.new_user().await;
    app.forgot_password(&email).await;
    let token = app
        .link_token(&email, RESET_SUBJECT, "reset-password", 1)
        .await;
    let changed = app
        .change_password(&tokens.access, PASSWORD, NEW_PASSWORD)
        .await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    assert_problem(
        app.reset_password(&token, "yet another fine passphrase")
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_reset_lifts_the_login_lockout() {
    let app = crate::helpers::spawn_with(crate::helpers::Options {
        env: vec![
            ("PORTCULLIS_LOCKOUT_SLOW_AFTER", "2".to_owned()),
            ("PORTCULLIS_LOCKOUT_LOCK_AFTER", "3".to_owned()),
        ],
        ..crate::helpers::Options::default()
    })
    .await;
    let (email, _) = app.new_user().await;
    for _ in 0..3 {
        app.log_in(&email, "not the password at all!").await;
    }
    assert_eq!(
        app.log_in(&email, PASSWORD).await.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "locked"
    );

    app.forgot_password(&email).await;
    let token = app
        .link_token(&email, RESET_SUBJECT, "reset-password", 1)
        .await;
    assert_eq!(
        app.reset_password(&token, NEW_PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.log_in(&email, NEW_PASSWORD).await.status(),
        StatusCode::OK,
        "the owner is back in"
    );
    app.stop().await;
}
