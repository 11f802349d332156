//! Changes of a signed-in account: password, email address, deletion and
//! export. Each needs the current password; each ends the sessions it must,
//! here and through the revocation feed.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{PASSWORD, Tokens, assert_problem, spawn_app};

const NEW_PASSWORD: &str = "a brand new passphrase at dusk";

#[tokio::test]
async fn a_password_change_needs_the_current_password_and_ends_the_other_sessions() {
    let app = spawn_app().await;
    let (email, caller) = app.new_user().await;
    let other = Tokens::from(app.log_in(&email, PASSWORD).await).await;

    assert_problem(
        app.change_password(&caller.access, "not the password at all!", NEW_PASSWORD)
            .await,
        StatusCode::FORBIDDEN,
        "wrong_password",
    )
    .await;
    assert_problem(
        app.change_password(&caller.access, PASSWORD, "short").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "password_too_short",
    )
    .await;
    assert_eq!(
        app.change_password(&caller.access, PASSWORD, NEW_PASSWORD)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.me(&caller.access).await.status(),
        StatusCode::OK,
        "the caller stays"
    );
    assert_eq!(
        app.me(&other.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&other.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.log_in(&email, NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
    app.wait_for_mail(&email, "Your password was changed").await;
    app.stop().await;
}

#[tokio::test]
async fn an_email_change_applies_only_when_the_new_address_confirms_it() {
    let app = spawn_app().await;
    let (email, caller) = app.new_user().await;
    let other = Tokens::from(app.log_in(&email, PASSWORD).await).await;
    let new_email = format!("new-{}@example.com", uuid::Uuid::new_v4().simple());

    assert_problem(
        app.change_email(&caller.access, &new_email, "not the password at all!")
            .await,
        StatusCode::FORBIDDEN,
        "wrong_password",
    )
    .await;
    assert_eq!(
        app.change_email(&caller.access, &new_email, PASSWORD)
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    let notice = app
        .wait_for_mail(&email, "A change of your email address was requested")
        .await;
    assert!(notice.text.contains(&new_email));
    let token = app
        .link_token(
            &new_email,
            "Confirm your new email address",
            "verify-email",
            1,
        )
        .await;
    assert_eq!(
        app.log_in(&email, PASSWORD).await.status(),
        StatusCode::OK,
        "nothing changed yet"
    );
    assert_eq!(app.me(&other.access).await.status(), StatusCode::OK);

    let confirmed: Value = app.verify_email(&token).await.json().await.unwrap();
    assert_eq!(confirmed["user"]["email"], new_email.as_str());
    assert_eq!(confirmed["user"]["email_verified"], true);
    assert_eq!(
        app.me(&other.access).await.status(),
        StatusCode::UNAUTHORIZED,
        "other sessions end"
    );
    let me: Value = app.me(&caller.access).await.json().await.unwrap();
    assert_eq!(
        me["email"],
        new_email.as_str(),
        "the asking session stays and sees the change"
    );
    assert_eq!(
        app.log_in(&email, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.log_in(&new_email, PASSWORD).await.status(),
        StatusCode::OK
    );
    app.wait_for_mail(&email, "Your email address was changed")
        .await;
    app.stop().await;
}

#[tokio::test]
async fn a_taken_address_gets_the_same_answer_and_nothing_happens() {
    let app = spawn_app().await;
    let (_, caller) = app.new_user().await;
    let (taken, _) = app.new_user().await;
    let free = format!("free-{}@example.com", uuid::Uuid::new_v4().simple());

    let to_taken = app.change_email(&caller.access, &taken, PASSWORD).await;
    let to_free = app.change_email(&caller.access, &free, PASSWORD).await;
    assert_eq!(to_taken.status(), StatusCode::ACCEPTED);
    assert_eq!(
        to_taken.text().await.unwrap(),
        to_free.text().await.unwrap()
    );
    app.wait_for_mail(&free, "Confirm your new email address")
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    assert!(
        app.mails_to(&taken, "Confirm your new email address")
            .is_empty(),
        "the owner of a taken address gets nothing"
    );
    app.stop().await;
}

#[tokio::test]
async fn deleting_the_account_ends_every_token_and_keeps_no_data() {
    let app = spawn_app().await;
    let (email, caller) = app.new_user().await;
    let other = Tokens::from(app.log_in(&email, PASSWORD).await).await;
    app.create_task(&caller.access, &serde_json::json!({"title": "t"}))
        .await;
    app.forgot_password(&email).await;
    let pending = app
        .link_token(&email, "Reset your password", "reset-password", 1)
        .await;

    assert_problem(
        app.delete_account(&caller.access, "not the password at all!")
            .await,
        StatusCode::FORBIDDEN,
        "wrong_password",
    )
    .await;
    assert_eq!(
        app.delete_account(&caller.access, PASSWORD).await.status(),
        StatusCode::NO_CONTENT
    );

    for tokens in [&caller, &other] {
        assert_eq!(
            app.me(&tokens.access).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.refresh(&tokens.refresh).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.log_in(&email, PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_problem(
        app.reset_password(&pending, NEW_PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    )
    .await;
    app.wait_for_mail(&email, "Your account was deleted").await;
    // The address is free again.
    assert_eq!(
        app.sign_up(&email, PASSWORD).await.status(),
        StatusCode::CREATED
    );
    app.stop().await;
}

#[tokio::test]
async fn the_export_holds_the_accounts_data_and_no_secret() {
    let app = spawn_app().await;
    let (email, tokens) = app.new_user().await;
    app.create_task(&tokens.access, &serde_json::json!({"title": "export me"}))
        .await;
    let resp = app.export_account(&tokens.access).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let text = resp.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["user"]["email"], email.as_str());
    assert_eq!(body["tasks"][0]["title"], "export me");
    assert_eq!(body["sessions"].as_array().unwrap().len(), 1);
    assert!(
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "signup")
    );
    for secret in [
        "argon2",
        &tokens.refresh,
        &tokens.access,
        "password_hash",
        "token_hash",
    ] {
        assert!(!text.contains(secret), "the export holds {secret}");
    }
    app.stop().await;
}
