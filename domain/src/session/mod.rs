//! Sessions and refresh tokens: one session is one refresh-token family.
//!
//! Only hashes of refresh tokens are stored, and a session has exactly one
//! current token. A rotated token presented again within the grace interval
//! yields a new token that supersedes the current one (two browser tabs
//! refreshing at once); after it, the whole session is revoked. The rule is
//! in `rotation.rs`.

use std::fmt;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};

use crate::amr::AuthMethod;
use crate::audit::AuthEvent;
use crate::context::ClientInfo;
use crate::error::Failure;
use crate::ids::{SessionId, UserId};
use crate::one_time::{OneTimeToken, well_formed_secret};

mod feed;
mod rotation;
mod service;

pub use feed::{RevocationCursor, RevocationPage};
pub use rotation::{RefreshDecision, decide_refresh, decide_replay, decide_rotation};
pub use service::{RevokeSessionError, SessionService};

/// An opaque refresh token: 256 random bits, base64url without padding.
/// Never logged; only its [`TokenHash`] is stored.
#[derive(Clone)]
pub struct RefreshToken(SecretString);

impl RefreshToken {
    /// Encoded length of 32 bytes in unpadded base64url.
    pub const ENCODED_LEN: usize = crate::one_time::ENCODED_LEN;

    /// Parses a token presented by a client. Anything that cannot be one of
    /// ours is refused before any storage lookup.
    ///
    /// # Errors
    /// `MalformedRefreshToken` for a wrong length or alphabet.
    pub fn parse(raw: &str) -> Result<Self, MalformedRefreshToken> {
        if well_formed_secret(raw) {
            Ok(Self(SecretString::from(raw.to_owned())))
        } else {
            Err(MalformedRefreshToken)
        }
    }

    /// Wraps a freshly generated token (the generator guarantees the format).
    pub fn from_generated(encoded: String) -> Self {
        Self(SecretString::from(encoded))
    }

    /// The token, for the response body and the hasher only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken([redacted])")
    }
}

/// The presented string cannot be a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed refresh token")]
pub struct MalformedRefreshToken;

/// A one-way digest of a refresh token, as stored.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(Vec<u8>);

impl TokenHash {
    /// Wraps digest bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash([redacted])")
    }
}

/// Generates refresh tokens and digests them. Randomness is a port so the
/// domain stays free of crypto libraries and tests can fix it.
pub trait SecretGenerator: Send + Sync + 'static {
    /// A new token of 256 bits from a CSPRNG.
    fn refresh_token(&self) -> RefreshToken;
    /// The stored digest of `token`.
    fn digest(&self, token: &RefreshToken) -> TokenHash;

    /// A new one-time token for an email link: the same 256 random bits.
    fn one_time_token(&self) -> OneTimeToken {
        OneTimeToken::from_generated(self.refresh_token().expose().to_owned())
    }

    /// The stored digest of a one-time token, by the same function.
    fn digest_one_time(&self, token: &OneTimeToken) -> TokenHash {
        self.digest(&RefreshToken::from_generated(token.expose().to_owned()))
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    /// `POST /auth/logout` with scope `this`.
    Logout,
    /// `POST /auth/logout` with scope `all`.
    LogoutAll,
    /// `POST /auth/logout` with scope `others`.
    LogoutOthers,
    /// `DELETE /sessions/{id}`.
    RevokedByUser,
    /// A rotated refresh token was presented after the grace interval.
    RefreshTokenReuse,
    /// The password was reset through an emailed link.
    PasswordReset,
    /// The password was changed by the signed-in user.
    PasswordChanged,
    /// The account's email address changed.
    EmailChanged,
    /// The account was deleted.
    AccountDeleted,
    /// A second factor was removed.
    SecondFactorRemoved,
}

impl RevokeReason {
    /// Every reason.
    pub const ALL: [Self; 10] = [
        Self::Logout,
        Self::LogoutAll,
        Self::LogoutOthers,
        Self::RevokedByUser,
        Self::RefreshTokenReuse,
        Self::PasswordReset,
        Self::PasswordChanged,
        Self::EmailChanged,
        Self::AccountDeleted,
        Self::SecondFactorRemoved,
    ];

    /// The stored, stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::LogoutAll => "logout_all",
            Self::LogoutOthers => "logout_others",
            Self::RevokedByUser => "revoked_by_user",
            Self::RefreshTokenReuse => "refresh_token_reuse",
            Self::PasswordReset => "password_reset",
            Self::PasswordChanged => "password_changed",
            Self::EmailChanged => "email_changed",
            Self::AccountDeleted => "account_deleted",
            Self::SecondFactorRemoved => "second_factor_removed",
        }
    }

    /// Parses a stored name.
    pub fn parse(stored: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|reason| reason.as_str() == stored)
    }
}

/// A login session: one refresh-token family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub created_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
    pub idle_expires_at: OffsetDateTime,
    pub absolute_expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub revoked_reason: Option<RevokeReason>,
    pub client: ClientInfo,
    /// What the user proved when the session was opened (RFC 8176).
    pub amr: Vec<AuthMethod>,
    /// When the user last proved who they are (the opening, for now).
    pub auth_time: OffsetDateTime,
}

