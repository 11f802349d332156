//! Session openings (log-in) on SQLite, committed in batches.
//!
//! Opened one by one, a session is five statements (begin, the session, its
//! first refresh token, the audit event, commit), each two thread hand-offs
//! to sqlx's connection thread. During a log-in flood every hand-off
//! preempts a password hash on the same cores: measured with `perf`, the
//! server spent a seventh of its CPU outside argon2, most of it in the
//! scheduler. Here one task takes every opening queued and writes them all in
//! one transaction, with one multi-row statement per table and per
//! power-of-two chunk of the batch (so sqlx's per-connection statement cache
//! holds seven sizes, not one per batch size; openings insert new rows, so
//! the batch is split rather than padded with repeats).
//!
//! Every opening is a new session with random ids and a fresh random token:
//! nothing in a batch can conflict with anything else, so a batch that fails
//! (the database is gone) fails every opening in it and commits none, which
//! is what each would have seen alone. Not used on PostgreSQL: there openings
//! run in parallel.

use std::future::Future;

use portcullis_domain::audit::AuthEvent;
use portcullis_domain::error::Failure;
use portcullis_domain::session::{Session, TokenHash};
use sea_orm::ActiveValue::Set;
use sea_orm::EntityTrait;

use super::session_row;
use crate::db::Database;
use crate::db::batch_queue::Batch;
use crate::db::convert::to_millis;
use crate::db::entity::{auth_event, refresh_token, session};
use crate::db::event_repository::row as event_row;
use crate::db::write::Decision;

/// One opening, as `SessionRepository::create` describes it, owned.
pub(crate) struct Opening {
    pub session: Session,
    pub first_token: TokenHash,
    pub event: AuthEvent,
}

/// Openings, served in batches.
pub(crate) struct BatchedOpenings;

impl Batch for BatchedOpenings {
    type Item = Opening;
    type Output = ();

    fn serve<'a>(
        db: &'a Database,
        items: &'a [&'a Opening],
    ) -> impl Future<Output = Result<Vec<()>, Failure>> + Send + 'a {
        open_batch(db, items)
    }
}

async fn open_batch(db: &Database, openings: &[&Opening]) -> Result<Vec<()>, Failure> {
    let tx = db.begin_write().await?;
    let body = async {
        for chunk in power_of_two_chunks(openings) {
            session::Entity::insert_many(chunk.iter().map(|o| session_row(&o.session)))
                .exec_without_returning(tx.txn())
                .await?;
            refresh_token::Entity::insert_many(chunk.iter().map(|o| refresh_token::ActiveModel {
                token_hash: Set(o.first_token.as_bytes().to_vec()),
                session_id: Set(o.session.id.as_uuid()),
                created_at: Set(to_millis(o.session.created_at)),
                rotated_at: Set(None),
            }))
            .exec_without_returning(tx.txn())
            .await?;
            auth_event::Entity::insert_many(chunk.iter().map(|o| event_row(&o.event)))
                .exec_without_returning(tx.txn())
                .await?;
        }
        Ok(Decision::Commit(vec![(); openings.len()]))
    }
    .await;
    tx.settle(body).await
}

/// `items` in chunks whose lengths are powers of two, largest first
/// (13 items: 8, 4, 1).
fn power_of_two_chunks<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if items.is_empty() {
            return None;
        }
        let size = 1 << items.len().ilog2();
        let (chunk, rest) = items.split_at(size);
        items = rest;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::power_of_two_chunks;

    #[test]
    fn batches_split_into_power_of_two_chunks() {
        let sizes = |n: usize| {
            let items: Vec<usize> = (0..n).collect();
            power_of_two_chunks(&items)
                .map(<[usize]>::len)
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), vec![1]);
        assert_eq!(sizes(13), vec![8, 4, 1]);
        assert_eq!(sizes(64), vec![64]);
        assert_eq!(sizes(63), vec![32, 16, 8, 4, 2, 1]);
        let items: Vec<usize> = (0..13).collect();
        let flat: Vec<usize> = power_of_two_chunks(&items).flatten().copied().collect();
        assert_eq!(flat, items, "every item once, in order");
    }
}
