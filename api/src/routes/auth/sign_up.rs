//! `POST /api/v1/auth/signup`: create an account and its first session.

use poem::http::StatusCode;
use poem_openapi::ApiResponse;
use poem_openapi::payload::Json;
use portcullis_domain::auth::{AuthService, SignUp, SignUpError};
use portcullis_domain::context::RequestContext;

use crate::problem::{ApiError, problem_responses};
use crate::routes::auth::credentials::Credentials;
use crate::routes::common::{NO_STORE, TokenPairBody, failure, rate_limited};

#[derive(ApiResponse)]
pub enum SignUpResponse {
    /// The account was created; here is its first token pair.
    #[oai(status = 201)]
    Created(Json<TokenPairBody>, #[oai(header = "Cache-Control")] String),
}

problem_responses!(SignUpErrors {
    BadRequest = 400 => "The body is not valid JSON or misses a field.",
    Conflict = 409 => "The email is already registered (`email_taken`).",
    PayloadTooLarge = 413 => "The body exceeds 16 KiB.",
    UnsupportedMediaType = 415 => "The body is not `application/json`.",
    Unprocessable = 422 => "The email is invalid or the password breaks the policy; `code` names the rule.",
    TooManyRequests = 429, retry_after: u32 => "Too many sign-ups from this client.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The service is overloaded or its database is unreachable.",
});

impl From<SignUpError> for SignUpErrors {
    fn from(error: SignUpError) -> Self {
        match error {
            SignUpError::WeakPassword(rejection) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                rejection.code(),
                rejection.to_string(),
            ),
            SignUpError::EmailTaken => ApiError::new(
                StatusCode::CONFLICT,
                "email_taken",
                "An account with this email already exists.",
            ),
            SignUpError::RateLimited { retry_after_secs } => rate_limited(retry_after_secs),
            SignUpError::Failure(error) => failure(&error),
        }
        .into()
    }
}

/// Signs up with `body`'s credentials.
pub async fn sign_up(
    auth: &AuthService,
    ctx: &RequestContext,
    body: Credentials,
) -> Result<SignUpResponse, SignUpErrors> {
    let (email, password) = body.try_into_domain()?;
    let pair = auth.sign_up(SignUp { email, password }, ctx).await?;
    Ok(SignUpResponse::Created(
        Json(TokenPairBody::from(&pair)),
        NO_STORE.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use portcullis_domain::error::Failure;
    use portcullis_domain::password::PasswordRejection;

    use super::*;
    use crate::problem::testing::{Answer, answer};

    #[tokio::test]
    async fn every_sign_up_error_has_one_status_code_and_retry_after() {
        let cases = [
            (
                SignUpError::WeakPassword(PasswordRejection::TooShort { min: 15 }),
                Answer::new(422, "password_too_short", None),
            ),
            (
                SignUpError::WeakPassword(PasswordRejection::TooLong { max: 128 }),
                Answer::new(422, "password_too_long", None),
            ),
            (
                SignUpError::WeakPassword(PasswordRejection::Common),
                Answer::new(422, "password_common", None),
            ),
            (
                SignUpError::WeakPassword(PasswordRejection::ContainsEmail),
                Answer::new(422, "password_contains_email", None),
            ),
            (
                SignUpError::WeakPassword(PasswordRejection::ContainsServiceName),
                Answer::new(422, "password_contains_service_name", None),
            ),
            (
                SignUpError::EmailTaken,
                Answer::new(409, "email_taken", None),
            ),
            (
                SignUpError::RateLimited {
                    retry_after_secs: 42,
                },
                Answer::new(429, "rate_limited", Some("42")),
            ),
            (
                SignUpError::Failure(Failure::Overloaded {
                    retry_after_secs: 3,
                }),
                Answer::new(503, "overloaded", Some("3")),
            ),
            (
                SignUpError::Failure(Failure::Unavailable(anyhow::anyhow!("refused"))),
                Answer::new(503, "unavailable", Some("2")),
            ),
            (
                SignUpError::Failure(Failure::Unexpected(anyhow::anyhow!("bug"))),
                Answer::new(500, "internal", None),
            ),
        ];
        for (error, expected) in cases {
            let shown = format!("{error:?}");
            assert_eq!(answer(SignUpErrors::from(error)).await, expected, "{shown}");
        }
    }
}
