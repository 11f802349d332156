//! Second factors over HTTP: TOTP enrolment, the log-in's second step, a
//! code accepted once (even by racing requests), bounded tries, recovery
//! codes, a reset that needs the factor, and turning it off.

use reqwest::StatusCode;
use serde_json::{Value, json};
use totp_rs::{Algorithm, Builder, Secret};

use crate::helpers::{PASSWORD, TestApp, Tokens, assert_problem, claims, spawn_app};

/// The code of `secret` (base32) at `offset_secs` from now.
fn code(secret: &str, offset_secs: i64) -> String {
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_secret(Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() + offset_secs;
    totp.generate(u64::try_from(now).unwrap()).to_string()
}

async fn post(app: &TestApp, path: &str, access: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = app.request(reqwest::Method::POST, path).json(&body);
    if let Some(access) = access {
        request = request.bearer_auth(access);
    }
    request.send().await.unwrap()
}

/// Signs up and turns TOTP on; the email, tokens, base32 secret and recovery codes.
async fn enrolled(app: &TestApp) -> (String, Tokens, String, Vec<String>) {
    let (email, tokens) = app.new_user().await;
    let enrol = post(
        app,
        "/api/v1/users/me/mfa/totp",
        Some(&tokens.access),
        json!({"current_password": PASSWORD}),
    )
    .await;
    assert_eq!(enrol.status(), StatusCode::CREATED);
    assert_eq!(enrol.headers()["cache-control"], "no-store");
    let shown: Value = enrol.json().await.unwrap();
    let secret = shown["secret"].as_str().unwrap().to_owned();
    assert!(
        shown["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    assert!(shown["qr_svg"].as_str().unwrap().contains("<svg"));

    let confirmed = post(
        app,
        "/api/v1/users/me/mfa/totp/confirm",
        Some(&tokens.access),
        json!({"code": code(&secret, 0)}),
    )
    .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let codes: Vec<String> = confirmed.json::<Value>().await.unwrap()["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    (email, tokens, secret, codes)
}

/// Logs in with the password; the `mfa_token` of the 401 `mfa_required`.
async fn challenge(app: &TestApp, email: &str, password: &str) -> String {
    let body = assert_problem(
        app.log_in(email, password).await,
        StatusCode::UNAUTHORIZED,
        "mfa_required",
    )
    .await;
    assert_eq!(body["methods"], json!(["totp", "recovery_code"]));
    body["mfa_token"].as_str().unwrap().to_owned()
}

async fn second_step(app: &TestApp, mfa_token: &str, proof: Value) -> reqwest::Response {
    let mut body = proof;
    body["mfa_token"] = json!(mfa_token);
    post(app, "/api/v1/auth/mfa/verify", None, body).await
}

#[tokio::test]
async fn with_totp_a_log_in_takes_a_second_step_and_each_code_works_once() {
    let app = spawn_app().await;
    let (email, tokens, secret, _) = enrolled(&app).await;
    let status: Value = app
        .request(reqwest::Method::GET, "/api/v1/users/me/mfa")
        .bearer_auth(&tokens.access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        status,
        json!({"totp": "active", "passkeys": 0, "recovery_codes_left": 10})
    );
    app.wait_for_mail(&email, "Two-step sign-in was turned on")
        .await;

    // A wrong password still gets the one generic answer.
    assert_problem(
        app.log_in(&email, "not the password at all!").await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;

    let token = challenge(&app, &email, PASSWORD).await;
    assert_problem(
        second_step(&app, &token, json!({"totp_code": "000000"})).await,
        StatusCode::FORBIDDEN,
        "invalid_second_factor",
    )
    .await;
    // The step the confirmation used is spent; the next one passes once.
    assert_problem(
        second_step(&app, &token, json!({"totp_code": code(&secret, 0)})).await,
        StatusCode::FORBIDDEN,
        "invalid_second_factor",
    )
    .await;
    let next = code(&secret, 30);
    let opened = second_step(&app, &token, json!({"totp_code": next})).await;
    assert_eq!(opened.status(), StatusCode::OK);
    let pair = Tokens::from(opened).await;
    assert_eq!(claims(&pair.access)["amr"], json!(["pwd", "otp", "mfa"]));
    assert!(claims(&pair.access)["auth_time"].is_i64());
    let verified = app.verify(&pair.access).await;
    assert_eq!(verified.headers()["x-auth-methods"], "pwd,otp,mfa");
    assert_eq!(
        claims(&tokens.access)["amr"],
        json!(["pwd"]),
        "the sign-up session proved a password"
    );

    assert_problem(
        second_step(&app, &token, json!({"totp_code": next})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_token",
    )
    .await;
    let again = challenge(&app, &email, PASSWORD).await;
    assert_problem(
        second_step(&app, &again, json!({"totp_code": next})).await,
        StatusCode::FORBIDDEN,
        "invalid_second_factor",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn two_requests_racing_with_one_code_get_one_session() {
    let app = spawn_app().await;
    let (email, _, secret, _) = enrolled(&app).await;
    let (first, second) = (
        challenge(&app, &email, PASSWORD).await,
        challenge(&app, &email, PASSWORD).await,
    );
    let code = code(&secret, 30);
    let (a, b) = tokio::join!(
        second_step(&app, &first, json!({"totp_code": code})),
        second_step(&app, &second, json!({"totp_code": code})),
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 403]);
    app.stop().await;
}

#[tokio::test]
async fn a_challenge_allows_five_tries() {
    let app = spawn_app().await;
    let (email, _, secret, _) = enrolled(&app).await;
    let token = challenge(&app, &email, PASSWORD).await;
    for _ in 0..4 {
        assert_problem(
            second_step(&app, &token, json!({"totp_code": "000000"})).await,
            StatusCode::FORBIDDEN,
            "invalid_second_factor",
        )
        .await;
    }
    assert_problem(
        second_step(&app, &token, json!({"totp_code": "000000"})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_token",
    )
    .await;
    assert_problem(
        second_step(&app, &token, json!({"totp_code": code(&secret, 30)})).await,
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_token",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn recovery_codes_work_once_and_a_new_set_voids_the_old() {
    let app = spawn_app().await;
    let (email, tokens, secret, codes) = enrolled(&app).await;
    let token = challenge(&app, &email, PASSWORD).await;
    let typed = codes[0].to_uppercase().replace('-', " ");
    assert_eq!(
        second_step(&app, &token, json!({"recovery_code": typed}))
            .await
            .status(),
        StatusCode::OK
    );
    app.wait_for_mail(&email, "A recovery code was used").await;
    let token = challenge(&app, &email, PASSWORD).await;
    assert_problem(
        second_step(&app, &token, json!({"recovery_code": codes[0]})).await,
        StatusCode::FORBIDDEN,
        "invalid_second_factor",
    )
    .await;
    assert_problem(
        second_step(
            &app,
            &token,
            json!({"recovery_code": codes[1], "totp_code": "123456"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "ambiguous_second_factor",
    )
    .await;

    let renewed = post(
        &app,
        "/api/v1/users/me/mfa/recovery-codes",
        Some(&tokens.access),
        json!({"current_password": PASSWORD, "totp_code": code(&secret, 30)}),
    )
    .await;
    assert_eq!(renewed.status(), StatusCode::OK);
    let fresh: Value = renewed.json().await.unwrap();
    assert_eq!(fresh["recovery_codes"].as_array().unwrap().len(), 10);
    assert_problem(
        second_step(&app, &token, json!({"recovery_code": codes[1]})).await,
        StatusCode::FORBIDDEN,
        "invalid_second_factor",
    )
    .await;
    let new_code = fresh["recovery_codes"][0].as_str().unwrap();
    assert_eq!(
        second_step(&app, &token, json!({"recovery_code": new_code}))
            .await
            .status(),
        StatusCode::OK
    );
    app.stop().await;
}

#[tokio::test]
async fn a_password_reset_needs_the_second_factor() {
    let app = spawn_app().await;
    let (email, _, _, codes) = enrolled(&app).await;
    app.forgot_password(&email).await;
    let link = app
        .link_token(&email, "Reset your password", "reset-password", 1)
        .await;
    let reset = |extra: Value| {
        let mut body = json!({"token": link, "new_password": "a brand new passphrase at dusk"});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        post(&app, "/api/v1/auth/password/reset", None, body)
    };
    assert_problem(
        reset(json!({})).await,
        StatusCode::FORBIDDEN,
        "second_factor_required",
    )
    .await;
    assert_problem(
        reset(json!({"totp_code": "000000"})).await,
        StatusCode::FORBIDDEN,
        "invalid_second_factor",
    )
    .await;
    assert_eq!(
        reset(json!({"recovery_code": codes[2]})).await.status(),
        StatusCode::NO_CONTENT
    );
    let token = challenge(&app, &email, "a brand new passphrase at dusk").await;
    assert_eq!(
        second_step(&app, &token, json!({"recovery_code": codes[3]}))
            .await
            .status(),
        StatusCode::OK
    );
    app.stop().await;
}

#[tokio::test]
async fn turning_totp_off_needs_both_factors_and_ends_the_other_sessions() {
    let app = spawn_app().await;
    let (email, tokens, secret, codes) = enrolled(&app).await;
    let token = challenge(&app, &email, PASSWORD).await;
    let other =
        Tokens::from(second_step(&app, &token, json!({"totp_code": code(&secret, 30)})).await)
            .await;
    let disable = |body: Value| {
        post(
            &app,
            "/api/v1/users/me/mfa/totp/disable",
            Some(&tokens.access),
            body,
        )
    };

    assert_problem(
        disable(json!({"current_password": "not the password at all!", "totp_code": "123456"}))
            .await,
        StatusCode::FORBIDDEN,
        "wrong_password",
    )
    .await;
    assert_problem(
        disable(json!({"current_password": PASSWORD})).await,
        StatusCode::FORBIDDEN,
        "second_factor_required",
    )
    .await;
    assert_eq!(
        disable(json!({"current_password": PASSWORD, "totp_code": code(&secret, -30)}))
            .await
            .status(),
        StatusCode::FORBIDDEN,
        "a step before the last one accepted is refused"
    );
    // Every step the clock allows now is spent: a recovery code stands in.
    let status = disable(json!({"current_password": PASSWORD, "recovery_code": codes[0]}))
        .await
        .status();
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.me(&tokens.access).await.status(),
        StatusCode::OK,
        "the caller stays"
    );
    assert_eq!(
        app.me(&other.access).await.status(),
        StatusCode::UNAUTHORIZED,
        "the others end"
    );
    app.wait_for_mail(&email, "Two-step sign-in was turned off")
        .await;
    assert_eq!(
        app.log_in(&email, PASSWORD).await.status(),
        StatusCode::OK,
        "no second step any more"
    );
    app.stop().await;
}
