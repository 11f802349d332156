//! The data key: 32 random bytes that encrypt TOTP seeds at rest (AES-256-GCM)
//! and key the hashes of recovery codes (HMAC-SHA-256 under a derived key).
//!
//! From `PORTCULLIS_DATA_KEY` (standard base64) when set; otherwise read
//! from, or generated into, `data.key` (mode 0600) in the keys directory.
//! Instances that share a database must share it, like the signing keys.
//! It never reaches a log; a key file open to others refuses the start.

use std::fs;
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::{Context as _, bail};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use super::keys::files::{DATA_KEY_FILE, ensure_key_dir};
use super::secrets::fill_random;

/// Bytes of a data key.
pub const DATA_KEY_LEN: usize = 32;

/// A new data key in standard base64 (for `portcullis keys generate --data-key`).
pub fn generate_data_key() -> String {
    let mut bytes = Zeroizing::new([0u8; DATA_KEY_LEN]);
    fill_random(bytes.as_mut());
    STANDARD.encode(bytes.as_ref())
}

/// Encrypts and authenticates small secrets, and keys their digests.
#[derive(Clone)]
pub struct DataKey {
    aead: std::sync::Arc<LessSafeKey>,
    digest: hmac::Key,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

impl DataKey {
    /// The key of `PORTCULLIS_DATA_KEY` (`configured`), or the one in
    /// `keys_dir/data.key`, created there (0600) on first start.
    ///
    /// # Errors
    /// A configured key that is not 32 bytes of base64; a key file that is
    /// a symlink, open to group or others, or not 32 bytes.
    pub fn load_or_create(configured: Option<&str>, keys_dir: &Path) -> anyhow::Result<Self> {
        if let Some(encoded) = configured {
            let bytes = Zeroizing::new(STANDARD.decode(encoded.trim()).map_err(|_| {
                anyhow::anyhow!("PORTCULLIS_DATA_KEY is not base64 (generate one with `portcullis keys generate --data-key`)")
            })?);
            return Self::from_bytes(&bytes)
                .context("PORTCULLIS_DATA_KEY must be 32 bytes of standard base64");
        }
        ensure_key_dir(keys_dir)?;
        let path = keys_dir.join(DATA_KEY_FILE);
        match fs::symlink_metadata(&path) {
            Ok(meta) => {
                if meta.file_type().is_symlink() || !meta.is_file() {
                    bail!(
                        "refusing to start: the data key {} is not a regular file",
                        path.display()
                    );
                }
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    bail!(
                        "refusing to start: the data key {} is open to group or others (mode {mode:o}); run `chmod 600 {}`",
                        path.display(),
                        path.display()
                    );
                }
                let bytes = Zeroizing::new(
                    fs::read(&path)
                        .with_context(|| format!("reading the data key {}", path.display()))?,
                );
                Self::from_bytes(&bytes)
                    .with_context(|| format!("the data key {} must hold 32 bytes", path.display()))
            }
            Err(error) if error.kind() == ErrorKind::NotFound => {
                let mut bytes = Zeroizing::new([0u8; DATA_KEY_LEN]);
                fill_random(bytes.as_mut());
                write_new(keys_dir, &path, bytes.as_ref())?;
                tracing::info!(path = %path.display(), "generated the data key (share it between instances, like the signing keys)");
                Self::from_bytes(bytes.as_ref())
            }
            Err(error) => {
                Err(error).with_context(|| format!("reading the data key {}", path.display()))
            }
        }
    }

