//! `MfaRepository` over sea-orm: TOTP factors (seeds sealed by the data
//! key), recovery-code digests and log-in challenges.
//!
//! The one-use rules are conditional statements, decided by the database:
//! a TOTP step is accepted by `UPDATE ... WHERE last_step < ?`, a recovery
//! code is spent by `DELETE ... WHERE digest = ?`, a challenge by `DELETE`;
//! whoever changes the row wins, and a racer changes nothing.

use async_trait::async_trait;
use portcullis_domain::error::Failure;
use portcullis_domain::ids::{SessionId, UserId};
use portcullis_domain::mfa::{Challenge, FactorChange, MfaRepository, SealedSeed, TotpRecord};
use portcullis_domain::session::{RevokeReason, TokenHash};
use sea_orm::sea_query::{Expr, ExprTrait as _, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
};
use time::OffsetDateTime;

use super::Database;
use super::convert::{from_millis, to_millis};
use super::entity::{mfa_challenge, recovery_code, totp_factor, user};
use super::error::store_error;
use super::event_repository::insert_events;
use super::outbox::enqueue;
use super::session::{append_revocations, revoke_all_in};
use super::write::Decision;

/// Second factors over the shared pool.
#[derive(Clone)]
pub struct SeaOrmMfaRepository {
    db: Database,
}

impl SeaOrmMfaRepository {
    pub(crate) fn new(db: Database) -> Self {
        Self { db }
    }
}

/// Stores the event and messages of `change` inside the caller's transaction.
async fn record<C: ConnectionTrait>(db: &C, change: &FactorChange<'_>) -> Result<(), DbErr> {
    enqueue(db, change.mail).await?;
    insert_events(db, std::slice::from_ref(change.event)).await
}

