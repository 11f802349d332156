//! `RandomSecrets`: refresh tokens and their digests.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_domain::session::{RefreshToken, SecretGenerator as _};
use portcullis_infra::crypto::RandomSecrets;
use sha2::{Digest as _, Sha256};

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