impl Session {
    /// Opens a session at `now` under `policy`.
    pub fn open(
        user_id: UserId,
        now: OffsetDateTime,
        policy: &SessionPolicy,
        client: ClientInfo,
    ) -> Self {
        let absolute_expires_at = now + policy.absolute_ttl;
        Self {
            id: SessionId::new(),
            user_id,
            created_at: now,
            last_used_at: now,
            idle_expires_at: (now + policy.idle_ttl).min(absolute_expires_at),
            absolute_expires_at,
            revoked_at: None,
            revoked_reason: None,
            client,
            amr: vec![AuthMethod::Pwd],
            auth_time: now,
        }
    }

    /// The same session, opened after proving `amr`.
    #[must_use]
    pub fn proven_by(mut self, amr: Vec<AuthMethod>) -> Self {
        self.amr = amr;
        self
    }

    /// Neither revoked nor expired at `now`.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && now < self.idle_expires_at && now < self.absolute_expires_at
    }

    /// When the session's refresh tokens stop working if it is not used again.
    pub fn refresh_expires_at(&self) -> OffsetDateTime {
        self.idle_expires_at.min(self.absolute_expires_at)
    }

    /// Records a use at `now` that moves the idle expiry to `idle_expires_at`.
    pub fn record_use(&mut self, now: OffsetDateTime, idle_expires_at: OffsetDateTime) {
        self.last_used_at = now;
        self.idle_expires_at = idle_expires_at;
    }

    /// The idle expiry after a use at `now`; rotation never passes the absolute expiry.
    pub fn next_idle_expiry(&self, now: OffsetDateTime, policy: &SessionPolicy) -> OffsetDateTime {
        (now + policy.idle_ttl).min(self.absolute_expires_at)
    }
}

/// Lifetimes of tokens and sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Access-token lifetime (default 15 min).
    pub access_ttl: Duration,
    /// A session unused this long expires (default 7 days).
    pub idle_ttl: Duration,
    /// A session never lives longer than this (default 30 days).
    pub absolute_ttl: Duration,
    /// A rotated refresh token still works this long (default 10 s).
    pub reuse_grace: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            access_ttl: Duration::minutes(15),
            idle_ttl: Duration::days(7),
            absolute_ttl: Duration::days(30),
            reuse_grace: Duration::seconds(10),
        }
    }
}

/// A stored refresh token, found by its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    pub session_id: SessionId,
    pub created_at: OffsetDateTime,
    /// When it was exchanged for a successor; `None` while it is current.
    pub rotated_at: Option<OffsetDateTime>,
}

/// The result of an atomic rotation attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The presented token was current; it is now rotated and `next` is current.
    Rotated,
    /// Another request rotated the presented token first, at `rotated_at`
    /// (as stored: the grace interval is measured from it).
    AlreadyRotated { rotated_at: OffsetDateTime },
    /// The session was revoked or expired meanwhile, or the token is not one
    /// of its; nothing changed.
    SessionInactive,
}

/// A refresh replayed with a rotated token, for [`SessionRepository::supersede`].
#[derive(Debug, Clone, Copy)]
pub struct Supersession<'a> {
    pub session: SessionId,
    /// The rotated token the client presented.
    pub presented: &'a TokenHash,
    /// The token that becomes the session's one current token.
    pub next: &'a TokenHash,
    pub now: OffsetDateTime,
    pub idle_expires_at: OffsetDateTime,
    /// The grace interval, measured from `presented`'s stored rotation time.
    pub grace: Duration,
    /// `token_refreshed` with detail `grace_replay`.
    pub event: &'a AuthEvent,
}

/// A revocation, as the revocation feed reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    pub session_id: SessionId,
    /// By the clock of the instance that revoked: informational only, never
    /// what decides whether another instance sees it.
    pub revoked_at: OffsetDateTime,
}

/// A session about to be stored with its first refresh token and the audit
/// event of its opening; all three commit together.
#[derive(Debug, Clone, Copy)]
pub struct SessionOpening<'a> {
    pub session: &'a Session,
    pub first_token: &'a TokenHash,
    pub event: &'a AuthEvent,
}

