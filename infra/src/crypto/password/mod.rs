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
//! Two implementations compute the same argon2id ([`Argon2Backend`]): the
//! fast one (`argon2-rust`, runtime AVX-512/AVX2/NEON dispatch) by default,
//! and RustCrypto's `argon2` as the reference. Either keeps the 19 MiB of a
//! hash mapped from one hash to the next while work keeps coming, and gives
//! it back to the operating system (zeroised first) once the pool has been
//! idle for [`IDLE_RELEASE`]. Allocating it afresh for every hash left several
//! hundred MiB in the allocator's per-thread arenas after a log-in flood and
//! cost a page-fault storm per hash.
//!
//! Passwords and hashes are never logged, traced or put in error messages.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use anyhow::{Context as _, anyhow};
use async_trait::async_trait;
use portcullis_domain::error::Failure;
use portcullis_domain::password::{Password, PasswordHash, PasswordHasher, Verification};
use thread_priority::{ThreadPriority, ThreadPriorityValue, set_current_thread_priority};
use tokio::sync::oneshot;
use tracing::Span;

mod argon2id;
#[cfg(test)]
mod differential;
mod fast;
mod reference;

use argon2id::{Engine, IDLE_RELEASE, dummy_hash, hash_new, verify_phc};

/// Told to a client that finds the pool full.
const RETRY_AFTER_SECS: u64 = 1;

/// Priority of the hashing threads on `thread-priority`'s 0..=99 scale,
/// which Linux maps to niceness 20 - 39 * p / 99: 22 is nice +10, below the
/// async runtime (0) so that it wins the cores whenever it has work, yet not
/// starved by other programs as nice +19 would be.
const WORKER_PRIORITY: u8 = 22;

/// Which implementation computes argon2id. Both give the same tags and
/// PHC strings bit for bit, so a deployment can switch either way at any time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Argon2Backend {
    /// `argon2-rust`: runtime SIMD dispatch, a reused arena per worker.
    #[default]
    Fast,
    /// RustCrypto's `argon2`, the reference the fast one is tested against.
    Reference,
}

impl Argon2Backend {
    /// The name `PORTCULLIS_ARGON2_BACKEND` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Reference => "reference",
        }
    }

    /// What computes the hashes on this machine, for the start-up log:
    /// the implementation and, for argon2-rust, the SIMD path it picked.
    pub fn describe(self) -> String {
        match self {
            Self::Fast => format!("argon2-rust ({:?})", argon2_rust::detected_backend()),
            Self::Reference => "RustCrypto argon2".to_owned(),
        }
    }

    fn engine(self) -> anyhow::Result<Arc<dyn Engine>> {
        Ok(match self {
            Self::Fast => Arc::new(fast::FastEngine::new()?),
            Self::Reference => Arc::new(reference::ReferenceEngine::default()),
        })
    }
}

impl std::str::FromStr for Argon2Backend {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "fast" => Ok(Self::Fast),
            "reference" => Ok(Self::Reference),
            other => Err(format!("expected fast or reference, got {other:?}")),
        }
    }
}

/// Size of the hashing pool, and what it computes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashPoolConfig {
    /// Dedicated threads, hence hashes held in memory at once.
    pub workers: usize,
    /// Requests allowed to wait for a free worker before new ones are refused.
    pub queue: usize,
    /// The argon2id implementation.
    pub backend: Argon2Backend,
}

