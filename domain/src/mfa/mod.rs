//! Second factors: TOTP (RFC 6238) with recovery codes, one use case per
//! file: `status`, `enrol_totp`, `confirm_totp`, `disable_totp`,
//! `regenerate_recovery_codes`; and `check`, the one rule that decides a
//! second-factor proof wherever one is asked for (the second step of a
//! log-in, a password reset, changes to the factors).
//!
//! The management use cases are `impl MfaService` blocks. `Confirmations`
//! checks a current password or a second factor like a log-in attempt (it
//! counts toward the account's lockout); the account use cases use it too.
//! The log-in's second step is in `auth/second_step.rs`. TOTP arithmetic,
//! the QR code and the data key are the adapter's (`SecondFactorCrypto`);
//! this module decides.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

use crate::amr::AuthMethod;
use crate::audit::{AuditSink, AuthEvent};
use crate::clock::Clock;
use crate::context::RequestContext;
use crate::email::Email;
use crate::error::Failure;
use crate::ids::{SessionId, UserId};
use crate::limits::{
    FailureCounter, GuardError, LimitPolicy, LoginAttempt, LoginGuard, RateLimited, RateLimiter,
};
use crate::mail::Mail;
use crate::password::{Password, PasswordHasher};
use crate::session::{Revocation, RevocationCache, TokenHash};
use crate::user::{User, UserRepository};

mod check;
mod confirm_totp;
mod disable_totp;
mod enrol_totp;
mod regenerate_recovery_codes;
mod status;

pub use check::{Proof, ProofError, check_proof};
pub use confirm_totp::ConfirmTotpError;
pub use disable_totp::{DisableTotp, FactorChangeError};
pub use enrol_totp::EnrolTotpError;
pub use status::MfaStatus;

/// Why a current password or second factor was not confirmed.
#[derive(Debug)]
pub(crate) enum Confirmation {
    Wrong,
    RateLimited(RateLimited),
    Failure(Failure),
}

/// `From<Confirmation>` for a use case's error enum with the variants
/// `WrongPassword`, `RateLimited { retry_after_secs }` and `Failure`.
macro_rules! from_confirmation {
    ($error:ident) => {
        impl From<$crate::mfa::Confirmation> for $error {
            fn from(confirmation: $crate::mfa::Confirmation) -> Self {
                match confirmation {
                    $crate::mfa::Confirmation::Wrong => Self::WrongPassword,
                    $crate::mfa::Confirmation::RateLimited(limited) => Self::RateLimited {
                        retry_after_secs: limited.retry_after_secs,
                    },
                    $crate::mfa::Confirmation::Failure(failure) => Self::Failure(failure),
                }
            }
        }
    };
}
pub(crate) use from_confirmation;

/// Checks what a person knows (the current password) or has (a second
/// factor), each like a log-in attempt: reserved on the account's and the
/// client's failure counters first, so guesses lead to the lockout.
#[derive(Clone)]
pub struct Confirmations {
    guard: LoginGuard,
    hasher: Arc<dyn PasswordHasher>,
    mfa: Arc<dyn MfaRepository>,
    factors: Arc<dyn SecondFactorCrypto>,
    clock: Arc<dyn Clock>,
}

