//! sea-orm entities mirroring the tables the migrations create.
//!
//! They describe the schema for queries only: the schema itself comes from
//! `portcullis-migration`, so a column changed here without a migration is a
//! bug. Instants are `i64` Unix epoch milliseconds (UTC) and identifiers are
//! `Uuid`, exactly as the migrations declare them. Nothing outside `db` sees
//! these types; the repositories convert to and from domain types.

pub(crate) mod account_token;
pub(crate) mod auth_event;
pub(crate) mod email_outbox;
pub(crate) mod mfa_challenge;
pub(crate) mod recovery_code;
pub(crate) mod refresh_token;
pub(crate) mod session;
pub(crate) mod session_revocation;
pub(crate) mod task;
pub(crate) mod totp_factor;
pub(crate) mod user;
