//! Property-based fuzzing of the JSON request bodies over real HTTP:
//! whatever arrives, the answer is a documented 2xx/4xx, never a 5xx, and
//! every error is problem+json.
//!
//! CI runs the default case count; a longer run is
//! `PROPTEST_CASES=5000 cargo test -p portcullis-tests --test blackbox fuzz`.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};

use crate::helpers::*;

/// Arbitrary JSON, biased towards the field names the API reads.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,80}".prop_map(Value::String),
        "[a-z]{1,12}@[a-z]{1,8}\\.[a-z]{2,3}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("email".to_owned()),
                        Just("password".to_owned()),
                        Just("refresh_token".to_owned()),
                        Just("title".to_owned()),
                        Just("description".to_owned()),
                        Just("done".to_owned()),
                        "[a-z_]{1,10}",
                    ],
                    inner,
                ),
                0..6,
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Raw bytes that are sometimes almost-JSON.
fn arb_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        arb_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        prop::collection::vec(any::<u8>(), 0..256),
        arb_json().prop_map(|v| {
            let mut bytes = serde_json::to_vec(&v).unwrap();
            bytes.truncate(bytes.len() / 2);
            bytes
        }),
    ]
}

#[test]
fn arbitrary_bodies_never_cause_a_server_error() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let app = runtime.block_on(spawn_with(Options {
        // Cheap policy so arbitrary strings of 8+ chars reach the hasher too.
        env: vec![("PORTCULLIS_PASSWORD_MIN_LENGTH", "8".to_owned())],
        ..Options::default()
    }));
    let (_, tokens) = runtime.block_on(app.new_user());
    let task_id = runtime.block_on(async {
        let resp = app
            .create_task(&tokens.access, &json!({"title": "fuzz target"}))
            .await;
        resp.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    let targets: Vec<(reqwest::Method, String, bool)> = vec![
        (
            reqwest::Method::POST,
            "/api/v1/auth/signup".to_owned(),
            false,
        ),
        (
            reqwest::Method::POST,
            "/api/v1/auth/login".to_owned(),
            false,
        ),
        (
            reqwest::Method::POST,
            "/api/v1/auth/refresh".to_owned(),
            false,
        ),
        (reqwest::Method::POST, "/api/v1/tasks".to_owned(), true),
        (
            reqwest::Method::PATCH,
            format!("/api/v1/tasks/{task_id}"),
            true,
        ),
    ];

    let mut runner = TestRunner::new(Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(96),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(0..targets.len(), arb_body()), |(target, body)| {
            let (method, path, authed) = &targets[target];
            let (status, content_type) = runtime.block_on(async {
                let mut request = app
                    .request(method.clone(), path)
                    .header("content-type", "application/json")
                    .body(body.clone());
                if *authed {
                    request = request.bearer_auth(&tokens.access);
                }
                let resp = request.send().await.unwrap();
                let content_type = resp
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                (resp.status(), content_type)
            });
            prop_assert!(
                !status.is_server_error() || status == reqwest::StatusCode::SERVICE_UNAVAILABLE,
                "{method} {path}: {status}"
            );
            if status.is_client_error() || status.is_server_error() {
                prop_assert!(
                    content_type.starts_with("application/problem+json"),
                    "{method} {path}: {status} as {content_type}"
                );
            }
            Ok(())
        })
        .unwrap();
    runtime.block_on(app.stop());
}

/// Dotted base64url-ish strings, sometimes built around a real token.
fn arb_bearer(real: String) -> impl Strategy<Value = String> {
    let segment = "[A-Za-z0-9_=+/-]{0,60}";
    prop_oneof![
        "[ -~]{0,200}",
        (segment, segment, segment).prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
        (any::<prop::sample::Index>(), any::<char>()).prop_map(move |(at, c)| {
            let mut chars: Vec<char> = real.chars().collect();
            let i = at.index(chars.len());
            chars[i] = c;
            chars.into_iter().collect()
        }),
    ]
}

#[test]
fn arbitrary_bearer_tokens_are_always_a_plain_401() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let app = runtime.block_on(spawn_app());
    let (_, tokens) = runtime.block_on(app.new_user());
    let mut runner = TestRunner::new(Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(128),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&arb_bearer(tokens.access.clone()), |token| {
            prop_assume!(token != tokens.access);
            let Ok(header) = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            else {
                return Ok(());
            };
            let (status, challenge) = runtime.block_on(async {
                let resp = app
                    .request(reqwest::Method::GET, "/api/v1/auth/verify")
                    .header("authorization", header)
                    .send()
                    .await
                    .unwrap();
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap().to_owned());
                (resp.status(), challenge)
            });
            prop_assert_eq!(
                status,
                reqwest::StatusCode::UNAUTHORIZED,
                "token {:?}",
                token
            );
            prop_assert_eq!(
                challenge.as_deref(),
                Some(r#"Bearer error="invalid_token""#)
            );
            Ok(())
        })
        .unwrap();
    runtime.block_on(app.stop());
}
