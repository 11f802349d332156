//! The database itself: migrations, engine behaviour both backends must
//! share (foreign keys, concurrent writes, cascades), each backend's own
//! connection settings, and connecting.

use std::collections::HashSet;

use portcullis_domain::audit::{AuthEventKind, AuthEventRepository, EventQuery};
use portcullis_domain::ids::TaskId;
use portcullis_domain::ids::UserId;
use portcullis_domain::session::{RefreshDecision, RotateOutcome, SessionRepository, Supersession};
use portcullis_domain::task::TaskRepository;
use portcullis_domain::user::UserRepository;
use portcullis_infra::db::{Database, DbOptions, sqlite_url};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use time::Duration;
use tokio::task::JoinSet;

use crate::support::{
    TestDb, all_events, contract_tests, create_session, insert_user, new_session, new_user, now,
    refreshed, session_for, task_for, token, unmigrated_contract_tests, user_with_email,
};

unmigrated_contract_tests!(migrations_are_idempotent_and_safe_to_race);

contract_tests!(
    foreign_keys_are_enforced_on_every_connection,
    fifty_concurrent_writes_all_succeed,
    deleting_a_user_cascades_to_sessions_and_tasks,
);

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
    let (session, first) = new_session(db, user.id, now()).await;
    // A rotated token, whose replays inside the grace interval each supersede
    // the session's current token.
    let rotated_at = now();
    let rotated = db
        .sessions()
        .rotate(
            session.id,
            &first,
            &token(),
            rotated_at,
            rotated_at + Duration::days(7),
            &refreshed(&session, rotated_at),
        )
        .await
        .unwrap();
    assert_eq!(rotated, RotateOutcome::Rotated);
    let mut writes = JoinSet::new();
    for n in 0..50 {
        let db = db.clone();
        let session = session.clone();
        let first = first.clone();
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
                    let event = refreshed(&session, at).detail("grace_replay");
                    let replay = Supersession {
                        session: session.id,
                        presented: &first,
                        next: &token(),
                        now: at,
                        idle_expires_at: at + Duration::days(7),
                        grace: Duration::hours(1),
                        event: &event,
                    };
                    match db.sessions().supersede(replay).await {
                        Ok(RefreshDecision::GraceReplay) => Ok(()),
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
    // session and the rotation, then 13 sign-ups, 13 sessions and 12 grace
    // replays.
    assert_eq!(all_events(db).await.len(), 3 + 13 + 13 + 12);
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
            Err(portcullis_domain::error::Failure::Unavailable(_))
        ),
        "{result:?}"
    );
}
