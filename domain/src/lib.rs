//! The rules of Portcullis: value types, ports (traits) and services.
//!
//! Nothing in this crate performs I/O or knows HTTP, SQL or a crypto library:
//! adapters live in `portcullis-infra` and `portcullis-api`.

pub mod audit;
pub mod auth;
pub mod clock;
pub mod error;
pub mod limits;
pub mod password;
pub mod session;
pub mod task;
pub mod token;
pub mod user;

#[cfg(test)]
mod fakes;

pub use error::Unexpected;
