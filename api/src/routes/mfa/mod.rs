//! Second factors: `/api/v1/users/me/mfa` (status, TOTP enrolment,
//! confirmation, removal, recovery codes) and `/api/v1/auth/mfa/verify`
//! (the second step of a log-in). One file per use case; `MfaApi` is the
//! document's view of them.

pub mod confirm_totp;
pub mod disable_totp;
pub mod enrol_totp;
pub mod factor_change;
pub mod regenerate_recovery_codes;
pub mod second_step;
pub mod status;

use std::sync::Arc;

use poem::Request;
use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::payload::Json;
use portcullis_domain::mfa::{Proof, RecoveryCode, TotpCode};

use crate::http::middleware::request_scope::request_context;
use crate::http::security::BearerAuth;
use crate::problem::ApiError;
use crate::routes::bounded::{Bounded, BoundedSecret};
use crate::routes::common::ApiTags;
use crate::state::AppState;

/// A TOTP code as sent: six digits (spaces allowed).
pub type TotpCodeField = BoundedSecret<1, 16>;
/// A recovery code as sent: `xxxx-xxxx-xxxx-xxxx` (case and dashes do not matter).
pub type RecoveryCodeField = BoundedSecret<1, 64>;

/// The answer to a malformed code: the same as a wrong one.
pub fn invalid_code() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "invalid_second_factor",
        "The code is wrong, was already used, or has expired.",
    )
}

/// The one proof of `totp_code` and `recovery_code`: exactly one of them,
/// or none.
///
/// # Errors
/// 400 `ambiguous_second_factor` for both; `invalid_second_factor` for a
/// malformed code.
pub fn proof_of(
    totp_code: Option<TotpCodeField>,
    recovery_code: Option<RecoveryCodeField>,
) -> Result<Option<Proof>, ApiError> {
    match (totp_code, recovery_code) {
        (Some(_), Some(_)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ambiguous_second_factor",
            "Send either `totp_code` or `recovery_code`, not both.",
        )),
        (Some(code), None) => TotpCode::parse(code.as_str())
            .map(|code| Some(Proof::Totp(code)))
            .map_err(|_| invalid_code()),
        (None, Some(code)) => RecoveryCode::parse(code.as_str())
            .map(|code| Some(Proof::Recovery(code)))
            .map_err(|_| invalid_code()),
        (None, None) => Ok(None),
    }
}

/// Recovery codes as shown, once.
pub fn shown(codes: &[RecoveryCode]) -> Vec<String> {
    codes.iter().map(|code| code.expose().to_owned()).collect()
}

/// An example code for the document.
fn example_code() -> TotpCodeField {
    Bounded("123456".to_owned())
}

/// Second-factor operations.
#[derive(Default)]
pub struct MfaApi;

#[OpenApi(tag = "ApiTags::Mfa")]
impl MfaApi {
    /// Get my second factors
    ///
    /// Whether TOTP is pending or active and how many recovery codes are left.
    #[oai(path = "/api/v1/users/me/mfa", method = "get", operation_id = "getMfa")]
    async fn status(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
    ) -> Result<status::MfaStatusResponse, status::MfaStatusErrors> {
        status::status(&state.mfa, &auth.0).await
    }

    /// Start a TOTP enrolment
    ///
    /// Needs the current password. Returns the secret, the `otpauth://` URI
    /// and its QR code (SVG) for an authenticator app, shown this once. The
    /// factor protects nothing until it is confirmed with a first code.
    #[oai(
        path = "/api/v1/users/me/mfa/totp",
        method = "post",
        operation_id = "enrolTotp"
    )]
    async fn enrol_totp(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        auth: BearerAuth,
        body: Json<enrol_totp::EnrolTotpRequest>,
    ) -> Result<enrol_totp::EnrolTotpResponse, enrol_totp::EnrolTotpErrors> {
        enrol_totp::enrol_totp(&state.mfa, &request_context(req), &auth.0, body.0).await
    }

    /// Confirm TOTP
    ///
    /// The first code from the app activates the factor: from now on log-in
    /// and a password reset need a code. Returns 10 recovery codes, shown
    /// this once; each works once in place of a code.
    #[oai(
        path = "/api/v1/users/me/mfa/totp/confirm",
        method = "post",
        operation_id = "confirmTotp"
    )]
    async fn confirm_totp(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        auth: BearerAuth,
        body: Json<confirm_totp::ConfirmTotpRequest>,
    ) -> Result<confirm_totp::RecoveryCodesResponse, confirm_totp::ConfirmTotpErrors> {
        confirm_totp::confirm_totp(&state.mfa, &request_context(req), &auth.0, body.0).await
    }

    /// Turn TOTP off
    ///
    /// Needs the current password and a current code (or a recovery code).
    /// The factor and the recovery codes go; every other session ends; a
    /// notice is emailed.
    #[oai(
        path = "/api/v1/users/me/mfa/totp/disable",
        method = "post",
        operation_id = "disableTotp"
    )]
    async fn disable_totp(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        auth: BearerAuth,
        body: Json<factor_change::FactorChangeRequest>,
    ) -> Result<disable_totp::DisableTotpResponse, factor_change::FactorChangeErrors> {
        disable_totp::disable_totp(&state.mfa, &request_context(req), &auth.0, body.0).await
    }

    /// Make new recovery codes
    ///
    /// Needs the current password and a current code (or a recovery code).
    /// Ten new codes replace the old set, which stops working; they are
    /// shown this once. A notice is emailed.
    #[oai(
        path = "/api/v1/users/me/mfa/recovery-codes",
        method = "post",
        operation_id = "regenerateRecoveryCodes"
    )]
    async fn regenerate_recovery_codes(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        auth: BearerAuth,
        body: Json<factor_change::FactorChangeRequest>,
    ) -> Result<confirm_totp::RecoveryCodesResponse, factor_change::FactorChangeErrors> {
        regenerate_recovery_codes::regenerate(&state.mfa, &request_context(req), &auth.0, body.0)
            .await
    }

    /// Complete a log-in with the second factor
    ///
    /// After `POST /api/v1/auth/login` answered 401 `mfa_required`: its
    /// `mfa_token` and a TOTP code (or a recovery code) open the session.
    /// The token works once, for 5 minutes and 5 tries; wrong codes also
    /// count toward the account's lockout. Tokens of this session carry
    /// `amr: ["pwd", "otp", "mfa"]`.
    #[oai(
        path = "/api/v1/auth/mfa/verify",
        method = "post",
        operation_id = "verifyMfa"
    )]
    async fn second_step(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        body: Json<second_step::SecondStepRequest>,
    ) -> Result<second_step::SecondStepResponse, second_step::SecondStepErrors> {
        second_step::second_step(&state.auth, &request_context(req), body.0).await
    }
}
