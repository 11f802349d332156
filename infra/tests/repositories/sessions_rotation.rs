//! `SessionRepository`: refresh-token rotation (single use, stopped by
//! revocation and expiry, races and batched waves) and `supersede` (a grace
//! replay): whatever the interleaving, a session keeps one current token.

use std::sync::Arc;

use portcullis_domain::audit::{AuthEvent, AuthEventKind, AuthEventRepository, EventQuery};
use portcullis_domain::session::{
    RefreshDecision, RevokeReason, RotateOutcome, Session, SessionRepository, Supersession,
    TokenHash,
};
use portcullis_infra::db::Database;
use time::{Duration, OffsetDateTime};
use tokio::task::JoinSet;

use crate::support::{contract_tests, event, ids, new_session, new_user, now, refreshed, token};

contract_tests!(
    rotation_is_single_use_and_stops_at_revocation,
    rotation_stops_at_expiry,
    concurrent_rotations_of_one_token_have_one_winner,
    a_wave_of_rotations_decides_each_as_if_alone,
    a_grace_replay_supersedes_the_current_token,
    supersede_changes_nothing_outside_the_grace_interval_or_on_an_inactive_session,
    racing_grace_replays_and_rotations_leave_one_current_token,
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
    assert_eq!(outcome, RotateOutcome::AlreadyRotated { rotated_at: used });
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
                assert_eq!(result.2, RotateOutcome::AlreadyRotated { rotated_at: used });
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
            RotateOutcome::AlreadyRotated { rotated_at } => {
                assert_eq!(rotated_at, used, "the winner's rotation time, as stored");
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

const GRACE: Duration = Duration::seconds(10);

/// A grace replay of `presented` at `now`, storing `next`.
fn replay<'a>(
    session: &Session,
    presented: &'a TokenHash,
    next: &'a TokenHash,
    now: OffsetDateTime,
    replayed: &'a AuthEvent,
) -> Supersession<'a> {
    Supersession {
        session: session.id,
        presented,
        next,
        now,
        idle_expires_at: now + Duration::days(7),
        grace: GRACE,
        event: replayed,
    }
}

/// The tokens among `tokens` that are current (stored and not rotated).
async fn current(db: &Database, tokens: &[&TokenHash]) -> Vec<usize> {
    let mut found = Vec::new();
    for (index, token) in tokens.iter().enumerate() {
        let stored = db.sessions().find_by_refresh_token(token).await.unwrap();
        if stored.is_some_and(|(record, _)| record.rotated_at.is_none()) {
            found.push(index);
        }
    }
    found
}

/// A rotated session: its first token `t0`, rotated at `rotated_at` into `t1`.
async fn rotated_session(db: &Database) -> (Session, TokenHash, TokenHash, OffsetDateTime) {
    let user = new_user(db).await;
    let (session, t0) = new_session(db, user.id, now()).await;
    let rotated_at = session.created_at + Duration::seconds(1);
    let t1 = token();
    let outcome = db
        .sessions()
        .rotate(
            session.id,
            &t0,
            &t1,
            rotated_at,
            rotated_at + Duration::days(7),
            &refreshed(&session, rotated_at),
        )
        .await
        .unwrap();
    assert_eq!(outcome, RotateOutcome::Rotated);
    (session, t0, t1, rotated_at)
}

