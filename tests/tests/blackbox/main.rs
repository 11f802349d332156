//! Black-box tests: each starts the real server on a free port with a fresh
//! database and drives it over HTTP, like a user would.
//!
//! Backend: SQLite by default; `PORTCULLIS_TEST_BACKEND=postgres` runs the
//! same suite on PostgreSQL (`PORTCULLIS_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`), one fresh database per test.
//!
//! Mail: `.eml` files in each server's data directory by default;
//! `PORTCULLIS_TEST_MAIL=smtp` gives each server a real SMTP server of its
//! own (aiosmtpd), and the same tests read what it received.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod account_changes;
mod account_recovery;
mod account_verification;
mod client_address;
mod errors;
mod events;
mod fuzz;
mod jwt_attacks;
mod limits;
mod mail_delivery;
mod password_hashes;
mod refresh;
mod second_factors;
mod sessions;
mod signup_login;
mod slow_clients;
mod tasks;
mod upgrade;