/// Where sessions and refresh-token hashes live. Every method that changes
/// state takes the audit event of the change and stores it in the same
/// transaction, only when the change happens.
#[async_trait]
pub trait SessionRepository: Send + Sync + 'static {
    /// Stores a new session, its first refresh-token hash and its event, atomically.
    async fn create(&self, opening: SessionOpening<'_>) -> Result<(), Failure>;

    /// The refresh-token record with this hash and its session.
    async fn find_by_refresh_token(
        &self,
        token: &TokenHash,
    ) -> Result<Option<(RefreshRecord, Session)>, Failure>;

    /// In one transaction: marks `presented` rotated at `now` if it is still
    /// current, stores `next` as current, and records the use of the session
    /// (`last_used_at = now`, `idle_expires_at`), only while the session is active.
    ///
    /// # Errors
    /// Storage failures only; races are reported through [`RotateOutcome`].
    async fn rotate(
        &self,
        session: SessionId,
        presented: &TokenHash,
        next: &TokenHash,
        now: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
        event: &AuthEvent,
    ) -> Result<RotateOutcome, Failure>;

    /// In one transaction under the session's lock: decides with
    /// [`decide_refresh`] on the session and the presented token as stored
    /// and, only on `GraceReplay`, marks the session's current token rotated
    /// at `now`, stores `next` as its one current token, records the use of
    /// the session and stores the event. Returns the decision it acted on.
    ///
    /// # Errors
    /// Storage failures only.
    async fn supersede(&self, replay: Supersession<'_>) -> Result<RefreshDecision, Failure>;

    /// The session with this id if it belongs to `user`.
    async fn find(&self, user: UserId, session: SessionId) -> Result<Option<Session>, Failure>;

    /// Revokes one active session of `user`. Returns whether it changed anything.
    async fn revoke(
        &self,
        user: UserId,
        session: SessionId,
        now: OffsetDateTime,
        reason: RevokeReason,
        event: &AuthEvent,
    ) -> Result<bool, Failure>;

    /// Revokes every not-yet-revoked session of `user` but `except`, returning
    /// their ids; stores `event` when at least one changed.
    async fn revoke_all(
        &self,
        user: UserId,
        except: Option<SessionId>,
        now: OffsetDateTime,
        reason: RevokeReason,
        event: &AuthEvent,
    ) -> Result<Vec<SessionId>, Failure>;

    /// The active sessions of `user` at `now`, newest first.
    async fn list_active(&self, user: UserId, now: OffsetDateTime)
    -> Result<Vec<Session>, Failure>;

    /// Revocations after `cursor` in feed order, at most `limit`, for the
    /// revocation feed of other instances. Every change above that sets
    /// `revoked_at` appends its sessions to the feed in the same transaction.
    /// Positions grow in commit order: once a revocation is visible here,
    /// none with a lower position can appear later, so a reader that moves
    /// its cursor by what it read misses nothing, whatever the clocks say.
    async fn revocations_after(
        &self,
        cursor: RevocationCursor,
        limit: u64,
    ) -> Result<RevocationPage, Failure>;

    /// For an instance starting up: where the feed ends now (in `next`), and
    /// every revocation stamped at or after `since` by the clock of the
    /// instance that made it.
    async fn recent_revocations(&self, since: OffsetDateTime) -> Result<RevocationPage, Failure>;

    /// How many sessions are neither revoked nor expired at `now` (for the gauge).
    async fn count_active(&self, now: OffsetDateTime) -> Result<u64, Failure>;

    /// Deletes up to `limit` sessions that ended (revoked, idle-expired or
    /// past their absolute expiry) before `ended_before`, with their refresh
    /// tokens; returns how many went. Their audit events stay.
    async fn purge_ended(&self, ended_before: OffsetDateTime, limit: u64) -> Result<u64, Failure>;

    /// Deletes up to `limit` revocations of the feed stamped before `before`;
    /// returns how many went. The sessions themselves are left alone.
    async fn purge_revocations(&self, before: OffsetDateTime, limit: u64) -> Result<u64, Failure>;
}

/// Knows which sessions are revoked without a storage round trip, so the hot
/// path of every authenticated request stays in memory.
pub trait RevocationCache: Send + Sync + 'static {
    /// Whether access tokens of `session` must be refused.
    fn is_revoked(&self, session: SessionId) -> bool;
    /// Records a revocation made by this instance (effective immediately here).
    fn record(&self, revocation: Revocation);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    #[test]
    fn idle_expiry_never_passes_absolute_expiry() {
        let policy = SessionPolicy {
            idle_ttl: Duration::days(7),
            absolute_ttl: Duration::days(30),
            ..SessionPolicy::default()
        };
        let start = datetime!(2026-01-01 0:00 UTC);
        let session = Session::open(UserId::new(), start, &policy, ClientInfo::default());
        let late = start + Duration::days(28);
        assert_eq!(
            session.next_idle_expiry(late, &policy),
            session.absolute_expires_at
        );
    }

    #[test]
    fn revoke_reason_round_trips() {
        for reason in RevokeReason::ALL {
            assert_eq!(RevokeReason::parse(reason.as_str()), Some(reason));
        }
    }

    proptest! {
        #[test]
        fn refresh_token_parse_never_panics(raw in ".{0,100}") {
            if let Ok(token) = RefreshToken::parse(&raw) {
                prop_assert_eq!(token.expose().len(), RefreshToken::ENCODED_LEN);
            }
        }

        #[test]
        fn refresh_token_accepts_exactly_base64url_of_43(raw in "[A-Za-z0-9_-]{43}") {
            prop_assert!(RefreshToken::parse(&raw).is_ok());
        }
    }
}
