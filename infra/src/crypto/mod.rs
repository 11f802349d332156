//! Cryptography adapters: argon2id password hashing, refresh-token secrets,
//! signing keys and JWT access tokens.
//!
//! Only this module touches `argon2`, `jsonwebtoken`, `aws-lc-rs` and the
//! random generator; the domain sees its ports (`PasswordHasher`,
//! `SecretGenerator`, `TokenIssuer`, `TokenVerifier`). No secret (password,
//! hash, token, key) is ever logged from here.

mod data_key;
mod jwt;
pub(crate) mod keys;
mod password;
mod secrets;
mod totp;

pub use data_key::{DataKey, generate_data_key};
pub use jwt::{JwtConfig, JwtTokens};
pub use keys::{Jwks, PublicJwk, SigningKeys, generate_ed25519_pem, generate_hs256_secret};
pub use password::{Argon2Backend, Argon2Hasher, HashPoolConfig};
pub use secrets::RandomSecrets;
pub use totp::TotpFactors;
