//! Passwords: the secret value type, the policy that admits one, and the
//! hashing port.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use crate::email::Email;
use crate::error::Failure;

/// A candidate password as typed by a person. Never printed, zeroised on drop.
///
/// Holding a `Password` says nothing about policy: sign-up runs it through
/// [`PasswordPolicy::check`]; log-in verifies whatever was typed.
#[derive(Clone)]
pub struct Password(SecretString);

impl Password {
    /// Wraps raw input. No trimming, no case folding, no truncation.
    pub fn new(raw: String) -> Self {
        Self(SecretString::from(raw))
    }

    /// The secret, for the hasher only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Length in Unicode code points.
    pub fn char_count(&self) -> usize {
        self.expose().chars().count()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// A PHC-format password hash. Not a secret in the cryptographic sense, but
/// it must never leave the service, so its `Debug` is redacted as well.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string produced by the hasher or read from storage.
    pub fn new(phc: String) -> Self {
        Self(phc)
    }
    /// The PHC string, for storage and verification.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash([redacted])")
    }
}

/// Why a password was refused at sign-up. Each names its reason for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejection {
    #[error("password must be at least {min} characters long")]
    TooShort { min: usize },
    #[error("password must be at most {max} characters long")]
    TooLong { max: usize },
    #[error("password is on the list of common or breached passwords")]
    Common,
    #[error("password must not contain the email address's name part")]
    ContainsEmail,
    #[error("password must not contain the service name")]
    ContainsServiceName,
}

impl PasswordRejection {
    /// A stable machine code for the rejection.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooShort { .. } => "password_too_short",
            Self::TooLong { .. } => "password_too_long",
            Self::Common => "password_common",
            Self::ContainsEmail => "password_contains_email",
            Self::ContainsServiceName => "password_contains_service_name",
        }
    }
}

/// Why a policy could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("minimum password length must be between {floor} and {max}, got {got}")]
    MinLength {
        floor: usize,
        max: usize,
        got: usize,
    },
}

/// The sign-up password rules of NIST SP 800-63B-4: length in code points,
/// a blocklist, and no context words. No composition rules.
#[derive(Clone)]
pub struct PasswordPolicy {
    min_len: usize,
    blocklist: Arc<HashSet<String>>,
}

impl fmt::Debug for PasswordPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordPolicy")
            .field("min_len", &self.min_len)
            .field("blocklist_len", &self.blocklist.len())
            .finish()
    }
}

impl PasswordPolicy {
    /// The default minimum (single-factor, NIST 800-63B-4).
    pub const DEFAULT_MIN_LEN: usize = 15;
    /// Never configurable below this.
    pub const MIN_LEN_FLOOR: usize = 8;
    /// Upper bound in code points.
    pub const MAX_LEN: usize = 128;
    /// Context word that may not appear in a password.
    pub const SERVICE_NAME: &'static str = "portcullis";

    /// Builds a policy. `blocklist` entries are compared lowercase.
    ///
    /// # Errors
    /// `PolicyError::MinLength` when `min_len` is outside `8..=128`.
    pub fn new(
        min_len: usize,
        blocklist: impl IntoIterator<Item = String>,
    ) -> Result<Self, PolicyError> {
        if !(Self::MIN_LEN_FLOOR..=Self::MAX_LEN).contains(&min_len) {
            return Err(PolicyError::MinLength {
                floor: Self::MIN_LEN_FLOOR,
                max: Self::MAX_LEN,
                got: min_len,
            });
        }
        let blocklist = blocklist
            .into_iter()
            .map(|entry| entry.trim().to_lowercase())
            .filter(|entry| !entry.is_empty())
            .collect();
        Ok(Self {
            min_len,
            blocklist: Arc::new(blocklist),
        })
    }

    /// The configured minimum length.
    pub fn min_len(&self) -> usize {
        self.min_len
    }

