//! Refresh-token rotations on SQLite, committed in batches.
//!
//! SQLite has one writer at a time, so concurrent rotations queue for the
//! write gate whatever happens; and sqlx runs every SQLite statement on the
//! connection's own thread, so each statement costs two thread hand-offs.
//! Done one by one, a rotation is seven statements (begin, touch the
//! session, mark the token rotated, store its successor, store the event,
//! commit) and its CPU goes mostly to those hand-offs (measured with `perf`:
//! over half of the server's time in the kernel's scheduler).
//!
//! Here one task takes every rotation queued and does them all in one
//! `BEGIN IMMEDIATE` transaction with a fixed number of statements: read the
//! sessions and the presented tokens, decide each rotation in arrival order
//! with the domain's rule (`decide_rotation`), as every adapter does, then write the winners with
//! multi-row statements. `BEGIN IMMEDIATE` takes SQLite's write lock before
//! the reads, so nothing (another task, another process) changes the rows
//! between the decision and the writes. Each rotation gets the outcome it
//! would have had alone, in arrival order; a batch that fails fails every
//! rotation in it, and commits none.
//!
//! Not used on PostgreSQL: there rotations run in parallel, each deciding
//! with a conditional `UPDATE` under the row lock.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use portcullis_domain::audit::AuthEvent;
use portcullis_domain::error::Failure;
use portcullis_domain::ids::SessionId;
use portcullis_domain::session::{
    RefreshRecord, RotateOutcome, Session, TokenHash, decide_rotation,
};
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter};
use time::OffsetDateTime;

use super::{session_row, to_domain, token_record};
use crate::db::Database;
use crate::db::batch_queue::{Batch, padded};
use crate::db::convert::to_millis;
use crate::db::entity::{auth_event, refresh_token, session};
use crate::db::event_repository::row as event_row;
use crate::db::write::Decision;

/// One rotation, as `SessionRepository::rotate` describes it.
pub(crate) struct Rotation {
    pub session: SessionId,
    pub presented: TokenHash,
    pub next: TokenHash,
    pub now: OffsetDateTime,
    pub idle_expires_at: OffsetDateTime,
    pub event: AuthEvent,
}

/// Rotations, served in batches.
pub(crate) struct BatchedRotations;

impl Batch for BatchedRotations {
    type Item = Rotation;
    type Output = RotateOutcome;

    fn serve<'a>(
        db: &'a Database,
        items: &'a [&'a Rotation],
    ) -> impl Future<Output = Result<Vec<RotateOutcome>, Failure>> + Send + 'a {
        rotate_batch(db, items)
    }
}

/// Decides and writes `rotations` in one transaction; their outcomes in order.
async fn rotate_batch(
    db: &Database,
    rotations: &[&Rotation],
) -> Result<Vec<RotateOutcome>, Failure> {
    let tx = db.begin_write().await?;
    let body = async {
        let session_ids: Vec<Uuid> = rotations
            .iter()
            .map(|r| r.session.as_uuid())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let session_ids = padded(session_ids);
        let mut sessions: HashMap<SessionId, Session> = HashMap::new();
        for row in session::Entity::find()
            .filter(session::Column::Id.is_in(session_ids))
            .all(tx.txn())
            .await?
        {
            let session = to_domain(row).map_err(as_db_err)?;
            sessions.insert(session.id, session);
        }
        let presented: Vec<Vec<u8>> = rotations
            .iter()
            .map(|r| r.presented.as_bytes().to_vec())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut tokens: HashMap<Vec<u8>, RefreshRecord> = HashMap::new();
        for row in refresh_token::Entity::find()
            .filter(refresh_token::Column::TokenHash.is_in(padded(presented)))
            .all(tx.txn())
            .await?
        {
            let hash = row.token_hash.clone();
            tokens.insert(hash, token_record(&row).map_err(as_db_err)?);
        }

        let mut outcomes = Vec::with_capacity(rotations.len());
        let mut touched: HashSet<SessionId> = HashSet::new();
        let mut token_rows = Vec::new();
        let mut events = Vec::new();
        for rotation in rotations {
            let hash = rotation.presented.as_bytes();
            // Decided on the rows as earlier rotations of this batch left them.
            let outcome = decide_rotation(
                rotation.session,
                sessions.get(&rotation.session),
                tokens.get(hash),
                rotation.now,
            );
            outcomes.push(outcome);
            if outcome != RotateOutcome::Rotated {
                continue;
            }
            if let Some(session) = sessions.get_mut(&rotation.session) {
                session.record_use(rotation.now, rotation.idle_expires_at);
            }
            if let Some(token) = tokens.get_mut(hash) {
                token.rotated_at = Some(rotation.now);
                token_rows.push(refresh_token::ActiveModel {
                    token_hash: Set(hash.to_vec()),
                    session_id: Set(rotation.session.as_uuid()),
                    created_at: Set(to_millis(token.created_at)),
                    rotated_at: Set(Some(to_millis(rotation.now))),
                });
            }
            touched.insert(rotation.session);
            token_rows.push(refresh_token::ActiveModel {
                token_hash: Set(rotation.next.as_bytes().to_vec()),
                session_id: Set(rotation.session.as_uuid()),
                created_at: Set(to_millis(rotation.now)),
                rotated_at: Set(None),
            });
            events.push(event_row(&rotation.event));
        }
        if touched.is_empty() {
            return Ok(Decision::Rollback(outcomes));
        }

        // Existing rows get their new times; new tokens are inserted.
        let session_rows: Vec<_> = touched
            .iter()
            .filter_map(|id| sessions.get(id))
            .map(session_row)
            .collect();
        session::Entity::insert_many(padded(session_rows))
            .on_conflict(
                OnConflict::column(session::Column::Id)
                    .update_columns([session::Column::LastUsedAt, session::Column::IdleExpiresAt])
                    .to_owned(),
            )
            .exec_without_returning(tx.txn())
            .await?;
        refresh_token::Entity::insert_many(padded(token_rows))
            .on_conflict(
                OnConflict::column(refresh_token::Column::TokenHash)
                    .update_column(refresh_token::Column::RotatedAt)
                    .to_owned(),
            )
            .exec_without_returning(tx.txn())
            .await?;
        // A padding copy of an event is the same id again: skipped.
        auth_event::Entity::insert_many(padded(events))
            .on_conflict(
                OnConflict::column(auth_event::Column::Id)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(tx.txn())
            .await?;
        Ok::<_, DbErr>(Decision::Commit(outcomes))
    }
    .await;
    tx.settle(body).await
}

/// A row the domain refuses, as the transaction's error (the batch fails).
fn as_db_err(error: Failure) -> DbErr {
    DbErr::Custom(error.to_string())
}
