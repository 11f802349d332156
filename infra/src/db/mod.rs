//! Persistence: sea-orm over SQLite (the embedded default) or PostgreSQL.
//!
//! [`Database`] owns the connection pool, applies the migrations and hands out
//! the repositories that implement the domain's storage ports. Entities and
//! driver errors stay inside this module; callers see domain types and
//! `Failure` only.

mod account_repository;
mod batch_queue;
mod convert;
mod deadline;
mod entity;
mod error;
mod event_repository;
mod files;
mod mfa_repository;
mod outbox;
mod session;
mod task_repository;
mod user_repository;
mod write;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use portcullis_domain::error::Failure;
use portcullis_migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, DbBackend, SqliteTransactionMode,
    Statement, TransactionOptions, TransactionTrait,
};
use tokio::sync::Mutex;

pub use account_repository::SeaOrmAccountRepository;
pub use event_repository::SeaOrmAuthEventRepository;
pub use files::{ensure_data_dir, prepare_sqlite_file};
pub use mfa_repository::SeaOrmMfaRepository;
pub use outbox::{Claimed, OutboxCounts, SeaOrmOutbox};
pub use session::SeaOrmSessionRepository;
pub use task_repository::SeaOrmTaskRepository;
use user_repository::ProfileCache;
pub use user_repository::SeaOrmUserRepository;

use self::batch_queue::BatchQueue;
use self::deadline::Bounded;
use self::error::store_error;
use self::session::{BatchedLookups, BatchedRotations};
use self::write::WriteGate;

/// Key of the PostgreSQL advisory lock that lets one instance migrate at a time
/// ("portcull" in ASCII, so it is recognisable in `pg_locks`).
const MIGRATION_LOCK_KEY: i64 = 0x706f_7274_6375_6c6c;

/// How long a SQLite connection waits for a lock held by another process
/// (in-process writers queue on the write gate instead).
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Page cache per SQLite connection (negative: KiB), instead of SQLite's
/// 2 MiB. Every commit by one connection empties the others' caches, so
/// under writes a large cache buys little, while ten connections with full
/// caches held 20 MiB more after a refresh benchmark than at start; the
/// operating system's file cache still serves the pages.
const SQLITE_CACHE_SIZE: &str = "-512";

/// Added to the acquire and statement timeouts for the client-side deadline,
/// so that the server's `statement_timeout` fires first when it can.
const DEADLINE_MARGIN: Duration = Duration::from_secs(1);

/// Connects; on SQLite, retries briefly while another process holds the
/// file's lock during its own start-up (switching to WAL takes the lock, and
/// SQLite may refuse at once rather than wait), so instances and `migrate`
/// runs started together all come up.
async fn connect_with_retry(
    connect: ConnectOptions,
    sqlite: bool,
) -> anyhow::Result<DatabaseConnection> {
    let attempts = if sqlite { 50 } else { 1 };
    let mut last = None;
    for attempt in 0..attempts {
        match sea_orm::Database::connect(connect.clone()).await {
            Ok(conn) => return Ok(conn),
            Err(error) if sqlite && error.to_string().contains("database is locked") => {
                tracing::debug!(attempt, "SQLite file busy while connecting; retrying");
                last = Some(error);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => {
                return Err(anyhow::Error::new(error).context("cannot connect to the database"));
            }
        }
    }
    Err(last.map_or_else(
        || anyhow::anyhow!("cannot connect to the database"),
        |e| anyhow::Error::new(e).context("cannot connect to the database"),
    ))
}

/// Pool and timeout settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbOptions {
    /// Largest pool size. In-memory SQLite always uses exactly one connection.
    pub max_connections: u32,
    /// How long a query waits for a pooled connection (and for connecting).
    pub acquire_timeout: Duration,
    /// Longest a single statement may run (PostgreSQL only). The server
    /// enforces it; the client also gives up on a statement that has not
    /// answered after `acquire_timeout + statement_timeout` plus a second,
    /// for when the server never received it (see `deadline.rs`).
    pub statement_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

/// A connection pool to SQLite or PostgreSQL and the repositories over it.
///
/// Cheap to clone: clones share the pool and, on SQLite, the write gate.
#[derive(Clone)]
pub struct Database {
    conn: DatabaseConnection,
    /// The same pool with a client-side deadline on each statement.
    bounded: Bounded<DatabaseConnection>,
    write_gate: WriteGate,
    /// Batch refresh-token lookups and rotations (used on SQLite only).
    lookups: BatchQueue<BatchedLookups>,
    rotations: BatchQueue<BatchedRotations>,
    profiles: ProfileCache,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.conn.get_database_backend())
            .finish_non_exhaustive()
    }
}

