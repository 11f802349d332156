//! In-memory fakes of every port, for unit tests of the services.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::Unexpected;
use crate::clock::Clock;
use crate::error::StoreError;
use crate::password::{HashError, Password, PasswordHash, PasswordHasher, Verification};
use crate::session::{
    RefreshRecord, RefreshToken, Revocation, RevocationCache, RevokeReason, RotateOutcome,
    SecretGenerator, Session, SessionId, SessionRepository, TokenHash,
};
use crate::token::{AccessClaims, AccessToken, TokenIssuer, TokenRejection, TokenVerifier};
use crate::user::{Email, InsertUserError, User, UserId, UserRepository};

pub struct FixedClock(Mutex<OffsetDateTime>);

impl FixedClock {
    pub fn at(now: OffsetDateTime) -> Self {
        Self(Mutex::new(now))
    }
    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

#[derive(Default)]
pub struct InMemoryUserRepository(Mutex<HashMap<UserId, User>>);

#[async_trait]
impl UserRepository for InMemoryUserRepository {
    async fn insert(&self, user: &User) -> Result<(), InsertUserError> {
        let mut users = self.0.lock().unwrap();
        if users.values().any(|u| u.email == user.email) {
            return Err(InsertUserError::EmailTaken);
        }
        users.insert(user.id, user.clone());
        Ok(())
    }
    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .values()
            .find(|u| &u.email == email)
            .cloned())
    }
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(self.0.lock().unwrap().get(&id).cloned())
    }
    async fn update_password_hash(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if let Some(user) = self.0.lock().unwrap().get_mut(&id) {
            user.password_hash = hash.clone();
            user.updated_at = now;
        }
        Ok(())
    }
}

#[derive(Default)]
struct SessionState {
    sessions: HashMap<SessionId, Session>,
    tokens: HashMap<TokenHash, RefreshRecord>,
}

#[derive(Default)]
pub struct InMemorySessionRepository(Mutex<SessionState>);

impl InMemorySessionRepository {
    pub fn live_tokens(&self, session: SessionId) -> usize {
        let state = self.0.lock().unwrap();
        state
            .tokens
            .values()
            .filter(|r| r.session_id == session && r.rotated_at.is_none())
            .count()
    }
    pub fn session_count(&self) -> usize {
        self.0.lock().unwrap().sessions.len()
    }
    pub fn get(&self, id: SessionId) -> Session {
        self.0.lock().unwrap().sessions[&id].clone()
    }
}

