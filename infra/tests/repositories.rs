//! Repository contract tests: one body per behaviour, run against SQLite (a
//! temporary file) and PostgreSQL (a fresh database per test) with the real
//! migrator.
//!
//! PostgreSQL is found through `PORTCULLIS_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). The PostgreSQL variants are
//! `#[ignore]`d so `cargo test` works on a machine without PostgreSQL and
//! says so honestly; `cargo test -- --include-ignored` runs them, and an
//! unreachable server then fails them.

// clippy.toml allows these inside `#[test]` functions only; the shared bodies
// and fixtures here are test code just the same.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::Arc;

use portcullis_domain::audit::{
    AuthEvent, AuthEventKind, AuthEventRepository, EventQuery, Outcome, RequestContext,
};
use portcullis_domain::error::StoreError;
use portcullis_domain::password::PasswordHash;
use portcullis_domain::session::{
    ClientInfo, RevokeReason, RotateOutcome, Session, SessionId, SessionOpening, SessionPolicy,
    SessionRepository, TokenHash,
};
use portcullis_domain::task::{Task, TaskDescription, TaskId, TaskRepository, TaskTitle};
use portcullis_domain::user::{Email, InsertUserError, User, UserId, UserRepository};
use portcullis_infra::db::{Database, DbOptions, sqlite_url};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tempfile::TempDir;
use time::{Duration, OffsetDateTime};
use tokio::task::JoinSet;
use uuid::Uuid;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// A database for one test, removed when the test ends (even by panicking).
struct TestDb {
    db: Database,
    url: String,
    _sqlite_dir: Option<TempDir>,
    _postgres: Option<DropPostgresDatabase>,
}

impl TestDb {
    async fn sqlite(migrate: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = sqlite_url(&dir.path().join("portcullis.db"));
        let db = Database::connect(&url, &DbOptions::default())
            .await
            .expect("connect to SQLite");
        if migrate {
            db.migrate().await.expect("migrate SQLite");
        }
        Self {
            db,
            url,
            _sqlite_dir: Some(dir),
            _postgres: None,
        }
    }

    /// A fresh PostgreSQL database; panics when the server is unreachable.
    async fn postgres(migrate: bool) -> Self {
        let base = std::env::var("PORTCULLIS_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
        let mut admin_options = sea_orm::ConnectOptions::new(base.as_str());
        admin_options
            .connect_timeout(std::time::Duration::from_secs(5))
            .acquire_timeout(std::time::Duration::from_secs(5))
            .sqlx_logging(false);
        let admin = sea_orm::Database::connect(admin_options)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "PostgreSQL is unreachable at {base} ({error}); start it or run without --include-ignored"
                )
            });
        let name = format!("portcullis_{}", Uuid::new_v4().simple());
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        drop(admin);
        let guard = DropPostgresDatabase {
            admin_url: base.clone(),
            name: name.clone(),
        };
        let url = with_database(&base, &name);
        let db = Database::connect(&url, &DbOptions::default())
            .await
            .expect("connect to the test database");
        if migrate {
            db.migrate().await.expect("migrate PostgreSQL");
        }
        Self {
            db,
            url,
            _sqlite_dir: None,
            _postgres: Some(guard),
        }
    }
}

/// `base` with its database name replaced by `name`.
fn with_database(base: &str, name: &str) -> String {
    let (without_query, query) = match base.split_once('?') {
        Some((url, query)) => (url, Some(query)),
        None => (base, None),
    };
    let authority_start = without_query.find("://").map_or(0, |i| i + 3);
    let server = match without_query[authority_start..].find('/') {
        Some(slash) => &without_query[..authority_start + slash],
        None => without_query,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// Drops the per-test PostgreSQL database, best effort.
struct DropPostgresDatabase {
    admin_url: String,
    name: String,
}

impl Drop for DropPostgresDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop cannot await, and the test's runtime may be shutting down or
        // unwinding: use a runtime of our own on a plain thread.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(admin) = sea_orm::Database::connect(admin_url.as_str()).await {
                    let _ = admin.execute_unprepared(&sql).await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

/// Runs each named body against a migrated SQLite and PostgreSQL database.
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let test_db = super::TestDb::sqlite(true).await;
                super::$name(&test_db.db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[ignore = "needs PostgreSQL: run with --include-ignored (CI does)"]
            async fn postgres() {
                let test_db = super::TestDb::postgres(true).await;
                super::$name(&test_db.db).await;
            }
        }
    )*};
}

/// Like `contract_tests!`, on a database the migrations have not touched.
macro_rules! unmigrated_contract_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let test_db = super::TestDb::sqlite(false).await;
                super::$name(&test_db.db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[ignore = "needs PostgreSQL: run with --include-ignored (CI does)"]
            async fn postgres() {
                let test_db = super::TestDb::postgres(false).await;
                super::$name(&test_db.db).await;
            }
        }
    )*};
}

