//! `POST /api/v1/users/me/delete`: delete the caller's account.

use poem_openapi::{ApiResponse, Object};
use portcullis_domain::account::{AccountService, DeleteAccount, DeleteAccountError};
use portcullis_domain::context::{Principal, RequestContext};
use portcullis_domain::password::Password;

use super::{CurrentPasswordField, account_gone, wrong_password};
use crate::problem::problem_responses;
use crate::routes::bounded::Bounded;
use crate::routes::common::{failure, rate_limited};

/// The current password.
#[derive(Debug, Object)]
#[oai(example)]
pub struct DeleteAccountRequest {
    pub current_password: CurrentPasswordField,
}

impl poem_openapi::types::Example for DeleteAccountRequest {
    fn example() -> Self {
        Self {
            current_password: Bounded("correct horse battery staple 42".to_owned()),
        }
    }
}

#[derive(ApiResponse)]
pub enum DeleteAccountResponse {
    /// Deleted; every token of the account stopped working.
    #[oai(status = 204)]
    NoContent,
}

problem_responses!(DeleteAccountErrors {
    BadRequest = 400 => "The body is not valid JSON or misses a field.",
    Unauthorized = 401 => "No valid bearer access token (`invalid_token`).",
    Forbidden = 403 => "The current password is incorrect (`wrong_password`).",
    NotFound = 404 => "The account no longer exists.",
    PayloadTooLarge = 413 => "The body exceeds 16 KiB.",
    UnsupportedMediaType = 415 => "The body is not `application/json`.",
    TooManyRequests = 429, retry_after: u32 => "Too many wrong passwords: the account is locked for a while.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The service is overloaded or its database is unreachable.",
});

impl From<DeleteAccountError> for DeleteAccountErrors {
    fn from(error: DeleteAccountError) -> Self {
        match error {
            DeleteAccountError::WrongPassword => wrong_password(),
            DeleteAccountError::RateLimited { retry_after_secs } => rate_limited(retry_after_secs),
            DeleteAccountError::NotFound => account_gone(),
            DeleteAccountError::Failure(error) => failure(&error),
        }
        .into()
    }
}

/// Deletes the caller's account.
pub async fn delete_account(
    account: &AccountService,
    ctx: &RequestContext,
    caller: &Principal,
    body: DeleteAccountRequest,
) -> Result<DeleteAccountResponse, DeleteAccountErrors> {
    let input = DeleteAccount {
        current_password: Password::new(body.current_password.0),
    };
    account.delete_account(caller, input, ctx).await?;
    Ok(DeleteAccountResponse::NoContent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::testing::{Answer, answer, failure_cases};

    #[tokio::test]
    async fn every_delete_error_has_one_status_and_code() {
        let mut cases = vec![
            (
                DeleteAccountError::WrongPassword,
                Answer::new(403, "wrong_password", None),
            ),
            (
                DeleteAccountError::RateLimited {
                    retry_after_secs: 900,
                },
                Answer::new(429, "rate_limited", Some("900")),
            ),
            (
                DeleteAccountError::NotFound,
                Answer::new(404, "not_found", None),
            ),
        ];
        cases.extend(failure_cases().map(|(f, a)| (DeleteAccountError::Failure(f), a)));
        for (error, expected) in cases {
            let shown = format!("{error:?}");
            assert_eq!(
                answer(DeleteAccountErrors::from(error)).await,
                expected,
                "{shown}"
            );
        }
    }
}
