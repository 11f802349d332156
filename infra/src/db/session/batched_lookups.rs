//! Refresh-token lookups on SQLite, served in batches.
//!
//! Each refresh first reads the presented token and its session. On SQLite
//! that read is served with the others queued at the same time: one
//! `SELECT ... WHERE token_hash IN (...)` joined to `sessions` (see
//! `batch_queue.rs` for why). Each lookup sees the rows as they are when its batch
//! runs, which is after the request arrived, exactly as a query of its own
//! would. On PostgreSQL each lookup runs alone ([`find_one`]), with the same
//! query.

use std::collections::HashMap;
use std::future::Future;

use portcullis_domain::error::Failure;
use portcullis_domain::session::TokenHash;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::db::Database;
use crate::db::batch_queue::{Batch, padded};
use crate::db::entity::{refresh_token, session};
use crate::db::error::{corrupt, store_error};

/// A token's row and its session's row, if the token is known.
pub(crate) type Found = Option<(refresh_token::Model, session::Model)>;

/// Refresh-token lookups, served in batches.
pub(crate) struct BatchedLookups;

impl Batch for BatchedLookups {
    type Item = TokenHash;
    type Output = Found;

    fn serve<'a>(
        db: &'a Database,
        items: &'a [&'a TokenHash],
    ) -> impl Future<Output = Result<Vec<Found>, Failure>> + Send + 'a {
        find_batch(db, items)
    }
}

/// One lookup, without the queue.
pub(crate) async fn find_one(db: &Database, hash: &TokenHash) -> Result<Found, Failure> {
    Ok(find_batch(db, &[hash]).await?.pop().flatten())
}

async fn find_batch(db: &Database, hashes: &[&TokenHash]) -> Result<Vec<Found>, Failure> {
    let wanted: Vec<Vec<u8>> = hashes.iter().map(|hash| hash.as_bytes().to_vec()).collect();
    let rows = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.is_in(padded(wanted)))
        .find_also_related(session::Entity)
        .all(db.bounded())
        .await
        .map_err(store_error)?;
    let mut found: HashMap<Vec<u8>, (refresh_token::Model, session::Model)> =
        HashMap::with_capacity(rows.len());
    for (token, session) in rows {
        // The foreign key guarantees the session; its absence is corruption.
        let session = session.ok_or_else(|| corrupt("refresh token without a session"))?;
        found.insert(token.token_hash.clone(), (token, session));
    }
    Ok(hashes
        .iter()
        .map(|hash| found.get(hash.as_bytes()).cloned())
        .collect())
}
