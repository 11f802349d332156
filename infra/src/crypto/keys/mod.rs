//! Signing keys for access tokens: Ed25519 key files on disk, or one HS256
//! secret from the environment.
//!
//! Ed25519 keys live as PKCS#8 PEM files (`*.pem`) in one directory, named
//! `ed25519-<UTC yyyymmddThhmmssZ>-<kid prefix>.pem` so that the lexical order
//! of names is their age. Every key in the directory verifies; the newest one
//! signs. Rotation adds a file; retiring a key is deleting its file, which
//! takes effect at the next start. Key material never reaches a log, and a
//! key file is created with mode 0600 in a directory of mode 0700.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::secrets::random_base64url_32;

pub(crate) mod files;

use files::{create_key_file, ensure_key_dir, key_files, pem_encode, read_key_file};
#[cfg(test)]
use files::{file_time, pem_decode};

/// Shortest HS256 secret accepted: the output size of SHA-256 (RFC 7518 §3.2).
const MIN_HS256_SECRET: usize = 32;

/// The public keys that verify our tokens, as served at
/// `/.well-known/jwks.json` (RFC 7517).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<PublicJwk>,
}

/// One public key of a [`Jwks`] (an OKP key, RFC 8037).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
}

/// The keys that sign and verify access tokens. Cheap to clone.
#[derive(Clone)]
pub struct SigningKeys {
    inner: Arc<KeySet>,
}

struct KeySet {
    algorithm: Algorithm,
    active_kid: String,
    signing: EncodingKey,
    /// Newest first.
    verifying: Vec<VerifyingKey>,
    jwks: Jwks,
}

struct VerifyingKey {
    kid: String,
    key: DecodingKey,
}

/// An Ed25519 key read from, or about to be written to, a file.
struct Ed25519Key {
    kid: String,
    pkcs8: Zeroizing<Vec<u8>>,
    public: Vec<u8>,
}

impl SigningKeys {
    /// Loads every Ed25519 key in `dir`, creating the directory (mode 0700)
    /// and a first key (mode 0600) when there is none. The newest key signs.
    ///
    /// Key files readable by group or others are loaded with a warning. A
    /// directory or key file writable by group or others, a symlink, or
    /// anything in the directory but our own `ed25519-*.pem` files is an
    /// error: a planted key would sign tokens.
    ///
    /// # Errors
    /// When the directory cannot be created or read, or a key file cannot be
    /// read or is not an Ed25519 PKCS#8 PEM key; the message names the file.
    pub fn load_or_create_ed25519(dir: &Path) -> anyhow::Result<Self> {
        ensure_key_dir(dir)?;
        let mut files = key_files(dir)?;
        if files.is_empty() {
            let (path, kid) = create_key_file(dir, &files)?;
            tracing::info!(path = %path.display(), %kid, "generated the first token signing key");
            files = key_files(dir)?;
        }

        let mut keys: Vec<Ed25519Key> = Vec::with_capacity(files.len());
        // Newest first: the first key kept for a kid is the one that signs.
        for path in files.iter().rev() {
            let key = read_key_file(path)?;
            if keys.iter().any(|known| known.kid == key.kid) {
                tracing::warn!(path = %path.display(), kid = %key.kid, "the same signing key is in two files; using the newer file");
                continue;
            }
            keys.push(key);
        }
        let Some(newest) = keys.first() else {
            bail!("no signing key found in {}", dir.display());
        };

        let set = KeySet {
            algorithm: Algorithm::EdDSA,
            active_kid: newest.kid.clone(),
            signing: EncodingKey::from_ed_der(&newest.pkcs8),
            verifying: keys
                .iter()
                .map(|key| VerifyingKey {
                    kid: key.kid.clone(),
                    key: DecodingKey::from_ed_der(&key.public),
                })
                .collect(),
            jwks: Jwks {
                keys: keys.iter().map(public_jwk).collect(),
            },
        };
        tracing::info!(
            dir = %dir.display(),
            keys = set.verifying.len(),
            active_kid = %set.active_kid,
            "loaded token signing keys"
        );
        Ok(Self {
            inner: Arc::new(set),
        })
    }

    /// Adds a new Ed25519 key to `dir`, newer than every key there, and
    /// returns its kid. Running instances start signing with it after a
    /// restart; the old keys keep verifying until their files are removed.
    ///
    /// # Errors
    /// When the directory or the key file cannot be written.
    pub fn rotate_ed25519(dir: &Path) -> anyhow::Result<String> {
        ensure_key_dir(dir)?;
        let files = key_files(dir)?;
        let (path, kid) = create_key_file(dir, &files)?;
        tracing::info!(path = %path.display(), %kid, "added a token signing key");
        Ok(kid)
    }

