//! The transactional outbox of email: messages are written by the
//! repositories in the transaction of the change that causes them
//! ([`enqueue`]), and the delivery worker claims, delivers and settles them
//! through [`SeaOrmOutbox`].
//!
//! Claiming moves a message's `next_attempt_at` a lease ahead inside a
//! transaction that locks the rows it claims (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL; the write gate on SQLite), so two instances never deliver the
//! same message at once; an instance that dies mid-delivery leaves it to be
//! claimed again when the lease runs out. Delivery is at least once.
//!
//! Once a message is sent, expired or given up on, its payload (which may
//! hold a one-time token) is set to NULL.

use portcullis_domain::email::Email;
use portcullis_domain::error::Failure;
use portcullis_domain::ids::UserId;
use portcullis_domain::mail::{Mail, MailKind};
use portcullis_domain::one_time::OneTimeToken;
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::Database;
use super::convert::{from_millis, to_millis};
use super::entity::email_outbox;
use super::error::{corrupt, store_error};
use super::write::Decision;

const PENDING: &str = "pending";
const SENT: &str = "sent";
const EXPIRED: &str = "expired";
const FAILED: &str = "failed";

/// What a message needs beyond its kind and recipient.
#[derive(Serialize, Deserialize)]
struct Payload {
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new_email: Option<String>,
}

/// Queues `mail` inside the caller's transaction `db`.
pub(crate) async fn enqueue<C: ConnectionTrait>(db: &C, mail: &[Mail]) -> Result<(), DbErr> {
    for message in mail {
        let payload = Payload {
            token: message.token.as_ref().map(|t| t.expose().to_owned()),
            new_email: message.new_email.as_ref().map(|e| e.as_str().to_owned()),
        };
        let payload = serde_json::to_string(&payload)
            .map_err(|error| DbErr::Custom(format!("outbox payload: {error}")))?;
        let now = to_millis(OffsetDateTime::now_utc());
        let row = email_outbox::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(message.user.as_uuid()),
            kind: Set(message.kind.as_str().to_owned()),
            recipient: Set(message.to.as_str().to_owned()),
            payload: Set(Some(payload)),
            created_at: Set(now),
            expires_at: Set(to_millis(message.expires_at)),
            attempts: Set(0),
            next_attempt_at: Set(now),
            status: Set(PENDING.to_owned()),
            sent_at: Set(None),
            last_error: Set(None),
        };
        email_outbox::Entity::insert(row)
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// Scrubs the undelivered messages of `user` that carry a token (the
/// account is going; its links would lead nowhere), inside `db`.
pub(crate) async fn drop_links_of<C: ConnectionTrait>(db: &C, user: UserId) -> Result<(), DbErr> {
    email_outbox::Entity::update_many()
        .col_expr(email_outbox::Column::Status, Expr::value(EXPIRED))
        .col_expr(email_outbox::Column::Payload, Expr::value(None::<String>))
        .filter(email_outbox::Column::UserId.eq(user.as_uuid()))
        .filter(email_outbox::Column::Status.eq(PENDING))
        .filter(
            email_outbox::Column::Kind.is_in(
                [
                    MailKind::VerifyEmail,
                    MailKind::ResetPassword,
                    MailKind::ConfirmEmailChange,
                ]
                .map(MailKind::as_str),
            ),
        )
        .exec(db)
        .await?;
    Ok(())
}

/// A claimed message, ready to render and deliver.
#[derive(Debug)]
pub struct Claimed {
    pub id: Uuid,
    pub mail: Mail,
    /// Attempts before this one.
    pub attempts: u32,
    pub created_at: OffsetDateTime,
}

/// Counts of the outbox, for the gauge and the tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub pending: u64,
    pub sent: u64,
    pub expired: u64,
    pub failed: u64,
}

/// The delivery worker's view of the outbox.
#[derive(Clone)]
pub struct SeaOrmOutbox {
    db: Database,
}

