//! Handler tests on in-memory ports: the real routes, middleware and error
//! mapping over the domain's fakes (`portcullis_domain::testkit`), with no
//! database, no hashing pool and no socket. What the black-box suite proves
//! over real parts, these prove fast and for every branch they reach.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use async_trait::async_trait;
use poem::http::StatusCode;
use poem::test::TestClient;
use poem::{Endpoint, Response};
use portcullis_api::app::routes;
use portcullis_api::http::client_ip::ClientIpPolicy;
use portcullis_api::metrics::Metrics;
use portcullis_api::state::{AppState, Readiness};
use portcullis_domain::error::Failure;
use portcullis_domain::testkit::InMemoryServices;
use portcullis_infra::crypto::SigningKeys;
use serde_json::{Value, json};
use time::macros::datetime;

const PASSWORD: &str = "a long and quiet river at dawn";

/// Readiness that answers what it is told.
struct FixedReadiness(bool);

#[async_trait]
impl Readiness for FixedReadiness {
    async fn check(&self) -> Result<(), Failure> {
        if self.0 {
            Ok(())
        } else {
            Err(Failure::unavailable("down"))
        }
    }
}

fn app_with(
    ready: bool,
) -> (
    TestClient<impl Endpoint<Output = Response>>,
    InMemoryServices,
) {
    let services = InMemoryServices::new(datetime!(2026-12-01 12:00 UTC));
    let state = Arc::new(AppState {
        auth: services.auth.clone(),
        account: services.account.clone(),
        mfa: services.mfa.clone(),
        sessions: services.sessions.clone(),
        audit_log: services.audit_log.clone(),
        tasks: services.tasks.clone(),
        keys: SigningKeys::hs256(&[7u8; 32]).unwrap(),
        readiness: Arc::new(FixedReadiness(ready)),
        metrics: Arc::new(Metrics::new(Arc::new(|| 0), Arc::new(|| 0))),
    });
    (
        TestClient::new(routes(
            state,
            ClientIpPolicy::default(),
            std::time::Duration::from_secs(10),
        )),
        services,
    )
}

fn app() -> TestClient<impl Endpoint<Output = Response>> {
    app_with(true).0
}

async fn sign_up(client: &TestClient<impl Endpoint<Output = Response>>, email: &str) -> Value {
    let resp = client
        .post("/api/v1/auth/signup")
        .body_json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await;
    resp.assert_status(StatusCode::CREATED);
    resp.assert_header("cache-control", "no-store");
    resp.json().await.value().deserialize()
}

async fn problem_code(resp: poem::test::TestResponse) -> String {
    resp.assert_content_type("application/problem+json");
    let body: Value = resp.json().await.value().deserialize();
    body["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn sign_up_then_log_in_then_me() {
    let client = app();
    let pair = sign_up(&client, "Alice@Example.com").await;
    assert_eq!(pair["user"]["email"], "alice@example.com");
    assert_eq!(pair["token_type"], "Bearer");

    let resp = client
        .post("/api/v1/auth/login")
        .body_json(&json!({"email": "alice@example.com", "password": PASSWORD}))
        .send()
        .await;
    resp.assert_status_is_ok();
    let login: Value = resp.json().await.value().deserialize();
    let access = login["access_token"].as_str().unwrap();

    let resp = client
        .get("/api/v1/users/me")
        .header("authorization", format!("Bearer {access}"))
        .send()
        .await;
    resp.assert_status_is_ok();
    let me: Value = resp.json().await.value().deserialize();
    assert_eq!(me["email"], "alice@example.com");
}

#[tokio::test]
async fn every_credential_problem_is_the_same_401() {
    let client = app();
    sign_up(&client, "bob@example.com").await;
    for (email, password) in [
        ("bob@example.com", "not the password at all"),
        ("nobody@example.com", PASSWORD),
    ] {
        let resp = client
            .post("/api/v1/auth/login")
            .body_json(&json!({"email": email, "password": password}))
            .send()
            .await;
        resp.assert_status(StatusCode::UNAUTHORIZED);
        assert_eq!(problem_code(resp).await, "invalid_credentials");
    }
}

#[tokio::test]
async fn weak_passwords_and_bad_emails_are_422_with_the_rule() {
    let client = app();
    for (body, code) in [
        (
            json!({"email": "carol@example.com", "password": "password1234567890"}),
            "password_common",
        ),
        (
            json!({"email": "carol@example.com", "password": "short"}),
            "password_too_short",
        ),
        (
            json!({"email": "not an address", "password": PASSWORD}),
            "invalid_email",
        ),
    ] {
        let resp = client
            .post("/api/v1/auth/signup")
            .body_json(&body)
            .send()
            .await;
        resp.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem_code(resp).await, code, "{body}");
    }
    sign_up(&client, "carol@example.com").await;
    let resp = client
        .post("/api/v1/auth/signup")
        .body_json(&json!({"email": "carol@example.com", "password": PASSWORD}))
        .send()
        .await;
    resp.assert_status(StatusCode::CONFLICT);
    assert_eq!(problem_code(resp).await, "email_taken");
}

