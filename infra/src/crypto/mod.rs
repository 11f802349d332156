//! Cryptography adapters: argon2id password hashing, refresh-token secrets,
//! signing keys and JWT access tokens.
//!
//! Only this module touches `argon2`, `jsonwebtoken`, `aws-lc-rs` and the
//! random generator; the domain sees its ports (`PasswordHasher`,
//! `SecretGenerator`, `TokenIssuer`, `TokenVerifier`). No secret (password,
//! hash, token, key) is ever logged from here.

mod jwt;
mod keys;
mod password;
mod secrets;

pub use jwt::{JwtConfig, JwtTokens};
pub use keys::{Jwks, PublicJwk, SigningKeys, generate_ed25519_pem, generate_hs256_secret};
pub use password::{Argon2Backend, Argon2Hasher, HashPoolConfig};
pub use secrets::RandomSecrets;
