//! `AccountRepository` over sea-orm: the one-time tokens of email links
//! (`account_tokens`, digests only) and account changes, each one
//! transaction with its audit event, its revocations and its messages.
//!
//! A change first locks the account's row (`SELECT ... FOR UPDATE` on
//! PostgreSQL; the write gate on SQLite), so two changes of one account
//! never interleave: a token is consumed once, and "at most one a minute"
//! holds across instances.

use async_trait::async_trait;
use portcullis_domain::account::{
    AccountChange, AccountDeletion, AccountExport, AccountRepository, ChangeError, PendingToken,
    SecondFactorsExport,
};
use portcullis_domain::audit::EventQuery;
use portcullis_domain::email::Email;
use portcullis_domain::error::Failure;
use portcullis_domain::ids::{SessionId, UserId};
use portcullis_domain::one_time::TokenPurpose;
use portcullis_domain::session::{RevokeReason, TokenHash};
use portcullis_domain::user::NewToken;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use time::OffsetDateTime;

use super::Database;
use super::convert::{from_millis, to_millis};
use super::entity::{account_token, auth_event, recovery_code, session, task, totp_factor, user};
use super::error::{corrupt, is_unique_violation_on, store_error};
use super::event_repository::{self, insert_events};
use super::outbox::{drop_links_of, enqueue};
use super::session::{append_revocations, revoke_all_in};
use super::write::Decision;
use super::{task_repository, user_repository};

/// Account tokens and changes over the shared pool.
#[derive(Clone)]
pub struct SeaOrmAccountRepository {
    db: Database,
}

impl SeaOrmAccountRepository {
    pub(crate) fn new(db: Database) -> Self {
        Self { db }
    }
}

