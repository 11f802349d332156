//! The one rule for a second-factor proof, wherever one is asked for: a
//! TOTP code passes once (only a time step later than the last accepted
//! one, set by compare-and-set), a recovery code is spent (and its use
//! recorded and told by email).

use time::OffsetDateTime;

use super::{FactorChange, MfaRepository, RecoveryCode, SecondFactorCrypto, TotpCode};
use crate::amr::AuthMethod;
use crate::audit::{AuthEvent, AuthEventKind, Outcome};
use crate::context::RequestContext;
use crate::error::Failure;
use crate::mail::{Mail, MailKind};
use crate::user::User;

/// What a person presents as their second factor.
#[derive(Debug, Clone)]
pub enum Proof {
    Totp(TotpCode),
    Recovery(RecoveryCode),
}

/// Why a proof was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// Wrong, replayed, or spent; or the account has no such factor.
    #[error("invalid second factor")]
    Invalid,
    #[error(transparent)]
    Failure(#[from] Failure),
}

/// Checks `proof` for `user` at `now`; the method it proves.
///
/// # Errors
/// `Invalid` for a wrong, replayed or spent code, or no active factor.
pub async fn check_proof(
    mfa: &dyn MfaRepository,
    crypto: &dyn SecondFactorCrypto,
    user: &User,
    proof: &Proof,
    now: OffsetDateTime,
    ctx: &RequestContext,
) -> Result<AuthMethod, ProofError> {
    match proof {
        Proof::Totp(code) => {
            let Some(totp) = mfa.totp(user.id).await?.filter(|t| t.active) else {
                return Err(ProofError::Invalid);
            };
            let Some(step) = crypto.totp_step(user.id, &totp.seed, code, now)? else {
                return Err(ProofError::Invalid);
            };
            // The compare-and-set is what makes a code single-use, even for
            // two requests racing with the same code.
            if mfa.accept_totp_step(user.id, step).await? {
                Ok(AuthMethod::Otp)
            } else {
                Err(ProofError::Invalid)
            }
        }
        Proof::Recovery(code) => {
            let digest = crypto.recovery_digest(code);
            let event = AuthEvent::new(AuthEventKind::RecoveryCodeUsed, Outcome::Success, now, ctx)
                .user(user.id);
            let notice = [Mail::notice(
                MailKind::RecoveryCodeUsed,
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
            if mfa.use_recovery_code(change, &digest).await? {
                Ok(AuthMethod::Otp)
            } else {
                Err(ProofError::Invalid)
            }
        }
    }
}
