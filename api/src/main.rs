//! The `portcullis` binary: serve (the default), migrate, print the OpenAPI
//! document, and manage signing keys.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use portcullis_api::app::{Application, load_keys, open_database};
use portcullis_api::settings::Settings;
use portcullis_api::{openapi_json, openapi_yaml, telemetry};
use portcullis_infra::crypto::{SigningKeys, generate_ed25519_pem, generate_hs256_secret};

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
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a new key (Ed25519 PKCS#8 PEM) or, with --hs256, a new secret.
    Generate {
        /// Print a random 256-bit secret for PORTCULLIS_JWT_SECRET instead.
        #[arg(long)]
        hs256: bool,
    },
    /// Add a new signing key to the data directory; it signs from the next
    /// start on, and older keys keep verifying until removed.
    Rotate,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Yaml,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("portcullis: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi { format } => {
            match format {
                Format::Json => println!("{}", openapi_json()),
                Format::Yaml => print!("{}", openapi_yaml()),
            }
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Generate { hs256 },
        } => {
            if hs256 {
                println!("{}", generate_hs256_secret());
            } else {
                print!("{}", generate_ed25519_pem()?);
            }
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Rotate,
        } => {
            let settings = Settings::from_env()?;
            let kid = SigningKeys::rotate_ed25519(&settings.data_dir.join("keys"))?;
            println!("{kid}");
            eprintln!("new signing key {kid} added; restart instances to sign with it");
            Ok(())
        }
        Command::Migrate => {
            let settings = Settings::from_env()?;
            telemetry::init(settings.log_format);
            runtime()?.block_on(async {
                let db = open_database(&settings).await?;
                db.migrate().await.context("applying migrations")?;
                tracing::info!("migrations applied");
                anyhow::Ok(())
            })
        }
        Command::Serve => {
            let settings = Settings::from_env()?;
            telemetry::init(settings.log_format);
            // Fail before binding if keys are unusable.
            load_keys(&settings)?;
            runtime()?.block_on(async {
                let app = Application::build(settings).await?;
                app.run_until(shutdown_signal()).await
            })
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
