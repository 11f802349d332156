//! Access tokens: what they claim, and the ports that sign and verify them.

use std::fmt;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::amr::AuthMethod;
use crate::error::Failure;
use crate::ids::{SessionId, UserId};

/// The claims of an access token that the domain cares about. Issuer,
/// audience and `typ` are fixed by the adapter's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    pub user_id: UserId,
    pub session_id: SessionId,
    /// Whether the account's address was confirmed when the token was signed.
    pub email_verified: bool,
    /// What the session's user proved (RFC 8176 `amr`).
    pub amr: Vec<AuthMethod>,
    /// When the session's user last proved who they are.
    pub auth_time: OffsetDateTime,
    pub token_id: Uuid,
    pub issued_at: OffsetDateTime,
    pub not_before: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// A signed access token. A bearer secret: never logged.
#[derive(Clone)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps a compact JWS.
    pub fn new(compact: String) -> Self {
        Self(compact)
    }
    /// The compact JWS, for the response body only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

/// Signs access tokens.
pub trait TokenIssuer: Send + Sync + 'static {
    /// Signs `claims` with the active key.
    ///
    /// # Errors
    /// Only if signing itself fails (a broken key).
    fn issue(&self, claims: &AccessClaims) -> Result<AccessToken, Failure>;
}

/// Why a bearer token was refused. Kept internal (audit reason); every
/// variant gets the same answer from the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    #[error("token is not a well-formed JWS")]
    Malformed,
    #[error("token header is not acceptable")]
    BadHeader,
    #[error("token is signed with an unknown key")]
    UnknownKey,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token is expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token claims are missing or invalid")]
    BadClaims,
    #[error("token session is revoked")]
    Revoked,
}

impl TokenRejection {
    /// The stable name kept in audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadHeader => "bad_header",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::BadClaims => "bad_claims",
            Self::Revoked => "revoked",
        }
    }
}

/// Verifies access tokens: pinned algorithm, required claims, `typ`.
pub trait TokenVerifier: Send + Sync + 'static {
    /// The claims of a valid token.
    ///
    /// # Errors
    /// The reason the token is refused.
    fn verify(&self, token: &str, now: OffsetDateTime) -> Result<AccessClaims, TokenRejection>;
}
