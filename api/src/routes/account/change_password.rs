//! `POST /api/v1/users/me/password`: a new password, with the current one.

use poem::http::StatusCode;
use poem_openapi::{ApiResponse, Object};
use portcullis_domain::account::{AccountService, ChangePassword, ChangePasswordError};
use portcullis_domain::context::{Principal, RequestContext};
use portcullis_domain::password::Password;

use super::{CurrentPasswordField, PasswordField, account_gone, password, wrong_password};
use crate::problem::{ApiError, problem_responses};
use crate::routes::bounded::Bounded;
use crate::routes::common::{failure, rate_limited};

/// The current password and the new one.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ChangePasswordRequest {
    pub current_password: CurrentPasswordField,
    /// Under the same policy as at sign-up.
    pub new_password: PasswordField,
}

impl poem_openapi::types::Example for ChangePasswordRequest {
    fn example() -> Self {
        Self {
            current_password: Bounded("correct horse battery staple 42".to_owned()),
            new_password: Bounded("a brand new passphrase at dusk".to_owned()),
        }
    }
}

#[derive(ApiResponse)]
pub enum ChangePasswordResponse {
    /// Changed; every other session of the account ended.
    #[oai(status = 204)]
    NoContent,
}

problem_responses!(ChangePasswordErrors {
    BadRequest = 400 => "The body is not valid JSON or misses a field.",
    Unauthorized = 401 => "No valid bearer access token (`invalid_token`).",
    Forbidden = 403 => "The current password is incorrect (`wrong_password`).",
    NotFound = 404 => "The account no longer exists.",
    PayloadTooLarge = 413 => "The body exceeds 16 KiB.",
    UnsupportedMediaType = 415 => "The body is not `application/json`.",
    Unprocessable = 422 => "The new password breaks the policy; `code` names the rule.",
    TooManyRequests = 429, retry_after: u32 => "Too many wrong passwords: the account is locked for a while.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The service is overloaded or its database is unreachable.",
});

impl From<ChangePasswordError> for ChangePasswordErrors {
    fn from(error: ChangePasswordError) -> Self {
        match error {
            ChangePasswordError::WrongPassword => wrong_password(),
            ChangePasswordError::WeakPassword(rejection) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                rejection.code(),
                rejection.to_string(),
            ),
            ChangePasswordError::RateLimited { retry_after_secs } => rate_limited(retry_after_secs),
            ChangePasswordError::NotFound => account_gone(),
            ChangePasswordError::Failure(error) => failure(&error),
        }
        .into()
    }
}

/// Changes the caller's password.
pub async fn change_password(
    account: &AccountService,
    ctx: &RequestContext,
    caller: &Principal,
    body: ChangePasswordRequest,
) -> Result<ChangePasswordResponse, ChangePasswordErrors> {
    let input = ChangePassword {
        current_password: Password::new(body.current_password.0),
        new_password: password(body.new_password),
    };
    account.change_password(caller, input, ctx).await?;
    Ok(ChangePasswordResponse::NoContent)
}

#[cfg(test)]
mod tests {
    use portcullis_domain::password::PasswordRejection;

    use super::*;
    use crate::problem::testing::{Answer, answer, failure_cases};

    #[tokio::test]
    async fn every_change_password_error_has_one_status_and_code() {
        let mut cases = vec![
            (
                ChangePasswordError::WrongPassword,
                Answer::new(403, "wrong_password", None),
            ),
            (
                ChangePasswordError::WeakPassword(PasswordRejection::TooShort { min: 15 }),
                Answer::new(422, "password_too_short", None),
            ),
            (
                ChangePasswordError::RateLimited {
                    retry_after_secs: 900,
                },
                Answer::new(429, "rate_limited", Some("900")),
            ),
            (
                ChangePasswordError::NotFound,
                Answer::new(404, "not_found", None),
            ),
        ];
        cases.extend(failure_cases().map(|(f, a)| (ChangePasswordError::Failure(f), a)));
        for (error, expected) in cases {
            let shown = format!("{error:?}");
            assert_eq!(
                answer(ChangePasswordErrors::from(error)).await,
                expected,
                "{shown}"
            );
        }
    }
}
