//! In-memory fakes of every port, for unit tests of the use cases and, with
//! the `testkit` feature, for handler tests of the adapters. Not for
//! production: they panic on poisoned locks and keep everything in memory.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use std::sync::Arc;

use std::future::Future;
use std::pin::Pin;

use crate::account::{
    AccountChange, AccountDeletion, AccountExport, AccountPolicy, AccountPorts, AccountRepository,
    AccountService, Background, ChangeError, PendingToken, SecondFactorsExport,
};
use crate::audit::{AuditLog, AuditSink, AuthEvent, AuthEventRepository, EventQuery};
use crate::auth::{AuthPorts, AuthService};
use crate::clock::Clock;
use crate::email::Email;
use crate::error::Failure;
use crate::ids::TaskId;
use crate::ids::{SessionId, UserId};
use crate::limits::LimitPolicy;
use crate::limits::lockout::secs_from_ms;
use crate::limits::{
    Bucket, Charge, Counter, Decision, FailureCounter, FailureState, RateLimiter, Reservation,
    reserve,
};
use crate::mail::Mail;
use crate::mfa::{
    Challenge, FactorChange, MfaPorts, MfaRepository, MfaService, RECOVERY_CODES, RecoveryCode,
    SealedSeed, SecondFactorCrypto, TotpCode, TotpProvisioning, TotpRecord,
};
use crate::one_time::TokenPurpose;
use crate::password::PasswordPolicy;
use crate::password::{Password, PasswordHash, PasswordHasher, Verification};
use crate::session::{
    RefreshDecision, RefreshRecord, RefreshToken, Revocation, RevocationCache, RevocationCursor,
    RevocationPage, RevokeReason, RotateOutcome, SecretGenerator, Session, SessionOpening,
    SessionRepository, Supersession, TokenHash, decide_refresh, decide_rotation,
};
use crate::session::{SessionPolicy, SessionService};
use crate::task::{Task, TaskRepository, TaskService};
use crate::token::{AccessClaims, AccessToken, TokenIssuer, TokenRejection, TokenVerifier};
use crate::user::{InsertUserError, NewToken, User, UserRepository};

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
struct State {
    users: HashMap<UserId, User>,
    sessions: HashMap<SessionId, Session>,
    tokens: HashMap<TokenHash, RefreshRecord>,
    events: Vec<AuthEvent>,
    /// The revocation feed: position, revocation.
    feed: Vec<(u64, Revocation)>,
    fed: u64,
    one_time: HashMap<TokenHash, PendingToken>,
    outbox: Vec<Mail>,
    totp: HashMap<UserId, TotpRecord>,
    recovery: HashMap<UserId, Vec<Vec<u8>>>,
    challenges: HashMap<TokenHash, Challenge>,
}

impl State {
    fn open(&mut self, opening: SessionOpening<'_>) {
        let session = opening.session;
        self.sessions.insert(session.id, session.clone());
        self.tokens.insert(
            opening.first_token.clone(),
            RefreshRecord {
                session_id: session.id,
                created_at: session.created_at,
                rotated_at: None,
            },
        );
        self.events.push(opening.event.clone());
    }

    fn store_token(&mut self, user: UserId, token: &NewToken<'_>) {
        self.one_time
            .retain(|_, t| !(t.user == user && t.purpose == token.purpose));
        self.one_time.insert(
            token.hash.clone(),
            PendingToken {
                user,
                purpose: token.purpose,
                new_email: token.new_email.cloned(),
                session: token.session,
                created_at: token.created_at,
                expires_at: token.expires_at,
            },
        );
    }

    fn revoke_sessions(
        &mut self,
        user: UserId,
        except: Option<SessionId>,
        now: OffsetDateTime,
        reason: RevokeReason,
    ) -> Vec<SessionId> {
        let mut revoked = Vec::new();
        for session in self.sessions.values_mut() {
            if session.user_id == user && session.revoked_at.is_none() && Some(session.id) != except
            {
                session.revoked_at = Some(now);
                session.revoked_reason = Some(reason);
                revoked.push(session.id);
            }
        }
        for id in &revoked {
            self.append_revocation(*id, now);
        }
        revoked
    }

    fn append_revocation(&mut self, session_id: SessionId, revoked_at: OffsetDateTime) {
        self.fed += 1;
        self.feed.push((
            self.fed,
            Revocation {
                session_id,
                revoked_at,
            },
        ));
    }
}

