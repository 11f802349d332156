//! The crypto adapters from the outside: password hashing and its pool,
//! refresh-token secrets, signing keys on disk, and every access-token
//! attack listed in SECURITY.md ("Access tokens").
//!
//! Hostile tokens are built by hand (base64 of literal JSON, signed with the
//! real key through aws-lc-rs) so a test says exactly which bytes it sends.

// Helpers outside `#[test]` functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration as StdDuration, Instant};

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use portcullis_domain::password::{HashError, Password, PasswordHash, PasswordHasher as _};
use portcullis_domain::session::{RefreshToken, SecretGenerator as _, SessionId};
use portcullis_domain::token::{
    AccessClaims, TokenIssuer as _, TokenRejection, TokenVerifier as _,
};
use portcullis_domain::user::UserId;
use portcullis_infra::crypto::{
    Argon2Hasher, HashPoolConfig, JwtConfig, JwtTokens, RandomSecrets, SigningKeys,
    generate_ed25519_pem, generate_hs256_secret,
};
use proptest::prelude::*;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

// ---------------------------------------------------------------- helpers

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("portcullis-crypto-{}", Uuid::new_v4()));
        fs::create_dir(&path).unwrap();
        Self(path)
    }

    /// Where `load_or_create_ed25519` is pointed: not created yet.
    fn keys(&self) -> PathBuf {
        self.0.join("keys")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn pem_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "pem"))
        .collect();
    files.sort();
    files
}

fn key_pair_from_pem(path: &Path) -> Ed25519KeyPair {
    let text = fs::read_to_string(path).unwrap();
    let body: String = text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    Ed25519KeyPair::from_pkcs8(&STANDARD.decode(body).unwrap()).unwrap()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

fn access_claims(at: OffsetDateTime) -> AccessClaims {
    AccessClaims {
        user_id: UserId::new(),
        session_id: SessionId::new(),
        token_id: Uuid::new_v4(),
        issued_at: at,
        not_before: at,
        expires_at: at + Duration::minutes(15),
    }
}

fn sign_ed25519(pair: &Ed25519KeyPair, header: &str, claims: &str) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let signature = pair.sign(input.as_bytes());
    format!("{input}.{}", b64(signature.as_ref()))
}

fn sign_hs256(secret: &[u8], header: &str, claims: &str) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

