//! Argon2id as Portcullis uses it, whatever computes it: the parameters new
//! hashes get, the most a stored hash may ask for, the [`Engine`] that the
//! two implementations (`fast.rs`, `reference.rs`) provide, and hashing and
//! verifying PHC strings with one. The pool in `mod.rs` decides where and
//! when this runs.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use argon2::password_hash::phc::PasswordHash as PhcHash;
use argon2::{Params, Version};
use portcullis_domain::password::{Password, PasswordHash, Verification};
use zeroize::Zeroizing;

/// OWASP's minimum for argon2id: m=19 MiB, t=2, p=1.
pub(super) const M_COST_KIB: u32 = 19_456;
pub(super) const T_COST: u32 = 2;
pub(super) const P_COST: u32 = 1;
pub(super) const OUTPUT_LEN: usize = 32;
pub(super) const SALT_LEN: usize = 16;

/// The most a stored hash may cost to check. A PHC string is read from the
/// database, and its parameters decide how much memory and time a
/// verification takes: `m=4294967295` would ask for 4 TiB. Anything above
/// these bounds is refused while it is still a number, before a byte is
/// allocated. They leave room for hashes made with stronger settings than
/// ours (13 times the memory, 8 times the passes), which are upgraded to ours
/// at the next log-in.
pub(super) const MAX_M_COST_KIB: u32 = 256 * 1024;
pub(super) const MAX_T_COST: u32 = 16;
pub(super) const MAX_P_COST: u32 = 8;
pub(super) const MAX_OUTPUT_LEN: usize = 64;

// The ceiling admits what we write ourselves; checked when compiling.
const _: () = assert!(
    M_COST_KIB <= MAX_M_COST_KIB
        && T_COST <= MAX_T_COST
        && P_COST <= MAX_P_COST
        && OUTPUT_LEN <= MAX_OUTPUT_LEN
);

/// Memory an engine keeps between hashes goes back to the operating system
/// after this long without work.
pub(super) const IDLE_RELEASE: Duration = Duration::from_secs(1);

/// Hashing memory not in use, each with the time it was put back: what an
/// engine keeps between hashes while work keeps coming. At most one item per
/// running hash exists, so at most one per hashing worker.
pub(super) struct Parked<T> {
    items: Mutex<Vec<(T, Instant)>>,
}

impl<T> Default for Parked<T> {
    fn default() -> Self {
        Self {
            items: Mutex::new(Vec::new()),
        }
    }
}

impl<T> Parked<T> {
    /// Takes a parked item that `fits`, if any.
    pub(super) fn take(&self, fits: impl Fn(&T) -> bool) -> Option<T> {
        let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        let index = items.iter().position(|(item, _)| fits(item))?;
        Some(items.swap_remove(index).0)
    }

    /// Puts `item` back, idle from now.
    pub(super) fn park(&self, item: T) {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((item, Instant::now()));
    }

    /// Removes and returns the items idle for [`IDLE_RELEASE`].
    pub(super) fn take_idle(&self) -> Vec<T> {
        let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        let (idle, busy): (Vec<_>, Vec<_>) = items
            .drain(..)
            .partition(|(_, since)| since.elapsed() >= IDLE_RELEASE);
        *items = busy;
        idle.into_iter().map(|(item, _)| item).collect()
    }

    /// Every parked item, for a final wipe.
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.items
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .iter_mut()
            .map(|(item, _)| item)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// An implementation of argon2id. Both produce the same tags and the same
/// PHC strings bit for bit (`infra/tests/crypto/argon2_differential.rs`).
pub(super) trait Engine: Send + Sync + 'static {
    /// The PHC string of `password` with `salt` and the current parameters
    /// (argon2id, v=19, [`M_COST_KIB`], [`T_COST`], [`P_COST`], [`OUTPUT_LEN`]).
    fn hash(&self, password: &[u8], salt: &[u8]) -> anyhow::Result<String>;

    /// Whether `password` matches the stored PHC string `phc`, checked with
    /// the algorithm, version and parameters the string names.
    ///
    /// # Errors
    /// When `phc` is not a PHC string of argon2, or asks for more than the
    /// `MAX_*` bounds (refused before anything is allocated).
    fn verify(&self, password: &[u8], phc: &str) -> anyhow::Result<bool>;

    /// Gives back the memory unused for [`IDLE_RELEASE`], zeroised.
    fn release_idle(&self);
}

pub(super) fn current_params() -> Params {
    // These constants are within argon2's limits; `DEFAULT` is the fallback
    // only to avoid a panic path, and happens to be the same OWASP setting.
    Params::new(M_COST_KIB, T_COST, P_COST, Some(OUTPUT_LEN)).unwrap_or(Params::DEFAULT)
}

/// A PHC string of `password` with a fresh random salt.
pub(super) fn hash_new(engine: &dyn Engine, password: &[u8]) -> anyhow::Result<PasswordHash> {
    let mut salt = [0u8; SALT_LEN];
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut salt)
        .context("reading the OS random generator")?;
    engine.hash(password, &salt).map(PasswordHash::new)
}

/// A hash of a random password nobody knows, with the current parameters,
/// so that an unknown account costs one full verification.
pub(super) fn dummy_hash(engine: &dyn Engine) -> anyhow::Result<PasswordHash> {
    let mut secret = Zeroizing::new([0u8; 32]);
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, secret.as_mut())
        .context("reading the OS random generator")?;
    hash_new(engine, secret.as_ref())
}

pub(super) fn verify_phc(
    engine: &dyn Engine,
    password: &Password,
    hash: &PasswordHash,
) -> anyhow::Result<Verification> {
    // The PHC string itself stays out of the message: it must not reach logs.
    let parsed = PhcHash::new(hash.as_str())
        .map_err(|error| anyhow!("stored password hash is not a valid PHC string: {error}"))?;
    // The engine verifies with the algorithm, version and parameters of the
    // stored hash, so hashes made with older settings keep working until
    // they are upgraded.
    let matches = engine.verify(password.expose().as_bytes(), hash.as_str())?;
    Ok(Verification {
        matches,
        needs_rehash: !uses_current_settings(&parsed),
    })
}

/// Whether `hash` was made exactly as [`Engine::hash`] makes one today.
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

/// The message for a stored hash over the `MAX_*` bounds; its parameters
/// are ours to name, the string itself is not.
pub(super) fn over_the_ceiling() -> anyhow::Error {
    anyhow!(
        "stored password hash asks for more than the accepted cost \
         (m <= {MAX_M_COST_KIB} KiB, t <= {MAX_T_COST}, p <= {MAX_P_COST}, output <= {MAX_OUTPUT_LEN} bytes)"
    )
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
}
