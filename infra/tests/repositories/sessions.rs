//! `SessionRepository`: opening a session, finding it by refresh token or
//! id (one at a time and in a wave), and listing the active ones.

use portcullis_domain::audit::AuthEventKind;
use portcullis_domain::ids::SessionId;
use portcullis_domain::ids::UserId;
use portcullis_domain::session::{RevokeReason, SessionRepository};
use portcullis_infra::db::Database;
use time::Duration;
use tokio::task::JoinSet;

use crate::support::{
    contract_tests, create_session, event, new_session, new_user, now, session_for, signed_up,
    token,
};

contract_tests!(
    session_is_created_and_found_by_refresh_token,
    a_wave_of_lookups_finds_each_token_or_none,
    list_active_excludes_revoked_and_expired_newest_first,
);

async fn session_is_created_and_found_by_refresh_token(db: &Database) {
    let sessions = db.sessions();
    let user = new_user(db).await;
    let (session, first) = new_session(db, user.id, now()).await;

    let (record, found) = sessions
        .find_by_refresh_token(&first)
        .await
        .unwrap()
        .expect("found");

    assert_eq!(found, session);
    assert_eq!(found.client.user_agent(), Some("contract-test/1.0"));
    assert_eq!(found.client.ip(), Some("192.0.2.7"));
    assert_eq!(record.session_id, session.id);
    assert_eq!(record.created_at, session.created_at);
    assert_eq!(record.rotated_at, None);
    assert!(
        sessions
            .find_by_refresh_token(&token())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        sessions.find(user.id, session.id).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(
        sessions.find(UserId::new(), session.id).await.unwrap(),
        None
    );
}

/// Many lookups at once (on SQLite they share a query): each finds its own
/// token and session, or nothing.
async fn a_wave_of_lookups_finds_each_token_or_none(db: &Database) {
    let user = new_user(db).await;
    let mut known = Vec::new();
    for _ in 0..20 {
        known.push(new_session(db, user.id, now()).await);
    }
    let mut lookups = JoinSet::new();
    for round in 0..3 {
        for (index, (session, first)) in known.iter().enumerate() {
            let sessions = db.sessions();
            let (id, first) = (session.id, first.clone());
            lookups.spawn(async move {
                let found = sessions.find_by_refresh_token(&first).await.unwrap();
                let (record, stored) = found.expect("a known token is found");
                assert_eq!(record.session_id, id);
                assert_eq!(stored.id, id);
                (round, index)
            });
            let sessions = db.sessions();
            lookups.spawn(async move {
                assert!(
                    sessions
                        .find_by_refresh_token(&token())
                        .await
                        .unwrap()
                        .is_none()
                );
                (round, usize::MAX)
            });
        }
    }
    assert_eq!(lookups.join_all().await.len(), 3 * 2 * known.len());
}

async fn list_active_excludes_revoked_and_expired_newest_first(db: &Database) {
    let sessions = db.sessions();
    let signup = signed_up(db).await;
    let user = &signup.user;
    let other = new_user(db).await;
    // Strictly after the sign-up session, whatever the clock's resolution.
    let t0 = now() + Duration::seconds(1);
    let (older, _) = new_session(db, user.id, t0).await;
    let (newer, _) = new_session(db, user.id, t0 + Duration::minutes(1)).await;
    let (revoked, _) = new_session(db, user.id, t0 + Duration::minutes(2)).await;
    sessions
        .revoke(
            user.id,
            revoked.id,
            t0 + Duration::minutes(3),
            RevokeReason::Logout,
            &event(AuthEventKind::SessionRevoked, t0 + Duration::minutes(3)),
        )
        .await
        .unwrap();
    let mut idle_expired = session_for(user.id, t0 - Duration::days(8));
    idle_expired.idle_expires_at = t0 - Duration::days(1);
    create_session(db, &idle_expired, &token()).await.unwrap();
    let mut absolute_expired = session_for(user.id, t0 - Duration::days(31));
    absolute_expired.idle_expires_at = t0 + Duration::days(1);
    absolute_expired.absolute_expires_at = t0 - Duration::seconds(1);
    create_session(db, &absolute_expired, &token())
        .await
        .unwrap();
    new_session(db, other.id, t0).await;

    let active = sessions
        .list_active(user.id, t0 + Duration::minutes(5))
        .await
        .unwrap();

    let ids: Vec<SessionId> = active.iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![newer.id, older.id, signup.session.id]);
    assert_eq!(active[1], older);
    assert_eq!(active[2], signup.session);
}
