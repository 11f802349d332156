//! Unit tests of `AccountService` through the in-memory fakes.

use time::macros::datetime;

use super::*;
use crate::auth::{LogIn, LogInError, SignUp, TokenPair};
use crate::context::{ClientInfo, Principal};
use crate::mail::MailKind;
use crate::one_time::OneTimeToken;
use crate::session::RevokeReason;
use crate::testkit::InMemoryServices;

const PASSWORD: &str = "a long enough passphrase 1";
const NEW_PASSWORD: &str = "another long passphrase 2";

fn services() -> InMemoryServices {
    InMemoryServices::new(datetime!(2026-12-05 12:00 UTC))
}

fn ctx() -> RequestContext {
    RequestContext {
        client: ClientInfo::new(Some("tests"), Some("192.0.2.7".to_owned())),
        ..RequestContext::default()
    }
}

fn email(raw: &str) -> Email {
    Email::parse(raw).unwrap()
}

async fn sign_up(app: &InMemoryServices, address: &str) -> TokenPair {
    app.auth
        .sign_up(
            SignUp {
                email: email(address),
                password: Password::new(PASSWORD.to_owned()),
            },
            &ctx(),
        )
        .await
        .unwrap()
}

async fn log_in(
    app: &InMemoryServices,
    address: &str,
    password: &str,
) -> Result<TokenPair, LogInError> {
    app.auth
        .log_in(
            LogIn {
                email: email(address),
                password: Password::new(password.to_owned()),
            },
            &ctx(),
        )
        .await
}

fn principal(pair: &TokenPair) -> Principal {
    Principal {
        user_id: pair.user.id,
        session_id: pair.session_id,
        expires_at: pair.access_expires_at,
        amr: crate::amr::AuthMethods::of(&[crate::amr::AuthMethod::Pwd]),
        auth_time: pair.issued_at,
    }
}

/// The token of the last queued message of `kind`.
fn last_token(app: &InMemoryServices, kind: MailKind) -> OneTimeToken {
    app.store
        .outbox()
        .into_iter()
        .rev()
        .find(|mail| mail.kind == kind)
        .and_then(|mail| mail.token)
        .unwrap()
}

fn kinds(app: &InMemoryServices) -> Vec<MailKind> {
    app.store.outbox().iter().map(|mail| mail.kind).collect()
}

fn is_revoked(app: &InMemoryServices, pair: &TokenPair) -> bool {
    app.store.get(pair.session_id).revoked_at.is_some()
}

#[tokio::test]
async fn sign_up_queues_a_link_that_verifies_the_address_once() {
    let app = services();
    let pair = sign_up(&app, "ann@example.com").await;
    assert!(!pair.user.email_verified);
    assert_eq!(kinds(&app), [MailKind::VerifyEmail]);

    let token = last_token(&app, MailKind::VerifyEmail);
    let profile = app
        .account
        .verify_email(
            VerifyEmail {
                token: token.clone(),
            },
            &ctx(),
        )
        .await
        .unwrap();
    assert!(profile.email_verified);

    let again = app
        .account
        .verify_email(VerifyEmail { token }, &ctx())
        .await;
    assert!(matches!(again, Err(VerifyEmailError::InvalidToken)));
}

#[tokio::test]
async fn an_unverified_account_logs_in_only_when_verification_is_not_required() {
    let app = services();
    sign_up(&app, "ann@example.com").await;
    assert!(log_in(&app, "ann@example.com", PASSWORD).await.is_ok());

    let strict = app.auth.clone().with_account_policy(AccountPolicy {
        require_verified_email: true,
        ..AccountPolicy::default()
    });
    let refused = strict
        .log_in(
            LogIn {
                email: email("ann@example.com"),
                password: Password::new(PASSWORD.to_owned()),
            },
            &ctx(),
        )
        .await;
    assert!(matches!(refused, Err(LogInError::EmailNotVerified)));
    let wrong = strict
        .log_in(
            LogIn {
                email: email("ann@example.com"),
                password: Password::new("not the password at all".to_owned()),
            },
            &ctx(),
        )
        .await;
    assert!(matches!(wrong, Err(LogInError::InvalidCredentials)));
}

