//! Unit tests of `AuthService` through in-memory fakes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use time::Duration;
use time::macros::datetime;

use super::*;
use crate::fakes::*;
use crate::password::PasswordHash;

struct Harness {
    service: AuthService,
    clock: Arc<FixedClock>,
    sessions: Arc<InMemorySessionRepository>,
    users: Arc<InMemoryUserRepository>,
    hasher: Arc<FakeHasher>,
}

fn harness() -> Harness {
    let clock = Arc::new(FixedClock::at(datetime!(2026-11-24 12:00 UTC)));
    let sessions = Arc::new(InMemorySessionRepository::default());
    let users = Arc::new(InMemoryUserRepository::default());
    let hasher = Arc::new(FakeHasher::default());
    let ports = AuthPorts {
        users: users.clone(),
        sessions: sessions.clone(),
        hasher: hasher.clone(),
        issuer: Arc::new(FakeTokens),
        verifier: Arc::new(FakeTokens),
        revocations: Arc::new(InMemoryRevocationCache::default()),
        secrets: Arc::new(SequentialSecrets::default()),
        clock: clock.clone(),
    };
    let policy = PasswordPolicy::new(15, ["password1234567890".to_owned()]).unwrap();
    Harness {
        service: AuthService::new(ports, policy, SessionPolicy::default()),
        clock,
        sessions,
        users,
        hasher,
    }
}

fn email(raw: &str) -> Email {
    Email::parse(raw).unwrap()
}

const PASSWORD: &str = "a long and quiet river";

async fn signed_up(h: &Harness) -> TokenPair {
    h.service
        .sign_up(
            email("bob@example.com"),
            Password::new(PASSWORD.into()),
            ClientInfo::default(),
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
            email("BOB@example.com"),
            Password::new(PASSWORD.into()),
            ClientInfo::default(),
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
            email("bob@example.com"),
            Password::new("password1234567890".into()),
            ClientInfo::default(),
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
            email("Bob@Example.com"),
            Password::new(PASSWORD.into()),
            ClientInfo::default(),
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
            email("nobody@example.com"),
            Password::new(PASSWORD.into()),
            ClientInfo::default(),
        )
        .await;
    let wrong = h
        .service
        .log_in(
            email("bob@example.com"),
            Password::new("not the password at all".into()),
            ClientInfo::default(),
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
            email("bob@example.com"),
            Password::new(PASSWORD.into()),
            ClientInfo::default(),
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
            .refresh(pair.refresh_token.expose())
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
        .refresh(pair.refresh_token.expose())
        .await
        .unwrap();
    h.clock.advance(Duration::seconds(5));

    let second = h
        .service
        .refresh(pair.refresh_token.expose())
        .await
        .unwrap();

    assert_eq!(first.session_id, second.session_id);
    assert_eq!(h.sessions.session_count(), 1);
    assert!(
        h.service
            .refresh(second.refresh_token.expose())
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
            email("bob@example.com"),
            Password::new(PASSWORD.into()),
            ClientInfo::default(),
        )
        .await
        .unwrap();
    let rotated = h
        .service
        .refresh(victim.refresh_token.expose())
        .await
        .unwrap();
    h.clock.advance(Duration::seconds(11));

    let reuse = h.service.refresh(victim.refresh_token.expose()).await;

    assert!(matches!(reuse, Err(RefreshError::Reused { .. })));
    assert!(matches!(
        h.service.refresh(rotated.refresh_token.expose()).await,
        Err(RefreshError::InvalidGrant)
    ));
    assert_eq!(
        h.service.authenticate(rotated.access_token.expose()),
        Err(TokenRejection::Revoked)
    );
    assert!(
        h.service
            .refresh(other.refresh_token.expose())
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
        h.service.refresh(pair.refresh_token.expose()).await,
        Err(RefreshError::InvalidGrant)
    ));

    let mut pair = h
        .service
        .log_in(
            email("bob@example.com"),
            Password::new(PASSWORD.into()),
            ClientInfo::default(),
        )
        .await
        .unwrap();
    let absolute = h.sessions.get(pair.session_id).absolute_expires_at;
    for _ in 0..6 {
        h.clock.advance(Duration::days(6));
        match h.service.refresh(pair.refresh_token.expose()).await {
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
    for token in ["", "short", &"x".repeat(43), &"!".repeat(43)] {
        assert!(matches!(
            h.service.refresh(token).await,
            Err(RefreshError::InvalidGrant)
        ));
    }
}

#[tokio::test]
async fn logout_scopes_revoke_the_right_sessions() {
    let h = harness();
    let a = signed_up(&h).await;
    let log_in = || async {
        h.service
            .log_in(
                email("bob@example.com"),
                Password::new(PASSWORD.into()),
                ClientInfo::default(),
            )
            .await
            .unwrap()
    };
    let b = log_in().await;
    let c = log_in().await;
    let principal = h.service.authenticate(a.access_token.expose()).unwrap();

    let revoked = h
        .service
        .log_out(&principal, LogoutScope::Others)
        .await
        .unwrap();
    assert_eq!(revoked.len(), 2);
    assert!(h.service.authenticate(a.access_token.expose()).is_ok());
    assert_eq!(
        h.service.authenticate(b.access_token.expose()),
        Err(TokenRejection::Revoked)
    );
    assert!(matches!(
        h.service.refresh(c.refresh_token.expose()).await,
        Err(RefreshError::InvalidGrant)
    ));

    h.service
        .log_out(&principal, LogoutScope::This)
        .await
        .unwrap();
    assert_eq!(
        h.service.authenticate(a.access_token.expose()),
        Err(TokenRejection::Revoked)
    );
    assert!(h.service.sessions(&principal).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_user_cannot_revoke_someone_elses_session() {
    let h = harness();
    let bob = signed_up(&h).await;
    let eve = h
        .service
        .sign_up(
            email("eve@example.com"),
            Password::new(PASSWORD.into()),
            ClientInfo::default(),
        )
        .await
        .unwrap();
    let eve_principal = h.service.authenticate(eve.access_token.expose()).unwrap();

    let attempt = h
        .service
        .revoke_session(&eve_principal, bob.session_id)
        .await;

    assert!(matches!(attempt, Err(RevokeSessionError::NotFound)));
    assert!(h.service.authenticate(bob.access_token.expose()).is_ok());
}