/// The JSON segment `index` (0 header, 1 claims) of a compact token.
fn segment(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// An EdDSA setup with its key directory, and the private key in the clear
/// so tests can sign whatever they like with it.
struct Ed25519Fixture {
    _root: TempDir,
    dir: PathBuf,
    tokens: JwtTokens,
    pair: Ed25519KeyPair,
    kid: String,
}

impl Ed25519Fixture {
    fn new() -> Self {
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

    fn header(&self) -> String {
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": self.kid}).to_string()
    }

    /// Claims as we issue them, valid at `at`.
    fn claims(&self, at: OffsetDateTime) -> Value {
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

    fn sign(&self, header: &str, claims: &str) -> String {
        sign_ed25519(&self.pair, header, claims)
    }

    /// A correctly signed token with our header and `claims` edited by `edit`.
    fn with_claims(&self, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
        let mut claims = self.claims(now());
        edit(claims.as_object_mut().unwrap());
        self.sign(&self.header(), &claims.to_string())
    }

    /// A correctly signed token with `header` and valid claims.
    fn with_header(&self, header: Value) -> String {
        self.sign(&header.to_string(), &self.claims(now()).to_string())
    }

    fn verify(&self, token: &str) -> Result<AccessClaims, TokenRejection> {
        self.tokens.verify(token, now())
    }
}

// -------------------------------------------------------------- passwords

fn hasher() -> Argon2Hasher {
    Argon2Hasher::new(HashPoolConfig {
        workers: 2,
        queue: 8,
    })
    .unwrap()
}

fn password(text: &str) -> Password {
    Password::new(text.to_owned())
}

fn hash_with(params: argon2::Params, algorithm: argon2::Algorithm, text: &str) -> PasswordHash {
    use argon2::PasswordHasher as _;
    let phc = argon2::Argon2::new(algorithm, argon2::Version::V0x13, params)
        .hash_password(text.as_bytes())
        .unwrap();
    PasswordHash::new(phc.to_string())
}

#[tokio::test]
async fn a_hashed_password_verifies_and_needs_no_rehash() {
    let hasher = hasher();
    let secret = password("tulips in the rain 🌧 at noon");

    let hash = hasher.hash(&secret).await.unwrap();
    let verification = hasher.verify(&secret, &hash).await.unwrap();

    assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    assert!(verification.matches);
    assert!(!verification.needs_rehash);
}

#[tokio::test]
async fn two_hashes_of_one_password_differ_by_salt() {
    let hasher = hasher();
    let secret = password("tulips in the rain at noon");

    let first = hasher.hash(&secret).await.unwrap();
    let second = hasher.hash(&secret).await.unwrap();

    assert_ne!(first, second);
    // 16 bytes of salt: 22 characters of unpadded base64.
    let salt = first.as_str().split('$').nth(4).unwrap();
    assert_eq!(salt.len(), 22);
}

#[tokio::test]
async fn a_wrong_password_does_not_match() {
    let hasher = hasher();
    let hash = hasher
        .hash(&password("tulips in the rain at noon"))
        .await
        .unwrap();

    let verification = hasher
        .verify(&password("tulips in the rain at noon "), &hash)
        .await
        .unwrap();

    assert!(!verification.matches);
}

#[tokio::test]
async fn hashes_with_other_settings_match_and_ask_for_a_rehash() {
    let hasher = hasher();
    let text = "correct horse battery staple";
    let older = [
        hash_with(
            argon2::Params::new(4096, 2, 1, Some(32)).unwrap(),
            argon2::Algorithm::Argon2id,
            text,
        ),
        hash_with(
            argon2::Params::new(19_456, 3, 1, Some(32)).unwrap(),
            argon2::Algorithm::Argon2id,
            text,
        ),
        hash_with(
            argon2::Params::new(19_456, 2, 1, Some(32)).unwrap(),
            argon2::Algorithm::Argon2i,
            text,
        ),
    ];

    for hash in &older {
        let verification = hasher.verify(&password(text), hash).await.unwrap();
        assert!(verification.matches);
        assert!(verification.needs_rehash);
    }
}

#[tokio::test]
async fn a_stored_hash_that_is_not_phc_is_an_unexpected_error() {
    let hasher = hasher();
    let result = hasher
        .verify(
            &password("whatever it is"),
            &PasswordHash::new("not a hash".to_owned()),
        )
        .await;
    assert!(matches!(result, Err(HashError::Unexpected(_))));
}

#[tokio::test]
async fn the_dummy_verification_runs_a_full_verification() {
    let hasher = hasher();
    let secret = password("tulips in the rain at noon");
    let reference = hasher.hash(&secret).await.unwrap();
    // Warm up both paths once.
    hasher.verify(&secret, &reference).await.unwrap();
    hasher.verify_dummy(&secret).await.unwrap();

    // Medians of interleaved runs, so one scheduling hiccup cannot decide.
    let mut real = Vec::new();
    let mut dummy = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        hasher.verify(&secret, &reference).await.unwrap();
        real.push(started.elapsed());
        let started = Instant::now();
        hasher.verify_dummy(&secret).await.unwrap();
        dummy.push(started.elapsed());
    }
    real.sort();
    dummy.sort();
    let (real, dummy) = (real[3], dummy[3]);

    // Same parameters, same work: a dummy far cheaper than a real
    // verification would tell an attacker which emails exist.
    assert!(dummy * 3 > real, "dummy {dummy:?} vs real {real:?}");
}

#[tokio::test]
async fn a_full_pool_refuses_at_once_instead_of_queueing() {
    let hasher = Argon2Hasher::new(HashPoolConfig {
        workers: 1,
        queue: 1,
    })
    .unwrap();

    let mut requests = tokio::task::JoinSet::new();
    for i in 0..10 {
        let hasher = hasher.clone();
        requests.spawn(async move {
            hasher
                .hash(&password(&format!("password number {i}")))
                .await
        });
    }
    let outcomes = tokio::time::timeout(StdDuration::from_secs(60), requests.join_all())
        .await
        .expect("hash requests hung");

    let hashed = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    let refused = outcomes
        .iter()
        .filter(|outcome| {
            matches!(
                outcome,
                Err(HashError::Overloaded {
                    retry_after_secs: 1
                })
            )
        })
        .count();
    assert!(hashed >= 1, "nothing was hashed");
    assert!(refused >= 1, "nothing was refused");
    assert_eq!(hashed + refused, 10);
    assert_eq!(hasher.queue_depth(), 0);
}

#[tokio::test]
async fn queue_depth_counts_requests_in_flight() {
    let hasher = Argon2Hasher::new(HashPoolConfig {
        workers: 1,
        queue: 4,
    })
    .unwrap();
    assert_eq!(hasher.queue_depth(), 0);

    let mut requests = tokio::task::JoinSet::new();
    for i in 0..3 {
        let hasher = hasher.clone();
        requests.spawn(async move {
            hasher
                .hash(&password(&format!("password number {i}")))
                .await
        });
    }
    // The three are accepted within one scheduler tick; one hash takes
    // milliseconds, so at least two are still counted when we look.
    let deadline = Instant::now() + StdDuration::from_secs(5);
    let mut seen = 0;
    while seen < 2 && Instant::now() < deadline {
        tokio::task::yield_now().await;
        seen = seen.max(hasher.queue_depth());
    }
    assert!(seen >= 2, "queue depth never rose above {seen}");
    assert!(hasher.queue_depth() <= 3);

    for outcome in requests.join_all().await {
        outcome.unwrap();
    }
    assert_eq!(hasher.queue_depth(), 0);
}

#[test]
fn a_pool_without_workers_is_refused() {
    let result = Argon2Hasher::new(HashPoolConfig {
        workers: 0,
        queue: 4,
    });
    assert!(result.is_err());
}

#[test]
fn the_default_pool_has_a_worker_per_cpu_and_a_queue_of_64() {
    let config = HashPoolConfig::default();
    assert_eq!(
        config.workers,
        std::thread::available_parallelism().unwrap().get()
    );
    assert_eq!(config.queue, 64);
}

// ---------------------------------------------------------------- secrets

#[test]
fn refresh_tokens_are_256_random_bits_in_base64url() {
    let token = RandomSecrets.refresh_token();

    assert_eq!(token.expose().len(), 43);
    assert_eq!(URL_SAFE_NO_PAD.decode(token.expose()).unwrap().len(), 32);
    assert!(RefreshToken::parse(token.expose()).is_ok());
    assert_ne!(token.expose(), RandomSecrets.refresh_token().expose());
}

#[test]
fn refresh_token_digest_is_sha256_of_the_text() {
    let token = RandomSecrets.refresh_token();
    let digest = RandomSecrets.digest(&token);
    assert_eq!(
        digest.as_bytes(),
        &Sha256::digest(token.expose().as_bytes())[..]
    );
    assert_eq!(digest, RandomSecrets.digest(&token));
}

// ------------------------------------------------------------------- keys

#[test]
fn the_first_start_creates_a_private_key_and_the_next_reuses_it() {
    let root = TempDir::new();
    let dir = root.keys();

    let first = SigningKeys::load_or_create_ed25519(&dir).unwrap();
    let second = SigningKeys::load_or_create_ed25519(&dir).unwrap();

    assert_eq!(first.active_kid(), second.active_kid());
    assert_eq!(first.algorithm_name(), "EdDSA");
    let files = pem_files(&dir);
    assert_eq!(files.len(), 1);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&files[0]), 0o600);

    let name = files[0].file_name().unwrap().to_str().unwrap();
    // ed25519-yyyymmddThhmmssZ-<8 chars of kid>.pem
    assert!(name.starts_with("ed25519-"), "{name}");
    assert_eq!(
        name.len(),
        "ed25519-".len() + 16 + 1 + 8 + ".pem".len(),
        "{name}"
    );
    assert!(name.contains(&first.active_kid()[..8]), "{name}");
    let text = fs::read_to_string(&files[0]).unwrap();
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"));
}

