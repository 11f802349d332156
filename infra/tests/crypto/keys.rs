//! `SigningKeys`: Ed25519 key files on disk (creation, kid, JWKS, rotation,
//! removal, bad files, operator keys, PKCS#8 interop) and HS256 secrets.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use portcullis_domain::token::{TokenIssuer as _, TokenRejection, TokenVerifier as _};
use portcullis_infra::crypto::{
    JwtConfig, JwtTokens, SigningKeys, generate_ed25519_pem, generate_hs256_secret,
};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::support::{
    Ed25519Fixture, TempDir, access_claims, b64, key_pair_from_pem, mode, now, pem_files, segment,
};

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
    fs::write(
        dir.join("ed25519-20260101T000000Z-garbage0.pem"),
        b"\x00\x01 not a key",
    )
    .unwrap();

    let error = SigningKeys::load_or_create_ed25519(&dir).unwrap_err();

    assert!(format!("{error:#}").contains("garbage0.pem"), "{error:#}");
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

/// The error of loading `dir`, as the operator reads it.
fn refusal(dir: &std::path::Path) -> String {
    let error = SigningKeys::load_or_create_ed25519(dir).unwrap_err();
    let text = format!("{error:#}");
    assert_eq!(text.lines().count(), 1, "{text}");
    text
}

#[test]
fn a_missing_keys_dir_and_its_parent_are_created_private() {
    let root = TempDir::new();
    let dir = root.keys().join("nested").join("keys");

    SigningKeys::load_or_create_ed25519(&dir).unwrap();

    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(dir.parent().unwrap()), 0o700);
}

#[test]
fn a_keys_dir_writable_by_group_or_others_refuses_to_load() {
    for open in [0o777, 0o770, 0o702] {
        let root = TempDir::new();
        let dir = root.keys();
        SigningKeys::load_or_create_ed25519(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(open)).unwrap();

        let text = refusal(&dir);

        assert!(text.contains("writable by group or others"), "{text}");
        assert!(text.contains(&dir.display().to_string()), "{text}");
    }
}

#[test]
fn a_planted_symlink_key_is_refused() {
    let root = TempDir::new();
    let dir = root.keys();
    SigningKeys::load_or_create_ed25519(&dir).unwrap();
    let elsewhere = root.keys().with_file_name("planted.pem");
    fs::write(&elsewhere, generate_ed25519_pem().unwrap()).unwrap();
    let link = dir.join("ed25519-20991231T235959Z-planted0.pem");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();

    let text = refusal(&dir);

    assert!(text.contains("symlink"), "{text}");
    assert!(text.contains("planted0.pem"), "{text}");
}

#[test]
fn a_symlinked_keys_dir_is_refused() {
    let root = TempDir::new();
    let real = root.keys().with_file_name("real-keys");
    SigningKeys::load_or_create_ed25519(&real).unwrap();
    let dir = root.keys();
    std::os::unix::fs::symlink(&real, &dir).unwrap();

    let text = refusal(&dir);

    assert!(text.contains("symlink"), "{text}");
}

#[test]
fn a_key_file_writable_by_others_is_refused() {
    let root = TempDir::new();
    let dir = root.keys();
    SigningKeys::load_or_create_ed25519(&dir).unwrap();
    let file = pem_files(&dir).remove(0);
    fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();

    let text = refusal(&dir);

    assert!(text.contains("writable by group or others"), "{text}");
}

#[test]
fn anything_but_our_key_files_in_the_keys_dir_is_refused() {
    for stray in ["notes.txt", "backup.pem", ".hidden", "ed25519-old.pem.bak"] {
        let root = TempDir::new();
        let dir = root.keys();
        SigningKeys::load_or_create_ed25519(&dir).unwrap();
        fs::write(dir.join(stray), b"x").unwrap();

        let text = refusal(&dir);

        assert!(text.contains(stray), "{stray}: {text}");
    }
    // A subdirectory, even named like a key, is not a key file either.
    let root = TempDir::new();
    let dir = root.keys();
    SigningKeys::load_or_create_ed25519(&dir).unwrap();
    fs::create_dir(dir.join("ed25519-20991231T235959Z-adirect0.pem")).unwrap();
    assert!(refusal(&dir).contains("adirect0.pem"));
}

#[test]
fn a_rotation_left_over_temporary_file_is_skipped() {
    let root = TempDir::new();
    let dir = root.keys();
    let created = SigningKeys::load_or_create_ed25519(&dir).unwrap();
    fs::write(
        dir.join(".ed25519-20991231T235959Z-crashed0.pem.tmp"),
        b"half a key",
    )
    .unwrap();

    let loaded = SigningKeys::load_or_create_ed25519(&dir).unwrap();

    assert_eq!(loaded.active_kid(), created.active_kid());
}
