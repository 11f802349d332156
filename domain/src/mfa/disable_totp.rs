//! Disable TOTP: with the current password and a current code (or a
//! recovery code), the factor and the recovery codes go, every other
//! session ends, and a notice goes to the address.

use crate::audit::{AuthEvent, AuthEventKind, Outcome};
use crate::context::{Principal, RequestContext};
use crate::error::Failure;
use crate::mail::{Mail, MailKind};
use crate::password::Password;
use crate::user::User;

use super::{Confirmation, FactorChange, MfaService, Proof, record_outcome};

/// What a change of the factors presents: the current password and the
/// current second factor.
#[derive(Debug)]
pub struct DisableTotp {
    pub current_password: Password,
    pub proof: Proof,
}

/// Why a change of the factors was refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum FactorChangeError {
    #[error("wrong password")]
    WrongPassword,
    /// The code is wrong, replayed or spent.
    #[error("invalid second factor")]
    InvalidSecondFactor,
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    /// The account has no active second factor.
    #[error("no second factor")]
    NoSecondFactor,
    #[error("account gone")]
    NotFound,
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl FactorChangeError {
    /// The stable outcome name that spans and metrics carry.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::WrongPassword => "wrong_password",
            Self::InvalidSecondFactor => "invalid_second_factor",
            Self::RateLimited { .. } => "rate_limited",
            Self::NoSecondFactor => "no_second_factor",
            Self::NotFound => "not_found",
            Self::Failure(_) => "error",
        }
    }
}

super::from_confirmation!(FactorChangeError);

impl MfaService {
    /// The caller's account once both the password and the second factor
    /// are confirmed.
    pub(super) async fn confirm_both(
        &self,
        caller: &Principal,
        input: &DisableTotp,
        ctx: &RequestContext,
    ) -> Result<User, FactorChangeError> {
        let Some(user) = self.caller(caller.user_id).await? else {
            return Err(FactorChangeError::NotFound);
        };
        if !user.second_factor {
            return Err(FactorChangeError::NoSecondFactor);
        }
        self.confirm
            .password(&user, &input.current_password, ctx)
            .await
            .map_err(FactorChangeError::from)?;
        match self.confirm.factor(&user, &input.proof, ctx).await {
            Ok(_) => Ok(user),
            Err(Confirmation::Wrong) => Err(FactorChangeError::InvalidSecondFactor),
            Err(other) => Err(other.into()),
        }
    }

    /// Removes the caller's TOTP factor and recovery codes.
    ///
    /// # Errors
    /// `WrongPassword`, `InvalidSecondFactor`, `RateLimited`,
    /// `NoSecondFactor`, `NotFound`, or a `Failure`.
    #[tracing::instrument(name = "mfa.disable_totp", skip_all, fields(outcome))]
    pub async fn disable_totp(
        &self,
        caller: &Principal,
        input: DisableTotp,
        ctx: &RequestContext,
    ) -> Result<(), FactorChangeError> {
        let result = self.disable_totp_inner(caller, input, ctx).await;
        record_outcome(result.as_ref().map_or_else(|e| e.outcome(), |()| "success"));
        result
    }

    async fn disable_totp_inner(
        &self,
        caller: &Principal,
        input: DisableTotp,
        ctx: &RequestContext,
    ) -> Result<(), FactorChangeError> {
        let user = self.confirm_both(caller, &input, ctx).await?;
        let now = self.ports.clock.now();
        let event = AuthEvent::new(
            AuthEventKind::SecondFactorDisabled,
            Outcome::Success,
            now,
            ctx,
        )
        .user(user.id)
        .session(caller.session_id)
        .detail("totp");
        let notice = [Mail::notice(
            MailKind::SecondFactorDisabled,
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
        let revoked = self
            .ports
            .mfa
            .remove_totp(change, Some(caller.session_id))
            .await?;
        self.ports.audit.committed(&event);
        self.revoked_here(&revoked, now);
        Ok(())
    }
}