unmigrated_contract_tests!(migrations_are_idempotent_and_safe_to_race);

contract_tests!(
    email_is_unique_case_insensitively,
    concurrent_signups_with_one_email_yield_one_account,
    users_are_found_by_email_and_id,
    password_hash_is_updated,
    profiles_are_found_and_unaffected_by_password_changes,
    session_is_created_and_found_by_refresh_token,
    rotation_is_single_use_and_stops_at_revocation,
    rotation_stops_at_expiry,
    concurrent_rotations_of_one_token_have_one_winner,
    a_wave_of_rotations_decides_each_as_if_alone,
    a_wave_of_lookups_finds_each_token_or_none,
    add_token_only_extends_active_sessions,
    revoke_touches_only_the_owners_active_session,
    revoke_all_spares_the_exception_and_other_users,
    list_active_excludes_revoked_and_expired_newest_first,
    purge_deletes_only_sessions_that_ended_before_the_cutoff,
    revoked_since_reports_revocations_from_that_instant,
    tasks_are_scoped_to_their_owner,
    tasks_page_newest_first_with_a_cursor,
    task_order_is_uuid_byte_order,
    foreign_keys_are_enforced_on_every_connection,
    fifty_concurrent_writes_all_succeed,
    deleting_a_user_cascades_to_sessions_and_tasks,
    sign_up_stores_exactly_one_signup_event,
    taken_email_stores_no_user_session_or_event,
    a_failed_opening_stores_nothing,
    rotation_stores_its_event_only_when_rotated,
    add_token_stores_its_event_only_when_it_added,
    revoke_stores_its_event_only_when_it_changed_something,
    revoke_all_stores_its_event_only_when_it_revoked_some,
    events_are_filtered_and_paged_newest_first,
    attacker_controlled_strings_are_stored_bounded_and_clean,
    a_large_append_is_stored_whole,
);

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// Now, at the millisecond precision storage keeps.
fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000)
        .expect("valid nanosecond")
}

fn user_with_email(email: &str) -> User {
    let at = now();
    User {
        id: UserId::new(),
        email: Email::parse(email).expect("valid email"),
        password_hash: PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned()),
        created_at: at,
        updated_at: at,
    }
}

/// Where the test requests come from.
fn request() -> RequestContext {
    RequestContext {
        client: ClientInfo::new(Some("contract-test/1.0"), Some("192.0.2.7".to_owned())),
        request_id: Some("req-contract-test".to_owned()),
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
    }
}

/// An event of `kind` at `at` for the test request.
fn event(kind: AuthEventKind, at: OffsetDateTime) -> AuthEvent {
    AuthEvent::new(kind, Outcome::Success, at, &request())
}

/// What sign-up stores in one transaction: the user, its first session, the
/// session's first refresh token and the `signup` event.
struct SignUp {
    user: User,
    session: Session,
    first: TokenHash,
    event: AuthEvent,
}

impl SignUp {
    fn of(user: User) -> Self {
        let session = session_for(user.id, user.created_at);
        let event = event(AuthEventKind::SignUp, user.created_at)
            .user(user.id)
            .session(session.id);
        Self {
            user,
            session,
            first: token(),
            event,
        }
    }

    fn opening(&self) -> SessionOpening<'_> {
        SessionOpening {
            session: &self.session,
            first_token: &self.first,
            event: &self.event,
        }
    }

    async fn insert(&self, db: &Database) -> Result<(), InsertUserError> {
        db.users().insert(&self.user, self.opening()).await
    }
}

/// A signed-up user with a unique email.
async fn signed_up(db: &Database) -> SignUp {
    let signup = SignUp::of(user_with_email(&format!(
        "{}@example.com",
        Uuid::new_v4().simple()
    )));
    signup.insert(db).await.expect("insert user");
    signup
}

async fn new_user(db: &Database) -> User {
    signed_up(db).await.user
}

/// Inserts `user` as sign-up does, with a session, token and event of its own.
async fn insert_user(db: &Database, user: User) -> Result<(), InsertUserError> {
    SignUp::of(user).insert(db).await
}

/// Every stored event, newest first.
async fn all_events(db: &Database) -> Vec<AuthEvent> {
    db.events()
        .query(&EventQuery {
            limit: 10_000,
            ..EventQuery::default()
        })
        .await
        .expect("query events")
}

fn ids(events: &[AuthEvent]) -> Vec<Uuid> {
    events.iter().map(|e| e.id).collect()
}

