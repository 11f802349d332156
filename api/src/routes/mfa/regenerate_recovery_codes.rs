//! `POST /api/v1/users/me/mfa/recovery-codes`: a new set of recovery codes.

use portcullis_domain::context::{Principal, RequestContext};
use portcullis_domain::mfa::MfaService;

use super::confirm_totp::RecoveryCodesResponse;
use super::factor_change::{FactorChangeErrors, FactorChangeRequest};

/// Replaces the caller's recovery codes.
pub async fn regenerate(
    mfa: &MfaService,
    ctx: &RequestContext,
    caller: &Principal,
    body: FactorChangeRequest,
) -> Result<RecoveryCodesResponse, FactorChangeErrors> {
    let input = body.try_into_domain()?;
    let codes = mfa.regenerate_recovery_codes(caller, input, ctx).await?;
    Ok(RecoveryCodesResponse::of(&codes))
}
