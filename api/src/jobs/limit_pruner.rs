//! The limit pruner: every 30 s, forgets the idle entries of the in-process
//! rate limiter and failure counter so their memory stays bounded. With Redis
//! the shared stores expire their own keys and this job does not run.
//!
//! `prune` belongs to the in-process adapters, not to the `RateLimiter` and
//! `FailureCounter` ports, so this job holds the adapters themselves.

use std::sync::Arc;
use std::time::Duration;

use portcullis_infra::limits::{GovernorRateLimiter, InMemoryFailureCounter};

use crate::jobs::shutdown::{Shutdown, every};

/// How often the in-process stores are pruned.
const PERIOD: Duration = Duration::from_secs(30);

/// The in-process limit stores in force.
pub struct LocalLimits {
    pub limiter: Arc<GovernorRateLimiter>,
    pub failures: Arc<InMemoryFailureCounter>,
}

/// Prunes the in-process stores every 30 s until `shutdown`.
pub async fn run(local: LocalLimits, shutdown: Shutdown) {
    every(PERIOD, shutdown, || async {
        local.limiter.prune();
        local.failures.prune();
    })
    .await;
}
