//! `POST /api/v1/auth/email/verify`: the token of a verification or
//! email-change link, posted back by the page the link opens.

use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use portcullis_domain::account::{AccountService, VerifyEmail, VerifyEmailError};
use portcullis_domain::context::RequestContext;

use super::{EXAMPLE_TOKEN, TokenField, invalid_token, parse_token};
use crate::problem::{ApiError, problem_responses};
use crate::routes::bounded::Bounded;
use crate::routes::common::{UserBody, failure};

/// The token of the link.
#[derive(Debug, Object)]
#[oai(example)]
pub struct VerifyEmailRequest {
    /// The 43 characters after `#token=` in the link.
    pub token: TokenField,
}

/// The account after the confirmation.
#[derive(Debug, Object)]
#[oai(example)]
pub struct VerifiedBody {
    pub user: UserBody,
}

impl poem_openapi::types::Example for VerifyEmailRequest {
    fn example() -> Self {
        Self {
            token: Bounded(EXAMPLE_TOKEN.to_owned()),
        }
    }
}

impl poem_openapi::types::Example for VerifiedBody {
    fn example() -> Self {
        Self {
            user: UserBody::example_value(),
        }
    }
}

#[derive(ApiResponse)]
pub enum VerifyEmailResponse {
    /// The address is confirmed (and, for an email change, now the account's).
    #[oai(status = 200)]
    Ok(Json<VerifiedBody>),
}

problem_responses!(VerifyEmailErrors {
    BadRequest = 400 => "The body is not valid JSON, or the token is invalid, used or expired (`invalid_token`).",
    Conflict = 409 => "The new address of an email change belongs to another account by now (`email_taken`).",
    PayloadTooLarge = 413 => "The body exceeds 16 KiB.",
    UnsupportedMediaType = 415 => "The body is not `application/json`.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The database is unreachable.",
});

impl From<VerifyEmailError> for VerifyEmailErrors {
    fn from(error: VerifyEmailError) -> Self {
        match error {
            VerifyEmailError::InvalidToken => invalid_token(),
            VerifyEmailError::EmailTaken => ApiError::new(
                StatusCode::CONFLICT,
                "email_taken",
                "Another account uses this address by now.",
            ),
            VerifyEmailError::Failure(error) => failure(&error),
        }
        .into()
    }
}

/// Confirms the address of `body`'s token.
pub async fn verify_email(
    account: &AccountService,
    ctx: &RequestContext,
    body: VerifyEmailRequest,
) -> Result<VerifyEmailResponse, VerifyEmailErrors> {
    let token = parse_token(body.token)?;
    let profile = account.verify_email(VerifyEmail { token }, ctx).await?;
    Ok(VerifyEmailResponse::Ok(Json(VerifiedBody {
        user: UserBody::from(&profile),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::testing::{Answer, answer, failure_cases};

    #[tokio::test]
    async fn every_verify_email_error_has_one_status_and_code() {
        let mut cases = vec![
            (
                VerifyEmailError::InvalidToken,
                Answer::new(400, "invalid_token", None),
            ),
            (
                VerifyEmailError::EmailTaken,
                Answer::new(409, "email_taken", None),
            ),
        ];
        cases.extend(failure_cases().map(|(f, a)| (VerifyEmailError::Failure(f), a)));
        for (error, expected) in cases {
            let shown = format!("{error:?}");
            assert_eq!(
                answer(VerifyEmailErrors::from(error)).await,
                expected,
                "{shown}"
            );
        }
    }
}