/// The URL of a SQLite database file, created on first connect.
pub fn sqlite_url(path: &Path) -> String {
    // sqlx percent-decodes the path and cuts it at `?`, so those must not be
    // taken literally from a directory name.
    let mut escaped = String::new();
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => escaped.push_str("%25"),
            '?' => escaped.push_str("%3F"),
            '#' => escaped.push_str("%23"),
            _ => escaped.push(c),
        }
    }
    format!("sqlite://{escaped}?mode=rwc")
}

impl Database {
    /// Connects to `url`: `sqlite:` (a file, or `sqlite::memory:`) or
    /// `postgres://` / `postgresql://`.
    ///
    /// # Errors
    /// An unsupported URL or a database that cannot be reached.
    pub async fn connect(url: &str, options: &DbOptions) -> anyhow::Result<Database> {
        let mut connect = ConnectOptions::new(url);
        connect
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_timeout(options.acquire_timeout)
            // sea-orm's tracing spans already carry the statements; sqlx's own
            // logging would print each one again at info level.
            .sqlx_logging(false);

        let mut deadline = None;
        let write_gate = if url.starts_with("sqlite:") {
            if is_sqlite_memory(url) {
                // sqlx lets the pool's connections share one in-memory
                // database through SQLite's shared cache, whose table locks
                // fail with SQLITE_LOCKED instead of waiting, and the database
                // vanishes with its last connection: keep exactly one, forever.
                connect
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None::<Duration>)
                    .max_lifetime(None::<Duration>);
                connect.map_sqlx_sqlite_opts(|opts| {
                    opts.foreign_keys(true).busy_timeout(SQLITE_BUSY_TIMEOUT)
                });
            } else {
                // Set through the connect options so every pooled connection
                // gets them: `foreign_keys`, `busy_timeout` and `synchronous`
                // are per connection, unlike the persistent WAL journal mode.
                connect.map_sqlx_sqlite_opts(|opts| {
                    opts.journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                        .foreign_keys(true)
                        .busy_timeout(SQLITE_BUSY_TIMEOUT)
                        .pragma("cache_size", SQLITE_CACHE_SIZE)
                });
            }
            Some(Arc::new(Mutex::new(())))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // Sent as a startup parameter, so it holds on every connection.
            connect.statement_timeout(options.statement_timeout);
            deadline = Some(options.acquire_timeout + options.statement_timeout + DEADLINE_MARGIN);
            None
        } else {
            bail!("unsupported database URL scheme (expected sqlite: or postgres://)");
        };

