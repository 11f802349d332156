//! Repository contract tests: one body per behaviour, run against SQLite (a
//! temporary file) and PostgreSQL (a fresh database per test) with the real
//! migrator.
//!
//! PostgreSQL is found through `PORTCULLIS_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). The PostgreSQL variants are
//! `#[ignore]`d so `cargo test` works on a machine without PostgreSQL and
//! says so honestly; `cargo test -- --include-ignored` runs them, and an
//! unreachable server then fails them.
//!
//! One module per repository or concern; `support` holds the harness and
//! fixtures, and each module lists its bodies in a `contract_tests!` call,
//! so a test is named `<module>::<body>::{sqlite,postgres}`.

// clippy.toml allows these inside `#[test]` functions only; the shared bodies
// and fixtures here are test code just the same.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod accounts;
mod database;
mod events;
mod events_with_changes;
mod mfa;
mod sessions;
mod sessions_revocation;
mod sessions_rotation;
mod tasks;
mod users;
