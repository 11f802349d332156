//! Argon2id password hashing on a bounded pool of dedicated OS threads.
//!
//! Each hash holds 19 MiB for tens of milliseconds, so the pool bounds CPU and
//! memory at once: at most `workers` hashes run, at most `queue` wait, and a
//! request beyond that is refused at once with `Failure::Overloaded` instead
//! of piling up. The async runtime never runs a hash itself.
//!
//! The workers run at a lower scheduling priority (nice +10) than the
//! async runtime, so a flood of log-ins keeps every core busy hashing without
//! delaying token checks, tasks and health probes: those preempt a hash as
//! soon as they have work.
//!
//! The 19 MiB of each hash comes from [`Scratch`]: blocks reused from one hash
//! to the next while work keeps coming, and given back to the operating system
//! (zeroised first) once the pool has been idle for [`Scratch::IDLE_RELEASE`].
//! Allocating them afresh for every hash, as `argon2` does by itself, left
//! several hundred MiB in the allocator's per-thread arenas after a log-in
//! flood and cost a page-fault storm per hash.
//!
//! Passwords and hashes are never logged, traced or put in error messages.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use anyhow::{Context as _, anyhow};
use argon2::PasswordHasher as _;
use async_trait::async_trait;
use portcullis_domain::error::Failure;
use portcullis_domain::password::{Password, PasswordHash, PasswordHasher, Verification};
use thread_priority::{ThreadPriority, ThreadPriorityValue, set_current_thread_priority};
use tokio::sync::oneshot;
use tracing::Span;

mod argon2id;

use argon2id::{PooledArgon2, Scratch, dummy_hash, verify_phc};

/// Told to a client that finds the pool full.
const RETRY_AFTER_SECS: u64 = 1;

/// Priority of the hashing threads on `thread-priority`'s 0..=99 scale,
/// which Linux maps to niceness 20 - 39 * p / 99: 22 is nice +10, below the
/// async runtime (0) so that it wins the cores whenever it has work, yet not
/// starved by other programs as nice +19 would be.
const WORKER_PRIORITY: u8 = 22;

/// Size of the hashing pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashPoolConfig {
    /// Dedicated threads, hence hashes held in memory at once.
    pub workers: usize,
    /// Requests allowed to wait for a free worker before new ones are refused.
    pub queue: usize,
}

impl Default for HashPoolConfig {
    fn default() -> Self {
        Self {
            workers: thread::available_parallelism().map_or(1, usize::from),
            queue: 64,
        }
    }
}

/// The [`PasswordHasher`] of production: argon2id, m=19456 KiB, t=2, p=1,
/// 16-byte salt, PHC strings. Cheap to clone; the pool stops when the last
/// clone is dropped.
#[derive(Clone)]
pub struct Argon2Hasher {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: SyncSender<Job>,
    depth: Arc<AtomicUsize>,
    config: HashPoolConfig,
    /// A hash of a random password nobody knows, with the current
    /// parameters, so an unknown account costs one full verification.
    dummy: PasswordHash,
}

type Job = Box<dyn FnOnce(&Scratch) + Send + 'static>;

#[derive(Clone, Copy)]
enum Operation {
    Hash,
    Verify,
}

impl Argon2Hasher {
    /// Starts `config.workers` hashing threads and computes the dummy hash.
    ///
    /// # Errors
    /// When `workers` is zero, a thread cannot be spawned or the dummy hash
    /// cannot be computed.
    pub fn new(config: HashPoolConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(
            config.workers > 0,
            "the password hashing pool needs at least one worker"
        );
        let scratch = Arc::new(Scratch::default());
        let dummy = dummy_hash(&scratch).context("computing the dummy password hash")?;

        // A rendezvous channel when `queue` is 0: a request is only accepted
        // while a worker is idle and waiting for it.
        let (jobs, receiver) = sync_channel::<Job>(config.queue);
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..config.workers {
            let receiver = Arc::clone(&receiver);
            let scratch = Arc::clone(&scratch);
            thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || {
                    lower_priority();
                    work_loop(&receiver, &scratch);
                })
                .with_context(|| format!("spawning password hashing thread {index}"))?;
        }

