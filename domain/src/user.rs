//! Users: identity, the email value type and the user repository port.

use std::fmt;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::StoreError;
use crate::password::PasswordHash;
use crate::session::SessionOpening;

/// A user's stable identifier.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Uuid);

impl UserId {
    /// A new, time-ordered identifier.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
    /// Wraps an identifier read back from storage or a verified token.
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }
    /// The underlying UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({})", self.0)
    }
}

/// Why a string is not an acceptable email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("email is empty")]
    Empty,
    #[error("email is longer than {max} characters")]
    TooLong { max: usize },
    #[error("email must contain exactly one '@' with text on both sides")]
    MissingAt,
    #[error("email contains whitespace or control characters")]
    InvalidCharacter,
    #[error("the part before '@' is longer than 64 characters")]
    LocalPartTooLong,
    #[error("the domain of the email is not a valid host name")]
    InvalidDomain,
}

/// A normalised, length-checked email address.
///
/// Normalisation trims surrounding whitespace and lowercases the whole
/// address, so uniqueness is case-insensitive. Only [`Email::parse`] makes one.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// RFC 5321 path limit.
    pub const MAX_LEN: usize = 254;

    /// Parses and normalises a raw address.
    ///
    /// # Errors
    /// An [`EmailError`] naming the first problem found.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let lowered = raw.trim().to_lowercase();
        let trimmed = lowered.as_str();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.chars().count() > Self::MAX_LEN {
            return Err(EmailError::TooLong { max: Self::MAX_LEN });
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(EmailError::InvalidCharacter);
        }
        let (local, domain) = trimmed.rsplit_once('@').ok_or(EmailError::MissingAt)?;
        if local.is_empty() || domain.is_empty() || local.contains('@') {
            return Err(EmailError::MissingAt);
        }
        if local.chars().count() > 64 {
            return Err(EmailError::LocalPartTooLong);
        }
        let labels_ok = domain.split('.').count() >= 2
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !labels_ok {
            return Err(EmailError::InvalidDomain);
        }
        Ok(Self(lowered))
    }

    /// Rebuilds an email read back from storage, where it was stored normalised.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the last '@'.
    pub fn local_part(&self) -> &str {
        self.0
            .rsplit_once('@')
            .map_or(self.0.as_str(), |(local, _)| local)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

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
    Store(#[from] StoreError),
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
    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;

    /// The user with this id, if any.
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// The profile of the user with this id, if any. Profiles never change
    /// (see [`Profile`]): an adapter may answer from memory.
    async fn find_profile(&self, id: UserId) -> Result<Option<Profile>, StoreError> {
        Ok(self.find_by_id(id).await?.map(|user| user.profile()))
    }

    /// Replaces the password hash (used to upgrade outdated parameters).
    async fn update_password_hash(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        let email = Email::parse("  Alice.Smith@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "alice.smith@example.com");
        assert_eq!(email.local_part(), "alice.smith");
    }

    #[test]
    fn bad_emails_are_rejected_with_a_reason() {
        assert_eq!(Email::parse("   "), Err(EmailError::Empty));
        assert_eq!(Email::parse("no-at-sign"), Err(EmailError::MissingAt));
        assert_eq!(Email::parse("@example.com"), Err(EmailError::MissingAt));
        assert_eq!(Email::parse("a@b@example.com"), Err(EmailError::MissingAt));
        assert_eq!(
            Email::parse("a b@example.com"),
            Err(EmailError::InvalidCharacter)
        );
        assert_eq!(Email::parse("a@localhost"), Err(EmailError::InvalidDomain));
        assert_eq!(Email::parse("a@-x.com"), Err(EmailError::InvalidDomain));
        assert_eq!(Email::parse("a@x..com"), Err(EmailError::InvalidDomain));
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert_eq!(Email::parse(&long_local), Err(EmailError::LocalPartTooLong));
        let long = format!("a@{}.com", "b".repeat(260));
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong { max: 254 }));
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_output_is_normalised(raw in ".{0,300}") {
            if let Ok(email) = Email::parse(&raw) {
                prop_assert_eq!(email.as_str(), email.as_str().to_lowercase());
                prop_assert!(email.as_str().chars().count() <= Email::MAX_LEN);
                prop_assert_eq!(Email::parse(email.as_str()).ok(), Some(email.clone()));
            }
        }
    }
}
