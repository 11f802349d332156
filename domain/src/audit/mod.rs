//! Audit events: one record per authentication event, append-only.
//!
//! Events that accompany a state change (sign-up, log-in, refresh, logout,
//! revocation) are handed to the repository that makes the change, so both
//! commit in one transaction. Events without a state change (failed log-in,
//! lockout, rate limit, rejected token) go to an [`AuditSink`].

use std::fmt;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::context::{RequestContext, encode_untrusted};
use crate::error::Failure;
use crate::ids::{SessionId, UserId};

mod log;

pub use log::{AuditLog, EventPage};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthEventKind {
    SignUp,
    LoginSucceeded,
    LoginFailed,
    AccountLocked,
    TokenRefreshed,
    RefreshTokenReuseDetected,
    Logout,
    SessionRevoked,
    RateLimitHit,
    AccessTokenRejected,
    EmailVerified,
    VerificationEmailSent,
    PasswordResetRequested,
    PasswordResetCompleted,
    PasswordChanged,
    EmailChangeRequested,
    EmailChanged,
    AccountDeleted,
    AccountExported,
    SecondFactorRequired,
    SecondFactorFailed,
    SecondFactorEnabled,
    SecondFactorDisabled,
    RecoveryCodesRegenerated,
    RecoveryCodeUsed,
}

impl AuthEventKind {
    /// Every kind, for parsing and documentation.
    pub const ALL: [Self; 25] = [
        Self::SignUp,
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::AccountLocked,
        Self::TokenRefreshed,
        Self::RefreshTokenReuseDetected,
        Self::Logout,
        Self::SessionRevoked,
        Self::RateLimitHit,
        Self::AccessTokenRejected,
        Self::EmailVerified,
        Self::VerificationEmailSent,
        Self::PasswordResetRequested,
        Self::PasswordResetCompleted,
        Self::PasswordChanged,
        Self::EmailChangeRequested,
        Self::EmailChanged,
        Self::AccountDeleted,
        Self::AccountExported,
        Self::SecondFactorRequired,
        Self::SecondFactorFailed,
        Self::SecondFactorEnabled,
        Self::SecondFactorDisabled,
        Self::RecoveryCodesRegenerated,
        Self::RecoveryCodeUsed,
    ];

    /// The stored, stable name (OWASP logging vocabulary style).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignUp => "signup",
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::AccountLocked => "account_locked",
            Self::TokenRefreshed => "token_refreshed",
            Self::RefreshTokenReuseDetected => "refresh_token_reuse_detected",
            Self::Logout => "logout",
            Self::SessionRevoked => "session_revoked",
            Self::RateLimitHit => "rate_limit_hit",
            Self::AccessTokenRejected => "access_token_rejected",
            Self::EmailVerified => "email_verified",
            Self::VerificationEmailSent => "verification_email_sent",
            Self::PasswordResetRequested => "password_reset_requested",
            Self::PasswordResetCompleted => "password_reset_completed",
            Self::PasswordChanged => "password_changed",
            Self::EmailChangeRequested => "email_change_requested",
            Self::EmailChanged => "email_changed",
            Self::AccountDeleted => "account_deleted",
            Self::AccountExported => "account_exported",
            Self::SecondFactorRequired => "second_factor_required",
            Self::SecondFactorFailed => "second_factor_failed",
            Self::SecondFactorEnabled => "second_factor_enabled",
            Self::SecondFactorDisabled => "second_factor_disabled",
            Self::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Self::RecoveryCodeUsed => "recovery_code_used",
        }
    }

    /// Parses a stored name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == raw)
    }

    /// Whether anyone, unauthenticated, can cause this kind at will and
    /// with no state change (a rejected bearer token, a refused request).
    /// A sink may fold repeats of such an event from one client into one
    /// event with a count, and drops these first when it must drop.
    pub fn is_client_noise(self) -> bool {
        matches!(self, Self::AccessTokenRejected | Self::RateLimitHit)
    }

    /// How an operator should weigh it.
    pub fn severity(self) -> Severity {
        match self {
            Self::RefreshTokenReuseDetected => Severity::Critical,
            Self::AccountLocked | Self::RateLimitHit => Severity::Warning,
            Self::LoginFailed
            | Self::AccessTokenRejected
            | Self::PasswordResetCompleted
            | Self::PasswordChanged
            | Self::EmailChanged
            | Self::AccountDeleted
            | Self::SecondFactorFailed
            | Self::SecondFactorDisabled
            | Self::RecoveryCodeUsed => Severity::Notice,
            _ => Severity::Info,
        }
    }
}

