//! `POST /api/v1/auth/mfa/verify`: the second step of a log-in.

use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use portcullis_domain::auth::{AuthService, SecondStep, SecondStepError};
use portcullis_domain::context::RequestContext;
use portcullis_domain::one_time::OneTimeToken;

use super::{RecoveryCodeField, TotpCodeField, example_code, invalid_code, proof_of};
use crate::problem::{ApiError, problem_responses};
use crate::routes::account::{EXAMPLE_TOKEN, TokenField};
use crate::routes::bounded::Bounded;
use crate::routes::common::{NO_STORE, TokenPairBody, failure, rate_limited};

/// The challenge of `mfa_required` and a code (exactly one of the two kinds).
#[derive(Debug, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct SecondStepRequest {
    /// The `mfa_token` of the 401 `mfa_required` answer.
    pub mfa_token: TokenField,
    /// Six digits from the authenticator app.
    pub totp_code: Option<TotpCodeField>,
    /// Or one of the recovery codes (`xxxx-xxxx-xxxx-xxxx`), spent by its use.
    pub recovery_code: Option<RecoveryCodeField>,
}

impl poem_openapi::types::Example for SecondStepRequest {
    fn example() -> Self {
        Self {
            mfa_token: Bounded(EXAMPLE_TOKEN.to_owned()),
            totp_code: Some(example_code()),
            recovery_code: None,
        }
    }
}

#[derive(ApiResponse)]
pub enum SecondStepResponse {
    /// The session is open; its tokens carry `amr: ["pwd", "otp", "mfa"]`.
    #[oai(status = 200)]
    Ok(Json<TokenPairBody>, #[oai(header = "Cache-Control")] String),
}

problem_responses!(SecondStepErrors {
    BadRequest = 400 => "The body is not valid JSON, misses a field, or holds both codes (`ambiguous_second_factor`).",
    Unauthorized = 401 => "The challenge is unknown, used, expired or out of tries (`invalid_mfa_token`): log in again.",
    Forbidden = 403 => "The code is missing (`second_factor_required`), wrong, replayed or spent (`invalid_second_factor`); the challenge has tries left.",
    PayloadTooLarge = 413 => "The body exceeds 16 KiB.",
    UnsupportedMediaType = 415 => "The body is not `application/json`.",
    TooManyRequests = 429, retry_after: u32 => "Too many failures: the account is locked for a while.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The service is overloaded or its database is unreachable.",
});

fn invalid_challenge() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_mfa_token",
        "This sign-in has expired or was already completed; log in again.",
    )
}

impl From<SecondStepError> for SecondStepErrors {
    fn from(error: SecondStepError) -> Self {
        match error {
            SecondStepError::InvalidChallenge => invalid_challenge(),
            SecondStepError::InvalidCode => invalid_code(),
            SecondStepError::RateLimited { retry_after_secs } => rate_limited(retry_after_secs),
            SecondStepError::Failure(error) => failure(&error),
        }
        .into()
    }
}

/// Completes a log-in with its second factor.
pub async fn second_step(
    auth: &AuthService,
    ctx: &RequestContext,
    body: SecondStepRequest,
) -> Result<SecondStepResponse, SecondStepErrors> {
    let mfa_token =
        OneTimeToken::parse(body.mfa_token.as_str()).map_err(|_| invalid_challenge())?;
    let proof = proof_of(body.totp_code, body.recovery_code)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "second_factor_required",
            "Send a code from the authenticator app (`totp_code`) or a recovery code.",
        )
    })?;
    let pair = auth
        .second_step(SecondStep { mfa_token, proof }, ctx)
        .await?;
    Ok(SecondStepResponse::Ok(
        Json(TokenPairBody::from(&pair)),
        NO_STORE.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::testing::{Answer, answer, failure_cases};

    #[tokio::test]
    async fn every_second_step_error_has_one_status_and_code() {
        let mut cases = vec![
            (
                SecondStepError::InvalidChallenge,
                Answer::new(401, "invalid_mfa_token", None),
            ),
            (
                SecondStepError::InvalidCode,
                Answer::new(403, "invalid_second_factor", None),
            ),
            (
                SecondStepError::RateLimited {
                    retry_after_secs: 60,
                },
                Answer::new(429, "rate_limited", Some("60")),
            ),
        ];
        cases.extend(failure_cases().map(|(f, a)| (SecondStepError::Failure(f), a)));
        for (error, expected) in cases {
            let shown = format!("{error:?}");
            assert_eq!(
                answer(SecondStepErrors::from(error)).await,
                expected,
                "{shown}"
            );
        }
    }
}
