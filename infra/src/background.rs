//! Work that runs after the answer has left (the domain's `Background`
//! port): tokio tasks, at most [`TokioBackground::MAX_RUNNING`] at once.
//! Over that, work is dropped with a warning, so a flood costs bounded
//! memory; the work that uses it (a forgot-password request) is already
//! rate-limited per client and per address before it gets here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use portcullis_domain::account::Background;
use tokio::sync::Semaphore;

/// Runs background work on the tokio runtime, bounded.
#[derive(Clone)]
pub struct TokioBackground {
    permits: Arc<Semaphore>,
    dropped: Arc<AtomicU64>,
}

impl TokioBackground {
    /// Pieces of work running at once, at most.
    pub const MAX_RUNNING: usize = 256;

    pub fn new() -> Self {
        Self {
            permits: Arc::new(Semaphore::new(Self::MAX_RUNNING)),
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Work dropped so far because too much was running.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Default for TokioBackground {
    fn default() -> Self {
        Self::new()
    }
}

impl Background for TokioBackground {
    fn spawn(&self, work: Pin<Box<dyn Future<Output = ()> + Send + 'static>>) {
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(async move {
                    work.await;
                    drop(permit);
                });
            }
            Err(_) => {
                // One line per power of two dropped: a flood cannot fill the log.
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(
                        running = Self::MAX_RUNNING,
                        dropped,
                        "background work dropped: too much is running"
                    );
                }
            }
        }
    }
}