impl Confirmations {
    /// Confirmations over these ports, counted by `guard`.
    pub fn new(
        guard: LoginGuard,
        hasher: Arc<dyn PasswordHasher>,
        mfa: Arc<dyn MfaRepository>,
        factors: Arc<dyn SecondFactorCrypto>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            guard,
            hasher,
            mfa,
            factors,
            clock,
        }
    }

    async fn reserve(
        &self,
        user: &User,
        ctx: &RequestContext,
    ) -> Result<crate::limits::Reserved, Confirmation> {
        self.guard
            .reserve(LoginAttempt::new(&user.email, ctx), ctx)
            .await
            .map_err(|error| match error {
                GuardError::RateLimited(limited) => Confirmation::RateLimited(limited),
                GuardError::Failure(failure) => Confirmation::Failure(failure),
            })
    }

    /// Checks `password` against `user`'s.
    pub(crate) async fn password(
        &self,
        user: &User,
        password: &Password,
        ctx: &RequestContext,
    ) -> Result<(), Confirmation> {
        let reserved = self.reserve(user, ctx).await?;
        match self.hasher.verify(password, &user.password_hash).await {
            Ok(verification) if verification.matches => {
                self.guard.succeeded(reserved).await;
                Ok(())
            }
            Ok(_) => {
                self.guard.failed(reserved, Some(user.id), ctx);
                Err(Confirmation::Wrong)
            }
            Err(failure) => {
                self.guard.abandoned(reserved).await;
                Err(Confirmation::Failure(failure))
            }
        }
    }

    /// Checks a second-factor `proof` of `user`; the method it proves.
    pub(crate) async fn factor(
        &self,
        user: &User,
        proof: &Proof,
        ctx: &RequestContext,
    ) -> Result<AuthMethod, Confirmation> {
        let reserved = self.reserve(user, ctx).await?;
        let now = self.clock.now();
        match check_proof(&*self.mfa, &*self.factors, user, proof, now, ctx).await {
            Ok(method) => {
                self.guard.succeeded(reserved).await;
                Ok(method)
            }
            Err(ProofError::Invalid) => {
                self.guard.failed(reserved, Some(user.id), ctx);
                Err(Confirmation::Wrong)
            }
            Err(ProofError::Failure(failure)) => {
                self.guard.abandoned(reserved).await;
                Err(Confirmation::Failure(failure))
            }
        }
    }
}

/// The ports `MfaService` needs.
#[derive(Clone)]
pub struct MfaPorts {
    pub users: Arc<dyn UserRepository>,
    pub mfa: Arc<dyn MfaRepository>,
    pub factors: Arc<dyn SecondFactorCrypto>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub revocations: Arc<dyn RevocationCache>,
    pub clock: Arc<dyn Clock>,
    pub audit: Arc<dyn AuditSink>,
    pub limiter: Arc<dyn RateLimiter>,
    pub failures: Arc<dyn FailureCounter>,
}

/// The second-factor use cases of a signed-in user.
#[derive(Clone)]
pub struct MfaService {
    ports: MfaPorts,
    confirm: Confirmations,
}

impl MfaService {
    /// Builds the service; `limits` are the log-in's (wrong passwords and
    /// codes here count toward the same lockout).
    pub fn new(ports: MfaPorts, limits: LimitPolicy) -> Self {
        let guard = LoginGuard::new(
            ports.limiter.clone(),
            ports.failures.clone(),
            ports.audit.clone(),
            ports.clock.clone(),
            limits,
        );
        let confirm = Confirmations::new(
            guard,
            ports.hasher.clone(),
            ports.mfa.clone(),
            ports.factors.clone(),
            ports.clock.clone(),
        );
        Self { ports, confirm }
    }

    async fn caller(&self, user: UserId) -> Result<Option<User>, Failure> {
        self.ports.users.find_by_id(user).await
    }

    fn revoked_here(&self, revoked: &[SessionId], now: OffsetDateTime) {
        for session in revoked {
            self.ports.revocations.record(Revocation {
                session_id: *session,
                revoked_at: now,
            });
        }
    }
}

/// Records the outcome of the current use case on its span.
fn record_outcome(outcome: &'static str) {
    tracing::Span::current().record("outcome", outcome);
}

/// Recovery codes issued at a time.
pub const RECOVERY_CODES: usize = 10;
/// Tries one log-in challenge allows.
pub const CHALLENGE_TRIES: u32 = 5;
/// How long a log-in challenge (`mfa_token`) lives.
pub const CHALLENGE_TTL: time::Duration = time::Duration::minutes(5);

/// Six digits from an authenticator app.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpCode(String);

