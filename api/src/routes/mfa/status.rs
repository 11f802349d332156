//! `GET /api/v1/users/me/mfa`: the caller's second factors.

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object};
use portcullis_domain::context::Principal;
use portcullis_domain::error::Failure;
use portcullis_domain::mfa::MfaService;

use crate::problem::problem_responses;
use crate::routes::account::account_gone;
use crate::routes::common::failure;

/// The state of a factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum FactorState {
    /// Not enrolled.
    None,
    /// Enrolled, waiting for its first code.
    Pending,
    /// Log-in and a password reset need it.
    Active,
}

impl FactorState {
    /// The state of a factor that is `active`, or else `pending`.
    pub fn of(active: bool, pending: bool) -> Self {
        if active {
            Self::Active
        } else if pending {
            Self::Pending
        } else {
            Self::None
        }
    }
}

/// The caller's second factors.
#[derive(Debug, Object)]
#[oai(example)]
pub struct MfaStatusBody {
    pub totp: FactorState,
    /// Passkeys registered (not offered yet).
    pub passkeys: u32,
    pub recovery_codes_left: u32,
}

impl poem_openapi::types::Example for MfaStatusBody {
    fn example() -> Self {
        Self {
            totp: FactorState::Active,
            passkeys: 0,
            recovery_codes_left: 9,
        }
    }
}

#[derive(ApiResponse)]
pub enum MfaStatusResponse {
    /// The caller's second factors.
    #[oai(status = 200)]
    Ok(Json<MfaStatusBody>),
}

problem_responses!(MfaStatusErrors {
    Unauthorized = 401 => "No valid bearer access token (`invalid_token`).",
    NotFound = 404 => "The account no longer exists.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The database is unreachable.",
});

impl From<Failure> for MfaStatusErrors {
    fn from(error: Failure) -> Self {
        failure(&error).into()
    }
}

/// The caller's second factors.
pub async fn status(
    mfa: &MfaService,
    caller: &Principal,
) -> Result<MfaStatusResponse, MfaStatusErrors> {
    let Some(status) = mfa.mfa_status(caller).await? else {
        return Err(account_gone().into());
    };
    let totp = FactorState::of(status.totp_active, status.totp_pending);
    Ok(MfaStatusResponse::Ok(Json(MfaStatusBody {
        totp,
        passkeys: 0,
        recovery_codes_left: status.recovery_codes_left,
    })))
}