fn token() -> TokenHash {
    TokenHash::from_bytes([*Uuid::new_v4().as_bytes(), *Uuid::new_v4().as_bytes()].concat())
}

fn session_for(user: UserId, opened_at: OffsetDateTime) -> Session {
    Session::open(
        user,
        opened_at,
        &SessionPolicy::default(),
        ClientInfo::new(Some("contract-test/1.0"), Some("192.0.2.7".to_owned())),
    )
}

async fn new_session(
    db: &Database,
    user: UserId,
    opened_at: OffsetDateTime,
) -> (Session, TokenHash) {
    let session = session_for(user, opened_at);
    let first = token();
    create_session(db, &session, &first)
        .await
        .expect("create session");
    (session, first)
}

/// Stores `session` with its first token and a `login_succeeded` event.
async fn create_session(
    db: &Database,
    session: &Session,
    first: &TokenHash,
) -> Result<(), StoreError> {
    let event = event(AuthEventKind::LoginSucceeded, session.created_at)
        .user(session.user_id)
        .session(session.id);
    db.sessions()
        .create(SessionOpening {
            session,
            first_token: first,
            event: &event,
        })
        .await
}

/// The `token_refreshed` event of `session` at `at`.
fn refreshed(session: &Session, at: OffsetDateTime) -> AuthEvent {
    event(AuthEventKind::TokenRefreshed, at)
        .user(session.user_id)
        .session(session.id)
}

fn task_for(owner: UserId, id: TaskId, title: &str) -> Task {
    let at = now();
    Task {
        id,
        user_id: owner,
        title: TaskTitle::parse(title).expect("valid title"),
        description: Some(TaskDescription::parse("details").expect("valid description")),
        done: false,
        created_at: at,
        updated_at: at,
    }
}

// ---------------------------------------------------------------------------
// Migrations
// ---------------------------------------------------------------------------

async fn migrations_are_idempotent_and_safe_to_race(db: &Database) {
    // Two instances starting together: on PostgreSQL the advisory lock makes
    // one wait for the other, which then finds nothing left to do.
    let other = db.clone();
    let (first, second) = tokio::join!(db.migrate(), other.migrate());
    first.expect("first migration run");
    second.expect("concurrent migration run");
    db.migrate().await.expect("third migration run");

    let user = new_user(db).await;
    assert!(db.users().find_by_id(user.id).await.unwrap().is_some());
    db.ping().await.expect("ping");
}

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

async fn email_is_unique_case_insensitively(db: &Database) {
    insert_user(db, user_with_email("ada@example.com"))
        .await
        .unwrap();

    let result = insert_user(db, user_with_email("  ADA@Example.COM ")).await;

    assert!(
        matches!(result, Err(InsertUserError::EmailTaken)),
        "{result:?}"
    );
}

async fn concurrent_signups_with_one_email_yield_one_account(db: &Database) {
    for round in 0..5 {
        let email = format!("race{round}@example.com");
        let mut attempts = JoinSet::new();
        for _ in 0..2 {
            let db = db.clone();
            let user = user_with_email(&email);
            attempts.spawn(async move { insert_user(&db, user).await });
        }
        let results = attempts.join_all().await;

        let created = results.iter().filter(|r| r.is_ok()).count();
        let taken = results
            .iter()
            .filter(|r| matches!(r, Err(InsertUserError::EmailTaken)))
            .count();
        assert_eq!((created, taken), (1, 1), "{results:?}");
    }
}

async fn users_are_found_by_email_and_id(db: &Database) {
    let users = db.users();
    let user = new_user(db).await;

    let by_email = users
        .find_by_email(&user.email)
        .await
        .unwrap()
        .expect("found by email");
    let by_id = users
        .find_by_id(user.id)
        .await
        .unwrap()
        .expect("found by id");

    for found in [by_email, by_id] {
        assert_eq!(found.id, user.id);
        assert_eq!(found.email, user.email);
        assert_eq!(found.password_hash, user.password_hash);
        assert_eq!(found.created_at, user.created_at);
        assert_eq!(found.updated_at, user.updated_at);
    }
    let stranger = Email::parse("nobody@example.com").unwrap();
    assert!(users.find_by_email(&stranger).await.unwrap().is_none());
    assert!(users.find_by_id(UserId::new()).await.unwrap().is_none());
}

async fn password_hash_is_updated(db: &Database) {
    let users = db.users();
    let user = new_user(db).await;
    let upgraded = PasswordHash::new("$argon2id$v=19$m=65536,t=3,p=1$bmV3$bmV3aGFzaA".to_owned());
    let later = user.updated_at + Duration::seconds(5);

    users
        .update_password_hash(user.id, &upgraded, later)
        .await
        .unwrap();

    let stored = users.find_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(stored.password_hash, upgraded);
    assert_eq!(stored.updated_at, later);
    assert_eq!(stored.created_at, user.created_at);
}

