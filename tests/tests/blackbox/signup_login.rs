//! Sign-up, log-in and the first protected call.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn signup_returns_a_token_pair_that_calls_me() {
    let app = spawn_app().await;

    let resp = app.sign_up("  Alice@Example.COM ", PASSWORD).await;

    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let tokens = Tokens::from(resp).await;
    assert_eq!(tokens.body["token_type"], "Bearer");
    assert_eq!(tokens.body["expires_in"], 900);
    assert!(tokens.body["refresh_expires_in"].as_i64().unwrap() > 0);
    assert_eq!(tokens.body["user"]["email"], "alice@example.com");
    assert_eq!(tokens.refresh.len(), 43);

    let me = app.me(&tokens.access).await;
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["id"], tokens.body["user"]["id"]);
    app.stop().await;
}

#[tokio::test]
async fn access_token_has_the_documented_header_and_claims() {
    let app = spawn_app().await;
    let (_, tokens) = app.new_user().await;

    let header: Value = {
        use base64::Engine;
        let raw = tokens.access.split('.').next().unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(raw)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    let claims = claims(&tokens.access);
    for claim in ["iss", "aud", "sub", "sid", "jti", "iat", "nbf", "exp"] {
        assert!(!claims[claim].is_null(), "missing {claim}: {claims}");
    }
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert_eq!(claims["sub"], tokens.body["user"]["id"]);

    let jwks: Value = app.jwks().await.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], header["kid"]);
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["crv"], "Ed25519");
    assert!(
        keys[0].get("d").is_none(),
        "the private key must never be published"
    );
    app.stop().await;
}

#[tokio::test]
async fn login_opens_a_new_session() {
    let app = spawn_app().await;
    let (email, first) = app.new_user().await;

    let resp = app.log_in(&email.to_uppercase(), PASSWORD).await;

    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let second = Tokens::from(resp).await;
    assert_ne!(first.session_id(), second.session_id());
    assert_eq!(app.me(&second.access).await.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn duplicate_email_is_a_conflict_whatever_its_case() {
    let app = spawn_app().await;
    let (email, _) = app.new_user().await;

    let resp = app.sign_up(&email.to_uppercase(), PASSWORD).await;

    assert_problem(resp, StatusCode::CONFLICT, "email_taken").await;
    app.stop().await;
}

#[tokio::test]
async fn concurrent_signups_with_one_email_give_one_201_and_the_rest_409() {
    let app = spawn_app().await;
    let email = "race@example.com";

    let responses = futures::future::join_all((0..4).map(|i| {
        let email = if i % 2 == 0 {
            email.to_owned()
        } else {
            email.to_uppercase()
        };
        let app = &app;
        async move { app.sign_up(&email, PASSWORD).await.status() }
    }))
    .await;

    let created = responses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = responses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 3), "{responses:?}");
    app.stop().await;
}

