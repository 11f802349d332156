//! Bad input: every error is problem+json, never a 500.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn malformed_json_is_a_bad_request() {
    let app = spawn_app().await;
    for body in [
        "{",
        "not json",
        "[]",
        "{\"email\": 1, \"password\": true}",
        "{\"email\":\"a@example.com\"}",
        "",
    ] {
        let resp = app
            .request(Method::POST, "/api/v1/auth/signup")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_problem(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn wrong_content_type_is_unsupported() {
    let app = spawn_app().await;
    let resp = app
        .request(Method::POST, "/api/v1/auth/login")
        .header("content-type", "text/plain")
        .body("email=a@example.com")
        .send()
        .await
        .unwrap();
    assert_problem(
        resp,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let resp = app
        .request(Method::POST, "/api/v1/auth/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=a@example.com&password=x")
        .send()
        .await
        .unwrap();
    assert_problem(
        resp,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_or_without_a_length() {
    let app = spawn_app().await;
    let big = json!({"email": "big@example.com", "password": "x".repeat(20 * 1024)}).to_string();

    let resp = app
        .request(Method::POST, "/api/v1/auth/signup")
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    // Chunked, so no Content-Length announces it.
    let stream = futures::stream::iter(
        big.into_bytes()
            .chunks(1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let resp = app
        .request(Method::POST, "/api/v1/auth/signup")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    app.stop().await;
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problems() {
    let app = spawn_app().await;
    let resp = app
        .request(Method::GET, "/api/v1/nope")
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::NOT_FOUND, "not_found").await;
    let resp = app
        .request(Method::DELETE, "/api/v1/auth/login")
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let resp = app
        .request(Method::PUT, "/health/live")
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    app.stop().await;
}

#[tokio::test]
async fn bad_path_and_query_parameters_are_bad_requests() {
    let app = spawn_app().await;
    let (_, tokens) = app.new_user().await;
    let resp = app.get_task(&tokens.access, "not-a-uuid").await;
    assert_problem(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    let resp = app.list_tasks(&tokens.access, &[("limit", "0")]).await;
    assert_problem(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    let resp = app.list_tasks(&tokens.access, &[("limit", "abc")]).await;
    assert_problem(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    let resp = app.log_out(&tokens.access, Some("everything")).await;
    assert_problem(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    app.stop().await;
}

#[tokio::test]
async fn error_bodies_never_carry_internals() {
    let app = spawn_app().await;
    let resp = app
        .request(Method::POST, "/api/v1/auth/login")
        .header("content-type", "application/json")
        .body("{\"email\": \"x@example.com\", \"password\": ")
        .send()
        .await
        .unwrap();
    let body = assert_problem(resp, StatusCode::BAD_REQUEST, "bad_request").await;
    let text = body.to_string().to_lowercase();
    for leak in ["sqlx", "sea_orm", "panicked", "src/", ".rs:"] {
        assert!(!text.contains(leak), "{text}");
    }
    app.stop().await;
}

#[tokio::test]
async fn method_not_allowed_names_the_allowed_methods() {
    let app = spawn_app().await;
    let resp = app
        .request(Method::DELETE, "/api/v1/auth/login")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "POST");
    let resp = app
        .request(
            Method::PUT,
            "/api/v1/tasks/00000000-0000-0000-0000-000000000000",
        )
        .send()
        .await
        .unwrap();
    let allow = resp.headers()["allow"].to_str().unwrap().to_owned();
    for method in ["GET", "PATCH", "DELETE"] {
        assert!(allow.contains(method), "{allow}");
    }
    assert_eq!(app.favicon().await.status(), StatusCode::NO_CONTENT);
    app.stop().await;
}
