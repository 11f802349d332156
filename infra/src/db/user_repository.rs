//! `UserRepository` over sea-orm.

use std::sync::Arc;

use async_trait::async_trait;
use portcullis_domain::email::Email;
use portcullis_domain::error::Failure;
use portcullis_domain::ids::UserId;
use portcullis_domain::password::PasswordHash;
use portcullis_domain::session::SessionOpening;
use portcullis_domain::user::{InsertUserError, Profile, User, UserRepository};
use quick_cache::sync::Cache;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use time::OffsetDateTime;

use super::Database;
use super::convert::{from_millis, to_millis};
use super::entity::user;
use super::error::{is_unique_violation_on, store_error};
use super::session::insert_opening;
use super::write::Decision;

/// Users in the `users` table. Clones share one cache of profiles.
#[derive(Clone)]
pub struct SeaOrmUserRepository {
    db: Database,
    /// Profiles never change (id, email and creation time are fixed at
    /// sign-up), so a cached one is never stale: `/users/me` and every
    /// refresh read it without a database round trip. Bounded; an evicted
    /// profile is read again. Users are never deleted through the service.
    profiles: Arc<Cache<UserId, Profile>>,
}

impl SeaOrmUserRepository {
    /// Profiles kept at most (about 150 bytes each).
    pub const PROFILE_CACHE_CAPACITY: usize = 10_000;

    pub(crate) fn new(db: Database) -> Self {
        Self {
            db,
            profiles: Arc::new(Cache::new(Self::PROFILE_CACHE_CAPACITY)),
        }
    }
}

#[async_trait]
impl UserRepository for SeaOrmUserRepository {
    async fn insert(
        &self,
        user: &User,
        opening: SessionOpening<'_>,
    ) -> Result<(), InsertUserError> {
        let row = user::ActiveModel {
            id: Set(user.id.as_uuid()),
            email: Set(user.email.as_str().to_owned()),
            password_hash: Set(user.password_hash.as_str().to_owned()),
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
        if let Some(profile) = self.profiles.get(&id) {
            return Ok(Some(profile));
        }
        let profile = self.find_by_id(id).await?.map(|user| user.profile());
        if let Some(profile) = &profile {
            self.profiles.insert(id, profile.clone());
        }
        Ok(profile)
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

fn to_domain(row: user::Model) -> Result<User, Failure> {
    Ok(User {
        id: UserId::from_uuid(row.id),
        email: Email::from_trusted(row.email),
        password_hash: PasswordHash::new(row.password_hash),
        created_at: from_millis(row.created_at)?,
        updated_at: from_millis(row.updated_at)?,
    })
}