#[test]
fn the_kid_is_the_rfc7638_thumbprint_and_the_jwks_publishes_the_key() {
    let root = TempDir::new();
    let keys = SigningKeys::load_or_create_ed25519(&root.keys()).unwrap();

    let jwks = keys.jwks();
    assert_eq!(jwks.keys.len(), 1);
    let jwk = &jwks.keys[0];
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, jwk.x);
    assert_eq!(jwk.kid, b64(Sha256::digest(canonical)));
    assert_eq!(jwk.kid, keys.active_kid());

    let published = serde_json::to_value(&jwks).unwrap();
    assert_eq!(
        published,
        json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "x": jwk.x, "kid": jwk.kid,
            "alg": "EdDSA", "use": "sig",
        }]})
    );
    // The public key only: 32 bytes.
    assert_eq!(URL_SAFE_NO_PAD.decode(&jwk.x).unwrap().len(), 32);
}

#[test]
fn rotation_signs_with_the_new_key_and_keeps_old_tokens_valid() {
    let root = TempDir::new();
    let dir = root.keys();
    let before = SigningKeys::load_or_create_ed25519(&dir).unwrap();
    let old_kid = before.active_kid().to_owned();
    let old_token = JwtTokens::new(before, JwtConfig::default())
        .issue(&access_claims(now()))
        .unwrap();

    let new_kid = SigningKeys::rotate_ed25519(&dir).unwrap();
    let after = SigningKeys::load_or_create_ed25519(&dir).unwrap();
    let tokens = JwtTokens::new(after.clone(), JwtConfig::default());
    let new_token = tokens.issue(&access_claims(now())).unwrap();

    assert_ne!(new_kid, old_kid);
    assert_eq!(after.active_kid(), new_kid);
    assert_eq!(segment(new_token.expose(), 0)["kid"], new_kid.as_str());
    assert_eq!(after.jwks().keys.len(), 2);
    assert!(tokens.verify(old_token.expose(), now()).is_ok());
    assert!(tokens.verify(new_token.expose(), now()).is_ok());
    assert!(pem_files(&dir).iter().all(|file| mode(file) == 0o600));
}

#[test]
fn several_rotations_within_a_second_keep_names_in_age_order() {
    let root = TempDir::new();
    let dir = root.keys();
    let kids: Vec<String> = (0..4)
        .map(|_| SigningKeys::rotate_ed25519(&dir).unwrap())
        .collect();

    let keys = SigningKeys::load_or_create_ed25519(&dir).unwrap();

    assert_eq!(keys.active_kid(), kids[3]);
    assert_eq!(keys.jwks().keys.len(), 4);
}

#[test]
fn removing_a_key_file_rejects_its_tokens_after_a_reload() {
    let root = TempDir::new();
    let dir = root.keys();
    let old = SigningKeys::load_or_create_ed25519(&dir).unwrap();
    let old_token = JwtTokens::new(old, JwtConfig::default())
        .issue(&access_claims(now()))
        .unwrap();
    SigningKeys::rotate_ed25519(&dir).unwrap();
    let oldest_file = pem_files(&dir).remove(0);

    fs::remove_file(oldest_file).unwrap();
    let reloaded = JwtTokens::new(
        SigningKeys::load_or_create_ed25519(&dir).unwrap(),
        JwtConfig::default(),
    );

    assert_eq!(
        reloaded.verify(old_token.expose(), now()).unwrap_err(),
        TokenRejection::UnknownKey
    );
    let fresh = reloaded.issue(&access_claims(now())).unwrap();
    assert!(reloaded.verify(fresh.expose(), now()).is_ok());
}

#[test]
fn a_corrupt_key_file_is_an_error_naming_the_file() {
    let root = TempDir::new();
    let dir = root.keys();
    SigningKeys::load_or_create_ed25519(&dir).unwrap();
    let bad = dir.join("ed25519-20990101T000000Z-broken00.pem");
    fs::write(
        &bad,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();

    let error = SigningKeys::load_or_create_ed25519(&dir).unwrap_err();

    assert!(format!("{error:#}").contains("broken00.pem"), "{error:#}");
}

#[test]
fn a_key_file_that_is_not_pem_is_an_error_naming_the_file() {
    let root = TempDir::new();
    let dir = root.keys();
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("garbage.pem"), b"\x00\x01 not a key").unwrap();

    let error = SigningKeys::load_or_create_ed25519(&dir).unwrap_err();

    assert!(format!("{error:#}").contains("garbage.pem"), "{error:#}");
}

