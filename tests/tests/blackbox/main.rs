//! Black-box tests: each starts the real server on a free port with a fresh
//! database and drives it over HTTP, like a user would.
//!
//! Backend: SQLite by default; `PORTCULLIS_TEST_BACKEND=postgres` runs the
//! same suite on PostgreSQL (`PORTCULLIS_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`), one fresh database per test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod client_address;
mod errors;
mod events;
mod fuzz;
mod jwt_attacks;
mod limits;
mod password_hashes;
mod refresh;
mod sessions;
mod signup_login;
mod slow_clients;
mod tasks;
mod upgrade;
