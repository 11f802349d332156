//! The background audit writer: a bounded queue drained in batches, a
//! writer that never blocks the caller, repeats of noise folded into
//! counted events, and noise dropped before the events that matter.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use portcullis_domain::audit::{
    AuditSink, AuthEvent, AuthEventKind, AuthEventRepository, EventQuery, Outcome,
};
use portcullis_domain::context::{ClientInfo, RequestContext};
use portcullis_domain::error::Failure;
use portcullis_infra::audit::BackgroundAudit;
use portcullis_infra::audit::repeats::Repeats;
use portcullis_infra::db::{Database, DbOptions};
use time::OffsetDateTime;
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// Now, at the millisecond precision storage keeps.
fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap()
}

fn failed_login(n: usize) -> AuthEvent {
    AuthEvent::new(
        AuthEventKind::LoginFailed,
        Outcome::Failure,
        now(),
        &RequestContext::default(),
    )
    .detail(format!("attempt {n}"))
}

async fn memory_db() -> Database {
    let db = Database::connect("sqlite::memory:", &DbOptions::default())
        .await
        .unwrap();
    db.migrate().await.unwrap();
    db
}

async fn stored(db: &Database) -> Vec<Uuid> {
    db.events()
        .query(&EventQuery {
            limit: 10_000,
            ..EventQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}

/// Newest first, as the repository answers.
fn newest_first(events: &[AuthEvent]) -> Vec<Uuid> {
    events.iter().rev().map(|e| e.id).collect()
}

/// A repository whose writes hang until released, like a database that
/// stopped answering.
struct StalledRepository {
    inner: Arc<dyn AuthEventRepository>,
    entered: Notify,
    gate: Semaphore,
}

impl StalledRepository {
    fn new(inner: Arc<dyn AuthEventRepository>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            entered: Notify::new(),
            gate: Semaphore::new(0),
        })
    }

    /// Waits until a write is under way (and stuck).
    async fn until_writing(&self) {
        tokio::time::timeout(StdDuration::from_secs(30), self.entered.notified())
            .await
            .expect("the writer never wrote");
    }

    /// Lets every write through from now on.
    fn release(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

#[async_trait]
impl AuthEventRepository for StalledRepository {
    async fn append(&self, events: &[AuthEvent]) -> Result<(), Failure> {
        self.entered.notify_one();
        let _pass = self
            .gate
            .acquire()
            .await
            .map_err(|_| Failure::msg("gate closed"))?;
        self.inner.append(events).await
    }

    async fn query(&self, query: &EventQuery) -> Result<Vec<AuthEvent>, Failure> {
        self.inner.query(query).await
    }

    async fn purge_before(&self, cutoff: OffsetDateTime, limit: u64) -> Result<u64, Failure> {
        self.inner.purge_before(cutoff, limit).await
    }
}

// ---------------------------------------------------------------------------
// The queue and the writer
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_audit_persists_recorded_events_after_flush() {
    let db = memory_db().await;
    let (audit, flusher) = BackgroundAudit::spawn(Arc::new(db.events()), 1_024);
    // More than one batch of the writer.
    let events: Vec<AuthEvent> = (0..600).map(failed_login).collect();

    for event in &events {
        audit.record(event.clone());
    }
    flusher.flush(StdDuration::from_secs(30)).await;

    assert_eq!(stored(&db).await, newest_first(&events));
    assert_eq!(audit.dropped(), 0);

    // And again: the writer keeps going after a flush.
    let more = failed_login(600);
    audit.record(more.clone());
    flusher.flush(StdDuration::from_secs(30)).await;
    assert_eq!(stored(&db).await.first(), Some(&more.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_audit_queue_drops_instead_of_blocking() {
    let db = memory_db().await;
    let stalled = StalledRepository::new(Arc::new(db.events()));
    let (audit, flusher) = BackgroundAudit::spawn(stalled.clone(), 4);
    let events: Vec<AuthEvent> = (0..11).map(failed_login).collect();

    // The writer takes the first event and hangs on the database...
    audit.record(events[0].clone());
    stalled.until_writing().await;
    // ...so four more fill the queue and the rest are dropped, at once.
    for event in &events[1..] {
        audit.record(event.clone());
    }
    assert_eq!(audit.dropped(), 6);

    stalled.release();
    flusher.flush(StdDuration::from_secs(30)).await;
    assert_eq!(stored(&db).await, newest_first(&events[..5]));

    // With room again, nothing more is dropped.
    let late = failed_login(11);
    audit.record(late.clone());
    flusher.flush(StdDuration::from_secs(30)).await;
    assert_eq!(stored(&db).await.first(), Some(&late.id));
    assert_eq!(audit.dropped(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_gives_up_after_its_timeout_when_storage_hangs() {
    let db = memory_db().await;
    let stalled = StalledRepository::new(Arc::new(db.events()));
    let (audit, flusher) = BackgroundAudit::spawn(stalled.clone(), 1);
    audit.record(failed_login(0));
    stalled.until_writing().await;
    // The queue is full behind the hung write.
    audit.record(failed_login(1));

    // Shutdown must not wait longer than it asked to; the outer bound only
    // turns a hang into a failure.
    let flushed = tokio::time::timeout(
        StdDuration::from_secs(30),
        flusher.flush(StdDuration::from_millis(100)),
    )
    .await;

    assert!(flushed.is_ok(), "flush waited past its timeout");
    assert!(stored(&db).await.is_empty());
}

// ---------------------------------------------------------------------------
// Noise: repeats folded, dropped first
// ---------------------------------------------------------------------------

/// A rejected bearer token from `ip`.
fn rejected_token(ip: &str) -> AuthEvent {
    AuthEvent::new(
        AuthEventKind::AccessTokenRejected,
        Outcome::Failure,
        now(),
        &RequestContext {
            client: ClientInfo::new(Some("flood/1.0"), Some(ip.to_owned())),
            request_id: None,
            trace_id: None,
        },
    )
    .detail("malformed")
}

async fn stored_events(db: &Database) -> Vec<AuthEvent> {
    db.events()
        .query(&EventQuery {
            limit: 10_000,
            ..EventQuery::default()
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_noise_is_one_event_now_and_one_count_at_the_flush() {
    let db = memory_db().await;
    let (audit, flusher) = BackgroundAudit::spawn(Arc::new(db.events()), 1_024);

    for _ in 0..300 {
        audit.record(rejected_token("198.51.100.7"));
    }
    audit.record(failed_login(0));
    flusher.flush(StdDuration::from_secs(30)).await;

    let stored = stored_events(&db).await;
    let details: Vec<(&str, Option<&str>)> = stored
        .iter()
        .map(|e| (e.kind.as_str(), e.detail.as_deref()))
        .collect();
    assert_eq!(stored.len(), 3, "{details:?}");
    assert!(details.contains(&("access_token_rejected", Some("malformed"))));
    assert!(details.contains(&("access_token_rejected", Some("malformed count=299"))));
    assert!(details.contains(&("login_failed", Some("attempt 0"))));
    assert_eq!(audit.dropped(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noise_flood_that_fills_its_queue_still_keeps_a_real_login_failure() {
    let db = memory_db().await;
    let stalled = StalledRepository::new(Arc::new(db.events()));
    // Noise gets a quarter of the queue: 4 of 16.
    let (audit, flusher) = BackgroundAudit::spawn_with(
        stalled.clone(),
        16,
        Repeats::with_capacity(BackgroundAudit::WINDOW, 10_000),
    );
    audit.record(rejected_token("192.0.2.1"));
    stalled.until_writing().await;

    // A flood from a thousand clients: each one's first event is noise the
    // queue cannot hold.
    for n in 0..1_000 {
        audit.record(rejected_token(&format!("10.1.{}.{}", n / 256, n % 256)));
    }
    assert!(audit.dropped_noise() >= 990, "{}", audit.dropped_noise());
    assert_eq!(audit.dropped(), audit.dropped_noise());
    // The events that matter still find room.
    let real = failed_login(1).user(portcullis_domain::ids::UserId::new());
    let mut locked = failed_login(2);
    locked.kind = AuthEventKind::AccountLocked;
    audit.record(real.clone());
    audit.record(locked.clone());
    assert_eq!(
        audit.dropped(),
        audit.dropped_noise(),
        "an event that matters was dropped"
    );

    stalled.release();
    flusher.flush(StdDuration::from_secs(30)).await;
    let ids = stored(&db).await;
    assert!(ids.contains(&real.id));
    assert!(ids.contains(&locked.id));
}
