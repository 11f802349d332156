//! What turning TOTP off and making new recovery codes share: the body
//! (current password and current second factor) and the error mapping.

use poem::http::StatusCode;
use poem_openapi::Object;
use portcullis_domain::mfa::{DisableTotp, FactorChangeError};
use portcullis_domain::password::Password;

use super::{RecoveryCodeField, TotpCodeField, example_code, invalid_code, proof_of};
use crate::problem::{ApiError, problem_responses};
use crate::routes::account::{CurrentPasswordField, account_gone, wrong_password};
use crate::routes::bounded::Bounded;
use crate::routes::common::{failure, rate_limited};

/// The current password and the current second factor: a TOTP code or a
/// recovery code (exactly one).
#[derive(Debug, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct FactorChangeRequest {
    pub current_password: CurrentPasswordField,
    pub totp_code: Option<TotpCodeField>,
    pub recovery_code: Option<RecoveryCodeField>,
}

impl poem_openapi::types::Example for FactorChangeRequest {
    fn example() -> Self {
        Self {
            current_password: Bounded("correct horse battery staple 42".to_owned()),
            totp_code: Some(example_code()),
            recovery_code: None,
        }
    }
}

impl FactorChangeRequest {
    /// The domain input.
    ///
    /// # Errors
    /// No code, both codes, or a malformed one.
    pub fn try_into_domain(self) -> Result<DisableTotp, ApiError> {
        let proof = proof_of(self.totp_code, self.recovery_code)?.ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "second_factor_required",
                "Send a code from the authenticator app (`totp_code`) or a recovery code.",
            )
        })?;
        Ok(DisableTotp {
            current_password: Password::new(self.current_password.0),
            proof,
        })
    }
}

problem_responses!(FactorChangeErrors {
    BadRequest = 400 => "The body is not valid JSON, misses a field, or holds both codes (`ambiguous_second_factor`).",
    Unauthorized = 401 => "No valid bearer access token (`invalid_token`).",
    Forbidden = 403 => "The current password is incorrect (`wrong_password`), or the code is missing (`second_factor_required`), wrong, replayed or spent (`invalid_second_factor`).",
    NotFound = 404 => "The account no longer exists.",
    Conflict = 409 => "The account has no active second factor (`no_second_factor`).",
    PayloadTooLarge = 413 => "The body exceeds 16 KiB.",
    UnsupportedMediaType = 415 => "The body is not `application/json`.",
    TooManyRequests = 429, retry_after: u32 => "Too many wrong passwords or codes: the account is locked for a while.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The service is overloaded or its database is unreachable.",
});

impl From<FactorChangeError> for FactorChangeErrors {
    fn from(error: FactorChangeError) -> Self {
        match error {
            FactorChangeError::WrongPassword => wrong_password(),
            FactorChangeError::InvalidSecondFactor => invalid_code(),
            FactorChangeError::RateLimited { retry_after_secs } => rate_limited(retry_after_secs),
            FactorChangeError::NoSecondFactor => ApiError::new(
                StatusCode::CONFLICT,
                "no_second_factor",
                "The account has no active second factor.",
            ),
            FactorChangeError::NotFound => account_gone(),
            FactorChangeError::Failure(error) => failure(&error),
        }
        .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::testing::{Answer, answer, failure_cases};

    #[tokio::test]
    async fn every_factor_change_error_has_one_status_and_code() {
        let mut cases = vec![
            (
                FactorChangeError::WrongPassword,
                Answer::new(403, "wrong_password", None),
            ),
            (
                FactorChangeError::InvalidSecondFactor,
                Answer::new(403, "invalid_second_factor", None),
            ),
            (
                FactorChangeError::RateLimited {
                    retry_after_secs: 5,
                },
                Answer::new(429, "rate_limited", Some("5")),
            ),
            (
                FactorChangeError::NoSecondFactor,
                Answer::new(409, "no_second_factor", None),
            ),
            (
                FactorChangeError::NotFound,
                Answer::new(404, "not_found", None),
            ),
        ];
        cases.extend(failure_cases().map(|(f, a)| (FactorChangeError::Failure(f), a)));
        for (error, expected) in cases {
            let shown = format!("{error:?}");
            assert_eq!(
                answer(FactorChangeErrors::from(error)).await,
                expected,
                "{shown}"
            );
        }
    }
}
