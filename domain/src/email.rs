//! The email address value type: parsed once at the edge, normalised for
//! uniqueness, and never holding a value that could not be an address.
//!
//! A leaf module: it imports no sibling.

use std::fmt;

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