#[test]
fn a_key_readable_by_others_loads_with_a_warning() {
    let root = TempDir::new();
    let dir = root.keys();
    let created = SigningKeys::load_or_create_ed25519(&dir).unwrap();
    let file = pem_files(&dir).remove(0);
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();

    let loaded = SigningKeys::load_or_create_ed25519(&dir).unwrap();

    assert_eq!(loaded.active_kid(), created.active_kid());
}

#[test]
fn an_operator_supplied_key_is_used() {
    let root = TempDir::new();
    let dir = root.keys();
    fs::create_dir(&dir).unwrap();
    let pem = generate_ed25519_pem().unwrap();
    fs::write(dir.join("ed25519-20260101T000000Z-operator.pem"), &pem).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();

    let keys = SigningKeys::load_or_create_ed25519(&dir).unwrap();

    assert_eq!(pem_files(&dir).len(), 1, "no extra key may be generated");
    let pair = key_pair_from_pem(&pem_files(&dir)[0]);
    assert_eq!(keys.jwks().keys[0].x, b64(pair.public_key().as_ref()));
}

#[test]
fn key_files_interoperate_with_standard_pkcs8_tooling() {
    let fx = Ed25519Fixture::new();
    // jsonwebtoken's own PEM reader takes our (PKCS#8 v2) file as it is.
    let pem = fs::read(&pem_files(&fx.dir)[0]).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some(fx.kid.clone());
    let token = jsonwebtoken::encode(
        &header,
        &fx.claims(now()),
        &jsonwebtoken::EncodingKey::from_ed_pem(&pem).unwrap(),
    )
    .unwrap();
    assert!(fx.verify(&token).is_ok());

    // A PKCS#8 v1 key, as `openssl genpkey -algorithm ED25519` writes it.
    let v1 = Ed25519KeyPair::generate_pkcs8v1(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
    let body = STANDARD.encode(v1.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).unwrap())
        .collect();
    let openssl_pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    fs::write(
        fx.dir.join("ed25519-20990101T000000Z-openssl0.pem"),
        openssl_pem,
    )
    .unwrap();
    let keys = SigningKeys::load_or_create_ed25519(&fx.dir).unwrap();
    let expected = Ed25519KeyPair::from_pkcs8(v1.as_ref()).unwrap();
    assert_eq!(keys.jwks().keys[0].x, b64(expected.public_key().as_ref()));
}

#[test]
fn a_short_hs256_secret_is_refused() {
    let error = SigningKeys::hs256(&[7u8; 31]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "PORTCULLIS_JWT_SECRET must be at least 32 bytes"
    );
}

#[test]
fn hs256_publishes_no_key_and_derives_its_kid_from_the_secret() {
    let secret = generate_hs256_secret();
    assert_eq!(secret.len(), 43);
    assert_eq!(URL_SAFE_NO_PAD.decode(&secret).unwrap().len(), 32);

    let keys = SigningKeys::hs256(secret.as_bytes()).unwrap();

    assert_eq!(keys.algorithm_name(), "HS256");
    assert!(keys.jwks().keys.is_empty());
    let expected = format!("hs256-{}", &b64(Sha256::digest(secret.as_bytes()))[..16]);
    assert_eq!(keys.active_kid(), expected);
}

#[test]
fn generated_pem_is_pkcs8_ed25519() {
    let pem = generate_ed25519_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert!(pem.ends_with("-----END PRIVATE KEY-----\n"));
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(Ed25519KeyPair::from_pkcs8(&STANDARD.decode(body).unwrap()).is_ok());
}

// ------------------------------------------------------------ access tokens

#[test]
fn an_issued_token_verifies_to_the_same_claims() {
    let fx = Ed25519Fixture::new();
    let claims = access_claims(now());

    let token = fx.tokens.issue(&claims).unwrap();
    let verified = fx.verify(token.expose()).unwrap();

    assert_eq!(verified, claims);
    assert_eq!(
        segment(token.expose(), 0),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": fx.kid})
    );
    let body = segment(token.expose(), 1);
    assert_eq!(body["iss"], "portcullis");
    assert_eq!(body["aud"], "portcullis-api");
    assert_eq!(body["sub"], claims.user_id.as_uuid().to_string());
    assert_eq!(body["sid"], claims.session_id.as_uuid().to_string());
    assert_eq!(body["jti"], claims.token_id.to_string());
    assert_eq!(body["exp"], claims.expires_at.unix_timestamp());
    assert!(body["iat"].is_i64() && body["nbf"].is_i64());
}

#[test]
fn a_hand_signed_token_of_our_shape_verifies() {
    // Proves the helpers below build tokens that fail only for the reason
    // each test introduces.
    let fx = Ed25519Fixture::new();
    assert!(fx.verify(&fx.with_claims(|_| {})).is_ok());
    for typ in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/AT+JWT",
    ] {
        let token = fx.with_header(json!({"alg": "EdDSA", "typ": typ, "kid": fx.kid}));
        assert!(fx.verify(&token).is_ok(), "{typ}");
    }
}

#[test]
fn alg_none_is_rejected_in_any_case() {
    let fx = Ed25519Fixture::new();
    let claims = fx.claims(now()).to_string();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": fx.kid}).to_string();
        let unsigned = format!("{}.{}.", b64(&header), b64(&claims));
        let with_junk = format!("{unsigned}AAAA");
        let with_real = fx.sign(&header, &claims);

        assert_eq!(
            fx.verify(&unsigned).unwrap_err(),
            TokenRejection::Malformed,
            "{alg}"
        );
        assert_eq!(
            fx.verify(&with_junk).unwrap_err(),
            TokenRejection::BadHeader,
            "{alg}"
        );
        assert_eq!(
            fx.verify(&with_real).unwrap_err(),
            TokenRejection::BadHeader,
            "{alg}"
        );
    }
}

