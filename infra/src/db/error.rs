//! Translation of sea-orm errors into the domain's `Failure`.
//!
//! The domain never sees `DbErr`: a failure the caller may retry (pool
//! exhausted, connection lost, statement timed out, database busy) becomes
//! `Failure::Unavailable`, anything else `Failure::Unexpected`.

use portcullis_domain::error::Failure;
use sea_orm::sqlx;
use sea_orm::{DbErr, RuntimeErr, SqlErr};

/// Maps a driver error to the domain's storage error.
pub(crate) fn store_error(error: DbErr) -> Failure {
    if is_unavailable(&error) {
        Failure::Unavailable(anyhow::Error::new(error))
    } else {
        Failure::unexpected(error)
    }
}

/// A value read back from storage that the domain refuses: the database holds
/// something no adapter wrote.
pub(crate) fn corrupt(what: &'static str) -> Failure {
    Failure::Unexpected(anyhow::anyhow!(format!("corrupt stored data: {what}")))
}

/// Whether `error` is a unique-constraint violation naming `column`.
///
/// The column is checked so that, say, a primary-key clash is not mistaken for
/// a taken email. Both backends name it in the message: PostgreSQL through the
/// index name (`ux_users_email`), SQLite as `users.email`.
pub(crate) fn is_unique_violation_on(error: &DbErr, column: &str) -> bool {
    matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(message)) if message.contains(column))
}

fn is_unavailable(error: &DbErr) -> bool {
    match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(inner)) | DbErr::Query(RuntimeErr::SqlxError(inner)) => {
            sqlx_is_transient(inner)
        }
        _ => false,
    }
}

fn sqlx_is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| transient_code(&code)),
        _ => false,
    }
}

/// SQLSTATEs (PostgreSQL) and result codes (SQLite) that say "not now" rather
/// than "never".
fn transient_code(code: &str) -> bool {
    // PostgreSQL: 08xxx connection exception, 53300 too many connections,
    // 57014 statement timeout / cancel, 57P0x shutdown or not yet accepting.
    if code.starts_with("08") || matches!(code, "53300" | "57014" | "57P01" | "57P02" | "57P03") {
        return true;
    }
    // SQLite reports the extended result code; its low byte is the primary
    // code: 5 SQLITE_BUSY, 6 SQLITE_LOCKED.
    code.parse::<u32>()
        .is_ok_and(|extended| matches!(extended & 0xff, 5 | 6))
}
