//! The default implementation: `argon2-rust`, a port of the C reference
//! whose compression function picks AVX-512, AVX2, SSE2 or NEON at run time,
//! about twice RustCrypto's rate on a CPU with AVX-512. Each running hash
//! borrows an [`argon2_rust::Hasher`], whose arena stays mapped between
//! hashes while work keeps coming; at most one exists per hashing worker, and
//! they are wiped and unmapped once idle for a second.

use anyhow::anyhow;
use argon2_rust::params::{Memory, TagLen};
use argon2_rust::{Algorithm, Argon2, Error, Hasher, Params, Version};

use super::argon2id::{
    Engine, M_COST_KIB, MAX_M_COST_KIB, MAX_OUTPUT_LEN, MAX_P_COST, MAX_T_COST, OUTPUT_LEN, P_COST,
    Parked, T_COST, over_the_ceiling,
};

pub(super) struct FastEngine {
    /// What new hashes use.
    argon2: Argon2,
    /// The most a stored string may ask for; one thread whatever its `p`.
    ceiling: Params,
    /// Hashers not in use.
    idle: Parked<Hasher>,
}

impl FastEngine {
    /// # Errors
    /// Never with the constants of `argon2id.rs`; the parameters are checked
    /// all the same rather than trusted.
    pub(super) fn new() -> anyhow::Result<Self> {
        let params = Params::builder()
            .memory(Memory::kib(u64::from(M_COST_KIB)))
            .passes(T_COST)
            .lanes(P_COST)
            .tag_len(TagLen::bytes(OUTPUT_LEN as u64))
            .build()
            .map_err(|error| anyhow!("argon2 parameters: {error}"))?;
        let ceiling = Params::builder()
            .memory(Memory::kib(u64::from(MAX_M_COST_KIB)))
            .passes(MAX_T_COST)
            .lanes(MAX_P_COST)
            .threads(1)
            .tag_len(TagLen::bytes(MAX_OUTPUT_LEN as u64))
            .build()
            .map_err(|error| anyhow!("argon2 ceiling: {error}"))?;
        Ok(Self {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            ceiling,
            idle: Parked::default(),
        })
    }

    /// Runs `f` with an idle hasher, or a new one (which maps its arena on
    /// its first hash), and parks it again afterwards.
    fn with_hasher<T>(&self, f: impl FnOnce(&mut Hasher) -> T) -> T {
        let mut hasher = self
            .idle
            .take(|_| true)
            .unwrap_or_else(|| self.argon2.hasher());
        let result = f(&mut hasher);
        self.idle.park(hasher);
        result
    }
}

impl Engine for FastEngine {
    fn hash(&self, password: &[u8], salt: &[u8]) -> anyhow::Result<String> {
        self.with_hasher(|hasher| hasher.hash_password(password, salt))
            .map_err(|error| anyhow!("argon2 hashing failed: {error}"))
    }

    fn verify(&self, password: &[u8], phc: &str) -> anyhow::Result<bool> {
        let algorithm = algorithm_of(phc)?;
        let outcome = self.with_hasher(|hasher| {
            hasher.verify_encoded_bounded(phc, password, algorithm, &self.ceiling)
        });
        match outcome {
            Ok(()) => Ok(true),
            Err(Error::VerifyMismatch) => Ok(false),
            Err(
                Error::MemoryTooMuch
                | Error::TimeTooLarge
                | Error::LanesTooMany
                | Error::OutputTooLong
                | Error::DecodingLengthFail,
            ) => Err(over_the_ceiling()),
            Err(error) => Err(anyhow!("stored password hash cannot be checked: {error}")),
        }
    }

    fn release_idle(&self) {
        // `clear` wipes the arena and unmaps it.
        for mut hasher in self.idle.take_idle() {
            hasher.clear();
        }
    }
}

/// The algorithm a PHC string names; argon2-rust checks it against the rest.
fn algorithm_of(phc: &str) -> anyhow::Result<Algorithm> {
    let name = phc.split('$').nth(1).unwrap_or_default();
    [Algorithm::Argon2id, Algorithm::Argon2i, Algorithm::Argon2d]
        .into_iter()
        .find(|algorithm| algorithm.as_str() == name)
        .ok_or_else(|| anyhow!("stored password hash is not an argon2 PHC string"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::password::argon2id::IDLE_RELEASE;

    #[test]
    fn hashers_are_reused_then_released_when_idle() {
        let engine = FastEngine::new().unwrap();
        engine.hash(b"a password", &[7u8; 16]).unwrap();
        engine.hash(b"a password", &[8u8; 16]).unwrap();
        assert_eq!(engine.idle.len(), 1, "one hasher served both hashes");
        let hasher = engine.idle.take(|_| true).unwrap();
        assert_eq!(hasher.reserved_blocks(), M_COST_KIB as usize);
        engine.idle.park(hasher);

        engine.release_idle();
        assert_eq!(engine.idle.len(), 1, "still warm");
        std::thread::sleep(IDLE_RELEASE + std::time::Duration::from_millis(100));
        engine.release_idle();
        assert_eq!(engine.idle.len(), 0);
    }

    #[test]
    fn the_algorithm_comes_from_the_string() {
        assert_eq!(
            algorithm_of("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA").unwrap(),
            Algorithm::Argon2id
        );
        assert_eq!(
            algorithm_of("$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA").unwrap(),
            Algorithm::Argon2i
        );
        assert!(algorithm_of("$scrypt$ln=1$x$y").is_err());
        assert!(algorithm_of("").is_err());
    }

    #[test]
    fn a_hostile_cost_is_refused_before_anything_is_allocated() {
        let engine = FastEngine::new().unwrap();
        let hostile = "$argon2id$v=19$m=4294967295,t=1,p=1$c29tZXNhbHQ$\
                       CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        let error = engine.verify(b"pw", hostile).unwrap_err();
        assert!(error.to_string().contains("more than the accepted cost"));
        let hasher = engine.idle.take(|_| true).unwrap();
        assert_eq!(hasher.reserved_blocks(), 0, "no arena was mapped");
    }
}
