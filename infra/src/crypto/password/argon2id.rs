//! Argon2id itself: the parameters we hash with, the working memory reused
//! between hashes ([`Scratch`]), and hashing and verifying PHC strings with
//! it. The pool in `mod.rs` decides where and when this runs.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use argon2::password_hash::phc::PasswordHash as PhcHash;
use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::password_hash::{CustomizedPasswordHasher, Error as PhcError};
use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHasher as _, PasswordVerifier as _, Version,
};
use portcullis_domain::password::{Password, PasswordHash, Verification};
use zeroize::Zeroize as _;

/// OWASP's minimum for argon2id: m=19 MiB, t=2, p=1.
const M_COST_KIB: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
const OUTPUT_LEN: usize = 32;
const SALT_LEN: usize = 16;

/// argon2's working memory, shared by the workers: at most one set of
/// blocks per running hash, kept between hashes, released when idle.
#[derive(Default)]
pub(super) struct Scratch {
    /// Blocks not in use, with the time each was put back.
    free: Mutex<Vec<(Vec<Block>, Instant)>>,
}

impl Scratch {
    /// Memory unused for this long goes back to the operating system.
    pub(super) const IDLE_RELEASE: Duration = Duration::from_secs(1);

    /// Every allocation asks for at least this much address space (pages
    /// beyond the blocks in use are never touched, so cost nothing). glibc
    /// serves requests above its largest mmap threshold (32 MiB on 64-bit)
    /// with a private mapping and unmaps it on free, so released memory
    /// really leaves the process instead of staying in a malloc arena.
    const MIN_RESERVATION: usize = (33 << 20) / Block::SIZE;

    /// Runs `f` on at least `count` blocks, reusing free ones.
    fn with_blocks<T>(
        &self,
        count: usize,
        f: impl FnOnce(&mut [Block]) -> T,
    ) -> Result<T, argon2::Error> {
        let reused = {
            let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
            free.iter()
                .position(|(blocks, _)| blocks.len() >= count)
                .map(|index| free.swap_remove(index).0)
        };
        let mut blocks = match reused {
            Some(blocks) => blocks,
            None => allocate(count)?,
        };
        let result = blocks.get_mut(..count).map(f);
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((blocks, Instant::now()));
        result.ok_or(argon2::Error::MemoryTooLittle)
    }

    /// Zeroises and frees the blocks unused for [`Self::IDLE_RELEASE`].
    pub(super) fn release_idle(&self) {
        let idle: Vec<Vec<Block>> = {
            let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
            let (idle, busy): (Vec<_>, Vec<_>) = free
                .drain(..)
                .partition(|(_, since)| since.elapsed() >= Self::IDLE_RELEASE);
            *free = busy;
            idle.into_iter().map(|(blocks, _)| blocks).collect()
        };
        for mut blocks in idle {
            blocks.iter_mut().for_each(Block::zeroize);
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let free = self.free.get_mut().unwrap_or_else(PoisonError::into_inner);
        for (blocks, _) in free.iter_mut() {
            blocks.iter_mut().for_each(Block::zeroize);
        }
    }
}

/// `count` zeroed blocks in a fresh reservation of at least
/// [`Scratch::MIN_RESERVATION`].
pub(super) fn allocate(count: usize) -> Result<Vec<Block>, argon2::Error> {
    let mut blocks = Vec::new();
    blocks
        .try_reserve_exact(count.max(Scratch::MIN_RESERVATION))
        .map_err(|_| argon2::Error::OutOfMemory)?;
    blocks.resize(count, Block::default());
    Ok(blocks)
}

/// argon2 computing in [`Scratch`] memory; otherwise exactly
/// `argon2::Argon2`'s `PasswordHasher` and (through the blanket
/// implementation) `PasswordVerifier`.
pub(super) struct PooledArgon2<'a> {
    scratch: &'a Scratch,
    params: Params,
}

impl<'a> PooledArgon2<'a> {
    /// With the current parameters, for new hashes.
    pub(super) fn current(scratch: &'a Scratch) -> Self {
        Self {
            scratch,
            params: current_params(),
        }
    }
}

impl argon2::PasswordHasher<PhcHash> for PooledArgon2<'_> {
    fn hash_password_with_salt(
        &self,
        password: &[u8],
        salt: &[u8],
    ) -> argon2::password_hash::Result<PhcHash> {
        self.hash_password_customized(password, salt, None, None, self.params.clone())
    }
}

