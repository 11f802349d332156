//! The authentication use cases: sign up, log in, refresh, log out,
//! authenticate a bearer token, and manage one's sessions.

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{
    AuditSink, AuthEvent, AuthEventKind, AuthEventRepository, EventQuery, Outcome, RequestContext,
};
use crate::clock::Clock;
use crate::error::StoreError;
use crate::limits::{Bucket, Decision, FailureCounter, FailureState, LockoutPolicy, RateLimiter};
use crate::password::{HashError, Password, PasswordHasher, PasswordPolicy, PasswordRejection};
use crate::session::{
    RefreshToken, Revocation, RevocationCache, RevokeReason, RotateOutcome, SecretGenerator,
    Session, SessionId, SessionOpening, SessionPolicy, SessionRepository,
};
use crate::token::{AccessClaims, AccessToken, TokenIssuer, TokenRejection, TokenVerifier};
use crate::user::{Email, InsertUserError, Profile, User, UserId, UserRepository};

/// Infrastructure failures as every use case reports them.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Password hashing is saturated: retry later.
    #[error("overloaded")]
    Overloaded { retry_after_secs: u64 },
    /// Storage is unreachable: retry later.
    #[error("storage unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error(transparent)]
    Unexpected(anyhow::Error),
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(source) => Self::Unavailable(source),
            StoreError::Unexpected(source) => Self::Unexpected(source.0),
        }
    }
}

impl From<HashError> for Failure {
    fn from(error: HashError) -> Self {
        match error {
            HashError::Overloaded { retry_after_secs } => Self::Overloaded { retry_after_secs },
            HashError::Unexpected(source) => Self::Unexpected(source.0),
        }
    }
}

impl From<crate::Unexpected> for Failure {
    fn from(error: crate::Unexpected) -> Self {
        Self::Unexpected(error.0)
    }
}

/// Why a sign-up failed.
#[derive(Debug, thiserror::Error)]
pub enum SignUpError {
    #[error("password rejected: {0}")]
    WeakPassword(#[from] PasswordRejection),
    #[error("email already registered")]
    EmailTaken,
    /// Too many sign-ups from this client.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl SignUpError {
    /// The stable outcome name that spans and metrics carry.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::WeakPassword(_) => "weak_password",
            Self::EmailTaken => "email_taken",
            Self::RateLimited { .. } => "rate_limited",
            Self::Failure(_) => "error",
        }
    }
}

/// Why a log-in failed. One variant for every credential problem, on purpose.
#[derive(Debug, thiserror::Error)]
pub enum LogInError {
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many attempts from this client, or the account (existing or not)
    /// is locked after repeated failures; the right password gets this too.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl LogInError {
    /// The stable outcome name that spans and metrics carry.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::InvalidCredentials => "invalid_credentials",
            Self::RateLimited { .. } => "rate_limited",
            Self::Failure(_) => "error",
        }
    }
}

/// Why a refresh failed. Both refusals get the same `invalid_grant` answer;
/// the distinction exists for the audit trail.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Unknown, malformed, expired or revoked token.
    #[error("invalid refresh token")]
    InvalidGrant,
    /// A rotated token presented after the grace interval: the session is now revoked.
    #[error("refresh token reused; session revoked")]
    Reused {
        session_id: SessionId,
        user_id: UserId,
    },
    /// Too many refreshes from this client.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl RefreshError {
    /// The stable outcome name that spans and metrics carry.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::InvalidGrant => "invalid_grant",
            Self::Reused { .. } => "reuse_detected",
            Self::RateLimited { .. } => "rate_limited",
            Self::Failure(_) => "error",
        }
    }
}

/// Why a session could not be revoked.
#[derive(Debug, thiserror::Error)]
pub enum RevokeSessionError {
    /// No active session with that id belongs to the caller.
    #[error("session not found")]
    NotFound,
    #[error(transparent)]
    Failure(#[from] Failure),
}

/// Which sessions a logout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogoutScope {
    /// The session of the presented access token.
    #[default]
    This,
    /// Every session of the user.
    All,
    /// Every session but the current one.
    Others,
}