#[tokio::test]
async fn refresh_rotates_and_malformed_or_unknown_tokens_are_invalid_grant() {
    let client = app();
    let pair = sign_up(&client, "dave@example.com").await;
    let resp = client
        .post("/api/v1/auth/refresh")
        .body_json(&json!({"refresh_token": pair["refresh_token"]}))
        .send()
        .await;
    resp.assert_status_is_ok();
    let next: Value = resp.json().await.value().deserialize();
    assert_ne!(next["refresh_token"], pair["refresh_token"]);
    for token in ["garbage", &"z".repeat(43)] {
        let resp = client
            .post("/api/v1/auth/refresh")
            .body_json(&json!({"refresh_token": token}))
            .send()
            .await;
        resp.assert_status(StatusCode::UNAUTHORIZED);
        assert_eq!(problem_code(resp).await, "invalid_grant");
    }
}

#[tokio::test]
async fn logout_revokes_the_session_and_its_access_token_at_once() {
    let (client, services) = app_with(true);
    let pair = sign_up(&client, "erin@example.com").await;
    let access = pair["access_token"].as_str().unwrap();
    let resp = client
        .get("/api/v1/sessions")
        .header("authorization", format!("Bearer {access}"))
        .send()
        .await;
    resp.assert_status_is_ok();
    let list: Value = resp.json().await.value().deserialize();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["current"], true);

    let resp = client
        .post("/api/v1/auth/logout")
        .header("authorization", format!("Bearer {access}"))
        .send()
        .await;
    resp.assert_status_is_ok();
    let resp = client
        .get("/api/v1/users/me")
        .header("authorization", format!("Bearer {access}"))
        .send()
        .await;
    resp.assert_status(StatusCode::UNAUTHORIZED);
    resp.assert_header("www-authenticate", r#"Bearer error="invalid_token""#);
    let kinds: Vec<&str> = services
        .store
        .events()
        .iter()
        .map(|event| event.kind.as_str())
        .collect();
    assert!(kinds.contains(&"logout"), "{kinds:?}");
    assert!(kinds.contains(&"access_token_rejected"), "{kinds:?}");
}

#[tokio::test]
async fn the_caller_reads_its_own_events_in_pages() {
    let client = app();
    let pair = sign_up(&client, "frank@example.com").await;
    let access = pair["access_token"].as_str().unwrap();
    let resp = client
        .get("/api/v1/auth/events")
        .query("limit", &1)
        .header("authorization", format!("Bearer {access}"))
        .send()
        .await;
    resp.assert_status_is_ok();
    let page: Value = resp.json().await.value().deserialize();
    assert_eq!(page["items"][0]["type"], "signup");
}

#[tokio::test]
async fn tasks_are_per_user_and_another_users_task_is_404() {
    let client = app();
    let alice = sign_up(&client, "grace@example.com").await;
    let bob = sign_up(&client, "heidi@example.com").await;
    let bearer = |pair: &Value| format!("Bearer {}", pair["access_token"].as_str().unwrap());
    let resp = client
        .post("/api/v1/tasks")
        .header("authorization", bearer(&alice))
        .body_json(&json!({"title": "Rotate the signing key"}))
        .send()
        .await;
    resp.assert_status(StatusCode::CREATED);
    let task: Value = resp.json().await.value().deserialize();
    let path = format!("/api/v1/tasks/{}", task["id"].as_str().unwrap());
    client
        .get(&path)
        .header("authorization", bearer(&alice))
        .send()
        .await
        .assert_status_is_ok();
    let resp = client
        .get(&path)
        .header("authorization", bearer(&bob))
        .send()
        .await;
    resp.assert_status(StatusCode::NOT_FOUND);
    assert_eq!(problem_code(resp).await, "not_found");
}

#[tokio::test]
async fn readiness_follows_the_port() {
    let (up, _) = app_with(true);
    up.get("/health/ready").send().await.assert_status_is_ok();
    let (down, _) = app_with(false);
    let resp = down.get("/health/ready").send().await;
    resp.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    resp.assert_header("retry-after", "2");
    assert_eq!(problem_code(resp).await, "unavailable");
}