    /// Checks `password` for a sign-up by `email`.
    ///
    /// # Errors
    /// The first [`PasswordRejection`] that applies.
    pub fn check(&self, password: &Password, email: &Email) -> Result<(), PasswordRejection> {
        let count = password.char_count();
        if count < self.min_len {
            return Err(PasswordRejection::TooShort { min: self.min_len });
        }
        if count > Self::MAX_LEN {
            return Err(PasswordRejection::TooLong { max: Self::MAX_LEN });
        }
        let lowered = password.expose().to_lowercase();
        if self.blocklist.contains(&lowered) {
            return Err(PasswordRejection::Common);
        }
        let local = email.local_part();
        // A one- or two-letter name part would forbid ordinary words.
        if local.chars().count() >= 3 && lowered.contains(local) {
            return Err(PasswordRejection::ContainsEmail);
        }
        if lowered.contains(Self::SERVICE_NAME) {
            return Err(PasswordRejection::ContainsServiceName);
        }
        Ok(())
    }
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// The password matches.
    pub matches: bool,
    /// The hash uses outdated parameters and should be replaced.
    pub needs_rehash: bool,
}

/// Slow, salted password hashing. Implementations run the work off the async
/// runtime with bounded concurrency.
///
/// # Errors
/// Every method answers `Failure::Overloaded` when the hashing pool and its
/// queue are full, and `Failure::Unexpected` when the work itself fails.
#[async_trait]
pub trait PasswordHasher: Send + Sync + 'static {
    /// Hashes a password with the current parameters and a fresh salt.
    async fn hash(&self, password: &Password) -> Result<PasswordHash, Failure>;

    /// Verifies `password` against `hash` in constant time with respect to the
    /// password.
    async fn verify(
        &self,
        password: &Password,
        hash: &PasswordHash,
    ) -> Result<Verification, Failure>;

    /// Spends exactly the cost of a real verification and returns nothing, so
    /// an unknown email costs the same as a wrong password.
    async fn verify_dummy(&self, password: &Password) -> Result<(), Failure>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PasswordPolicy {
        PasswordPolicy::new(15, ["correcthorsebatterystaple".to_owned()]).unwrap()
    }

    fn email() -> Email {
        Email::parse("alice@example.com").unwrap()
    }

    #[test]
    fn accepts_a_long_passphrase_with_spaces_and_emoji() {
        let password = Password::new("tulips in the rain 🌧 at noon".to_owned());
        assert_eq!(policy().check(&password, &email()), Ok(()));
    }

    #[test]
    fn length_is_counted_in_code_points() {
        // 15 emoji are 60 bytes but 15 code points: accepted.
        let password = Password::new("🌧".repeat(15));
        assert_eq!(policy().check(&password, &email()), Ok(()));
        let password = Password::new("🌧".repeat(14));
        assert_eq!(
            policy().check(&password, &email()),
            Err(PasswordRejection::TooShort { min: 15 })
        );
        let password = Password::new("x".repeat(129));
        assert_eq!(
            policy().check(&password, &email()),
            Err(PasswordRejection::TooLong { max: 128 })
        );
    }

    #[test]
    fn blocklisted_passwords_are_rejected_whatever_their_case() {
        let password = Password::new("CorrectHorseBatteryStaple".to_owned());
        assert_eq!(
            policy().check(&password, &email()),
            Err(PasswordRejection::Common)
        );
    }

    #[test]
    fn context_words_are_rejected() {
        let password = Password::new("my name is ALICE and that is it".to_owned());
        assert_eq!(
            policy().check(&password, &email()),
            Err(PasswordRejection::ContainsEmail)
        );
        let password = Password::new("i love Portcullis so much".to_owned());
        assert_eq!(
            policy().check(&password, &email()),
            Err(PasswordRejection::ContainsServiceName)
        );
    }

    #[test]
    fn minimum_cannot_go_below_eight() {
        assert!(PasswordPolicy::new(7, Vec::new()).is_err());
        assert!(PasswordPolicy::new(8, Vec::new()).is_ok());
        assert!(PasswordPolicy::new(129, Vec::new()).is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let password = Password::new("hunter2hunter2hunter2".to_owned());
        assert!(!format!("{password:?}").contains("hunter2"));
        let hash = PasswordHash::new("$argon2id$secret".to_owned());
        assert!(!format!("{hash:?}").contains("argon2id"));
    }
}
