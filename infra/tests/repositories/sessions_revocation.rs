//! `SessionRepository`: revoking one session or all of a user's, the
//! revocations since an instant, and purging ended sessions.

use std::collections::HashSet;

use portcullis_domain::audit::{AuthEventKind, AuthEventRepository, EventQuery};
use portcullis_domain::ids::SessionId;
use portcullis_domain::session::{RevokeReason, SessionRepository};
use portcullis_infra::db::Database;
use time::Duration;

use crate::support::{contract_tests, event, new_session, new_user, now, signed_up};

contract_tests!(
    revoke_touches_only_the_owners_active_session,
    revoke_all_spares_the_exception_and_other_users,
    purge_deletes_only_sessions_that_ended_before_the_cutoff,
    revoked_since_reports_revocations_from_that_instant,
);

async fn revoke_touches_only_the_owners_active_session(db: &Database) {
    let sessions = db.sessions();
    let owner = new_user(db).await;
    let intruder = new_user(db).await;
    let (session, _) = new_session(db, owner.id, now()).await;
    let at = now() + Duration::seconds(1);

    assert!(
        !sessions
            .revoke(
                intruder.id,
                session.id,
                at,
                RevokeReason::RevokedByUser,
                &event(AuthEventKind::SessionRevoked, at)
            )
            .await
            .unwrap()
    );
    assert_eq!(
        sessions
            .find(owner.id, session.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );

    assert!(
        sessions
            .revoke(
                owner.id,
                session.id,
                at,
                RevokeReason::RevokedByUser,
                &event(AuthEventKind::SessionRevoked, at)
            )
            .await
            .unwrap()
    );
    let later = at + Duration::seconds(1);
    assert!(
        !sessions
            .revoke(
                owner.id,
                session.id,
                later,
                RevokeReason::Logout,
                &event(AuthEventKind::SessionRevoked, later)
            )
            .await
            .unwrap()
    );

    let stored = sessions.find(owner.id, session.id).await.unwrap().unwrap();
    assert_eq!(
        stored.revoked_at,
        Some(at),
        "a second revoke must not move the time"
    );
    assert_eq!(stored.revoked_reason, Some(RevokeReason::RevokedByUser));
}

async fn revoke_all_spares_the_exception_and_other_users(db: &Database) {
    let sessions = db.sessions();
    let signup = signed_up(db).await;
    let user = &signup.user;
    let other = new_user(db).await;
    let opened = now();
    let (current, _) = new_session(db, user.id, opened).await;
    let (phone, _) = new_session(db, user.id, opened).await;
    let (laptop, _) = new_session(db, user.id, opened).await;
    let (already, _) = new_session(db, user.id, opened).await;
    let (others, _) = new_session(db, other.id, opened).await;
    let at = opened + Duration::seconds(1);
    sessions
        .revoke(
            user.id,
            already.id,
            at,
            RevokeReason::Logout,
            &event(AuthEventKind::SessionRevoked, at),
        )
        .await
        .unwrap();

    let revoked = sessions
        .revoke_all(
            user.id,
            Some(current.id),
            at,
            RevokeReason::LogoutOthers,
            &event(AuthEventKind::Logout, at),
        )
        .await
        .unwrap();

    let revoked: HashSet<SessionId> = revoked.into_iter().collect();
    assert_eq!(
        revoked,
        HashSet::from([phone.id, laptop.id, signup.session.id])
    );
    let stored = sessions.find(user.id, phone.id).await.unwrap().unwrap();
    assert_eq!(stored.revoked_reason, Some(RevokeReason::LogoutOthers));
    assert_eq!(
        sessions
            .find(user.id, current.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
    assert_eq!(
        sessions
            .find(other.id, others.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
    let kept = sessions.find(user.id, already.id).await.unwrap().unwrap();
    assert_eq!(kept.revoked_reason, Some(RevokeReason::Logout));

    let rest = sessions
        .revoke_all(
            user.id,
            None,
            at,
            RevokeReason::LogoutAll,
            &event(AuthEventKind::Logout, at),
        )
        .await
        .unwrap();
    assert_eq!(rest, vec![current.id]);
    assert!(
        sessions
            .revoke_all(
                user.id,
                None,
                at,
                RevokeReason::LogoutAll,
                &event(AuthEventKind::Logout, at)
            )
            .await
            .unwrap()
            .is_empty()
    );
}

async fn purge_deletes_only_sessions_that_ended_before_the_cutoff(db: &Database) {
    let sessions = db.sessions();
    let user = new_user(db).await;
    let long_ago = now() - Duration::days(90);
    // Opened 90 days ago: idle- and absolute-expired 60+ days ago.
    let (expired, expired_token) = new_session(db, user.id, long_ago).await;
    // Revoked 40 days ago, opened just before.
    let (revoked, revoked_token) = new_session(db, user.id, now() - Duration::days(41)).await;
    let revoked_at = now() - Duration::days(40);
    assert!(
        sessions
            .revoke(
                user.id,
                revoked.id,
                revoked_at,
                RevokeReason::Logout,
                &event(AuthEventKind::SessionRevoked, revoked_at)
            )
            .await
            .unwrap()
    );
    // Revoked yesterday: ended, but within the retention period.
    let (recent, recent_token) = new_session(db, user.id, now() - Duration::days(2)).await;
    let yesterday = now() - Duration::days(1);
    assert!(
        sessions
            .revoke(
                user.id,
                recent.id,
                yesterday,
                RevokeReason::Logout,
                &event(AuthEventKind::SessionRevoked, yesterday)
            )
            .await
            .unwrap()
    );
    let (active, active_token) = new_session(db, user.id, now()).await;

    let cutoff = now() - Duration::days(30);
    // One at a time: the limit holds.
    assert_eq!(sessions.purge_ended(cutoff, 1).await.unwrap(), 1);
    assert_eq!(sessions.purge_ended(cutoff, 100).await.unwrap(), 1);
    assert_eq!(sessions.purge_ended(cutoff, 100).await.unwrap(), 0);

    for gone in [&expired_token, &revoked_token] {
        assert!(
            sessions
                .find_by_refresh_token(gone)
                .await
                .unwrap()
                .is_none()
        );
    }
    assert_eq!(sessions.find(user.id, expired.id).await.unwrap(), None);
    assert_eq!(sessions.find(user.id, revoked.id).await.unwrap(), None);
    for kept in [&recent_token, &active_token] {
        assert!(
            sessions
                .find_by_refresh_token(kept)
                .await
                .unwrap()
                .is_some()
        );
    }
    assert!(sessions.find(user.id, active.id).await.unwrap().is_some());
    // Their events stay.
    let revocations = db
        .events()
        .query(&EventQuery {
            kinds: vec![AuthEventKind::SessionRevoked],
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(revocations.len(), 2);
}

async fn revoked_since_reports_revocations_from_that_instant(db: &Database) {
    let sessions = db.sessions();
    let user = new_user(db).await;
    let t0 = now();
    let (early, _) = new_session(db, user.id, t0).await;
    let (late, _) = new_session(db, user.id, t0).await;
    let (active, _) = new_session(db, user.id, t0).await;
    let early_at = t0 + Duration::seconds(1);
    let late_at = t0 + Duration::seconds(10);
    sessions
        .revoke(
            user.id,
            early.id,
            early_at,
            RevokeReason::Logout,
            &event(AuthEventKind::SessionRevoked, early_at),
        )
        .await
        .unwrap();
    sessions
        .revoke(
            user.id,
            late.id,
            late_at,
            RevokeReason::Logout,
            &event(AuthEventKind::SessionRevoked, late_at),
        )
        .await
        .unwrap();

    let recent = sessions.revoked_since(late_at).await.unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(
        (recent[0].session_id, recent[0].revoked_at),
        (late.id, late_at)
    );

    let all: HashSet<SessionId> = sessions
        .revoked_since(early_at)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.session_id)
        .collect();
    assert_eq!(all, HashSet::from([early.id, late.id]));
    assert!(!all.contains(&active.id));
    assert!(
        sessions
            .revoked_since(late_at + Duration::milliseconds(1))
            .await
            .unwrap()
            .is_empty()
    );
}