/// Users, sessions, refresh tokens and events in one place, so that the
/// "one transaction" methods are atomic under one lock.
#[derive(Default)]
pub struct InMemoryStore(Mutex<State>);

impl InMemoryStore {
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
    pub fn events(&self) -> Vec<AuthEvent> {
        self.0.lock().unwrap().events.clone()
    }
    /// Every message queued so far, oldest first.
    pub fn outbox(&self) -> Vec<Mail> {
        self.0.lock().unwrap().outbox.clone()
    }
    /// Live one-time tokens of `user`.
    pub fn live_one_time_tokens(&self, user: UserId) -> usize {
        let state = self.0.lock().unwrap();
        state.one_time.values().filter(|t| t.user == user).count()
    }
}

#[async_trait]
impl UserRepository for InMemoryStore {
    async fn insert(
        &self,
        user: &User,
        opening: SessionOpening<'_>,
        verification: NewToken<'_>,
        mail: &Mail,
    ) -> Result<(), InsertUserError> {
        let mut state = self.0.lock().unwrap();
        if state.users.values().any(|u| u.email == user.email) {
            return Err(InsertUserError::EmailTaken);
        }
        state.users.insert(user.id, user.clone());
        state.open(opening);
        state.store_token(user.id, &verification);
        state.outbox.push(mail.clone());
        Ok(())
    }
    async fn find_by_email(&self, email: &Email) -> Result<Option<User>, Failure> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .users
            .values()
            .find(|u| &u.email == email)
            .cloned())
    }
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, Failure> {
        Ok(self.0.lock().unwrap().users.get(&id).cloned())
    }
    async fn update_password_hash(
        &self,
        id: UserId,
        hash: &PasswordHash,
        now: OffsetDateTime,
    ) -> Result<(), Failure> {
        if let Some(user) = self.0.lock().unwrap().users.get_mut(&id) {
            user.password_hash = hash.clone();
            user.updated_at = now;
        }
        Ok(())
    }
}