#[tokio::test]
async fn forgot_password_queues_nothing_for_an_unknown_address_and_voids_older_links() {
    let app = services();
    sign_up(&app, "ann@example.com").await;

    for _ in 0..2 {
        app.account
            .forgot_password(
                ForgotPassword {
                    email: email("ann@example.com"),
                },
                &ctx(),
            )
            .await;
    }
    app.account
        .forgot_password(
            ForgotPassword {
                email: email("nobody@example.com"),
            },
            &ctx(),
        )
        .await;
    app.background.run_all().await;

    let resets: Vec<_> = app
        .store
        .outbox()
        .into_iter()
        .filter(|mail| mail.kind == MailKind::ResetPassword)
        .collect();
    assert_eq!(
        resets.len(),
        2,
        "one per request for the known address, none for the unknown"
    );
    assert!(
        resets
            .iter()
            .all(|mail| mail.to.as_str() == "ann@example.com")
    );

    let older = resets[0].token.clone().unwrap();
    let voided = app
        .account
        .reset_password(
            ResetPassword {
                token: older,
                new_password: Password::new(NEW_PASSWORD.to_owned()),
                proof: None,
            },
            &ctx(),
        )
        .await;
    assert!(matches!(voided, Err(ResetPasswordError::InvalidToken)));
}

#[tokio::test]
async fn a_reset_applies_the_policy_ends_every_session_and_works_once() {
    let app = services();
    let first = sign_up(&app, "ann@example.com").await;
    let second = log_in(&app, "ann@example.com", PASSWORD).await.unwrap();
    app.account
        .forgot_password(
            ForgotPassword {
                email: email("ann@example.com"),
            },
            &ctx(),
        )
        .await;
    app.background.run_all().await;
    let token = last_token(&app, MailKind::ResetPassword);

    let weak = app
        .account
        .reset_password(
            ResetPassword {
                token: token.clone(),
                new_password: Password::new("short".to_owned()),
                proof: None,
            },
            &ctx(),
        )
        .await;
    assert!(matches!(weak, Err(ResetPasswordError::WeakPassword(_))));
    assert!(!is_revoked(&app, &first), "a refused reset changes nothing");

    app.account
        .reset_password(
            ResetPassword {
                token: token.clone(),
                new_password: Password::new(NEW_PASSWORD.to_owned()),
                proof: None,
            },
            &ctx(),
        )
        .await
        .unwrap();
    assert!(is_revoked(&app, &first) && is_revoked(&app, &second));
    assert_eq!(
        app.store.get(first.session_id).revoked_reason,
        Some(RevokeReason::PasswordReset)
    );
    assert!(app.auth.authenticate(first.access_token.expose()).is_err());
    assert_eq!(kinds(&app).last(), Some(&MailKind::PasswordReset));
    assert!(log_in(&app, "ann@example.com", PASSWORD).await.is_err());
    assert!(log_in(&app, "ann@example.com", NEW_PASSWORD).await.is_ok());

    let again = app
        .account
        .reset_password(
            ResetPassword {
                token,
                new_password: Password::new("yet another passphrase 3".to_owned()),
                proof: None,
            },
            &ctx(),
        )
        .await;
    assert!(matches!(again, Err(ResetPasswordError::InvalidToken)));
}

#[tokio::test]
async fn a_password_change_needs_the_current_password_and_spares_only_the_caller() {
    let app = services();
    let caller = sign_up(&app, "ann@example.com").await;
    let other = log_in(&app, "ann@example.com", PASSWORD).await.unwrap();
    let input = |current: &str| ChangePassword {
        current_password: Password::new(current.to_owned()),
        new_password: Password::new(NEW_PASSWORD.to_owned()),
    };

    let wrong = app
        .account
        .change_password(&principal(&caller), input("not my password at all"), &ctx())
        .await;
    assert!(matches!(wrong, Err(ChangePasswordError::WrongPassword)));

    app.account
        .change_password(&principal(&caller), input(PASSWORD), &ctx())
        .await
        .unwrap();
    assert!(!is_revoked(&app, &caller));
    assert!(is_revoked(&app, &other));
    assert_eq!(kinds(&app).last(), Some(&MailKind::PasswordChanged));
}