#[async_trait]
impl SessionRepository for InMemorySessionRepository {
    async fn create(&self, session: &Session, first_token: &TokenHash) -> Result<(), StoreError> {
        let mut state = self.0.lock().unwrap();
        state.sessions.insert(session.id, session.clone());
        state.tokens.insert(
            first_token.clone(),
            RefreshRecord {
                session_id: session.id,
                created_at: session.created_at,
                rotated_at: None,
            },
        );
        Ok(())
    }
    async fn find_by_refresh_token(
        &self,
        token: &TokenHash,
    ) -> Result<Option<(RefreshRecord, Session)>, StoreError> {
        let state = self.0.lock().unwrap();
        Ok(state
            .tokens
            .get(token)
            .map(|record| (record.clone(), state.sessions[&record.session_id].clone())))
    }
    async fn rotate(
        &self,
        session: SessionId,
        presented: &TokenHash,
        next: &TokenHash,
        now: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
    ) -> Result<RotateOutcome, StoreError> {
        let mut state = self.0.lock().unwrap();
        if !state.sessions[&session].is_active(now) {
            return Ok(RotateOutcome::SessionInactive);
        }
        let record = state.tokens.get_mut(presented).unwrap();
        if record.rotated_at.is_some() {
            return Ok(RotateOutcome::AlreadyRotated);
        }
        record.rotated_at = Some(now);
        state.tokens.insert(
            next.clone(),
            RefreshRecord {
                session_id: session,
                created_at: now,
                rotated_at: None,
            },
        );
        let stored = state.sessions.get_mut(&session).unwrap();
        stored.last_used_at = now;
        stored.idle_expires_at = idle_expires_at;
        Ok(RotateOutcome::Rotated)
    }
    async fn add_token(
        &self,
        session: SessionId,
        next: &TokenHash,
        now: OffsetDateTime,
        idle_expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut state = self.0.lock().unwrap();
        if !state.sessions[&session].is_active(now) {
            return Ok(false);
        }
        state.tokens.insert(
            next.clone(),
            RefreshRecord {
                session_id: session,
                created_at: now,
                rotated_at: None,
            },
        );
        let stored = state.sessions.get_mut(&session).unwrap();
        stored.last_used_at = now;
        stored.idle_expires_at = idle_expires_at;
        Ok(true)
    }
    async fn find(&self, user: UserId, session: SessionId) -> Result<Option<Session>, StoreError> {
        let state = self.0.lock().unwrap();
        Ok(state
            .sessions
            .get(&session)
            .filter(|s| s.user_id == user)
            .cloned())
    }
    async fn revoke(
        &self,
        user: UserId,
        session: SessionId,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<bool, StoreError> {
        let mut state = self.0.lock().unwrap();
        match state.sessions.get_mut(&session) {
            Some(s) if s.user_id == user && s.revoked_at.is_none() => {
                s.revoked_at = Some(now);
                s.revoked_reason = Some(reason);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    async fn revoke_all(
        &self,
        user: UserId,
        except: Option<SessionId>,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Result<Vec<SessionId>, StoreError> {
        let mut state = self.0.lock().unwrap();
        let mut revoked = Vec::new();
        for s in state.sessions.values_mut() {
            if s.user_id == user && Some(s.id) != except && s.revoked_at.is_none() {
                s.revoked_at = Some(now);
                s.revoked_reason = Some(reason);
                revoked.push(s.id);
            }
        }
        Ok(revoked)
    }
    async fn list_active(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        let state = self.0.lock().unwrap();
        let mut list: Vec<_> = state
            .sessions
            .values()
            .filter(|s| s.user_id == user && s.is_active(now))
            .cloned()
            .collect();
        list.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        Ok(list)
    }
    async fn revoked_since(&self, since: OffsetDateTime) -> Result<Vec<Revocation>, StoreError> {
        let state = self.0.lock().unwrap();
        Ok(state
            .sessions
            .values()
            .filter_map(|s| {
                s.revoked_at
                    .filter(|at| *at >= since)
                    .map(|revoked_at| Revocation {
                        session_id: s.id,
                        revoked_at,
                    })
            })
            .collect())
    }
}

/// "Hashes" by prefixing; the structure of the service is what is under test.
#[derive(Default)]
pub struct FakeHasher {
    pub dummy_verifications: AtomicU64,
}

#[async_trait]
impl PasswordHasher for FakeHasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        Ok(PasswordHash::new(format!("fake:{}", password.expose())))
    }
    async fn verify(
        &self,
        password: &Password,
        hash: &PasswordHash,
    ) -> Result<Verification, HashError> {
        let old = hash.as_str().strip_prefix("old:");
        let stored = old
            .or_else(|| hash.as_str().strip_prefix("fake:"))
            .unwrap_or_default();
        Ok(Verification {
            matches: stored == password.expose(),
            needs_rehash: old.is_some(),
        })
    }
    async fn verify_dummy(&self, _password: &Password) -> Result<(), HashError> {
        self.dummy_verifications.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Tokens are `user|session|exp` in clear: signature checks belong to infra.
pub struct FakeTokens;

impl TokenIssuer for FakeTokens {
    fn issue(&self, claims: &AccessClaims) -> Result<AccessToken, Unexpected> {
        Ok(AccessToken::new(format!(
            "{}|{}|{}",
            claims.user_id,
            claims.session_id,
            claims.expires_at.unix_timestamp()
        )))
    }
}

impl TokenVerifier for FakeTokens {
    fn verify(&self, token: &str, now: OffsetDateTime) -> Result<AccessClaims, TokenRejection> {
        let parts: Vec<&str> = token.split('|').collect();
        let [user, session, exp] = parts.as_slice() else {
            return Err(TokenRejection::Malformed);
        };
        let parse = |s: &str| Uuid::parse_str(s).map_err(|_| TokenRejection::Malformed);
        let exp: i64 = exp.parse().map_err(|_| TokenRejection::Malformed)?;
        let expires_at =
            OffsetDateTime::from_unix_timestamp(exp).map_err(|_| TokenRejection::Malformed)?;
        if now >= expires_at {
            return Err(TokenRejection::Expired);
        }
        Ok(AccessClaims {
            user_id: UserId::from_uuid(parse(user)?),
            session_id: SessionId::from_uuid(parse(session)?),
            token_id: Uuid::nil(),
            issued_at: now,
            not_before: now,
            expires_at,
        })
    }
}

#[derive(Default)]
pub struct InMemoryRevocationCache(Mutex<HashSet<SessionId>>);

impl RevocationCache for InMemoryRevocationCache {
    fn is_revoked(&self, session: SessionId) -> bool {
        self.0.lock().unwrap().contains(&session)
    }
    fn record(&self, revocation: Revocation) {
        self.0.lock().unwrap().insert(revocation.session_id);
    }
}

/// Tokens are sequential 43-character strings; the digest is the token's bytes.
#[derive(Default)]
pub struct SequentialSecrets(AtomicU64);

impl SecretGenerator for SequentialSecrets {
    fn refresh_token(&self) -> RefreshToken {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        RefreshToken::from_generated(format!("{n:0>43}"))
    }
    fn digest(&self, token: &RefreshToken) -> TokenHash {
        TokenHash::from_bytes(token.expose().as_bytes().to_vec())
    }
}
