//! The backend harness and fixtures the contract tests share: a fresh,
//! migrated (or untouched) SQLite or PostgreSQL database per test, the
//! macros that run one body on both, and builders for users, sessions,
//! tokens, events and tasks.

use portcullis_domain::audit::{
    AuthEvent, AuthEventKind, AuthEventRepository, EventQuery, Outcome,
};
use portcullis_domain::context::ClientInfo;
use portcullis_domain::context::RequestContext;
use portcullis_domain::email::Email;
use portcullis_domain::error::Failure;
use portcullis_domain::ids::TaskId;
use portcullis_domain::ids::UserId;
use portcullis_domain::mail::{Mail, MailKind};
use portcullis_domain::one_time::{OneTimeToken, TokenPurpose};
use portcullis_domain::password::PasswordHash;
use portcullis_domain::session::{
    Session, SessionOpening, SessionPolicy, SessionRepository, TokenHash,
};
use portcullis_domain::task::{Task, TaskDescription, TaskTitle};
use portcullis_domain::user::{InsertUserError, NewToken, User, UserRepository};
use portcullis_infra::db::{Database, DbOptions, sqlite_url};
use sea_orm::ConnectionTrait;
use tempfile::TempDir;
use time::OffsetDateTime;
use uuid::Uuid;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// A database for one test, removed when the test ends (even by panicking).
pub(crate) struct TestDb {
    pub(crate) db: Database,
    pub(crate) url: String,
    pub(crate) _sqlite_dir: Option<TempDir>,
    pub(crate) _postgres: Option<DropPostgresDatabase>,
}

impl TestDb {
    pub(crate) async fn sqlite(migrate: bool) -> Self {
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
    pub(crate) async fn postgres(migrate: bool) -> Self {
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
pub(crate) struct DropPostgresDatabase {
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
                let test_db = $crate::support::TestDb::sqlite(true).await;
                super::$name(&test_db.db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[ignore = "needs PostgreSQL: run with --include-ignored (CI does)"]
            async fn postgres() {
                let test_db = $crate::support::TestDb::postgres(true).await;
                super::$name(&test_db.db).await;
            }
        }
    )*};
}
pub(crate) use contract_tests;

/// Like `contract_tests!`, on a database the migrations have not touched.
macro_rules! unmigrated_contract_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let test_db = $crate::support::TestDb::sqlite(false).await;
                super::$name(&test_db.db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[ignore = "needs PostgreSQL: run with --include-ignored (CI does)"]
            async fn postgres() {
                let test_db = $crate::support::TestDb::postgres(false).await;
                super::$name(&test_db.db).await;
            }
        }
    )*};
}
pub(crate) use unmigrated_contract_tests;

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// Now, at the millisecond precision storage keeps.
pub(crate) fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000)
        .expect("valid nanosecond")
}

pub(crate) fn user_with_email(email: &str) -> User {
    let at = now();
    User {
        id: UserId::new(),
        email: Email::parse(email).expect("valid email"),
        password_hash: PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned()),
        email_verified_at: None,
        second_factor: false,
        created_at: at,
        updated_at: at,
    }
}

/// Where the test requests come from.
pub(crate) fn request() -> RequestContext {
    RequestContext {
        client: ClientInfo::new(Some("contract-test/1.0"), Some("192.0.2.7".to_owned())),
        request_id: Some("req-contract-test".to_owned()),
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
    }
}

/// An event of `kind` at `at` for the test request.
pub(crate) fn event(kind: AuthEventKind, at: OffsetDateTime) -> AuthEvent {
    AuthEvent::new(kind, Outcome::Success, at, &request())
}

/// What sign-up stores in one transaction: the user, its first session, the
/// session's first refresh token and the `signup` event.
pub(crate) struct SignUp {
    pub(crate) user: User,
    pub(crate) session: Session,
    pub(crate) first: TokenHash,
    pub(crate) event: AuthEvent,
    /// The digest of the verification token sign-up stores.
    pub(crate) verification: TokenHash,
}

impl SignUp {
    pub(crate) fn of(user: User) -> Self {
        let session = session_for(user.id, user.created_at);
        let event = event(AuthEventKind::SignUp, user.created_at)
            .user(user.id)
            .session(session.id);
        Self {
            user,
            session,
            first: token(),
            event,
            verification: token(),
        }
    }

    pub(crate) fn opening(&self) -> SessionOpening<'_> {
        SessionOpening {
            session: &self.session,
            first_token: &self.first,
            event: &self.event,
        }
    }

    pub(crate) async fn insert(&self, db: &Database) -> Result<(), InsertUserError> {
        let created_at = self.user.created_at;
        let expires_at = created_at + time::Duration::hours(24);
        let verification = NewToken {
            hash: &self.verification,
            purpose: TokenPurpose::VerifyEmail,
            new_email: None,
            session: Some(self.session.id),
            created_at,
            expires_at,
        };
        let mail = Mail::link(
            MailKind::VerifyEmail,
            self.user.id,
            self.user.email.clone(),
            OneTimeToken::from_generated("A".repeat(43)),
            expires_at,
        );
        db.users()
            .insert(&self.user, self.opening(), verification, &mail)
            .await
    }
}

/// A signed-up user with a unique email.
pub(crate) async fn signed_up(db: &Database) -> SignUp {
    let signup = SignUp::of(user_with_email(&format!(
        "{}@example.com",
        Uuid::new_v4().simple()
    )));
    signup.insert(db).await.expect("insert user");
    signup
}

pub(crate) async fn new_user(db: &Database) -> User {
    signed_up(db).await.user
}

/// Inserts `user` as sign-up does, with a session, token and event of its own.
pub(crate) async fn insert_user(db: &Database, user: User) -> Result<(), InsertUserError> {
    SignUp::of(user).insert(db).await
}

/// Every stored event, newest first.
pub(crate) async fn all_events(db: &Database) -> Vec<AuthEvent> {
    db.events()
        .query(&EventQuery {
            limit: 10_000,
            ..EventQuery::default()
        })
        .await
        .expect("query events")
}

pub(crate) fn ids(events: &[AuthEvent]) -> Vec<Uuid> {
    events.iter().map(|e| e.id).collect()
}

pub(crate) fn token() -> TokenHash {
    TokenHash::from_bytes([*Uuid::new_v4().as_bytes(), *Uuid::new_v4().as_bytes()].concat())
}

pub(crate) fn session_for(user: UserId, opened_at: OffsetDateTime) -> Session {
    Session::open(
        user,
        opened_at,
        &SessionPolicy::default(),
        ClientInfo::new(Some("contract-test/1.0"), Some("192.0.2.7".to_owned())),
    )
}

pub(crate) async fn new_session(
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
pub(crate) async fn create_session(
    db: &Database,
    session: &Session,
    first: &TokenHash,
) -> Result<(), Failure> {
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
pub(crate) fn refreshed(session: &Session, at: OffsetDateTime) -> AuthEvent {
    event(AuthEventKind::TokenRefreshed, at)
        .user(session.user_id)
        .session(session.id)
}

pub(crate) fn task_for(owner: UserId, id: TaskId, title: &str) -> Task {
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
// The harness itself
// ---------------------------------------------------------------------------

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
