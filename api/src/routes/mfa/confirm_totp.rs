//! `POST /api/v1/users/me/mfa/totp/confirm`: activate TOTP with a first code.

use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use portcullis_domain::context::{Principal, RequestContext};
use portcullis_domain::mfa::MfaService;
use portcullis_domain::mfa::{ConfirmTotpError, TotpCode};

use super::{TotpCodeField, example_code, invalid_code, shown};
use crate::problem::{ApiError, problem_responses};
use crate::routes::account::account_gone;
use crate::routes::common::{NO_STORE, failure};

/// The first code from the authenticator app.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ConfirmTotpRequest {
    pub code: TotpCodeField,
}

impl poem_openapi::types::Example for ConfirmTotpRequest {
    fn example() -> Self {
        Self {
            code: example_code(),
        }
    }
}

/// Recovery codes, shown this once: store them somewhere safe. Each works
/// once in place of a code from the app.
#[derive(Debug, Object)]
#[oai(example)]
pub struct RecoveryCodesBody {
    pub recovery_codes: Vec<String>,
}

impl poem_openapi::types::Example for RecoveryCodesBody {
    fn example() -> Self {
        Self {
            recovery_codes: vec!["k7q2-mvxa-3hdp-y6ze".to_owned(); 10],
        }
    }
}

#[derive(ApiResponse)]
pub enum RecoveryCodesResponse {
    /// The recovery codes, shown once.
    #[oai(status = 200)]
    Ok(
        Json<RecoveryCodesBody>,
        #[oai(header = "Cache-Control")] String,
    ),
}

impl RecoveryCodesResponse {
    pub fn of(codes: &[portcullis_domain::mfa::RecoveryCode]) -> Self {
        Self::Ok(
            Json(RecoveryCodesBody {
                recovery_codes: shown(codes),
            }),
            NO_STORE.to_owned(),
        )
    }
}

problem_responses!(ConfirmTotpErrors {
    BadRequest = 400 => "The body is not valid JSON or misses a field.",
    Unauthorized = 401 => "No valid bearer access token (`invalid_token`).",
    Forbidden = 403 => "The code does not match (`invalid_second_factor`).",
    NotFound = 404 => "The account no longer exists.",
    Conflict = 409 => "No enrolment is pending (`not_pending`).",
    PayloadTooLarge = 413 => "The body exceeds 16 KiB.",
    UnsupportedMediaType = 415 => "The body is not `application/json`.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The database is unreachable.",
});

impl From<ConfirmTotpError> for ConfirmTotpErrors {
    fn from(error: ConfirmTotpError) -> Self {
        match error {
            ConfirmTotpError::NotPending => ApiError::new(
                StatusCode::CONFLICT,
                "not_pending",
                "No TOTP enrolment is waiting for its first code.",
            ),
            ConfirmTotpError::InvalidCode => invalid_code(),
            ConfirmTotpError::NotFound => account_gone(),
            ConfirmTotpError::Failure(error) => failure(&error),
        }
        .into()
    }
}

/// Activates the caller's pending TOTP factor.
pub async fn confirm_totp(
    mfa: &MfaService,
    ctx: &RequestContext,
    caller: &Principal,
    body: ConfirmTotpRequest,
) -> Result<RecoveryCodesResponse, ConfirmTotpErrors> {
    let code = TotpCode::parse(body.code.as_str()).map_err(|_| invalid_code())?;
    let codes = mfa.confirm_totp(caller, code, ctx).await?;
    Ok(RecoveryCodesResponse::of(&codes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::testing::{Answer, answer, failure_cases};

    #[tokio::test]
    async fn every_confirm_error_has_one_status_and_code() {
        let mut cases = vec![
            (
                ConfirmTotpError::NotPending,
                Answer::new(409, "not_pending", None),
            ),
            (
                ConfirmTotpError::InvalidCode,
                Answer::new(403, "invalid_second_factor", None),
            ),
            (
                ConfirmTotpError::NotFound,
                Answer::new(404, "not_found", None),
            ),
        ];
        cases.extend(failure_cases().map(|(f, a)| (ConfirmTotpError::Failure(f), a)));
        for (error, expected) in cases {
            let shown = format!("{error:?}");
            assert_eq!(
                answer(ConfirmTotpErrors::from(error)).await,
                expected,
                "{shown}"
            );
        }
    }
}