#[test]
fn hs256_signed_with_our_public_key_is_rejected() {
    let fx = Ed25519Fixture::new();
    let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": fx.kid}).to_string();
    let claims = fx.claims(now()).to_string();
    let public = fx.pair.public_key().as_ref().to_vec();
    let jwks_x = b64(&public);

    for secret in [public.as_slice(), jwks_x.as_bytes()] {
        let token = sign_hs256(secret, &header, &claims);
        assert_eq!(fx.verify(&token).unwrap_err(), TokenRejection::BadHeader);
    }
}

#[test]
fn any_other_algorithm_is_rejected() {
    let fx = Ed25519Fixture::new();
    for alg in [
        "RS256", "ES256", "PS256", "HS512", "eddsa", "EDDSA", "EdDSA ", "Ed25519", "",
    ] {
        let token = fx.with_header(json!({"alg": alg, "typ": "at+jwt", "kid": fx.kid}));
        assert_eq!(
            fx.verify(&token).unwrap_err(),
            TokenRejection::BadHeader,
            "{alg:?}"
        );
    }
    let token = fx.with_header(json!({"alg": ["EdDSA"], "typ": "at+jwt", "kid": fx.kid}));
    assert_eq!(fx.verify(&token).unwrap_err(), TokenRejection::BadHeader);
    let token = fx.with_header(json!({"typ": "at+jwt", "kid": fx.kid}));
    assert_eq!(fx.verify(&token).unwrap_err(), TokenRejection::BadHeader);
}

#[test]
fn header_members_that_choose_a_key_are_rejected() {
    let fx = Ed25519Fixture::new();
    // An attacker's own key, offered in every way JOSE allows.
    let attacker = Ed25519KeyPair::generate().unwrap();
    let attacker_jwk =
        json!({"kty": "OKP", "crv": "Ed25519", "x": b64(attacker.public_key().as_ref())});
    let members = [
        ("jwk", attacker_jwk),
        ("jku", json!("https://attacker.example/jwks.json")),
        ("x5u", json!("https://attacker.example/cert.pem")),
        (
            "x5c",
            json!(["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]),
        ),
        ("crit", json!(["exp"])),
        ("cty", json!("JWT")),
    ];
    for (name, value) in members {
        let mut header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": fx.kid});
        header[name] = value;
        let claims = fx.claims(now()).to_string();
        // Signed by us (only the header is wrong) and by the attacker.
        let ours = fx.sign(&header.to_string(), &claims);
        let theirs = sign_ed25519(&attacker, &header.to_string(), &claims);
        assert_eq!(
            fx.verify(&ours).unwrap_err(),
            TokenRejection::BadHeader,
            "{name}"
        );
        assert_eq!(
            fx.verify(&theirs).unwrap_err(),
            TokenRejection::BadHeader,
            "{name}"
        );
    }
}

#[test]
fn a_kid_that_is_not_exactly_ours_is_an_unknown_key() {
    let fx = Ed25519Fixture::new();
    let almost = [
        "../../etc/passwd".to_owned(),
        "/dev/null".to_owned(),
        "unknown".to_owned(),
        String::new(),
        format!("{} ", fx.kid),
        fx.kid.to_uppercase(),
        fx.kid[..20].to_owned(),
        format!("{}' OR '1'='1", fx.kid),
    ];
    for kid in almost {
        let token = fx.with_header(json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid}));
        assert_eq!(
            fx.verify(&token).unwrap_err(),
            TokenRejection::UnknownKey,
            "{kid:?}"
        );
    }
    for header in [
        json!({"alg": "EdDSA", "typ": "at+jwt"}),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": null}),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": 1}),
    ] {
        assert_eq!(
            fx.verify(&fx.with_header(header)).unwrap_err(),
            TokenRejection::BadHeader
        );
    }
}

#[test]
fn a_token_signed_by_another_key_with_our_kid_is_rejected() {
    let fx = Ed25519Fixture::new();
    let other = Ed25519KeyPair::generate().unwrap();
    let token = sign_ed25519(&other, &fx.header(), &fx.claims(now()).to_string());
    assert_eq!(fx.verify(&token).unwrap_err(), TokenRejection::BadSignature);
}

#[test]
fn a_tampered_signature_is_rejected() {
    let fx = Ed25519Fixture::new();
    let token = fx.tokens.issue(&access_claims(now())).unwrap();
    let token = token.expose();
    let (signing_input, signature) = token.rsplit_once('.').unwrap();

    let mut flipped = URL_SAFE_NO_PAD.decode(signature).unwrap();
    flipped[10] ^= 0x01;
    let flipped = format!("{signing_input}.{}", b64(&flipped));
    assert_eq!(
        fx.verify(&flipped).unwrap_err(),
        TokenRejection::BadSignature
    );

    let stripped = format!("{signing_input}.");
    assert_eq!(fx.verify(&stripped).unwrap_err(), TokenRejection::Malformed);

    for keep in [1, 43, 84, 85] {
        let truncated = format!("{signing_input}.{}", &signature[..keep]);
        let rejection = fx.verify(&truncated).unwrap_err();
        assert!(
            matches!(
                rejection,
                TokenRejection::Malformed | TokenRejection::BadSignature
            ),
            "{keep}: {rejection:?}"
        );
    }
    let short_but_decodable = format!(
        "{signing_input}.{}",
        b64(&URL_SAFE_NO_PAD.decode(signature).unwrap()[..63])
    );
    assert_eq!(
        fx.verify(&short_but_decodable).unwrap_err(),
        TokenRejection::BadSignature
    );
}

