//! `POST /api/v1/auth/refresh`: exchange a refresh token for a new pair of
//! the same session, rotating it.

use std::time::Instant;

use opentelemetry::KeyValue;
use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use portcullis_domain::auth::{Refresh, RefreshError};
use portcullis_domain::context::RequestContext;
use portcullis_domain::session::RefreshToken;

use crate::problem::{ApiError, problem_responses};
use crate::routes::common::{NO_STORE, TokenPairBody, failure, rate_limited};
use crate::state::AppState;

/// A refresh token to exchange.
#[derive(Debug, Object)]
#[oai(example)]
pub struct RefreshRequest {
    /// The refresh token of the latest token pair.
    #[oai(validator(max_length = 4096))]
    pub refresh_token: String,
}

impl RefreshRequest {
    fn example_value() -> Self {
        Self {
            refresh_token: "q3Jk0yq1yVbqQm3a8mF6Qm1b0Jm8u8g8m2t2u3vYc8w".to_owned(),
        }
    }

    /// The presented token, parsed at the edge. A string that cannot be one
    /// of ours (wrong length or alphabet) is carried as malformed: the domain
    /// still counts it against the client's refresh budget (429 once spent)
    /// before it answers `InvalidGrant`.
    pub fn try_into_domain(&self) -> Refresh {
        Refresh {
            token: RefreshToken::parse(&self.refresh_token),
        }
    }
}

impl poem_openapi::types::Example for RefreshRequest {
    fn example() -> Self {
        Self::example_value()
    }
}

#[derive(ApiResponse)]
pub enum RefreshResponse {
    /// A new token pair.
    #[oai(status = 200)]
    Ok(Json<TokenPairBody>, #[oai(header = "Cache-Control")] String),
}

problem_responses!(RefreshErrors {
    BadRequest = 400 => "The body is not valid JSON or misses a field.",
    Unauthorized = 401 => "The refresh token is unknown, expired, revoked or reused (`invalid_grant`).",
    PayloadTooLarge = 413 => "The body exceeds 16 KiB.",
    UnsupportedMediaType = 415 => "The body is not `application/json`.",
    TooManyRequests = 429, retry_after: u32 => "Too many refreshes from this client.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The database is unreachable.",
});

impl From<RefreshError> for RefreshErrors {
    fn from(error: RefreshError) -> Self {
        match error {
            // One answer for both: the distinction is for the audit trail.
            RefreshError::InvalidGrant | RefreshError::Reused { .. } => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_grant",
                "The refresh token is invalid, expired or revoked.",
            ),
            RefreshError::RateLimited { retry_after_secs } => rate_limited(retry_after_secs),
            RefreshError::Failure(error) => failure(&error),
        }
        .into()
    }
}

/// Rotates `body`'s refresh token; the duration is measured by outcome.
pub async fn refresh(
    state: &AppState,
    ctx: &RequestContext,
    body: RefreshRequest,
) -> Result<RefreshResponse, RefreshErrors> {
    let started = Instant::now();
    let result = state.auth.refresh(body.try_into_domain(), ctx).await;
    let outcome = result
        .as_ref()
        .map_or_else(RefreshError::outcome, |_| "success");
    state.metrics.refresh_duration.record(
        started.elapsed().as_secs_f64(),
        &[KeyValue::new("outcome", outcome)],
    );
    let pair = result?;
    Ok(RefreshResponse::Ok(
        Json(TokenPairBody::from(&pair)),
        NO_STORE.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use portcullis_domain::error::Failure;
    use portcullis_domain::ids::SessionId;
    use portcullis_domain::ids::UserId;
    use portcullis_domain::session::MalformedRefreshToken;

    use super::*;
    use crate::problem::testing::{Answer, answer};

    #[tokio::test]
    async fn every_refresh_error_has_one_status_code_and_retry_after() {
        let cases = [
            (
                RefreshError::InvalidGrant,
                Answer::new(401, "invalid_grant", None),
            ),
            (
                RefreshError::Reused {
                    session_id: SessionId::new(),
                    user_id: UserId::new(),
                },
                Answer::new(401, "invalid_grant", None),
            ),
            (
                RefreshError::RateLimited {
                    retry_after_secs: 60,
                },
                Answer::new(429, "rate_limited", Some("60")),
            ),
            (
                RefreshError::Failure(Failure::Overloaded {
                    retry_after_secs: 3,
                }),
                Answer::new(503, "overloaded", Some("3")),
            ),
            (
                RefreshError::Failure(Failure::Unavailable(anyhow::anyhow!("refused"))),
                Answer::new(503, "unavailable", Some("2")),
            ),
            (
                RefreshError::Failure(Failure::Unexpected(anyhow::anyhow!("bug"))),
                Answer::new(500, "internal", None),
            ),
        ];
        for (error, expected) in cases {
            let shown = format!("{error:?}");
            assert_eq!(
                answer(RefreshErrors::from(error)).await,
                expected,
                "{shown}"
            );
        }
    }

    #[test]
    fn only_well_formed_tokens_parse_at_the_edge() {
        let presented = |token: &str| RefreshRequest {
            refresh_token: token.to_owned(),
        };
        assert!(presented(&"A".repeat(43)).try_into_domain().token.is_ok());
        for malformed in ["", "short", &"!".repeat(43), &"x".repeat(4096)] {
            assert_eq!(
                presented(malformed).try_into_domain().token.unwrap_err(),
                MalformedRefreshToken
            );
        }
    }
}
