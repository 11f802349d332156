//! The session gauge: every 30 s, counts the active sessions through the
//! session port for `portcullis.sessions.active`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use portcullis_domain::clock::Clock;
use portcullis_domain::session::SessionRepository;

use crate::jobs::shutdown::{Shutdown, every};
use crate::metrics::Metrics;

/// How often the gauge is sampled.
const PERIOD: Duration = Duration::from_secs(30);

/// Samples the number of active sessions for the gauge until `shutdown`.
pub async fn run(
    sessions: Arc<dyn SessionRepository>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) {
    every(PERIOD, shutdown, || async {
        match sessions.count_active(clock.now()).await {
            Ok(count) => metrics.active_sessions.store(count, Ordering::Relaxed),
            Err(error) => tracing::debug!(error = %error, "sampling active sessions failed"),
        }
    })
    .await;
}
