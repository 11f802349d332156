//! The `portcullis` binary: serve (the default), migrate, print the OpenAPI
//! document, and manage signing keys.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use portcullis_api::app::Application;
use portcullis_api::settings::Settings;
use portcullis_api::wiring::{load_keys, open_database};
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
    /// Search the audit trail across all users (operator view), newest first.
    ///
    /// Example: who failed to log in from 203.0.113.7 in the last hour?
    ///   portcullis events --type login_failed --ip 203.0.113.7 --since 1h
    Events(EventsArgs),
}

#[derive(clap::Args)]
struct EventsArgs {
    /// Only this event type (repeatable): signup, login_succeeded, login_failed,
    /// account_locked, token_refreshed, refresh_token_reuse_detected, logout,
    /// session_revoked, rate_limit_hit, access_token_rejected.
    #[arg(long = "type", value_name = "TYPE")]
    types: Vec<String>,
    /// Only events of this user id.
    #[arg(long)]
    user: Option<uuid::Uuid>,
    /// Only events of the user with this email.
    #[arg(long)]
    email: Option<String>,
    /// Only events from this client address.
    #[arg(long)]
    ip: Option<String>,
    /// Only events this recent: `90s`, `15m`, `1h`, `7d`, or an RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// At most this many events.
    #[arg(long, default_value_t = 50)]
    limit: u64,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
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
        Command::Events(args) => {
            let settings = Settings::from_env()?;
            runtime()?.block_on(events(settings, args))
        }
        Command::Migrate => {
            let settings = Settings::from_env()?;
            let _telemetry = telemetry::init(settings.log_format)?;
            runtime()?.block_on(async {
                let db = open_database(&settings).await?;
                db.migrate().await.context("applying migrations")?;
                tracing::info!("migrations applied");
                anyhow::Ok(())
            })
        }
        Command::Serve => {
            let settings = Settings::from_env()?;
            let mut telemetry = telemetry::init(settings.log_format)?;
            if settings.jwt_secret.is_none() {
                // Fail before binding if keys are unusable.
                load_keys(&settings)?;
            }
            let result = runtime()?.block_on(async {
                let app = Application::build(settings).await?;
                app.run_until(shutdown_signal()).await
            });
            // Outside the runtime: the exporters flush on their own threads.
            telemetry.shutdown();
            result
        }
    }
}

fn parse_since(raw: &str) -> anyhow::Result<time::OffsetDateTime> {
    let now = time::OffsetDateTime::now_utc();
    if let Ok(at) = time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
    {
        return Ok(at);
    }
    let (digits, unit) = raw.split_at(raw.len().saturating_sub(1));
    let amount: i64 = digits
        .parse()
        .with_context(|| format!("--since {raw}: expected 90s, 15m, 1h, 7d or RFC 3339"))?;
    let span = match unit {
        "s" => time::Duration::seconds(amount),
        "m" => time::Duration::minutes(amount),
        "h" => time::Duration::hours(amount),
        "d" => time::Duration::days(amount),
        _ => anyhow::bail!("--since {raw}: expected 90s, 15m, 1h, 7d or RFC 3339"),
    };
    Ok(now - span)
}

async fn events(settings: Settings, args: EventsArgs) -> anyhow::Result<()> {
    use portcullis_domain::audit::{AuthEventKind, AuthEventRepository, EventQuery};
    use portcullis_domain::user::{Email, UserId, UserRepository};

    let db = open_database(&settings).await?;
    let mut kinds = Vec::new();
    for raw in &args.types {
        kinds.push(
            AuthEventKind::parse(raw)
                .with_context(|| format!("--type {raw}: unknown event type"))?,
        );
    }
    let mut user_id = args.user.map(UserId::from_uuid);
    if let Some(raw) = &args.email {
        let email = Email::parse(raw).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
        let user = db
            .users()
            .find_by_email(&email)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        user_id = Some(
            user.with_context(|| format!("no user with email {raw}"))?
                .id,
        );
    }
    let query = EventQuery {
        user_id,
        kinds,
        client_ip: args.ip.clone(),
        since: args.since.as_deref().map(parse_since).transpose()?,
        until: None,
        before: None,
        limit: args.limit.clamp(1, 10_000),
    };
    let found = db
        .events()
        .query(&query)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let text = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    for event in found {
        let at = event
            .at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        if args.json {
            let line = serde_json::json!({
                "id": event.id,
                "occurred_at": at,
                "type": event.kind.as_str(),
                "outcome": event.outcome.as_str(),
                "user_id": event.user_id.map(|u| u.to_string()),
                "session_id": event.session_id.map(|s| s.to_string()),
                "client_ip": event.client_ip,
                "user_agent": event.user_agent,
                "request_id": event.request_id,
                "trace_id": event.trace_id,
                "detail": event.detail,
            });
            println!("{line}");
        } else {
            println!(
                "{at}  {:<28} {:<7} user={} session={} ip={} detail={} request={} trace={}",
                event.kind.as_str(),
                event.outcome.as_str(),
                event
                    .user_id
                    .map_or_else(|| "-".to_owned(), |u| u.to_string()),
                event
                    .session_id
                    .map_or_else(|| "-".to_owned(), |s| s.to_string()),
                text(&event.client_ip),
                text(&event.detail),
                text(&event.request_id),
                text(&event.trace_id),
            );
        }
    }
    Ok(())
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
