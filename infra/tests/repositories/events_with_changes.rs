//! Audit events stored with the state change they record: in the same
//! transaction, exactly one per change, and none when nothing changed.

use portcullis_domain::audit::{AuthEventKind, AuthEventRepository, EventQuery, Outcome};
use portcullis_domain::email::Email;
use portcullis_domain::ids::SessionId;
use portcullis_domain::ids::UserId;
use portcullis_domain::session::{
    RefreshDecision, RevokeReason, RotateOutcome, SessionRepository, Supersession,
};
use portcullis_domain::user::{InsertUserError, UserRepository};
use portcullis_infra::db::Database;
use time::Duration;

use crate::support::{
    SignUp, all_events, contract_tests, create_session, event, ids, new_session, new_user, now,
    refreshed, session_for, signed_up, token, user_with_email,
};

contract_tests!(
    sign_up_stores_exactly_one_signup_event,
    taken_email_stores_no_user_session_or_event,
    a_failed_opening_stores_nothing,
    rotation_stores_its_event_only_when_rotated,
    supersede_stores_its_event_only_when_it_superseded,
    revoke_stores_its_event_only_when_it_changed_something,
    revoke_all_stores_its_event_only_when_it_revoked_some,
);

async fn sign_up_stores_exactly_one_signup_event(db: &Database) {
    let signup = SignUp::of(user_with_email("grace@example.com"));

    signup.insert(db).await.unwrap();

    let events = all_events(db).await;
    assert_eq!(events, vec![signup.event.clone()], "stored as given");
    let stored = &events[0];
    assert_eq!(stored.kind, AuthEventKind::SignUp);
    assert_eq!(stored.outcome, Outcome::Success);
    assert_eq!(stored.user_id, Some(signup.user.id));
    assert_eq!(stored.session_id, Some(signup.session.id));
    assert_eq!(stored.client_ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(stored.user_agent.as_deref(), Some("contract-test/1.0"));
    assert_eq!(stored.request_id.as_deref(), Some("req-contract-test"));
    // The rest of the opening committed with it.
    let (record, session) = db
        .sessions()
        .find_by_refresh_token(&signup.first)
        .await
        .unwrap()
        .expect("first token stored");
    assert_eq!(record.session_id, signup.session.id);
    assert_eq!(session, signup.session);
    let by_user = db
        .events()
        .query(&EventQuery {
            user_id: Some(signup.user.id),
            kinds: vec![AuthEventKind::SignUp],
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&by_user), vec![signup.event.id]);
}

async fn taken_email_stores_no_user_session_or_event(db: &Database) {
    let first = SignUp::of(user_with_email("ada@example.com"));
    first.insert(db).await.unwrap();
    let second = SignUp::of(user_with_email("  ADA@Example.COM "));

    let result = second.insert(db).await;

    assert!(
        matches!(result, Err(InsertUserError::EmailTaken)),
        "{result:?}"
    );
    assert!(
        db.users()
            .find_by_id(second.user.id)
            .await
            .unwrap()
            .is_none()
    );
    let owner = db
        .users()
        .find_by_email(&second.user.email)
        .await
        .unwrap()
        .expect("the first user keeps the email");
    assert_eq!(owner.id, first.user.id);
    assert!(
        db.sessions()
            .find(second.user.id, second.session.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.sessions()
            .find_by_refresh_token(&second.first)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.sessions()
            .list_active(second.user.id, now())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(ids(&all_events(db).await), vec![first.event.id]);
}

async fn a_failed_opening_stores_nothing(db: &Database) {
    // The unique token hash fails the second half of each transaction: the
    // user (or session) written before it must go with it.
    let first = signed_up(db).await;
    let mut clash = SignUp::of(user_with_email("clash@example.com"));
    clash.first = first.first.clone();

    let result = clash.insert(db).await;

    assert!(
        matches!(result, Err(InsertUserError::Failure(_))),
        "{result:?}"
    );
    assert!(
        db.users()
            .find_by_id(clash.user.id)
            .await
            .unwrap()
            .is_none()
    );
    let email = Email::parse("clash@example.com").unwrap();
    assert!(db.users().find_by_email(&email).await.unwrap().is_none());

    let session = session_for(first.user.id, now());
    let result = create_session(db, &session, &first.first).await;
    assert!(result.is_err(), "a duplicate token hash was stored");
    assert!(
        db.sessions()
            .find(first.user.id, session.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(ids(&all_events(db).await), vec![first.event.id]);

    // The email is free for a sign-up that works.
    clash.first = token();
    clash.insert(db).await.unwrap();
    assert_eq!(all_events(db).await.len(), 2);
}

async fn rotation_stores_its_event_only_when_rotated(db: &Database) {
    let sessions = db.sessions();
    let signup = signed_up(db).await;
    let session = &signup.session;
    let used = session.created_at + Duration::minutes(1);
    let idle = used + Duration::days(7);
    let second = token();

    let rotated = refreshed(session, used);
    let outcome = sessions
        .rotate(session.id, &signup.first, &second, used, idle, &rotated)
        .await
        .unwrap();
    assert_eq!(outcome, RotateOutcome::Rotated);

    let lost = refreshed(session, used);
    let outcome = sessions
        .rotate(session.id, &signup.first, &token(), used, idle, &lost)
        .await
        .unwrap();
    assert_eq!(outcome, RotateOutcome::AlreadyRotated { rotated_at: used });

    let logout = event(AuthEventKind::Logout, used)
        .user(signup.user.id)
        .session(session.id);
    assert!(
        sessions
            .revoke(
                signup.user.id,
                session.id,
                used,
                RevokeReason::Logout,
                &logout
            )
            .await
            .unwrap()
    );
    let inactive = refreshed(session, used);
    let outcome = sessions
        .rotate(session.id, &second, &token(), used, idle, &inactive)
        .await
        .unwrap();
    assert_eq!(outcome, RotateOutcome::SessionInactive);

    let refreshes = db
        .events()
        .query(&EventQuery {
            kinds: vec![AuthEventKind::TokenRefreshed],
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(refreshes, vec![rotated.clone()]);
    assert_eq!(
        ids(&all_events(db).await),
        vec![logout.id, rotated.id, signup.event.id]
    );
}

async fn supersede_stores_its_event_only_when_it_superseded(db: &Database) {
    let sessions = db.sessions();
    let signup = signed_up(db).await;
    let session = &signup.session;
    let rotated_at = session.created_at + Duration::seconds(1);
    let idle = rotated_at + Duration::days(7);
    let rotated = refreshed(session, rotated_at);
    let outcome = sessions
        .rotate(
            session.id,
            &signup.first,
            &token(),
            rotated_at,
            idle,
            &rotated,
        )
        .await
        .unwrap();
    assert_eq!(outcome, RotateOutcome::Rotated);
    let (next, late_next) = (token(), token());
    let replay = |now, next, event| Supersession {
        session: session.id,
        presented: &signup.first,
        next,
        now,
        idle_expires_at: now + Duration::days(7),
        grace: Duration::seconds(10),
        event,
    };

    let used = rotated_at + Duration::seconds(3);
    let replayed = refreshed(session, used).detail("grace_replay");
    assert_eq!(
        sessions
            .supersede(replay(used, &next, &replayed))
            .await
            .unwrap(),
        RefreshDecision::GraceReplay
    );
    let late = rotated_at + Duration::seconds(10);
    let refused = refreshed(session, late).detail("grace_replay");
    assert_eq!(
        sessions
            .supersede(replay(late, &late_next, &refused))
            .await
            .unwrap(),
        RefreshDecision::Reuse
    );

    assert_eq!(
        ids(&all_events(db).await),
        vec![replayed.id, rotated.id, signup.event.id]
    );
}

async fn revoke_stores_its_event_only_when_it_changed_something(db: &Database) {
    let sessions = db.sessions();
    let owner = signed_up(db).await;
    let intruder = new_user(db).await;
    let session = &owner.session;
    let at = now() + Duration::seconds(1);
    let revoked = |user: UserId| {
        event(AuthEventKind::SessionRevoked, at)
            .user(user)
            .session(session.id)
    };

    let by_intruder = revoked(intruder.id);
    assert!(
        !sessions
            .revoke(
                intruder.id,
                session.id,
                at,
                RevokeReason::RevokedByUser,
                &by_intruder
            )
            .await
            .unwrap()
    );
    let unknown = revoked(owner.user.id);
    assert!(
        !sessions
            .revoke(
                owner.user.id,
                SessionId::new(),
                at,
                RevokeReason::RevokedByUser,
                &unknown
            )
            .await
            .unwrap()
    );
    let by_owner = revoked(owner.user.id);
    assert!(
        sessions
            .revoke(
                owner.user.id,
                session.id,
                at,
                RevokeReason::RevokedByUser,
                &by_owner
            )
            .await
            .unwrap()
    );
    let again = revoked(owner.user.id);
    assert!(
        !sessions
            .revoke(
                owner.user.id,
                session.id,
                at,
                RevokeReason::RevokedByUser,
                &again
            )
            .await
            .unwrap()
    );

    let stored = db
        .events()
        .query(&EventQuery {
            kinds: vec![AuthEventKind::SessionRevoked],
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(stored, vec![by_owner]);
}

async fn revoke_all_stores_its_event_only_when_it_revoked_some(db: &Database) {
    let sessions = db.sessions();
    let signup = signed_up(db).await;
    let user = signup.user.id;
    let current = signup.session.id;
    let (other, _) = new_session(db, user, now()).await;
    let at = now() + Duration::seconds(1);
    let logout = || event(AuthEventKind::Logout, at).user(user).session(current);

    let others = logout();
    let revoked = sessions
        .revoke_all(user, Some(current), at, RevokeReason::LogoutOthers, &others)
        .await
        .unwrap();
    assert_eq!(revoked, vec![other.id]);

    let nothing_left = logout();
    let revoked = sessions
        .revoke_all(
            user,
            Some(current),
            at,
            RevokeReason::LogoutOthers,
            &nothing_left,
        )
        .await
        .unwrap();
    assert!(revoked.is_empty());

    let everywhere = logout();
    let revoked = sessions
        .revoke_all(user, None, at, RevokeReason::LogoutAll, &everywhere)
        .await
        .unwrap();
    assert_eq!(revoked, vec![current]);

    let again = logout();
    let stranger = new_user(db).await;
    let for_stranger = event(AuthEventKind::Logout, at).user(stranger.id);
    assert!(
        sessions
            .revoke_all(user, None, at, RevokeReason::LogoutAll, &again)
            .await
            .unwrap()
            .is_empty()
    );
    // The stranger's own sign-up session is revoked: its event is stored.
    assert_eq!(
        sessions
            .revoke_all(
                stranger.id,
                None,
                at,
                RevokeReason::LogoutAll,
                &for_stranger
            )
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        sessions
            .revoke_all(UserId::new(), None, at, RevokeReason::LogoutAll, &logout())
            .await
            .unwrap()
            .is_empty()
    );

    let stored = db
        .events()
        .query(&EventQuery {
            kinds: vec![AuthEventKind::Logout],
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        ids(&stored),
        vec![for_stranger.id, everywhere.id, others.id]
    );
}
