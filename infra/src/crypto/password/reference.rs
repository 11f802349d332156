//! The reference implementation: RustCrypto's `argon2` crate, computing in
//! [`Scratch`] memory reused between hashes. Selected with
//! `PORTCULLIS_ARGON2_BACKEND=reference`; the tests use it as the oracle the
//! fast engine must agree with.

use anyhow::anyhow;
use argon2::password_hash::phc::PasswordHash as PhcHash;
use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::password_hash::{CustomizedPasswordHasher, Error as PhcError};
use argon2::{Algorithm, Argon2, Block, Params, PasswordVerifier as _, Version};
use zeroize::Zeroize as _;

use super::argon2id::{
    Engine, MAX_M_COST_KIB, MAX_OUTPUT_LEN, MAX_P_COST, MAX_T_COST, Parked, current_params,
    over_the_ceiling,
};

/// RustCrypto's argon2 over [`Scratch`].
#[derive(Default)]
pub(super) struct ReferenceEngine {
    scratch: Scratch,
}

impl Engine for ReferenceEngine {
    fn hash(&self, password: &[u8], salt: &[u8]) -> anyhow::Result<String> {
        let phc = PooledArgon2 {
            scratch: &self.scratch,
        }
        .hash_password_customized(password, salt, None, None, current_params())
        .map_err(|error| anyhow!("argon2 hashing failed: {error}"))?;
        Ok(phc.to_string())
    }

    fn verify(&self, password: &[u8], phc: &str) -> anyhow::Result<bool> {
        let parsed = PhcHash::new(phc)
            .map_err(|error| anyhow!("stored password hash is not a valid PHC string: {error}"))?;
        let params = Params::try_from(&parsed)
            .map_err(|error| anyhow!("stored password hash has bad parameters: {error}"))?;
        if params.m_cost() > MAX_M_COST_KIB
            || params.t_cost() > MAX_T_COST
            || params.p_cost() > MAX_P_COST
            || params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN) > MAX_OUTPUT_LEN
        {
            return Err(over_the_ceiling());
        }
        let argon2 = PooledArgon2 {
            scratch: &self.scratch,
        };
        match argon2.verify_password(password, &parsed) {
            Ok(()) => Ok(true),
            Err(PhcError::PasswordInvalid) => Ok(false),
            Err(error) => Err(anyhow!("stored password hash cannot be checked: {error}")),
        }
    }

    fn release_idle(&self) {
        self.scratch.release_idle();
    }
}

/// argon2's working memory, shared by the workers: at most one set of
/// blocks per running hash, kept between hashes, released when idle.
#[derive(Default)]
struct Scratch {
    /// Blocks not in use.
    free: Parked<Vec<Block>>,
}

impl Scratch {
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
        let mut blocks = match self.free.take(|blocks| blocks.len() >= count) {
            Some(blocks) => blocks,
            None => allocate(count)?,
        };
        let result = blocks.get_mut(..count).map(f);
        self.free.park(blocks);
        result.ok_or(argon2::Error::MemoryTooLittle)
    }

    /// Zeroises and frees the blocks unused for `IDLE_RELEASE`.
    fn release_idle(&self) {
        for mut blocks in self.free.take_idle() {
            blocks.iter_mut().for_each(Block::zeroize);
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for blocks in self.free.iter_mut() {
            blocks.iter_mut().for_each(Block::zeroize);
        }
    }
}

/// `count` zeroed blocks in a fresh reservation of at least
/// [`Scratch::MIN_RESERVATION`].
fn allocate(count: usize) -> Result<Vec<Block>, argon2::Error> {
    let mut blocks = Vec::new();
    blocks
        .try_reserve_exact(count.max(Scratch::MIN_RESERVATION))
        .map_err(|_| argon2::Error::OutOfMemory)?;
    blocks.resize(count, Block::default());
    Ok(blocks)
}

/// argon2 computing in [`Scratch`] memory; otherwise exactly
/// `argon2::Argon2`'s `CustomizedPasswordHasher` and (through the blanket
/// implementation) `PasswordVerifier`.
struct PooledArgon2<'a> {
    scratch: &'a Scratch,
}

impl argon2::PasswordHasher<PhcHash> for PooledArgon2<'_> {
    fn hash_password_with_salt(
        &self,
        password: &[u8],
        salt: &[u8],
    ) -> argon2::password_hash::Result<PhcHash> {
        self.hash_password_customized(password, salt, None, None, current_params())
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

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordHasher as _;

    #[test]
    fn pooled_hashes_are_argon2s_hashes() {
        let scratch = Scratch::default();
        let pooled = PooledArgon2 { scratch: &scratch };
        let plain = Argon2::new(Algorithm::Argon2id, Version::V0x13, current_params());
        let salt = [9u8; 16];
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
        assert_eq!(scratch.free.len(), 1, "still warm");
        std::thread::sleep(
            crate::crypto::password::argon2id::IDLE_RELEASE + std::time::Duration::from_millis(100),
        );
        scratch.release_idle();
        assert_eq!(scratch.free.len(), 0);
    }
}
