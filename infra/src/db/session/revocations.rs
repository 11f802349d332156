//! The revocation feed in `session_revocations`: appended to by every
//! revocation in its own transaction, read by position.
//!
//! Readers move their cursor to the highest id they read, so ids must become
//! visible in increasing order: a row with a lower id that committed after a
//! reader had seen a higher one would be skipped for ever.
//!
//! - SQLite has one writer at a time (across processes too: write
//!   transactions are `BEGIN IMMEDIATE`), so ids are assigned and committed
//!   in the same order. `AUTOINCREMENT` keeps an id from being reused after
//!   the newest rows were purged.
//! - PostgreSQL assigns a `bigserial` id at insert but shows the row at
//!   commit, and concurrent transactions commit in any order. So the append
//!   first takes `SHARE ROW EXCLUSIVE` on the table, a lock that conflicts
//!   with itself but not with readers, and holds it to the end of the
//!   transaction: appenders take their ids one after the other, and the next
//!   one gets its id only after the previous one committed (PostgreSQL makes
//!   a commit visible before it releases the transaction's locks). We chose
//!   this over re-reading a window of recent ids (no window is safe against
//!   an arbitrarily slow commit) and over `pg_snapshot_xmin` bookkeeping
//!   (more state in every reader for no gain at the rate of logouts). It
//!   serialises revocations, not reads or other writes, and is taken as the
//!   last step before commit, after every row lock the transaction needs, so
//!   the holder never waits on anything else and cannot deadlock.

use portcullis_domain::error::Failure;
use portcullis_domain::ids::SessionId;
use portcullis_domain::session::{Revocation, RevocationCursor, RevocationPage};
use sea_orm::prelude::Uuid;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use time::OffsetDateTime;

use super::super::Database;
use super::super::convert::{from_millis, to_millis};
use super::super::entity::session_revocation;
use super::super::error::store_error;
use super::super::write::Decision;

/// Appends `sessions`, revoked at `now`, to the feed inside the caller's
/// transaction `db`. Call it last, just before the commit (see the module
/// documentation).
pub(super) async fn append<C: ConnectionTrait>(
    db: &C,
    sessions: &[SessionId],
    now: OffsetDateTime,
) -> Result<(), DbErr> {
    if sessions.is_empty() {
        return Ok(());
    }
    if db.get_database_backend() == DbBackend::Postgres {
        db.execute_unprepared("LOCK TABLE session_revocations IN SHARE ROW EXCLUSIVE MODE")
            .await?;
    }
    let revoked_at = to_millis(now);
    let rows = sessions.iter().map(|id| session_revocation::ActiveModel {
        id: NotSet,
        session_id: Set(id.as_uuid()),
        revoked_at: Set(revoked_at),
    });
    session_revocation::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Up to `limit` revocations after `cursor`, in id order.
pub(super) async fn after(
    db: &Database,
    cursor: RevocationCursor,
    limit: u64,
) -> Result<RevocationPage, Failure> {
    let from = i64::try_from(cursor.raw()).unwrap_or(i64::MAX);
    let rows: Vec<(i64, Uuid, i64)> = session_revocation::Entity::find()
        .select_only()
        .column(session_revocation::Column::Id)
        .column(session_revocation::Column::SessionId)
        .column(session_revocation::Column::RevokedAt)
        .filter(session_revocation::Column::Id.gt(from))
        .order_by_asc(session_revocation::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(db.bounded())
        .await
        .map_err(store_error)?;
    let next = rows.last().map_or(cursor, |(id, _, _)| position(*id));
    let revocations = rows
        .into_iter()
        .map(|(_, id, at)| revocation(id, at))
        .collect::<Result<_, _>>()?;
    Ok(RevocationPage { revocations, next })
}

/// The end of the feed, then every revocation stamped at or after `since`.
/// In that order: a row committed in between has a higher id than the end
/// read, so the first read after the end returns it.
pub(super) async fn recent(
    db: &Database,
    since: OffsetDateTime,
) -> Result<RevocationPage, Failure> {
    let end: Option<Option<i64>> = session_revocation::Entity::find()
        .select_only()
        .column_as(session_revocation::Column::Id.max(), "end")
        .into_tuple()
        .one(db.bounded())
        .await
        .map_err(store_error)?;
    let next = end.flatten().map_or(RevocationCursor::START, position);
    let rows: Vec<(Uuid, i64)> = session_revocation::Entity::find()
        .select_only()
        .column(session_revocation::Column::SessionId)
        .column(session_revocation::Column::RevokedAt)
        .filter(session_revocation::Column::RevokedAt.gte(to_millis(since)))
        .order_by_asc(session_revocation::Column::Id)
        .into_tuple()
        .all(db.bounded())
        .await
        .map_err(store_error)?;
    let revocations = rows
        .into_iter()
        .map(|(id, at)| revocation(id, at))
        .collect::<Result<_, _>>()?;
    Ok(RevocationPage { revocations, next })
}

/// Deletes up to `limit` revocations stamped before `before`.
pub(super) async fn purge(
    db: &Database,
    before: OffsetDateTime,
    limit: u64,
) -> Result<u64, Failure> {
    let tx = db.begin_write().await?;
    let body = async {
        let ids: Vec<i64> = session_revocation::Entity::find()
            .select_only()
            .column(session_revocation::Column::Id)
            .filter(session_revocation::Column::RevokedAt.lt(to_millis(before)))
            .order_by_asc(session_revocation::Column::Id)
            .limit(limit)
            .into_tuple()
            .all(tx.txn())
            .await?;
        if ids.is_empty() {
            return Ok(Decision::Rollback(0));
        }
        let deleted = session_revocation::Entity::delete_many()
            .filter(session_revocation::Column::Id.is_in(ids))
            .exec(tx.txn())
            .await?;
        Ok(Decision::Commit(deleted.rows_affected))
    }
    .await;
    tx.settle(body).await
}

/// A stored id as a feed position; ids start at 1, so none is negative.
fn position(id: i64) -> RevocationCursor {
    RevocationCursor::from_raw(u64::try_from(id).unwrap_or(0))
}

fn revocation(session: Uuid, revoked_at: i64) -> Result<Revocation, Failure> {
    Ok(Revocation {
        session_id: SessionId::from_uuid(session),
        revoked_at: from_millis(revoked_at)?,
    })
}
