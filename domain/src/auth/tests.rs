//! Unit tests of `AuthService` through in-memory fakes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use time::Duration;
use time::macros::datetime;

use super::*;
use crate::audit::AuditLog;
use crate::audit::AuthEventKind;
use crate::context::ClientInfo;
use crate::email::Email;
use crate::limits::LimitPolicy;
use crate::password::PasswordRejection;
use crate::password::{Password, PasswordHash};
use crate::session::{RefreshToken, SessionService};
use crate::session::{RevokeReason, RevokeSessionError};
use crate::testkit::*;
use crate::token::TokenRejection;

struct Harness {
    service: AuthService,
    session_service: SessionService,
    audit_log: AuditLog,
    clock: Arc<FixedClock>,
    sessions: Arc<InMemoryStore>,
    users: Arc<InMemoryStore>,
    hasher: Arc<FakeHasher>,
}

fn harness() -> Harness {
    harness_with(1_000)
}

/// A harness whose per-client budget is `budget` requests per bucket.
fn harness_with(budget: u32) -> Harness {
    harness_from(budget, SessionPolicy::default())
}

/// A harness whose rotated refresh tokens have `grace` of grace.
fn harness_with_grace(grace: Duration) -> Harness {
    harness_from(
        1_000,
        SessionPolicy {
            reuse_grace: grace,
            ..SessionPolicy::default()
        },
    )
}

fn harness_from(budget: u32, sessions: SessionPolicy) -> Harness {
    let clock = Arc::new(FixedClock::at(datetime!(2026-11-24 12:00 UTC)));
    let store = Arc::new(InMemoryStore::default());
    let hasher = Arc::new(FakeHasher::default());
    let revocations = Arc::new(InMemoryRevocationCache::default());
    let audit = Arc::new(StoreAudit(store.clone()));
    let session_service = SessionService::new(
        store.clone(),
        revocations.clone(),
        audit.clone(),
        clock.clone(),
    );
    let audit_log = AuditLog::new(store.clone());
    let ports = AuthPorts {
        users: store.clone(),
        sessions: store.clone(),
        hasher: hasher.clone(),
        issuer: Arc::new(FakeTokens),
        verifier: Arc::new(FakeTokens),
        revocations,
        secrets: Arc::new(SequentialSecrets::default()),
        clock: clock.clone(),
        audit,
        limiter: Arc::new(CountingLimiter::new(budget)),
        failures: Arc::new(ClockedFailures::new(clock.clone())),
        mfa: store.clone(),
        factors: Arc::new(FakeFactors),
    };
    let policy = PasswordPolicy::new(15, ["password1234567890".to_owned()]).unwrap();
    Harness {
        service: AuthService::new(ports, policy, sessions, LimitPolicy::default()),
        session_service,
        audit_log,
        clock,
        sessions: store.clone(),
        users: store,
        hasher,
    }
}

fn ctx() -> RequestContext {
    RequestContext {
        client: ClientInfo::new(Some("unit-test"), Some("192.0.2.1".to_owned())),
        request_id: Some("req-1".to_owned()),
        trace_id: None,
    }
}

fn kinds(h: &Harness) -> Vec<AuthEventKind> {
    h.users.events().iter().map(|e| e.kind).collect()
}

fn email(raw: &str) -> Email {
    Email::parse(raw).unwrap()
}

const PASSWORD: &str = "a long and quiet river";