async fn profiles_are_found_and_unaffected_by_password_changes(db: &Database) {
    let users = db.users();
    let user = new_user(db).await;
    assert_eq!(users.find_profile(UserId::new()).await.unwrap(), None);

    let profile = users.find_profile(user.id).await.unwrap().unwrap();
    assert_eq!(profile, user.profile());
    // A second repository over the same database reads it from storage.
    assert_eq!(
        db.users().find_profile(user.id).await.unwrap(),
        Some(user.profile())
    );

    let upgraded = PasswordHash::new("$argon2id$v=19$m=65536,t=3,p=1$bmV3$bmV3aGFzaA".to_owned());
    users
        .update_password_hash(user.id, &upgraded, user.updated_at + Duration::seconds(5))
        .await
        .unwrap();
    assert_eq!(users.find_profile(user.id).await.unwrap(), Some(profile));
}

// ---------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Audit events
// ---------------------------------------------------------------------------

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
        matches!(result, Err(InsertUserError::Store(_))),
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
    assert_eq!(outcome, RotateOutcome::AlreadyRotated);

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

async fn add_token_stores_its_event_only_when_it_added(db: &Database) {
    let sessions = db.sessions();
    let signup = signed_up(db).await;
    let session = &signup.session;
    let used = session.created_at + Duration::seconds(3);
    let idle = used + Duration::days(7);

    let added = refreshed(session, used);
    assert!(
        sessions
            .add_token(session.id, &token(), used, idle, &added)
            .await
            .unwrap()
    );
    let expired_at = session.absolute_expires_at + Duration::seconds(1);
    let refused = refreshed(session, expired_at);
    assert!(
        !sessions
            .add_token(
                session.id,
                &token(),
                expired_at,
                expired_at + Duration::days(7),
                &refused
            )
            .await
            .unwrap()
    );

    assert_eq!(ids(&all_events(db).await), vec![added.id, signup.event.id]);
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

/// Eight events a second apart from `t0`, oldest first, of two users and
/// three client addresses.
fn trail(t0: OffsetDateTime, alice: UserId, bob: UserId) -> Vec<AuthEvent> {
    let at = |n: i64| t0 + Duration::seconds(n);
    let from = |ip: &str, kind, outcome, n| {
        let ctx = RequestContext {
            client: ClientInfo::new(Some("trail/1.0"), Some(ip.to_owned())),
            request_id: Some(format!("req-{n}")),
            trace_id: None,
        };
        AuthEvent::new(kind, outcome, at(n), &ctx)
    };
    use AuthEventKind as K;
    use Outcome::{Failure, Success};
    vec![
        from("198.51.100.1", K::SignUp, Success, 0).user(alice),
        from("198.51.100.2", K::LoginFailed, Failure, 1).detail("unknown_user"),
        from("198.51.100.1", K::LoginSucceeded, Success, 2).user(alice),
        from("198.51.100.2", K::LoginFailed, Failure, 3)
            .user(bob)
            .detail("wrong_password"),
        from("198.51.100.3", K::TokenRefreshed, Success, 4).user(alice),
        from("198.51.100.1", K::Logout, Success, 5)
            .user(alice)
            .detail("scope=this"),
        from("198.51.100.2", K::RateLimitHit, Failure, 6).detail("bucket=login"),
        from("198.51.100.3", K::LoginSucceeded, Success, 7).user(bob),
    ]
}

async fn events_are_filtered_and_paged_newest_first(db: &Database) {
    let events = db.events();
    let (alice, bob) = (UserId::new(), UserId::new());
    let t0 = now() - Duration::hours(1);
    let trail = trail(t0, alice, bob);
    events.append(&[]).await.unwrap();
    events.append(&trail[..3]).await.unwrap();
    events.append(&trail[3..]).await.unwrap();
    // The trail's ids, newest first, of the events at these positions.
    let pick = |positions: &[usize]| -> Vec<Uuid> {
        let mut picked: Vec<Uuid> = positions.iter().map(|&n| trail[n].id).collect();
        picked.sort_unstable_by(|a, b| b.cmp(a));
        picked
    };
    let query = |query: EventQuery| {
        let events = events.clone();
        async move { ids(&events.query(&query).await.unwrap()) }
    };
    let base = EventQuery {
        limit: 100,
        ..EventQuery::default()
    };

    let mut newest_first = trail.clone();
    newest_first.reverse();
    assert_eq!(events.query(&base).await.unwrap(), newest_first);

    let by_alice = EventQuery {
        user_id: Some(alice),
        ..base.clone()
    };
    assert_eq!(query(by_alice.clone()).await, pick(&[0, 2, 4, 5]));
    assert_eq!(
        query(EventQuery {
            kinds: vec![AuthEventKind::LoginFailed, AuthEventKind::RateLimitHit],
            ..base.clone()
        })
        .await,
        pick(&[1, 3, 6])
    );
    assert_eq!(
        query(EventQuery {
            client_ip: Some("198.51.100.3".to_owned()),
            ..base.clone()
        })
        .await,
        pick(&[4, 7])
    );
    // `since` is inclusive, `until` exclusive.
    assert_eq!(
        query(EventQuery {
            since: Some(t0 + Duration::seconds(2)),
            until: Some(t0 + Duration::seconds(5)),
            ..base.clone()
        })
        .await,
        pick(&[2, 3, 4])
    );
    assert!(
        query(EventQuery {
            since: Some(t0 + Duration::seconds(8)),
            ..base.clone()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        query(EventQuery {
            user_id: Some(alice),
            kinds: vec![AuthEventKind::LoginSucceeded, AuthEventKind::Logout],
            client_ip: Some("198.51.100.1".to_owned()),
            ..base.clone()
        })
        .await,
        pick(&[2, 5])
    );
    assert_eq!(
        query(EventQuery {
            limit: 3,
            ..base.clone()
        })
        .await,
        pick(&[5, 6, 7])
    );
    assert_eq!(
        query(EventQuery {
            before: Some(trail[4].id),
            ..base.clone()
        })
        .await,
        pick(&[0, 1, 2, 3])
    );
    assert!(
        query(EventQuery {
            user_id: Some(UserId::new()),
            ..base.clone()
        })
        .await
        .is_empty()
    );

    // Paging through alice's events two at a time with the cursor.
    let mut pages = Vec::new();
    let mut before = None;
    for _ in 0..10 {
        let page = query(EventQuery {
            before,
            limit: 2,
            ..by_alice.clone()
        })
        .await;
        let Some(last) = page.last().copied() else {
            break;
        };
        before = Some(last);
        pages.push(page);
    }
    assert_eq!(pages, vec![pick(&[4, 5]), pick(&[0, 2])]);
}

async fn attacker_controlled_strings_are_stored_bounded_and_clean(db: &Database) {
    // 10 KB of user agent with CR/LF, NUL, ESC, DEL, tabs and multi-byte
    // characters, and control characters in every other free-text field.
    let mut hostile = String::from("Mozilla/5.0\r\nX-Forwarded-For: 10.0.0.1\u{0}\u{1b}[2J\t");
    while hostile.len() < 10 * 1024 {
        hostile.push_str("é😀\u{7f}\u{85}ab\n");
    }
    let mut raw = event(AuthEventKind::LoginFailed, now());
    raw.user_agent = Some(hostile.clone());
    raw.client_ip = Some(format!("203.0.113.9\r\n{}", "9".repeat(200)));
    raw.request_id = Some(format!("req\u{0}\n{}", "r".repeat(500)));
    raw.trace_id = Some(format!("\u{1b}{}", "f".repeat(100)));
    raw.detail = Some(format!("detail\r\n{}", "d".repeat(5_000)));
    // The same through the edge's own bounding.
    let edge = AuthEvent::new(
        AuthEventKind::AccessTokenRejected,
        Outcome::Failure,
        now(),
        &RequestContext {
            client: ClientInfo::new(Some(&hostile), Some("203.0.113.10".to_owned())),
            request_id: None,
            trace_id: None,
        },
    )
    .detail(&hostile);

    db.events()
        .append(&[raw.clone(), edge.clone()])
        .await
        .expect("hostile strings are stored, not refused");

    // Control characters are escaped (stored encoded), never dropped.
    let clean =
        |s: &str, max: usize| -> String { portcullis_domain::audit::encode_untrusted(s, max) };
    let stored = all_events(db).await;
    assert_eq!(ids(&stored), vec![edge.id, raw.id]);
    for event in &stored {
        let texts = [
            &event.user_agent,
            &event.client_ip,
            &event.request_id,
            &event.trace_id,
            &event.detail,
        ];
        for text in texts.into_iter().flatten() {
            assert!(
                !text.chars().any(char::is_control),
                "control character stored in {text:?}"
            );
            assert!(
                text.len() <= 1024,
                "unbounded text stored: {} bytes",
                text.len()
            );
        }
        let user_agent = event.user_agent.as_deref().unwrap();
        assert_eq!(user_agent, clean(&hostile, ClientInfo::MAX_USER_AGENT));
        let detail = event.detail.as_deref().unwrap();
        assert!(detail.chars().count() <= AuthEvent::MAX_DETAIL);
    }
    let raw_back = &stored[1];
    assert!(
        raw_back
            .client_ip
            .as_deref()
            .unwrap()
            .starts_with("203.0.113.9")
    );
    assert!(raw_back.client_ip.as_deref().unwrap().chars().count() <= 64);
    assert!(raw_back.request_id.as_deref().unwrap().chars().count() <= 64);
    assert!(raw_back.trace_id.as_deref().unwrap().chars().count() <= 32);
    assert_eq!(
        raw_back.detail.as_deref(),
        Some(clean(raw.detail.as_deref().unwrap(), AuthEvent::MAX_DETAIL).as_str())
    );
    assert_eq!(stored[0].detail, edge.detail);
}

async fn a_large_append_is_stored_whole(db: &Database) {
    // More rows than one statement may carry parameters for (SQLite allows
    // 32766, PostgreSQL 65535; an event has 11 columns).
    let t0 = now() - Duration::hours(1);
    let batch: Vec<AuthEvent> = (0..7_000)
        .map(|n| event(AuthEventKind::RateLimitHit, t0 + Duration::milliseconds(n)))
        .collect();

    db.events().append(&batch).await.unwrap();

    let stored = all_events(db).await;
    assert_eq!(stored.len(), batch.len());
    assert_eq!(stored.first().map(|e| e.id), batch.last().map(|e| e.id));
}

/// Appends events, closes every connection, connects again (running the
/// migrations again, as a restart does) and finds them.
async fn events_survive_reopening(test_db: TestDb) {
    let TestDb {
        db,
        url,
        _sqlite_dir,
        _postgres,
    } = test_db;
    let signup = signed_up(&db).await;
    let failed = event(AuthEventKind::LoginFailed, now()).detail("unknown_user");
    db.events()
        .append(std::slice::from_ref(&failed))
        .await
        .unwrap();
    let before = all_events(&db).await;
    assert_eq!(ids(&before), vec![failed.id, signup.event.id]);
    db.connection().clone().close().await.unwrap();
    drop(db);

    let reopened = Database::connect(&url, &DbOptions::default())
        .await
        .expect("reconnect");
    reopened.migrate().await.expect("migrate again");

    assert_eq!(all_events(&reopened).await, before);
}

#[tokio::test]
async fn events_survive_reopening_sqlite() {
    events_survive_reopening(TestDb::sqlite(true).await).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run with --include-ignored (CI does)"]
async fn events_survive_reopening_postgres() {
    events_survive_reopening(TestDb::postgres(true).await).await;
}

// ---------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------

async fn tasks_are_scoped_to_their_owner(db: &Database) {
    let tasks = db.tasks();
    let owner = new_user(db).await;
    let stranger = new_user(db).await;
    let task = task_for(owner.id, TaskId::new(), "write the contract tests");
    tasks.insert(&task).await.unwrap();

    assert_eq!(
        tasks.get(owner.id, task.id).await.unwrap(),
        Some(task.clone())
    );
    assert_eq!(tasks.get(stranger.id, task.id).await.unwrap(), None);
    assert!(tasks.list(stranger.id, None, 10).await.unwrap().is_empty());

    let mut hijacked = task.clone();
    hijacked.title = TaskTitle::parse("pwned").unwrap();
    assert!(!tasks.update(stranger.id, &hijacked).await.unwrap());
    assert!(!tasks.delete(stranger.id, task.id).await.unwrap());
    assert_eq!(
        tasks.get(owner.id, task.id).await.unwrap(),
        Some(task.clone())
    );

    let mut edited = task.clone();
    edited.title = TaskTitle::parse("ship them").unwrap();
    edited.description = None;
    edited.done = true;
    edited.updated_at = task.updated_at + Duration::seconds(30);
    assert!(tasks.update(owner.id, &edited).await.unwrap());
    assert_eq!(tasks.get(owner.id, task.id).await.unwrap(), Some(edited));

    assert!(tasks.delete(owner.id, task.id).await.unwrap());
    assert_eq!(tasks.get(owner.id, task.id).await.unwrap(), None);
    assert!(!tasks.delete(owner.id, task.id).await.unwrap());
    assert!(!tasks.update(owner.id, &task).await.unwrap());
}

async fn tasks_page_newest_first_with_a_cursor(db: &Database) {
    let tasks = db.tasks();
    let owner = new_user(db).await;
    let other = new_user(db).await;
    let mut created = Vec::new();
    for n in 0..5 {
        let task = task_for(owner.id, TaskId::new(), &format!("task {n}"));
        tasks.insert(&task).await.unwrap();
        created.push(task.id);
    }
    tasks
        .insert(&task_for(other.id, TaskId::new(), "not yours"))
        .await
        .unwrap();

    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page: Vec<TaskId> = tasks
            .list(owner.id, cursor, 2)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        let Some(last) = page.last().copied() else {
            break;
        };
        cursor = Some(last);
        pages.push(page);
    }

    created.reverse();
    assert_eq!(pages.len(), 3);
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![2, 2, 1]
    );
    assert_eq!(pages.concat(), created, "UUIDv7 ids come back newest first");
}

async fn task_order_is_uuid_byte_order(db: &Database) {
    // Random v4 ids spread over the whole byte range, so a backend that
    // compared uuids any other way than byte-wise would show it here.
    let tasks = db.tasks();
    let owner = new_user(db).await;
    let mut ids: Vec<Uuid> = (0..40).map(|_| Uuid::new_v4()).collect();
    ids.push(Uuid::from_bytes([0x80; 16]));
    ids.push(Uuid::from_bytes([0x7f; 16]));
    for id in &ids {
        tasks
            .insert(&task_for(owner.id, TaskId::from_uuid(*id), "ordered"))
            .await
            .unwrap();
    }
    ids.sort_unstable_by(|a, b| b.cmp(a));

    let listed: Vec<Uuid> = tasks
        .list(owner.id, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id.as_uuid())
        .collect();
    assert_eq!(listed, ids);

    let cursor = ids[10];
    let below: Vec<Uuid> = tasks
        .list(owner.id, Some(TaskId::from_uuid(cursor)), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id.as_uuid())
        .collect();
    assert_eq!(below, ids[11..]);
}

// ---------------------------------------------------------------------------
// Engine behaviour
// ---------------------------------------------------------------------------

async fn foreign_keys_are_enforced_on_every_connection(db: &Database) {
    // More attempts than pooled connections, concurrently, so every
    // connection of the pool gets used at least once.
    let mut attempts = JoinSet::new();
    for _ in 0..20 {
        let tasks = db.tasks();
        attempts.spawn(async move {
            tasks
                .insert(&task_for(UserId::new(), TaskId::new(), "orphan"))
                .await
        });
    }
    for result in attempts.join_all().await {
        assert!(result.is_err(), "a task without its user was stored");
    }
}

async fn fifty_concurrent_writes_all_succeed(db: &Database) {
    let user = new_user(db).await;
    let (session, _) = new_session(db, user.id, now()).await;
    let mut writes = JoinSet::new();
    for n in 0..50 {
        let db = db.clone();
        let session = session.clone();
        writes.spawn(async move {
            match n % 4 {
                0 => {
                    let email = format!("writer{n}@example.com");
                    insert_user(&db, user_with_email(&email))
                        .await
                        .map_err(|e| format!("{e:?}"))
                }
                1 => {
                    let s = session_for(user.id, now());
                    create_session(&db, &s, &token())
                        .await
                        .map_err(|e| format!("{e:?}"))
                }
                2 => {
                    let at = now();
                    let idle = at + Duration::days(7);
                    match db
                        .sessions()
                        .add_token(session.id, &token(), at, idle, &refreshed(&session, at))
                        .await
                    {
                        Ok(true) => Ok(()),
                        other => Err(format!("{other:?}")),
                    }
                }
                _ => db
                    .tasks()
                    .insert(&task_for(user.id, TaskId::new(), &format!("task {n}")))
                    .await
                    .map_err(|e| format!("{e:?}")),
            }
        });
    }
    let failures: Vec<String> = writes
        .join_all()
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    assert!(failures.is_empty(), "failed writes: {failures:?}");
    assert_eq!(db.tasks().list(user.id, None, 100).await.unwrap().len(), 12);
    // Each state change stored exactly its own event: the first sign-up and
    // session, then 13 sign-ups, 13 sessions and 12 extra tokens.
    assert_eq!(all_events(db).await.len(), 2 + 13 + 13 + 12);
}

async fn deleting_a_user_cascades_to_sessions_and_tasks(db: &Database) {
    let user = new_user(db).await;
    let (session, first) = new_session(db, user.id, now()).await;
    let task = task_for(user.id, TaskId::new(), "goes with its owner");
    db.tasks().insert(&task).await.unwrap();

    let delete = Query::delete()
        .from_table("users")
        .and_where(ExprTrait::eq(Expr::col("id"), user.id.as_uuid()))
        .to_owned();
    db.connection().execute(&delete).await.unwrap();

    assert!(
        db.sessions()
            .find(user.id, session.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.sessions()
            .find_by_refresh_token(&first)
            .await
            .unwrap()
            .is_none()
    );
    assert!(db.tasks().get(user.id, task.id).await.unwrap().is_none());
    // The audit trail outlives the rows it talks about.
    let trail = db
        .events()
        .query(&EventQuery {
            user_id: Some(user.id),
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    let kinds: Vec<AuthEventKind> = trail.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![AuthEventKind::LoginSucceeded, AuthEventKind::SignUp]
    );
}

// ---------------------------------------------------------------------------
// PostgreSQL only
// ---------------------------------------------------------------------------

#[tokio::test]
#[ignore = "needs PostgreSQL: run with --include-ignored (CI does)"]
async fn postgres_connections_carry_the_statement_timeout() {
    let test_db = TestDb::postgres(true).await;
    let mut seen = HashSet::new();
    let mut checks = JoinSet::new();
    for _ in 0..12 {
        let db = test_db.db.clone();
        checks.spawn(async move {
            let row = db
                .connection()
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT current_setting('statement_timeout'), pg_backend_pid()",
                ))
                .await
                .unwrap()
                .unwrap();
            (
                row.try_get_by_index::<String>(0).unwrap(),
                row.try_get_by_index::<i32>(1).unwrap(),
            )
        });
    }
    for (timeout, pid) in checks.join_all().await {
        assert_eq!(timeout, "10s");
        seen.insert(pid);
    }
    assert!(!test_db.db.is_sqlite());
    assert!(!seen.is_empty());
}

// ---------------------------------------------------------------------------
// SQLite only
// ---------------------------------------------------------------------------

async fn sqlite_pragma(db: &Database, pragma: &str) -> String {
    let row = db
        .connection()
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            format!("PRAGMA {pragma}"),
        ))
        .await
        .unwrap()
        .expect("a pragma row");
    row.try_get_by_index::<String>(0)
        .or_else(|_| row.try_get_by_index::<i64>(0).map(|n| n.to_string()))
        .unwrap()
}

