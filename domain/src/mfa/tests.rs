//! Unit tests of the second-factor flows through the in-memory fakes.

use time::macros::datetime;

use super::*;
use crate::account::{ResetPassword, ResetPasswordError};
use crate::auth::{LogIn, LogInError, SecondStep, SecondStepError, SignUp, TokenPair};
use crate::context::{ClientInfo, Principal, RequestContext};
use crate::mail::MailKind;
use crate::password::Password;
use crate::testkit::{FakeFactors, InMemoryServices};

const PASSWORD: &str = "a long enough passphrase 1";

fn ctx() -> RequestContext {
    RequestContext {
        client: ClientInfo::new(Some("tests"), Some("192.0.2.7".to_owned())),
        ..RequestContext::default()
    }
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

/// A signed-up account with TOTP active; its recovery codes.
async fn enrolled(app: &InMemoryServices) -> (TokenPair, Vec<RecoveryCode>) {
    let pair = app
        .auth
        .sign_up(
            SignUp {
                email: Email::parse("ann@example.com").unwrap(),
                password: Password::new(PASSWORD.to_owned()),
            },
            &ctx(),
        )
        .await
        .unwrap();
    app.mfa
        .enrol_totp(
            &principal(&pair),
            Password::new(PASSWORD.to_owned()),
            &ctx(),
        )
        .await
        .unwrap();
    let codes = app
        .mfa
        .confirm_totp(
            &principal(&pair),
            FakeFactors::code_at(app.clock.now()),
            &ctx(),
        )
        .await
        .unwrap();
    (pair, codes)
}

async fn challenge(app: &InMemoryServices) -> crate::one_time::OneTimeToken {
    let refused = app
        .auth
        .log_in(
            LogIn {
                email: Email::parse("ann@example.com").unwrap(),
                password: Password::new(PASSWORD.to_owned()),
            },
            &ctx(),
        )
        .await;
    match refused {
        Err(LogInError::SecondFactorRequired { mfa_token, methods }) => {
            assert_eq!(methods, ["totp", "recovery_code"]);
            mfa_token
        }
        other => panic!("expected mfa_required, got {other:?}"),
    }
}

#[tokio::test]
async fn confirming_totp_makes_log_in_ask_for_a_second_step_that_remembers_both_factors() {
    let app = InMemoryServices::new(datetime!(2026-12-05 12:00 UTC));
    let (_, codes) = enrolled(&app).await;
    assert_eq!(codes.len(), RECOVERY_CODES);
    assert!(
        app.store
            .outbox()
            .iter()
            .any(|m| m.kind == MailKind::SecondFactorEnabled)
    );

    let token = challenge(&app).await;
    app.clock.advance(time::Duration::seconds(30));
    let pair = app
        .auth
        .second_step(
            SecondStep {
                mfa_token: token.clone(),
                proof: Proof::Totp(FakeFactors::code_at(app.clock.now())),
            },
            &ctx(),
        )
        .await
        .unwrap();
    let session = app.store.get(pair.session_id);
    assert_eq!(
        session.amr,
        [
            crate::amr::AuthMethod::Pwd,
            crate::amr::AuthMethod::Otp,
            crate::amr::AuthMethod::Mfa
        ]
    );
    let again = app
        .auth
        .second_step(
            SecondStep {
                mfa_token: token,
                proof: Proof::Totp(FakeFactors::code_at(app.clock.now())),
            },
            &ctx(),
        )
        .await;
    assert!(
        matches!(again, Err(SecondStepError::InvalidChallenge)),
        "a challenge works once"
    );
}

#[tokio::test]
async fn a_code_is_accepted_once_even_by_two_racing_requests() {
    let app = InMemoryServices::new(datetime!(2026-12-05 12:00 UTC));
    enrolled(&app).await;
    app.clock.advance(time::Duration::seconds(30));
    let code = FakeFactors::code_at(app.clock.now());
    let (first, second) = (challenge(&app).await, challenge(&app).await);
    let context = ctx();
    let step = |token| {
        app.auth.second_step(
            SecondStep {
                mfa_token: token,
                proof: Proof::Totp(code.clone()),
            },
            &context,
        )
    };
    let (a, b) = tokio::join!(step(first), step(second));
    assert_eq!(
        [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{a:?} {b:?}"
    );

    // The confirmation's own step cannot be replayed either.
    let third = challenge(&app).await;
    let replay = app
        .auth
        .second_step(
            SecondStep {
                mfa_token: third,
                proof: Proof::Totp(code),
            },
            &ctx(),
        )
        .await;
    assert!(
        matches!(replay, Err(SecondStepError::InvalidCode)),
        "{replay:?}"
    );
}

#[tokio::test]
async fn a_challenge_allows_five_tries_and_a_recovery_code_works_once() {
    let app = InMemoryServices::new(datetime!(2026-12-05 12:00 UTC));
    let (_, codes) = enrolled(&app).await;
    let token = challenge(&app).await;
    let wrong = || Proof::Totp(TotpCode::parse("000000").unwrap());
    for _ in 0..CHALLENGE_TRIES - 1 {
        let result = app
            .auth
            .second_step(
                SecondStep {
                    mfa_token: token.clone(),
                    proof: wrong(),
                },
                &ctx(),
            )
            .await;
        assert!(
            matches!(result, Err(SecondStepError::InvalidCode)),
            "{result:?}"
        );
    }
    let last = app
        .auth
        .second_step(
            SecondStep {
                mfa_token: token.clone(),
                proof: wrong(),
            },
            &ctx(),
        )
        .await;
    assert!(matches!(last, Err(SecondStepError::InvalidChallenge)));

    // Wrong codes count toward the account's lockout: five slow it down.
    app.clock.advance(time::Duration::minutes(2));
    let token = challenge(&app).await;
    let recovered = app
        .auth
        .second_step(
            SecondStep {
                mfa_token: token,
                proof: Proof::Recovery(codes[0].clone()),
            },
            &ctx(),
        )
        .await;
    assert!(recovered.is_ok(), "{recovered:?}");
    assert!(
        app.store
            .outbox()
            .iter()
            .any(|m| m.kind == MailKind::RecoveryCodeUsed)
    );
    let token = challenge(&app).await;
    let spent = app
        .auth
        .second_step(
            SecondStep {
                mfa_token: token,
                proof: Proof::Recovery(codes[0].clone()),
            },
            &ctx(),
        )
        .await;
    assert!(matches!(spent, Err(SecondStepError::InvalidCode)));
}

#[tokio::test]
async fn a_reset_needs_the_second_factor_and_disabling_ends_the_other_sessions() {
    let app = InMemoryServices::new(datetime!(2026-12-05 12:00 UTC));
    let (caller, codes) = enrolled(&app).await;
    app.account
        .forgot_password(
            crate::account::ForgotPassword {
                email: Email::parse("ann@example.com").unwrap(),
            },
            &ctx(),
        )
        .await;
    app.background.run_all().await;
    let link = app
        .store
        .outbox()
        .into_iter()
        .rev()
        .find(|m| m.kind == MailKind::ResetPassword)
        .and_then(|m| m.token)
        .unwrap();
    let reset = |proof| ResetPassword {
        token: link.clone(),
        new_password: Password::new("another long passphrase 2".to_owned()),
        proof,
    };
    let missing = app.account.reset_password(reset(None), &ctx()).await;
    assert!(matches!(
        missing,
        Err(ResetPasswordError::SecondFactorRequired)
    ));
    let wrong = app
        .account
        .reset_password(
            reset(Some(Proof::Totp(TotpCode::parse("000000").unwrap()))),
            &ctx(),
        )
        .await;
    assert!(matches!(
        wrong,
        Err(ResetPasswordError::InvalidSecondFactor)
    ));
    assert!(
        app.store.get(caller.session_id).revoked_at.is_none(),
        "nothing changed"
    );

    let status = app
        .mfa
        .mfa_status(&principal(&caller))
        .await
        .unwrap()
        .unwrap();
    assert!(status.totp_active && status.recovery_codes_left == RECOVERY_CODES as u32);
    app.mfa
        .disable_totp(
            &principal(&caller),
            DisableTotp {
                current_password: Password::new(PASSWORD.to_owned()),
                proof: Proof::Recovery(codes[1].clone()),
            },
            &ctx(),
        )
        .await
        .unwrap();
    let status = app
        .mfa
        .mfa_status(&principal(&caller))
        .await
        .unwrap()
        .unwrap();
    assert!(!status.totp_active && status.recovery_codes_left == 0);
    let plain = app
        .auth
        .log_in(
            LogIn {
                email: Email::parse("ann@example.com").unwrap(),
                password: Password::new(PASSWORD.to_owned()),
            },
            &ctx(),
        )
        .await;
    assert!(plain.is_ok(), "no second step without a factor");
}