impl TotpCode {
    /// Parses six ASCII digits (surrounding spaces ignored).
    ///
    /// # Errors
    /// Anything else.
    pub fn parse(raw: &str) -> Result<Self, MalformedCode> {
        let code: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(code))
        } else {
            Err(MalformedCode)
        }
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TotpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpCode([redacted])")
    }
}

/// A recovery code: 80 random bits as 16 base32 characters, shown as
/// `xxxx-xxxx-xxxx-xxxx`. Stored only as a keyed digest; single use.
#[derive(Clone)]
pub struct RecoveryCode(SecretString);

impl RecoveryCode {
    /// Characters of a code, dashes aside.
    pub const LEN: usize = 16;

    /// Parses a code as typed: case, spaces and dashes do not matter.
    ///
    /// # Errors
    /// Not 16 characters of base32 (`a`–`z`, `2`–`7`).
    pub fn parse(raw: &str) -> Result<Self, MalformedCode> {
        let plain: String = raw
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let base32 = plain.len() == Self::LEN
            && plain
                .bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
        if base32 {
            Ok(Self::from_plain(&plain))
        } else {
            Err(MalformedCode)
        }
    }

    /// A code from 16 generated base32 characters (lowercase).
    pub fn from_plain(plain: &str) -> Self {
        let grouped = plain
            .as_bytes()
            .chunks(4)
            .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
            .collect::<Vec<_>>()
            .join("-");
        Self(SecretString::from(grouped))
    }

    /// The code as shown (`xxxx-xxxx-xxxx-xxxx`): for the one response that
    /// shows it, and the digest.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode([redacted])")
    }
}

/// The presented code cannot be a TOTP or recovery code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed code")]
pub struct MalformedCode;

/// A TOTP seed as stored: encrypted with the data key.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSeed(pub Vec<u8>);

impl fmt::Debug for SealedSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedSeed([redacted])")
    }
}

/// What an authenticator app needs, shown once at enrolment.
#[derive(Clone)]
pub struct TotpProvisioning {
    /// The seed in base32, for typing in by hand.
    pub secret: SecretString,
    /// The `otpauth://totp/...` URI.
    pub otpauth_uri: SecretString,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: SecretString,
}

impl fmt::Debug for TotpProvisioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpProvisioning([redacted])")
    }
}

/// TOTP, recovery codes and the data key: the adapter's arithmetic.
pub trait SecondFactorCrypto: Send + Sync + 'static {
    /// A new 160-bit seed, sealed for `user`, and its provisioning for `account`.
    ///
    /// # Errors
    /// Only if sealing fails.
    fn new_totp(
        &self,
        user: UserId,
        account: &Email,
    ) -> Result<(SealedSeed, TotpProvisioning), Failure>;

    /// The time step `code` matches at `now` (RFC 6238: SHA-1, 6 digits,
    /// 30 s, one step either side), if any.
    ///
    /// # Errors
    /// A seed that does not open with the data key.
    fn totp_step(
        &self,
        user: UserId,
        seed: &SealedSeed,
        code: &TotpCode,
        now: OffsetDateTime,
    ) -> Result<Option<u64>, Failure>;

    /// `RECOVERY_CODES` new recovery codes.
    fn recovery_codes(&self) -> Vec<RecoveryCode>;

    /// The keyed digest a recovery code is stored as.
    fn recovery_digest(&self, code: &RecoveryCode) -> Vec<u8>;
}

/// A user's TOTP factor as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpRecord {
    pub seed: SealedSeed,
    /// Confirmed with a first code; a pending factor protects nothing.
    pub active: bool,
    /// The last time step accepted: a code is accepted only for a later one.
    pub last_step: Option<u64>,
}

/// A log-in waiting for its second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub user: UserId,
    pub expires_at: OffsetDateTime,
    /// Failed tries so far.
    pub tries: u32,
}

