//! Regenerate recovery codes: with the current password and a current code,
//! ten new codes replace the old set (which stops working), shown once; a
//! notice goes to the address.

use crate::audit::{AuthEvent, AuthEventKind, Outcome};
use crate::context::{Principal, RequestContext};
use crate::mail::{Mail, MailKind};

use super::{
    DisableTotp, FactorChange, FactorChangeError, MfaService, RecoveryCode, record_outcome,
};

impl MfaService {
    /// Replaces the caller's recovery codes; returns the new ones.
    ///
    /// # Errors
    /// As [`AccountService::disable_totp`].
    #[tracing::instrument(name = "mfa.regenerate_recovery_codes", skip_all, fields(outcome))]
    pub async fn regenerate_recovery_codes(
        &self,
        caller: &Principal,
        input: DisableTotp,
        ctx: &RequestContext,
    ) -> Result<Vec<RecoveryCode>, FactorChangeError> {
        let result = self.regenerate_inner(caller, input, ctx).await;
        record_outcome(result.as_ref().map_or_else(|e| e.outcome(), |_| "success"));
        result
    }

    async fn regenerate_inner(
        &self,
        caller: &Principal,
        input: DisableTotp,
        ctx: &RequestContext,
    ) -> Result<Vec<RecoveryCode>, FactorChangeError> {
        let user = self.confirm_both(caller, &input, ctx).await?;
        let now = self.ports.clock.now();
        let codes = self.ports.factors.recovery_codes();
        let digests: Vec<Vec<u8>> = codes
            .iter()
            .map(|code| self.ports.factors.recovery_digest(code))
            .collect();
        let event = AuthEvent::new(
            AuthEventKind::RecoveryCodesRegenerated,
            Outcome::Success,
            now,
            ctx,
        )
        .user(user.id)
        .session(caller.session_id);
        let notice = [Mail::notice(
            MailKind::RecoveryCodesRegenerated,
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
        self.ports
            .mfa
            .replace_recovery_codes(change, &digests)
            .await?;
        self.ports.audit.committed(&event);
        Ok(codes)
    }
}
