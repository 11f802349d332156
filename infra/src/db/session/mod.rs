//! `SessionRepository` over sea-orm: sessions and their refresh-token digests.
//!
//! Every state change that must not race (rotation, replay within the grace
//! interval, logout everywhere) is one transaction that re-checks its
//! precondition under a lock, so the database decides who wins. A rotation
//! or a grace replay reads the session and the token under the lock (on
//! PostgreSQL the session's row lock, `SELECT ... FOR UPDATE`; on SQLite
//! `BEGIN IMMEDIATE`) and decides with the domain's `decide_rotation` or
//! `decide_refresh`, the one rule of every adapter, so a session keeps one
//! current refresh token. On SQLite, lookups and rotations of concurrent
//! requests are served together: `batched_lookups.rs` and
//! `batched_rotations.rs`; grace replays are rare and go one by one.
//! Every revocation also appends to the feed other instances read, in the
//! same transaction: `revocations.rs`.

use async_trait::async_trait;
use portcullis_domain::amr::AuthMethod;
use portcullis_domain::audit::AuthEvent;
use portcullis_domain::context::ClientInfo;
use portcullis_domain::error::Failure;
use portcullis_domain::ids::SessionId;
use portcullis_domain::ids::UserId;
use portcullis_domain::session::{
    RefreshDecision, RefreshRecord, RevocationCursor, RevocationPage, RevokeReason, RotateOutcome,
    Session, SessionOpening, SessionRepository, Supersession, TokenHash,
};
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use time::OffsetDateTime;

use super::Database;
use super::convert::{from_millis, from_millis_opt, to_millis};
use super::entity::{refresh_token, session};
use super::error::{corrupt, store_error};
use super::event_repository::insert_events;
use super::write::Decision;

mod batched_lookups;
mod batched_rotations;
mod locked;
mod revocations;

pub(crate) use batched_lookups::BatchedLookups;
pub(crate) use batched_rotations::BatchedRotations;
use batched_rotations::Rotation;

/// Sessions in `sessions`, refresh-token digests in `refresh_tokens`.
#[derive(Clone)]
pub struct SeaOrmSessionRepository {
    db: Database,
}

impl SeaOrmSessionRepository {
    pub(crate) fn new(db: Database) -> Self {
        Self { db }
    }
}

#[async_trait]
impl SessionRepository for SeaOrmSessionRepository {
    /// Sessions neither revoked nor expired at `now` (for the gauge).
    ///
    /// # Errors
    /// Storage failures.
    async fn count_active(&self, now: OffsetDateTime) -> Result<u64, Failure> {
        use sea_orm::PaginatorTrait;
        let now = to_millis(now);
        session::Entity::find()
            .filter(session::Column::RevokedAt.is_null())
            .filter(session::Column::IdleExpiresAt.gt(now))
            .filter(session::Column::AbsoluteExpiresAt.gt(now))
            .count(self.db.bounded())
            .await
            .map_err(store_error)
    }

    /// Deletes up to `limit` sessions that ended (revoked, idle-expired or
    /// past their absolute expiry) before `ended_before`, with their refresh
    /// tokens (by the foreign key's cascade); how many went. Their audit
    /// events stay. A refresh token of a deleted session is simply unknown:
    /// the same `invalid_grant` as before.
    ///
    /// # Errors
    /// Storage failures.
    async fn purge_ended(&self, ended_before: OffsetDateTime, limit: u64) -> Result<u64, Failure> {
        let before = to_millis(ended_before);
        let ended = Condition::any()
            .add(session::Column::RevokedAt.lt(before))
            .add(session::Column::IdleExpiresAt.lt(before))
            .add(session::Column::AbsoluteExpiresAt.lt(before));
        let tx = self.db.begin_write().await?;
        let body = async {
            let ids: Vec<Uuid> = session::Entity::find()
                .select_only()
                .column(session::Column::Id)
                .filter(ended)
                .limit(limit)
                .into_tuple()
                .all(tx.txn())
                .await?;
            if ids.is_empty() {
                return Ok(Decision::Rollback(0));
            }
            let deleted = session::Entity::delete_many()
                .filter(session::Column::Id.is_in(ids))
                .exec(tx.txn())
                .await?;
            Ok(Decision::Commit(deleted.rows_affected))
        }
        .await;
        tx.settle(body).await
    }

    async fn create(&self, opening: SessionOpening<'_>) -> Result<(), Failure> {
        let tx = self.db.begin_write().await?;
        let body = async {
            insert_opening(tx.txn(), opening).await?;
            Ok(Decision::Commit(()))
        }
        .await;
        tx.settle(body).await
    }

    async fn find_by_refresh_token(
        &self,
        token: &TokenHash,
    ) -> Result<Option<(RefreshRecord, Session)>, Failure> {
        let found = if self.db.is_sqlite() {
            self.db
                .refresh_lookups()
                .submit(&self.db, token.clone())
                .await?
        } else {
            batched_lookups::find_one(&self.db, token).await?
        };
        let Some((record, session)) = found else {
            return Ok(None);
        };
        Ok(Some((token_record(&record)?, to_domain(session)?)))
    }

