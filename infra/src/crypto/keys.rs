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
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};
use zeroize::Zeroizing;

use super::secrets::random_base64url_32;

/// Shortest HS256 secret accepted: the output size of SHA-256 (RFC 7518 §3.2).
const MIN_HS256_SECRET: usize = 32;

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";
const FILE_PREFIX: &str = "ed25519-";
const FILE_TIME: &[FormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");
/// `yyyymmddThhmmssZ`.
const FILE_TIME_LEN: usize = 16;
const FILE_KID_PREFIX_LEN: usize = 8;

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
    /// Key files readable by group or others are loaded with a warning.
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

fn ensure_key_dir(dir: &Path) -> anyhow::Result<()> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    dir = %dir.display(),
                    mode = format_args!("{mode:o}"),
                    "the signing key directory is open to group or others; expected mode 700"
                );
            }
            Ok(())
        }
        Ok(_) => bail!("signing key path {} is not a directory", dir.display()),
        Err(error) if error.kind() == ErrorKind::NotFound => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent)
                    .with_context(|| format!("creating directory {}", parent.display()))?;
            }
            // The mode is set at creation so the directory is never open,
            // even for an instant.
            match DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => Ok(()),
                // Another process won the race; its directory will do.
                Err(error) if error.kind() == ErrorKind::AlreadyExists => Ok(()),
                Err(error) => Err(error)
                    .with_context(|| format!("creating signing key directory {}", dir.display())),
            }
        }
        Err(error) => {
            Err(error).with_context(|| format!("reading signing key directory {}", dir.display()))
        }
    }
}

/// The key files of `dir`, oldest first. Hidden files (our temporary
/// files among them) and anything not named `*.pem` are not keys.
fn key_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries =
        fs::read_dir(dir).with_context(|| format!("listing signing keys in {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("listing signing keys in {}", dir.display()))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            tracing::warn!(path = %path.display(), "ignoring a file whose name is not UTF-8 in the signing key directory");
            continue;
        };
        if name.starts_with('.') || !name.ends_with(".pem") {
            continue;
        }
        // Follows symlinks, so a linked key file counts as a key.
        let is_file = fs::metadata(&path)
            .with_context(|| format!("reading signing key {}", path.display()))?
            .is_file();
        if is_file {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_key_file(path: &Path) -> anyhow::Result<Ed25519Key> {
    let meta =
        fs::metadata(path).with_context(|| format!("reading signing key {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{mode:o}"),
            "a signing key file is readable by group or others; expected mode 600"
        );
    }
    let contents = Zeroizing::new(
        fs::read(path).with_context(|| format!("reading signing key {}", path.display()))?,
    );
    let pkcs8 = pem_decode(&contents).with_context(|| {
        format!(
            "signing key {} is not a PEM \"PRIVATE KEY\" (PKCS#8)",
            path.display()
        )
    })?;
    let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|rejected| {
        anyhow!(
            "signing key {} is not an Ed25519 PKCS#8 key: {rejected}",
            path.display()
        )
    })?;
    let public = pair.public_key().as_ref().to_vec();
    Ok(Ed25519Key {
        kid: thumbprint(&public),
        pkcs8,
        public,
    })
}

/// Writes a new key whose file name sorts after every key in `existing`,
/// and returns its path and kid.
fn create_key_file(dir: &Path, existing: &[PathBuf]) -> anyhow::Result<(PathBuf, String)> {
    let key = generate_ed25519()?;
    // Two rotations within one second, or a clock set back, must still leave
    // the new key newest by name.
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let created = existing
        .iter()
        .filter_map(|path| file_time(path))
        .max()
        .map_or(now, |latest| now.max(latest + Duration::SECOND));
    let stamp = created
        .format(FILE_TIME)
        .context("formatting the key file timestamp")?;
    let kid_prefix = key.kid.get(..FILE_KID_PREFIX_LEN).unwrap_or(&key.kid);
    let name = format!("{FILE_PREFIX}{stamp}-{kid_prefix}.pem");
    let path = dir.join(&name);
    let temporary = dir.join(format!(".{name}.tmp"));

    let pem = pem_encode(&key.pkcs8);
    let written = (|| -> std::io::Result<()> {
        // Created with its final mode: never readable by others, even briefly.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(pem.as_bytes())?;
        file.sync_all()
    })();
    if let Err(error) = written {
        let _ = fs::remove_file(&temporary);
        return Err(error).with_context(|| format!("writing signing key {}", temporary.display()));
    }
    // The rename makes the key appear whole or not at all, so a crash never
    // leaves a truncated key for the next start to trip over.
    fs::rename(&temporary, &path)
        .with_context(|| format!("moving signing key into place at {}", path.display()))?;
    if let Err(error) = fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), %error, "could not sync the signing key directory");
    }
    Ok((path, key.kid))
}

/// The creation time encoded in a key file name, if it follows our naming.
fn file_time(path: &Path) -> Option<OffsetDateTime> {
    let name = path.file_name()?.to_str()?;
    let stamp = name.strip_prefix(FILE_PREFIX)?.get(..FILE_TIME_LEN)?;
    PrimitiveDateTime::parse(stamp, FILE_TIME)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

fn pem_encode(der: &[u8]) -> Zeroizing<String> {
    let body = Zeroizing::new(STANDARD.encode(der));
    // Sized up front so no reallocation leaves a copy of the key behind.
    let mut pem = Zeroizing::new(String::with_capacity(
        PEM_BEGIN.len() + PEM_END.len() + body.len() + body.len() / 64 + 4,
    ));
    pem.push_str(PEM_BEGIN);
    pem.push('\n');
    for (index, c) in body.chars().enumerate() {
        if index > 0 && index % 64 == 0 {
            pem.push('\n');
        }
        pem.push(c);
    }
    pem.push('\n');
    pem.push_str(PEM_END);
    pem.push('\n');
    pem
}

fn pem_decode(contents: &[u8]) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let text = std::str::from_utf8(contents).context("the file is not text")?;
    let body = text
        .trim()
        .strip_prefix(PEM_BEGIN)
        .and_then(|rest| rest.strip_suffix(PEM_END))
        .context("missing the PRIVATE KEY begin or end line")?;
    let compact: Zeroizing<String> =
        Zeroizing::new(body.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    let der = STANDARD
        .decode(compact.as_bytes())
        .context("the PEM body is not base64")?;
    Ok(Zeroizing::new(der))
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