#[tokio::test]
async fn an_email_change_applies_only_when_the_new_address_confirms_it() {
    let app = services();
    let caller = sign_up(&app, "ann@example.com").await;
    let other = log_in(&app, "ann@example.com", PASSWORD).await.unwrap();
    sign_up(&app, "taken@example.com").await;
    let change = |to: &str| ChangeEmail {
        new_email: email(to),
        current_password: Password::new(PASSWORD.to_owned()),
    };

    let before = app.store.outbox().len();
    app.account
        .change_email(&principal(&caller), change("taken@example.com"), &ctx())
        .await
        .unwrap();
    assert_eq!(
        app.store.outbox().len(),
        before,
        "a taken address: nothing happens"
    );

    app.account
        .change_email(&principal(&caller), change("new@example.com"), &ctx())
        .await
        .unwrap();
    let outbox = app.store.outbox();
    let [.., confirm, notice] = outbox.as_slice() else {
        panic!("two messages expected")
    };
    assert_eq!(
        (confirm.kind, confirm.to.as_str()),
        (MailKind::ConfirmEmailChange, "new@example.com")
    );
    assert_eq!(
        (notice.kind, notice.to.as_str()),
        (MailKind::EmailChangeRequested, "ann@example.com")
    );
    assert!(
        log_in(&app, "ann@example.com", PASSWORD).await.is_ok(),
        "not applied yet"
    );

    let profile = app
        .account
        .verify_email(
            VerifyEmail {
                token: confirm.token.clone().unwrap(),
            },
            &ctx(),
        )
        .await
        .unwrap();
    assert_eq!(profile.email.as_str(), "new@example.com");
    assert!(profile.email_verified);
    assert!(!is_revoked(&app, &caller) && is_revoked(&app, &other));
    assert_eq!(kinds(&app).last(), Some(&MailKind::EmailChanged));
}

#[tokio::test]
async fn deleting_ends_every_session_and_keeps_the_trail() {
    let app = services();
    let caller = sign_up(&app, "ann@example.com").await;
    let wrong = app
        .account
        .delete_account(
            &principal(&caller),
            DeleteAccount {
                current_password: Password::new("not my password at all".to_owned()),
            },
            &ctx(),
        )
        .await;
    assert!(matches!(wrong, Err(DeleteAccountError::WrongPassword)));

    app.account
        .delete_account(
            &principal(&caller),
            DeleteAccount {
                current_password: Password::new(PASSWORD.to_owned()),
            },
            &ctx(),
        )
        .await
        .unwrap();
    assert!(app.auth.authenticate(caller.access_token.expose()).is_err());
    assert!(log_in(&app, "ann@example.com", PASSWORD).await.is_err());
    assert_eq!(kinds(&app).last(), Some(&MailKind::AccountDeleted));
    assert!(
        app.store
            .events()
            .iter()
            .any(|e| e.kind == crate::audit::AuthEventKind::AccountDeleted
                && e.user_id == Some(caller.user.id))
    );
}

#[tokio::test]
async fn a_verification_email_is_resent_at_most_once_a_minute() {
    let app = services();
    let caller = sign_up(&app, "ann@example.com").await;
    let first = app
        .account
        .resend_verification(&principal(&caller), &ctx())
        .await;
    assert!(
        matches!(first, Err(ResendVerificationError::RateLimited { .. })),
        "sign-up just sent one"
    );

    app.clock.advance(time::Duration::seconds(61));
    app.account
        .resend_verification(&principal(&caller), &ctx())
        .await
        .unwrap();
    assert_eq!(
        app.store.live_one_time_tokens(caller.user.id),
        1,
        "the new link voids the older"
    );
}