#[async_trait]
impl SessionRepository for InMemoryStore {
    async fn create(&self, opening: SessionOpening<'_>) -> Result<(), Failure> {
        self.0.lock().unwrap().open(opening);
        Ok(())
    }
    async fn find_by_refresh_token(
        &self,
        token: &TokenHash,
    ) -> Result<Option<(RefreshRecord, Session)>, Failure> {
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
        event: &AuthEvent,
    ) -> Result<RotateOutcome, Failure> {
        let mut state = self.0.lock().unwrap();
        let outcome = decide_rotation(
            session,
            state.sessions.get(&session),
            state.tokens.get(presented),
            now,
        );
        if outcome != RotateOutcome::Rotated {
            return Ok(outcome);
        }
        if let Some(record) = state.tokens.get_mut(presented) {
            record.rotated_at = Some(now);
        }
        state.tokens.insert(
            next.clone(),
            RefreshRecord {
                session_id: session,
                created_at: now,
                rotated_at: None,
            },
        );
        if let Some(stored) = state.sessions.get_mut(&session) {
            stored.record_use(now, idle_expires_at);
        }
        state.events.push(event.clone());
        Ok(RotateOutcome::Rotated)
    }
    async fn supersede(&self, replay: Supersession<'_>) -> Result<RefreshDecision, Failure> {
        let mut state = self.0.lock().unwrap();
        let decision = decide_refresh(
            replay.session,
            state.sessions.get(&replay.session),
            state.tokens.get(replay.presented),
            replay.now,
            replay.grace,
        );
        if decision != RefreshDecision::GraceReplay {
            return Ok(decision);
        }
        for record in state.tokens.values_mut() {
            if record.session_id == replay.session && record.rotated_at.is_none() {
                record.rotated_at = Some(replay.now);
            }
        }
        state.tokens.insert(
            replay.next.clone(),
            RefreshRecord {
                session_id: replay.session,
                created_at: replay.now,
                rotated_at: None,
            },
        );
        if let Some(stored) = state.sessions.get_mut(&replay.session) {
            stored.record_use(replay.now, replay.idle_expires_at);
        }
        state.events.push(replay.event.clone());
        Ok(decision)
    }
    async fn find(&self, user: UserId, session: SessionId) -> Result<Option<Session>, Failure> {
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
        event: &AuthEvent,
    ) -> Result<bool, Failure> {
        let mut state = self.0.lock().unwrap();
        let changed = match state.sessions.get_mut(&session) {
            Some(s) if s.user_id == user && s.revoked_at.is_none() => {
                s.revoked_at = Some(now);
                s.revoked_reason = Some(reason);
                true
            }
            _ => false,
        };
        if changed {
            state.events.push(event.clone());
            state.append_revocation(session, now);
        }
        Ok(changed)
    }
    async fn revoke_all(
        &self,
        user: UserId,
        except: Option<SessionId>,
        now: OffsetDateTime,
        reason: RevokeReason,
        event: &AuthEvent,
    ) -> Result<Vec<SessionId>, Failure> {
        let mut state = self.0.lock().unwrap();
        let mut revoked = Vec::new();
        for s in state.sessions.values_mut() {
            if s.user_id == user && Some(s.id) != except && s.revoked_at.is_none() {
                s.revoked_at = Some(now);
                s.revoked_reason = Some(reason);
                revoked.push(s.id);
            }
        }
        if !revoked.is_empty() {
            state.events.push(event.clone());
        }
        for id in &revoked {
            state.append_revocation(*id, now);
        }
        Ok(revoked)
    }
    async fn list_active(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, Failure> {
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
    async fn revocations_after(
        &self,
        cursor: RevocationCursor,
        limit: u64,
    ) -> Result<RevocationPage, Failure> {
        let state = self.0.lock().unwrap();
        let read: Vec<&(u64, Revocation)> = state
            .feed
            .iter()
            .filter(|(at, _)| *at > cursor.raw())
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect();
        Ok(RevocationPage {
            next: read
                .last()
                .map_or(cursor, |(at, _)| RevocationCursor::from_raw(*at)),
            revocations: read.into_iter().map(|(_, r)| *r).collect(),
        })
    }
    async fn recent_revocations(&self, since: OffsetDateTime) -> Result<RevocationPage, Failure> {
        let state = self.0.lock().unwrap();
        Ok(RevocationPage {
            revocations: state
                .feed
                .iter()
                .filter(|(_, r)| r.revoked_at >= since)
                .map(|(_, r)| *r)
                .collect(),
            next: RevocationCursor::from_raw(state.fed),
        })
    }
    async fn purge_revocations(&self, before: OffsetDateTime, limit: u64) -> Result<u64, Failure> {
        let mut state = self.0.lock().unwrap();
        let mut left = usize::try_from(limit).unwrap_or(usize::MAX);
        let start = state.feed.len();
        state.feed.retain(|(_, r)| {
            if left > 0 && r.revoked_at < before {
                left -= 1;
                false
            } else {
                true
            }
        });
        Ok((start - state.feed.len()) as u64)
    }
    async fn count_active(&self, now: OffsetDateTime) -> Result<u64, Failure> {
        let state = self.0.lock().unwrap();
        Ok(state.sessions.values().filter(|s| s.is_active(now)).count() as u64)
    }
    async fn purge_ended(&self, ended_before: OffsetDateTime, limit: u64) -> Result<u64, Failure> {
        let mut state = self.0.lock().unwrap();
        let ended: Vec<SessionId> = state
            .sessions
            .values()
            .filter(|s| {
                s.revoked_at.is_some_and(|at| at < ended_before)
                    || s.idle_expires_at < ended_before
                    || s.absolute_expires_at < ended_before
            })
            .map(|s| s.id)
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect();
        for id in &ended {
            state.sessions.remove(id);
        }
        state
            .tokens
            .retain(|_, record| !ended.contains(&record.session_id));
        Ok(ended.len() as u64)
    }
}

#[async_trait]
impl AuthEventRepository for InMemoryStore {
    async fn append(&self, events: &[AuthEvent]) -> Result<(), Failure> {
        self.0.lock().unwrap().events.extend_from_slice(events);
        Ok(())
    }
    async fn query(&self, query: &EventQuery) -> Result<Vec<AuthEvent>, Failure> {
        let state = self.0.lock().unwrap();
        let mut found: Vec<AuthEvent> = state
            .events
            .iter()
            .filter(|e| query.user_id.is_none_or(|u| e.user_id == Some(u)))
            .filter(|e| query.kinds.is_empty() || query.kinds.contains(&e.kind))
            .filter(|e| query.before.is_none_or(|b| e.id < b))
            .cloned()
            .collect();
        found.sort_by_key(|e| std::cmp::Reverse(e.id));
        found.truncate(usize::try_from(query.limit).unwrap());
        Ok(found)
    }
    async fn purge_before(&self, cutoff: OffsetDateTime, limit: u64) -> Result<u64, Failure> {
        let mut state = self.0.lock().unwrap();
        let mut old: Vec<(OffsetDateTime, Uuid)> = state
            .events
            .iter()
            .filter(|e| e.at < cutoff)
            .map(|e| (e.at, e.id))
            .collect();
        old.sort_unstable();
        old.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let purged: HashSet<Uuid> = old.into_iter().map(|(_, id)| id).collect();
        state.events.retain(|e| !purged.contains(&e.id));
        Ok(purged.len() as u64)
    }
}

#[async_trait]
impl AccountRepository for InMemoryStore {
    async fn find_token(
        &self,
        token: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<PendingToken>, Failure> {
        let state = self.0.lock().unwrap();
        Ok(state
            .one_time
            .get(token)
            .filter(|t| t.expires_at > now)
            .cloned())
    }

    async fn apply(&self, change: AccountChange<'_>) -> Result<Vec<SessionId>, ChangeError> {
        let mut state = self.0.lock().unwrap();
        let Some(user) = state.users.get(&change.user).cloned() else {
            return Err(ChangeError::UserGone);
        };
        if let Some(hash) = change.consume {
            let live = state
                .one_time
                .get(hash)
                .is_some_and(|t| t.user == change.user && t.expires_at > change.now);
            if !live {
                return Err(ChangeError::TokenGone);
            }
        }
        if let Some(email) = change.email
            && state
                .users
                .values()
                .any(|u| &u.email == email && u.id != user.id)
        {
            return Err(ChangeError::EmailTaken);
        }
        if let (Some(issue), Some(interval)) = (change.issue, change.not_within) {
            let last = state
                .one_time
                .values()
                .filter(|t| t.user == user.id && t.purpose == issue.purpose)
                .map(|t| t.created_at)
                .max();
            if let Some(last) = last
                && change.now < last + interval
            {
                let left = (last + interval - change.now).whole_seconds().max(1);
                return Err(ChangeError::TooSoon {
                    retry_after_secs: u64::try_from(left).unwrap_or(1),
                });
            }
        }
        if let Some(hash) = change.consume {
            state.one_time.remove(hash);
        }
        let stored = state.users.get_mut(&user.id).unwrap();
        if let Some(password) = change.password {
            stored.password_hash = password.clone();
        }
        if let Some(email) = change.email {
            stored.email = email.clone();
        }
        if change.verify {
            stored.email_verified_at = Some(change.now);
        }
        stored.updated_at = change.now;
        if change.password.is_some() {
            state
                .one_time
                .retain(|_, t| !(t.user == user.id && t.purpose == TokenPurpose::ResetPassword));
        }
        if change.email.is_some() {
            state.one_time.retain(|_, t| t.user != user.id);
        }
        let revoked = match change.revoke {
            Some(revoke) => {
                state.revoke_sessions(user.id, revoke.except, change.now, revoke.reason)
            }
            None => Vec::new(),
        };
        if let Some(issue) = change.issue {
            state.store_token(user.id, &issue);
        }
        state.outbox.extend_from_slice(change.mail);
        state.events.push(change.event.clone());
        Ok(revoked)
    }

    async fn delete(
        &self,
        deletion: AccountDeletion<'_>,
    ) -> Result<Option<Vec<SessionId>>, Failure> {
        let mut state = self.0.lock().unwrap();
        if state.users.remove(&deletion.user).is_none() {
            return Ok(None);
        }
        let revoked = state.revoke_sessions(
            deletion.user,
            None,
            deletion.now,
            RevokeReason::AccountDeleted,
        );
        state.sessions.retain(|_, s| s.user_id != deletion.user);
        state.one_time.retain(|_, t| t.user != deletion.user);
        state.outbox.push(deletion.notice.clone());
        state.events.push(deletion.event.clone());
        Ok(Some(revoked))
    }

    async fn export(&self, user: UserId, limit: u64) -> Result<Option<AccountExport>, Failure> {
        let state = self.0.lock().unwrap();
        let Some(found) = state.users.get(&user) else {
            return Ok(None);
        };
        let mut sessions: Vec<Session> = state
            .sessions
            .values()
            .filter(|s| s.user_id == user)
            .cloned()
            .collect();
        sessions.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        let mut events: Vec<AuthEvent> = state
            .events
            .iter()
            .filter(|e| e.user_id == Some(user))
            .cloned()
            .collect();
        events.sort_by_key(|e| std::cmp::Reverse(e.id));
        events.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(Some(AccountExport {
            exported_at: OffsetDateTime::UNIX_EPOCH,
            profile: found.profile(),
            sessions,
            events,
            // This fake keeps tasks elsewhere (`InMemoryTasks`).
            tasks: Vec::new(),
            second_factors: SecondFactorsExport {
                totp_pending: state.totp.get(&user).is_some_and(|t| !t.active),
                totp_active: state.totp.get(&user).is_some_and(|t| t.active),
                recovery_codes_left: state.recovery.get(&user).map_or(0, |c| c.len() as u32),
            },
        }))
    }
}

#[async_trait]
impl MfaRepository for InMemoryStore {
    async fn totp(&self, user: UserId) -> Result<Option<TotpRecord>, Failure> {
        Ok(self.0.lock().unwrap().totp.get(&user).cloned())
    }
    async fn recovery_codes_left(&self, user: UserId) -> Result<u32, Failure> {
        let state = self.0.lock().unwrap();
        Ok(state
            .recovery
            .get(&user)
            .map_or(0, |codes| codes.len() as u32))
    }
    async fn put_pending_totp(
        &self,
        user: UserId,
        seed: &SealedSeed,
        _now: OffsetDateTime,
    ) -> Result<bool, Failure> {
        let mut state = self.0.lock().unwrap();
        if state.totp.get(&user).is_some_and(|t| t.active) {
            return Ok(false);
        }
        state.totp.insert(
            user,
            TotpRecord {
                seed: seed.clone(),
                active: false,
                last_step: None,
            },
        );
        Ok(true)
    }
    async fn activate_totp(
        &self,
        change: FactorChange<'_>,
        step: u64,
        codes: &[Vec<u8>],
    ) -> Result<bool, Failure> {
        let mut state = self.0.lock().unwrap();
        let Some(totp) = state.totp.get_mut(&change.user).filter(|t| !t.active) else {
            return Ok(false);
        };
        totp.active = true;
        totp.last_step = Some(step);
        state.recovery.insert(change.user, codes.to_vec());
        if let Some(user) = state.users.get_mut(&change.user) {
            user.second_factor = true;
        }
        state.events.push(change.event.clone());
        state.outbox.extend_from_slice(change.mail);
        Ok(true)
    }
    async fn accept_totp_step(&self, user: UserId, step: u64) -> Result<bool, Failure> {
        let mut state = self.0.lock().unwrap();
        let Some(totp) = state.totp.get_mut(&user).filter(|t| t.active) else {
            return Ok(false);
        };
        if totp.last_step.is_some_and(|last| step <= last) {
            return Ok(false);
        }
        totp.last_step = Some(step);
        Ok(true)
    }
    async fn use_recovery_code(
        &self,
        change: FactorChange<'_>,
        digest: &[u8],
    ) -> Result<bool, Failure> {
        let mut state = self.0.lock().unwrap();
        let Some(codes) = state.recovery.get_mut(&change.user) else {
            return Ok(false);
        };
        let before = codes.len();
        codes.retain(|code| code.as_slice() != digest);
        if codes.len() == before {
            return Ok(false);
        }
        state.events.push(change.event.clone());
        state.outbox.extend_from_slice(change.mail);
        Ok(true)
    }
    async fn replace_recovery_codes(
        &self,
        change: FactorChange<'_>,
        codes: &[Vec<u8>],
    ) -> Result<(), Failure> {
        let mut state = self.0.lock().unwrap();
        state.recovery.insert(change.user, codes.to_vec());
        state.events.push(change.event.clone());
        state.outbox.extend_from_slice(change.mail);
        Ok(())
    }
    async fn remove_totp(
        &self,
        change: FactorChange<'_>,
        except: Option<SessionId>,
    ) -> Result<Vec<SessionId>, Failure> {
        let mut state = self.0.lock().unwrap();
        state.totp.remove(&change.user);
        state.recovery.remove(&change.user);
        if let Some(user) = state.users.get_mut(&change.user) {
            user.second_factor = false;
        }
        let revoked = state.revoke_sessions(
            change.user,
            except,
            change.now,
            RevokeReason::SecondFactorRemoved,
        );
        state.events.push(change.event.clone());
        state.outbox.extend_from_slice(change.mail);
        Ok(revoked)
    }
    async fn open_challenge(
        &self,
        token: &TokenHash,
        challenge: &Challenge,
    ) -> Result<(), Failure> {
        self.0
            .lock()
            .unwrap()
            .challenges
            .insert(token.clone(), challenge.clone());
        Ok(())
    }
    async fn challenge(
        &self,
        token: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<Challenge>, Failure> {
        let state = self.0.lock().unwrap();
        Ok(state
            .challenges
            .get(token)
            .filter(|c| c.expires_at > now)
            .cloned())
    }
    async fn fail_challenge(&self, token: &TokenHash, max: u32) -> Result<u32, Failure> {
        let mut state = self.0.lock().unwrap();
        let Some(challenge) = state.challenges.get_mut(token) else {
            return Ok(max);
        };
        challenge.tries += 1;
        let tries = challenge.tries;
        if tries >= max {
            state.challenges.remove(token);
        }
        Ok(tries)
    }
    async fn consume_challenge(&self, token: &TokenHash) -> Result<bool, Failure> {
        Ok(self.0.lock().unwrap().challenges.remove(token).is_some())
    }
}

/// Second factors without cryptography: a seed is the user id in bytes,
/// the code of time step `n` is `n`'s last six digits, recovery codes are
/// sequential and their digest is their text. Tests compute codes with
/// [`FakeFactors::code_at`].
pub struct FakeFactors;

impl FakeFactors {
    /// The code the fake accepts at `now` (its time step's last six digits).
    pub fn code_at(now: OffsetDateTime) -> TotpCode {
        let step = now.unix_timestamp().max(0) as u64 / 30;
        TotpCode::parse(&format!("{:06}", step % 1_000_000)).unwrap()
    }
}

impl SecondFactorCrypto for FakeFactors {
    fn new_totp(
        &self,
        user: UserId,
        _account: &Email,
    ) -> Result<(SealedSeed, TotpProvisioning), Failure> {
        let seed = SealedSeed(user.as_uuid().as_bytes().to_vec());
        let shown = |text: &str| secrecy::SecretString::from(text.to_owned());
        Ok((
            seed,
            TotpProvisioning {
                secret: shown("FAKESECRET"),
                otpauth_uri: shown("otpauth://totp/fake"),
                qr_svg: shown("<svg/>"),
            },
        ))
    }
    fn totp_step(
        &self,
        user: UserId,
        seed: &SealedSeed,
        code: &TotpCode,
        now: OffsetDateTime,
    ) -> Result<Option<u64>, Failure> {
        if seed.0 != user.as_uuid().as_bytes() {
            return Err(Failure::msg("seed of another user"));
        }
        let step = now.unix_timestamp().max(0) as u64 / 30;
        Ok([step.saturating_sub(1), step, step + 1]
            .into_iter()
            .find(|s| format!("{:06}", s % 1_000_000) == code.as_str()))
    }
    fn recovery_codes(&self) -> Vec<RecoveryCode> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        (0..RECOVERY_CODES)
            .map(|_| {
                let n = NEXT.fetch_add(1, Ordering::SeqCst);
                let letters: String = format!("{n:016}")
                    .bytes()
                    .map(|b| char::from(b'a' + (b - b'0')))
                    .collect();
                RecoveryCode::from_plain(&letters)
            })
            .collect()
    }
    fn recovery_digest(&self, code: &RecoveryCode) -> Vec<u8> {
        code.expose().as_bytes().to_vec()
    }
}

/// Keeps background work until a test runs it with [`QueuedBackground::run_all`].
#[derive(Default)]
pub struct QueuedBackground(Mutex<Vec<Pin<Box<dyn Future<Output = ()> + Send>>>>);

impl QueuedBackground {
    /// Runs every queued piece of work, in order.
    pub async fn run_all(&self) {
        let queued: Vec<_> = std::mem::take(&mut *self.0.lock().unwrap());
        for work in queued {
            work.await;
        }
    }
}

impl Background for QueuedBackground {
    fn spawn(&self, work: Pin<Box<dyn Future<Output = ()> + Send + 'static>>) {
        self.0.lock().unwrap().push(work);
    }
}

/// Writes "no state change" events straight into the store.
pub struct StoreAudit(pub Arc<InMemoryStore>);

impl AuditSink for StoreAudit {
    fn record(&self, event: AuthEvent) {
        self.0.0.lock().unwrap().events.push(event);
    }
}

/// Allows `limit` requests per bucket and key, then refuses.
pub struct CountingLimiter {
    pub limit: u32,
    counts: Mutex<HashMap<(Bucket, String), u32>>,
}

impl CountingLimiter {
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            counts: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl RateLimiter for CountingLimiter {
    async fn check(&self, bucket: Bucket, key: &str) -> Result<Decision, Failure> {
        let mut counts = self.counts.lock().unwrap();
        let count = counts.entry((bucket, key.to_owned())).or_default();
        *count += 1;
        Ok(if *count > self.limit {
            Decision::Limited {
                retry_after_secs: 7,
            }
        } else {
            Decision::Allowed
        })
    }
}

/// Failure counters on the test clock, with the stores' arithmetic.
pub struct ClockedFailures {
    clock: Arc<FixedClock>,
    entries: Mutex<HashMap<String, Counter>>,
}

impl ClockedFailures {
    pub fn new(clock: Arc<FixedClock>) -> Self {
        Self {
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.now().unix_timestamp_nanos() / 1_000_000).unwrap()
    }
}

#[async_trait]
impl FailureCounter for ClockedFailures {
    async fn state(&self, key: &str) -> Result<FailureState, Failure> {
        let entries = self.entries.lock().unwrap();
        let counter = entries.get(key).copied().unwrap_or_default();
        Ok(counter.state(self.now_ms()))
    }
    async fn reserve(&self, charges: &[Charge<'_>]) -> Result<Reservation, Failure> {
        let now = self.now_ms();
        let mut entries = self.entries.lock().unwrap();
        let read: Vec<_> = charges
            .iter()
            .map(|c| (c.policy, entries.get(c.key).copied().unwrap_or_default()))
            .collect();
        Ok(match reserve(&read, now) {
            Ok(next) => {
                for (charge, counter) in charges.iter().zip(&next) {
                    entries.insert(charge.key.to_owned(), *counter);
                }
                Reservation::Reserved(next.iter().map(|c| c.failures).collect())
            }
            Err(left_ms) => Reservation::Refused {
                retry_after_secs: secs_from_ms(left_ms),
            },
        })
    }
    async fn release(&self, key: &str) -> Result<(), Failure> {
        let now = self.now_ms();
        if let Some(counter) = self.entries.lock().unwrap().get_mut(key) {
            *counter = counter.refunded(now);
        }
        Ok(())
    }
    async fn clear(&self, key: &str) -> Result<(), Failure> {
        self.entries.lock().unwrap().remove(key);
        Ok(())
    }
}

/// "Hashes" by prefixing; the structure of the service is what is under test.
#[derive(Default)]
pub struct FakeHasher {
    pub dummy_verifications: AtomicU64,
}

#[async_trait]
impl PasswordHasher for FakeHasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, Failure> {
        Ok(PasswordHash::new(format!("fake:{}", password.expose())))
    }
    async fn verify(
        &self,
        password: &Password,
        hash: &PasswordHash,
    ) -> Result<Verification, Failure> {
        let old = hash.as_str().strip_prefix("old:");
        let stored = old
            .or_else(|| hash.as_str().strip_prefix("fake:"))
            .unwrap_or_default();
        Ok(Verification {
            matches: stored == password.expose(),
            needs_rehash: old.is_some(),
        })
    }
    async fn verify_dummy(&self, _password: &Password) -> Result<(), Failure> {
        self.dummy_verifications.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Tokens are `user|session|exp` in clear: signature checks belong to infra.
pub struct FakeTokens;

impl TokenIssuer for FakeTokens {
    fn issue(&self, claims: &AccessClaims) -> Result<AccessToken, Failure> {
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
            email_verified: false,
            amr: vec![crate::amr::AuthMethod::Pwd],
            auth_time: now,
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

/// Tasks in memory, strictly per owner.
#[derive(Default)]
pub struct InMemoryTasks(Mutex<Vec<Task>>);

#[async_trait]
impl TaskRepository for InMemoryTasks {
    async fn insert(&self, task: &Task) -> Result<(), Failure> {
        self.0.lock().unwrap().push(task.clone());
        Ok(())
    }
    async fn list(
        &self,
        owner: UserId,
        before: Option<TaskId>,
        limit: u64,
    ) -> Result<Vec<Task>, Failure> {
        let mut tasks: Vec<Task> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|t| t.user_id == owner && before.is_none_or(|b| t.id < b))
            .cloned()
            .collect();
        tasks.sort_by_key(|t| std::cmp::Reverse(t.id));
        tasks.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(tasks)
    }
    async fn get(&self, owner: UserId, id: TaskId) -> Result<Option<Task>, Failure> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .iter()
            .find(|t| t.user_id == owner && t.id == id)
            .cloned())
    }
    async fn update(&self, owner: UserId, task: &Task) -> Result<bool, Failure> {
        let mut tasks = self.0.lock().unwrap();
        match tasks
            .iter_mut()
            .find(|t| t.user_id == owner && t.id == task.id)
        {
            Some(stored) => {
                *stored = task.clone();
                Ok(true)
            }
            None => Ok(false),
        }
    }
    async fn delete(&self, owner: UserId, id: TaskId) -> Result<bool, Failure> {
        let mut tasks = self.0.lock().unwrap();
        let before = tasks.len();
        tasks.retain(|t| !(t.user_id == owner && t.id == id));
        Ok(tasks.len() < before)
    }
}

/// Every service of the domain over in-memory ports that share one store,
/// one clock and one revocation cache: what an adapter's handler tests need.
pub struct InMemoryServices {
    pub auth: AuthService,
    pub account: AccountService,
    pub mfa: MfaService,
    pub background: Arc<QueuedBackground>,
    pub sessions: SessionService,
    pub audit_log: AuditLog,
    pub tasks: TaskService,
    pub store: Arc<InMemoryStore>,
    pub clock: Arc<FixedClock>,
    pub hasher: Arc<FakeHasher>,
}

impl InMemoryServices {
    /// The services at `now`, with the default policies, a minimum password
    /// length of 15 and `password1234567890` as the one common password.
    pub fn new(now: OffsetDateTime) -> Self {
        let clock = Arc::new(FixedClock::at(now));
        let store = Arc::new(InMemoryStore::default());
        let hasher = Arc::new(FakeHasher::default());
        let revocations = Arc::new(InMemoryRevocationCache::default());
        let audit = Arc::new(StoreAudit(store.clone()));
        let ports = AuthPorts {
            users: store.clone(),
            sessions: store.clone(),
            hasher: hasher.clone(),
            issuer: Arc::new(FakeTokens),
            verifier: Arc::new(FakeTokens),
            revocations: revocations.clone(),
            secrets: Arc::new(SequentialSecrets::default()),
            clock: clock.clone(),
            audit: audit.clone(),
            limiter: Arc::new(CountingLimiter::new(1_000)),
            failures: Arc::new(ClockedFailures::new(clock.clone())),
            mfa: store.clone(),
            factors: Arc::new(FakeFactors),
        };
        let policy = PasswordPolicy::new(15, ["password1234567890".to_owned()]).unwrap();
        let background = Arc::new(QueuedBackground::default());
        let account = AccountService::new(
            AccountPorts {
                users: store.clone(),
                accounts: store.clone(),
                hasher: hasher.clone(),
                revocations: revocations.clone(),
                secrets: ports.secrets.clone(),
                clock: clock.clone(),
                audit: audit.clone(),
                limiter: ports.limiter.clone(),
                failures: ports.failures.clone(),
                background: background.clone(),
                mfa: store.clone(),
                factors: Arc::new(FakeFactors),
            },
            policy.clone(),
            AccountPolicy::default(),
            LimitPolicy::default(),
        );
        let mfa = MfaService::new(
            MfaPorts {
                users: store.clone(),
                mfa: store.clone(),
                factors: Arc::new(FakeFactors),
                hasher: hasher.clone(),
                revocations: revocations.clone(),
                clock: clock.clone(),
                audit: audit.clone(),
                limiter: ports.limiter.clone(),
                failures: ports.failures.clone(),
            },
            LimitPolicy::default(),
        );
        Self {
            mfa,
            auth: AuthService::new(
                ports,
                policy,
                SessionPolicy::default(),
                LimitPolicy::default(),
            ),
            account,
            background,
            sessions: SessionService::new(store.clone(), revocations, audit, clock.clone()),
            audit_log: AuditLog::new(store.clone()),
            tasks: TaskService::new(Arc::new(InMemoryTasks::default()), clock.clone()),
            store,
            clock,
            hasher,
        }
    }
}