    /// A key from its 32 bytes.
    ///
    /// # Errors
    /// Any other length.
    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        if bytes.len() != DATA_KEY_LEN {
            bail!("a data key is {DATA_KEY_LEN} bytes, not {}", bytes.len());
        }
        let aead = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, bytes)
                .map_err(|_| anyhow::anyhow!("unusable data key"))?,
        );
        // A separate key for digests, derived so one use cannot stand in for the other.
        let master = hmac::Key::new(hmac::HMAC_SHA256, bytes);
        let derived = hmac::sign(&master, b"portcullis recovery codes v1");
        Ok(Self {
            aead: std::sync::Arc::new(aead),
            digest: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        })
    }

    /// `nonce || ciphertext || tag` of `plaintext`, bound to `context`.
    ///
    /// # Errors
    /// Only if the cipher fails.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce);
        let mut sealed = plaintext.to_vec();
        self.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut sealed,
            )
            .map_err(|_| anyhow::anyhow!("sealing failed"))?;
        let mut out = nonce.to_vec();
        out.append(&mut sealed);
        Ok(out)
    }

    /// The plaintext of `sealed` if it was sealed with this key and `context`.
    ///
    /// # Errors
    /// A wrong key, a wrong context, or tampered bytes.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        if sealed.len() < NONCE_LEN {
            bail!("sealed value too short");
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| anyhow::anyhow!("bad nonce"))?;
        let mut buffer = Zeroizing::new(rest.to_vec());
        let plain_len = self
            .aead
            .open_in_place(nonce, Aad::from(context), buffer.as_mut_slice())
            .map_err(|_| anyhow::anyhow!("the sealed value does not open with this data key"))?
            .len();
        buffer.truncate(plain_len);
        Ok(buffer)
    }

    /// The keyed digest of `value` (recovery codes are stored as these).
    pub fn digest(&self, value: &[u8]) -> Vec<u8> {
        hmac::sign(&self.digest, value).as_ref().to_vec()
    }
}

/// Writes a new key file: mode 0600 from its creation, then renamed into place.
fn write_new(dir: &Path, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temporary = dir.join(format!(".{DATA_KEY_FILE}.tmp"));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("creating {}", temporary.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temporary.display()))?;
    fs::rename(&temporary, path)
        .with_context(|| format!("creating the data key {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_context() {
        let key = DataKey::from_bytes(&[7u8; 32]).unwrap();
        let other = DataKey::from_bytes(&[8u8; 32]).unwrap();
        let sealed = key.seal(b"seed", b"user-1").unwrap();
        assert_ne!(&sealed[NONCE_LEN..NONCE_LEN + 4], b"seed");
        assert_eq!(key.open(&sealed, b"user-1").unwrap().as_slice(), b"seed");
        assert!(key.open(&sealed, b"user-2").is_err());
        assert!(other.open(&sealed, b"user-1").is_err());
        let mut tampered = sealed.clone();
        tampered[NONCE_LEN] ^= 1;
        assert!(key.open(&tampered, b"user-1").is_err());
        assert_ne!(
            key.seal(b"seed", b"user-1").unwrap(),
            sealed,
            "a fresh nonce each time"
        );
    }

    #[test]
    fn a_generated_key_file_is_private_and_reloads_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let first = DataKey::load_or_create(None, &keys).unwrap();
        let mode = fs::metadata(keys.join(DATA_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = DataKey::load_or_create(None, &keys).unwrap();
        assert_eq!(first.digest(b"x"), again.digest(b"x"));

        fs::set_permissions(keys.join(DATA_KEY_FILE), fs::Permissions::from_mode(0o644)).unwrap();
        let refused = DataKey::load_or_create(None, &keys).unwrap_err();
        assert!(format!("{refused:#}").contains("open to group or others"));
    }

    #[test]
    fn a_configured_key_wins_and_a_bad_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let encoded = generate_data_key();
        let key = DataKey::load_or_create(Some(&encoded), dir.path()).unwrap();
        assert!(!dir.path().join(DATA_KEY_FILE).exists());
        assert_eq!(key.digest(b"x").len(), 32);
        assert!(DataKey::load_or_create(Some("not base64!"), dir.path()).is_err());
        assert!(DataKey::load_or_create(Some(&STANDARD.encode([1u8; 16])), dir.path()).is_err());
    }
}