        let conn = connect_with_retry(connect, write_gate.is_some()).await?;
        let bounded = Bounded::new(conn.clone(), deadline);
        Ok(Database {
            conn,
            bounded,
            write_gate,
            lookups: BatchQueue::default(),
            rotations: BatchQueue::default(),
            profiles: ProfileCache::new(),
        })
    }

    /// Applies pending migrations.
    ///
    /// On SQLite the whole run is one exclusive transaction, so processes
    /// sharing the file migrate one after the other.
    ///
    /// On PostgreSQL the whole run holds a transaction-scoped advisory lock, so
    /// instances starting together migrate one after the other and the later
    /// ones find nothing to do. PostgreSQL DDL is transactional, so a failed
    /// run leaves no half-applied migration behind.
    ///
    /// # Errors
    /// A migration failed or the database is unreachable.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        if self.is_sqlite() {
            let _gate = self.write_gate().await;
            // The write gate only orders this process. Another process
            // migrating the same file (`portcullis migrate` beside a starting
            // server) waits for this exclusive transaction through
            // `busy_timeout`, then finds nothing left to do; and as SQLite DDL
            // is transactional, a crash half-way leaves no half-applied
            // migration behind.
            let txn = self
                .conn
                .begin_with_options(TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Exclusive),
                    ..TransactionOptions::default()
                })
                .await
                .context("cannot start migrations")?;
            Migrator::up(&txn, None)
                .await
                .context("cannot apply migrations")?;
            txn.commit().await.context("cannot commit migrations")?;
            return Ok(());
        }
        let txn = self.conn.begin().await.context("cannot start migrations")?;
        // Waiting for another instance's migration, or a long migration, must
        // not trip the per-statement timeout meant for requests.
        txn.execute_unprepared("SET LOCAL statement_timeout = 0")
            .await
            .context("cannot lift the statement timeout for migrations")?;
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [MIGRATION_LOCK_KEY.into()],
        ))
        .await
        .context("cannot take the migration lock")?;
        Migrator::up(&txn, None)
            .await
            .context("cannot apply migrations")?;
        txn.commit().await.context("cannot commit migrations")?;
        Ok(())
    }

    /// Checks that the database answers (`SELECT 1`), for readiness probes.
    ///
    /// # Errors
    /// `Failure::Unavailable` when it does not.
    pub async fn ping(&self) -> Result<(), Failure> {
        let backend = self.conn.get_database_backend();
        self.bounded
            .query_one_raw(Statement::from_string(backend, "SELECT 1"))
            .await
            .map(drop)
            .map_err(store_error)
    }

    /// The user repository.
    pub fn users(&self) -> SeaOrmUserRepository {
        SeaOrmUserRepository::new(self.clone())
    }

    /// The account repository (tokens of email links, account changes).
    pub fn accounts(&self) -> SeaOrmAccountRepository {
        SeaOrmAccountRepository::new(self.clone())
    }

    /// Second factors, recovery codes and log-in challenges.
    pub fn mfa(&self) -> SeaOrmMfaRepository {
        SeaOrmMfaRepository::new(self.clone())
    }

    /// The outbox, as the delivery worker sees it.
    pub fn outbox(&self) -> SeaOrmOutbox {
        SeaOrmOutbox::new(self.clone())
    }

    /// The profile cache every repository of this pool shares.
    pub(crate) fn profiles(&self) -> &ProfileCache {
        &self.profiles
    }

    /// The audit trail.
    pub fn events(&self) -> SeaOrmAuthEventRepository {
        SeaOrmAuthEventRepository::new(self.clone())
    }

    /// The session and refresh-token repository.
    pub fn sessions(&self) -> SeaOrmSessionRepository {
        SeaOrmSessionRepository::new(self.clone())
    }

    /// The task repository.
    pub fn tasks(&self) -> SeaOrmTaskRepository {
        SeaOrmTaskRepository::new(self.clone())
    }

    /// The underlying sea-orm connection pool, without the client-side
    /// statement deadline: repositories use [`Database::bounded`].
    pub fn connection(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// The pool with a client-side deadline on each statement (PostgreSQL),
    /// so a database that stops answering yields `Failure::Unavailable`
    /// instead of a request that never ends. Every repository query uses it.
    pub(crate) fn bounded(&self) -> &Bounded<DatabaseConnection> {
        &self.bounded
    }

    /// The lookup queue shared by the clones of this database.
    pub(crate) fn refresh_lookups(&self) -> &BatchQueue<BatchedLookups> {
        &self.lookups
    }

    /// The rotation queue shared by the clones of this database.
    pub(crate) fn rotations(&self) -> &BatchQueue<BatchedRotations> {
        &self.rotations
    }

    /// A clone with queues of its own, for the tasks that drain the queues.
    pub(crate) fn without_queues(&self) -> Database {
        Database {
            lookups: BatchQueue::default(),
            rotations: BatchQueue::default(),
            ..self.clone()
        }
    }

    /// Whether this is SQLite (otherwise PostgreSQL).
    pub fn is_sqlite(&self) -> bool {
        self.conn.get_database_backend() == DbBackend::Sqlite
    }
}

fn is_sqlite_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}
