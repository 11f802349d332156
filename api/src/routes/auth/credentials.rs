//! The credentials body that sign-up and log-in share (one `Credentials`
//! schema in the document), and its parsing into domain types.

use poem::http::StatusCode;
use poem_openapi::Object;
use portcullis_domain::email::Email;
use portcullis_domain::password::{Password, PasswordPolicy};

use crate::problem::ApiError;
use crate::routes::bounded::{Bounded, BoundedSecret};

/// The document's password bounds: the floor every deployment allows (the
/// document is built once, not per deployment's configured minimum), and
/// log-in shares this schema, so a password set under a lower minimum than
/// today's still logs in.
type PasswordField = BoundedSecret<{ PasswordPolicy::MIN_LEN_FLOOR }, { PasswordPolicy::MAX_LEN }>;

/// Credentials for sign-up and log-in.
#[derive(Debug, Object)]
#[oai(example)]
pub struct Credentials {
    /// An email address of at most 254 characters; it is trimmed, Unicode
    /// NFC-normalised and lowercased. Control, invisible format (zero-width)
    /// and bidirectional control characters are refused.
    pub email: Bounded<1, { Email::MAX_LEN }>,
    /// 8 to 128 characters (Unicode code points); sign-up asks for at least
    /// 15 by default (the deployment's `PORTCULLIS_PASSWORD_MIN_LENGTH`, never
    /// under 8). Spaces and emoji welcome; not a common password; must not
    /// contain the email's name part.
    pub password: PasswordField,
}

impl Credentials {
    fn example_value() -> Self {
        Self {
            email: Bounded("alice@example.com".to_owned()),
            password: Bounded("correct horse battery staple 42".to_owned()),
        }
    }

    /// The email and password as domain values.
    ///
    /// # Errors
    /// 422 `invalid_email` when the email is not an address. The password
    /// policy is the use case's to check.
    pub fn try_into_domain(self) -> Result<(Email, Password), ApiError> {
        let email = Email::parse(self.email.as_str()).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_email",
                e.to_string(),
            )
        })?;
        Ok((email, Password::new(self.password.0)))
    }
}

impl poem_openapi::types::Example for Credentials {
    fn example() -> Self {
        Self::example_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(email: &str) -> Credentials {
        Credentials {
            email: Bounded(email.to_owned()),
            password: Bounded("correct horse battery staple 42".to_owned()),
        }
    }

    #[test]
    fn a_valid_email_becomes_an_email() {
        let (email, _) = credentials("alice@example.com").try_into_domain().unwrap();
        assert_eq!(email.as_str(), "alice@example.com");
    }

    #[test]
    fn an_invalid_email_is_a_422_invalid_email() {
        let error = credentials("not an address").try_into_domain().unwrap_err();
        assert_eq!(error.status(), 422);
        assert_eq!(error.problem.code, "invalid_email");
        assert_eq!(error.retry_after, None);
    }

    #[test]
    fn invisible_and_direction_characters_are_a_422_naming_the_character() {
        for (email, named) in [
            ("alice\u{200b}@example.com", "U+200B"),
            ("\u{202e}evil@example.com", "U+202E"),
            ("ali\u{1b}ce@example.com", "U+001B"),
        ] {
            let error = credentials(email).try_into_domain().unwrap_err();
            assert_eq!(error.status(), 422);
            assert_eq!(error.problem.code, "invalid_email");
            let detail = &error.problem.detail;
            assert!(detail.contains(named), "{detail}");
        }
    }
}
