//! The mail sender: every half second, delivers the outbox's due messages
//! (`portcullis_infra::mail::Mailer::deliver_due`) and counts the outcomes
//! for `portcullis.mail.deliveries`; at start and about hourly, deletes the
//! messages settled more than seven days ago. Every instance runs one; the outbox's
//! claims keep two from sending the same message at once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use opentelemetry::KeyValue;
use portcullis_domain::clock::Clock;
use portcullis_infra::db::SeaOrmOutbox;
use portcullis_infra::mail::Mailer;

use crate::jobs::shutdown::{Shutdown, every};
use crate::metrics::Metrics;

/// How often the outbox is looked at.
const PERIOD: Duration = Duration::from_millis(500);
/// Settled messages (their tokens already scrubbed) are kept this long, for
/// support questions ("was the link sent?"), then deleted.
const KEEP_SETTLED: time::Duration = time::Duration::days(7);
/// Passes between two purges of settled messages (about an hour).
const PURGE_EVERY: u32 = 7_200;
/// Messages deleted per purge statement.
const PURGE_BATCH: u64 = 10_000;

/// Delivers due messages until `shutdown`.
pub async fn run(
    mailer: Arc<Mailer>,
    outbox: SeaOrmOutbox,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
) {
    // After a failed pass (the database refused), passes are skipped with a
    // doubling back-off, so a database outage is not made worse by mail.
    let skip = std::sync::atomic::AtomicU32::new(0);
    let failures = std::sync::atomic::AtomicU32::new(0);
    let passes = std::sync::atomic::AtomicU32::new(0);
    every(PERIOD, shutdown, || async {
        if passes
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PURGE_EVERY)
        {
            match outbox
                .purge_settled(clock.now() - KEEP_SETTLED, PURGE_BATCH)
                .await
            {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "settled email messages deleted"),
                Err(error) => {
                    tracing::warn!(error = %error, "purging settled email messages failed")
                }
            }
        }
        if skip.load(Ordering::Relaxed) > 0 {
            skip.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        match mailer.deliver_due(&outbox, clock.now()).await {
            Ok(report) => {
                failures.store(0, Ordering::Relaxed);
                for (outcome, n) in [
                    ("sent", report.sent),
                    ("retried", report.retried),
                    ("failed", report.failed),
                ] {
                    if n > 0 {
                        metrics
                            .mail_deliveries
                            .add(n, &[KeyValue::new("outcome", outcome)]);
                    }
                }
            }
            Err(error) => {
                let failed = failures.fetch_add(1, Ordering::Relaxed).min(6);
                skip.store((1 << failed) - 1, Ordering::Relaxed);
                tracing::warn!(error = %error, "the email outbox could not be read");
            }
        }
    })
    .await;
}