/// Replaces the recovery codes of `user` with `codes`.
async fn put_codes<C: ConnectionTrait>(
    db: &C,
    user: UserId,
    codes: &[Vec<u8>],
) -> Result<(), DbErr> {
    recovery_code::Entity::delete_many()
        .filter(recovery_code::Column::UserId.eq(user.as_uuid()))
        .exec(db)
        .await?;
    if codes.is_empty() {
        return Ok(());
    }
    recovery_code::Entity::insert_many(codes.iter().map(|digest| recovery_code::ActiveModel {
        user_id: Set(user.as_uuid()),
        digest: Set(digest.clone()),
    }))
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Sets the user's second-factor mark.
async fn mark<C: ConnectionTrait>(db: &C, user: UserId, on: bool) -> Result<(), DbErr> {
    user::Entity::update_many()
        .col_expr(user::Column::SecondFactor, Expr::value(on))
        .filter(user::Column::Id.eq(user.as_uuid()))
        .exec(db)
        .await?;
    Ok(())
}

#[async_trait]
impl MfaRepository for SeaOrmMfaRepository {
    async fn totp(&self, user: UserId) -> Result<Option<TotpRecord>, Failure> {
        let row = totp_factor::Entity::find_by_id(user.as_uuid())
            .one(self.db.bounded())
            .await
            .map_err(store_error)?;
        Ok(row.map(|row| TotpRecord {
            seed: SealedSeed(row.seed),
            active: row.active,
            last_step: row.last_step.and_then(|s| u64::try_from(s).ok()),
        }))
    }

    async fn recovery_codes_left(&self, user: UserId) -> Result<u32, Failure> {
        let count = recovery_code::Entity::find()
            .filter(recovery_code::Column::UserId.eq(user.as_uuid()))
            .count(self.db.bounded())
            .await
            .map_err(store_error)?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    async fn put_pending_totp(
        &self,
        user: UserId,
        seed: &SealedSeed,
        now: OffsetDateTime,
    ) -> Result<bool, Failure> {
        let tx = self.db.begin_write().await?;
        let body = async {
            let row = totp_factor::ActiveModel {
                user_id: Set(user.as_uuid()),
                seed: Set(seed.0.clone()),
                active: Set(false),
                last_step: Set(None),
                created_at: Set(to_millis(now)),
            };
            // A pending factor is replaced; an active one is left alone.
            totp_factor::Entity::delete_many()
                .filter(totp_factor::Column::UserId.eq(user.as_uuid()))
                .filter(totp_factor::Column::Active.eq(false))
                .exec(tx.txn())
                .await?;
            let inserted = totp_factor::Entity::insert(row)
                .on_conflict(
                    OnConflict::column(totp_factor::Column::UserId)
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(tx.txn())
                .await?;
            Ok(Decision::Commit(inserted == 1))
        }
        .await;
        tx.settle(body).await
    }

    async fn activate_totp(
        &self,
        change: FactorChange<'_>,
        step: u64,
        codes: &[Vec<u8>],
    ) -> Result<bool, Failure> {
        let user = change.user;
        let tx = self.db.begin_write().await?;
        let body = async {
            let activated = totp_factor::Entity::update_many()
                .col_expr(totp_factor::Column::Active, Expr::value(true))
                .col_expr(
                    totp_factor::Column::LastStep,
                    Expr::value(i64::try_from(step).unwrap_or(i64::MAX)),
                )
                .filter(totp_factor::Column::UserId.eq(user.as_uuid()))
                .filter(totp_factor::Column::Active.eq(false))
                .exec(tx.txn())
                .await?;
            if activated.rows_affected == 0 {
                return Ok(Decision::Rollback(false));
            }
            put_codes(tx.txn(), user, codes).await?;
            mark(tx.txn(), user, true).await?;
            record(tx.txn(), &change).await?;
            Ok(Decision::Commit(true))
        }
        .await;
        let activated = tx.settle(body).await;
        self.db.profiles().forget(user);
        activated
    }

    async fn accept_totp_step(&self, user: UserId, step: u64) -> Result<bool, Failure> {
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        let _gate = self.db.write_gate().await;
        let accepted = totp_factor::Entity::update_many()
            .col_expr(totp_factor::Column::LastStep, Expr::value(step))
            .filter(totp_factor::Column::UserId.eq(user.as_uuid()))
            .filter(totp_factor::Column::Active.eq(true))
            .filter(
                sea_orm::Condition::any()
                    .add(totp_factor::Column::LastStep.is_null())
                    .add(totp_factor::Column::LastStep.lt(step)),
            )
            .exec(self.db.bounded())
            .await
            .map_err(store_error)?;
        Ok(accepted.rows_affected == 1)
    }

    async fn use_recovery_code(
        &self,
        change: FactorChange<'_>,
        digest: &[u8],
    ) -> Result<bool, Failure> {
        let tx = self.db.begin_write().await?;
        let body = async {
            let used = recovery_code::Entity::delete_many()
                .filter(recovery_code::Column::UserId.eq(change.user.as_uuid()))
                .filter(recovery_code::Column::Digest.eq(digest.to_vec()))
                .exec(tx.txn())
                .await?;
            if used.rows_affected == 0 {
                return Ok(Decision::Rollback(false));
            }
            record(tx.txn(), &change).await?;
            Ok(Decision::Commit(true))
        }
        .await;
        tx.settle(body).await
    }

    async fn replace_recovery_codes(
        &self,
        change: FactorChange<'_>,
        codes: &[Vec<u8>],
    ) -> Result<(), Failure> {
        let tx = self.db.begin_write().await?;
        let body = async {
            put_codes(tx.txn(), change.user, codes).await?;
            record(tx.txn(), &change).await?;
            Ok(Decision::Commit(()))
        }
        .await;
        tx.settle(body).await
    }

    async fn remove_totp(
        &self,
        change: FactorChange<'_>,
        except: Option<SessionId>,
    ) -> Result<Vec<SessionId>, Failure> {
        let user = change.user;
        let tx = self.db.begin_write().await?;
        let body = async {
            totp_factor::Entity::delete_many()
                .filter(totp_factor::Column::UserId.eq(user.as_uuid()))
                .exec(tx.txn())
                .await?;
            put_codes(tx.txn(), user, &[]).await?;
            mark(tx.txn(), user, false).await?;
            let revoked = revoke_all_in(
                tx.txn(),
                user,
                except,
                change.now,
                RevokeReason::SecondFactorRemoved,
            )
            .await?;
            record(tx.txn(), &change).await?;
            append_revocations(tx.txn(), &revoked, change.now).await?;
            Ok(Decision::Commit(revoked))
        }
        .await;
        let removed = tx.settle(body).await;
        self.db.profiles().forget(user);
        removed
    }

    async fn open_challenge(
        &self,
        token: &TokenHash,
        challenge: &Challenge,
    ) -> Result<(), Failure> {
        let _gate = self.db.write_gate().await;
        let now = to_millis(OffsetDateTime::now_utc());
        // Expired challenges of the account go when a new one comes.
        mfa_challenge::Entity::delete_many()
            .filter(mfa_challenge::Column::UserId.eq(challenge.user.as_uuid()))
            .filter(mfa_challenge::Column::ExpiresAt.lte(now))
            .exec(self.db.bounded())
            .await
            .map_err(store_error)?;
        mfa_challenge::Entity::insert(mfa_challenge::ActiveModel {
            token_hash: Set(token.as_bytes().to_vec()),
            user_id: Set(challenge.user.as_uuid()),
            expires_at: Set(to_millis(challenge.expires_at)),
            tries: Set(i32::try_from(challenge.tries).unwrap_or(i32::MAX)),
        })
        .exec_without_returning(self.db.bounded())
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn challenge(
        &self,
        token: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<Challenge>, Failure> {
        let row = mfa_challenge::Entity::find_by_id(token.as_bytes().to_vec())
            .filter(mfa_challenge::Column::ExpiresAt.gt(to_millis(now)))
            .one(self.db.bounded())
            .await
            .map_err(store_error)?;
        row.map(|row| {
            Ok(Challenge {
                user: UserId::from_uuid(row.user_id),
                expires_at: from_millis(row.expires_at)?,
                tries: u32::try_from(row.tries).unwrap_or(0),
            })
        })
        .transpose()
    }

    async fn fail_challenge(&self, token: &TokenHash, max: u32) -> Result<u32, Failure> {
        let key = token.as_bytes().to_vec();
        let tx = self.db.begin_write().await?;
        let body = async {
            mfa_challenge::Entity::update_many()
                .col_expr(
                    mfa_challenge::Column::Tries,
                    Expr::col(mfa_challenge::Column::Tries).add(1),
                )
                .filter(mfa_challenge::Column::TokenHash.eq(key.clone()))
                .exec(tx.txn())
                .await?;
            let row = mfa_challenge::Entity::find_by_id(key.clone())
                .one(tx.txn())
                .await?;
            let tries = row.map_or(max, |row| u32::try_from(row.tries).unwrap_or(max));
            if tries >= max {
                mfa_challenge::Entity::delete_by_id(key.clone())
                    .exec(tx.txn())
                    .await?;
            }
            Ok(Decision::Commit(tries))
        }
        .await;
        tx.settle(body).await
    }

    async fn consume_challenge(&self, token: &TokenHash) -> Result<bool, Failure> {
        let _gate = self.db.write_gate().await;
        let deleted = mfa_challenge::Entity::delete_by_id(token.as_bytes().to_vec())
            .exec(self.db.bounded())
            .await
            .map_err(store_error)?;
        Ok(deleted.rows_affected == 1)
    }
}
