//! `POST /api/v1/auth/password/forgot`: ask for a reset link. The answer
//! never depends on the address (see the use case).

use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use portcullis_domain::account::{AccountService, ForgotPassword};
use portcullis_domain::context::RequestContext;
use portcullis_domain::email::Email;

use super::AcceptedBody;
use crate::problem::{ApiError, problem_responses};
use crate::routes::bounded::Bounded;

/// The address to send a reset link to, if an account has it.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ForgotPasswordRequest {
    /// The account's email address.
    pub email: Bounded<1, { Email::MAX_LEN }>,
}

impl poem_openapi::types::Example for ForgotPasswordRequest {
    fn example() -> Self {
        Self {
            email: Bounded("alice@example.com".to_owned()),
        }
    }
}

#[derive(ApiResponse)]
pub enum ForgotPasswordResponse {
    /// Always the same, whether or not an account has the address.
    #[oai(status = 202)]
    Accepted(Json<AcceptedBody>),
}

problem_responses!(ForgotPasswordErrors {
    BadRequest = 400 => "The body is not valid JSON or misses a field.",
    PayloadTooLarge = 413 => "The body exceeds 16 KiB.",
    UnsupportedMediaType = 415 => "The body is not `application/json`.",
    Unprocessable = 422 => "The email is not a valid address (`invalid_email`).",
    Internal = 500 => "An internal error.",
});

/// The one answer of every forgot-password request.
pub const FORGOT_MESSAGE: &str =
    "If an account uses this address, a link to reset its password is on its way.";

/// Starts a reset for `body.email`; answers the same whatever happens.
pub async fn forgot_password(
    account: &AccountService,
    ctx: &RequestContext,
    body: ForgotPasswordRequest,
) -> Result<ForgotPasswordResponse, ForgotPasswordErrors> {
    let email = Email::parse(body.email.as_str()).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_email",
            e.to_string(),
        )
    })?;
    account.forgot_password(ForgotPassword { email }, ctx).await;
    Ok(ForgotPasswordResponse::Accepted(AcceptedBody::new(
        FORGOT_MESSAGE,
    )))
}
