//! `POST /api/v1/auth/login`: verify an email and password, open a session.

use std::time::Instant;

use opentelemetry::KeyValue;
use poem::http::StatusCode;
use poem_openapi::ApiResponse;
use poem_openapi::payload::Json;
use portcullis_domain::auth::{LogIn, LogInError};
use portcullis_domain::context::RequestContext;

use crate::problem::{ApiError, problem_responses};
use crate::routes::auth::credentials::Credentials;
use crate::routes::common::{NO_STORE, TokenPairBody, failure, rate_limited};
use crate::state::AppState;

#[derive(ApiResponse)]
pub enum LogInResponse {
    /// A new token pair.
    #[oai(status = 200)]
    Ok(Json<TokenPairBody>, #[oai(header = "Cache-Control")] String),
}

problem_responses!(LogInErrors {
    BadRequest = 400 => "The body is not valid JSON or misses a field.",
    Unauthorized = 401 => "The email or password is incorrect (`invalid_credentials`), whatever the cause; or the password is right and the account has a second factor (`mfa_required`, with `mfa_token` and `methods`: continue at `POST /api/v1/auth/mfa/verify`).",
    Forbidden = 403 => "The password is right but the address is not confirmed yet and the service requires it (`email_not_verified`).",
    PayloadTooLarge = 413 => "The body exceeds 16 KiB.",
    UnsupportedMediaType = 415 => "The body is not `application/json`.",
    Unprocessable = 422 => "The email is not a valid address.",
    TooManyRequests = 429, retry_after: u32 => "Too many attempts.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The service is overloaded or its database is unreachable.",
});

impl From<LogInError> for LogInErrors {
    fn from(error: LogInError) -> Self {
        match error {
            LogInError::InvalidCredentials => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "The email or password is incorrect.",
            ),
            LogInError::EmailNotVerified => ApiError::new(
                StatusCode::FORBIDDEN,
                "email_not_verified",
                "Confirm your email address with the link we sent, then log in again.",
            ),
            LogInError::SecondFactorRequired { mfa_token, methods } => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "mfa_required",
                "The password is right; this account also needs its second factor.",
            )
            .second_step(mfa_token.expose(), &methods),
            LogInError::RateLimited { retry_after_secs } => rate_limited(retry_after_secs),
            LogInError::Failure(error) => failure(&error),
        }
        .into()
    }
}

/// Logs in with `body`'s credentials; the duration is measured by outcome.
pub async fn log_in(
    state: &AppState,
    ctx: &RequestContext,
    body: Credentials,
) -> Result<LogInResponse, LogInErrors> {
    let (email, password) = body.try_into_domain()?;
    let started = Instant::now();
    let result = state.auth.log_in(LogIn { email, password }, ctx).await;
    let outcome = result
        .as_ref()
        .map_or_else(LogInError::outcome, |_| "success");
    state.metrics.login_duration.record(
        started.elapsed().as_secs_f64(),
        &[KeyValue::new("outcome", outcome)],
    );
    let pair = result?;
    Ok(LogInResponse::Ok(
        Json(TokenPairBody::from(&pair)),
        NO_STORE.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use portcullis_domain::error::Failure;

    use super::*;
    use crate::problem::testing::{Answer, answer};

    #[tokio::test]
    async fn every_log_in_error_has_one_status_code_and_retry_after() {
        let cases = [
            (
                LogInError::InvalidCredentials,
                Answer::new(401, "invalid_credentials", None),
            ),
            (
                LogInError::EmailNotVerified,
                Answer::new(403, "email_not_verified", None),
            ),
            (
                LogInError::SecondFactorRequired {
                    mfa_token: portcullis_domain::one_time::OneTimeToken::from_generated(
                        "A".repeat(43),
                    ),
                    methods: vec!["totp"],
                },
                Answer::new(401, "mfa_required", None),
            ),
            (
                LogInError::RateLimited {
                    retry_after_secs: 900,
                },
                Answer::new(429, "rate_limited", Some("900")),
            ),
            (
                LogInError::Failure(Failure::Overloaded {
                    retry_after_secs: 3,
                }),
                Answer::new(503, "overloaded", Some("3")),
            ),
            (
                LogInError::Failure(Failure::Unavailable(anyhow::anyhow!("refused"))),
                Answer::new(503, "unavailable", Some("2")),
            ),
            (
                LogInError::Failure(Failure::Unexpected(anyhow::anyhow!("bug"))),
                Answer::new(500, "internal", None),
            ),
        ];
        for (error, expected) in cases {
            let shown = format!("{error:?}");
            assert_eq!(answer(LogInErrors::from(error)).await, expected, "{shown}");
        }
    }
}
