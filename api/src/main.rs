//! The `portcullis` binary: serve (the default), migrate, print the OpenAPI
//! document, manage signing keys, and search the audit trail. `main` parses
//! the command line and runs the subcommand's file under `cli/`.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cli::events::EventsArgs;
use crate::cli::keys::KeysCommand;
use crate::cli::openapi::Format;

/// Portcullis: authentication and JWT security service.
///
/// Configuration comes from the environment (PORTCULLIS_*, DATABASE_URL);
/// see the README for the full list.
#[derive(Parser)]
#[command(name = "portcullis", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
    /// Manage signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Search the audit trail across all users (operator view), newest first.
    ///
    /// Example: who failed to log in from 203.0.113.7 in the last hour?
    ///   portcullis events --type login_failed --ip 203.0.113.7 --since 1h
    Events(EventsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => cli::serve::run(),
        Command::Migrate => cli::migrate::run(),
        Command::Openapi { format } => {
            cli::openapi::run(format);
            Ok(())
        }
        Command::Keys { command } => cli::keys::run(command),
        Command::Events(args) => cli::events::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("portcullis: {error:#}");
            ExitCode::FAILURE
        }
    }
}