/// The authenticated caller, from a verified access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub expires_at: OffsetDateTime,
}

/// What sign-up, log-in and refresh hand back.
#[derive(Debug, Clone)]
pub struct TokenPair {
    pub access_token: AccessToken,
    pub access_expires_at: OffsetDateTime,
    pub refresh_token: RefreshToken,
    pub refresh_expires_at: OffsetDateTime,
    pub session_id: SessionId,
    pub user: Profile,
    pub issued_at: OffsetDateTime,
}

/// The ports `AuthService` needs.
#[derive(Clone)]
pub struct AuthPorts {
    pub users: Arc<dyn UserRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub issuer: Arc<dyn TokenIssuer>,
    pub verifier: Arc<dyn TokenVerifier>,
    pub revocations: Arc<dyn RevocationCache>,
    pub secrets: Arc<dyn SecretGenerator>,
    pub clock: Arc<dyn Clock>,
    pub events: Arc<dyn AuthEventRepository>,
    pub audit: Arc<dyn AuditSink>,
    pub limiter: Arc<dyn RateLimiter>,
    pub failures: Arc<dyn FailureCounter>,
}

/// The abuse limits in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitPolicy {
    /// `false` disables every limit (benchmarks only).
    pub enabled: bool,
    pub account: LockoutPolicy,
    pub client: LockoutPolicy,
}

impl Default for LimitPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            account: LockoutPolicy::account_default(),
            client: LockoutPolicy::client_default(),
        }
    }
}

/// The authentication use cases.
#[derive(Clone)]
pub struct AuthService {
    ports: AuthPorts,
    policy: PasswordPolicy,
    sessions: SessionPolicy,
    limits: LimitPolicy,
}

/// A page of the audit trail, newest first.
#[derive(Debug, Clone)]
pub struct EventPage {
    pub items: Vec<AuthEvent>,
    /// Pass as `before` for the next page; `None` on the last page.
    pub next_cursor: Option<Uuid>,
}

impl AuthService {
    /// Largest page of events.
    pub const MAX_EVENT_PAGE: u64 = 100;

    /// Builds the service.
    pub fn new(
        ports: AuthPorts,
        policy: PasswordPolicy,
        sessions: SessionPolicy,
        limits: LimitPolicy,
    ) -> Self {
        Self {
            ports,
            policy,
            sessions,
            limits,
        }
    }

    /// The abuse limits in force.
    pub fn limit_policy(&self) -> &LimitPolicy {
        &self.limits
    }

    /// The session lifetimes in force.
    pub fn session_policy(&self) -> &SessionPolicy {
        &self.sessions
    }

    /// Creates an account and opens its first session.
    ///
    /// # Errors
    /// `WeakPassword` with the reason, `EmailTaken`, `RateLimited`, or a `Failure`.
    #[tracing::instrument(name = "auth.sign_up", skip_all, fields(outcome))]
    pub async fn sign_up(
        &self,
        email: Email,
        password: Password,
        ctx: &RequestContext,
    ) -> Result<TokenPair, SignUpError> {
        let result = self.sign_up_inner(email, password, ctx).await;
        record_outcome(result.as_ref().map_or_else(|e| e.outcome(), |_| "success"));
        result
    }