#[tokio::test]
async fn sqlite_file_uses_wal_with_per_connection_settings() {
    let test_db = TestDb::sqlite(true).await;
    let db = &test_db.db;

    assert!(db.is_sqlite());
    assert_eq!(sqlite_pragma(db, "journal_mode").await, "wal");
    assert_eq!(sqlite_pragma(db, "foreign_keys").await, "1");
    assert_eq!(sqlite_pragma(db, "busy_timeout").await, "5000");
    assert_eq!(sqlite_pragma(db, "synchronous").await, "1", "NORMAL");
}

#[tokio::test]
async fn sqlite_stores_uuids_as_16_byte_blobs() {
    let test_db = TestDb::sqlite(true).await;
    let user = new_user(&test_db.db).await;
    let row = test_db
        .db
        .connection()
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT typeof(id), length(id) FROM users",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<String>(0).unwrap(), "blob");
    assert_eq!(row.try_get_by_index::<i64>(1).unwrap(), 16);
    assert!(
        test_db
            .db
            .users()
            .find_by_id(user.id)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn sqlite_in_memory_keeps_its_data_on_one_connection() {
    let db = Database::connect("sqlite::memory:", &DbOptions::default())
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let user = new_user(&db).await;

    let mut reads = JoinSet::new();
    for _ in 0..8 {
        let users = db.users();
        let id = user.id;
        reads.spawn(async move { users.find_by_id(id).await });
    }
    for found in reads.join_all().await {
        assert!(found.unwrap().is_some());
    }
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    let result = Database::connect("mysql://localhost/portcullis", &DbOptions::default()).await;
    assert!(result.is_err());
}

#[test]
fn sqlite_url_creates_the_file_on_first_connect() {
    let url = sqlite_url(std::path::Path::new("/var/lib/portcullis/portcullis.db"));
    assert_eq!(url, "sqlite:///var/lib/portcullis/portcullis.db?mode=rwc");
}

#[test]
fn test_database_urls_keep_server_and_query() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/test", "db1"),
        "postgres://postgres@127.0.0.1:5432/db1"
    );
    assert_eq!(
        with_database("postgres://u:p@h/test?sslmode=disable", "db1"),
        "postgres://u:p@h/db1?sslmode=disable"
    );
    assert_eq!(
        with_database("postgres://h:5432", "db1"),
        "postgres://h:5432/db1"
    );
}

// Keeps `ping` honest on a database that went away.
#[tokio::test]
async fn ping_reports_an_unreachable_database_as_unavailable() {
    let options = DbOptions {
        acquire_timeout: std::time::Duration::from_millis(500),
        ..DbOptions::default()
    };
    let db = Database::connect("sqlite::memory:", &options)
        .await
        .unwrap();
    db.connection().clone().close().await.unwrap();
    let result = db.ping().await;
    assert!(
        matches!(
            result,
            Err(portcullis_domain::error::StoreError::Unavailable(_))
        ),
        "{result:?}"
    );
}
