//! The caller's second factors: whether TOTP is pending or active, and how
//! many recovery codes are left.

use super::MfaService;
use crate::context::Principal;
use crate::error::Failure;

/// The state of the caller's second factors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MfaStatus {
    /// Enrolled but not confirmed with a first code yet.
    pub totp_pending: bool,
    /// Confirmed: log-in and a password reset need it.
    pub totp_active: bool,
    pub recovery_codes_left: u32,
}

impl MfaService {
    /// The caller's second factors, or `None` when the account is gone.
    ///
    /// # Errors
    /// A `Failure` only.
    pub async fn mfa_status(&self, caller: &Principal) -> Result<Option<MfaStatus>, Failure> {
        if self.caller(caller.user_id).await?.is_none() {
            return Ok(None);
        }
        let totp = self.ports.mfa.totp(caller.user_id).await?;
        Ok(Some(MfaStatus {
            totp_pending: totp.as_ref().is_some_and(|t| !t.active),
            totp_active: totp.as_ref().is_some_and(|t| t.active),
            recovery_codes_left: self.ports.mfa.recovery_codes_left(caller.user_id).await?,
        }))
    }
}