/// Stores `token` for `user`, voiding the live ones of the same purpose,
/// inside the caller's transaction `db`.
pub(crate) async fn insert_token<C: ConnectionTrait>(
    db: &C,
    user: UserId,
    token: &NewToken<'_>,
) -> Result<(), DbErr> {
    void_tokens(db, user, &[token.purpose]).await?;
    let row = account_token::ActiveModel {
        token_hash: Set(token.hash.as_bytes().to_vec()),
        user_id: Set(user.as_uuid()),
        purpose: Set(token.purpose.as_str().to_owned()),
        new_email: Set(token.new_email.map(|e| e.as_str().to_owned())),
        session_id: Set(token.session.map(|s| s.as_uuid())),
        created_at: Set(to_millis(token.created_at)),
        expires_at: Set(to_millis(token.expires_at)),
    };
    account_token::Entity::insert(row)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Deletes every token of `user` with one of `purposes`.
async fn void_tokens<C: ConnectionTrait>(
    db: &C,
    user: UserId,
    purposes: &[TokenPurpose],
) -> Result<(), DbErr> {
    account_token::Entity::delete_many()
        .filter(account_token::Column::UserId.eq(user.as_uuid()))
        .filter(account_token::Column::Purpose.is_in(purposes.iter().map(|p| p.as_str())))
        .exec(db)
        .await?;
    Ok(())
}

/// What a change's transaction found wrong, or the sessions it revoked.
enum Applied {
    Done(Vec<SessionId>),
    Refused(ChangeError),
}

#[async_trait]
impl AccountRepository for SeaOrmAccountRepository {
    async fn find_token(
        &self,
        token: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<PendingToken>, Failure> {
        let row = account_token::Entity::find_by_id(token.as_bytes().to_vec())
            .filter(account_token::Column::ExpiresAt.gt(to_millis(now)))
            .one(self.db.bounded())
            .await
            .map_err(store_error)?;
        row.map(pending).transpose()
    }

    async fn apply(&self, change: AccountChange<'_>) -> Result<Vec<SessionId>, ChangeError> {
        let tx = self.db.begin_write().await?;
        let body = async {
            match apply_in(tx.txn(), &change).await? {
                Applied::Done(revoked) => Ok(Decision::Commit(Applied::Done(revoked))),
                refused @ Applied::Refused(_) => Ok(Decision::Rollback(refused)),
            }
        }
        .await;
        let applied = tx.settle(body).await;
        self.db.profiles().forget(change.user);
        match applied? {
            Applied::Done(revoked) => Ok(revoked),
            Applied::Refused(error) => Err(error),
        }
    }

    async fn delete(
        &self,
        deletion: AccountDeletion<'_>,
    ) -> Result<Option<Vec<SessionId>>, Failure> {
        let user = deletion.user;
        let tx = self.db.begin_write().await?;
        let body = async {
            if !lock_user(tx.txn(), user).await? {
                return Ok(Decision::Rollback(None));
            }
            let revoked = revoke_all_in(
                tx.txn(),
                user,
                None,
                deletion.now,
                RevokeReason::AccountDeleted,
            )
            .await?;
            drop_links_of(tx.txn(), user).await?;
            // Sessions (with their refresh tokens), tasks and account tokens
            // go by the foreign keys' cascade; audit events have no foreign
            // key and stay, naming the user id only.
            user::Entity::delete_by_id(user.as_uuid())
                .exec(tx.txn())
                .await?;
            enqueue(tx.txn(), std::slice::from_ref(deletion.notice)).await?;
            insert_events(tx.txn(), std::slice::from_ref(deletion.event)).await?;
            append_revocations(tx.txn(), &revoked, deletion.now).await?;
            Ok(Decision::Commit(Some(revoked)))
        }
        .await;
        let deleted = tx.settle(body).await;
        self.db.profiles().forget(user);
        deleted
    }

    async fn export(&self, user: UserId, limit: u64) -> Result<Option<AccountExport>, Failure> {
        let conn = self.db.bounded();
        let Some(row) = user::Entity::find_by_id(user.as_uuid())
            .one(conn)
            .await
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        let profile = user_repository::to_domain(row)?.profile();
        let sessions = session::Entity::find()
            .filter(session::Column::UserId.eq(user.as_uuid()))
            .order_by_desc(session::Column::CreatedAt)
            .all(conn)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(super::session::to_domain)
            .collect::<Result<_, _>>()?;
        let query = EventQuery {
            user_id: Some(user),
            limit,
            ..EventQuery::default()
        };
        let events = auth_event::Entity::find()
            .filter(auth_event::Column::UserId.eq(user.as_uuid()))
            .order_by_desc(auth_event::Column::Id)
            .limit(query.limit)
            .all(conn)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(event_repository::to_domain)
            .collect::<Result<_, _>>()?;
        let tasks = task::Entity::find()
            .filter(task::Column::UserId.eq(user.as_uuid()))
            .order_by_desc(task::Column::Id)
            .all(conn)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(task_repository::to_domain)
            .collect::<Result<_, _>>()?;
        let totp = totp_factor::Entity::find_by_id(user.as_uuid())
            .one(conn)
            .await
            .map_err(store_error)?;
        let codes = recovery_code::Entity::find()
            .filter(recovery_code::Column::UserId.eq(user.as_uuid()))
            .count(conn)
            .await
            .map_err(store_error)?;
        Ok(Some(AccountExport {
            exported_at: OffsetDateTime::now_utc(),
            profile,
            sessions,
            events,
            tasks,
            second_factors: SecondFactorsExport {
                totp_pending: totp.as_ref().is_some_and(|t| !t.active),
                totp_active: totp.as_ref().is_some_and(|t| t.active),
                recovery_codes_left: u32::try_from(codes).unwrap_or(u32::MAX),
            },
        }))
    }
}

/// Locks the account's row for the rest of the transaction; whether it exists.
async fn lock_user<C: ConnectionTrait>(db: &C, user: UserId) -> Result<bool, DbErr> {
    let found: Option<uuid::Uuid> = user::Entity::find_by_id(user.as_uuid())
        .select_only()
        .column(user::Column::Id)
        .lock_exclusive()
        .into_tuple()
        .one(db)
        .await?;
    Ok(found.is_some())
}

/// The body of [`AccountRepository::apply`], inside its transaction.
async fn apply_in<C: ConnectionTrait>(
    db: &C,
    change: &AccountChange<'_>,
) -> Result<Applied, DbErr> {
    let user = change.user;
    let now = to_millis(change.now);
    if !lock_user(db, user).await? {
        return Ok(Applied::Refused(ChangeError::UserGone));
    }
    if let Some(hash) = change.consume {
        let consumed = account_token::Entity::delete_many()
            .filter(account_token::Column::TokenHash.eq(hash.as_bytes().to_vec()))
            .filter(account_token::Column::UserId.eq(user.as_uuid()))
            .filter(account_token::Column::ExpiresAt.gt(now))
            .exec(db)
            .await?;
        if consumed.rows_affected == 0 {
            return Ok(Applied::Refused(ChangeError::TokenGone));
        }
    }
    if let (Some(issue), Some(interval)) = (change.issue, change.not_within) {
        let last: Option<i64> = account_token::Entity::find()
            .select_only()
            .column(account_token::Column::CreatedAt)
            .filter(account_token::Column::UserId.eq(user.as_uuid()))
            .filter(account_token::Column::Purpose.eq(issue.purpose.as_str()))
            .order_by_desc(account_token::Column::CreatedAt)
            .into_tuple()
            .one(db)
            .await?;
        let next_allowed = last.map(|last| last.saturating_add(millis(interval)));
        if let Some(next_allowed) = next_allowed
            && now < next_allowed
        {
            let secs = ((next_allowed - now) + 999) / 1000;
            return Ok(Applied::Refused(ChangeError::TooSoon {
                retry_after_secs: u64::try_from(secs).unwrap_or(1),
            }));
        }
    }
    let mut update = user::Entity::update_many()
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(user.as_uuid()));
    if let Some(hash) = change.password {
        update = update.col_expr(user::Column::PasswordHash, Expr::value(hash.as_str()));
    }
    if let Some(email) = change.email {
        update = update.col_expr(user::Column::Email, Expr::value(email.as_str()));
    }
    if change.verify {
        update = update.col_expr(user::Column::EmailVerifiedAt, Expr::value(now));
    }
    match update.exec(db).await {
        Ok(_) => {}
        Err(error) if is_unique_violation_on(&error, "email") => {
            return Ok(Applied::Refused(ChangeError::EmailTaken));
        }
        Err(error) => return Err(error),
    }
    if change.password.is_some() {
        void_tokens(db, user, &[TokenPurpose::ResetPassword]).await?;
    }
    if change.email.is_some() {
        // Links sent to the old address, and other pending changes, die.
        void_tokens(
            db,
            user,
            &[
                TokenPurpose::VerifyEmail,
                TokenPurpose::ResetPassword,
                TokenPurpose::ChangeEmail,
            ],
        )
        .await?;
    }
    if let Some(issue) = &change.issue {
        insert_token(db, user, issue).await?;
    }
    let revoked = match change.revoke {
        Some(revoke) => revoke_all_in(db, user, revoke.except, change.now, revoke.reason).await?,
        None => Vec::new(),
    };
    enqueue(db, change.mail).await?;
    insert_events(db, std::slice::from_ref(change.event)).await?;
    append_revocations(db, &revoked, change.now).await?;
    Ok(Applied::Done(revoked))
}

fn millis(duration: time::Duration) -> i64 {
    i64::try_from(duration.whole_milliseconds()).unwrap_or(i64::MAX)
}

fn pending(row: account_token::Model) -> Result<PendingToken, Failure> {
    Ok(PendingToken {
        user: UserId::from_uuid(row.user_id),
        purpose: TokenPurpose::parse(&row.purpose).ok_or_else(|| corrupt("token purpose"))?,
        new_email: row.new_email.map(Email::from_trusted),
        session: row.session_id.map(SessionId::from_uuid),
        created_at: from_millis(row.created_at)?,
        expires_at: from_millis(row.expires_at)?,
    })
}
