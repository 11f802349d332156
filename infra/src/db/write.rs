//! Write transactions, and the gate that serialises SQLite writers.
//!
//! SQLite allows one writer at a time; a second writer waits for
//! `busy_timeout` and then fails with `SQLITE_BUSY`, and a deferred
//! transaction that read before writing can fail at once. Queuing writers on
//! an in-process mutex instead makes them wait their turn without surfacing
//! either error. PostgreSQL has row locks and needs no gate.

use std::sync::Arc;

use portcullis_domain::error::Failure;
use sea_orm::{
    DatabaseTransaction, DbErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::Database;
use super::deadline::{Bounded, within};
use super::error::store_error;

/// Held by whoever writes to a SQLite database; absent on PostgreSQL.
pub(crate) type WriteGate = Option<Arc<Mutex<()>>>;

/// What a transaction body decided once it saw the rows it touched.
pub(crate) enum Decision<T> {
    Commit(T),
    /// A precondition failed: undo everything and report `T`.
    Rollback(T),
}

/// An open transaction, holding the write gate until it ends. Its statements
/// have the client-side deadline of the pool (PostgreSQL).
pub(crate) struct WriteTx {
    txn: Bounded<DatabaseTransaction>,
    _gate: Option<OwnedMutexGuard<()>>,
}

impl Database {
    /// Waits for the write gate (SQLite only). Hold the guard across the write.
    pub(crate) async fn write_gate(&self) -> Option<OwnedMutexGuard<()>> {
        match &self.write_gate {
            Some(gate) => Some(Arc::clone(gate).lock_owned().await),
            None => None,
        }
    }

    /// Opens a transaction meant to write.
    pub(crate) async fn begin_write(&self) -> Result<WriteTx, Failure> {
        let gate = self.write_gate().await;
        self.begin_with_gate(gate).await
    }

    /// Opens a transaction meant to write only if no other writer of this
    /// process holds the gate (SQLite); `None` when one does. For background
    /// work that must never make a request wait behind it.
    pub(crate) async fn begin_write_if_free(&self) -> Result<Option<WriteTx>, Failure> {
        let gate = match &self.write_gate {
            Some(gate) => match Arc::clone(gate).try_lock_owned() {
                Ok(guard) => Some(guard),
                Err(_) => return Ok(None),
            },
            None => None,
        };
        self.begin_with_gate(gate).await.map(Some)
    }

    async fn begin_with_gate(&self, gate: Option<OwnedMutexGuard<()>>) -> Result<WriteTx, Failure> {
        // IMMEDIATE takes SQLite's write lock up front, so a transaction never
        // fails half-way when upgrading from reader to writer; other
        // processes sharing the file are waited for through `busy_timeout`.
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        let limit = self.bounded().limit();
        let txn = within(limit, self.conn.begin_with_options(options))
            .await
            .map_err(store_error)?;
        Ok(WriteTx {
            txn: Bounded::new(txn, limit),
            _gate: gate,
        })
    }
}

impl WriteTx {
    /// The transaction to run statements on.
    pub(crate) fn txn(&self) -> &Bounded<DatabaseTransaction> {
        &self.txn
    }

    /// Ends the transaction as the body decided, rolling back on error.
    ///
    /// Rollbacks are awaited rather than left to `Drop`, which only schedules
    /// them: the gate must not open while this transaction still holds
    /// SQLite's write lock.
    pub(crate) async fn settle<T>(self, body: Result<Decision<T>, DbErr>) -> Result<T, Failure> {
        let WriteTx { txn, _gate } = self;
        let limit = txn.limit();
        let txn = txn.into_inner();
        match body {
            Ok(Decision::Commit(value)) => {
                within(limit, txn.commit()).await.map_err(store_error)?;
                Ok(value)
            }
            Ok(Decision::Rollback(value)) => {
                within(limit, txn.rollback()).await.map_err(store_error)?;
                Ok(value)
            }
            Err(error) => {
                if let Err(rollback) = within(limit, txn.rollback()).await {
                    tracing::warn!(error = %rollback, "rollback after a failed statement failed");
                }
                Err(store_error(error))
            }
        }
    }
}
