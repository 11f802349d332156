//! The in-process revocation cache and the feed that keeps it current.
//!
//! Authenticating a request must not cost a database round trip, so each
//! instance keeps the ids of recently revoked sessions in memory. Revocations
//! made here are recorded at once; those made by other instances arrive by a
//! short poll of `sessions.revoked_at`, which bounds how long another
//! instance may still accept a revoked session's access token (the poll
//! interval plus one query). Entries are dropped once every access token of
//! that session must have expired anyway, so memory stays bounded.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use portcullis_domain::clock::Clock;
use portcullis_domain::ids::SessionId;
use portcullis_domain::session::{Revocation, RevocationCache, SessionRepository};
use time::{Duration, OffsetDateTime};

/// Revoked session ids with the time of their revocation.
pub struct InMemoryRevocations {
    revoked: RwLock<HashMap<SessionId, OffsetDateTime>>,
    retention: Duration,
}

impl InMemoryRevocations {
    /// `retention`: how long an entry must live, at least the longest access
    /// token lifetime plus the verification leeway.
    pub fn new(retention: Duration) -> Self {
        Self {
            revoked: RwLock::new(HashMap::new()),
            retention,
        }
    }

    /// Forgets revocations older than the retention.
    pub fn prune(&self, now: OffsetDateTime) {
        let horizon = now - self.retention;
        if let Ok(mut revoked) = self.revoked.write() {
            revoked.retain(|_, at| *at >= horizon);
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

    /// The retention window.
    pub fn retention(&self) -> Duration {
        self.retention
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
        if let Ok(mut revoked) = self.revoked.write() {
            revoked
                .entry(revocation.session_id)
                .and_modify(|at| *at = (*at).max(revocation.revoked_at))
                .or_insert(revocation.revoked_at);
        }
    }
}

/// Feeds a cache from storage: once at start, then every `interval`.
pub struct RevocationFeed {
    cache: Arc<InMemoryRevocations>,
    sessions: Arc<dyn SessionRepository>,
    clock: Arc<dyn Clock>,
    interval: std::time::Duration,
}

/// How far each poll looks back before the previous one started, to cover
/// transactions that committed after their `revoked_at` and small clock skew
/// between instances.
const OVERLAP: Duration = Duration::seconds(10);

impl RevocationFeed {
    pub fn new(
        cache: Arc<InMemoryRevocations>,
        sessions: Arc<dyn SessionRepository>,
        clock: Arc<dyn Clock>,
        interval: std::time::Duration,
    ) -> Self {
        Self {
            cache,
            sessions,
            clock,
            interval,
        }
    }

    /// Loads every revocation still within the retention window.
    ///
    /// # Errors
    /// When storage cannot be read; the service must not start half-blind.
    pub async fn prime(&self) -> anyhow::Result<()> {
        let since = self.clock.now() - self.cache.retention();
        let revocations = self
            .sessions
            .revoked_since(since)
            .await
            .map_err(|e| anyhow::anyhow!("loading revoked sessions: {e}"))?;
        for revocation in revocations {
            self.cache.record(revocation);
        }
        Ok(())
    }

    /// Polls until `shutdown` resolves, then returns; a poll in progress is
    /// dropped at its next await. Failures are logged and retried.
    pub fn spawn(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let polling = async {
                let mut last_start = self.clock.now();
                let mut ticker = tokio::time::interval(self.interval);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticker.tick().await;
                    let started = self.clock.now();
                    match self.sessions.revoked_since(last_start - OVERLAP).await {
                        Ok(revocations) => {
                            for revocation in revocations {
                                self.cache.record(revocation);
                            }
                            last_start = started;
                        }
                        Err(error) => {
                            tracing::warn!(error = %error, "revocation feed poll failed; will retry")
                        }
                    }
                    self.cache.prune(started);
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
    use time::macros::datetime;

    #[test]
    fn records_and_prunes_after_retention() {
        let cache = InMemoryRevocations::new(Duration::minutes(16));
        let id = SessionId::new();
        let at = datetime!(2026-11-24 12:00 UTC);
        assert!(!cache.is_revoked(id));
        cache.record(Revocation {
            session_id: id,
            revoked_at: at,
        });
        assert!(cache.is_revoked(id));
        cache.prune(at + Duration::minutes(15));
        assert!(cache.is_revoked(id));
        cache.prune(at + Duration::minutes(17));
        assert!(!cache.is_revoked(id));
        assert!(cache.is_empty());
    }
}