/// A change of the factors, committed with its event and notice.
#[derive(Debug, Clone, Copy)]
pub struct FactorChange<'a> {
    pub user: UserId,
    pub now: OffsetDateTime,
    pub event: &'a AuthEvent,
    pub mail: &'a [Mail],
}

/// Where second factors, recovery codes and log-in challenges live.
#[async_trait]
pub trait MfaRepository: Send + Sync + 'static {
    /// The user's TOTP factor, pending or active.
    async fn totp(&self, user: UserId) -> Result<Option<TotpRecord>, Failure>;

    /// How many unused recovery codes the user has.
    async fn recovery_codes_left(&self, user: UserId) -> Result<u32, Failure>;

    /// Stores `seed` as the user's pending TOTP factor (replacing a pending
    /// one). `false`, and nothing stored, when one is active.
    async fn put_pending_totp(
        &self,
        user: UserId,
        seed: &SealedSeed,
        now: OffsetDateTime,
    ) -> Result<bool, Failure>;

    /// Activates the pending factor with its first accepted `step`, stores
    /// the digests of fresh recovery codes (voiding any older set) and marks
    /// the user as having a second factor. `false` when no factor was pending.
    async fn activate_totp(
        &self,
        change: FactorChange<'_>,
        step: u64,
        codes: &[Vec<u8>],
    ) -> Result<bool, Failure>;

    /// Accepts `step` of the active factor if it is later than the last one
    /// accepted (compare-and-set): two requests with one code cannot both pass.
    async fn accept_totp_step(&self, user: UserId, step: u64) -> Result<bool, Failure>;

    /// Uses (deletes) the recovery code with this digest; `false` when the
    /// user has none such. Stores the event and notice when it was used.
    async fn use_recovery_code(
        &self,
        change: FactorChange<'_>,
        digest: &[u8],
    ) -> Result<bool, Failure>;

    /// Replaces the user's recovery codes with `codes`.
    async fn replace_recovery_codes(
        &self,
        change: FactorChange<'_>,
        codes: &[Vec<u8>],
    ) -> Result<(), Failure>;

    /// Removes the TOTP factor and the recovery codes, clears the user's
    /// second-factor mark and revokes every session but `except`; returns
    /// the revoked sessions.
    async fn remove_totp(
        &self,
        change: FactorChange<'_>,
        except: Option<SessionId>,
    ) -> Result<Vec<SessionId>, Failure>;

    /// Stores a log-in challenge under the digest of its token.
    async fn open_challenge(&self, token: &TokenHash, challenge: &Challenge)
    -> Result<(), Failure>;

    /// The live challenge with this digest at `now`.
    async fn challenge(
        &self,
        token: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<Challenge>, Failure>;

    /// Counts a failed try; at `max` tries the challenge is deleted.
    /// Returns the tries counted.
    async fn fail_challenge(&self, token: &TokenHash, max: u32) -> Result<u32, Failure>;

    /// Deletes the challenge; `false` when another request used it first.
    async fn consume_challenge(&self, token: &TokenHash) -> Result<bool, Failure>;
}

#[cfg(test)]
mod codes {
    use super::*;

    #[test]
    fn codes_parse_as_typed_and_never_print() {
        assert_eq!(TotpCode::parse(" 123 456 ").unwrap().as_str(), "123456");
        assert!(TotpCode::parse("12345").is_err() && TotpCode::parse("12345a").is_err());
        let code = RecoveryCode::parse("ABCD-efgh 2345-6723").unwrap();
        assert_eq!(code.expose(), "abcd-efgh-2345-6723");
        assert!(
            RecoveryCode::parse("abcd-efgh-2345-6781").is_err(),
            "8 and 1 are not base32"
        );
        assert_eq!(format!("{code:?}"), "RecoveryCode([redacted])");
        assert_eq!(
            format!("{:?}", TotpCode::parse("123456").unwrap()),
            "TotpCode([redacted])"
        );
    }
}

#[cfg(test)]
mod tests;
