//! The crypto adapters from the outside: password hashing and its pool,
//! refresh-token secrets, signing keys on disk, and every access-token
//! attack listed in SECURITY.md ("Access tokens").
//!
//! Hostile tokens are built by hand (base64 of literal JSON, signed with the
//! real key through aws-lc-rs) so a test says exactly which bytes it sends.
//!
//! One module per adapter; `support` holds the shared helpers.

// Helpers outside `#[test]` functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod access_token_claims;
mod access_tokens;
mod keys;
mod passwords;
mod properties;
mod secrets;