#[tokio::test]
async fn every_password_rule_names_its_reason() {
    let app = spawn_with(Options {
        env: vec![("PORTCULLIS_PASSWORD_MIN_LENGTH", "8".to_owned())],
        ..Options::default()
    })
    .await;
    let cases = [
        ("short@example.com", "seven77", "password_too_short"),
        ("long@example.com", &"x".repeat(129), "password_too_long"),
        ("common@example.com", "password", "password_common"),
        ("common2@example.com", "iloveyou", "password_common"),
        (
            "margaret@example.com",
            "hello margaret how are you",
            "password_contains_email",
        ),
        (
            "svc@example.com",
            "my portcullis password!",
            "password_contains_service_name",
        ),
    ];
    for (email, password, code) in cases {
        let body = assert_problem(
            app.sign_up(email, password).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        )
        .await;
        assert!(!body["detail"].as_str().unwrap().is_empty());
    }
    // Length is counted in code points: 8 emoji pass, 7 do not.
    assert_eq!(
        app.sign_up("emoji@example.com", &"🔑".repeat(8))
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_problem(
        app.sign_up("emoji2@example.com", &"🔑".repeat(7)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "password_too_short",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn default_minimum_is_fifteen_code_points() {
    let app = spawn_app().await;
    assert_problem(
        app.sign_up("min@example.com", "fourteen chars").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "password_too_short",
    )
    .await;
    assert_eq!(
        app.sign_up("min@example.com", "fifteen chars!!")
            .await
            .status(),
        StatusCode::CREATED
    );
    app.stop().await;
}

#[tokio::test]
async fn invalid_email_is_unprocessable() {
    let app = spawn_app().await;
    for email in [
        "",
        "no-at-sign",
        "a@b",
        "two@@example.com",
        "spa ce@example.com",
    ] {
        assert_problem(
            app.sign_up(email, PASSWORD).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_email",
        )
        .await;
    }
    app.stop().await;
}

#[tokio::test]
async fn wrong_password_and_unknown_email_answer_identically() {
    let app = spawn_app().await;
    let (email, _) = app.new_user().await;

    let wrong = app.log_in(&email, "this is not the password").await;
    let unknown = app.log_in("nobody-here@example.com", PASSWORD).await;

    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let strip = |resp: &reqwest::Response| {
        let mut headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "date" | "x-request-id" | "x-trace-id"))
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
            .collect();
        headers.sort();
        headers
    };
    assert_eq!(strip(&wrong), strip(&unknown));
    let wrong_body = wrong.bytes().await.unwrap();
    let unknown_body = unknown.bytes().await.unwrap();
    assert_eq!(wrong_body, unknown_body);
    let body: Value = serde_json::from_slice(&wrong_body).unwrap();
    assert_eq!(body["code"], "invalid_credentials");
    app.stop().await;
}

#[tokio::test]
async fn mass_assignment_fields_are_ignored() {
    let app = spawn_app().await;
    // Extra fields the sign-up body does not define: a hand-built request.
    let resp = app
        .request(Method::POST, "/api/v1/auth/signup")
        .json(&json!({"email": "mass@example.com", "password": PASSWORD, "role": "admin", "email_verified": true, "id": "00000000-0000-0000-0000-000000000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let tokens = Tokens::from(resp).await;
    let me: Value = app.me(&tokens.access).await.json().await.unwrap();
    assert_ne!(me["id"], "00000000-0000-0000-0000-000000000000");
    assert!(me.get("role").is_none());
    app.stop().await;
}

#[tokio::test]
async fn restart_keeps_users_sessions_and_keys() {
    let app = spawn_app().await;
    let (email, tokens) = app.new_user().await;
    let kid_before: Value = app.jwks().await.json().await.unwrap();
    let (dir, data_dir, database_url) = app.stop_keeping_data().await;

    let app = spawn_with(Options {
        data_dir: Some(data_dir.clone()),
        database_url,
        ..Options::default()
    })
    .await;

    assert_eq!(
        app.me(&tokens.access).await.status(),
        StatusCode::OK,
        "old access token still verifies"
    );
    assert_eq!(app.log_in(&email, PASSWORD).await.status(), StatusCode::OK);
    assert_eq!(app.refresh(&tokens.refresh).await.status(), StatusCode::OK);
    let kid_after: Value = app.jwks().await.json().await.unwrap();
    assert_eq!(kid_before, kid_after);
    let key_file = std::fs::read_dir(data_dir.join("keys"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        key_file.metadata().unwrap().permissions().mode() & 0o777,
        0o600
    );
    app.stop().await;
    drop(dir);
}

#[tokio::test]
async fn hs256_mode_signs_and_publishes_no_key() {
    let app = spawn_with(Options {
        env: vec![(
            "PORTCULLIS_JWT_SECRET",
            "0123456789abcdef0123456789abcdef-secret".to_owned(),
        )],
        ..Options::default()
    })
    .await;
    let (_, tokens) = app.new_user().await;
    let header = tokens.access.split('.').next().unwrap();
    use base64::Engine;
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "HS256");
    assert_eq!(app.me(&tokens.access).await.status(), StatusCode::OK);
    let jwks: Value = app.jwks().await.json().await.unwrap();
    assert_eq!(jwks["keys"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn health_and_docs_are_served() {
    let app = spawn_app().await;
    assert_eq!(app.health_live().await.status(), StatusCode::OK);
    assert_eq!(app.health_ready().await.status(), StatusCode::OK);
    let docs = app.docs().await;
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger"));
    let spec: Value = app.openapi_json().await.json().await.unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    assert!(spec["paths"]["/api/v1/auth/signup"]["post"]["operationId"] == "signUp");
    let yaml = app.openapi_yaml().await;
    assert_eq!(yaml.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn look_alike_emails_cannot_make_a_second_account() {
    let app = spawn_app().await;
    let alice = Tokens::from(app.sign_up("alice@example.com", PASSWORD).await).await;
    // The same address with a precomposed í, the way most keyboards type it.
    let composed = Tokens::from(app.sign_up("al\u{ed}ce@example.com", PASSWORD).await).await;
    assert_ne!(alice.body["user"]["id"], composed.body["user"]["id"]);

    // Invisible and direction characters are refused, naming the character.
    for (email, named) in [
        ("alice\u{200b}@example.com", "U+200B"),
        ("\u{202e}alice@example.com", "U+202E"),
        ("\u{202e}evil@example.com", "U+202E"),
        ("ali\u{feff}ce@example.com", "U+FEFF"),
    ] {
        let problem = assert_problem(
            app.sign_up(email, PASSWORD).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_email",
        )
        .await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(named), "{email:?}: {detail}");
        // Log-in refuses them the same way, before any account is looked up.
        assert_problem(
            app.log_in(email, PASSWORD).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_email",
        )
        .await;
    }

    // The decomposed í (i + U+0301) is the same address after NFC.
    assert_problem(
        app.sign_up("ali\u{301}ce@example.com", PASSWORD).await,
        StatusCode::CONFLICT,
        "email_taken",
    )
    .await;
    let login = Tokens::from(app.log_in("ali\u{301}ce@example.com", PASSWORD).await).await;
    assert_eq!(login.body["user"]["id"], composed.body["user"]["id"]);
    assert_eq!(login.body["user"]["email"], "al\u{ed}ce@example.com");
    app.stop().await;
}