    async fn rotate(
        &self,
        session: SessionId,
        presented: &TokenHash,
        next: &TokenHash,
        now: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
        event: &AuthEvent,
    ) -> Result<RotateOutcome, Failure> {
        if self.db.is_sqlite() {
            let rotation = Rotation {
                session,
                presented: presented.clone(),
                next: next.clone(),
                now,
                idle_expires_at,
                event: event.clone(),
            };
            return self.db.rotations().submit(&self.db, rotation).await;
        }
        locked::rotate(
            &self.db,
            session,
            presented,
            next,
            now,
            idle_expires_at,
            event,
        )
        .await
    }

    async fn supersede(&self, replay: Supersession<'_>) -> Result<RefreshDecision, Failure> {
        locked::supersede(&self.db, replay).await
    }

    async fn find(&self, user: UserId, session: SessionId) -> Result<Option<Session>, Failure> {
        session::Entity::find_by_id(session.as_uuid())
            .filter(session::Column::UserId.eq(user.as_uuid()))
            .one(self.db.bounded())
            .await
            .map_err(store_error)?
            .map(to_domain)
            .transpose()
    }

    async fn revoke(
        &self,
        user: UserId,
        session: SessionId,
        now: OffsetDateTime,
        reason: RevokeReason,
        event: &AuthEvent,
    ) -> Result<bool, Failure> {
        let tx = self.db.begin_write().await?;
        let body = async {
            let result = revoke_where(now, reason)
                .filter(session::Column::Id.eq(session.as_uuid()))
                .filter(session::Column::UserId.eq(user.as_uuid()))
                .exec(tx.txn())
                .await?;
            if result.rows_affected == 0 {
                return Ok(Decision::Rollback(false));
            }
            insert_events(tx.txn(), std::slice::from_ref(event)).await?;
            revocations::append(tx.txn(), &[session], now).await?;
            Ok(Decision::Commit(true))
        }
        .await;
        tx.settle(body).await
    }

    async fn revoke_all(
        &self,
        user: UserId,
        except: Option<SessionId>,
        now: OffsetDateTime,
        reason: RevokeReason,
        event: &AuthEvent,
    ) -> Result<Vec<SessionId>, Failure> {
        let tx = self.db.begin_write().await?;
        let body = async {
            let ids = revoke_all_in(tx.txn(), user, except, now, reason).await?;
            if !ids.is_empty() {
                insert_events(tx.txn(), std::slice::from_ref(event)).await?;
                // The feed is appended last, just before the commit.
                revocations::append(tx.txn(), &ids, now).await?;
            }
            Ok(Decision::Commit(ids))
        }
        .await;
        tx.settle(body).await
    }