    /// HS256 with an operator-supplied secret. Nothing is published in the
    /// JWKS: the secret verifies as well as it signs.
    ///
    /// # Errors
    /// When `secret` is shorter than 32 bytes.
    pub fn hs256(secret: &[u8]) -> anyhow::Result<Self> {
        if secret.len() < MIN_HS256_SECRET {
            bail!("PORTCULLIS_JWT_SECRET must be at least {MIN_HS256_SECRET} bytes");
        }
        // 96 bits of a hash of a 256-bit-or-more secret: tells instances
        // apart without helping anyone guess the secret.
        let digest = URL_SAFE_NO_PAD.encode(Sha256::digest(secret));
        let kid = format!("hs256-{}", digest.get(..16).unwrap_or(&digest));
        let set = KeySet {
            algorithm: Algorithm::HS256,
            active_kid: kid.clone(),
            signing: EncodingKey::from_secret(secret),
            verifying: vec![VerifyingKey {
                kid,
                key: DecodingKey::from_secret(secret),
            }],
            jwks: Jwks { keys: Vec::new() },
        };
        Ok(Self {
            inner: Arc::new(set),
        })
    }

    /// The public keys to publish; empty in HS256 mode.
    pub fn jwks(&self) -> Jwks {
        self.inner.jwks.clone()
    }

    /// The JOSE name of the algorithm: `"EdDSA"` or `"HS256"`.
    pub fn algorithm_name(&self) -> &'static str {
        match self.inner.algorithm {
            Algorithm::HS256 => "HS256",
            _ => "EdDSA",
        }
    }

    /// The kid of the key that signs.
    pub fn active_kid(&self) -> &str {
        &self.inner.active_kid
    }

    pub(crate) fn algorithm(&self) -> Algorithm {
        self.inner.algorithm
    }

    pub(crate) fn signing_key(&self) -> &EncodingKey {
        &self.inner.signing
    }

    /// The key with exactly this kid, if it is one of ours.
    pub(crate) fn verifying_key(&self, kid: &str) -> Option<&DecodingKey> {
        self.inner
            .verifying
            .iter()
            .find(|candidate| candidate.kid == kid)
            .map(|candidate| &candidate.key)
    }
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<&str> = self
            .inner
            .verifying
            .iter()
            .map(|key| key.kid.as_str())
            .collect();
        f.debug_struct("SigningKeys")
            .field("algorithm", &self.algorithm_name())
            .field("active_kid", &self.inner.active_kid)
            .field("kids", &kids)
            .finish_non_exhaustive()
    }
}

/// A new Ed25519 private key as PKCS#8 PEM, for `portcullis keys generate`.
///
/// # Errors
/// When the key cannot be generated or encoded.
pub fn generate_ed25519_pem() -> anyhow::Result<String> {
    let key = generate_ed25519()?;
    Ok(pem_encode(&key.pkcs8).to_string())
}

/// A new HS256 secret: 32 random bytes, base64url without padding.
pub fn generate_hs256_secret() -> String {
    random_base64url_32()
}

fn generate_ed25519() -> anyhow::Result<Ed25519Key> {
    let pair =
        Ed25519KeyPair::generate().map_err(|_| anyhow!("generating an Ed25519 key failed"))?;
    let document = pair
        .to_pkcs8()
        .map_err(|_| anyhow!("encoding an Ed25519 key as PKCS#8 failed"))?;
    let public = pair.public_key().as_ref().to_vec();
    Ok(Ed25519Key {
        kid: thumbprint(&public),
        pkcs8: Zeroizing::new(document.as_ref().to_vec()),
        public,
    })
}

/// The RFC 7638 thumbprint of an Ed25519 public key (RFC 8037 §2): the
/// members in lexical order, no whitespace.
fn thumbprint(public: &[u8]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn public_jwk(key: &Ed25519Key) -> PublicJwk {
    PublicJwk {
        kty: "OKP".to_owned(),
        crv: "Ed25519".to_owned(),
        x: URL_SAFE_NO_PAD.encode(&key.public),
        kid: key.kid.clone(),
        alg: "EdDSA".to_owned(),
        use_: "sig".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc_8037_example() {
        // RFC 8037 appendix A.2 / A.3.
        let public = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        assert_eq!(
            thumbprint(&public),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn pem_round_trips() {
        let key = generate_ed25519().unwrap();
        let pem = pem_encode(&key.pkcs8);
        assert!(pem.lines().all(|line| line.len() <= 64));
        assert_eq!(*pem_decode(pem.as_bytes()).unwrap(), *key.pkcs8);
    }

    #[test]
    fn file_names_carry_their_time() {
        let path = Path::new("/k/ed25519-20261124T120000Z-abcdefgh.pem");
        let time = file_time(path).unwrap();
        assert_eq!(time.unix_timestamp(), 1_795_521_600);
        assert_eq!(file_time(Path::new("/k/other.pem")), None);
    }
}
