//! Helpers the crypto tests share: a temporary key directory, reading the
//! PEM files, base64url, hand-signed tokens and the EdDSA fixture.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use aws_lc_rs::hmac;
use aws_lc_rs::signature::Ed25519KeyPair;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use portcullis_domain::ids::SessionId;
use portcullis_domain::ids::UserId;
use portcullis_domain::token::{AccessClaims, TokenRejection, TokenVerifier as _};
use portcullis_infra::crypto::{JwtConfig, JwtTokens, SigningKeys};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// A fresh directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        let path = std::env::temp_dir().join(format!("portcullis-crypto-{}", Uuid::new_v4()));
        fs::create_dir(&path).unwrap();
        Self(path)
    }

    /// Where `load_or_create_ed25519` is pointed: not created yet.
    pub(crate) fn keys(&self) -> PathBuf {
        self.0.join("keys")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

pub(crate) fn pem_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "pem"))
        .collect();
    files.sort();
    files
}

pub(crate) fn key_pair_from_pem(path: &Path) -> Ed25519KeyPair {
    let text = fs::read_to_string(path).unwrap();
    let body: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    Ed25519KeyPair::from_pkcs8(&STANDARD.decode(body).unwrap()).unwrap()
}

pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

pub(crate) fn access_claims(at: OffsetDateTime) -> AccessClaims {
    AccessClaims {
        email_verified: false,
        amr: vec![portcullis_domain::amr::AuthMethod::Pwd],
        auth_time: at,
        user_id: UserId::new(),
        session_id: SessionId::new(),
        token_id: Uuid::new_v4(),
        issued_at: at,
        not_before: at,
        expires_at: at + Duration::minutes(15),
    }
}

pub(crate) fn sign_ed25519(pair: &Ed25519KeyPair, header: &str, claims: &str) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let signature = pair.sign(input.as_bytes());
    format!("{input}.{}", b64(signature.as_ref()))
}

pub(crate) fn sign_hs256(secret: &[u8], header: &str, claims: &str) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

/// The JSON segment `index` (0 header, 1 claims) of a compact token.
pub(crate) fn segment(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// An EdDSA setup with its key directory, and the private key in the clear
/// so tests can sign whatever they like with it.
pub(crate) struct Ed25519Fixture {
    _root: TempDir,
    pub(crate) dir: PathBuf,
    pub(crate) tokens: JwtTokens,
    pub(crate) pair: Ed25519KeyPair,
    pub(crate) kid: String,
}

impl Ed25519Fixture {
    pub(crate) fn new() -> Self {
        let root = TempDir::new();
        let dir = root.keys();
        let keys = SigningKeys::load_or_create_ed25519(&dir).unwrap();
        let kid = keys.active_kid().to_owned();
        let pair = key_pair_from_pem(&pem_files(&dir)[0]);
        Self {
            _root: root,
            dir,
            tokens: JwtTokens::new(keys, JwtConfig::default()),
            pair,
            kid,
        }
    }

    pub(crate) fn header(&self) -> String {
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": self.kid}).to_string()
    }

    /// Claims as we issue them, valid at `at`.
    pub(crate) fn claims(&self, at: OffsetDateTime) -> Value {
        let t = at.unix_timestamp();
        json!({
            "iss": "portcullis",
            "aud": "portcullis-api",
            "sub": Uuid::new_v4(),
            "sid": Uuid::new_v4(),
            "jti": Uuid::new_v4(),
            "iat": t,
            "nbf": t,
            "exp": t + 900,
        })
    }

    pub(crate) fn sign(&self, header: &str, claims: &str) -> String {
        sign_ed25519(&self.pair, header, claims)
    }

    /// A correctly signed token with our header and `claims` edited by `edit`.
    pub(crate) fn with_claims(
        &self,
        edit: impl FnOnce(&mut serde_json::Map<String, Value>),
    ) -> String {
        let mut claims = self.claims(now());
        edit(claims.as_object_mut().unwrap());
        self.sign(&self.header(), &claims.to_string())
    }

    /// A correctly signed token with `header` and valid claims.
    pub(crate) fn with_header(&self, header: Value) -> String {
        self.sign(&header.to_string(), &self.claims(now()).to_string())
    }

    pub(crate) fn verify(&self, token: &str) -> Result<AccessClaims, TokenRejection> {
        self.tokens.verify(token, now())
    }
}
