//! The database itself: migrations, engine behaviour both backends must
//! share (foreign keys, concurrent writes, cascades), each backend's own
//! connection settings, and connecting.

use std::collections::HashSet;

use portcullis_domain::audit::{AuthEventKind, AuthEventRepository, EventQuery};
use portcullis_domain::ids::TaskId;
use portcullis_domain::ids::UserId;
use portcullis_domain::session::{
    RefreshDecision, RevocationCursor, RotateOutcome, SessionRepository, Supersession,
};
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

unmigrated_contract_tests!(
    migrations_are_idempotent_and_safe_to_race,
    stored_emails_are_normalised_and_look_alikes_left_alone,
);

contract_tests!(the_revocation_feed_numbers_its_rows_and_never_reuses_a_number);

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

/// Rows written as the releases before NFC wrote them (trimmed and
/// lowercased only), then every migration from `normalize_emails` on.
async fn stored_emails_are_normalised_and_look_alikes_left_alone(db: &Database) {
    use portcullis_migration::{Migrator, MigratorTrait};
    let conn = db.connection();
    let before_ours = Migrator::get_migration_with_status(conn)
        .await
        .unwrap()
        .iter()
        .position(|m| m.name() == "m20261201_130000_normalize_emails")
        .expect("the migration is registered");
    Migrator::up(conn, Some(u32::try_from(before_ours).unwrap()))
        .await
        .unwrap();
    let rows = [
        ("plain", "plain@example.com"),
        // Decomposed é, nobody holds the composed form: normalised.
        ("decomposed", "jose\u{301}@example.com"),
        // Decomposed é whose composed form is another account: both stay.
        ("composed_holder", "ren\u{e9}@example.com"),
        ("decomposed_twin", "rene\u{301}@example.com"),
        // Two orders of the same two marks: the first is normalised, the
        // second then collides with it and stays.
        ("marks_one_order", "a\u{323}\u{302}@example.com"),
        ("marks_other_order", "a\u{302}\u{323}@example.com"),
        // Characters sign-up now refuses: left alone.
        ("zero_width", "alice\u{200b}@example.com"),
        ("bidi", "\u{202e}evil@example.com"),
    ];
    let backend = conn.get_database_backend();
    let mut ids = std::collections::HashMap::new();
    for (name, email) in rows {
        let id = uuid::Uuid::now_v7();
        let sql = match backend {
            DbBackend::Postgres => {
                "INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)"
            }
            _ => {
                "INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)"
            }
        };
        conn.execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [
                id.into(),
                email.into(),
                "$argon2id$stub".into(),
                0i64.into(),
                0i64.into(),
            ],
        ))
        .await
        .unwrap();
        ids.insert(name, id);
    }

    db.migrate()
        .await
        .expect("the migration runs over look-alikes");

    let mut emails = std::collections::HashMap::new();
    for (name, id) in &ids {
        let user = db
            .users()
            .find_by_id(UserId::from_uuid(*id))
            .await
            .unwrap()
            .expect("no account is deleted or merged");
        emails.insert(*name, user.email.as_str().to_owned());
    }
    let expect = |name: &str, email: &str| assert_eq!(emails[name], email, "{name}");
    expect("plain", "plain@example.com");
    expect("decomposed", "jos\u{e9}@example.com");
    expect("composed_holder", "ren\u{e9}@example.com");
    expect("decomposed_twin", "rene\u{301}@example.com");
    expect("marks_one_order", "\u{1ead}@example.com");
    expect("marks_other_order", "a\u{302}\u{323}@example.com");
    expect("zero_width", "alice\u{200b}@example.com");
    expect("bidi", "\u{202e}evil@example.com");
    // And the normalised account is the one log-in now finds.
    let found = db
        .users()
        .find_by_email(&portcullis_domain::email::Email::parse("jose\u{301}@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id.as_uuid(), ids["decomposed"]);
    // Running again changes nothing.
    db.migrate().await.unwrap();
}

/// `m20261201_120000_create_session_revocations`: the database numbers the
/// rows, in insertion order, and a number is never given out twice, even
/// once every row is deleted (SQLite `AUTOINCREMENT`, a PostgreSQL sequence).
async fn the_revocation_feed_numbers_its_rows_and_never_reuses_a_number(db: &Database) {
    use sea_orm::sea_query::Order;
    let conn = db.connection();
    let append = |revoked_at: i64| {
        Query::insert()
            .into_table("session_revocations")
            .columns(["session_id", "revoked_at"])
            .values_panic([uuid::Uuid::now_v7().into(), revoked_at.into()])
            .to_owned()
    };
    let numbers = || async {
        let select = Query::select()
            .column("id")
            .from("session_revocations")
            .order_by("id", Order::Asc)
            .to_owned();
        conn.query_all(&select)
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get_by_index::<i64>(0).unwrap())
            .collect::<Vec<i64>>()
    };
    conn.execute(&append(2)).await.unwrap();
    conn.execute(&append(1)).await.unwrap();
    let first = numbers().await;
    assert_eq!(first.len(), 2);
    assert!(first[0] >= 1 && first[0] < first[1], "{first:?}");

    conn.execute(&Query::delete().from_table("session_revocations").to_owned())
        .await
        .unwrap();
    conn.execute(&append(3)).await.unwrap();
    let after = numbers().await;
    assert_eq!(after.len(), 1);
    assert!(
        after[0] > first[1],
        "{after:?} reuses a number of {first:?}"
    );

    // No foreign key: a revocation outlives the session it names.
    let page = db
        .sessions()
        .revocations_after(RevocationCursor::START, 10)
        .await
        .unwrap();
    assert_eq!(page.revocations.len(), 1);
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