#[test]
fn changed_claims_under_a_kept_signature_are_rejected() {
    let fx = Ed25519Fixture::new();
    let token = fx.tokens.issue(&access_claims(now())).unwrap();
    let mut parts: Vec<String> = token.expose().split('.').map(str::to_owned).collect();
    let mut claims = segment(token.expose(), 1);
    claims["sub"] = json!(Uuid::new_v4());
    parts[1] = b64(claims.to_string());

    assert_eq!(
        fx.verify(&parts.join(".")).unwrap_err(),
        TokenRejection::BadSignature
    );
}

#[test]
fn extra_dots_whitespace_and_padding_are_malformed() {
    let fx = Ed25519Fixture::new();
    let token = fx.tokens.issue(&access_claims(now())).unwrap();
    let token = token.expose();
    let (header, rest) = token.split_once('.').unwrap();
    let variants = [
        format!("{token}."),
        format!("{token}.e30"),
        format!("{header}..{rest}"),
        format!(".{token}"),
        format!(" {token}"),
        format!("{token} "),
        format!("{token}\n"),
        format!("\t{token}"),
        format!("{header}. {rest}"),
        format!("Bearer {token}"),
        format!("{header}=.{rest}"),
        format!("{token}=="),
        token.replace('-', "+").replace('_', "/") + "+",
    ];
    for variant in variants {
        assert_eq!(
            fx.verify(&variant).unwrap_err(),
            TokenRejection::Malformed,
            "{variant:?}"
        );
    }
}

#[test]
fn expiry_is_required_numeric_and_enforced() {
    let fx = Ed25519Fixture::new();
    let t = now().unix_timestamp();

    let missing = fx.with_claims(|c| {
        c.remove("exp");
    });
    let past = fx.with_claims(|c| {
        c.insert("iat".into(), json!(t - 1000));
        c.insert("nbf".into(), json!(t - 1000));
        c.insert("exp".into(), json!(t - 60));
    });
    let as_string = fx.with_claims(|c| {
        c.insert("exp".into(), json!((t + 900).to_string()));
    });
    let as_float = fx.with_claims(|c| {
        c.insert("exp".into(), json!(t as f64 + 900.5));
    });
    let negative = fx.with_claims(|c| {
        c.insert("exp".into(), json!(-1));
    });
    let within_leeway = fx.with_claims(|c| {
        c.insert("iat".into(), json!(t - 1000));
        c.insert("nbf".into(), json!(t - 1000));
        c.insert("exp".into(), json!(t - 2));
    });

    assert_eq!(fx.verify(&missing).unwrap_err(), TokenRejection::BadClaims);
    assert_eq!(fx.verify(&past).unwrap_err(), TokenRejection::Expired);
    assert_eq!(
        fx.verify(&as_string).unwrap_err(),
        TokenRejection::BadClaims
    );
    assert_eq!(fx.verify(&as_float).unwrap_err(), TokenRejection::BadClaims);
    assert_eq!(fx.verify(&negative).unwrap_err(), TokenRejection::BadClaims);
    assert!(
        fx.verify(&within_leeway).is_ok(),
        "5 s of leeway by default"
    );
}

#[test]
fn not_before_and_issued_at_in_the_future_are_rejected() {
    let fx = Ed25519Fixture::new();
    let t = now().unix_timestamp();

    let nbf_future = fx.with_claims(|c| {
        c.insert("nbf".into(), json!(t + 120));
    });
    let iat_future = fx.with_claims(|c| {
        c.insert("iat".into(), json!(t + 120));
    });
    let nbf_missing = fx.with_claims(|c| {
        c.remove("nbf");
    });
    let iat_missing = fx.with_claims(|c| {
        c.remove("iat");
    });

    assert_eq!(
        fx.verify(&nbf_future).unwrap_err(),
        TokenRejection::NotYetValid
    );
    assert_eq!(
        fx.verify(&iat_future).unwrap_err(),
        TokenRejection::NotYetValid
    );
    assert_eq!(
        fx.verify(&nbf_missing).unwrap_err(),
        TokenRejection::BadClaims
    );
    assert_eq!(
        fx.verify(&iat_missing).unwrap_err(),
        TokenRejection::BadClaims
    );
}

#[test]
fn issuer_and_audience_must_be_ours() {
    let fx = Ed25519Fixture::new();
    let cases: [(&str, Option<Value>); 7] = [
        ("iss", Some(json!("someone-else"))),
        ("iss", None),
        ("iss", Some(json!(["portcullis"]))),
        ("aud", Some(json!("another-api"))),
        ("aud", None),
        ("aud", Some(json!(["portcullis-api", "another-api"]))),
        ("aud", Some(json!(""))),
    ];
    for (claim, value) in cases {
        let token = fx.with_claims(|c| match &value {
            Some(value) => {
                c.insert(claim.into(), value.clone());
            }
            None => {
                c.remove(claim);
            }
        });
        assert_eq!(
            fx.verify(&token).unwrap_err(),
            TokenRejection::BadClaims,
            "{claim} {value:?}"
        );
    }
}

#[test]
fn subject_session_and_token_ids_must_be_uuids() {
    let fx = Ed25519Fixture::new();
    for claim in ["sub", "sid", "jti"] {
        let missing = fx.with_claims(|c| {
            c.remove(claim);
        });
        let not_uuid = fx.with_claims(|c| {
            c.insert(claim.into(), json!("alice@example.com"));
        });
        let number = fx.with_claims(|c| {
            c.insert(claim.into(), json!(42));
        });
        for token in [missing, not_uuid, number] {
            assert_eq!(
                fx.verify(&token).unwrap_err(),
                TokenRejection::BadClaims,
                "{claim}"
            );
        }
    }
}

