//! Confirm TOTP: the first code from the app activates the pending factor.
//! From then on log-in and a password reset need a code. Ten recovery codes
//! are made and shown this once (only their keyed digests are stored); a
//! notice goes to the address.

use crate::audit::{AuthEvent, AuthEventKind, Outcome};
use crate::context::{Principal, RequestContext};
use crate::error::Failure;
use crate::mail::{Mail, MailKind};

use super::{FactorChange, MfaService, RecoveryCode, TotpCode, record_outcome};

/// Why the factor was not activated.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmTotpError {
    /// No enrolment is pending (none started, or it is active already).
    #[error("nothing to confirm")]
    NotPending,
    /// The code does not match the pending seed now.
    #[error("invalid code")]
    InvalidCode,
    #[error("account gone")]
    NotFound,
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl ConfirmTotpError {
    /// The stable outcome name that spans and metrics carry.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::NotPending => "not_pending",
            Self::InvalidCode => "invalid_code",
            Self::NotFound => "not_found",
            Self::Failure(_) => "error",
        }
    }
}

impl MfaService {
    /// Activates the caller's pending TOTP factor with its first code;
    /// returns the recovery codes, shown once.
    ///
    /// # Errors
    /// `NotPending`, `InvalidCode`, `NotFound`, or a `Failure`.
    #[tracing::instrument(name = "mfa.confirm_totp", skip_all, fields(outcome))]
    pub async fn confirm_totp(
        &self,
        caller: &Principal,
        code: TotpCode,
        ctx: &RequestContext,
    ) -> Result<Vec<RecoveryCode>, ConfirmTotpError> {
        let result = self.confirm_totp_inner(caller, code, ctx).await;
        record_outcome(result.as_ref().map_or_else(|e| e.outcome(), |_| "success"));
        result
    }

    async fn confirm_totp_inner(
        &self,
        caller: &Principal,
        code: TotpCode,
        ctx: &RequestContext,
    ) -> Result<Vec<RecoveryCode>, ConfirmTotpError> {
        let Some(user) = self.caller(caller.user_id).await? else {
            return Err(ConfirmTotpError::NotFound);
        };
        let Some(pending) = self.ports.mfa.totp(user.id).await?.filter(|t| !t.active) else {
            return Err(ConfirmTotpError::NotPending);
        };
        let now = self.ports.clock.now();
        let Some(step) = self
            .ports
            .factors
            .totp_step(user.id, &pending.seed, &code, now)?
        else {
            return Err(ConfirmTotpError::InvalidCode);
        };
        let codes = self.ports.factors.recovery_codes();
        let digests: Vec<Vec<u8>> = codes
            .iter()
            .map(|code| self.ports.factors.recovery_digest(code))
            .collect();
        let event = AuthEvent::new(
            AuthEventKind::SecondFactorEnabled,
            Outcome::Success,
            now,
            ctx,
        )
        .user(user.id)
        .session(caller.session_id)
        .detail("totp");
        let notice = [Mail::notice(
            MailKind::SecondFactorEnabled,
            user.id,
            user.email.clone(),
            now,
        )];
        let change = FactorChange {
            user: user.id,
            now,
            event: &event,
            mail: &notice,
        };
        if !self.ports.mfa.activate_totp(change, step, &digests).await? {
            return Err(ConfirmTotpError::NotPending);
        }
        self.ports.audit.committed(&event);
        Ok(codes)
    }
}
