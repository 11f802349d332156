//! One-time tokens of account recovery and confirmation: what a link in an
//! email carries (verify an address, reset a password, confirm a new
//! address). 256 random bits, 43 characters of base64url, stored only as a
//! digest, single use.
//!
//! A leaf module: it imports no sibling.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// Encoded length of 32 bytes in unpadded base64url.
pub const ENCODED_LEN: usize = 43;

/// Whether `raw` has the shape of a 256-bit secret in unpadded base64url.
pub fn well_formed_secret(raw: &str) -> bool {
    raw.len() == ENCODED_LEN
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A one-time token. Never logged; only its digest is stored.
#[derive(Clone)]
pub struct OneTimeToken(SecretString);

impl OneTimeToken {
    /// Parses a token presented by a client; anything that cannot be one of
    /// ours is refused before any lookup.
    ///
    /// # Errors
    /// `MalformedToken` for a wrong length or alphabet.
    pub fn parse(raw: &str) -> Result<Self, MalformedToken> {
        if well_formed_secret(raw) {
            Ok(Self(SecretString::from(raw.to_owned())))
        } else {
            Err(MalformedToken)
        }
    }

    /// Wraps a freshly generated token (the generator guarantees the format).
    pub fn from_generated(encoded: String) -> Self {
        Self(SecretString::from(encoded))
    }

    /// The token, for the email link and the digest only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for OneTimeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OneTimeToken([redacted])")
    }
}

/// The presented string cannot be a one-time token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed token")]
pub struct MalformedToken;

/// What a one-time token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// Confirms the address an account signed up with.
    VerifyEmail,
    /// Sets a new password without the old one.
    ResetPassword,
    /// Confirms a new address; the change applies when it is used.
    ChangeEmail,
}

impl TokenPurpose {
    /// The stored, stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::ChangeEmail => "change_email",
        }
    }

    /// Parses a stored name.
    pub fn parse(stored: &str) -> Option<Self> {
        [Self::VerifyEmail, Self::ResetPassword, Self::ChangeEmail]
            .into_iter()
            .find(|purpose| purpose.as_str() == stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn purposes_round_trip() {
        for purpose in [
            TokenPurpose::VerifyEmail,
            TokenPurpose::ResetPassword,
            TokenPurpose::ChangeEmail,
        ] {
            assert_eq!(TokenPurpose::parse(purpose.as_str()), Some(purpose));
        }
    }

    #[test]
    fn debug_never_shows_the_token() {
        let token = OneTimeToken::parse(&"a".repeat(43)).unwrap();
        assert_eq!(format!("{token:?}"), "OneTimeToken([redacted])");
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_keeps_only_43_base64url(raw in ".{0,100}") {
            if let Ok(token) = OneTimeToken::parse(&raw) {
                prop_assert_eq!(token.expose().len(), ENCODED_LEN);
            }
        }
    }
}
