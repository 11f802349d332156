//! `SessionRepository`: refresh-token rotation (single use, stopped by
//! revocation and expiry, races and batched waves) and `add_token`.

use std::sync::Arc;

use portcullis_domain::audit::{AuthEventKind, AuthEventRepository, EventQuery};
use portcullis_domain::session::{RevokeReason, RotateOutcome, SessionRepository};
use portcullis_infra::db::Database;
use time::Duration;
use tokio::task::JoinSet;

use crate::support::{contract_tests, event, ids, new_session, new_user, now, refreshed, token};

contract_tests!(
    rotation_is_single_use_and_stops_at_revocation,
    rotation_stops_at_expiry,
    concurrent_rotations_of_one_token_have_one_winner,
    a_wave_of_rotations_decides_each_as_if_alone,
    add_token_only_extends_active_sessions,
);

async fn rotation_is_single_use_and_stops_at_revocation(db: &Database) {
    let sessions = db.sessions();
    let user = new_user(db).await;
    let opened = now();
    let (session, first) = new_session(db, user.id, opened).await;
    let used = opened + Duration::minutes(1);
    let idle = used + Duration::days(7);
    let second = token();

    let outcome = sessions
        .rotate(
            session.id,
            &first,
            &second,
            used,
            idle,
            &refreshed(&session, used),
        )
        .await
        .unwrap();
    assert_eq!(outcome, RotateOutcome::Rotated);
    let (old, after) = sessions
        .find_by_refresh_token(&first)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.rotated_at, Some(used));
    assert_eq!((after.last_used_at, after.idle_expires_at), (used, idle));
    let (new, _) = sessions
        .find_by_refresh_token(&second)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((new.created_at, new.rotated_at), (used, None));

    let replayed = token();
    let outcome = sessions
        .rotate(
            session.id,
            &first,
            &replayed,
            used,
            idle,
            &refreshed(&session, used),
        )
        .await
        .unwrap();
    assert_eq!(outcome, RotateOutcome::AlreadyRotated);
    assert!(
        sessions
            .find_by_refresh_token(&replayed)
            .await
            .unwrap()
            .is_none()
    );

    assert!(
        sessions
            .revoke(
                user.id,
                session.id,
                used,
                RevokeReason::Logout,
                &event(AuthEventKind::SessionRevoked, used)
            )
            .await
            .unwrap()
    );
    let late = token();
    let outcome = sessions
        .rotate(
            session.id,
            &second,
            &late,
            used,
            idle,
            &refreshed(&session, used),
        )
        .await
        .unwrap();
    assert_eq!(outcome, RotateOutcome::SessionInactive);
    assert!(
        sessions
            .find_by_refresh_token(&late)
            .await
            .unwrap()
            .is_none()
    );
    let (current, _) = sessions
        .find_by_refresh_token(&second)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        current.rotated_at, None,
        "an inactive rotation must roll back"
    );
}

async fn rotation_stops_at_expiry(db: &Database) {
    let sessions = db.sessions();
    let user = new_user(db).await;
    let (session, first) = new_session(db, user.id, now()).await;
    let after_idle = session.idle_expires_at + Duration::seconds(1);

    let outcome = sessions
        .rotate(
            session.id,
            &first,
            &token(),
            after_idle,
            after_idle + Duration::days(7),
            &refreshed(&session, after_idle),
        )
        .await
        .unwrap();

    assert_eq!(outcome, RotateOutcome::SessionInactive);
    let (record, stored) = sessions
        .find_by_refresh_token(&first)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.rotated_at, None);
    assert_eq!(stored, session);
}

