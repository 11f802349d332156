//! Sign-ups on SQLite, committed in batches.
//!
//! One by one, a sign-up is six statements (begin, the user, the session,
//! its first refresh token, the audit event, commit), each two thread
//! hand-offs to sqlx's connection thread, and during a sign-up flood each
//! hand-off preempts a password hash (see `session/batched_openings.rs`).
//! Here one task takes every sign-up queued and writes them in one
//! transaction: per power-of-two chunk, one multi-row
//! `INSERT ... ON CONFLICT(email) DO NOTHING RETURNING id` for the users, so
//! the unique index still decides who owns an address, then the openings of
//! the users that were inserted. Rows are inserted in arrival order, so of
//! two sign-ups for one address in a batch the first wins and the second
//! hears `EmailTaken`, exactly as one by one. A batch that fails otherwise
//! (the database is gone) fails every sign-up in it and commits none.
//!
//! Not used on PostgreSQL: there sign-ups run in parallel.

use std::collections::HashSet;
use std::future::Future;

use portcullis_domain::error::Failure;
use portcullis_domain::user::User;
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, EntityTrait, TryInsertResult};

use super::Database;
use super::batch_queue::{Batch, power_of_two_chunks};
use super::convert::to_millis;
use super::entity::user;
use super::session::{Opening, insert_openings};
use super::write::Decision;

/// One sign-up: the user and the opening of their first session.
pub(crate) struct SignUpRow {
    pub user: User,
    pub opening: Opening,
}

/// Sign-ups, served in batches; each answers whether its user was inserted
/// (`false`: the email was taken).
pub(crate) struct BatchedSignUps;

impl Batch for BatchedSignUps {
    type Item = SignUpRow;
    type Output = bool;

    fn serve<'a>(
        db: &'a Database,
        items: &'a [&'a SignUpRow],
    ) -> impl Future<Output = Result<Vec<bool>, Failure>> + Send + 'a {
        sign_up_batch(db, items)
    }
}

pub(crate) fn user_row(user: &User) -> user::ActiveModel {
    user::ActiveModel {
        id: Set(user.id.as_uuid()),
        email: Set(user.email.as_str().to_owned()),
        password_hash: Set(user.password_hash.as_str().to_owned()),
        created_at: Set(to_millis(user.created_at)),
        updated_at: Set(to_millis(user.updated_at)),
    }
}

async fn sign_up_batch(db: &Database, rows: &[&SignUpRow]) -> Result<Vec<bool>, Failure> {
    let tx = db.begin_write().await?;
    let body = async {
        let mut inserted: HashSet<Uuid> = HashSet::with_capacity(rows.len());
        for chunk in power_of_two_chunks(rows) {
            let outcome = user::Entity::insert_many(chunk.iter().map(|row| user_row(&row.user)))
                .on_conflict(
                    OnConflict::column(user::Column::Email)
                        .do_nothing()
                        .to_owned(),
                )
                .try_insert()
                .exec_with_returning_keys(tx.txn())
                .await?;
            if let TryInsertResult::Inserted(ids) = outcome {
                inserted.extend(ids);
            }
        }
        let opened: Vec<&_> = rows
            .iter()
            .filter(|row| inserted.contains(&row.user.id.as_uuid()))
            .map(|row| &row.opening)
            .collect();
        insert_openings(tx.txn(), &opened).await?;
        let answers: Vec<bool> = rows
            .iter()
            .map(|row| inserted.contains(&row.user.id.as_uuid()))
            .collect();
        Ok(Decision::Commit(answers))
    }
    .await;
    tx.settle(body).await
}
