//! Argon2id password hashing on a bounded pool of dedicated OS threads.
//!
//! Each hash holds 19 MiB for tens of milliseconds, so the pool bounds CPU and
//! memory at once: at most `workers` hashes run, at most `queue` wait, and a
//! request beyond that is refused at once with `HashError::Overloaded` instead
//! of piling up. The async runtime never runs a hash itself.
//!
//! Passwords and hashes are never logged, traced or put in error messages.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use anyhow::{Context as _, anyhow};
use argon2::password_hash::Error as PhcError;
use argon2::password_hash::phc::PasswordHash as PhcHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use async_trait::async_trait;
use portcullis_domain::Unexpected;
use portcullis_domain::password::{
    HashError, Password, PasswordHash, PasswordHasher, Verification,
};
use tokio::sync::oneshot;
use tracing::Span;

/// OWASP's minimum for argon2id: m=19 MiB, t=2, p=1.
const M_COST_KIB: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
const OUTPUT_LEN: usize = 32;
const SALT_LEN: usize = 16;

/// Told to a client that finds the pool full.
const RETRY_AFTER_SECS: u64 = 1;

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

type Job = Box<dyn FnOnce() + Send + 'static>;

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
        let dummy = dummy_hash().context("computing the dummy password hash")?;

        // A rendezvous channel when `queue` is 0: a request is only accepted
        // while a worker is idle and waiting for it.
        let (jobs, receiver) = sync_channel::<Job>(config.queue);
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..config.workers {
            let receiver = Arc::clone(&receiver);
            thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || work_loop(&receiver))
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
    async fn run<T, F>(&self, operation: Operation, work: F) -> Result<T, HashError>
    where
        T: Send + 'static,
        F: FnOnce(&Argon2<'static>) -> anyhow::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let parent = Span::current();
        let depth = DepthGuard::enter(&self.inner.depth);
        let job: Job = Box::new(move || {
            // Nobody is waiting any more (the request was cancelled): skip
            // the 19 MiB of work.
            if reply.is_closed() {
                return;
            }
            let span = match operation {
                Operation::Hash => tracing::info_span!(parent: &parent, "password.hash"),
                Operation::Verify => tracing::info_span!(parent: &parent, "password.verify"),
            };
            let result = span.in_scope(|| work(&current_argon2()));
            // Counted out before the caller can observe the result, so a
            // caller that reads `queue_depth` afterwards sees its request gone.
            drop(depth);
            // The caller may have gone in the meantime; nothing to do then.
            let _ = reply.send(result);
        });

        match self.inner.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(HashError::Overloaded {
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
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
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
    ) -> Result<Verification, HashError> {
        let password = password.clone();
        let hash = hash.clone();
        self.run(Operation::Verify, move |argon2| {
            verify_phc(argon2, &password, &hash)
        })
        .await
    }

    async fn verify_dummy(&self, password: &Password) -> Result<(), HashError> {
        let password = password.clone();
        let dummy = self.inner.dummy.clone();
        self.run(Operation::Verify, move |argon2| {
            verify_phc(argon2, &password, &dummy).map(|_| ())
        })
        .await
    }
}

/// Takes jobs until every sender is gone.
fn work_loop(receiver: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting, never while hashing, and
        // nothing panics while holding it, so poisoning carries no meaning.
        let job = {
            let receiver = receiver.lock().unwrap_or_else(PoisonError::into_inner);
            match receiver.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        // A panic inside a job must not shrink the pool; the caller sees its
        // reply dropped and reports an unexpected error.
        if catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!("a password hashing job panicked");
        }
    }
}

fn current_params() -> Params {
    // These constants are within argon2's limits; `DEFAULT` is the fallback
    // only to avoid a panic path, and happens to be the same OWASP setting.
    Params::new(M_COST_KIB, T_COST, P_COST, Some(OUTPUT_LEN)).unwrap_or(Params::DEFAULT)
}

fn current_argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, current_params())
}

fn dummy_hash() -> anyhow::Result<PasswordHash> {
    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, secret.as_mut())
        .context("reading the OS random generator")?;
    let phc = current_argon2()
        .hash_password(secret.as_ref())
        .map_err(|error| anyhow!("argon2 hashing failed: {error}"))?;
    Ok(PasswordHash::new(phc.to_string()))
}

fn verify_phc(
    argon2: &Argon2<'_>,
    password: &Password,
    hash: &PasswordHash,
) -> anyhow::Result<Verification> {
    // The PHC string itself stays out of the message: it must not reach logs.
    let parsed = PhcHash::new(hash.as_str())
        .map_err(|error| anyhow!("stored password hash is not a valid PHC string: {error}"))?;
    // Verification uses the algorithm, version and parameters of the stored
    // hash, so hashes made with older settings keep working until upgraded.
    let matches = match argon2.verify_password(password.expose().as_bytes(), &parsed) {
        Ok(()) => true,
        Err(PhcError::PasswordInvalid) => false,
        Err(error) => return Err(anyhow!("stored password hash cannot be checked: {error}")),
    };
    Ok(Verification {
        matches,
        needs_rehash: !uses_current_settings(&parsed),
    })
}

/// Whether `hash` was made exactly as [`Argon2Hasher::hash`] makes one today.
fn uses_current_settings(hash: &PhcHash) -> bool {
    let current = current_params();
    let same_params = Params::try_from(hash).is_ok_and(|params| {
        params.m_cost() == current.m_cost()
            && params.t_cost() == current.t_cost()
            && params.p_cost() == current.p_cost()
            && params.output_len() == current.output_len()
            && params.keyid().is_empty()
            && params.data().is_empty()
    });
    hash.algorithm.as_str() == argon2::ARGON2ID_IDENT.as_str()
        && hash.version == Some(u32::from(Version::V0x13))
        && hash
            .salt
            .as_ref()
            .is_some_and(|salt| salt.len() >= SALT_LEN)
        && same_params
}

fn unexpected(error: anyhow::Error) -> HashError {
    HashError::Unexpected(Unexpected(error))
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

    #[test]
    fn current_params_are_the_owasp_minimum() {
        let params = current_params();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (19_456, 2, 1)
        );
        assert_eq!(params.output_len(), Some(32));
    }

    #[test]
    fn dummy_hash_uses_current_settings() {
        let dummy = dummy_hash().unwrap();
        let parsed = PhcHash::new(dummy.as_str()).unwrap();
        assert!(uses_current_settings(&parsed));
        assert!(
            dummy
                .as_str()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
        );
    }
}