    async fn sign_up_inner(
        &self,
        email: Email,
        password: Password,
        ctx: &RequestContext,
    ) -> Result<TokenPair, SignUpError> {
        if let Some(retry_after_secs) = self.admit(Bucket::SignUp, ctx).await {
            return Err(SignUpError::RateLimited { retry_after_secs });
        }
        self.policy.check(&password, &email)?;
        let password_hash = self
            .ports
            .hasher
            .hash(&password)
            .await
            .map_err(Failure::from)?;
        let now = self.ports.clock.now();
        let user = User {
            id: UserId::new(),
            email,
            password_hash,
            created_at: now,
            updated_at: now,
        };
        let session = Session::open(user.id, now, &self.sessions, ctx.client.clone());
        let refresh = self.ports.secrets.refresh_token();
        let hash = self.ports.secrets.digest(&refresh);
        let event = AuthEvent::new(AuthEventKind::SignUp, Outcome::Success, now, ctx)
            .user(user.id)
            .session(session.id);
        let opening = SessionOpening {
            session: &session,
            first_token: &hash,
            event: &event,
        };
        match self.ports.users.insert(&user, opening).await {
            Ok(()) => self.ports.audit.committed(&event),
            Err(InsertUserError::EmailTaken) => return Err(SignUpError::EmailTaken),
            Err(InsertUserError::Store(error)) => return Err(Failure::from(error).into()),
        }
        Ok(self.pair_for(user.profile(), &session, refresh, now)?)
    }

    /// Verifies credentials and opens a session.
    ///
    /// An unknown email pays for a full verification against a dummy hash, so
    /// every failure costs the same and answers the same. Failures are counted
    /// per normalised email (existing or not) and per client address; past the
    /// policy's thresholds they first slow down, then lock, and a locked key
    /// answers `RateLimited` before any password is checked.
    ///
    /// # Errors
    /// `InvalidCredentials` for any credential problem, `RateLimited`, or a `Failure`.
    #[tracing::instrument(name = "auth.log_in", skip_all, fields(outcome))]
    pub async fn log_in(
        &self,
        email: Email,
        password: Password,
        ctx: &RequestContext,
    ) -> Result<TokenPair, LogInError> {
        let result = self.log_in_inner(email, password, ctx).await;
        record_outcome(result.as_ref().map_or_else(|e| e.outcome(), |_| "success"));
        result
    }

    async fn log_in_inner(
        &self,
        email: Email,
        password: Password,
        ctx: &RequestContext,
    ) -> Result<TokenPair, LogInError> {
        if let Some(retry_after_secs) = self.admit(Bucket::LogIn, ctx).await {
            return Err(LogInError::RateLimited { retry_after_secs });
        }
        let account_key = format!("account:{}", email.as_str());
        let client_key = ctx.client.ip().map(|ip| format!("client:{ip}"));
        if let Some(retry_after_secs) = self
            .lock_in_force(&account_key, client_key.as_deref())
            .await?
        {
            self.audit(
                AuthEvent::new(
                    AuthEventKind::RateLimitHit,
                    Outcome::Failure,
                    self.ports.clock.now(),
                    ctx,
                )
                .detail("login_locked"),
            );
            return Err(LogInError::RateLimited { retry_after_secs });
        }

        let found = self
            .ports
            .users
            .find_by_email(&email)
            .await
            .map_err(Failure::from)?;
        let verified = match &found {
            Some(user) => {
                let verification = self
                    .ports
                    .hasher
                    .verify(&password, &user.password_hash)
                    .await
                    .map_err(Failure::from)?;
                verification.matches.then_some(verification)
            }
            None => {
                self.ports
                    .hasher
                    .verify_dummy(&password)
                    .await
                    .map_err(Failure::from)?;
                None
            }
        };
        let (Some(user), Some(verification)) = (found.clone(), verified) else {
            self.count_failure(
                &account_key,
                client_key.as_deref(),
                found.as_ref().map(|u| u.id),
                ctx,
            )
            .await?;
            return Err(LogInError::InvalidCredentials);
        };

        if self.limits.enabled
            && let Err(error) = self.ports.failures.clear(&account_key).await
        {
            tracing::warn!(error = %error, "could not reset the failure count");
        }
        let now = self.ports.clock.now();
        let user = if verification.needs_rehash {
            self.upgrade_hash(user, &password, now).await
        } else {
            user
        };
        Ok(self
            .open_session(user, now, ctx, AuthEventKind::LoginSucceeded)
            .await?)
    }