impl Default for HashPoolConfig {
    fn default() -> Self {
        Self {
            workers: thread::available_parallelism().map_or(1, usize::from),
            queue: 64,
            backend: Argon2Backend::default(),
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

type Job = Box<dyn FnOnce(&dyn Engine) + Send + 'static>;

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
        let engine = config.backend.engine()?;
        let dummy = dummy_hash(engine.as_ref()).context("computing the dummy password hash")?;

        // A rendezvous channel when `queue` is 0: a request is only accepted
        // while a worker is idle and waiting for it.
        let (jobs, receiver) = sync_channel::<Job>(config.queue);
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..config.workers {
            let receiver = Arc::clone(&receiver);
            let engine = Arc::clone(&engine);
            thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || {
                    lower_priority();
                    work_loop(&receiver, engine.as_ref());
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
        F: FnOnce(&dyn Engine) -> anyhow::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let parent = Span::current();
        let depth = DepthGuard::enter(&self.inner.depth);
        let job: Job = Box::new(move |engine| {
            // Nobody is waiting any more (the request was cancelled): skip
            // the 19 MiB of work.
            if reply.is_closed() {
                return;
            }
            let span = match operation {
                Operation::Hash => tracing::info_span!(parent: &parent, "password.hash"),
                Operation::Verify => tracing::info_span!(parent: &parent, "password.verify"),
            };
            let result = span.in_scope(|| work(engine));
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
            .field("backend", &self.inner.config.backend)
            .field("depth", &self.queue_depth())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, Failure> {
        // The clone is a `SecretString`: zeroised when the job drops it.
        let password = password.clone();
        self.run(Operation::Hash, move |engine| {
            hash_new(engine, password.expose().as_bytes())
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
        self.run(Operation::Verify, move |engine| {
            verify_phc(engine, &password, &hash)
        })
        .await
    }

    async fn verify_dummy(&self, password: &Password) -> Result<(), Failure> {
        let password = password.clone();
        let dummy = self.inner.dummy.clone();
        self.run(Operation::Verify, move |engine| {
            verify_phc(engine, &password, &dummy).map(|_| ())
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
/// job gives idle hashing memory back every [`IDLE_RELEASE`].
fn work_loop(receiver: &Mutex<Receiver<Job>>, engine: &dyn Engine) {
    loop {
        // The lock is held only while waiting, never while hashing, and
        // nothing panics while holding it, so poisoning carries no meaning.
        let next = {
            let receiver = receiver.lock().unwrap_or_else(PoisonError::into_inner);
            receiver.recv_timeout(IDLE_RELEASE)
        };
        let job = match next {
            Ok(job) => job,
            Err(RecvTimeoutError::Timeout) => {
                engine.release_idle();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // A panic inside a job must not shrink the pool; the caller sees its
        // reply dropped and reports an unexpected error.
        if catch_unwind(AssertUnwindSafe(|| job(engine))).is_err() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::phc::PasswordHash as PhcHash;

    #[tokio::test]
    async fn workers_run_below_the_async_runtime() {
        let hasher = Argon2Hasher::new(HashPoolConfig {
            workers: 1,
            queue: 1,
            ..HashPoolConfig::default()
        })
        .unwrap();
        // Once a job has run, the worker has set its priority.
        hasher
            .verify_dummy(&Password::new("a password long enough".to_owned()))
            .await
            .unwrap();
        let mut niceness = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let path = task.unwrap().path();
            let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            if comm.starts_with("argon2-") {
                let stat = std::fs::read_to_string(path.join("stat")).unwrap();
                let fields: Vec<&str> = stat
                    .rsplit_once(')')
                    .unwrap()
                    .1
                    .split_whitespace()
                    .collect();
                // Field 19 of stat is the niceness; 17 after the command.
                niceness.push(fields[16].parse::<i32>().unwrap());
            }
        }
        assert!(!niceness.is_empty());
        assert!(niceness.iter().all(|&nice| nice == 10), "{niceness:?}");
    }

    #[test]
    fn dummy_hashes_use_current_settings_on_both_backends() {
        for backend in [Argon2Backend::Fast, Argon2Backend::Reference] {
            let dummy = dummy_hash(backend.engine().unwrap().as_ref()).unwrap();
            let parsed = PhcHash::new(dummy.as_str()).unwrap();
            assert!(argon2id::uses_current_settings(&parsed), "{backend:?}");
            assert!(
                dummy
                    .as_str()
                    .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
            );
        }
    }

    #[test]
    fn backends_are_named_as_the_setting_names_them() {
        for backend in [Argon2Backend::Fast, Argon2Backend::Reference] {
            assert_eq!(backend.name().parse::<Argon2Backend>(), Ok(backend));
        }
        assert!("Fast".parse::<Argon2Backend>().is_err());
        assert!(Argon2Backend::Fast.describe().starts_with("argon2-rust ("));
        assert_eq!(Argon2Backend::default(), Argon2Backend::Fast);
    }
}
