//! `UserRepository` over sea-orm.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use portcullis_domain::email::Email;
use portcullis_domain::error::Failure;
use portcullis_domain::ids::UserId;
use portcullis_domain::mail::Mail;
use portcullis_domain::password::PasswordHash;
use portcullis_domain::session::SessionOpening;
use portcullis_domain::user::{InsertUserError, NewToken, Profile, User, UserRepository};
use quick_cache::sync::Cache;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use time::OffsetDateTime;

use super::Database;
use super::account_repository::insert_token;
use super::convert::{from_millis, from_millis_opt, to_millis};
use super::entity::user;
use super::error::{is_unique_violation_on, store_error};
use super::outbox::enqueue;
use super::session::insert_opening;
use super::write::Decision;

/// Profiles read recently, shared by every repository of one [`Database`]:
/// `/users/me` and every refresh read a profile without a database round
/// trip. A change made through this instance drops the entry at once; one
/// made by another instance (an email change, a confirmation) shows here
/// after at most [`ProfileCache::TTL`]. While the database is unreachable
/// the last profile read is served. Bounded; an evicted profile is read
/// again.
#[derive(Clone)]
pub(crate) struct ProfileCache(Arc<Cache<UserId, (Profile, Instant)>>);

impl ProfileCache {
    /// Profiles kept at most (about 150 bytes each).
    pub(crate) const CAPACITY: usize = 10_000;
    /// How long a cached profile is trusted.
    pub(crate) const TTL: Duration = Duration::from_secs(1);

    pub(crate) fn new() -> Self {
        Self(Arc::new(Cache::new(Self::CAPACITY)))
    }

    /// The cached profile and whether it is still fresh.
    fn get(&self, id: UserId) -> Option<(Profile, bool)> {
        self.0
            .get(&id)
            .map(|(profile, read)| (profile, read.elapsed() < Self::TTL))
    }

    fn put(&self, profile: Profile) {
        self.0.insert(profile.id, (profile, Instant::now()));
    }

    /// Forgets `id` (after a change of that account).
    pub(crate) fn forget(&self, id: UserId) {
        self.0.remove(&id);
    }
}

/// Users in the `users` table.
#[derive(Clone)]
pub struct SeaOrmUserRepository {
    db: Database,
}

impl SeaOrmUserRepository {
    pub(crate) fn new(db: Database) -> Self {
        Self { db }
    }
}

#[async_trait]
impl UserRepository for SeaOrmUserRepository {
    async fn insert(
        &self,
        user: &User,
        opening: SessionOpening<'_>,
        verification: NewToken<'_>,
        mail: &Mail,
    ) -> Result<(), InsertUserError> {
        let row = user::ActiveModel {
            id: Set(user.id.as_uuid()),
            email: Set(user.email.as_str().to_owned()),
            password_hash: Set(user.password_hash.as_str().to_owned()),
            email_verified_at: Set(user.email_verified_at.map(to_millis)),
            second_factor: Set(user.second_factor),
            created_at: Set(to_millis(user.created_at)),
            updated_at: Set(to_millis(user.updated_at)),
        };
        let tx = self.db.begin_write().await?;
        let body = async {
            match user::Entity::insert(row)
                .exec_without_returning(tx.txn())
                .await
            {
                Ok(_) => {}
                Err(error) if is_unique_violation_on(&error, "email") => {
                    return Ok(Decision::Rollback(false));
                }
                Err(error) => return Err(error),
            }
            insert_opening(tx.txn(), opening).await?;
            insert_token(tx.txn(), user.id, &verification).await?;
            enqueue(tx.txn(), std::slice::from_ref(mail)).await?;
            Ok(Decision::Commit(true))
        }
        .await;
        if tx.settle(body).await? {
            Ok(())
        } else {
            Err(InsertUserError::EmailTaken)
        }
    }

    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, Failure> {
        user::Entity::find()
            .filter(user::Column::Email.eq(email.as_str()))
            .one(self.db.bounded())
            .await
            .map_err(store_error)?
            .map(to_domain)
            .transpose()
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, Failure> {
        user::Entity::find_by_id(id.as_uuid())
            .one(self.db.bounded())
            .await
            .map_err(store_error)?
            .map(to_domain)
            .transpose()
    }

    async fn find_profile(&self, id: UserId) -> Result<Option<Profile>, Failure> {
        let profiles = self.db.profiles();
        let cached = profiles.get(id);
        if let Some((profile, true)) = &cached {
            return Ok(Some(profile.clone()));
        }
        match self.find_by_id(id).await {
            Ok(found) => {
                let profile = found.map(|user| user.profile());
                match &profile {
                    Some(profile) => profiles.put(profile.clone()),
                    None => profiles.forget(id),
                }
                Ok(profile)
            }
            // While the database is unreachable, the last profile read is
            // better than an error: it can only be stale by a change made
            // elsewhere, and the session it serves is checked separately.
            Err(error) => match cached {
                Some((profile, _)) => {
                    tracing::debug!(%error, "profile served from memory while the database fails");
                    Ok(Some(profile))
                }
                None => Err(error),
            },
        }
    }

    async fn update_password_hash(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: OffsetDateTime,
    ) -> Result<(), Failure> {
        let _gate = self.db.write_gate().await;
        user::Entity::update_many()
            .col_expr(user::Column::PasswordHash, Expr::value(hash.as_str()))
            .col_expr(user::Column::UpdatedAt, Expr::value(to_millis(now)))
            .filter(user::Column::Id.eq(id.as_uuid()))
            .exec(self.db.bounded())
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

pub(crate) fn to_domain(row: user::Model) -> Result<User, Failure> {
    Ok(User {
        id: UserId::from_uuid(row.id),
        email: Email::from_trusted(row.email),
        password_hash: PasswordHash::new(row.password_hash),
        email_verified_at: from_millis_opt(row.email_verified_at)?,
        second_factor: row.second_factor,
        created_at: from_millis(row.created_at)?,
        updated_at: from_millis(row.updated_at)?,
    })
}
