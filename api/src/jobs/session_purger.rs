//! The session purger: every hour, deletes through the session port the
//! sessions that ended more than the retention period ago (with their
//! refresh tokens; audit events stay), and the revocation feed's entries
//! older than that, whose access tokens have all expired.

use std::sync::Arc;
use std::time::Duration;

use portcullis_domain::clock::Clock;
use portcullis_domain::error::Failure;
use portcullis_domain::session::SessionRepository;

use crate::jobs::shutdown::{Shutdown, every};

/// How often ended sessions are purged.
const PERIOD: Duration = Duration::from_secs(3_600);

/// Rows deleted per statement.
const PURGE_BATCH: u64 = 1_000;

/// Purges ended sessions and old revocations every hour until `shutdown`.
/// Revocations are kept as long as ended sessions, and at least
/// `revocation_retention` (how long their access tokens may live).
pub async fn run(
    sessions: Arc<dyn SessionRepository>,
    clock: Arc<dyn Clock>,
    retention: time::Duration,
    revocation_retention: time::Duration,
    shutdown: Shutdown,
) {
    every(PERIOD, shutdown, || {
        purge_once(
            sessions.as_ref(),
            clock.as_ref(),
            retention,
            retention.max(revocation_retention),
        )
    })
    .await;
}

/// Deletes, batch by batch, the sessions that ended before `retention` ago
/// and the revocations stamped before `revocation_retention` ago.
async fn purge_once(
    sessions: &dyn SessionRepository,
    clock: &dyn Clock,
    retention: time::Duration,
    revocation_retention: time::Duration,
) {
    let now = clock.now();
    let before = now - retention;
    let purged = in_batches("ended sessions", || {
        sessions.purge_ended(before, PURGE_BATCH)
    })
    .await;
    if purged > 0 {
        tracing::info!(
            purged,
            "purged sessions that ended before the retention period"
        );
    }
    let before = now - revocation_retention;
    let purged = in_batches("old revocations", || {
        sessions.purge_revocations(before, PURGE_BATCH)
    })
    .await;
    if purged > 0 {
        tracing::info!(purged, "purged revocations older than the retention period");
    }
}

/// Runs `batch` until it deletes less than a full batch; how many went.
async fn in_batches<F>(what: &'static str, mut batch: impl FnMut() -> F) -> u64
where
    F: Future<Output = Result<u64, Failure>>,
{
    let mut purged = 0;
    loop {
        match batch().await {
            Ok(count) => {
                purged += count;
                if count < PURGE_BATCH {
                    return purged;
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, what, "purging failed; retrying in an hour");
                return purged;
            }
        }
    }
}
