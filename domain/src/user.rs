//! Users: the stored account, its public profile and the user repository port.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::email::Email;
use crate::error::Failure;
use crate::ids::UserId;
use crate::mail::Mail;
use crate::one_time::TokenPurpose;
use crate::password::PasswordHash;
use crate::session::SessionOpening;
use crate::session::TokenHash;

/// A stored user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub password_hash: PasswordHash,
    /// When the current address was confirmed; `None` until it is.
    pub email_verified_at: Option<OffsetDateTime>,
    /// Whether a second factor (TOTP) is active: log-in and a password
    /// reset then need it too.
    pub second_factor: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl User {
    /// What may be shown of the account.
    pub fn profile(&self) -> Profile {
        Profile {
            id: self.id,
            email: self.email.clone(),
            email_verified: self.email_verified_at.is_some(),
            created_at: self.created_at,
        }
    }
}

/// The public face of an account. Its address and whether it is confirmed
/// change only through the account use cases, which go through the
/// repository that caches profiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub id: UserId,
    pub email: Email,
    pub email_verified: bool,
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
    /// event, its email-verification token and the message that carries it,
    /// in one transaction.
    ///
    /// # Errors
    /// `InsertUserError::EmailTaken` when the database's unique index on the
    /// normalised email rejects it; never a read-then-write check.
    async fn insert(
        &self,
        user: &User,
        opening: SessionOpening<'_>,
        verification: NewToken<'_>,
        mail: &Mail,
    ) -> Result<(), InsertUserError>;

    /// The user with this normalised email, if any.
    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, Failure>;

    /// The user with this id, if any.
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, Failure>;

    /// The profile of the user with this id, if any. An adapter may answer
    /// from memory, as long as a change made through it shows at once and
    /// one made by another instance within a second.
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

/// A one-time token to store with a change, voiding the live tokens of the
/// same purpose of the same account (one live reset per account).
#[derive(Debug, Clone, Copy)]
pub struct NewToken<'a> {
    pub hash: &'a TokenHash,
    pub purpose: TokenPurpose,
    /// The address an email change moves to.
    pub new_email: Option<&'a Email>,
    /// The session that asked for it (an email change spares it).
    pub session: Option<crate::ids::SessionId>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}
