//! What several operations share: the tags of the document, the user and
//! token-pair bodies, and the answers to an exhausted budget and to an
//! infrastructure failure. A leaf of `routes`: it imports no operation.

use poem::http::StatusCode;
use poem_openapi::{Object, Tags};
use portcullis_domain::auth::TokenPair;
use portcullis_domain::error::Failure;
use portcullis_domain::user::Profile;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::problem::ApiError;

/// Operation groups of the document.
#[derive(Tags)]
pub enum ApiTags {
    /// Sign up, log in, refresh, log out, verify.
    Auth,
    /// The caller's account.
    Users,
    /// Email verification, password reset, password and email change,
    /// deletion and export.
    Account,
    /// Second factors (TOTP, recovery codes) and the second step of a log-in.
    Mfa,
    /// The caller's sessions.
    Sessions,
    /// A sample protected resource, strictly per user.
    Tasks,
    /// Public signing keys.
    Discovery,
    /// Liveness and readiness.
    Health,
}

/// A user's public profile.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct UserBody {
    /// The user's id.
    pub id: Uuid,
    /// The normalised (lowercase) email address.
    pub email: String,
    /// Whether the address was confirmed through the link sent to it.
    pub email_verified: bool,
    /// When the account was created (RFC 3339, UTC).
    pub created_at: OffsetDateTime,
}

impl UserBody {
    /// The user the document's examples show.
    pub fn example_value() -> Self {
        Self {
            id: Uuid::nil(),
            email: "alice@example.com".to_owned(),
            email_verified: true,
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }
}

impl From<&Profile> for UserBody {
    fn from(user: &Profile) -> Self {
        Self {
            id: user.id.as_uuid(),
            email: user.email.as_str().to_owned(),
            email_verified: user.email_verified,
            created_at: user.created_at,
        }
    }
}

/// An access token, a refresh token, and `user`, the account they belong to.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct TokenPairBody {
    /// A JWT to send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// An opaque token for `POST /api/v1/auth/refresh`; single use, rotated on every refresh.
    pub refresh_token: String,
    /// Seconds until the refresh token expires if it is not used.
    pub refresh_expires_in: i64,
    // No doc comment: a described `$ref` becomes an `allOf` wrapper, which
    // SDK generators turn into a needless copy of `UserBody`.
    pub user: UserBody,
}

impl TokenPairBody {
    fn example_value() -> Self {
        Self {
            access_token: "eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCIsImtpZCI6Ii4uLiJ9.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl".to_owned(),
            token_type: "Bearer".to_owned(),
            expires_in: 900,
            refresh_token: "q3Jk0yq1yVbqQm3a8mF6Qm1b0Jm8u8g8m2t2u3vYc8w".to_owned(),
            refresh_expires_in: 604_800,
            user: UserBody::example_value(),
        }
    }
}

impl From<&TokenPair> for TokenPairBody {
    fn from(pair: &TokenPair) -> Self {
        Self {
            access_token: pair.access_token.expose().to_owned(),
            token_type: "Bearer".to_owned(),
            expires_in: (pair.access_expires_at - pair.issued_at)
                .whole_seconds()
                .max(0),
            refresh_token: pair.refresh_token.expose().to_owned(),
            refresh_expires_in: (pair.refresh_expires_at - pair.issued_at)
                .whole_seconds()
                .max(0),
            user: UserBody::from(&pair.user),
        }
    }
}

/// `Cache-Control` of every response that carries a token.
pub const NO_STORE: &str = "no-store";

/// The 429 of every exhausted budget or lock.
pub fn rate_limited(retry_after_secs: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "Too many attempts; retry later.",
    )
    .retry_after(retry_after_secs.max(1))
}

/// The answer to an infrastructure failure: 503 with `Retry-After` when
/// retrying can help, 500 otherwise.
pub fn failure(error: &Failure) -> ApiError {
    match error {
        Failure::Overloaded { retry_after_secs } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "The service is busy hashing passwords; retry shortly.",
        )
        .retry_after(*retry_after_secs),
        Failure::Unavailable(cause) => {
            tracing::warn!(error = %cause, "storage unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The service is temporarily unavailable; retry shortly.",
            )
            .retry_after(2)
        }
        Failure::Unexpected(cause) => ApiError::internal(cause),
    }
}

impl poem_openapi::types::Example for UserBody {
    fn example() -> Self {
        Self::example_value()
    }
}

impl poem_openapi::types::Example for TokenPairBody {
    fn example() -> Self {
        Self::example_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::problem_responses;
    use crate::problem::testing::{Answer, answer};

    problem_responses!(Answers {
        TooManyRequests = 429, retry_after: u32 => "Too many.",
        Internal = 500 => "An internal error.",
        Unavailable = 503, retry_after: u32 => "Unavailable.",
    });

    #[tokio::test]
    async fn every_failure_has_one_status_code_and_retry_after() {
        let cases = [
            (
                Failure::Overloaded {
                    retry_after_secs: 3,
                },
                Answer::new(503, "overloaded", Some("3")),
            ),
            (
                Failure::Unavailable(anyhow::anyhow!("connection refused")),
                Answer::new(503, "unavailable", Some("2")),
            ),
            (
                Failure::Unexpected(anyhow::anyhow!("corrupt row")),
                Answer::new(500, "internal", None),
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(answer(Answers::from(failure(&error))).await, expected);
        }
    }

    #[tokio::test]
    async fn rate_limited_always_says_when_to_retry() {
        assert_eq!(
            answer(Answers::from(rate_limited(7))).await,
            Answer::new(429, "rate_limited", Some("7"))
        );
        assert_eq!(
            answer(Answers::from(rate_limited(0))).await,
            Answer::new(429, "rate_limited", Some("1"))
        );
    }
}