    /// Spends one request of the client's budget; `Some(retry_after)` when spent.
    async fn admit(&self, bucket: Bucket, ctx: &RequestContext) -> Option<u64> {
        if !self.limits.enabled {
            return None;
        }
        let key = ctx.client.ip().unwrap_or("unknown");
        match self.ports.limiter.check(bucket, key).await {
            Ok(Decision::Allowed) => None,
            Ok(Decision::Limited { retry_after_secs }) => {
                self.audit(
                    AuthEvent::new(
                        AuthEventKind::RateLimitHit,
                        Outcome::Failure,
                        self.ports.clock.now(),
                        ctx,
                    )
                    .detail(bucket.as_str()),
                );
                Some(retry_after_secs.max(1))
            }
            Err(error) => {
                // Request budgets fail open: the lockout below still protects accounts.
                tracing::warn!(error = %error, bucket = bucket.as_str(), "rate limiter unavailable; request allowed");
                None
            }
        }
    }

    /// The longest lock in force on the account or the client, if any.
    async fn lock_in_force(
        &self,
        account_key: &str,
        client_key: Option<&str>,
    ) -> Result<Option<u64>, Failure> {
        if !self.limits.enabled {
            return Ok(None);
        }
        let mut longest = self.failure_state(account_key).await?.locked_for_secs;
        if let Some(client_key) = client_key {
            longest = longest.max(self.failure_state(client_key).await?.locked_for_secs);
        }
        Ok(longest)
    }

    async fn failure_state(&self, key: &str) -> Result<FailureState, Failure> {
        // Lockouts fail closed: without the counters, no password is checked.
        self.ports
            .failures
            .state(key)
            .await
            .map_err(|e| Failure::Unavailable(e.0))
    }

    async fn count_failure(
        &self,
        account_key: &str,
        client_key: Option<&str>,
        user: Option<UserId>,
        ctx: &RequestContext,
    ) -> Result<(), Failure> {
        let now = self.ports.clock.now();
        let mut failed = AuthEvent::new(AuthEventKind::LoginFailed, Outcome::Failure, now, ctx)
            .detail(if user.is_some() {
                "wrong_password"
            } else {
                "unknown_user"
            });
        if let Some(user) = user {
            failed = failed.user(user);
        }
        self.audit(failed);
        if !self.limits.enabled {
            return Ok(());
        }
        let account = self.limits.account;
        let state = self
            .ports
            .failures
            .add_failure(account_key, account.window, &move |n| account.lock_for(n))
            .await
            .map_err(|e| Failure::Unavailable(e.0))?;
        if account.locks_at(state.failures) {
            let mut locked =
                AuthEvent::new(AuthEventKind::AccountLocked, Outcome::Failure, now, ctx)
                    .detail(format!("failures={}", state.failures));
            if let Some(user) = user {
                locked = locked.user(user);
            }
            self.audit(locked);
        }
        if let Some(client_key) = client_key {
            let client = self.limits.client;
            let state = self
                .ports
                .failures
                .add_failure(client_key, client.window, &move |n| client.lock_for(n))
                .await
                .map_err(|e| Failure::Unavailable(e.0))?;
            if client.locks_at(state.failures) {
                self.audit(
                    AuthEvent::new(AuthEventKind::AccountLocked, Outcome::Failure, now, ctx)
                        .detail(format!("client_locked failures={}", state.failures)),
                );
            }
        }
        Ok(())
    }

    fn audit(&self, event: AuthEvent) {
        self.ports.audit.record(event);
    }

    /// Replaces an outdated hash; a failure here must not fail the log-in.
    async fn upgrade_hash(&self, mut user: User, password: &Password, now: OffsetDateTime) -> User {
        match self.ports.hasher.hash(password).await {
            Ok(hash) => match self
                .ports
                .users
                .update_password_hash(user.id, &hash, now)
                .await
            {
                Ok(()) => {
                    user.password_hash = hash;
                    user.updated_at = now;
                }
                Err(error) => {
                    tracing::warn!(error = %error, "could not store upgraded password hash")
                }
            },
            Err(error) => tracing::warn!(error = %error, "could not rehash password"),
        }
        user
    }

