//! The shutdown signal of the background jobs: [`Jobs`] hands out one
//! [`Shutdown`] per job and, on `stop`, requests shutdown and waits for the
//! jobs to end; [`every`] is the timer loop that ends on the signal.
//!
//! A leaf of `jobs`: it imports no job, so every job can import it.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A job's shutdown signal: resolves once shutdown is requested, or once the
/// [`Jobs`] that handed it out is gone.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Waits until shutdown is requested.
    pub async fn requested(mut self) {
        // An error means the sender is gone: nobody can request it any more,
        // so that is a shutdown too.
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// The running jobs and the sender of their shutdown signal.
pub struct Jobs {
    stop: watch::Sender<bool>,
    running: Vec<(&'static str, JoinHandle<()>)>,
}

impl Jobs {
    pub(crate) fn new() -> Self {
        Self {
            stop: watch::Sender::new(false),
            running: Vec::new(),
        }
    }

    /// A signal for one more job.
    pub fn shutdown(&self) -> Shutdown {
        Shutdown(self.stop.subscribe())
    }

    /// Spawns `job`, which must end once its [`Shutdown`] resolves.
    pub fn spawn(&mut self, name: &'static str, job: impl Future<Output = ()> + Send + 'static) {
        self.running.push((name, tokio::spawn(job)));
    }

    /// Keeps track of a job spawned elsewhere with one of our signals.
    pub fn adopt(&mut self, name: &'static str, job: JoinHandle<()>) {
        self.running.push((name, job));
    }

    /// Requests shutdown and waits, at most `deadline`, for every job to end.
    pub async fn stop(self, deadline: Duration) {
        self.stop.send_replace(true);
        let all = async {
            for (name, job) in self.running {
                if let Err(error) = job.await {
                    tracing::warn!(job = name, error = %error, "background job failed");
                }
            }
        };
        if tokio::time::timeout(deadline, all).await.is_err() {
            tracing::warn!("background jobs did not stop in time; leaving them behind");
        }
    }
}

/// Runs `tick` at once and then every `period` until `shutdown` resolves; a
/// tick in progress is dropped at its next await.
pub(crate) async fn every<F, Fut>(period: Duration, shutdown: Shutdown, mut tick: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut ticker = tokio::time::interval(period);
    let ticking = async {
        loop {
            ticker.tick().await;
            tick().await;
        }
    };
    tokio::select! {
        () = shutdown.requested() => {}
        _ = ticking => {}
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_job_stops_when_shutdown_is_requested() {
        let mut jobs = Jobs::new();
        let ticks = Arc::new(AtomicU32::new(0));
        let counted = ticks.clone();
        jobs.spawn(
            "counter",
            every(Duration::from_millis(5), jobs.shutdown(), move || {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            }),
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
        tokio::time::timeout(Duration::from_secs(5), jobs.stop(Duration::from_secs(5)))
            .await
            .unwrap();
        let seen = ticks.load(Ordering::Relaxed);
        assert!(seen >= 1, "the first tick runs at once");
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(ticks.load(Ordering::Relaxed), seen, "no tick after stop");
    }

    #[tokio::test]
    async fn a_signal_taken_after_the_request_still_fires() {
        let jobs = Jobs::new();
        jobs.stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), jobs.shutdown().requested())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn dropping_the_jobs_stops_them_too() {
        let jobs = Jobs::new();
        let signal = jobs.shutdown();
        drop(jobs);
        tokio::time::timeout(Duration::from_secs(5), signal.requested())
            .await
            .unwrap();
    }
}
