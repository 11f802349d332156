//! The ceiling for sign-up and log-in: raw argon2id hashes per second in
//! this process, with the server's parameters, on as many threads as the
//! server has hashing workers by default (one per CPU).

use std::time::{Duration, Instant};

use anyhow::anyhow;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, Version};

/// The parameters of `infra/src/crypto/password.rs` (OWASP's minimum):
/// m = 19456 KiB, t = 2, p = 1, 32-byte output, 16-byte random salt.
const M_COST_KIB: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
const OUTPUT_LEN: usize = 32;

/// Hashes per second over `window` after `warmup`, on `threads` threads.
pub fn rate(threads: usize, warmup: Duration, window: Duration) -> anyhow::Result<f64> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, Some(OUTPUT_LEN))
        .map_err(|error| anyhow!("argon2 parameters: {error}"))?;
    let start = Instant::now() + warmup;
    let end = start + window;
    let counts = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let params = params.clone();
                scope.spawn(move || -> anyhow::Result<u64> {
                    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
                    let mut done = 0;
                    loop {
                        let began = Instant::now();
                        if began >= end {
                            return Ok(done);
                        }
                        argon2
                            .hash_password(b"correct horse battery staple 42")
                            .map_err(|error| anyhow!("argon2 hashing failed: {error}"))?;
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