#[test]
fn typ_must_be_at_jwt() {
    let fx = Ed25519Fixture::new();
    for typ in [
        None,
        Some("JWT"),
        Some("jwt"),
        Some("at+jwt "),
        Some("application/jwt"),
        Some(""),
    ] {
        let mut header = json!({"alg": "EdDSA", "kid": fx.kid});
        if let Some(typ) = typ {
            header["typ"] = json!(typ);
        }
        assert_eq!(
            fx.verify(&fx.with_header(header)).unwrap_err(),
            TokenRejection::BadHeader,
            "{typ:?}"
        );
    }
}

#[test]
fn duplicate_claims_or_header_members_are_rejected() {
    let fx = Ed25519Fixture::new();
    let claims = fx.claims(now()).to_string();
    let twice = claims.replacen('{', &format!(r#"{{"sub":"{}","#, Uuid::new_v4()), 1);
    assert!(twice.matches("\"sub\"").count() == 2);
    let token = fx.sign(&fx.header(), &twice);
    assert_eq!(fx.verify(&token).unwrap_err(), TokenRejection::BadClaims);

    let header = format!(
        r#"{{"alg":"EdDSA","alg":"EdDSA","typ":"at+jwt","kid":"{}"}}"#,
        fx.kid
    );
    let token = fx.sign(&header, &claims);
    assert_eq!(fx.verify(&token).unwrap_err(), TokenRejection::BadHeader);
}

#[test]
fn a_megabyte_token_is_refused_without_work() {
    let fx = Ed25519Fixture::new();
    let valid = fx.tokens.issue(&access_claims(now())).unwrap();
    let huge = format!("{}{}", valid.expose(), "A".repeat(1024 * 1024));

    let started = Instant::now();
    let rejection = fx.verify(&huge).unwrap_err();

    assert_eq!(rejection, TokenRejection::Malformed);
    assert!(started.elapsed() < StdDuration::from_millis(100));
    let just_over = "A".repeat(JwtTokens::MAX_TOKEN_LEN + 1);
    assert_eq!(
        fx.verify(&just_over).unwrap_err(),
        TokenRejection::Malformed
    );
}

#[test]
fn a_refresh_token_is_not_a_bearer_token() {
    let fx = Ed25519Fixture::new();
    let refresh = RandomSecrets.refresh_token();
    assert_eq!(
        fx.verify(refresh.expose()).unwrap_err(),
        TokenRejection::Malformed
    );
}

#[test]
fn time_checks_use_the_given_now() {
    let fx = Ed25519Fixture::new();
    let token = fx.tokens.issue(&access_claims(now())).unwrap();

    let later = fx.tokens.verify(token.expose(), now() + Duration::hours(1));
    let earlier = fx.tokens.verify(token.expose(), now() - Duration::hours(1));

    assert_eq!(later.unwrap_err(), TokenRejection::Expired);
    assert_eq!(earlier.unwrap_err(), TokenRejection::NotYetValid);
}

#[test]
fn leeway_is_capped_at_thirty_seconds() {
    let fx = Ed25519Fixture::new();
    let keys = SigningKeys::load_or_create_ed25519(&fx.dir).unwrap();
    let lenient = JwtTokens::new(
        keys,
        JwtConfig {
            leeway_secs: 3600,
            ..JwtConfig::default()
        },
    );
    let t = now().unix_timestamp();
    let expired = fx.with_claims(|c| {
        c.insert("iat".into(), json!(t - 1000));
        c.insert("nbf".into(), json!(t - 1000));
        c.insert("exp".into(), json!(t - 60));
    });
    let recently = fx.with_claims(|c| {
        c.insert("iat".into(), json!(t - 1000));
        c.insert("nbf".into(), json!(t - 1000));
        c.insert("exp".into(), json!(t - 20));
    });

    assert_eq!(
        lenient.verify(&expired, now()).unwrap_err(),
        TokenRejection::Expired
    );
    assert!(lenient.verify(&recently, now()).is_ok());
}

#[test]
fn tokens_of_another_issuer_configuration_are_rejected() {
    let fx = Ed25519Fixture::new();
    let keys = SigningKeys::load_or_create_ed25519(&fx.dir).unwrap();
    let other = JwtTokens::new(
        keys,
        JwtConfig {
            issuer: "someone-else".to_owned(),
            ..JwtConfig::default()
        },
    );
    let token = other.issue(&access_claims(now())).unwrap();
    assert_eq!(
        fx.verify(token.expose()).unwrap_err(),
        TokenRejection::BadClaims
    );
}

#[test]
fn hs256_mode_signs_verifies_and_pins_its_algorithm() {
    let secret = generate_hs256_secret();
    let keys = SigningKeys::hs256(secret.as_bytes()).unwrap();
    let kid = keys.active_kid().to_owned();
    let tokens = JwtTokens::new(keys, JwtConfig::default());
    let claims = access_claims(now());

    let token = tokens.issue(&claims).unwrap();
    assert_eq!(tokens.verify(token.expose(), now()).unwrap(), claims);
    assert_eq!(
        segment(token.expose(), 0),
        json!({"alg": "HS256", "typ": "at+jwt", "kid": kid})
    );

    let fx = Ed25519Fixture::new();
    let body = fx.claims(now()).to_string();
    let eddsa = fx.sign(
        &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid}).to_string(),
        &body,
    );
    assert_eq!(
        tokens.verify(&eddsa, now()).unwrap_err(),
        TokenRejection::BadHeader
    );

    let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": kid}).to_string();
    let wrong_secret = sign_hs256(generate_hs256_secret().as_bytes(), &header, &body);
    assert_eq!(
        tokens.verify(&wrong_secret, now()).unwrap_err(),
        TokenRejection::BadSignature
    );
    let right_secret = sign_hs256(secret.as_bytes(), &header, &body);
    assert!(tokens.verify(&right_secret, now()).is_ok());
    let none = format!(
        "{}.{}.AAAA",
        b64(json!({"alg": "none", "typ": "at+jwt", "kid": kid}).to_string()),
        b64(&body)
    );
    assert_eq!(
        tokens.verify(&none, now()).unwrap_err(),
        TokenRejection::BadHeader
    );
}