impl SeaOrmOutbox {
    pub(crate) fn new(db: Database) -> Self {
        Self { db }
    }

    /// Claims up to `limit` messages due at `now` for `lease`. Messages past
    /// their expiry are settled as expired instead (and scrubbed). Claims
    /// nothing while a request of this process is writing (SQLite): mail can
    /// wait half a second, a request should not.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn claim(
        &self,
        now: OffsetDateTime,
        lease: time::Duration,
        limit: u64,
    ) -> Result<Vec<Claimed>, Failure> {
        let now_ms = to_millis(now);
        // A read first, without the write gate: an idle outbox (the usual
        // case) never queues behind, or holds up, the writers of requests.
        let due: Option<Uuid> = email_outbox::Entity::find()
            .select_only()
            .column(email_outbox::Column::Id)
            .filter(email_outbox::Column::Status.eq(PENDING))
            .filter(email_outbox::Column::NextAttemptAt.lte(now_ms))
            .into_tuple()
            .one(self.db.bounded())
            .await
            .map_err(store_error)?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let Some(tx) = self.db.begin_write_if_free().await? else {
            return Ok(Vec::new());
        };
        let body = async {
            let rows = email_outbox::Entity::find()
                .filter(email_outbox::Column::Status.eq(PENDING))
                .filter(email_outbox::Column::NextAttemptAt.lte(now_ms))
                .order_by_asc(email_outbox::Column::NextAttemptAt)
                .limit(limit)
                .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
                .all(tx.txn())
                .await?;
            if rows.is_empty() {
                return Ok(Decision::Rollback(Vec::new()));
            }
            let (expired, live): (Vec<_>, Vec<_>) =
                rows.into_iter().partition(|row| row.expires_at <= now_ms);
            if !expired.is_empty() {
                settle_rows(tx.txn(), expired.iter().map(|r| r.id), EXPIRED, None, None).await?;
            }
            if !live.is_empty() {
                email_outbox::Entity::update_many()
                    .col_expr(
                        email_outbox::Column::NextAttemptAt,
                        Expr::value(to_millis(now + lease)),
                    )
                    .filter(email_outbox::Column::Id.is_in(live.iter().map(|r| r.id)))
                    .exec(tx.txn())
                    .await?;
            }
            Ok(Decision::Commit(live))
        }
        .await;
        let rows = tx.settle(body).await?;
        rows.into_iter().map(claimed).collect()
    }

    /// Records a delivery: status `sent`, payload scrubbed.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn sent(&self, id: Uuid, now: OffsetDateTime) -> Result<(), Failure> {
        self.settle(id, SENT, Some(now), None).await
    }

    /// Records a failed attempt to be retried at `retry_at`.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn retry(
        &self,
        id: Uuid,
        attempts: u32,
        retry_at: OffsetDateTime,
        error: &str,
    ) -> Result<(), Failure> {
        let _gate = self.db.write_gate().await;
        email_outbox::Entity::update_many()
            .col_expr(
                email_outbox::Column::Attempts,
                Expr::value(i32::try_from(attempts).unwrap_or(i32::MAX)),
            )
            .col_expr(
                email_outbox::Column::NextAttemptAt,
                Expr::value(to_millis(retry_at)),
            )
            .col_expr(email_outbox::Column::LastError, Expr::value(bounded(error)))
            .filter(email_outbox::Column::Id.eq(id))
            .filter(email_outbox::Column::Status.eq(PENDING))
            .exec(self.db.bounded())
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Gives up on a message (the server refused it for good): status
    /// `failed`, payload scrubbed.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn failed(&self, id: Uuid, error: &str) -> Result<(), Failure> {
        self.settle(id, FAILED, None, Some(error)).await
    }

    /// Deletes up to `limit` settled messages (sent, expired, failed; their
    /// payloads are already scrubbed) created before `before`; how many went.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn purge_settled(&self, before: OffsetDateTime, limit: u64) -> Result<u64, Failure> {
        let tx = self.db.begin_write().await?;
        let body = async {
            let ids: Vec<Uuid> = email_outbox::Entity::find()
                .select_only()
                .column(email_outbox::Column::Id)
                .filter(email_outbox::Column::Status.ne(PENDING))
                .filter(email_outbox::Column::CreatedAt.lt(to_millis(before)))
                .limit(limit)
                .into_tuple()
                .all(tx.txn())
                .await?;
            if ids.is_empty() {
                return Ok(Decision::Rollback(0));
            }
            let deleted = email_outbox::Entity::delete_many()
                .filter(email_outbox::Column::Id.is_in(ids))
                .exec(tx.txn())
                .await?;
            Ok(Decision::Commit(deleted.rows_affected))
        }
        .await;
        tx.settle(body).await
    }

    /// How many messages are in each state.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn counts(&self) -> Result<OutboxCounts, Failure> {
        let rows: Vec<(String, i64)> = email_outbox::Entity::find()
            .select_only()
            .column(email_outbox::Column::Status)
            .column_as(email_outbox::Column::Id.count(), "n")
            .group_by(email_outbox::Column::Status)
            .into_tuple()
            .all(self.db.bounded())
            .await
            .map_err(store_error)?;
        let mut counts = OutboxCounts::default();
        for (status, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            match status.as_str() {
                PENDING => counts.pending = n,
                SENT => counts.sent = n,
                EXPIRED => counts.expired = n,
                FAILED => counts.failed = n,
                _ => {}
            }
        }
        Ok(counts)
    }

    async fn settle(
        &self,
        id: Uuid,
        status: &'static str,
        sent_at: Option<OffsetDateTime>,
        error: Option<&str>,
    ) -> Result<(), Failure> {
        let _gate = self.db.write_gate().await;
        settle_rows(self.db.bounded(), [id], status, sent_at, error)
            .await
            .map_err(store_error)
    }
}

