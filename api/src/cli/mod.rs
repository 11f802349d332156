//! The subcommands of the `portcullis` binary, one file each: `serve` (the
//! default), `migrate`, `openapi`, `keys` and `events`. `main` parses the
//! command line and calls the one asked for.

pub mod events;
pub mod keys;
pub mod migrate;
pub mod openapi;
pub mod serve;

use anyhow::Context;

/// The async runtime of the subcommands that need one.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
