//! The background jobs: each is its own small task that calls a port on a
//! timer and stops when shutdown is requested. `start` spawns them all;
//! `shutdown::Jobs::stop` requests shutdown and waits for every job to end.
//! (The in-process limit stores need no pruning job: their memory has a hard
//! cap with O(1) eviction.)
//!
//! | job | every | what |
//! | --- | --- | --- |
//! | revocation feed (in `portcullis-infra`) | `PORTCULLIS_REVOCATION_POLL_MS` | reads other instances' revocations into the cache |
//! | `session_gauge` | 30 s | samples the active-session gauge |
//! | `session_purger` | 1 h | deletes sessions ended before the retention period, and older entries of the revocation feed |
//! | `event_purger` | 1 h | deletes audit events older than their retention period |
//! | `mail_sender` | 500 ms | delivers the email outbox's due messages, with retries; about hourly, deletes messages settled over 7 days ago |

pub mod event_purger;
pub mod mail_sender;
pub mod session_gauge;
pub mod session_purger;
pub mod shutdown;

use std::sync::Arc;

use portcullis_domain::audit::AuthEventRepository;
use portcullis_domain::clock::Clock;
use portcullis_domain::session::SessionRepository;
use portcullis_infra::db::SeaOrmOutbox;
use portcullis_infra::mail::Mailer;
use portcullis_infra::revocation::RevocationFeed;

use crate::jobs::shutdown::Jobs;
use crate::metrics::Metrics;

/// What the jobs need, as the wiring built it.
pub struct JobPorts {
    pub sessions: Arc<dyn SessionRepository>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    /// Ended sessions are deleted this long after they end.
    pub session_retention: time::Duration,
    pub events: Arc<dyn AuthEventRepository>,
    /// Audit events are deleted this long after they occurred.
    pub event_retention: time::Duration,
    /// How long a revocation matters to access tokens (see
    /// `portcullis_infra::revocation::retention_for`); the feed keeps its
    /// rows at least as long as sessions are kept, and never less than this.
    pub revocation_retention: time::Duration,
    pub revocation_feed: RevocationFeed,
    pub mailer: Arc<Mailer>,
    pub outbox: SeaOrmOutbox,
}

/// Spawns every job.
pub fn start(ports: JobPorts) -> Jobs {
    let mut jobs = Jobs::new();
    let feed = ports.revocation_feed.spawn(jobs.shutdown().requested());
    jobs.adopt("revocation feed", feed);
    jobs.spawn(
        "session gauge",
        session_gauge::run(
            ports.sessions.clone(),
            ports.clock.clone(),
            ports.metrics.clone(),
            jobs.shutdown(),
        ),
    );
    jobs.spawn(
        "session purger",
        session_purger::run(
            ports.sessions,
            ports.clock.clone(),
            ports.session_retention,
            ports.revocation_retention,
            jobs.shutdown(),
        ),
    );
    jobs.spawn(
        "mail sender",
        mail_sender::run(
            ports.mailer,
            ports.outbox,
            ports.clock.clone(),
            ports.metrics.clone(),
            jobs.shutdown(),
        ),
    );
    jobs.spawn(
        "event purger",
        event_purger::run(
            ports.events,
            ports.clock,
            ports.event_retention,
            jobs.shutdown(),
        ),
    );
    jobs
}
