//! Sessions, logout scopes, forward-auth and revocation across instances.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

async fn three_sessions(app: &TestApp) -> (String, Tokens, Tokens, Tokens) {
    let (email, a) = app.new_user().await;
    let b = Tokens::from(app.log_in(&email, PASSWORD).await).await;
    let c = Tokens::from(app.log_in(&email, PASSWORD).await).await;
    (email, a, b, c)
}

async fn assert_dead(app: &TestApp, tokens: &Tokens) {
    assert_eq!(
        app.me(&tokens.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_problem(
        app.refresh(&tokens.refresh).await,
        StatusCode::UNAUTHORIZED,
        "invalid_grant",
    )
    .await;
}

async fn assert_alive(app: &TestApp, tokens: &Tokens) {
    assert_eq!(app.me(&tokens.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn sessions_are_listed_with_the_current_one_marked() {
    let app = spawn_app().await;
    let (_, a, b, _) = three_sessions(&app).await;
    // By hand, for its own User-Agent.
    let resp = app
        .request(Method::GET, "/api/v1/sessions")
        .bearer_auth(&b.access)
        .header("user-agent", "blackbox-test/1.0")
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let current: Vec<_> = items.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], b.session_id());
    assert!(items.iter().any(|s| s["id"] == a.session_id()));
    assert_eq!(items[0]["client_ip"], "127.0.0.1");
    app.stop().await;
}

#[tokio::test]
async fn logout_this_ends_only_the_current_session() {
    let app = spawn_app().await;
    let (_, a, b, _) = three_sessions(&app).await;
    let resp = app.log_out(&a.access, Some("this")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["revoked_sessions"].as_array().unwrap().len(), 1);
    assert_dead(&app, &a).await;
    assert_alive(&app, &b).await;
    app.stop().await;
}

#[tokio::test]
async fn logout_without_scope_means_this() {
    let app = spawn_app().await;
    let (_, a, b, _) = three_sessions(&app).await;
    let resp = app.log_out(&a.access, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_dead(&app, &a).await;
    assert_alive(&app, &b).await;
    app.stop().await;
}

#[tokio::test]
async fn logout_all_ends_every_session() {
    let app = spawn_app().await;
    let (_, a, b, c) = three_sessions(&app).await;
    let (_, stranger) = app.new_user().await;
    assert_eq!(
        app.log_out(&b.access, Some("all")).await.status(),
        StatusCode::OK
    );
    for tokens in [&a, &b, &c] {
        assert_dead(&app, tokens).await;
    }
    assert_alive(&app, &stranger).await;
    app.stop().await;
}

#[tokio::test]
async fn logout_others_keeps_the_current_session() {
    let app = spawn_app().await;
    let (_, a, b, c) = three_sessions(&app).await;
    let body: Value = app
        .log_out(&b.access, Some("others"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["revoked_sessions"].as_array().unwrap().len(), 2);
    assert_dead(&app, &a).await;
    assert_dead(&app, &c).await;
    assert_alive(&app, &b).await;
    assert_eq!(app.refresh(&b.refresh).await.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn logout_reads_the_scope_from_a_json_body() {
    let app = spawn_app().await;
    let (_, a, b, c) = three_sessions(&app).await;
    let resp = app
        .log_out_with_body(&b.access, None, &json!({"scope": "others"}))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["revoked_sessions"].as_array().unwrap().len(), 2);
    assert_dead(&app, &a).await;
    assert_dead(&app, &c).await;
    assert_alive(&app, &b).await;
    app.stop().await;
}

#[tokio::test]
async fn logout_refuses_a_conflicting_or_unknown_scope_and_ends_nothing() {
    let app = spawn_app().await;
    let (_, a, b, _) = three_sessions(&app).await;
    let resp = app
        .log_out_with_body(&a.access, Some("this"), &json!({"scope": "others"}))
        .await;
    assert_problem(resp, StatusCode::BAD_REQUEST, "conflicting_scope").await;
    let resp = app
        .log_out_with_body(&a.access, None, &json!({"scope": "everyone"}))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = app.log_out(&a.access, Some("everyone")).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_alive(&app, &a).await;
    assert_alive(&app, &b).await;
    // The same scope in both places is no conflict; `{}` names none.
    let resp = app
        .log_out_with_body(&a.access, Some("this"), &json!({"scope": "this"}))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_dead(&app, &a).await;
    assert_alive(&app, &b).await;
    let resp = app.log_out_with_body(&b.access, None, &json!({})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_dead(&app, &b).await;
    app.stop().await;
}

#[tokio::test]
async fn revoking_a_session_by_id_and_someone_elses_is_not_found() {
    let app = spawn_app().await;
    let (_, a, b, _) = three_sessions(&app).await;
    let (_, eve) = app.new_user().await;

    let resp = app.revoke_session(&eve.access, &a.session_id()).await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    assert_alive(&app, &a).await;

    let resp = app.revoke_session(&b.access, &a.session_id()).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_dead(&app, &a).await;
    assert_alive(&app, &b).await;

    let resp = app.revoke_session(&b.access, &a.session_id()).await;
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn verify_answers_gateways_with_identity_headers() {
    let app = spawn_app().await;
    let (_, tokens) = app.new_user().await;
    let resp = app.verify(&tokens.access).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["x-user-id"],
        tokens.body["user"]["id"].as_str().unwrap()
    );
    assert_eq!(resp.headers()["x-session-id"], tokens.session_id().as_str());
    app.log_out(&tokens.access, Some("this")).await;
    let resp = app.verify(&tokens.access).await;
    assert_problem(resp, StatusCode::UNAUTHORIZED, "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn a_logout_on_one_instance_reaches_another_within_the_poll_bound() {
    let first = spawn_app().await;
    let url = match &first.database_url {
        Some(url) => url.clone(),
        None => format!(
            "sqlite://{}?mode=rwc",
            first.data_dir.join("portcullis.db").display()
        ),
    };
    let second = spawn_with(Options {
        data_dir: Some(first.data_dir.clone()),
        database_url: Some(url),
        env: vec![("PORTCULLIS_REVOCATION_POLL_MS", "200".to_owned())],
        ..Options::default()
    })
    .await;
    let (_, tokens) = first.new_user().await;
    assert_alive(&second, &tokens).await;

    assert_eq!(
        first.log_out(&tokens.access, Some("this")).await.status(),
        StatusCode::OK
    );

    assert_eq!(
        first.me(&tokens.access).await.status(),
        StatusCode::UNAUTHORIZED,
        "immediate on the same instance"
    );
    // The documented bound is one poll interval plus one query; allow generous slack.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if second.me(&tokens.access).await.status() == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the other instance never learned of the revocation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_problem(
        second.refresh(&tokens.refresh).await,
        StatusCode::UNAUTHORIZED,
        "invalid_grant",
    )
    .await;
    second.stop().await;
    first.stop().await;
}
