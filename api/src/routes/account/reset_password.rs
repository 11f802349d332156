//! `POST /api/v1/auth/password/reset`: a new password with the token of a
//! reset link.

use poem::http::StatusCode;
use poem_openapi::{ApiResponse, Object};
use portcullis_domain::account::{AccountService, ResetPassword, ResetPasswordError};
use portcullis_domain::context::RequestContext;

use super::{EXAMPLE_TOKEN, PasswordField, TokenField, invalid_token, parse_token, password};
use crate::problem::{ApiError, problem_responses};
use crate::routes::bounded::Bounded;
use crate::routes::common::{failure, rate_limited};
use crate::routes::mfa::{RecoveryCodeField, TotpCodeField, invalid_code, proof_of};

/// The token of the link and the new password.
#[derive(Debug, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct ResetPasswordRequest {
    /// The 43 characters after `#token=` in the link.
    pub token: TokenField,
    /// The new password, under the same policy as at sign-up.
    pub new_password: PasswordField,
    /// For an account with a second factor: six digits from the app...
    pub totp_code: Option<TotpCodeField>,
    /// ...or one of its recovery codes.
    pub recovery_code: Option<RecoveryCodeField>,
}

impl poem_openapi::types::Example for ResetPasswordRequest {
    fn example() -> Self {
        Self {
            token: Bounded(EXAMPLE_TOKEN.to_owned()),
            new_password: Bounded("a brand new passphrase at dusk".to_owned()),
            totp_code: None,
            recovery_code: None,
        }
    }
}

#[derive(ApiResponse)]
pub enum ResetPasswordResponse {
    /// The password is changed and every session of the account ended.
    #[oai(status = 204)]
    NoContent,
}

problem_responses!(ResetPasswordErrors {
    BadRequest = 400 => "The body is not valid JSON, or the token is invalid, used or expired (`invalid_token`).",
    Forbidden = 403 => "The account has a second factor: a code is missing (`second_factor_required`), or wrong, replayed or spent (`invalid_second_factor`).",
    PayloadTooLarge = 413 => "The body exceeds 16 KiB.",
    UnsupportedMediaType = 415 => "The body is not `application/json`.",
    Unprocessable = 422 => "The new password breaks the policy; `code` names the rule.",
    TooManyRequests = 429, retry_after: u32 => "Too many wrong codes: the account is locked for a while.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The service is overloaded or its database is unreachable.",
});

impl From<ResetPasswordError> for ResetPasswordErrors {
    fn from(error: ResetPasswordError) -> Self {
        match error {
            ResetPasswordError::InvalidToken => invalid_token(),
            ResetPasswordError::WeakPassword(rejection) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                rejection.code(),
                rejection.to_string(),
            ),
            ResetPasswordError::SecondFactorRequired => ApiError::new(
                StatusCode::FORBIDDEN,
                "second_factor_required",
                "This account has two-step sign-in: add a code from the authenticator app, or a recovery code.",
            ),
            ResetPasswordError::InvalidSecondFactor => invalid_code(),
            ResetPasswordError::RateLimited { retry_after_secs } => rate_limited(retry_after_secs),
            ResetPasswordError::Failure(error) => failure(&error),
        }
        .into()
    }
}

/// Resets the password of `body`'s token.
pub async fn reset_password(
    account: &AccountService,
    ctx: &RequestContext,
    body: ResetPasswordRequest,
) -> Result<ResetPasswordResponse, ResetPasswordErrors> {
    let token = parse_token(body.token)?;
    let proof = proof_of(body.totp_code, body.recovery_code)?;
    let new_password = password(body.new_password);
    account
        .reset_password(
            ResetPassword {
                token,
                new_password,
                proof,
            },
            ctx,
        )
        .await?;
    Ok(ResetPasswordResponse::NoContent)
}

#[cfg(test)]
mod tests {
    use portcullis_domain::password::PasswordRejection;

    use super::*;
    use crate::problem::testing::{Answer, answer, failure_cases};

    #[tokio::test]
    async fn every_reset_error_has_one_status_and_code() {
        let mut cases = vec![
            (
                ResetPasswordError::InvalidToken,
                Answer::new(400, "invalid_token", None),
            ),
            (
                ResetPasswordError::WeakPassword(PasswordRejection::Common),
                Answer::new(422, "password_common", None),
            ),
            (
                ResetPasswordError::SecondFactorRequired,
                Answer::new(403, "second_factor_required", None),
            ),
            (
                ResetPasswordError::InvalidSecondFactor,
                Answer::new(403, "invalid_second_factor", None),
            ),
            (
                ResetPasswordError::RateLimited {
                    retry_after_secs: 7,
                },
                Answer::new(429, "rate_limited", Some("7")),
            ),
        ];
        cases.extend(failure_cases().map(|(f, a)| (ResetPasswordError::Failure(f), a)));
        for (error, expected) in cases {
            let shown = format!("{error:?}");
            assert_eq!(
                answer(ResetPasswordErrors::from(error)).await,
                expected,
                "{shown}"
            );
        }
    }
}
