//! The rules of Portcullis: value types, ports (traits) and use cases.
//!
//! Nothing in this crate performs I/O or knows HTTP, SQL or a crypto library:
//! adapters live in `portcullis-infra` and `portcullis-api`.
//!
//! Layout: shared vocabulary in leaf modules that import no sibling use case
//! (`ids`, `context`, `error`, `paging`, `email`, `clock`, `one_time`); entities with
//! their ports (`user`, `password`, `session`, `token`, `audit`, `limits`,
//! `task`, `mail`); use cases one per file (`auth/log_in.rs`, ...) or as a small
//! service beside their entity (`session::SessionService`, `audit::AuditLog`).

pub mod account;
pub mod amr;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod context;
pub mod email;
pub mod error;
pub mod ids;
pub mod limits;
pub mod mail;
pub mod mfa;
pub mod one_time;
pub mod paging;
pub mod password;
pub mod session;
pub mod task;
pub mod token;
pub mod user;

/// In-memory fakes of every port, for unit tests here and for handler tests
/// of the adapters (the `testkit` feature).
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
