//! Adapters behind the domain's ports: sea-orm repositories, the argon2
//! hasher, the JWT signer/verifier, the clock, the revocation cache, the
//! mailer (lettre) and the bounded background runner.
//!
//! Nothing here knows HTTP.

pub mod audit;
pub mod background;
pub mod clock;
pub mod crypto;
pub mod db;
pub mod limits;
pub mod mail;
pub mod revocation;