    /// Exchanges a refresh token for a new pair, rotating it.
    ///
    /// # Errors
    /// `InvalidGrant`, `Reused` (the session has been revoked), `RateLimited`, or a `Failure`.
    #[tracing::instrument(name = "auth.refresh", skip_all, fields(outcome))]
    pub async fn refresh(
        &self,
        presented: &str,
        ctx: &RequestContext,
    ) -> Result<TokenPair, RefreshError> {
        let result = self.refresh_inner(presented, ctx).await;
        record_outcome(result.as_ref().map_or_else(|e| e.outcome(), |_| "success"));
        result
    }

    async fn refresh_inner(
        &self,
        presented: &str,
        ctx: &RequestContext,
    ) -> Result<TokenPair, RefreshError> {
        if let Some(retry_after_secs) = self.admit(Bucket::Refresh, ctx).await {
            return Err(RefreshError::RateLimited { retry_after_secs });
        }
        let token = RefreshToken::parse(presented).map_err(|_| RefreshError::InvalidGrant)?;
        let hash = self.ports.secrets.digest(&token);
        let Some((record, session)) = self
            .ports
            .sessions
            .find_by_refresh_token(&hash)
            .await
            .map_err(Failure::from)?
        else {
            return Err(RefreshError::InvalidGrant);
        };
        let now = self.ports.clock.now();
        if !session.is_active(now) {
            return Err(RefreshError::InvalidGrant);
        }
        let next = self.ports.secrets.refresh_token();
        let next_hash = self.ports.secrets.digest(&next);
        let idle = session.next_idle_expiry(now, &self.sessions);
        let refreshed = AuthEvent::new(AuthEventKind::TokenRefreshed, Outcome::Success, now, ctx)
            .user(session.user_id)
            .session(session.id);

        let rotated_at = match record.rotated_at {
            Some(at) => Some(at),
            None => {
                match self
                    .ports
                    .sessions
                    .rotate(session.id, &hash, &next_hash, now, idle, &refreshed)
                    .await
                    .map_err(Failure::from)?
                {
                    RotateOutcome::Rotated => {
                        self.ports.audit.committed(&refreshed);
                        None
                    }
                    // Lost a race with a concurrent refresh of the same token: that
                    // rotation happened just now, so the grace interval applies.
                    RotateOutcome::AlreadyRotated => Some(now),
                    RotateOutcome::SessionInactive => return Err(RefreshError::InvalidGrant),
                }
            }
        };
        if let Some(rotated_at) = rotated_at {
            if now - rotated_at > self.sessions.reuse_grace {
                return Err(self.revoke_for_reuse(&session, now, ctx).await);
            }
            let refreshed = refreshed.detail("grace_replay");
            let added = self
                .ports
                .sessions
                .add_token(session.id, &next_hash, now, idle, &refreshed)
                .await
                .map_err(Failure::from)?;
            if !added {
                return Err(RefreshError::InvalidGrant);
            }
            self.ports.audit.committed(&refreshed);
        }
        let mut session = session;
        session.last_used_at = now;
        session.idle_expires_at = idle;
        let user = self
            .ports
            .users
            .find_profile(session.user_id)
            .await
            .map_err(Failure::from)?
            .ok_or(RefreshError::InvalidGrant)?;
        Ok(self.pair_for(user, &session, next, now)?)
    }

