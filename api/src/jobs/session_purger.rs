//! The session purger: every hour, deletes through the session port the
//! sessions that ended more than the retention period ago (with their
//! refresh tokens; audit events stay).

use std::sync::Arc;
use std::time::Duration;

use portcullis_domain::clock::Clock;
use portcullis_domain::session::SessionRepository;

use crate::jobs::shutdown::{Shutdown, every};

/// How often ended sessions are purged.
const PERIOD: Duration = Duration::from_secs(3_600);

/// Sessions deleted per statement.
const PURGE_BATCH: u64 = 1_000;

/// Purges ended sessions every hour until `shutdown`.
pub async fn run(
    sessions: Arc<dyn SessionRepository>,
    clock: Arc<dyn Clock>,
    retention: time::Duration,
    shutdown: Shutdown,
) {
    every(PERIOD, shutdown, || {
        purge_once(sessions.as_ref(), clock.as_ref(), retention)
    })
    .await;
}

/// Deletes, batch by batch, the sessions that ended before `retention` ago.
async fn purge_once(
    sessions: &dyn SessionRepository,
    clock: &dyn Clock,
    retention: time::Duration,
) {
    let before = clock.now() - retention;
    let mut purged = 0;
    loop {
        match sessions.purge_ended(before, PURGE_BATCH).await {
            Ok(count) => {
                purged += count;
                if count < PURGE_BATCH {
                    break;
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, "purging ended sessions failed; retrying in an hour");
                break;
            }
        }
    }
    if purged > 0 {
        tracing::info!(
            purged,
            "purged sessions that ended before the retention period"
        );
    }
}
