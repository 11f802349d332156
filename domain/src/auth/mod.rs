//! The authentication use cases, one file each: `sign_up`, `log_in`,
//! `refresh`, `log_out`, `authenticate` (a bearer token on every protected
//! call), `profile` (the caller's account) and `second_step` (the second
//! factor of a log-in).
//!
//! This file holds the service, its ports and what the use cases share
//! (opening a session and signing the token pair). Each use case file holds
//! its input, its error enum and its `impl AuthService` block.

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::account::AccountPolicy;
use crate::amr::AuthMethod;
use crate::audit::{AuditSink, AuthEvent, AuthEventKind, Outcome};
use crate::clock::Clock;
use crate::context::RequestContext;
use crate::error::Failure;
use crate::ids::SessionId;
use crate::limits::{FailureCounter, LimitPolicy, LoginGuard, RateLimiter};
use crate::mfa::{MfaRepository, SecondFactorCrypto};
use crate::password::{PasswordHasher, PasswordPolicy};
use crate::session::{
    RefreshToken, RevocationCache, SecretGenerator, Session, SessionOpening, SessionPolicy,
    SessionRepository,
};
use crate::token::{AccessClaims, AccessToken, TokenIssuer, TokenVerifier};
use crate::user::{Profile, User, UserRepository};

mod authenticate;
mod log_in;
mod log_out;
mod profile;
mod refresh;
mod second_step;
mod sign_up;

pub use log_in::{LogIn, LogInError};
pub use log_out::LogoutScope;
pub use refresh::{Refresh, RefreshError};
pub use second_step::{SecondStep, SecondStepError};
pub use sign_up::{SignUp, SignUpError};

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
    pub audit: Arc<dyn AuditSink>,
    pub limiter: Arc<dyn RateLimiter>,
    pub failures: Arc<dyn FailureCounter>,
    pub mfa: Arc<dyn MfaRepository>,
    pub factors: Arc<dyn SecondFactorCrypto>,
}

/// The authentication use cases.
#[derive(Clone)]
pub struct AuthService {
    ports: AuthPorts,
    policy: PasswordPolicy,
    sessions: SessionPolicy,
    account: AccountPolicy,
    guard: LoginGuard,
}

impl AuthService {
    /// Builds the service.
    pub fn new(
        ports: AuthPorts,
        policy: PasswordPolicy,
        sessions: SessionPolicy,
        limits: LimitPolicy,
    ) -> Self {
        let guard = LoginGuard::new(
            ports.limiter.clone(),
            ports.failures.clone(),
            ports.audit.clone(),
            ports.clock.clone(),
            limits,
        );
        Self {
            ports,
            policy,
            sessions,
            account: AccountPolicy::default(),
            guard,
        }
    }

    /// The same service under `account`'s verification rules.
    #[must_use]
    pub fn with_account_policy(mut self, account: AccountPolicy) -> Self {
        self.account = account;
        self
    }

    /// The abuse limits in force.
    pub fn limit_policy(&self) -> &LimitPolicy {
        self.guard.policy()
    }

    /// The session lifetimes in force.
    pub fn session_policy(&self) -> &SessionPolicy {
        &self.sessions
    }

    /// Opens a session for `user`, who proved `amr`, with its first refresh
    /// token and the event `kind`, committed together, and signs the pair.
    async fn open_session(
        &self,
        user: User,
        now: OffsetDateTime,
        ctx: &RequestContext,
        kind: AuthEventKind,
        amr: Vec<AuthMethod>,
    ) -> Result<TokenPair, Failure> {
        let session =
            Session::open(user.id, now, &self.sessions, ctx.client.clone()).proven_by(amr);
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

    /// Signs an access token for `session` and pairs it with `refresh_token`.
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
            email_verified: user.email_verified,
            amr: session.amr.clone(),
            auth_time: session.auth_time,
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

/// Records the outcome of the current use case on its span.
fn record_outcome(outcome: &'static str) {
    tracing::Span::current().record("outcome", outcome);
}

#[cfg(test)]
mod tests;