    async fn list_active(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, Failure> {
        let now = to_millis(now);
        session::Entity::find()
            .filter(session::Column::UserId.eq(user.as_uuid()))
            .filter(session::Column::RevokedAt.is_null())
            .filter(session::Column::IdleExpiresAt.gt(now))
            .filter(session::Column::AbsoluteExpiresAt.gt(now))
            .order_by_desc(session::Column::CreatedAt)
            .order_by_desc(session::Column::Id)
            .all(self.db.bounded())
            .await
            .map_err(store_error)?
            .into_iter()
            .map(to_domain)
            .collect()
    }

    async fn revocations_after(
        &self,
        cursor: RevocationCursor,
        limit: u64,
    ) -> Result<RevocationPage, Failure> {
        revocations::after(&self.db, cursor, limit).await
    }

    async fn recent_revocations(&self, since: OffsetDateTime) -> Result<RevocationPage, Failure> {
        revocations::recent(&self.db, since).await
    }

    async fn purge_revocations(&self, before: OffsetDateTime, limit: u64) -> Result<u64, Failure> {
        revocations::purge(&self.db, before, limit).await
    }
}

/// Revokes every not-yet-revoked session of `user` but `except` inside the
/// caller's transaction `db`, returning their ids. The caller appends them
/// to the revocation feed ([`append_revocations`]) just before it commits.
pub(crate) async fn revoke_all_in<C: ConnectionTrait>(
    db: &C,
    user: UserId,
    except: Option<SessionId>,
    now: OffsetDateTime,
    reason: RevokeReason,
) -> Result<Vec<SessionId>, DbErr> {
    let mut query = session::Entity::find()
        .select_only()
        .column(session::Column::Id)
        .filter(session::Column::UserId.eq(user.as_uuid()))
        .filter(session::Column::RevokedAt.is_null());
    if let Some(except) = except {
        query = query.filter(session::Column::Id.ne(except.as_uuid()));
    }
    // FOR UPDATE on PostgreSQL, so a concurrent revoke cannot slip in
    // between the read and the write and make the returned list lie;
    // locking in id order keeps two of these from deadlocking. SQLite
    // ignores it: the write gate already excludes other writers.
    let ids: Vec<Uuid> = query
        .order_by_asc(session::Column::Id)
        .lock_exclusive()
        .into_tuple()
        .all(db)
        .await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    revoke_where(now, reason)
        .filter(session::Column::Id.is_in(ids.iter().copied()))
        .exec(db)
        .await?;
    Ok(ids.into_iter().map(SessionId::from_uuid).collect())
}

/// Appends revoked `sessions` to the feed other instances follow, inside
/// the caller's transaction; call it last, just before the commit.
pub(crate) async fn append_revocations<C: ConnectionTrait>(
    db: &C,
    sessions: &[SessionId],
    now: OffsetDateTime,
) -> Result<(), DbErr> {
    revocations::append(db, sessions, now).await
}

/// Stores a new session, its first token and its event on `db` (a transaction).
pub(crate) async fn insert_opening<C: ConnectionTrait>(
    db: &C,
    opening: SessionOpening<'_>,
) -> Result<(), DbErr> {
    let session = opening.session;
    session::Entity::insert(session_row(session))
        .exec_without_returning(db)
        .await?;
    insert_token(db, session.id, opening.first_token, session.created_at).await?;
    insert_events(db, std::slice::from_ref(opening.event)).await
}

/// Records a use of `session` if it is still active at `now`; whether it was.
pub(super) async fn touch_if_active<C: ConnectionTrait>(
    db: &C,
    session: SessionId,
    now: OffsetDateTime,
    idle_expires_at: OffsetDateTime,
) -> Result<bool, DbErr> {
    let now = to_millis(now);
    let result = session::Entity::update_many()
        .col_expr(session::Column::LastUsedAt, Expr::value(now))
        .col_expr(
            session::Column::IdleExpiresAt,
            Expr::value(to_millis(idle_expires_at)),
        )
        .filter(session::Column::Id.eq(session.as_uuid()))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::IdleExpiresAt.gt(now))
        .filter(session::Column::AbsoluteExpiresAt.gt(now))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Stores `token` as a current refresh token of `session`.
pub(super) async fn insert_token<C: ConnectionTrait>(
    db: &C,
    session: SessionId,
    token: &TokenHash,
    now: OffsetDateTime,
) -> Result<(), DbErr> {
    let row = refresh_token::ActiveModel {
        token_hash: Set(token.as_bytes().to_vec()),
        session_id: Set(session.as_uuid()),
        created_at: Set(to_millis(now)),
        rotated_at: Set(None),
    };
    refresh_token::Entity::insert(row)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// An update revoking the still-unrevoked sessions the caller filters down to.
fn revoke_where(now: OffsetDateTime, reason: RevokeReason) -> sea_orm::UpdateMany<session::Entity> {
    session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(to_millis(now)))
        .col_expr(session::Column::RevokedReason, Expr::value(reason.as_str()))
        .filter(session::Column::RevokedAt.is_null())
}

/// Every column of a session row.
pub(super) fn session_row(session: &Session) -> session::ActiveModel {
    session::ActiveModel {
        id: Set(session.id.as_uuid()),
        user_id: Set(session.user_id.as_uuid()),
        created_at: Set(to_millis(session.created_at)),
        last_used_at: Set(to_millis(session.last_used_at)),
        idle_expires_at: Set(to_millis(session.idle_expires_at)),
        absolute_expires_at: Set(to_millis(session.absolute_expires_at)),
        revoked_at: Set(session.revoked_at.map(to_millis)),
        revoked_reason: Set(session.revoked_reason.map(|r| r.as_str().to_owned())),
        user_agent: Set(session.client.user_agent().map(str::to_owned)),
        client_ip: Set(session.client.ip().map(str::to_owned)),
        amr: Set(Some(AuthMethod::join(&session.amr))),
        auth_time: Set(Some(to_millis(session.auth_time))),
    }
}

/// A stored session as the domain sees it.
pub(crate) fn to_domain(row: session::Model) -> Result<Session, Failure> {
    let revoked_reason = row
        .revoked_reason
        .as_deref()
        .map(|stored| RevokeReason::parse(stored).ok_or_else(|| corrupt("revoke reason")))
        .transpose()?;
    Ok(Session {
        id: SessionId::from_uuid(row.id),
        user_id: UserId::from_uuid(row.user_id),
        created_at: from_millis(row.created_at)?,
        last_used_at: from_millis(row.last_used_at)?,
        idle_expires_at: from_millis(row.idle_expires_at)?,
        absolute_expires_at: from_millis(row.absolute_expires_at)?,
        revoked_at: from_millis_opt(row.revoked_at)?,
        revoked_reason,
        client: ClientInfo::new(row.user_agent.as_deref(), row.client_ip),
        // Sessions from before the columns were opened with a password.
        amr: row
            .amr
            .as_deref()
            .map_or_else(|| vec![AuthMethod::Pwd], AuthMethod::split),
        auth_time: from_millis(row.auth_time.unwrap_or(row.created_at))?,
    })
}

/// A stored refresh-token row as the domain sees it.
pub(super) fn token_record(row: &refresh_token::Model) -> Result<RefreshRecord, Failure> {
    Ok(RefreshRecord {
        session_id: SessionId::from_uuid(row.session_id),
        created_at: from_millis(row.created_at)?,
        rotated_at: from_millis_opt(row.rotated_at)?,
    })
}