// -------------------------------------------------------------- properties

/// One EdDSA setup for every case, with its private key in memory; its
/// key directory is gone already.
struct PropertyFixture {
    tokens: JwtTokens,
    pair: Ed25519KeyPair,
    kid: String,
    valid: String,
}

static PROPERTY: LazyLock<PropertyFixture> = LazyLock::new(|| {
    let root = TempDir::new();
    let keys = SigningKeys::load_or_create_ed25519(&root.keys()).unwrap();
    let pair = key_pair_from_pem(&pem_files(&root.keys())[0]);
    let kid = keys.active_kid().to_owned();
    let tokens = JwtTokens::new(keys, JwtConfig::default());
    let valid = tokens
        .issue(&access_claims(now()))
        .unwrap()
        .expose()
        .to_owned();
    PropertyFixture {
        tokens,
        pair,
        kid,
        valid,
    }
});

fn any_json_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,40}".prop_map(Value::from),
        Just(Value::from(Uuid::new_v4().to_string())),
        Just(json!(["portcullis-api"])),
        Just(json!({})),
    ]
}

/// 512 cases per property in CI; `PROPTEST_CASES=100000` for a long run.
fn fuzz_cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(512)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(fuzz_cases()))]

    #[test]
    fn arbitrary_text_never_verifies(text in "\\PC{0,600}") {
        prop_assert!(PROPERTY.tokens.verify(&text, now()).is_err());
    }

    #[test]
    fn arbitrary_dotted_base64url_never_verifies(
        header in "[A-Za-z0-9_-]{0,200}",
        payload in "[A-Za-z0-9_-]{0,400}",
        signature in "[A-Za-z0-9_-]{0,120}",
        dots in "[.]{0,3}",
    ) {
        let token = format!("{header}.{payload}.{signature}{dots}");
        prop_assert!(PROPERTY.tokens.verify(&token, now()).is_err());
    }

    #[test]
    fn a_real_header_with_arbitrary_rest_never_verifies(
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        signature in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let header = PROPERTY.valid.split('.').next().unwrap();
        let token = format!("{header}.{}.{}", b64(&payload), b64(&signature));
        prop_assert!(PROPERTY.tokens.verify(&token, now()).is_err());
    }

    #[test]
    fn any_one_changed_character_breaks_a_valid_token(
        position in any::<prop::sample::Index>(),
        replacement in "[A-Za-z0-9_.=+/ -]",
    ) {
        let valid = &PROPERTY.valid;
        let index = position.index(valid.len());
        prop_assume!(valid[index..=index] != replacement);
        let token = format!("{}{replacement}{}", &valid[..index], &valid[index + 1..]);
        prop_assert!(PROPERTY.tokens.verify(&token, now()).is_err());
    }

    #[test]
    fn correctly_signed_arbitrary_text_never_verifies(claims in "\\PC{0,300}") {
        let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": PROPERTY.kid}).to_string();
        let token = sign_ed25519(&PROPERTY.pair, &header, &claims);
        prop_assert!(PROPERTY.tokens.verify(&token, now()).is_err());
    }

    #[test]
    fn correctly_signed_odd_claim_values_never_panic(
        claim in prop::sample::select(vec!["iss", "aud", "sub", "sid", "jti", "iat", "nbf", "exp", "extra"]),
        value in any_json_value(),
    ) {
        let t = now().unix_timestamp();
        let mut claims = json!({
            "iss": "portcullis", "aud": "portcullis-api",
            "sub": Uuid::new_v4(), "sid": Uuid::new_v4(), "jti": Uuid::new_v4(),
            "iat": t, "nbf": t, "exp": t + 900,
        });
        claims[claim] = value;
        let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": PROPERTY.kid}).to_string();
        let token = sign_ed25519(&PROPERTY.pair, &header, &claims.to_string());
        // Some values are fine (an extra claim, a far-off exp); the point is
        // that none of them panics, and that a verified token says what we signed.
        if let Ok(verified) = PROPERTY.tokens.verify(&token, now()) {
            prop_assert_eq!(verified.user_id.as_uuid().to_string(), claims["sub"].as_str().unwrap());
        }
    }

    #[test]
    fn correctly_signed_odd_headers_never_verify(
        member in prop::sample::select(vec!["alg", "typ", "kid", "jwk", "jku", "x5u", "x5c", "crit", "b64", "zip"]),
        value in any_json_value(),
    ) {
        let mut header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": PROPERTY.kid});
        let original = header.get(member).cloned();
        prop_assume!(original.as_ref() != Some(&value));
        header[member] = value.clone();
        let token = sign_ed25519(&PROPERTY.pair, &header.to_string(), &PROPERTY.valid_claims());
        let outcome = PROPERTY.tokens.verify(&token, now());
        // Only another spelling of `typ` may pass.
        let typ_variant = member == "typ"
            && value.as_str().is_some_and(|t| t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt"));
        prop_assert_eq!(outcome.is_ok(), typ_variant);
    }
}

impl PropertyFixture {
    fn valid_claims(&self) -> String {
        let part = self.valid.split('.').nth(1).unwrap();
        String::from_utf8(URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }
}
