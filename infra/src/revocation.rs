//! The in-process revocation cache and the feed that keeps it current.
//!
//! Authenticating a request must not cost a database round trip, so each
//! instance keeps the ids of recently revoked sessions in memory. Revocations
//! made here are recorded at once; those made by other instances arrive by a
//! short poll of the database's revocation feed (`session_revocations`),
//! read by position after the last one read: no clock decides what is new,
//! so skew between instances, a paused machine or a slow commit delay a
//! revocation by at most one poll once it is committed, and never hide it.
//!
//! An entry is kept for a retention counted on this instance's monotonic
//! clock from when it was recorded here, never from the `revoked_at` another
//! instance stamped, so memory stays bounded and no wall clock can shorten
//! it (see [`retention_for`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use portcullis_domain::clock::Clock;
use portcullis_domain::ids::SessionId;
use portcullis_domain::session::{
    Revocation, RevocationCache, RevocationCursor, RevocationPage, SessionRepository,
};
use time::Duration;

/// How far the clock of an instance that issued a token may run ahead of
/// this instance's clock while its tokens still die with their revocation:
/// such a token stays valid here that much longer than its lifetime.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::minutes(10);

/// How long a revoked session must stay in the cache, counted from when this
/// instance learnt of it: the longest access-token lifetime any instance may
/// have issued (`access_ttl`, assuming every instance has the same setting),
/// plus the verification leeway, plus [`CLOCK_SKEW_ALLOWANCE`]. Every access
/// token of the session was issued before it was revoked, so none outlives that.
pub fn retention_for(access_ttl: Duration, leeway: Duration) -> Duration {
    access_ttl + leeway + CLOCK_SKEW_ALLOWANCE
}

/// Revoked session ids with when this instance recorded them.
pub struct InMemoryRevocations {
    revoked: RwLock<HashMap<SessionId, Instant>>,
    retention: std::time::Duration,
}

impl InMemoryRevocations {
    /// `retention`: how long an entry must live once recorded, see [`retention_for`].
    pub fn new(retention: Duration) -> Self {
        Self {
            revoked: RwLock::new(HashMap::new()),
            retention: retention.try_into().unwrap_or(std::time::Duration::MAX),
        }
    }

    /// Forgets revocations recorded longer than the retention before `now`.
    pub fn prune(&self, now: Instant) {
        if let Ok(mut revoked) = self.revoked.write() {
            revoked.retain(|_, at| now.saturating_duration_since(*at) <= self.retention);
        }
    }

    /// Number of sessions held.
    pub fn len(&self) -> usize {
        self.revoked.read().map_or(0, |r| r.len())
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn record_all(&self, revocations: &[Revocation]) {
        let now = Instant::now();
        if let Ok(mut revoked) = self.revoked.write() {
            for revocation in revocations {
                // Seen again (a replayed logout, the feed echoing our own):
                // the retention starts over, which only keeps it longer.
                revoked.insert(revocation.session_id, now);
            }
        }
    }
}

impl RevocationCache for InMemoryRevocations {
    fn is_revoked(&self, session: SessionId) -> bool {
        // A poisoned lock means a writer panicked; refusing is the safe answer.
        self.revoked
            .read()
            .map_or(true, |r| r.contains_key(&session))
    }

    fn record(&self, revocation: Revocation) {
        self.record_all(std::slice::from_ref(&revocation));
    }
}

/// Revocations read per query; a poll reads until the feed is drained.
const PAGE: u64 = 1_000;

/// Feeds a cache from storage: once at start, then every `interval`.
pub struct RevocationFeed {
    cache: Arc<InMemoryRevocations>,
    sessions: Arc<dyn SessionRepository>,
    clock: Arc<dyn Clock>,
    /// How far back, by the revoking instances' clocks, a start looks.
    lookback: Duration,
    interval: std::time::Duration,
    cursor: RevocationCursor,
}

impl RevocationFeed {
    /// `lookback`: at start, revocations stamped this long before now are
    /// loaded, so use the cache's retention (see [`retention_for`]).
    pub fn new(
        cache: Arc<InMemoryRevocations>,
        sessions: Arc<dyn SessionRepository>,
        clock: Arc<dyn Clock>,
        lookback: Duration,
        interval: std::time::Duration,
    ) -> Self {
        Self {
            cache,
            sessions,
            clock,
            lookback,
            interval,
            cursor: RevocationCursor::START,
        }
    }

    /// Finds the end of the feed, where polling starts, and loads the
    /// revocations whose sessions may still have live access tokens: those
    /// stamped within the lookback. This is the one place a clock is
    /// compared with another instance's, and the lookback includes
    /// [`CLOCK_SKEW_ALLOWANCE`] for it.
    ///
    /// # Errors
    /// When storage cannot be read; the service must not start half-blind.
    pub async fn prime(&mut self) -> anyhow::Result<()> {
        let since = self.clock.now() - self.lookback;
        let RevocationPage { revocations, next } = self
            .sessions
            .recent_revocations(since)
            .await
            .map_err(|e| anyhow::anyhow!("loading revoked sessions: {e}"))?;
        self.cache.record_all(&revocations);
        self.cursor = next;
        Ok(())
    }