        Ok(Self {
            inner: Arc::new(Inner {
                jobs,
                depth: Arc::new(AtomicUsize::new(0)),
                config,
                dummy,
            }),
        })
    }

    /// Requests accepted and not finished yet: waiting or running.
    pub fn queue_depth(&self) -> usize {
        self.inner.depth.load(Ordering::Relaxed)
    }

    /// Runs `work` on the pool, or refuses at once when the pool is full.
    async fn run<T, F>(&self, operation: Operation, work: F) -> Result<T, Failure>
    where
        T: Send + 'static,
        F: FnOnce(&PooledArgon2<'_>) -> anyhow::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let parent = Span::current();
        let depth = DepthGuard::enter(&self.inner.depth);
        let job: Job = Box::new(move |scratch| {
            // Nobody is waiting any more (the request was cancelled): skip
            // the 19 MiB of work.
            if reply.is_closed() {
                return;
            }
            let span = match operation {
                Operation::Hash => tracing::info_span!(parent: &parent, "password.hash"),
                Operation::Verify => tracing::info_span!(parent: &parent, "password.verify"),
            };
            let result = span.in_scope(|| work(&PooledArgon2::current(scratch)));
            // Close the spans before answering: a low-priority worker may not
            // run again for a while after `send`, and an open child would keep
            // the request's span (and its export) waiting.
            drop(span);
            drop(parent);
            // Counted out before the caller can observe the result, so a
            // caller that reads `queue_depth` afterwards sees its request gone.
            drop(depth);
            // The caller may have gone in the meantime; nothing to do then.
            let _ = reply.send(result);
        });

        match self.inner.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(Failure::Overloaded {
                    retry_after_secs: RETRY_AFTER_SECS,
                });
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(unexpected(anyhow!("the password hashing pool has stopped")));
            }
        }

        match answer.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(unexpected(error)),
            Err(_) => Err(unexpected(anyhow!(
                "a password hashing thread dropped its request"
            ))),
        }
    }
}

impl fmt::Debug for Argon2Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Argon2Hasher")
            .field("workers", &self.inner.config.workers)
            .field("queue", &self.inner.config.queue)
            .field("depth", &self.queue_depth())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, Failure> {
        // The clone is a `SecretString`: zeroised when the job drops it.
        let password = password.clone();
        self.run(Operation::Hash, move |argon2| {
            let phc = argon2
                .hash_password(password.expose().as_bytes())
                .map_err(|error| anyhow!("argon2 hashing failed: {error}"))?;
            Ok(PasswordHash::new(phc.to_string()))
        })
        .await
    }

    async fn verify(
        &self,
        password: &Password,
        hash: &PasswordHash,
    ) -> Result<Verification, Failure> {
        let password = password.clone();
        let hash = hash.clone();
        self.run(Operation::Verify, move |argon2| {
            verify_phc(argon2, &password, &hash)
        })
        .await
    }

    async fn verify_dummy(&self, password: &Password) -> Result<(), Failure> {
        let password = password.clone();
        let dummy = self.inner.dummy.clone();
        self.run(Operation::Verify, move |argon2| {
            verify_phc(argon2, &password, &dummy).map(|_| ())
        })
        .await
    }
}

/// Lowers the calling thread's scheduling priority to [`WORKER_PRIORITY`];
/// a failure only costs latency under load, so it is logged and ignored.
fn lower_priority() {
    let priority = ThreadPriorityValue::try_from(WORKER_PRIORITY)
        .map(ThreadPriority::Crossplatform)
        .unwrap_or(ThreadPriority::Min);
    if let Err(error) = set_current_thread_priority(priority) {
        tracing::warn!(error = ?error, "could not lower the priority of a password hashing thread");
    }
}

/// Takes jobs until every sender is gone. The worker that waits for the next
/// job gives idle scratch memory back every [`Scratch::IDLE_RELEASE`].
fn work_loop(receiver: &Mutex<Receiver<Job>>, scratch: &Scratch) {
    loop {
        // The lock is held only while waiting, never while hashing, and
        // nothing panics while holding it, so poisoning carries no meaning.
        let next = {
            let receiver = receiver.lock().unwrap_or_else(PoisonError::into_inner);
            receiver.recv_timeout(Scratch::IDLE_RELEASE)
        };
        let job = match next {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                scratch.release_idle();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // A panic inside a job must not shrink the pool; the caller sees its
        // reply dropped and reports an unexpected error.
        if catch_unwind(AssertUnwindSafe(|| job(scratch))).is_err() {
            tracing::error!("a password hashing job panicked");
        }
    }
}

fn unexpected(error: anyhow::Error) -> Failure {
    Failure::Unexpected(error)
}

/// Counts a request from acceptance until its job finishes or is dropped
/// (refused by a full queue, or abandoned when the pool stops).
struct DepthGuard(Arc<AtomicUsize>);

impl DepthGuard {
    fn enter(depth: &Arc<AtomicUsize>) -> Self {
        depth.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(depth))
    }
}

impl Drop for DepthGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
