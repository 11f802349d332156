//! `AccountRepository` and the outbox: a token is consumed once, even by
//! racing requests; a new token voids the older of its purpose; a password
//! change voids reset links; email changes keep addresses unique; a
//! deletion revokes through the feed and keeps the trail; the outbox is
//! claimed once and scrubbed when delivered.

use portcullis_domain::account::{AccountChange, AccountDeletion, AccountRepository, ChangeError};
use portcullis_domain::audit::{AuthEventKind, AuthEventRepository, EventQuery};
use portcullis_domain::email::Email;
use portcullis_domain::mail::{Mail, MailKind};
use portcullis_domain::one_time::{OneTimeToken, TokenPurpose};
use portcullis_domain::password::PasswordHash;
use portcullis_domain::session::{RevocationCursor, SessionRepository};
use portcullis_domain::user::{NewToken, UserRepository};
use portcullis_infra::db::Database;
use time::Duration;
use tokio::task::JoinSet;

use crate::support::{contract_tests, event, new_session, now, signed_up, token};

contract_tests!(
    sign_up_stores_a_live_verification_token_and_queues_its_message,
    racing_requests_consume_a_token_once,
    a_new_token_voids_the_older_of_its_purpose_and_a_password_change_voids_resets,
    issuing_again_too_soon_is_refused_with_the_time_left,
    an_email_change_keeps_addresses_unique_and_voids_old_links,
    a_deletion_revokes_through_the_feed_and_keeps_the_trail,
    the_outbox_is_claimed_once_and_scrubbed_when_sent,
);

