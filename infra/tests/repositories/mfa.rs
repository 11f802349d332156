//! `MfaRepository`: a pending factor never replaces an active one; a time
//! step, a recovery code and a challenge are each used once, even by racing
//! requests; removing the factor revokes through the feed.

use portcullis_domain::audit::AuthEventKind;
use portcullis_domain::ids::UserId;
use portcullis_domain::mfa::{Challenge, FactorChange, MfaRepository, SealedSeed};
use portcullis_domain::session::{RevocationCursor, SessionRepository};
use portcullis_domain::user::UserRepository;
use portcullis_infra::db::Database;
use time::Duration;
use tokio::task::JoinSet;

use crate::support::{contract_tests, event, new_session, now, signed_up, token};

contract_tests!(
    a_pending_factor_never_replaces_an_active_one,
    a_step_is_accepted_once_even_by_racing_requests,
    a_recovery_code_is_spent_once,
    a_challenge_counts_its_tries_and_is_consumed_once,
    removing_the_factor_revokes_the_other_sessions_through_the_feed,
);

async fn activate(db: &Database, user: UserId, codes: &[Vec<u8>]) {
    let mfa = db.mfa();
    assert!(
        mfa.put_pending_totp(user, &SealedSeed(vec![1; 48]), now())
            .await
            .unwrap()
    );
    let at = now();
    let event = event(AuthEventKind::SecondFactorEnabled, at).user(user);
    let change = FactorChange {
        user,
        now: at,
        event: &event,
        mail: &[],
    };
    assert!(mfa.activate_totp(change, 100, codes).await.unwrap());
}

async fn a_pending_factor_never_replaces_an_active_one(db: &Database) {
    let user = signed_up(db).await.user.id;
    let mfa = db.mfa();
    assert!(
        mfa.put_pending_totp(user, &SealedSeed(vec![1; 48]), now())
            .await
            .unwrap()
    );
    assert!(
        mfa.put_pending_totp(user, &SealedSeed(vec![2; 48]), now())
            .await
            .unwrap(),
        "a pending one is replaced"
    );
    assert_eq!(
        mfa.totp(user).await.unwrap().unwrap().seed,
        SealedSeed(vec![2; 48])
    );
    let at = now();
    let event = event(AuthEventKind::SecondFactorEnabled, at).user(user);
    let change = FactorChange {
        user,
        now: at,
        event: &event,
        mail: &[],
    };
    assert!(mfa.activate_totp(change, 7, &[]).await.unwrap());
    assert!(
        !mfa.activate_totp(change, 8, &[]).await.unwrap(),
        "nothing pending any more"
    );
    assert!(
        !mfa.put_pending_totp(user, &SealedSeed(vec![3; 48]), now())
            .await
            .unwrap()
    );
    let stored = mfa.totp(user).await.unwrap().unwrap();
    assert!(stored.active && stored.last_step == Some(7) && stored.seed == SealedSeed(vec![2; 48]));
    assert!(
        db.users()
            .find_by_id(user)
            .await
            .unwrap()
            .unwrap()
            .second_factor
    );
}

async fn a_step_is_accepted_once_even_by_racing_requests(db: &Database) {
    let user = signed_up(db).await.user.id;
    activate(db, user, &[]).await;
    assert!(
        !db.mfa().accept_totp_step(user, 100).await.unwrap(),
        "the confirming step is spent"
    );
    assert!(
        !db.mfa().accept_totp_step(user, 99).await.unwrap(),
        "an older step too"
    );
    let mut racers = JoinSet::new();
    for _ in 0..4 {
        let db = db.clone();
        racers.spawn(async move { db.mfa().accept_totp_step(user, 101).await.unwrap() });
    }
    let accepted = racers.join_all().await.into_iter().filter(|ok| *ok).count();
    assert_eq!(accepted, 1);
}

async fn a_recovery_code_is_spent_once(db: &Database) {
    let user = signed_up(db).await.user.id;
    activate(db, user, &[vec![1; 32], vec![2; 32]]).await;
    let mfa = db.mfa();
    assert_eq!(mfa.recovery_codes_left(user).await.unwrap(), 2);
    let at = now();
    let event = event(AuthEventKind::RecoveryCodeUsed, at).user(user);
    let change = FactorChange {
        user,
        now: at,
        event: &event,
        mail: &[],
    };
    let mut racers = JoinSet::new();
    for _ in 0..3 {
        let db = db.clone();
        let event = event.clone();
        racers.spawn(async move {
            let change = FactorChange {
                user,
                now: at,
                event: &event,
                mail: &[],
            };
            db.mfa().use_recovery_code(change, &[1; 32]).await.unwrap()
        });
    }
    assert_eq!(
        racers.join_all().await.into_iter().filter(|ok| *ok).count(),
        1
    );
    assert_eq!(mfa.recovery_codes_left(user).await.unwrap(), 1);
    let other = signed_up(db).await.user.id;
    let theirs = FactorChange {
        user: other,
        ..change
    };
    assert!(
        !mfa.use_recovery_code(theirs, &[2; 32]).await.unwrap(),
        "codes are per user"
    );
}

async fn a_challenge_counts_its_tries_and_is_consumed_once(db: &Database) {
    let user = signed_up(db).await.user.id;
    let mfa = db.mfa();
    let (first, second) = (token(), token());
    for hash in [&first, &second] {
        mfa.open_challenge(
            hash,
            &Challenge {
                user,
                expires_at: now() + Duration::minutes(5),
                tries: 0,
            },
        )
        .await
        .unwrap();
    }
    assert!(
        mfa.challenge(&first, now() + Duration::minutes(6))
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    for expected in 1..5 {
        assert_eq!(mfa.fail_challenge(&first, 5).await.unwrap(), expected);
    }
    assert_eq!(mfa.fail_challenge(&first, 5).await.unwrap(), 5);
    assert!(
        mfa.challenge(&first, now()).await.unwrap().is_none(),
        "out of tries"
    );
    assert_eq!(
        mfa.challenge(&second, now()).await.unwrap().unwrap().tries,
        0
    );
    assert!(mfa.consume_challenge(&second).await.unwrap());
    assert!(!mfa.consume_challenge(&second).await.unwrap());
}

async fn removing_the_factor_revokes_the_other_sessions_through_the_feed(db: &Database) {
    let signup = signed_up(db).await;
    let user = signup.user.id;
    let (other, _) = new_session(db, user, now()).await;
    activate(db, user, &[vec![1; 32]]).await;
    let before = db
        .sessions()
        .revocations_after(RevocationCursor::START, 1000)
        .await
        .unwrap()
        .next;
    let at = now();
    let event = event(AuthEventKind::SecondFactorDisabled, at).user(user);
    let change = FactorChange {
        user,
        now: at,
        event: &event,
        mail: &[],
    };
    let revoked = db
        .mfa()
        .remove_totp(change, Some(signup.session.id))
        .await
        .unwrap();
    assert_eq!(revoked, vec![other.id]);
    let feed = db.sessions().revocations_after(before, 1000).await.unwrap();
    assert_eq!(
        feed.revocations
            .iter()
            .map(|r| r.session_id)
            .collect::<Vec<_>>(),
        vec![other.id]
    );
    assert!(db.mfa().totp(user).await.unwrap().is_none());
    assert_eq!(db.mfa().recovery_codes_left(user).await.unwrap(), 0);
    assert!(
        !db.users()
            .find_by_id(user)
            .await
            .unwrap()
            .unwrap()
            .second_factor
    );
}
