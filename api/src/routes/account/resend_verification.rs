//! `POST /api/v1/users/me/email/verification`: a new verification link.

use poem::http::StatusCode;
use poem_openapi::ApiResponse;
use poem_openapi::payload::Json;
use portcullis_domain::account::{AccountService, ResendVerificationError};
use portcullis_domain::context::{Principal, RequestContext};

use super::{AcceptedBody, account_gone};
use crate::problem::{ApiError, problem_responses};
use crate::routes::common::{failure, rate_limited};

#[derive(ApiResponse)]
pub enum ResendResponse {
    /// A new link is on its way; the older one stopped working.
    #[oai(status = 202)]
    Accepted(Json<AcceptedBody>),
}

problem_responses!(ResendErrors {
    Unauthorized = 401 => "No valid bearer access token (`invalid_token`).",
    NotFound = 404 => "The account no longer exists.",
    Conflict = 409 => "The address is confirmed already (`email_already_verified`).",
    TooManyRequests = 429, retry_after: u32 => "A link was sent less than a minute ago.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The database is unreachable.",
});

impl From<ResendVerificationError> for ResendErrors {
    fn from(error: ResendVerificationError) -> Self {
        match error {
            ResendVerificationError::AlreadyVerified => ApiError::new(
                StatusCode::CONFLICT,
                "email_already_verified",
                "The address is confirmed already.",
            ),
            ResendVerificationError::RateLimited { retry_after_secs } => {
                rate_limited(retry_after_secs)
            }
            ResendVerificationError::NotFound => account_gone(),
            ResendVerificationError::Failure(error) => failure(&error),
        }
        .into()
    }
}

/// Sends the caller a new verification link.
pub async fn resend(
    account: &AccountService,
    ctx: &RequestContext,
    caller: &Principal,
) -> Result<ResendResponse, ResendErrors> {
    account.resend_verification(caller, ctx).await?;
    Ok(ResendResponse::Accepted(AcceptedBody::new(
        "A new verification link is on its way.",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::testing::{Answer, answer, failure_cases};

    #[tokio::test]
    async fn every_resend_error_has_one_status_and_code() {
        let mut cases = vec![
            (
                ResendVerificationError::AlreadyVerified,
                Answer::new(409, "email_already_verified", None),
            ),
            (
                ResendVerificationError::RateLimited {
                    retry_after_secs: 42,
                },
                Answer::new(429, "rate_limited", Some("42")),
            ),
            (
                ResendVerificationError::NotFound,
                Answer::new(404, "not_found", None),
            ),
        ];
        cases.extend(failure_cases().map(|(f, a)| (ResendVerificationError::Failure(f), a)));
        for (error, expected) in cases {
            let shown = format!("{error:?}");
            assert_eq!(answer(ResendErrors::from(error)).await, expected, "{shown}");
        }
    }
}
