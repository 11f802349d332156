//! Rotations and grace replays done one at a time, each in its own
//! transaction under the session's lock: on PostgreSQL the session's row
//! lock (`SELECT ... FOR UPDATE`), on SQLite `BEGIN IMMEDIATE`. Used for
//! every rotation on PostgreSQL and for every grace replay (rare) on both;
//! SQLite's rotations go through `batched_rotations.rs`. Each decides with
//! the domain's rule, so a session keeps one current refresh token.

use portcullis_domain::audit::AuthEvent;
use portcullis_domain::error::Failure;
use portcullis_domain::ids::SessionId;
use portcullis_domain::session::{
    RefreshDecision, RefreshRecord, RotateOutcome, Session, Supersession, TokenHash,
    decide_refresh, decide_rotation,
};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect};
use time::OffsetDateTime;

use super::{insert_token, to_domain, token_record, touch_if_active};
use crate::db::Database;
use crate::db::convert::to_millis;
use crate::db::entity::{refresh_token, session};
use crate::db::event_repository::insert_events;
use crate::db::write::Decision;

/// `SessionRepository::rotate`, one rotation in its own transaction.
pub(super) async fn rotate(
    db: &Database,
    session: SessionId,
    presented: &TokenHash,
    next: &TokenHash,
    now: OffsetDateTime,
    idle_expires_at: OffsetDateTime,
    event: &AuthEvent,
) -> Result<RotateOutcome, Failure> {
    let tx = db.begin_write().await?;
    let body = async {
        // The session's row lock serialises concurrent rotations of it.
        let (stored, token) = locked_rows(tx.txn(), session, presented).await?;
        let outcome = decide_rotation(session, stored.as_ref(), token.as_ref(), now);
        if outcome != RotateOutcome::Rotated {
            return Ok(Decision::Rollback(outcome));
        }
        touch_if_active(tx.txn(), session, now, idle_expires_at).await?;
        refresh_token::Entity::update_many()
            .col_expr(
                refresh_token::Column::RotatedAt,
                Expr::value(to_millis(now)),
            )
            .filter(refresh_token::Column::TokenHash.eq(presented.as_bytes().to_vec()))
            .exec(tx.txn())
            .await?;
        insert_token(tx.txn(), session, next, now).await?;
        insert_events(tx.txn(), std::slice::from_ref(event)).await?;
        Ok(Decision::Commit(RotateOutcome::Rotated))
    }
    .await;
    tx.settle(body).await
}

/// `SessionRepository::supersede`.
pub(super) async fn supersede(
    db: &Database,
    replay: Supersession<'_>,
) -> Result<RefreshDecision, Failure> {
    let Supersession {
        session,
        presented,
        next,
        now,
        idle_expires_at,
        grace,
        event,
    } = replay;
    let tx = db.begin_write().await?;
    let body = async {
        // Under the session's row lock, like a rotation, so the two
        // cannot interleave and leave two current tokens.
        let (stored, token) = locked_rows(tx.txn(), session, presented).await?;
        let decision = decide_refresh(session, stored.as_ref(), token.as_ref(), now, grace);
        if decision != RefreshDecision::GraceReplay {
            return Ok(Decision::Rollback(decision));
        }
        touch_if_active(tx.txn(), session, now, idle_expires_at).await?;
        // Every current token of the session: there is one.
        refresh_token::Entity::update_many()
            .col_expr(
                refresh_token::Column::RotatedAt,
                Expr::value(to_millis(now)),
            )
            .filter(refresh_token::Column::SessionId.eq(session.as_uuid()))
            .filter(refresh_token::Column::RotatedAt.is_null())
            .exec(tx.txn())
            .await?;
        insert_token(tx.txn(), session, next, now).await?;
        insert_events(tx.txn(), std::slice::from_ref(event)).await?;
        Ok(Decision::Commit(RefreshDecision::GraceReplay))
    }
    .await;
    tx.settle(body).await
}

/// The session (row-locked on PostgreSQL; SQLite's `BEGIN IMMEDIATE`
/// already excludes other writers) and the presented token, as stored.
async fn locked_rows<C: ConnectionTrait>(
    db: &C,
    session: SessionId,
    presented: &TokenHash,
) -> Result<(Option<Session>, Option<RefreshRecord>), DbErr> {
    let stored = session::Entity::find_by_id(session.as_uuid())
        .lock_exclusive()
        .one(db)
        .await?
        .map(to_domain)
        .transpose()
        .map_err(|e| DbErr::Custom(e.to_string()))?;
    let token = refresh_token::Entity::find_by_id(presented.as_bytes().to_vec())
        .one(db)
        .await?
        .map(|row| token_record(&row))
        .transpose()
        .map_err(|e| DbErr::Custom(e.to_string()))?;
    Ok((stored, token))
}
