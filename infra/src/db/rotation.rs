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
//! exactly as the one-by-one path does, then write the winners with
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

use super::Database;
use super::batch::{Batch, padded};
use super::convert::to_millis;
use super::entity::{auth_event, refresh_token, session};
use super::event_repository::row as event_row;
use super::write::Decision;
use portcullis_domain::audit::AuthEvent;
use portcullis_domain::error::Failure;
use portcullis_domain::session::{RotateOutcome, TokenHash};
use portcullis_domain::ids::SessionId;
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter};
use time::OffsetDateTime;

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
pub(crate) struct Rotations;

impl Batch for Rotations {
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
        let mut sessions: HashMap<Uuid, session::Model> = session::Entity::find()
            .filter(session::Column::Id.is_in(session_ids))
            .all(tx.txn())
            .await?
            .into_iter()
            .map(|row| (row.id, row))
            .collect();
        let presented: Vec<Vec<u8>> = rotations
            .iter()
            .map(|r| r.presented.as_bytes().to_vec())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let tokens: HashMap<Vec<u8>, refresh_token::Model> = refresh_token::Entity::find()
            .filter(refresh_token::Column::TokenHash.is_in(padded(presented)))
            .all(tx.txn())
            .await?
            .into_iter()
            .map(|row| (row.token_hash.clone(), row))
            .collect();

        let mut outcomes = Vec::with_capacity(rotations.len());
        let mut claimed: HashSet<&[u8]> = HashSet::new();
        let mut touched: HashSet<Uuid> = HashSet::new();
        let mut token_rows = Vec::new();
        let mut events = Vec::new();
        for rotation in rotations {
            let now = to_millis(rotation.now);
            let id = rotation.session.as_uuid();
            // As the one-by-one path: the session must be active (as earlier
            // rotations of this batch left it), then the token unrotated.
            let Some(row) = sessions.get_mut(&id).filter(|row| {
                row.revoked_at.is_none()
                    && row.idle_expires_at > now
                    && row.absolute_expires_at > now
            }) else {
                outcomes.push(RotateOutcome::SessionInactive);
                continue;
            };
            let hash = rotation.presented.as_bytes();
            let token = tokens.get(hash).filter(|token| {
                token.session_id == id && token.rotated_at.is_none() && !claimed.contains(hash)
            });
            let Some(token) = token else {
                outcomes.push(RotateOutcome::AlreadyRotated);
                continue;
            };
            claimed.insert(hash);
            row.last_used_at = now;
            row.idle_expires_at = to_millis(rotation.idle_expires_at);
            touched.insert(id);
            token_rows.push(refresh_token::ActiveModel {
                token_hash: Set(token.token_hash.clone()),
                session_id: Set(id),
                created_at: Set(token.created_at),
                rotated_at: Set(Some(now)),
            });
            token_rows.push(refresh_token::ActiveModel {
                token_hash: Set(rotation.next.as_bytes().to_vec()),
                session_id: Set(id),
                created_at: Set(now),
                rotated_at: Set(None),
            });
            events.push(event_row(&rotation.event));
            outcomes.push(RotateOutcome::Rotated);
        }
        if touched.is_empty() {
            return Ok(Decision::Rollback(outcomes));
        }

        // Existing rows get their new times; new tokens are inserted.
        let session_rows: Vec<_> = touched
            .iter()
            .filter_map(|id| sessions.remove(id))
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

/// Every column of a session row, for the upsert.
fn session_row(row: session::Model) -> session::ActiveModel {
    session::ActiveModel {
        id: Set(row.id),
        user_id: Set(row.user_id),
        created_at: Set(row.created_at),
        last_used_at: Set(row.last_used_at),
        idle_expires_at: Set(row.idle_expires_at),
        absolute_expires_at: Set(row.absolute_expires_at),
        revoked_at: Set(row.revoked_at),
        revoked_reason: Set(row.revoked_reason),
        user_agent: Set(row.user_agent),
        client_ip: Set(row.client_ip),
    }
}
