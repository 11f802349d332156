//! Adapters behind the domain's ports: sea-orm repositories, the argon2
//! hasher, the JWT signer/verifier, the clock and the revocation cache.
//!
//! Nothing here knows HTTP.

pub mod audit;
pub mod clock;
pub mod crypto;
pub mod db;
pub mod limits;
pub mod revocation;