    async fn revoke_for_reuse(
        &self,
        session: &Session,
        now: OffsetDateTime,
        ctx: &RequestContext,
    ) -> RefreshError {
        tracing::warn!(session_id = %session.id, user_id = %session.user_id, "refresh token reuse detected; revoking session");
        let event = AuthEvent::new(
            AuthEventKind::RefreshTokenReuseDetected,
            Outcome::Failure,
            now,
            ctx,
        )
        .user(session.user_id)
        .session(session.id);
        match self
            .ports
            .sessions
            .revoke(
                session.user_id,
                session.id,
                now,
                RevokeReason::RefreshTokenReuse,
                &event,
            )
            .await
        {
            Ok(changed) => {
                if changed {
                    self.ports.audit.committed(&event);
                }
                self.ports.revocations.record(Revocation {
                    session_id: session.id,
                    revoked_at: now,
                });
                RefreshError::Reused {
                    session_id: session.id,
                    user_id: session.user_id,
                }
            }
            Err(error) => RefreshError::Failure(error.into()),
        }
    }

    /// Checks a bearer token: signature, claims, and that its session is not revoked.
    /// No storage round trip.
    ///
    /// # Errors
    /// The reason the token is refused.
    pub fn authenticate(&self, bearer: &str) -> Result<Principal, TokenRejection> {
        let claims = self.ports.verifier.verify(bearer, self.ports.clock.now())?;
        if self.ports.revocations.is_revoked(claims.session_id) {
            return Err(TokenRejection::Revoked);
        }
        Ok(Principal {
            user_id: claims.user_id,
            session_id: claims.session_id,
            expires_at: claims.expires_at,
        })
    }

    /// Records that a bearer token was refused, with the internal reason.
    pub fn token_rejected(&self, rejection: TokenRejection, ctx: &RequestContext) {
        self.audit(
            AuthEvent::new(
                AuthEventKind::AccessTokenRejected,
                Outcome::Failure,
                self.ports.clock.now(),
                ctx,
            )
            .detail(rejection.as_str()),
        );
    }

    /// Ends sessions of the caller; their refresh and access tokens stop working.
    ///
    /// # Errors
    /// A `Failure` only.
    #[tracing::instrument(name = "auth.log_out", skip_all, fields(outcome))]
    pub async fn log_out(
        &self,
        caller: &Principal,
        scope: LogoutScope,
        ctx: &RequestContext,
    ) -> Result<Vec<SessionId>, Failure> {
        let now = self.ports.clock.now();
        let scope_name = match scope {
            LogoutScope::This => "this",
            LogoutScope::All => "all",
            LogoutScope::Others => "others",
        };
        let event = AuthEvent::new(AuthEventKind::Logout, Outcome::Success, now, ctx)
            .user(caller.user_id)
            .session(caller.session_id)
            .detail(format!("scope={scope_name}"));
        let sessions = &self.ports.sessions;
        let revoked = match scope {
            LogoutScope::This => {
                let changed = sessions
                    .revoke(
                        caller.user_id,
                        caller.session_id,
                        now,
                        RevokeReason::Logout,
                        &event,
                    )
                    .await?;
                if changed {
                    vec![caller.session_id]
                } else {
                    Vec::new()
                }
            }
            LogoutScope::All => {
                sessions
                    .revoke_all(caller.user_id, None, now, RevokeReason::LogoutAll, &event)
                    .await?
            }
            LogoutScope::Others => {
                sessions
                    .revoke_all(
                        caller.user_id,
                        Some(caller.session_id),
                        now,
                        RevokeReason::LogoutOthers,
                        &event,
                    )
                    .await?
            }
        };
        if !revoked.is_empty() {
            self.ports.audit.committed(&event);
        }
        for session_id in &revoked {
            self.ports.revocations.record(Revocation {
                session_id: *session_id,
                revoked_at: now,
            });
        }
        // The caller's own session is dead to this instance even if another
        // request revoked it first.
        if scope != LogoutScope::Others {
            self.ports.revocations.record(Revocation {
                session_id: caller.session_id,
                revoked_at: now,
            });
        }
        record_outcome("success");
        Ok(revoked)
    }

    /// The caller's profile.
    ///
    /// # Errors
    /// `None` when the user no longer exists; a `Failure` on storage errors.
    pub async fn me(&self, caller: &Principal) -> Result<Option<Profile>, Failure> {
        Ok(self.ports.users.find_profile(caller.user_id).await?)
    }