impl CustomizedPasswordHasher<PhcHash> for PooledArgon2<'_> {
    type Params = Params;

    fn hash_password_customized(
        &self,
        password: &[u8],
        salt: &[u8],
        algorithm: Option<&str>,
        version: Option<u32>,
        params: Params,
    ) -> argon2::password_hash::Result<PhcHash> {
        let algorithm = algorithm
            .map(Algorithm::try_from)
            .transpose()?
            .unwrap_or_default();
        let version = version
            .map(Version::try_from)
            .transpose()?
            .unwrap_or_default();
        let salt = Salt::new(salt)?;
        let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let mut buffer = zeroize::Zeroizing::new([0u8; Output::MAX_LENGTH]);
        let out = buffer.get_mut(..output_len).ok_or(PhcError::OutputSize)?;
        let argon2 = Argon2::new(algorithm, version, params.clone());
        self.scratch.with_blocks(params.block_count(), |blocks| {
            argon2.hash_password_into_with_memory(password, &salt, out, blocks)
        })??;
        Ok(PhcHash {
            algorithm: algorithm.ident(),
            version: Some(version.into()),
            params: ParamsString::try_from(&params)?,
            salt: Some(salt),
            hash: Some(Output::new(out)?),
        })
    }
}

pub(super) fn current_params() -> Params {
    // These constants are within argon2's limits; `DEFAULT` is the fallback
    // only to avoid a panic path, and happens to be the same OWASP setting.
    Params::new(M_COST_KIB, T_COST, P_COST, Some(OUTPUT_LEN)).unwrap_or(Params::DEFAULT)
}

pub(super) fn dummy_hash(scratch: &Scratch) -> anyhow::Result<PasswordHash> {
    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, secret.as_mut())
        .context("reading the OS random generator")?;
    let phc = PooledArgon2::current(scratch)
        .hash_password(secret.as_ref())
        .map_err(|error| anyhow!("argon2 hashing failed: {error}"))?;
    Ok(PasswordHash::new(phc.to_string()))
}

pub(super) fn verify_phc(
    argon2: &PooledArgon2<'_>,
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
pub(super) fn uses_current_settings(hash: &PhcHash) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::password::{Argon2Hasher, HashPoolConfig};
    use portcullis_domain::password::PasswordHasher as _;

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
    fn pooled_hashes_are_argon2s_hashes() {
        let scratch = Scratch::default();
        let pooled = PooledArgon2::current(&scratch);
        let plain = Argon2::new(Algorithm::Argon2id, Version::V0x13, current_params());
        let salt = [9u8; SALT_LEN];
        let password = b"correct horse battery staple";
        let ours = pooled.hash_password_with_salt(password, &salt).unwrap();
        let theirs = plain.hash_password_with_salt(password, &salt).unwrap();
        assert_eq!(ours.to_string(), theirs.to_string());

        // Hashes made elsewhere, with other parameters too, verify here.
        let older = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 3, 1, Some(32)).unwrap(),
        )
        .hash_password_with_salt(password, &salt)
        .unwrap();
        assert!(pooled.verify_password(password, &older).is_ok());
        assert!(pooled.verify_password(password, &theirs).is_ok());
        assert_eq!(
            pooled.verify_password(b"wrong", &theirs),
            Err(PhcError::PasswordInvalid)
        );
    }

    #[test]
    fn scratch_memory_is_reused_then_released_when_idle() {
        let scratch = Scratch::default();
        let count = current_params().block_count();
        let first = scratch.with_blocks(count, |b| b.as_ptr()).unwrap();
        let second = scratch.with_blocks(count, |b| b.as_ptr()).unwrap();
        assert_eq!(first, second, "the blocks are reused");
        // A smaller request is served from the same blocks.
        assert_eq!(scratch.with_blocks(8, |b| b.len()).unwrap(), 8);

        scratch.release_idle();
        assert_eq!(scratch.free.lock().unwrap().len(), 1, "still warm");
        std::thread::sleep(Scratch::IDLE_RELEASE + Duration::from_millis(100));
        scratch.release_idle();
        assert!(scratch.free.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn workers_run_below_the_async_runtime() {
        let hasher = Argon2Hasher::new(HashPoolConfig {
            workers: 1,
            queue: 1,
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
    fn dummy_hash_uses_current_settings() {
        let dummy = dummy_hash(&Scratch::default()).unwrap();
        let parsed = PhcHash::new(dummy.as_str()).unwrap();
        assert!(uses_current_settings(&parsed));
        assert!(
            dummy
                .as_str()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
        );
    }
}
