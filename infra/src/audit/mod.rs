//! The audit sink for events that come with no state change: bounded queues
//! drained by one writer task in batches, so a flood of failed log-ins or
//! rejected tokens neither waits on the database nor grows memory. When a
//! queue is full, events are dropped and counted, never blocked on.
//!
//! Noise (the kinds anyone can cause at will, see
//! [`AuthEventKind::is_client_noise`]) is folded by [`repeats`]: per client,
//! kind and detail, the first event of a window is queued and the repeats
//! are counted into one summary event the writer writes at the window's
//! end. Noise has a queue of its own, a quarter of the size, so a flood of
//! it can fill only that queue: the events that matter (a real account's
//! `login_failed`, `account_locked`) keep all of theirs and are written
//! first.

pub mod repeats;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

#[cfg(doc)]
use portcullis_domain::audit::AuthEventKind;
use portcullis_domain::audit::{AuditSink, AuthEvent, AuthEventRepository};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use self::repeats::Repeats;

enum Message {
    Event(AuthEvent),
    Flush(oneshot::Sender<()>),
}

/// Queues events for the writer task.
pub struct BackgroundAudit {
    queue: mpsc::Sender<Message>,
    noise: mpsc::Sender<AuthEvent>,
    repeats: Arc<Mutex<Repeats>>,
    dropped: AtomicU64,
    dropped_noise: AtomicU64,
}

/// The writer task's handle: flush before shutting down.
#[derive(Clone)]
pub struct AuditFlusher {
    queue: mpsc::Sender<Message>,
}

impl BackgroundAudit {
    /// Largest batch written in one transaction.
    const BATCH: usize = 256;
    /// How long repeats of one noise event are counted before their summary.
    pub const WINDOW: Duration = Duration::from_secs(60);
    /// How often the writer looks for windows that ended.
    const SWEEP: Duration = Duration::from_secs(5);

    /// Starts the writer on the current runtime: `capacity` events that
    /// matter may wait, and a quarter as many of noise.
    pub fn spawn(
        repository: Arc<dyn AuthEventRepository>,
        capacity: usize,
    ) -> (Arc<Self>, AuditFlusher) {
        Self::spawn_with(repository, capacity, Repeats::new(Self::WINDOW))
    }

    /// As [`Self::spawn`], counting repeats in `repeats` (tests use a
    /// small map or a short window).
    pub fn spawn_with(
        repository: Arc<dyn AuthEventRepository>,
        capacity: usize,
        repeats: Repeats,
    ) -> (Arc<Self>, AuditFlusher) {
        let (queue, receiver) = mpsc::channel::<Message>(capacity.max(1));
        let (noise, noise_receiver) = mpsc::channel::<AuthEvent>((capacity / 4).max(1));
        let repeats = Arc::new(Mutex::new(repeats));
        let writer = Writer {
            repository,
            queue: receiver,
            noise: noise_receiver,
            repeats: repeats.clone(),
        };
        tokio::spawn(writer.run());
        let sink = Arc::new(Self {
            queue: queue.clone(),
            noise,
            repeats,
            dropped: AtomicU64::new(0),
            dropped_noise: AtomicU64::new(0),
        });
        (sink, AuditFlusher { queue })
    }

    /// Events dropped because a queue was full, noise included.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Of [`Self::dropped`], the noise events.
    pub fn dropped_noise(&self) -> u64 {
        self.dropped_noise.load(Ordering::Relaxed)
    }

    fn count_drop(&self, noise: bool) {
        if noise {
            self.dropped_noise.fetch_add(1, Ordering::Relaxed);
        }
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if dropped.is_power_of_two() {
            tracing::error!(dropped, noise, "audit queue full; events dropped");
        }
    }
}

/// The writer task: events that matter first, then noise, and the summaries
/// of the noise windows that ended.
struct Writer {
    repository: Arc<dyn AuthEventRepository>,
    queue: mpsc::Receiver<Message>,
    noise: mpsc::Receiver<AuthEvent>,
    repeats: Arc<Mutex<Repeats>>,
}

impl Writer {
    async fn run(mut self) {
        let mut sweep = tokio::time::interval(BackgroundAudit::SWEEP);
        sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(BackgroundAudit::BATCH);
        loop {
            let mut flushes = Vec::new();
            tokio::select! {
                biased;
                message = self.queue.recv() => match message {
                    Some(Message::Event(event)) => batch.push(event),
                    Some(Message::Flush(done)) => flushes.push(done),
                    // Every sender is gone: nothing more can come.
                    None => break,
                },
                Some(event) = self.noise.recv() => batch.push(event),
                _ = sweep.tick() => batch.extend(self.lock().sweep(Instant::now())),
            }
            while batch.len() < BackgroundAudit::BATCH {
                if let Ok(message) = self.queue.try_recv() {
                    match message {
                        Message::Event(event) => batch.push(event),
                        Message::Flush(done) => flushes.push(done),
                    }
                } else if let Ok(event) = self.noise.try_recv() {
                    batch.push(event);
                } else {
                    break;
                }
            }
            if !flushes.is_empty() {
                // A flush covers what was recorded before it: the noise
                // queued meanwhile and the counts of open windows.
                while let Ok(event) = self.noise.try_recv() {
                    batch.push(event);
                }
                batch.extend(self.lock().drain());
            }
            write(self.repository.as_ref(), &mut batch).await;
            for done in flushes {
                let _ = done.send(());
            }
        }
        batch.extend(self.lock().drain());
        write(self.repository.as_ref(), &mut batch).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Repeats> {
        self.repeats.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn write(repository: &dyn AuthEventRepository, batch: &mut Vec<AuthEvent>) {
    if batch.is_empty() {
        return;
    }
    for attempt in 0..3u32 {
        match repository.append(batch).await {
            Ok(()) => {
                batch.clear();
                return;
            }
            Err(error) => {
                tracing::warn!(error = %error, attempt, events = batch.len(), "writing audit events failed");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt + 1))).await;
            }
        }
    }
    tracing::error!(events = batch.len(), "audit events lost after retries");
    batch.clear();
}

impl AuditSink for BackgroundAudit {
    fn record(&self, event: AuthEvent) {
        if event.kind.is_client_noise() {
            let first = self
                .repeats
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .admit(event, Instant::now());
            if let Some(first) = first
                && self.noise.try_send(first).is_err()
            {
                self.count_drop(true);
            }
            return;
        }
        if self.queue.try_send(Message::Event(event)).is_err() {
            self.count_drop(false);
        }
    }
}

impl AuditFlusher {
    /// Waits until every event recorded before this call is written, with
    /// the counts of the open noise windows (bounded by `timeout`).
    pub async fn flush(&self, timeout: Duration) {
        let (done, wait) = oneshot::channel();
        // Queuing the request counts against the timeout too: the queue may
        // be full behind a write that hangs.
        let _ = tokio::time::timeout(timeout, async {
            if self.queue.send(Message::Flush(done)).await.is_ok() {
                let _ = wait.await;
            }
        })
        .await;
    }
}
