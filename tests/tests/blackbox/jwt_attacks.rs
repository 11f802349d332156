//! Every access-token attack of SECURITY.md gets the same 401.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

async fn assert_rejected(app: &TestApp, token: &str, what: &str) {
    assert_rejected_on(app.me(token).await, "/api/v1/users/me", what).await;
    assert_rejected_on(app.verify(token).await, "/api/v1/auth/verify", what).await;
}

async fn assert_rejected_on(resp: reqwest::Response, path: &str, what: &str) {
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what} on {path}");
    assert_eq!(
        resp.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#,
        "{what}"
    );
    assert_problem(resp, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

type ClaimEdit = Box<dyn Fn(&mut Value)>;

struct Forge {
    kid: String,
    key: EncodingKey,
    claims: Value,
    public_x: Vec<u8>,
}

async fn forge(app: &TestApp, tokens: &Tokens) -> Forge {
    let (_, pem) = signing_key_pem(&app.data_dir);
    let jwks: Value = app.jwks().await.json().await.unwrap();
    Forge {
        kid: jwks["keys"][0]["kid"].as_str().unwrap().to_owned(),
        key: EncodingKey::from_ed_pem(&pem).unwrap(),
        claims: claims(&tokens.access),
        public_x: URL_SAFE_NO_PAD
            .decode(jwks["keys"][0]["x"].as_str().unwrap())
            .unwrap(),
    }
}

impl Forge {
    fn sign(
        &self,
        header_edit: impl FnOnce(&mut Header),
        claims_edit: impl FnOnce(&mut Value),
    ) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(self.kid.clone());
        header_edit(&mut header);
        let mut claims = self.claims.clone();
        claims_edit(&mut claims);
        encode(&header, &claims, &self.key).unwrap()
    }
}