    /// Reads the feed after the cursor until it is drained, recording each
    /// page and moving the cursor by what was read.
    ///
    /// # Errors
    /// When storage cannot be read; the cursor stays after the last page
    /// recorded, so the next poll resumes there.
    pub async fn poll(&mut self) -> Result<(), portcullis_domain::error::Failure> {
        loop {
            let page = self.sessions.revocations_after(self.cursor, PAGE).await?;
            self.cache.record_all(&page.revocations);
            self.cursor = self.cursor.max(page.next);
            if (page.revocations.len() as u64) < PAGE {
                return Ok(());
            }
        }
    }

    /// Polls until `shutdown` resolves, then returns; a poll in progress is
    /// dropped at its next await. Failures are logged and retried.
    pub fn spawn(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let polling = async {
                let mut ticker = tokio::time::interval(self.interval);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticker.tick().await;
                    if let Err(error) = self.poll().await {
                        tracing::warn!(error = %error, "revocation feed poll failed; will retry");
                    }
                    self.cache.prune(Instant::now());
                }
            };
            tokio::select! {
                () = shutdown => {}
                _ = polling => {}
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_domain::audit::{AuthEvent, AuthEventKind, Outcome};
    use portcullis_domain::context::{ClientInfo, RequestContext};
    use portcullis_domain::ids::UserId;
    use portcullis_domain::session::{Session, SessionOpening, SessionPolicy, TokenHash};
    use portcullis_domain::testkit::{FixedClock, InMemoryStore};
    use time::macros::datetime;

    fn revocation(session_id: SessionId) -> Revocation {
        Revocation {
            session_id,
            revoked_at: datetime!(2026-11-24 12:00 UTC),
        }
    }

    #[test]
    fn retention_counts_from_recording_not_from_the_stamped_time() {
        let cache = InMemoryRevocations::new(Duration::minutes(16));
        let id = SessionId::new();
        assert!(!cache.is_revoked(id));
        // Stamped long ago by another instance's clock: kept all the same.
        cache.record(revocation(id));
        let recorded = Instant::now();
        cache.prune(recorded + std::time::Duration::from_secs(15 * 60));
        assert!(cache.is_revoked(id));
        cache.prune(recorded + std::time::Duration::from_secs(17 * 60));
        assert!(!cache.is_revoked(id));
        assert!(cache.is_empty());
    }

    #[test]
    fn retention_covers_the_token_lifetime_leeway_and_skew() {
        assert_eq!(
            retention_for(Duration::minutes(15), Duration::seconds(5)),
            Duration::minutes(25) + Duration::seconds(5)
        );
    }

    async fn open_and_revoke(store: &InMemoryStore, at: time::OffsetDateTime) -> SessionId {
        let user = UserId::new();
        let session = Session::open(user, at, &SessionPolicy::default(), ClientInfo::default());
        let ctx = RequestContext::default();
        let event = AuthEvent::new(AuthEventKind::Logout, Outcome::Success, at, &ctx);
        store
            .create(SessionOpening {
                session: &session,
                first_token: &TokenHash::from_bytes(session.id.as_uuid().as_bytes().to_vec()),
                event: &event,
            })
            .await
            .unwrap();
        store
            .revoke(
                user,
                session.id,
                at,
                portcullis_domain::session::RevokeReason::Logout,
                &event,
            )
            .await
            .unwrap();
        session.id
    }

    #[tokio::test]
    async fn polls_see_revocations_stamped_in_the_past_by_a_slow_clock() {
        let now = datetime!(2026-11-24 12:00 UTC);
        let store = Arc::new(InMemoryStore::default());
        let old = open_and_revoke(&store, now - Duration::hours(2)).await;
        let cache = Arc::new(InMemoryRevocations::new(Duration::minutes(25)));
        let mut feed = RevocationFeed::new(
            cache.clone(),
            store.clone(),
            Arc::new(FixedClock::at(now)),
            Duration::minutes(25),
            std::time::Duration::from_secs(1),
        );
        feed.prime().await.unwrap();
        assert!(!cache.is_revoked(old), "outside the lookback");

        // Another instance, its clock an hour behind, revokes now.
        let behind = open_and_revoke(&store, now - Duration::hours(1)).await;
        feed.poll().await.unwrap();
        assert!(cache.is_revoked(behind));

        // More than a page arrives between two polls: all of it is read.
        let mut burst = Vec::new();
        for _ in 0..PAGE + 3 {
            burst.push(open_and_revoke(&store, now - Duration::days(1)).await);
        }
        feed.poll().await.unwrap();
        assert!(burst.iter().all(|id| cache.is_revoked(*id)));
        assert_eq!(cache.len(), burst.len() + 1);
    }
}
