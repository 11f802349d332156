//! `POST /api/v1/users/me/mfa/totp/disable`: turn TOTP off.

use poem_openapi::ApiResponse;
use portcullis_domain::context::{Principal, RequestContext};
use portcullis_domain::mfa::MfaService;

use super::factor_change::{FactorChangeErrors, FactorChangeRequest};

#[derive(ApiResponse)]
pub enum DisableTotpResponse {
    /// TOTP and the recovery codes are gone; every other session ended.
    #[oai(status = 204)]
    NoContent,
}

/// Turns the caller's TOTP off.
pub async fn disable_totp(
    mfa: &MfaService,
    ctx: &RequestContext,
    caller: &Principal,
    body: FactorChangeRequest,
) -> Result<DisableTotpResponse, FactorChangeErrors> {
    let input = body.try_into_domain()?;
    mfa.disable_totp(caller, input, ctx).await?;
    Ok(DisableTotpResponse::NoContent)
}
