//! `POST /api/v1/users/me/email`: ask to move the account to a new address.

use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use portcullis_domain::account::{AccountService, ChangeEmail, ChangeEmailError};
use portcullis_domain::context::{Principal, RequestContext};
use portcullis_domain::email::Email;
use portcullis_domain::password::Password;

use super::{AcceptedBody, CurrentPasswordField, account_gone, wrong_password};
use crate::problem::{ApiError, problem_responses};
use crate::routes::bounded::Bounded;
use crate::routes::common::{failure, rate_limited};

/// The new address and the current password.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ChangeEmailRequest {
    /// The address to move to; it gets the confirmation link.
    pub new_email: Bounded<1, { Email::MAX_LEN }>,
    pub current_password: CurrentPasswordField,
}

impl poem_openapi::types::Example for ChangeEmailRequest {
    fn example() -> Self {
        Self {
            new_email: Bounded("alice@new.example.com".to_owned()),
            current_password: Bounded("correct horse battery staple 42".to_owned()),
        }
    }
}

#[derive(ApiResponse)]
pub enum ChangeEmailResponse {
    /// A confirmation link is on its way to the new address (unless another
    /// account has it: then nothing happens, and the answer is the same).
    #[oai(status = 202)]
    Accepted(Json<AcceptedBody>),
}

problem_responses!(ChangeEmailErrors {
    BadRequest = 400 => "The body is not valid JSON or misses a field.",
    Unauthorized = 401 => "No valid bearer access token (`invalid_token`).",
    Forbidden = 403 => "The current password is incorrect (`wrong_password`).",
    NotFound = 404 => "The account no longer exists.",
    PayloadTooLarge = 413 => "The body exceeds 16 KiB.",
    UnsupportedMediaType = 415 => "The body is not `application/json`.",
    Unprocessable = 422 => "The new email is not a valid address (`invalid_email`).",
    TooManyRequests = 429, retry_after: u32 => "Too many wrong passwords: the account is locked for a while.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The service is overloaded or its database is unreachable.",
});

impl From<ChangeEmailError> for ChangeEmailErrors {
    fn from(error: ChangeEmailError) -> Self {
        match error {
            ChangeEmailError::WrongPassword => wrong_password(),
            ChangeEmailError::RateLimited { retry_after_secs } => rate_limited(retry_after_secs),
            ChangeEmailError::NotFound => account_gone(),
            ChangeEmailError::Failure(error) => failure(&error),
        }
        .into()
    }
}

/// Sends the confirmation link of an email change.
pub async fn change_email(
    account: &AccountService,
    ctx: &RequestContext,
    caller: &Principal,
    body: ChangeEmailRequest,
) -> Result<ChangeEmailResponse, ChangeEmailErrors> {
    let new_email = Email::parse(body.new_email.as_str()).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_email",
            e.to_string(),
        )
    })?;
    let input = ChangeEmail {
        new_email,
        current_password: Password::new(body.current_password.0),
    };
    account.change_email(caller, input, ctx).await?;
    Ok(ChangeEmailResponse::Accepted(AcceptedBody::new(
        "A confirmation link is on its way to the new address; nothing changes until it is used.",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::testing::{Answer, answer, failure_cases};

    #[tokio::test]
    async fn every_change_email_error_has_one_status_and_code() {
        let mut cases = vec![
            (
                ChangeEmailError::WrongPassword,
                Answer::new(403, "wrong_password", None),
            ),
            (
                ChangeEmailError::RateLimited {
                    retry_after_secs: 900,
                },
                Answer::new(429, "rate_limited", Some("900")),
            ),
            (
                ChangeEmailError::NotFound,
                Answer::new(404, "not_found", None),
            ),
        ];
        cases.extend(failure_cases().map(|(f, a)| (ChangeEmailError::Failure(f), a)));
        for (error, expected) in cases {
            let shown = format!("{error:?}");
            assert_eq!(
                answer(ChangeEmailErrors::from(error)).await,
                expected,
                "{shown}"
            );
        }
    }
}
