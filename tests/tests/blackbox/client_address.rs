//! The client address behind trusted proxies: only the configured
//! forwarding header is read, and IPv6 clients share their limits with
//! their whole /64 (or the configured prefix) while sessions and events
//! keep the real address.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// Trusted proxy 127.0.0.1 (every test client), a sign-up burst of two.
fn behind_proxy(extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1/32".to_owned()),
        ("PORTCULLIS_RATE_LIMIT_SIGNUP_PER_MIN", "1".to_owned()),
        ("PORTCULLIS_RATE_LIMIT_SIGNUP_BURST", "2".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    env
}

async fn sign_up_with(app: &TestApp, email: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = app
        .request(Method::POST, "/api/v1/auth/signup")
        .json(&json!({"email": email, "password": PASSWORD}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// The client address the session of a fresh sign-up recorded.
async fn recorded_ip(app: &TestApp, resp: Response) -> Value {
    assert_eq!(resp.status(), StatusCode::CREATED);
    let tokens = Tokens::from(resp).await;
    let sessions: Value = app
        .list_sessions(&tokens.access)
        .await
        .json()
        .await
        .unwrap();
    sessions["items"][0]["client_ip"].clone()
}

#[tokio::test]
async fn ipv6_addresses_of_one_network_share_one_budget() {
    let app = spawn_with(Options {
        env: behind_proxy(&[]),
        ..Options::default()
    })
    .await;
    let from = |ip: &'static str| [("x-forwarded-for", ip)];

    let first = sign_up_with(&app, "v1@example.com", &from("2001:db8:1:2::1")).await;
    assert_eq!(recorded_ip(&app, first).await, "2001:db8:1:2::1");
    let second = sign_up_with(&app, "v2@example.com", &from("2001:db8:1:2:aaaa::2")).await;
    assert_eq!(
        recorded_ip(&app, second).await,
        "2001:db8:1:2:aaaa::2",
        "sessions keep the real address"
    );
    // A third address of the same /64 finds the budget spent.
    let third = sign_up_with(&app, "v3@example.com", &from("2001:db8:1:2:ffff:1:2:3")).await;
    assert_problem(third, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Another /64 has its own budget.
    let other = sign_up_with(&app, "v4@example.com", &from("2001:db8:1:3::1")).await;
    assert_eq!(recorded_ip(&app, other).await, "2001:db8:1:3::1");
    app.stop().await;
}

#[tokio::test]
async fn a_prefix_of_128_counts_each_ipv6_address_alone() {
    let app = spawn_with(Options {
        env: behind_proxy(&[("PORTCULLIS_IPV6_PREFIX", "128")]),
        ..Options::default()
    })
    .await;
    for (n, ip) in ["2001:db8::1", "2001:db8::2", "2001:db8::3"]
        .iter()
        .enumerate()
    {
        let resp = sign_up_with(
            &app,
            &format!("w{n}@example.com"),
            &[("x-forwarded-for", ip)],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::CREATED, "{ip}");
    }
    app.stop().await;
}

#[tokio::test]
async fn with_forwarded_configured_x_forwarded_for_is_ignored() {
    let app = spawn_with(Options {
        env: behind_proxy(&[("PORTCULLIS_CLIENT_IP_HEADER", "forwarded")]),
        ..Options::default()
    })
    .await;
    let both = sign_up_with(
        &app,
        "f1@example.com",
        &[
            ("x-forwarded-for", "198.51.100.9"),
            ("forwarded", "for=198.51.100.10;proto=https"),
        ],
    )
    .await;
    assert_eq!(recorded_ip(&app, both).await, "198.51.100.10");
    let xff_only = sign_up_with(
        &app,
        "f2@example.com",
        &[("x-forwarded-for", "198.51.100.9")],
    )
    .await;
    assert_eq!(
        recorded_ip(&app, xff_only).await,
        "127.0.0.1",
        "a client must not choose its address through the header the proxy does not write"
    );
    app.stop().await;
}

#[tokio::test]
async fn by_default_forwarded_is_ignored() {
    let app = spawn_with(Options {
        env: behind_proxy(&[]),
        ..Options::default()
    })
    .await;
    let both = sign_up_with(
        &app,
        "g1@example.com",
        &[
            ("x-forwarded-for", "198.51.100.9"),
            ("forwarded", "for=198.51.100.10"),
        ],
    )
    .await;
    assert_eq!(recorded_ip(&app, both).await, "198.51.100.9");
    let forwarded_only = sign_up_with(
        &app,
        "g2@example.com",
        &[("forwarded", "for=198.51.100.10")],
    )
    .await;
    assert_eq!(recorded_ip(&app, forwarded_only).await, "127.0.0.1");
    app.stop().await;
}
