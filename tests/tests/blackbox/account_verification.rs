//! Email verification: the link sent at sign-up, read out of the message
//! itself; the profile and the token say whether the address is confirmed;
//! resending; `PORTCULLIS_REQUIRE_VERIFIED_EMAIL`.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Options, PASSWORD, Tokens, assert_problem, claims, spawn_app, spawn_with};

const VERIFY_SUBJECT: &str = "Confirm your email address";

#[tokio::test]
async fn the_sign_up_email_confirms_the_address_once() {
    let app = spawn_app().await;
    let (email, tokens) = app.new_user().await;
    assert_eq!(tokens.body["user"]["email_verified"], false);
    assert_eq!(claims(&tokens.access)["email_verified"], false);

    let token = app
        .link_token(&email, VERIFY_SUBJECT, "verify-email", 1)
        .await;
    let resp = app.verify_email(&token).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["user"]["email"], email.as_str());
    assert_eq!(body["user"]["email_verified"], true);

    let me: Value = app.me(&tokens.access).await.json().await.unwrap();
    assert_eq!(me["email_verified"], true);
    let fresh = Tokens::from(app.log_in(&email, PASSWORD).await).await;
    assert_eq!(claims(&fresh.access)["email_verified"], true);

    assert_problem(
        app.verify_email(&token).await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn opening_the_link_page_consumes_nothing() {
    let app = spawn_app().await;
    let (email, tokens) = app.new_user().await;
    let token = app
        .link_token(&email, VERIFY_SUBJECT, "verify-email", 1)
        .await;

    // What a mail scanner fetches: the page, without the fragment.
    let page = app
        .request(reqwest::Method::GET, "/account/verify-email")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("/account/assets/account.js")
    );

    let me: Value = app.me(&tokens.access).await.json().await.unwrap();
    assert_eq!(
        me["email_verified"], false,
        "fetching the page verified nothing"
    );
    assert_eq!(app.verify_email(&token).await.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn the_account_page_is_served_under_a_strict_policy() {
    let app = spawn_app().await;
    for path in ["/account", "/account/"] {
        let page = app
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(page.headers()["x-frame-options"], "DENY");
        assert!(
            page.text()
                .await
                .unwrap()
                .contains("/account/assets/app.js")
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn malformed_and_unknown_tokens_get_one_answer() {
    let app = spawn_app().await;
    for token in [
        "",
        "short",
        &"A".repeat(43),
        &"A".repeat(44),
        "Zm9v!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
    ] {
        assert_problem(
            app.verify_email(token).await,
            StatusCode::BAD_REQUEST,
            "invalid_token",
        )
        .await;
        assert_problem(
            app.reset_password(token, "a brand new passphrase at dusk")
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_token",
        )
        .await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_resent_link_voids_the_older_and_resends_wait_a_minute() {
    let app = spawn_app().await;
    let (email, tokens) = app.new_user().await;
    let first = app
        .link_token(&email, VERIFY_SUBJECT, "verify-email", 1)
        .await;

    // Sign-up just sent one: the next waits a minute.
    let resp = app.resend_verification(&tokens.access).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");

    let verified = app.verify_email(&first).await;
    assert_eq!(verified.status(), StatusCode::OK);
    assert_problem(
        app.resend_verification(&tokens.access).await,
        StatusCode::CONFLICT,
        "email_already_verified",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn an_unverified_account_is_refused_only_after_a_right_password_when_required() {
    let app = spawn_with(Options {
        env: vec![("PORTCULLIS_REQUIRE_VERIFIED_EMAIL", "true".to_owned())],
        ..Options::default()
    })
    .await;
    let (email, _) = app.new_user().await;

    assert_problem(
        app.log_in(&email, "not the password at all!").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_problem(
        app.log_in(&email, PASSWORD).await,
        StatusCode::FORBIDDEN,
        "email_not_verified",
    )
    .await;

    let token = app
        .link_token(&email, VERIFY_SUBJECT, "verify-email", 1)
        .await;
    assert_eq!(app.verify_email(&token).await.status(), StatusCode::OK);
    assert_eq!(app.log_in(&email, PASSWORD).await.status(), StatusCode::OK);
    app.stop().await;
}
