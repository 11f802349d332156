//! Refresh-token secrets: 256 bits from the operating system's CSPRNG, and
//! the SHA-256 digest under which they are stored.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_domain::session::{RefreshToken, SecretGenerator, TokenHash};
use rand::{RngCore as _, TryRngCore as _};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// The [`SecretGenerator`] of production.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomSecrets;

impl SecretGenerator for RandomSecrets {
    fn refresh_token(&self) -> RefreshToken {
        RefreshToken::from_generated(random_base64url_32())
    }

    fn digest(&self, token: &RefreshToken) -> TokenHash {
        // A plain hash is enough: the input has 256 bits of entropy, so there
        // is nothing to brute-force and no need for a slow or salted hash.
        TokenHash::from_bytes(Sha256::digest(token.expose().as_bytes()).to_vec())
    }
}

/// 32 random bytes as 43 characters of unpadded base64url.
pub(crate) fn random_base64url_32() -> String {
    let mut bytes = Zeroizing::new([0u8; 32]);
    fill_random(bytes.as_mut());
    URL_SAFE_NO_PAD.encode(bytes.as_ref())
}

/// Fills `buf` from the OS generator.
///
/// The port is infallible, so a failing OS generator (which Linux's
/// `getrandom` does not do once booted) falls back to the thread-local
/// ChaCha generator, itself seeded from the OS. Never to anything weaker.
pub(crate) fn fill_random(buf: &mut [u8]) {
    if let Err(error) = rand::rngs::OsRng.try_fill_bytes(buf) {
        tracing::error!(%error, "the OS random generator failed; using the thread generator");
        rand::rng().fill_bytes(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_base64url_characters_and_differ() {
        let first = RandomSecrets.refresh_token();
        let second = RandomSecrets.refresh_token();
        assert_eq!(first.expose().len(), RefreshToken::ENCODED_LEN);
        assert!(RefreshToken::parse(first.expose()).is_ok());
        assert_ne!(first.expose(), second.expose());
    }

    #[test]
    fn digest_is_sha256_of_the_token_text() {
        let token = RefreshToken::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        let expected = Sha256::digest(b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(RandomSecrets.digest(&token).as_bytes(), &expected[..]);
    }
}
