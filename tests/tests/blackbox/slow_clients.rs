//! Clients that send slowly or too much: a request head or body that stops
//! half-way is cut at its deadline, and an answer given before the body was
//! read (413) tells a pooled client that the connection is done.
//!
//! The connection cap and the slowloris flood need a lowered file limit for
//! the whole server process: they are in `api/tests/slow_clients.rs`, which
//! runs the binary as a child.
//!
//! Every wait has a hang guard ([`GUARD`]), never a timing assertion: the
//! deadlines are set to 1 s and the guard is far longer.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Options, assert_problem, spawn_with};

/// Hang guard: far beyond the 1 s deadlines the server is given.
const GUARD: Duration = Duration::from_secs(20);

fn with_deadlines() -> Options {
    Options {
        env: vec![
            ("PORTCULLIS_HEADER_TIMEOUT_SECS", "1".to_owned()),
            ("PORTCULLIS_BODY_TIMEOUT_SECS", "1".to_owned()),
        ],
        ..Options::default()
    }
}

/// Everything the server sends until it closes the connection (a reset
/// counts as a close), or `None` when the guard ran out first.
async fn read_until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(GUARD, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&received).into_owned())
}

#[tokio::test]
async fn a_request_head_that_stops_half_way_is_closed_at_the_header_deadline() {
    let app = spawn_with(with_deadlines()).await;
    let mut stream = TcpStream::connect(app.addr()).await.unwrap();
    stream.write_all(b"GET /health/li").await.unwrap();

    let answer = read_until_closed(&mut stream).await;
    assert!(
        answer.is_some(),
        "the server held a half-sent request line past the guard"
    );

    // The server still serves everyone else.
    let resp = app.health_live().await;
    assert_eq!(resp.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_header_deadline() {
    let app = spawn_with(with_deadlines()).await;
    let mut stream = TcpStream::connect(app.addr()).await.unwrap();
    assert!(
        read_until_closed(&mut stream).await.is_some(),
        "the server held a connection that never sent a byte past the guard"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_body_that_stops_half_way_gets_408_and_the_connection_closes() {
    let app = spawn_with(with_deadlines()).await;
    let mut stream = TcpStream::connect(app.addr()).await.unwrap();
    let head = format!(
        "POST /api/v1/auth/signup HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"email\":",
        app.addr()
    );
    stream.write_all(head.as_bytes()).await.unwrap();

    let answer = read_until_closed(&mut stream)
        .await
        .expect("the server held a half-sent body past the guard");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    app.stop().await;
}

#[tokio::test]
async fn a_pooled_client_keeps_working_after_an_early_413() {
    let app = spawn_with(with_deadlines()).await;
    // One client, one pool: the next requests go where the 413 came from
    // unless the server said the connection is done.
    let big = json!({"email": "big@example.com", "password": "x".repeat(17 * 1024)}).to_string();
    for _ in 0..3 {
        let resp = app
            .request(Method::POST, "/api/v1/auth/signup")
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.headers().get("connection").map(|v| v.as_bytes()),
            Some(&b"close"[..]),
            "an answer sent before the body was read must close the connection"
        );
        assert_problem(resp, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

        let resp = app.health_live().await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    app.stop().await;
}
