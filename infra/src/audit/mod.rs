//! The audit sink for events that come with no state change: a bounded queue
//! drained by one writer task in batches, so a flood of failed log-ins or
//! rejected tokens neither waits on the database nor grows memory. When the
//! queue is full, events are dropped and counted, never blocked on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use portcullis_domain::audit::{AuditSink, AuthEvent, AuthEventRepository};
use tokio::sync::{mpsc, oneshot};

enum Message {
    Event(AuthEvent),
    Flush(oneshot::Sender<()>),
}

/// Queues events for the writer task.
pub struct BackgroundAudit {
    queue: mpsc::Sender<Message>,
    dropped: AtomicU64,
}

/// The writer task's handle: flush before shutting down.
#[derive(Clone)]
pub struct AuditFlusher {
    queue: mpsc::Sender<Message>,
}

impl BackgroundAudit {
    /// Largest batch written in one transaction.
    const BATCH: usize = 256;

    /// Starts the writer on the current runtime.
    pub fn spawn(
        repository: Arc<dyn AuthEventRepository>,
        capacity: usize,
    ) -> (Arc<Self>, AuditFlusher) {
        let (queue, mut receiver) = mpsc::channel::<Message>(capacity.max(1));
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(Self::BATCH);
            while let Some(first) = receiver.recv().await {
                let mut flushes = Vec::new();
                let mut next = Some(first);
                while let Some(message) = next.take() {
                    match message {
                        Message::Event(event) => batch.push(event),
                        Message::Flush(done) => flushes.push(done),
                    }
                    if batch.len() < Self::BATCH {
                        next = receiver.try_recv().ok();
                    }
                }
                write(repository.as_ref(), &mut batch).await;
                for done in flushes {
                    let _ = done.send(());
                }
            }
        });
        let sink = Arc::new(Self {
            queue: queue.clone(),
            dropped: AtomicU64::new(0),
        });
        (sink, AuditFlusher { queue })
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
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
        if self.queue.try_send(Message::Event(event)).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::error!(dropped, "audit queue full; events dropped");
            }
        }
    }
}

impl AuditFlusher {
    /// Waits until every event queued before this call is written (bounded by `timeout`).
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
