//! Enrol TOTP: with the current password, a new seed is stored (sealed with
//! the data key) as a pending factor, and the caller gets what an
//! authenticator app needs: the secret, the `otpauth://` URI and its QR
//! code. Nothing is protected by it until `confirm_totp`.

use crate::context::{Principal, RequestContext};
use crate::error::Failure;
use crate::password::Password;

use super::{MfaService, TotpProvisioning, record_outcome};

/// Why TOTP enrolment did not start.
#[derive(Debug, thiserror::Error)]
pub enum EnrolTotpError {
    #[error("wrong password")]
    WrongPassword,
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    /// TOTP is active already: disable it first.
    #[error("already enrolled")]
    AlreadyActive,
    #[error("account gone")]
    NotFound,
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl EnrolTotpError {
    /// The stable outcome name that spans and metrics carry.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::WrongPassword => "wrong_password",
            Self::RateLimited { .. } => "rate_limited",
            Self::AlreadyActive => "already_active",
            Self::NotFound => "not_found",
            Self::Failure(_) => "error",
        }
    }
}

super::from_confirmation!(EnrolTotpError);

impl MfaService {
    /// Starts a TOTP enrolment for the caller.
    ///
    /// # Errors
    /// `WrongPassword`, `RateLimited`, `AlreadyActive`, `NotFound`, or a `Failure`.
    #[tracing::instrument(name = "mfa.enrol_totp", skip_all, fields(outcome))]
    pub async fn enrol_totp(
        &self,
        caller: &Principal,
        current_password: Password,
        ctx: &RequestContext,
    ) -> Result<TotpProvisioning, EnrolTotpError> {
        let result = self.enrol_totp_inner(caller, current_password, ctx).await;
        record_outcome(result.as_ref().map_or_else(|e| e.outcome(), |_| "success"));
        result
    }

    async fn enrol_totp_inner(
        &self,
        caller: &Principal,
        current_password: Password,
        ctx: &RequestContext,
    ) -> Result<TotpProvisioning, EnrolTotpError> {
        let Some(user) = self.caller(caller.user_id).await? else {
            return Err(EnrolTotpError::NotFound);
        };
        self.confirm
            .password(&user, &current_password, ctx)
            .await
            .map_err(EnrolTotpError::from)?;
        let (seed, provisioning) = self.ports.factors.new_totp(user.id, &user.email)?;
        let now = self.ports.clock.now();
        if self.ports.mfa.put_pending_totp(user.id, &seed, now).await? {
            Ok(provisioning)
        } else {
            Err(EnrolTotpError::AlreadyActive)
        }
    }
}
