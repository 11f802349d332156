//! The ceiling for sign-up and log-in: raw argon2id hashes per second in
//! this process, with the server's parameters, on as many threads as the
//! server has hashing workers by default (one per CPU). Both implementations
//! the server can run are measured; the ceiling is the faster one, which is
//! the server's default (`PORTCULLIS_ARGON2_BACKEND=fast`).

use std::time::{Duration, Instant};

use anyhow::anyhow;
use argon2::PasswordHasher as _;

/// The parameters of `infra/src/crypto/password/argon2id.rs` (OWASP's
/// minimum): m = 19456 KiB, t = 2, p = 1, 32-byte output, 16-byte salt.
const M_COST_KIB: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
const OUTPUT_LEN: usize = 32;
const PASSWORD: &[u8] = b"correct horse battery staple 42";
const SALT: &[u8; 16] = b"portcullis-bench";

/// An argon2id implementation the server can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    /// `argon2-rust` with a reused arena per thread, as the server's workers.
    Fast,
    /// RustCrypto's `argon2`, the reference.
    Reference,
}

impl Implementation {
    pub fn name(self) -> &'static str {
        match self {
            Self::Fast => "argon2-rust",
            Self::Reference => "RustCrypto argon2",
        }
    }

    /// A hashing loop body for one thread.
    fn hasher(self) -> anyhow::Result<Box<dyn FnMut() -> anyhow::Result<()>>> {
        Ok(match self {
            Self::Fast => {
                let params = argon2_rust::Params::builder()
                    .memory(argon2_rust::params::Memory::kib(u64::from(M_COST_KIB)))
                    .passes(T_COST)
                    .lanes(P_COST)
                    .tag_len(argon2_rust::params::TagLen::bytes(OUTPUT_LEN as u64))
                    .build()
                    .map_err(|error| anyhow!("argon2 parameters: {error}"))?;
                let mut hasher = argon2_rust::Argon2::new(
                    argon2_rust::Algorithm::Argon2id,
                    argon2_rust::Version::V0x13,
                    params,
                )
                .hasher();
                Box::new(move || {
                    hasher
                        .hash_password(PASSWORD, SALT)
                        .map(drop)
                        .map_err(|error| anyhow!("argon2 hashing failed: {error}"))
                })
            }
            Self::Reference => {
                let params = argon2::Params::new(M_COST_KIB, T_COST, P_COST, Some(OUTPUT_LEN))
                    .map_err(|error| anyhow!("argon2 parameters: {error}"))?;
                let argon2 = argon2::Argon2::new(
                    argon2::Algorithm::Argon2id,
                    argon2::Version::V0x13,
                    params,
                );
                Box::new(move || {
                    argon2
                        .hash_password_with_salt(PASSWORD, SALT)
                        .map(drop)
                        .map_err(|error| anyhow!("argon2 hashing failed: {error}"))
                })
            }
        })
    }
}

/// Hashes per second over `window` after `warmup`, on `threads` threads.
pub fn rate(
    implementation: Implementation,
    threads: usize,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<f64> {
    let start = Instant::now() + warmup;
    let end = start + window;
    let counts = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || -> anyhow::Result<u64> {
                    let mut hash = implementation.hasher()?;
                    let mut done = 0;
                    loop {
                        let began = Instant::now();
                        if began >= end {
                            return Ok(done);
                        }
                        hash()?;
                        // Hashes that started in the window count; a hash in
                        // flight at its start is balanced by one at its end.
                        if began >= start {
                            done += 1;
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .map_err(|_| anyhow!("an argon2 thread panicked"))?
            })
            .collect::<anyhow::Result<Vec<u64>>>()
    })?;
    Ok(counts.iter().sum::<u64>() as f64 / window.as_secs_f64())
}
