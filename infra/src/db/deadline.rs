//! A client-side deadline on every statement sent to PostgreSQL.
//!
//! `statement_timeout` is enforced by the server, so it cannot fire when the
//! server never sees the statement: a network that drops packets, or a host
//! that froze, leaves the query waiting for an answer that never comes, and
//! the request with it. [`Bounded`] wraps a connection or a transaction and
//! gives up on any statement that has not answered within its limit, as
//! `DbErr::Conn`, which `store_error` reports as `Failure::Unavailable`
//! (a 503 for the client).
//!
//! SQLite gets no limit: its waits are bounded by `busy_timeout`, and
//! abandoning a SQLite write half-way would release the write gate while the
//! transaction still holds the file's lock (see `write.rs`).

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, ExecResult, QueryResult, RuntimeErr, Statement};

/// `C` with a deadline on each statement (`None`: no deadline).
#[derive(Clone)]
pub(crate) struct Bounded<C> {
    inner: C,
    limit: Option<Duration>,
}

impl<C> Bounded<C> {
    pub(crate) fn new(inner: C, limit: Option<Duration>) -> Self {
        Self { inner, limit }
    }

    pub(crate) fn limit(&self) -> Option<Duration> {
        self.limit
    }

    pub(crate) fn into_inner(self) -> C {
        self.inner
    }
}

/// Runs `work`, giving up after `limit`.
pub(crate) async fn within<T>(
    limit: Option<Duration>,
    work: impl Future<Output = Result<T, DbErr>>,
) -> Result<T, DbErr> {
    match limit {
        None => work.await,
        Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            Err(DbErr::Conn(RuntimeErr::Internal(format!(
                "the database did not answer within {} ms",
                limit.as_millis()
            ))))
        }),
    }
}

#[async_trait]
impl<C: ConnectionTrait + Send + Sync> ConnectionTrait for Bounded<C> {
    fn get_database_backend(&self) -> DbBackend {
        self.inner.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        within(self.limit, self.inner.execute_raw(stmt)).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        within(self.limit, self.inner.execute_unprepared(sql)).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        within(self.limit, self.inner.query_one_raw(stmt)).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        within(self.limit, self.inner.query_all_raw(stmt)).await
    }

    fn support_returning(&self) -> bool {
        self.inner.support_returning()
    }

    fn is_mock_connection(&self) -> bool {
        self.inner.is_mock_connection()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_statement_past_its_deadline_is_a_connection_error() {
        let limit = Some(Duration::from_millis(10));
        let result: Result<(), DbErr> = within(limit, std::future::pending()).await;
        assert!(matches!(result, Err(DbErr::Conn(_))), "{result:?}");
        let result = within(limit, async { Ok::<_, DbErr>(7) }).await;
        assert!(matches!(result, Ok(7)));
    }
}