async fn signed_up(h: &Harness) -> TokenPair {
    h.service
        .sign_up(
            SignUp {
                email: email("bob@example.com"),
                password: Password::new(PASSWORD.into()),
            },
            &ctx(),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn sign_up_then_log_in_opens_a_second_session() {
    let h = harness();
    let first = signed_up(&h).await;

    let second = h
        .service
        .log_in(
            LogIn {
                email: email("BOB@example.com"),
                password: Password::new(PASSWORD.into()),
            },
            &ctx(),
        )
        .await
        .unwrap();

    assert_eq!(first.user.id, second.user.id);
    assert_ne!(first.session_id, second.session_id);
    assert_eq!(h.sessions.session_count(), 2);
}

#[tokio::test]
async fn sign_up_refuses_weak_passwords_and_taken_emails() {
    let h = harness();
    let weak = h
        .service
        .sign_up(
            SignUp {
                email: email("bob@example.com"),
                password: Password::new("password1234567890".into()),
            },
            &ctx(),
        )
        .await;
    assert!(matches!(
        weak,
        Err(SignUpError::WeakPassword(PasswordRejection::Common))
    ));

    signed_up(&h).await;
    let again = h
        .service
        .sign_up(
            SignUp {
                email: email("Bob@Example.com"),
                password: Password::new(PASSWORD.into()),
            },
            &ctx(),
        )
        .await;
    assert!(matches!(again, Err(SignUpError::EmailTaken)));
}

#[tokio::test]
async fn unknown_email_pays_a_dummy_verification_and_answers_like_a_wrong_password() {
    let h = harness();
    signed_up(&h).await;

    let unknown = h
        .service
        .log_in(
            LogIn {
                email: email("nobody@example.com"),
                password: Password::new(PASSWORD.into()),
            },
            &ctx(),
        )
        .await;
    let wrong = h
        .service
        .log_in(
            LogIn {
                email: email("bob@example.com"),
                password: Password::new("not the password at all".into()),
            },
            &ctx(),
        )
        .await;

    assert!(matches!(unknown, Err(LogInError::InvalidCredentials)));
    assert!(matches!(wrong, Err(LogInError::InvalidCredentials)));
    assert_eq!(h.hasher.dummy_verifications.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn outdated_hashes_are_upgraded_on_log_in() {
    let h = harness();
    let pair = signed_up(&h).await;
    h.users
        .update_password_hash(
            pair.user.id,
            &PasswordHash::new(format!("old:{PASSWORD}")),
            h.clock.now(),
        )
        .await
        .unwrap();

    h.service
        .log_in(
            LogIn {
                email: email("bob@example.com"),
                password: Password::new(PASSWORD.into()),
            },
            &ctx(),
        )
        .await
        .unwrap();

    let stored = h.users.find_by_id(pair.user.id).await.unwrap().unwrap();
    assert_eq!(stored.password_hash.as_str(), format!("fake:{PASSWORD}"));
}

#[tokio::test]
async fn refresh_rotates_and_keeps_one_live_token() {
    let h = harness();
    let mut pair = signed_up(&h).await;
    for _ in 0..20 {
        h.clock.advance(Duration::minutes(1));
        let next = h
            .service
            .refresh(
                Refresh {
                    token: Ok(pair.refresh_token.clone()),
                },
                &ctx(),
            )
            .await
            .unwrap();
        assert_eq!(next.session_id, pair.session_id);
        assert_ne!(next.refresh_token.expose(), pair.refresh_token.expose());
        pair = next;
    }
    assert_eq!(h.sessions.live_tokens(pair.session_id), 1);
}

#[tokio::test]
async fn replay_within_grace_returns_a_pair_of_the_same_session() {
    let h = harness();
    let pair = signed_up(&h).await;
    let first = h
        .service
        .refresh(
            Refresh {
                token: Ok(pair.refresh_token.clone()),
            },
            &ctx(),
        )
        .await
        .unwrap();
    h.clock.advance(Duration::seconds(5));

    let second = h
        .service
        .refresh(
            Refresh {
                token: Ok(pair.refresh_token.clone()),
            },
            &ctx(),
        )
        .await
        .unwrap();

    assert_eq!(first.session_id, second.session_id);
    assert_eq!(h.sessions.session_count(), 1);
    assert!(
        h.service
            .refresh(
                Refresh {
                    token: Ok(second.refresh_token.clone())
                },
                &ctx()
            )
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn reuse_after_grace_revokes_the_family_only() {
    let h = harness();
    let victim = signed_up(&h).await;
    let other = h
        .service
        .log_in(
            LogIn {
                email: email("bob@example.com"),
                password: Password::new(PASSWORD.into()),
            },
            &ctx(),
        )
        .await
        .unwrap();
    let rotated = h
        .service
        .refresh(
            Refresh {
                token: Ok(victim.refresh_token.clone()),
            },
            &ctx(),
        )
        .await
        .unwrap();
    h.clock.advance(Duration::seconds(11));

    let reuse = h
        .service
        .refresh(
            Refresh {
                token: Ok(victim.refresh_token.clone()),
            },
            &ctx(),
        )
        .await;

    assert!(matches!(reuse, Err(RefreshError::Reused { .. })));
    assert!(matches!(
        h.service
            .refresh(
                Refresh {
                    token: Ok(rotated.refresh_token.clone())
                },
                &ctx()
            )
            .await,
        Err(RefreshError::InvalidGrant)
    ));
    assert_eq!(
        h.service.authenticate(rotated.access_token.expose()),
        Err(TokenRejection::Revoked)
    );
    assert!(
        h.service
            .refresh(
                Refresh {
                    token: Ok(other.refresh_token.clone())
                },
                &ctx()
            )
            .await
            .is_ok()
    );
    assert_eq!(
        h.sessions.get(victim.session_id).revoked_reason,
        Some(RevokeReason::RefreshTokenReuse)
    );
}

#[tokio::test]
async fn idle_and_absolute_expiry_end_a_session() {
    let h = harness();
    let pair = signed_up(&h).await;
    h.clock.advance(Duration::days(8));
    assert!(matches!(
        h.service
            .refresh(
                Refresh {
                    token: Ok(pair.refresh_token.clone())
                },
                &ctx()
            )
            .await,
        Err(RefreshError::InvalidGrant)
    ));

    let mut pair = h
        .service
        .log_in(
            LogIn {
                email: email("bob@example.com"),
                password: Password::new(PASSWORD.into()),
            },
            &ctx(),
        )
        .await
        .unwrap();
    let absolute = h.sessions.get(pair.session_id).absolute_expires_at;
    for _ in 0..6 {
        h.clock.advance(Duration::days(6));
        match h
            .service
            .refresh(
                Refresh {
                    token: Ok(pair.refresh_token.clone()),
                },
                &ctx(),
            )
            .await
        {
            Ok(next) => {
                assert!(next.refresh_expires_at <= absolute);
                assert!(next.access_expires_at <= absolute);
                pair = next;
            }
            Err(error) => {
                assert!(matches!(error, RefreshError::InvalidGrant));
                assert!(h.clock.now() >= absolute);
                return;
            }
        }
    }
    panic!("the session outlived its absolute expiry");
}

#[tokio::test]
async fn malformed_and_unknown_refresh_tokens_are_invalid_grants() {
    let h = harness();
    for token in ["", "short", &"x".repeat(44), &"!".repeat(43)] {
        assert!(matches!(
            h.service
                .refresh(
                    Refresh {
                        token: RefreshToken::parse(token)
                    },
                    &ctx()
                )
                .await,
            Err(RefreshError::InvalidGrant)
        ));
    }
    let unknown = RefreshToken::parse(&"x".repeat(43));
    assert!(unknown.is_ok());
    assert!(matches!(
        h.service.refresh(Refresh { token: unknown }, &ctx()).await,
        Err(RefreshError::InvalidGrant)
    ));
}

#[tokio::test]
async fn logout_scopes_revoke_the_right_sessions() {
    let h = harness();
    let a = signed_up(&h).await;
    let log_in = || async {
        h.service
            .log_in(
                LogIn {
                    email: email("bob@example.com"),
                    password: Password::new(PASSWORD.into()),
                },
                &ctx(),
            )
            .await
            .unwrap()
    };
    let b = log_in().await;
    let c = log_in().await;
    let principal = h.service.authenticate(a.access_token.expose()).unwrap();

    let revoked = h
        .service
        .log_out(&principal, LogoutScope::Others, &ctx())
        .await
        .unwrap();
    assert_eq!(revoked.len(), 2);
    assert!(h.service.authenticate(a.access_token.expose()).is_ok());
    assert_eq!(
        h.service.authenticate(b.access_token.expose()),
        Err(TokenRejection::Revoked)
    );
    assert!(matches!(
        h.service
            .refresh(
                Refresh {
                    token: Ok(c.refresh_token.clone())
                },
                &ctx()
            )
            .await,
        Err(RefreshError::InvalidGrant)
    ));

    h.service
        .log_out(&principal, LogoutScope::This, &ctx())
        .await
        .unwrap();
    assert_eq!(
        h.service.authenticate(a.access_token.expose()),
        Err(TokenRejection::Revoked)
    );
    assert!(h.session_service.list(&principal).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_user_cannot_revoke_someone_elses_session() {
    let h = harness();
    let bob = signed_up(&h).await;
    let eve = h
        .service
        .sign_up(
            SignUp {
                email: email("eve@example.com"),
                password: Password::new(PASSWORD.into()),
            },
            &ctx(),
        )
        .await
        .unwrap();
    let eve_principal = h.service.authenticate(eve.access_token.expose()).unwrap();

    let attempt = h
        .session_service
        .revoke(&eve_principal, bob.session_id, &ctx())
        .await;

    assert!(matches!(attempt, Err(RevokeSessionError::NotFound)));
    assert!(h.service.authenticate(bob.access_token.expose()).is_ok());
}

#[tokio::test]
async fn state_changes_carry_their_events() {
    let h = harness();
    let pair = signed_up(&h).await;
    let next = h
        .service
        .refresh(
            Refresh {
                token: Ok(pair.refresh_token.clone()),
            },
            &ctx(),
        )
        .await
        .unwrap();
    let principal = h.service.authenticate(next.access_token.expose()).unwrap();
    h.service
        .log_out(&principal, LogoutScope::All, &ctx())
        .await
        .unwrap();

    let events = h.users.events();
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            AuthEventKind::SignUp,
            AuthEventKind::TokenRefreshed,
            AuthEventKind::Logout
        ]
    );
    for event in &events {
        assert_eq!(event.user_id, Some(pair.user.id));
        assert_eq!(event.session_id, Some(pair.session_id));
        assert_eq!(event.client_ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(event.user_agent.as_deref(), Some("unit-test"));
        assert_eq!(event.request_id.as_deref(), Some("req-1"));
    }
    assert_eq!(events[2].detail.as_deref(), Some("scope=all"));
}

#[tokio::test]
async fn failed_logins_are_recorded_with_an_internal_reason() {
    let h = harness();
    let pair = signed_up(&h).await;
    let _ = h
        .service
        .log_in(
            LogIn {
                email: email("bob@example.com"),
                password: Password::new("nope nope nope nope".into()),
            },
            &ctx(),
        )
        .await;
    let _ = h
        .service
        .log_in(
            LogIn {
                email: email("ghost@example.com"),
                password: Password::new(PASSWORD.into()),
            },
            &ctx(),
        )
        .await;
    let failed: Vec<_> = h
        .users
        .events()
        .into_iter()
        .filter(|e| e.kind == AuthEventKind::LoginFailed)
        .collect();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0].user_id, Some(pair.user.id));
    assert_eq!(failed[0].detail.as_deref(), Some("wrong_password"));
    assert_eq!(failed[1].user_id, None);
    assert_eq!(failed[1].detail.as_deref(), Some("unknown_user"));
}

async fn fail_login(h: &Harness, who: &str) -> Result<TokenPair, LogInError> {
    h.service
        .log_in(
            LogIn {
                email: email(who),
                password: Password::new("definitely the wrong one".into()),
            },
            &ctx(),
        )
        .await
}

#[tokio::test]
async fn failures_slow_down_then_lock_and_the_right_password_is_refused_too() {
    let h = harness();
    signed_up(&h).await;
    for _ in 0..4 {
        assert!(matches!(
            fail_login(&h, "bob@example.com").await,
            Err(LogInError::InvalidCredentials)
        ));
    }
    // The fifth failure imposes a one-second slow-down.
    assert!(matches!(
        fail_login(&h, "bob@example.com").await,
        Err(LogInError::InvalidCredentials)
    ));
    let right = h
        .service
        .log_in(
            LogIn {
                email: email("bob@example.com"),
                password: Password::new(PASSWORD.into()),
            },
            &ctx(),
        )
        .await;
    assert!(matches!(
        right,
        Err(LogInError::RateLimited {
            retry_after_secs: 1
        })
    ));
    for _ in 5..10 {
        h.clock.advance(Duration::seconds(20));
        assert!(matches!(
            fail_login(&h, "bob@example.com").await,
            Err(LogInError::InvalidCredentials)
        ));
    }
    // Ten failures: locked for 15 minutes, whatever the password.
    let right = h
        .service
        .log_in(
            LogIn {
                email: email("bob@example.com"),
                password: Password::new(PASSWORD.into()),
            },
            &ctx(),
        )
        .await;
    assert!(
        matches!(right, Err(LogInError::RateLimited { retry_after_secs }) if retry_after_secs > 800)
    );
    assert!(kinds(&h).contains(&AuthEventKind::AccountLocked));

    h.clock.advance(Duration::minutes(16));
    let right = h
        .service
        .log_in(
            LogIn {
                email: email("bob@example.com"),
                password: Password::new(PASSWORD.into()),
            },
            &ctx(),
        )
        .await;
    assert!(right.is_ok(), "the lock expires");
}

#[tokio::test]
async fn the_count_outlives_the_lock_so_the_next_lock_is_longer_until_a_success() {
    let h = harness();
    signed_up(&h).await;
    for _ in 0..10 {
        h.clock.advance(Duration::seconds(20));
        let _ = fail_login(&h, "bob@example.com").await;
    }
    h.clock.advance(Duration::minutes(16));
    assert!(matches!(
        fail_login(&h, "bob@example.com").await,
        Err(LogInError::InvalidCredentials)
    ));
    // The eleventh failure: 30 minutes, for the right password too.
    let context = ctx();
    let right = || {
        h.service.log_in(
            LogIn {
                email: email("bob@example.com"),
                password: Password::new(PASSWORD.into()),
            },
            &context,
        )
    };
    assert!(matches!(
        right().await,
        Err(LogInError::RateLimited {
            retry_after_secs: 1800
        })
    ));
    h.clock.advance(Duration::minutes(31));
    assert!(right().await.is_ok());
    // The success reset the count: four failures lock nothing.
    for _ in 0..4 {
        assert!(matches!(
            fail_login(&h, "bob@example.com").await,
            Err(LogInError::InvalidCredentials)
        ));
    }
    assert!(right().await.is_ok());
}

#[tokio::test]
async fn unknown_emails_lock_exactly_like_existing_ones() {
    let h = harness();
    signed_up(&h).await;
    let mut existing = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..12 {
        h.clock.advance(Duration::seconds(70));
        existing.push(matches!(
            fail_login(&h, "bob@example.com").await,
            Err(LogInError::RateLimited { .. })
        ));
        unknown.push(matches!(
            fail_login(&h, "ghost@example.com").await,
            Err(LogInError::RateLimited { .. })
        ));
    }
    assert_eq!(existing, unknown);
    assert!(existing.iter().any(|limited| *limited));
}

#[tokio::test]
async fn success_resets_the_account_count() {
    let h = harness();
    signed_up(&h).await;
    for _ in 0..4 {
        let _ = fail_login(&h, "bob@example.com").await;
    }
    h.service
        .log_in(
            LogIn {
                email: email("bob@example.com"),
                password: Password::new(PASSWORD.into()),
            },
            &ctx(),
        )
        .await
        .unwrap();
    for _ in 0..4 {
        assert!(matches!(
            fail_login(&h, "bob@example.com").await,
            Err(LogInError::InvalidCredentials)
        ));
    }
}

#[tokio::test]
async fn request_budgets_are_per_bucket_and_recorded() {
    let h = harness_with(2);
    signed_up(&h).await;
    let again = |who: &'static str| {
        let h = &h;
        async move {
            h.service
                .sign_up(
                    SignUp {
                        email: email(who),
                        password: Password::new(PASSWORD.into()),
                    },
                    &ctx(),
                )
                .await
        }
    };
    assert!(again("carol@example.com").await.is_ok());
    assert!(matches!(
        again("dave@example.com").await,
        Err(SignUpError::RateLimited {
            retry_after_secs: 7
        })
    ));
    assert!(kinds(&h).contains(&AuthEventKind::RateLimitHit));
    // Log-in has its own budget.
    assert!(
        h.service
            .log_in(
                LogIn {
                    email: email("bob@example.com"),
                    password: Password::new(PASSWORD.into())
                },
                &ctx()
            )
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn events_page_newest_first_for_the_caller_only() {
    let h = harness();
    let bob = signed_up(&h).await;
    let eve = h
        .service
        .sign_up(
            SignUp {
                email: email("eve@example.com"),
                password: Password::new(PASSWORD.into()),
            },
            &ctx(),
        )
        .await
        .unwrap();
    let mut pair = bob.clone();
    for _ in 0..3 {
        pair = h
            .service
            .refresh(
                Refresh {
                    token: Ok(pair.refresh_token.clone()),
                },
                &ctx(),
            )
            .await
            .unwrap();
    }
    let principal = h.service.authenticate(pair.access_token.expose()).unwrap();

    let first = h
        .audit_log
        .mine(&principal, Vec::new(), None, 2)
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    assert!(
        first
            .items
            .iter()
            .all(|e| e.kind == AuthEventKind::TokenRefreshed)
    );
    let rest = h
        .audit_log
        .mine(&principal, Vec::new(), first.next_cursor, 10)
        .await
        .unwrap();
    let kinds: Vec<_> = rest.items.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [AuthEventKind::TokenRefreshed, AuthEventKind::SignUp]
    );
    assert!(rest.next_cursor.is_none());
    assert!(
        rest.items
            .iter()
            .all(|e| e.user_id == Some(bob.user.id) && e.user_id != Some(eve.user.id))
    );

    let only = h
        .audit_log
        .mine(&principal, vec![AuthEventKind::SignUp], None, 10)
        .await
        .unwrap();
    assert_eq!(only.items.len(), 1);
}

async fn refresh_with(h: &Harness, token: &RefreshToken) -> Result<TokenPair, RefreshError> {
    h.service
        .refresh(
            Refresh {
                token: Ok(token.clone()),
            },
            &ctx(),
        )
        .await
}

#[tokio::test]
async fn grace_replays_supersede_so_one_chain_outlives_the_grace_interval() {
    let h = harness();
    let first = signed_up(&h).await;
    let a = refresh_with(&h, &first.refresh_token).await.unwrap();
    h.clock.advance(Duration::seconds(4));
    let b = refresh_with(&h, &first.refresh_token).await.unwrap();
    h.clock.advance(Duration::seconds(4));
    let c = refresh_with(&h, &first.refresh_token).await.unwrap();
    assert_eq!(
        [a.session_id, b.session_id],
        [first.session_id, first.session_id]
    );
    assert_eq!(c.session_id, first.session_id);
    assert_eq!(h.sessions.live_tokens(first.session_id), 1);
    let replays = h
        .users
        .events()
        .iter()
        .filter(|e| {
            e.kind == AuthEventKind::TokenRefreshed && e.detail.as_deref() == Some("grace_replay")
        })
        .count();
    assert_eq!(replays, 2);

    h.clock.advance(Duration::seconds(11));
    // The last replay's token is the current one; any other revokes.
    let d = refresh_with(&h, &c.refresh_token).await.unwrap();
    let reuse = refresh_with(&h, &a.refresh_token).await;

    assert!(matches!(reuse, Err(RefreshError::Reused { .. })));
    for token in [&b.refresh_token, &d.refresh_token] {
        assert!(matches!(
            refresh_with(&h, token).await,
            Err(RefreshError::InvalidGrant)
        ));
    }
    assert_eq!(
        kinds(&h).last(),
        Some(&AuthEventKind::RefreshTokenReuseDetected)
    );
}

#[tokio::test]
async fn grace_runs_from_the_presented_token_s_own_rotation() {
    let h = harness();
    let first = signed_up(&h).await;
    let a = refresh_with(&h, &first.refresh_token).await.unwrap();
    h.clock.advance(Duration::seconds(9));
    let b = refresh_with(&h, &first.refresh_token).await.unwrap();
    // `first` was rotated 9 s ago, `a` superseded just now: its own grace
    // interval starts now, and a replay of it supersedes `b`.
    h.clock.advance(Duration::seconds(5));
    let c = refresh_with(&h, &a.refresh_token).await.unwrap();
    assert!(matches!(
        refresh_with(&h, &first.refresh_token).await,
        Err(RefreshError::Reused { .. })
    ));
    for token in [&b.refresh_token, &c.refresh_token] {
        assert!(matches!(
            refresh_with(&h, token).await,
            Err(RefreshError::InvalidGrant)
        ));
    }
}

#[tokio::test]
async fn with_grace_zero_even_an_immediate_replay_revokes() {
    let h = harness_with_grace(Duration::ZERO);
    let first = signed_up(&h).await;
    let rotated = refresh_with(&h, &first.refresh_token).await.unwrap();

    // Same instant: nothing is inside a grace interval of zero.
    let replay = refresh_with(&h, &first.refresh_token).await;

    assert!(matches!(replay, Err(RefreshError::Reused { .. })));
    assert!(matches!(
        refresh_with(&h, &rotated.refresh_token).await,
        Err(RefreshError::InvalidGrant)
    ));
    assert_eq!(h.sessions.live_tokens(first.session_id), 1);
    assert_eq!(
        h.sessions.get(first.session_id).revoked_reason,
        Some(RevokeReason::RefreshTokenReuse)
    );
}
