//! `AuthEventRepository` over sea-orm, and the helper other repositories use
//! to store an event inside their own transaction.

use async_trait::async_trait;
use portcullis_domain::audit::{
    AuthEvent, AuthEventKind, AuthEventRepository, EventQuery, Outcome,
};
use portcullis_domain::error::Failure;
use portcullis_domain::ids::SessionId;
use portcullis_domain::ids::UserId;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::Database;
use super::convert::{from_millis, to_millis};
use super::entity::auth_event;
use super::error::{corrupt, store_error};
use super::write::Decision;

/// The audit trail in `auth_events`. Append-only: no update, and no delete
/// but the retention purge.
#[derive(Clone)]
pub struct SeaOrmAuthEventRepository {
    db: Database,
}

impl SeaOrmAuthEventRepository {
    pub(crate) fn new(db: Database) -> Self {
        Self { db }
    }
}

/// Bounds a stored string; attacker-controlled text never grows a row.
fn bounded(value: Option<&str>, max: usize) -> Option<String> {
    value.map(|v| portcullis_domain::context::encode_untrusted(v, max))
}

pub(crate) fn row(event: &AuthEvent) -> auth_event::ActiveModel {
    auth_event::ActiveModel {
        id: Set(event.id),
        occurred_at: Set(to_millis(event.at)),
        kind: Set(event.kind.as_str().to_owned()),
        outcome: Set(event.outcome.as_str().to_owned()),
        user_id: Set(event.user_id.map(|id| id.as_uuid())),
        session_id: Set(event.session_id.map(|id| id.as_uuid())),
        client_ip: Set(bounded(event.client_ip.as_deref(), 64)),
        user_agent: Set(bounded(event.user_agent.as_deref(), 256)),
        request_id: Set(bounded(event.request_id.as_deref(), 64)),
        trace_id: Set(bounded(event.trace_id.as_deref(), 32)),
        detail: Set(bounded(event.detail.as_deref(), AuthEvent::MAX_DETAIL)),
    }
}

/// Most rows per `INSERT`: at 11 parameters a row this stays far below the
/// bound on parameters per statement (SQLite 32766, PostgreSQL 65535).
const ROWS_PER_INSERT: usize = 500;

/// Stores `events` on `conn` (a transaction of the caller's).
pub(crate) async fn insert_events<C: ConnectionTrait>(
    conn: &C,
    events: &[AuthEvent],
) -> Result<(), DbErr> {
    for chunk in events.chunks(ROWS_PER_INSERT) {
        auth_event::Entity::insert_many(chunk.iter().map(row))
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

pub(crate) fn to_domain(model: auth_event::Model) -> Result<AuthEvent, Failure> {
    Ok(AuthEvent {
        id: model.id,
        at: from_millis(model.occurred_at)?,
        kind: AuthEventKind::parse(&model.kind).ok_or_else(|| corrupt("unknown event kind"))?,
        outcome: Outcome::parse(&model.outcome).ok_or_else(|| corrupt("unknown event outcome"))?,
        user_id: model.user_id.map(UserId::from_uuid),
        session_id: model.session_id.map(SessionId::from_uuid),
        client_ip: model.client_ip,
        user_agent: model.user_agent,
        request_id: model.request_id,
        trace_id: model.trace_id,
        detail: model.detail,
    })
}

#[async_trait]
impl AuthEventRepository for SeaOrmAuthEventRepository {
    async fn append(&self, events: &[AuthEvent]) -> Result<(), Failure> {
        if events.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write().await?;
        let body = async {
            insert_events(tx.txn(), events).await?;
            Ok(Decision::Commit(()))
        }
        .await;
        tx.settle(body).await
    }

    async fn query(&self, query: &EventQuery) -> Result<Vec<AuthEvent>, Failure> {
        let mut select = auth_event::Entity::find();
        if let Some(user) = query.user_id {
            select = select.filter(auth_event::Column::UserId.eq(user.as_uuid()));
        }
        if !query.kinds.is_empty() {
            select = select
                .filter(auth_event::Column::Kind.is_in(query.kinds.iter().map(|k| k.as_str())));
        }
        if let Some(ip) = &query.client_ip {
            select = select.filter(auth_event::Column::ClientIp.eq(ip.as_str()));
        }
        if let Some(since) = query.since {
            select = select.filter(auth_event::Column::OccurredAt.gte(to_millis(since)));
        }
        if let Some(until) = query.until {
            select = select.filter(auth_event::Column::OccurredAt.lt(to_millis(until)));
        }
        if let Some(before) = query.before {
            select = select.filter(auth_event::Column::Id.lt(before));
        }
        select
            .order_by_desc(auth_event::Column::Id)
            .limit(query.limit)
            .all(self.db.bounded())
            .await
            .map_err(store_error)?
            .into_iter()
            .map(to_domain)
            .collect()
    }

    async fn purge_before(&self, cutoff: OffsetDateTime, limit: u64) -> Result<u64, Failure> {
        let before = to_millis(cutoff);
        let tx = self.db.begin_write().await?;
        let body = async {
            // Oldest first through `ix_auth_events_occurred_at`, a bounded
            // batch per statement, so a purge never holds the writer long.
            let ids: Vec<Uuid> = auth_event::Entity::find()
                .select_only()
                .column(auth_event::Column::Id)
                .filter(auth_event::Column::OccurredAt.lt(before))
                .order_by_asc(auth_event::Column::OccurredAt)
                .limit(limit)
                .into_tuple()
                .all(tx.txn())
                .await?;
            if ids.is_empty() {
                return Ok(Decision::Rollback(0));
            }
            let deleted = auth_event::Entity::delete_many()
                .filter(auth_event::Column::Id.is_in(ids))
                .exec(tx.txn())
                .await?;
            Ok(Decision::Commit(deleted.rows_affected))
        }
        .await;
        tx.settle(body).await
    }
}