async fn a_grace_replay_supersedes_the_current_token(db: &Database) {
    let sessions = db.sessions();
    let (session, t0, t1, rotated_at) = rotated_session(db).await;
    let (t2, t3) = (token(), token());
    let (second, third) = (
        rotated_at + Duration::seconds(3),
        rotated_at + Duration::seconds(9),
    );

    let replayed = refreshed(&session, second).detail("grace_replay");
    let decided = sessions
        .supersede(replay(&session, &t0, &t2, second, &replayed))
        .await
        .unwrap();
    assert_eq!(decided, RefreshDecision::GraceReplay);
    let (old, stored) = sessions.find_by_refresh_token(&t1).await.unwrap().unwrap();
    assert_eq!(
        old.rotated_at,
        Some(second),
        "the current token is superseded"
    );
    assert_eq!(
        (stored.last_used_at, stored.idle_expires_at),
        (second, second + Duration::days(7))
    );
    let (new, _) = sessions.find_by_refresh_token(&t2).await.unwrap().unwrap();
    assert_eq!((new.created_at, new.rotated_at), (second, None));

    // Grace runs from the presented token's own rotation, not the last replay.
    let replayed = refreshed(&session, third).detail("grace_replay");
    let decided = sessions
        .supersede(replay(&session, &t0, &t3, third, &replayed))
        .await
        .unwrap();
    assert_eq!(decided, RefreshDecision::GraceReplay);
    assert_eq!(current(db, &[&t0, &t1, &t2, &t3]).await, vec![3]);
    let (t2_record, _) = sessions.find_by_refresh_token(&t2).await.unwrap().unwrap();
    assert_eq!(t2_record.rotated_at, Some(third));

    // The superseded token rotates no more: it is a replay, from its own time.
    let outcome = sessions
        .rotate(
            session.id,
            &t1,
            &token(),
            third,
            third + Duration::days(7),
            &refreshed(&session, third),
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        RotateOutcome::AlreadyRotated { rotated_at: second }
    );
}

async fn supersede_changes_nothing_outside_the_grace_interval_or_on_an_inactive_session(
    db: &Database,
) {
    let sessions = db.sessions();
    let (session, t0, t1, rotated_at) = rotated_session(db).await;
    let refused = token();

    let late = rotated_at + GRACE;
    let replayed = refreshed(&session, late).detail("grace_replay");
    let decided = sessions
        .supersede(replay(&session, &t0, &refused, late, &replayed))
        .await
        .unwrap();
    assert_eq!(decided, RefreshDecision::Reuse);
    // The current token itself is no replay.
    let at = rotated_at + Duration::seconds(2);
    let replayed = refreshed(&session, at).detail("grace_replay");
    let decided = sessions
        .supersede(replay(&session, &t1, &refused, at, &replayed))
        .await
        .unwrap();
    assert_eq!(decided, RefreshDecision::Rotate);
    assert_eq!(current(db, &[&t0, &t1, &refused]).await, vec![1]);

    sessions
        .revoke(
            session.user_id,
            session.id,
            at,
            RevokeReason::Logout,
            &event(AuthEventKind::SessionRevoked, at),
        )
        .await
        .unwrap();
    let replayed = refreshed(&session, at).detail("grace_replay");
    let decided = sessions
        .supersede(replay(&session, &t0, &refused, at, &replayed))
        .await
        .unwrap();
    assert_eq!(decided, RefreshDecision::Refused);
    assert!(
        sessions
            .find_by_refresh_token(&refused)
            .await
            .unwrap()
            .is_none()
    );
    let (t1_record, stored) = sessions.find_by_refresh_token(&t1).await.unwrap().unwrap();
    assert_eq!(
        t1_record.rotated_at, None,
        "a refused replay must roll back"
    );
    assert_eq!(stored.last_used_at, rotated_at);
}

/// Grace replays of the rotated token racing rotations of its successor,
/// all at once: every interleaving leaves exactly one current token.
async fn racing_grace_replays_and_rotations_leave_one_current_token(db: &Database) {
    let (session, t0, t1, rotated_at) = rotated_session(db).await;
    let at = rotated_at + Duration::seconds(2);
    let (t0, t1) = (Arc::new(t0), Arc::new(t1));

    let mut attempts = JoinSet::new();
    for n in 0..16 {
        let sessions = db.sessions();
        let session = session.clone();
        let presented = Arc::clone(if n % 2 == 0 { &t0 } else { &t1 });
        attempts.spawn(async move {
            let next = token();
            let replayed = refreshed(&session, at);
            if n % 2 == 0 {
                let decided = sessions
                    .supersede(replay(&session, &presented, &next, at, &replayed))
                    .await
                    .expect("no storage error under contention");
                assert_eq!(decided, RefreshDecision::GraceReplay);
            } else {
                sessions
                    .rotate(
                        session.id,
                        &presented,
                        &next,
                        at,
                        at + Duration::days(7),
                        &replayed,
                    )
                    .await
                    .expect("no storage error under contention");
            }
            next
        });
    }
    let nexts = attempts.join_all().await;

    let mut all: Vec<&TokenHash> = vec![&t0, &t1];
    all.extend(nexts.iter());
    assert_eq!(current(db, &all).await.len(), 1, "one current token");
}