impl fmt::Display for AuthEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an operator should weigh an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Notice,
    Warning,
    Critical,
}

/// Whether the attempt succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "success" => Some(Self::Success),
            "failure" => Some(Self::Failure),
            _ => None,
        }
    }
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthEvent {
    pub id: Uuid,
    pub at: OffsetDateTime,
    pub kind: AuthEventKind,
    pub outcome: Outcome,
    pub user_id: Option<UserId>,
    pub session_id: Option<SessionId>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
    /// An internal reason or detail (`unknown_user`, `scope=all`, ...). Never
    /// a secret; never shown to the caller it is about.
    pub detail: Option<String>,
}

impl AuthEvent {
    /// Longest detail kept, in characters.
    pub const MAX_DETAIL: usize = 200;

    /// An event of `kind` at `at` for the request `ctx`.
    pub fn new(
        kind: AuthEventKind,
        outcome: Outcome,
        at: OffsetDateTime,
        ctx: &RequestContext,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            at,
            kind,
            outcome,
            user_id: None,
            session_id: None,
            client_ip: ctx.client.ip().map(str::to_owned),
            user_agent: ctx.client.user_agent().map(str::to_owned),
            request_id: ctx.request_id.clone(),
            trace_id: ctx.trace_id.clone(),
            detail: None,
        }
    }

    pub fn user(mut self, user: UserId) -> Self {
        self.user_id = Some(user);
        self
    }

    pub fn session(mut self, session: SessionId) -> Self {
        self.session_id = Some(session);
        self
    }

    /// Attaches a detail, bounded and stripped of control characters.
    pub fn detail(mut self, detail: impl AsRef<str>) -> Self {
        self.detail = Some(encode_untrusted(detail.as_ref(), Self::MAX_DETAIL));
        self
    }
}

/// Receives events that come with no state change. Implementations persist
/// them without making the caller wait for storage, and must never block.
pub trait AuditSink: Send + Sync + 'static {
    /// Persists an event that came with no state change.
    fn record(&self, event: AuthEvent);

    /// Told of every event that a repository committed with its state change
    /// (for counters); persisting it is already done.
    fn committed(&self, _event: &AuthEvent) {}
}

/// A filter over the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    pub user_id: Option<UserId>,
    pub kinds: Vec<AuthEventKind>,
    pub client_ip: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Only events older than this id (ids are time-ordered): the page cursor.
    pub before: Option<Uuid>,
    pub limit: u64,
}

/// Where audit events live. Append-only: there is no update, and the only
/// delete is the retention purge.
#[async_trait]
pub trait AuthEventRepository: Send + Sync + 'static {
    /// Appends events in one transaction.
    async fn append(&self, events: &[AuthEvent]) -> Result<(), Failure>;
    /// Events matching `query`, newest first.
    async fn query(&self, query: &EventQuery) -> Result<Vec<AuthEvent>, Failure>;
    /// Deletes at most `limit` events that occurred strictly before
    /// `cutoff`, oldest first, and says how many went. For the retention
    /// job only: nothing the API does deletes an event.
    ///
    /// # Errors
    /// A `Failure` when storage cannot answer; nothing is deleted then.
    async fn purge_before(&self, cutoff: OffsetDateTime, limit: u64) -> Result<u64, Failure>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in AuthEventKind::ALL {
            assert_eq!(AuthEventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(
            AuthEventKind::RefreshTokenReuseDetected.severity(),
            Severity::Critical
        );
    }

    #[test]
    fn only_what_anyone_can_repeat_is_noise() {
        let noise: Vec<_> = AuthEventKind::ALL
            .into_iter()
            .filter(|kind| kind.is_client_noise())
            .collect();
        assert_eq!(
            noise,
            [
                AuthEventKind::RateLimitHit,
                AuthEventKind::AccessTokenRejected
            ]
        );
    }

    #[test]
    fn details_are_bounded_and_clean() {
        let event = AuthEvent::new(
            AuthEventKind::LoginFailed,
            Outcome::Failure,
            OffsetDateTime::UNIX_EPOCH,
            &RequestContext::default(),
        )
        .detail(format!("x\n{}", "y".repeat(500)));
        let detail = event.detail.unwrap();
        assert_eq!(detail.chars().count(), AuthEvent::MAX_DETAIL);
        assert!(!detail.contains('\n'));
    }
}