#[tokio::test]
async fn a_correctly_forged_token_is_accepted_so_the_forge_is_sound() {
    let app = spawn_app().await;
    let (_, tokens) = app.new_user().await;
    let forge = forge(&app, &tokens).await;
    let token = forge.sign(|_| {}, |_| {});
    assert_eq!(app.me(&token).await.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn signature_and_structure_attacks_are_rejected() {
    let app = spawn_app().await;
    let (_, tokens) = app.new_user().await;
    let t = tokens.access.clone();
    let parts: Vec<&str> = t.split('.').collect();
    let mut flipped = parts[2].as_bytes().to_vec();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    let flipped = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        String::from_utf8(flipped).unwrap()
    );

    let cases = vec![
        (flipped, "flipped signature byte"),
        (format!("{}.{}.", parts[0], parts[1]), "stripped signature"),
        (format!("{}.{}", parts[0], parts[1]), "two segments"),
        (
            format!(
                "{}.{}.{}",
                parts[0],
                parts[1],
                &parts[2][..parts[2].len() - 4]
            ),
            "truncated signature",
        ),
        (format!("{t}.extra"), "extra segment"),
        (format!("{t}."), "trailing dot"),
        (format!(" {t}"), "leading space inside the credential"),
        (
            format!("{}.{}.{}", parts[0], b64(&json!({"sub": "x"})), parts[2]),
            "swapped payload",
        ),
        (tokens.refresh.clone(), "refresh token as bearer"),
        ("x".repeat(64 * 1024), "oversized token"),
        (String::new(), "empty token"),
    ];
    for (token, what) in cases {
        assert_rejected(&app, &token, what).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn header_attacks_are_rejected() {
    let app = spawn_app().await;
    let (_, tokens) = app.new_user().await;
    let forge = forge(&app, &tokens).await;
    let payload = tokens.access.split('.').nth(1).unwrap().to_owned();
    let signature = tokens.access.split('.').nth(2).unwrap().to_owned();

    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64(&json!({"alg": alg, "typ": "at+jwt", "kid": forge.kid}));
        assert_rejected(&app, &format!("{header}.{payload}."), alg).await;
        assert_rejected(&app, &format!("{header}.{payload}.{signature}"), alg).await;
    }

    // Key confusion: HS256 keyed with the published public key.
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some(forge.kid.clone());
    let confused = encode(
        &header,
        &forge.claims,
        &EncodingKey::from_secret(&forge.public_x),
    )
    .unwrap();
    assert_rejected(&app, &confused, "HS256 with the public key").await;

    let unknown_kid = forge.sign(|h| h.kid = Some("someone-elses-key".to_owned()), |_| {});
    assert_rejected(&app, &unknown_kid, "unknown kid").await;
    let traversal = forge.sign(
        |h| h.kid = Some("../../../../etc/passwd".to_owned()),
        |_| {},
    );
    assert_rejected(&app, &traversal, "path traversal kid").await;
    let no_kid = forge.sign(|h| h.kid = None, |_| {});
    assert_rejected(&app, &no_kid, "no kid").await;
    let jku = forge.sign(
        |h| h.jku = Some("http://127.0.0.1:9/jwks.json".to_owned()),
        |_| {},
    );
    assert_rejected(&app, &jku, "jku header").await;
    let x5u = forge.sign(
        |h| h.x5u = Some("http://127.0.0.1:9/cert.pem".to_owned()),
        |_| {},
    );
    assert_rejected(&app, &x5u, "x5u header").await;
    let typ_jwt = forge.sign(|h| h.typ = Some("JWT".to_owned()), |_| {});
    assert_rejected(&app, &typ_jwt, "typ JWT").await;
    let no_typ = forge.sign(|h| h.typ = None, |_| {});
    assert_rejected(&app, &no_typ, "no typ").await;
    app.stop().await;
}

#[tokio::test]
async fn claim_attacks_are_rejected() {
    let app = spawn_app().await;
    let (_, tokens) = app.new_user().await;
    let forge = forge(&app, &tokens).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();

    let edits: Vec<(&str, ClaimEdit)> = vec![
        (
            "exp missing",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        ("exp past", Box::new(move |c| c["exp"] = json!(now - 120))),
        (
            "exp string",
            Box::new(move |c| c["exp"] = json!((now + 600).to_string())),
        ),
        ("nbf future", Box::new(move |c| c["nbf"] = json!(now + 600))),
        (
            "nbf missing",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("nbf");
            }),
        ),
        ("iat future", Box::new(move |c| c["iat"] = json!(now + 600))),
        ("iss wrong", Box::new(|c| c["iss"] = json!("evil"))),
        (
            "iss missing",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("iss");
            }),
        ),
        ("aud wrong", Box::new(|c| c["aud"] = json!("someone-else"))),
        (
            "aud missing",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
        ),
        (
            "sub missing",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("sub");
            }),
        ),
        (
            "sid missing",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("sid");
            }),
        ),
        ("sid not a uuid", Box::new(|c| c["sid"] = json!("x"))),
    ];
    for (what, edit) in edits {
        let token = forge.sign(|_| {}, |c| edit(c));
        assert_rejected(&app, &token, what).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn duplicate_claims_are_rejected() {
    let app = spawn_app().await;
    let (_, tokens) = app.new_user().await;
    let forge = forge(&app, &tokens).await;
    // Hand-built payload with `sub` twice; signed with the real key.
    let claims = &forge.claims;
    let payload = format!(
        r#"{{"iss":{},"aud":{},"sub":{},"sub":"{}","sid":{},"jti":{},"iat":{},"nbf":{},"exp":{}}}"#,
        claims["iss"],
        claims["aud"],
        claims["sub"],
        uuid::Uuid::new_v4(),
        claims["sid"],
        claims["jti"],
        claims["iat"],
        claims["nbf"],
        claims["exp"]
    );
    let header = b64(&json!({"alg": "EdDSA", "typ": "at+jwt", "kid": forge.kid}));
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
    let signature =
        jsonwebtoken::crypto::sign(signing_input.as_bytes(), &forge.key, Algorithm::EdDSA).unwrap();
    assert_rejected(
        &app,
        &format!("{signing_input}.{signature}"),
        "duplicate sub",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn tokens_outside_the_authorization_header_are_ignored() {
    let app = spawn_app().await;
    let (_, tokens) = app.new_user().await;
    let resp = app
        .request(
            Method::GET,
            &format!("/api/v1/users/me?access_token={}", tokens.access),
        )
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let resp = app
        .request(Method::GET, "/api/v1/users/me")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    assert_problem(resp, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let resp = app
        .request(Method::GET, "/api/v1/users/me")
        .header("authorization", format!("Basic {}", tokens.access))
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::UNAUTHORIZED, "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn an_expired_token_is_rejected() {
    let app = spawn_with(Options {
        env: vec![("PORTCULLIS_ACCESS_TOKEN_TTL_SECS", "1".to_owned())],
        ..Options::default()
    })
    .await;
    let (_, tokens) = app.new_user().await;
    assert_eq!(tokens.body["expires_in"], 1);
    // Past expiry plus the verifier's 5 s leeway.
    tokio::time::sleep(std::time::Duration::from_millis(7_000)).await;
    assert_rejected(&app, &tokens.access, "expired").await;
    app.stop().await;
}