async fn sign_up_stores_a_live_verification_token_and_queues_its_message(db: &Database) {
    let signup = signed_up(db).await;
    let pending = db
        .accounts()
        .find_token(&signup.verification, now())
        .await
        .unwrap()
        .expect("a live verification token");
    assert_eq!(pending.user, signup.user.id);
    assert_eq!(pending.purpose, TokenPurpose::VerifyEmail);
    assert_eq!(pending.session, Some(signup.session.id));
    assert!(
        db.accounts()
            .find_token(&signup.verification, now() + Duration::hours(25))
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert_eq!(db.outbox().counts().await.unwrap().pending, 1);
}

async fn racing_requests_consume_a_token_once(db: &Database) {
    let signup = signed_up(db).await;
    let mut racers = JoinSet::new();
    for _ in 0..4 {
        let db = db.clone();
        let hash = signup.verification.clone();
        let user = signup.user.id;
        racers.spawn(async move {
            let at = now();
            let event = event(AuthEventKind::EmailVerified, at).user(user);
            let mut change = AccountChange::new(user, at, &event);
            change.consume = Some(&hash);
            change.verify = true;
            db.accounts().apply(change).await
        });
    }
    let results = racers.join_all().await;
    let applied = results.iter().filter(|r| r.is_ok()).count();
    let gone = results
        .iter()
        .filter(|r| matches!(r, Err(ChangeError::TokenGone)))
        .count();
    assert_eq!((applied, gone), (1, 3), "{results:?}");
    let user = db
        .users()
        .find_by_id(signup.user.id)
        .await
        .unwrap()
        .unwrap();
    assert!(user.email_verified_at.is_some());
    let verified = db
        .events()
        .query(&EventQuery {
            user_id: Some(signup.user.id),
            kinds: vec![AuthEventKind::EmailVerified],
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(verified.len(), 1, "a refused change stores no event");
}

/// Issues a token of `purpose` for `user` at `at`; returns its digest.
async fn issue(
    db: &Database,
    user: portcullis_domain::ids::UserId,
    purpose: TokenPurpose,
    at: time::OffsetDateTime,
) -> portcullis_domain::session::TokenHash {
    let hash = token();
    let event = event(AuthEventKind::PasswordResetRequested, at).user(user);
    let mut change = AccountChange::new(user, at, &event);
    change.issue = Some(NewToken {
        hash: &hash,
        purpose,
        new_email: None,
        session: None,
        created_at: at,
        expires_at: at + Duration::minutes(30),
    });
    db.accounts().apply(change).await.unwrap();
    hash
}

async fn a_new_token_voids_the_older_of_its_purpose_and_a_password_change_voids_resets(
    db: &Database,
) {
    let signup = signed_up(db).await;
    let user = signup.user.id;
    let older = issue(db, user, TokenPurpose::ResetPassword, now()).await;
    let newer = issue(db, user, TokenPurpose::ResetPassword, now()).await;
    let accounts = db.accounts();
    assert!(accounts.find_token(&older, now()).await.unwrap().is_none());
    assert!(accounts.find_token(&newer, now()).await.unwrap().is_some());
    assert!(
        accounts
            .find_token(&signup.verification, now())
            .await
            .unwrap()
            .is_some(),
        "other purposes are left alone"
    );

    let at = now();
    let event = event(AuthEventKind::PasswordChanged, at).user(user);
    let hash = PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3".to_owned());
    let mut change = AccountChange::new(user, at, &event);
    change.password = Some(&hash);
    accounts.apply(change).await.unwrap();
    assert!(accounts.find_token(&newer, now()).await.unwrap().is_none());
    let stored = db.users().find_by_id(user).await.unwrap().unwrap();
    assert_eq!(stored.password_hash, hash);
}

async fn issuing_again_too_soon_is_refused_with_the_time_left(db: &Database) {
    let signup = signed_up(db).await;
    let user = signup.user.id;
    let at = now();
    let hash = token();
    let event = event(AuthEventKind::VerificationEmailSent, at).user(user);
    let mut change = AccountChange::new(user, at, &event);
    change.issue = Some(NewToken {
        hash: &hash,
        purpose: TokenPurpose::VerifyEmail,
        new_email: None,
        session: None,
        created_at: at,
        expires_at: at + Duration::hours(24),
    });
    change.not_within = Some(Duration::minutes(1));
    let refused = db.accounts().apply(change).await;
    assert!(
        matches!(refused, Err(ChangeError::TooSoon { retry_after_secs }) if (1..=60).contains(&retry_after_secs)),
        "{refused:?}"
    );

    let later = at + Duration::seconds(61);
    let mut change = AccountChange::new(user, later, &event);
    change.issue = Some(NewToken {
        hash: &hash,
        purpose: TokenPurpose::VerifyEmail,
        new_email: None,
        session: None,
        created_at: later,
        expires_at: later + Duration::hours(24),
    });
    change.not_within = Some(Duration::minutes(1));
    db.accounts().apply(change).await.unwrap();
}

async fn an_email_change_keeps_addresses_unique_and_voids_old_links(db: &Database) {
    let ann = signed_up(db).await;
    let bob = signed_up(db).await;
    let reset = issue(db, ann.user.id, TokenPurpose::ResetPassword, now()).await;
    let at = now();
    let event = event(AuthEventKind::EmailChanged, at).user(ann.user.id);

    let mut change = AccountChange::new(ann.user.id, at, &event);
    change.email = Some(&bob.user.email);
    assert!(matches!(
        db.accounts().apply(change).await,
        Err(ChangeError::EmailTaken)
    ));
    assert!(
        db.accounts()
            .find_token(&reset, now())
            .await
            .unwrap()
            .is_some(),
        "nothing changed"
    );

    let fresh = Email::parse(&format!("{}@example.net", uuid::Uuid::new_v4().simple())).unwrap();
    let mut change = AccountChange::new(ann.user.id, at, &event);
    change.email = Some(&fresh);
    change.verify = true;
    db.accounts().apply(change).await.unwrap();
    assert!(
        db.accounts()
            .find_token(&reset, now())
            .await
            .unwrap()
            .is_none()
    );
    let profile = db.users().find_profile(ann.user.id).await.unwrap().unwrap();
    assert_eq!(
        profile.email, fresh,
        "the profile cache shows the change at once"
    );
    assert!(profile.email_verified);
}

async fn a_deletion_revokes_through_the_feed_and_keeps_the_trail(db: &Database) {
    let signup = signed_up(db).await;
    let user = signup.user.id;
    let (second, _) = new_session(db, user, now()).await;
    let before = db
        .sessions()
        .revocations_after(RevocationCursor::START, 1000)
        .await
        .unwrap()
        .next;
    let at = now();
    let event = event(AuthEventKind::AccountDeleted, at).user(user);
    let notice = Mail::notice(
        MailKind::AccountDeleted,
        user,
        signup.user.email.clone(),
        at,
    );
    let revoked = db
        .accounts()
        .delete(AccountDeletion {
            user,
            now: at,
            notice: &notice,
            event: &event,
        })
        .await
        .unwrap()
        .expect("deleted");
    let mut revoked_ids: Vec<_> = revoked.clone();
    revoked_ids.sort();
    let mut expected = vec![signup.session.id, second.id];
    expected.sort();
    assert_eq!(revoked_ids, expected);

    let feed = db.sessions().revocations_after(before, 1000).await.unwrap();
    let mut fed: Vec<_> = feed.revocations.iter().map(|r| r.session_id).collect();
    fed.sort();
    assert_eq!(fed, expected, "other instances learn of both");
    assert!(db.users().find_by_id(user).await.unwrap().is_none());
    assert!(db.users().find_profile(user).await.unwrap().is_none());
    assert!(
        db.accounts()
            .find_token(&signup.verification, now())
            .await
            .unwrap()
            .is_none()
    );
    let trail = db
        .events()
        .query(&EventQuery {
            user_id: Some(user),
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert!(trail.iter().any(|e| e.kind == AuthEventKind::SignUp));
    assert!(
        trail
            .iter()
            .any(|e| e.kind == AuthEventKind::AccountDeleted)
    );
    // The verification link's message died with the account; the notice waits.
    let counts = db.outbox().counts().await.unwrap();
    assert_eq!((counts.pending, counts.expired), (1, 1), "{counts:?}");
    assert!(
        db.accounts()
            .delete(AccountDeletion {
                user,
                now: at,
                notice: &notice,
                event: &event
            })
            .await
            .unwrap()
            .is_none()
    );
}

async fn the_outbox_is_claimed_once_and_scrubbed_when_sent(db: &Database) {
    let signup = signed_up(db).await;
    let outbox = db.outbox();
    let lease = Duration::minutes(2);
    let first = outbox.claim(now(), lease, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    let message = &first[0];
    assert_eq!(message.mail.kind, MailKind::VerifyEmail);
    assert_eq!(message.mail.to, signup.user.email);
    assert_eq!(
        message.mail.token.as_ref().map(OneTimeToken::expose),
        Some("A".repeat(43).as_str())
    );
    assert!(
        outbox.claim(now(), lease, 10).await.unwrap().is_empty(),
        "leased"
    );

    outbox
        .retry(
            message.id,
            1,
            now() - Duration::seconds(1),
            "SMTP transient refusal",
        )
        .await
        .unwrap();
    let again = outbox.claim(now(), lease, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);

    outbox.sent(message.id, now()).await.unwrap();
    assert!(
        outbox
            .claim(now() + Duration::hours(1), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let counts = outbox.counts().await.unwrap();
    assert_eq!((counts.sent, counts.pending), (1, 0));
}
