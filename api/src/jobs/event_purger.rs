//! The audit retention purge: every hour, deletes through the events port
//! the audit events older than `PORTCULLIS_AUDIT_RETENTION_DAYS`, oldest
//! first and a batch at a time. The only thing that ever deletes an event.

use std::sync::Arc;
use std::time::Duration;

use portcullis_domain::audit::AuthEventRepository;
use portcullis_domain::clock::Clock;

use crate::jobs::shutdown::{Shutdown, every};

/// How often old events are purged.
const PERIOD: Duration = Duration::from_secs(3_600);

/// Events deleted per statement.
const PURGE_BATCH: u64 = 1_000;

/// Purges events past their retention every hour until `shutdown`.
pub async fn run(
    events: Arc<dyn AuthEventRepository>,
    clock: Arc<dyn Clock>,
    retention: time::Duration,
    shutdown: Shutdown,
) {
    every(PERIOD, shutdown, || async {
        purge_once(events.as_ref(), clock.as_ref(), retention).await;
    })
    .await;
}

/// Deletes, batch by batch, the events that occurred before `retention` ago.
pub(crate) async fn purge_once(
    events: &dyn AuthEventRepository,
    clock: &dyn Clock,
    retention: time::Duration,
) -> u64 {
    let cutoff = clock.now() - retention;
    let mut purged = 0;
    loop {
        match events.purge_before(cutoff, PURGE_BATCH).await {
            Ok(count) => {
                purged += count;
                if count < PURGE_BATCH {
                    break;
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, "purging old audit events failed; retrying in an hour");
                break;
            }
        }
    }
    if purged > 0 {
        tracing::info!(
            purged,
            "purged audit events older than the retention period"
        );
    }
    purged
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use portcullis_domain::audit::{AuthEvent, AuthEventKind, EventQuery, Outcome};
    use portcullis_domain::context::RequestContext;
    use portcullis_domain::testkit::{FixedClock, InMemoryStore};
    use time::{Duration, OffsetDateTime};

    use super::*;

    #[tokio::test]
    async fn events_past_the_retention_go_in_batches_and_the_rest_stay() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let store = Arc::new(InMemoryStore::default());
        let at = |age: Duration| {
            AuthEvent::new(
                AuthEventKind::LoginFailed,
                Outcome::Failure,
                now - age,
                &RequestContext::default(),
            )
        };
        let old: Vec<AuthEvent> = (0..2_500)
            .map(|n| at(Duration::days(401) + Duration::seconds(n)))
            .collect();
        let young = at(Duration::days(399));
        store.append(&old).await.unwrap();
        store.append(std::slice::from_ref(&young)).await.unwrap();

        let purged = purge_once(store.as_ref(), &FixedClock::at(now), Duration::days(400)).await;

        assert_eq!(purged, 2_500);
        let left = store
            .query(&EventQuery {
                limit: 10_000,
                ..EventQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(left, vec![young]);
    }
}