    /// The caller's active sessions, newest first.
    ///
    /// # Errors
    /// A `Failure` only.
    pub async fn sessions(&self, caller: &Principal) -> Result<Vec<Session>, Failure> {
        let now = self.ports.clock.now();
        Ok(self.ports.sessions.list_active(caller.user_id, now).await?)
    }

    /// Revokes one of the caller's own sessions.
    ///
    /// # Errors
    /// `NotFound` for an id that is not an active session of the caller.
    pub async fn revoke_session(
        &self,
        caller: &Principal,
        session: SessionId,
        ctx: &RequestContext,
    ) -> Result<(), RevokeSessionError> {
        let now = self.ports.clock.now();
        let event = AuthEvent::new(AuthEventKind::SessionRevoked, Outcome::Success, now, ctx)
            .user(caller.user_id)
            .session(session);
        let changed = self
            .ports
            .sessions
            .revoke(
                caller.user_id,
                session,
                now,
                RevokeReason::RevokedByUser,
                &event,
            )
            .await
            .map_err(Failure::from)?;
        if !changed {
            return Err(RevokeSessionError::NotFound);
        }
        self.ports.audit.committed(&event);
        self.ports.revocations.record(Revocation {
            session_id: session,
            revoked_at: now,
        });
        Ok(())
    }

    /// The caller's own audit events, newest first.
    ///
    /// # Errors
    /// A `Failure` only.
    pub async fn events(
        &self,
        caller: &Principal,
        kinds: Vec<AuthEventKind>,
        before: Option<Uuid>,
        limit: u64,
    ) -> Result<EventPage, Failure> {
        let limit = limit.clamp(1, Self::MAX_EVENT_PAGE);
        let query = EventQuery {
            user_id: Some(caller.user_id),
            kinds,
            before,
            limit: limit + 1,
            ..EventQuery::default()
        };
        let mut items = self.ports.events.query(&query).await?;
        let next_cursor = if items.len() as u64 > limit {
            items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            items.last().map(|event| event.id)
        } else {
            None
        };
        Ok(EventPage { items, next_cursor })
    }

    async fn open_session(
        &self,
        user: User,
        now: OffsetDateTime,
        ctx: &RequestContext,
        kind: AuthEventKind,
    ) -> Result<TokenPair, Failure> {
        let session = Session::open(user.id, now, &self.sessions, ctx.client.clone());
        let refresh = self.ports.secrets.refresh_token();
        let hash = self.ports.secrets.digest(&refresh);
        let event = AuthEvent::new(kind, Outcome::Success, now, ctx)
            .user(user.id)
            .session(session.id);
        self.ports
            .sessions
            .create(SessionOpening {
                session: &session,
                first_token: &hash,
                event: &event,
            })
            .await?;
        self.ports.audit.committed(&event);
        self.pair_for(user.profile(), &session, refresh, now)
    }

    fn pair_for(
        &self,
        user: Profile,
        session: &Session,
        refresh_token: RefreshToken,
        now: OffsetDateTime,
    ) -> Result<TokenPair, Failure> {
        // An access token never outlives its session.
        let expires_at = (now + self.sessions.access_ttl).min(session.absolute_expires_at);
        let claims = AccessClaims {
            user_id: user.id,
            session_id: session.id,
            token_id: Uuid::new_v4(),
            issued_at: now,
            not_before: now,
            expires_at,
        };
        let access_token = self.ports.issuer.issue(&claims)?;
        Ok(TokenPair {
            access_token,
            access_expires_at: expires_at,
            refresh_token,
            refresh_expires_at: session.refresh_expires_at(),
            session_id: session.id,
            user,
            issued_at: now,
        })
    }
}

fn record_outcome(outcome: &'static str) {
    tracing::Span::current().record("outcome", outcome);
}

#[cfg(test)]
mod tests;
