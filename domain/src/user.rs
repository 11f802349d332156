//! Users: the stored account, its public profile and the user repository port.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::email::Email;
use crate::error::Failure;
use crate::ids::UserId;
use crate::password::PasswordHash;
use crate::session::SessionOpening;

/// A stored user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub password_hash: PasswordHash,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl User {
    /// What may be shown of the account.
    pub fn profile(&self) -> Profile {
        Profile {
            id: self.id,
            email: self.email.clone(),
            created_at: self.created_at,
        }
    }
}

/// The public face of an account. None of its fields ever changes after
/// sign-up, so an adapter may keep profiles in memory without ever serving a
/// stale one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub id: UserId,
    pub email: Email,
    pub created_at: OffsetDateTime,
}

/// Why a user could not be inserted.
#[derive(Debug, thiserror::Error)]
pub enum InsertUserError {
    /// The normalised email already belongs to a user (enforced by a unique index).
    #[error("email already registered")]
    EmailTaken,
    #[error(transparent)]
    Failure(#[from] Failure),
}

/// Where users live.
#[async_trait]
pub trait UserRepository: Send + Sync + 'static {
    /// Inserts `user` with its first session, refresh token and sign-up
    /// event, in one transaction.
    ///
    /// # Errors
    /// `InsertUserError::EmailTaken` when the database's unique index on the
    /// normalised email rejects it; never a read-then-write check.
    async fn insert(&self, user: &User, opening: SessionOpening<'_>)
    -> Result<(), InsertUserError>;

    /// The user with this normalised email, if any.
    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, Failure>;

    /// The user with this id, if any.
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, Failure>;

    /// The profile of the user with this id, if any. Profiles never change
    /// (see [`Profile`]): an adapter may answer from memory.
    async fn find_profile(&self, id: UserId) -> Result<Option<Profile>, Failure> {
        Ok(self.find_by_id(id).await?.map(|user| user.profile()))
    }

    /// Replaces the password hash (used to upgrade outdated parameters).
    async fn update_password_hash(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: OffsetDateTime,
    ) -> Result<(), Failure>;
}