/// Ends the messages `ids` with `status`, scrubbing their payloads.
async fn settle_rows<C: ConnectionTrait>(
    db: &C,
    ids: impl IntoIterator<Item = Uuid>,
    status: &'static str,
    sent_at: Option<OffsetDateTime>,
    error: Option<&str>,
) -> Result<(), DbErr> {
    let mut update = email_outbox::Entity::update_many()
        .col_expr(email_outbox::Column::Status, Expr::value(status))
        .col_expr(email_outbox::Column::Payload, Expr::value(None::<String>))
        .col_expr(
            email_outbox::Column::SentAt,
            Expr::value(sent_at.map(to_millis)),
        );
    if let Some(error) = error {
        update = update.col_expr(email_outbox::Column::LastError, Expr::value(bounded(error)));
    }
    update
        .filter(email_outbox::Column::Id.is_in(ids))
        .filter(email_outbox::Column::Status.eq(PENDING))
        .exec(db)
        .await?;
    Ok(())
}

/// An error text cut to the column's width, on a character boundary.
fn bounded(error: &str) -> String {
    error.chars().take(500).collect()
}

fn claimed(row: email_outbox::Model) -> Result<Claimed, Failure> {
    let kind = MailKind::parse(&row.kind).ok_or_else(|| corrupt("outbox kind"))?;
    let payload: Payload = match &row.payload {
        Some(json) => serde_json::from_str(json).map_err(|_| corrupt("outbox payload"))?,
        None => return Err(corrupt("pending outbox message without payload")),
    };
    let token = payload
        .token
        .map(|t| OneTimeToken::parse(&t).map_err(|_| corrupt("outbox token")))
        .transpose()?;
    Ok(Claimed {
        id: row.id,
        mail: Mail {
            kind,
            user: UserId::from_uuid(row.user_id),
            to: Email::from_trusted(row.recipient),
            token,
            new_email: payload.new_email.map(Email::from_trusted),
            expires_at: from_millis(row.expires_at)?,
        },
        attempts: u32::try_from(row.attempts).unwrap_or(0),
        created_at: from_millis(row.created_at)?,
    })
}
