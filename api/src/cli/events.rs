//! `portcullis events`: search the audit trail across all users (the
//! operator's view), newest first, as a table or as JSON lines.

use anyhow::Context;
use portcullis_api::settings::Settings;
use portcullis_api::wiring::open_database;

use crate::cli::runtime;

#[derive(clap::Args)]
pub struct EventsArgs {
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

/// Prints the events `args` select.
///
/// # Errors
/// Bad settings or arguments, or storage that cannot be read.
pub fn run(args: EventsArgs) -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    runtime()?.block_on(events(settings, args))
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
    use std::sync::Arc;

    use portcullis_domain::audit::{AuditLog, AuthEventKind, EventQuery};
    use portcullis_domain::email::Email;
    use portcullis_domain::ids::UserId;
    use portcullis_domain::user::UserRepository;

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
        limit: args.limit,
    };
    let found = AuditLog::new(Arc::new(db.events()))
        .search(query)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .items;
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
