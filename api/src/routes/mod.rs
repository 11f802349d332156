//! The HTTP operations, one module per tag; within a tag, one file per use
//! case. `common` holds what several operations share.

pub mod account;
pub mod auth;
pub mod bounded;
pub mod common;
pub mod discovery;
pub mod events;
pub mod health;
pub mod mfa;
pub mod sessions;
pub mod tasks;
pub mod users;