/// Many rotations at once (on SQLite they share a transaction): each gets
/// the outcome it would get alone, and only the winners leave a trace.
async fn a_wave_of_rotations_decides_each_as_if_alone(db: &Database) {
    let user = new_user(db).await;
    let opened = now();
    let mut live = Vec::new();
    let mut revoked = Vec::new();
    for index in 0..24 {
        let (session, first) = new_session(db, user.id, opened).await;
        if index % 6 == 0 {
            let at = opened + Duration::seconds(1);
            assert!(
                db.sessions()
                    .revoke(
                        user.id,
                        session.id,
                        at,
                        RevokeReason::Logout,
                        &event(AuthEventKind::SessionRevoked, at)
                    )
                    .await
                    .unwrap()
            );
            revoked.push((session, first));
        } else {
            live.push((session, first));
        }
    }
    let used = opened + Duration::minutes(1);
    let idle = used + Duration::days(7);

    // Every live token presented three times, every revoked one once.
    let mut attempts = JoinSet::new();
    for (copy, (session, first)) in live
        .iter()
        .flat_map(|pair| std::iter::repeat_n(pair, 3))
        .chain(revoked.iter())
        .enumerate()
    {
        let sessions = db.sessions();
        let (session, first) = (session.clone(), first.clone());
        attempts.spawn(async move {
            let next = token();
            let event = refreshed(&session, used);
            let outcome = sessions
                .rotate(session.id, &first, &next, used, idle, &event)
                .await
                .expect("no storage error");
            (copy, session.id, outcome, next, event)
        });
    }
    let results = attempts.join_all().await;

    let mut winning_events = Vec::new();
    for (session, first) in &live {
        let mine: Vec<_> = results.iter().filter(|r| r.1 == session.id).collect();
        assert_eq!(mine.len(), 3);
        let winners: Vec<_> = mine
            .iter()
            .filter(|r| r.2 == RotateOutcome::Rotated)
            .collect();
        assert_eq!(winners.len(), 1, "one winner per token");
        for result in &mine {
            let stored = db
                .sessions()
                .find_by_refresh_token(&result.3)
                .await
                .unwrap();
            if result.2 == RotateOutcome::Rotated {
                let (record, stored) = stored.expect("the winner's token is stored");
                assert_eq!(record.rotated_at, None);
                assert_eq!((stored.last_used_at, stored.idle_expires_at), (used, idle));
            } else {
                assert_eq!(result.2, RotateOutcome::AlreadyRotated);
                assert!(stored.is_none(), "a loser's token is not stored");
            }
        }
        let (old, _) = db
            .sessions()
            .find_by_refresh_token(first)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(old.rotated_at, Some(used));
        winning_events.push(winners[0].4.clone());
    }
    for (session, first) in &revoked {
        let result = results.iter().find(|r| r.1 == session.id).unwrap();
        assert_eq!(result.2, RotateOutcome::SessionInactive);
        assert!(
            db.sessions()
                .find_by_refresh_token(&result.3)
                .await
                .unwrap()
                .is_none()
        );
        let (old, stored) = db
            .sessions()
            .find_by_refresh_token(first)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(old.rotated_at, None);
        assert_eq!(stored.last_used_at, session.last_used_at);
    }

    let stored = db
        .events()
        .query(&EventQuery {
            kinds: vec![AuthEventKind::TokenRefreshed],
            limit: 100,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    let mut stored = ids(&stored);
    let mut expected = ids(&winning_events);
    stored.sort();
    expected.sort();
    assert_eq!(stored, expected, "exactly the winners' events");
}

async fn concurrent_rotations_of_one_token_have_one_winner(db: &Database) {
    let user = new_user(db).await;
    let (session, first) = new_session(db, user.id, now()).await;
    let first = Arc::new(first);
    let used = now();
    let idle = used + Duration::days(7);

    let mut attempts = JoinSet::new();
    for _ in 0..16 {
        let sessions = db.sessions();
        let presented = Arc::clone(&first);
        let next = token();
        attempts.spawn(async move {
            let outcome = sessions
                .rotate(
                    session.id,
                    &presented,
                    &next,
                    used,
                    idle,
                    &event(AuthEventKind::TokenRefreshed, used),
                )
                .await;
            (outcome, next)
        });
    }
    let results = attempts.join_all().await;

    let mut winners = Vec::new();
    for (outcome, next) in results {
        match outcome.expect("no storage error under contention") {
            RotateOutcome::Rotated => winners.push(next),
            RotateOutcome::AlreadyRotated => {
                let stored = db.sessions().find_by_refresh_token(&next).await.unwrap();
                assert!(stored.is_none(), "a losing rotation stored its token");
            }
            RotateOutcome::SessionInactive => panic!("the session is active"),
        }
    }
    assert_eq!(winners.len(), 1);
    let (record, _) = db
        .sessions()
        .find_by_refresh_token(&winners[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.rotated_at, None);
}

async fn add_token_only_extends_active_sessions(db: &Database) {
    let sessions = db.sessions();
    let user = new_user(db).await;
    let (session, _first) = new_session(db, user.id, now()).await;
    let used = session.created_at + Duration::seconds(3);
    let idle = used + Duration::days(7);
    let extra = token();

    assert!(
        sessions
            .add_token(session.id, &extra, used, idle, &refreshed(&session, used))
            .await
            .unwrap()
    );
    let (record, stored) = sessions
        .find_by_refresh_token(&extra)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (record.session_id, record.created_at, record.rotated_at),
        (session.id, used, None)
    );
    assert_eq!((stored.last_used_at, stored.idle_expires_at), (used, idle));

    sessions
        .revoke(
            user.id,
            session.id,
            used,
            RevokeReason::Logout,
            &event(AuthEventKind::SessionRevoked, used),
        )
        .await
        .unwrap();
    let refused = token();
    assert!(
        !sessions
            .add_token(session.id, &refused, used, idle, &refreshed(&session, used))
            .await
            .unwrap()
    );
    assert!(
        sessions
            .find_by_refresh_token(&refused)
            .await
            .unwrap()
            .is_none()
    );
}
