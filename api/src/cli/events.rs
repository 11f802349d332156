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

/// The `--since` forms, for error messages.
const SINCE_FORMS: &str = "expected 90s, 15m, 1h, 7d or an RFC 3339 time";

/// Longest relative `--since`: about a hundred years, far inside what the
/// time arithmetic can hold.
const MAX_SINCE_SECS: u64 = 100 * 366 * 86_400;

/// `--since`: an RFC 3339 time, or an amount and a unit before `now`.
///
/// # Errors
/// One line naming the bad value (quoted and escaped, so it cannot break
/// the line); never a panic, whatever the input.
fn parse_since(raw: &str, now: time::OffsetDateTime) -> anyhow::Result<time::OffsetDateTime> {
    if let Ok(at) = time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
    {
        return Ok(at);
    }
    let bad = || anyhow::anyhow!("--since {raw:?}: {SINCE_FORMS}");
    let mut chars = raw.chars();
    let unit = chars.next_back().ok_or_else(bad)?;
    let digits = chars.as_str();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let amount: u64 = digits.parse().map_err(|_| bad())?;
    let per_unit: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    let secs = amount
        .checked_mul(per_unit)
        .filter(|secs| *secs <= MAX_SINCE_SECS)
        .ok_or_else(|| anyhow::anyhow!("--since {raw:?}: at most 36600d"))?;
    let span = time::Duration::seconds(i64::try_from(secs).map_err(|_| bad())?);
    now.checked_sub(span)
        .ok_or_else(|| anyhow::anyhow!("--since {raw:?}: too far back"))
}

/// `--type`: the event kinds asked for.
///
/// # Errors
/// One line naming the first unknown kind.
fn parse_types(raw: &[String]) -> anyhow::Result<Vec<portcullis_domain::audit::AuthEventKind>> {
    raw.iter()
        .map(|kind| {
            portcullis_domain::audit::AuthEventKind::parse(kind)
                .ok_or_else(|| anyhow::anyhow!("--type {kind:?}: unknown event type"))
        })
        .collect()
}

/// `--ip`: a client address, as events store it.
///
/// # Errors
/// One line when it is not an IP address.
fn parse_ip(raw: &str) -> anyhow::Result<String> {
    raw.trim()
        .parse::<std::net::IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| anyhow::anyhow!("--ip {raw:?}: not an IP address"))
}

async fn events(settings: Settings, args: EventsArgs) -> anyhow::Result<()> {
    use std::sync::Arc;

    use portcullis_domain::audit::{AuditLog, EventQuery};
    use portcullis_domain::email::Email;
    use portcullis_domain::ids::UserId;
    use portcullis_domain::user::UserRepository;

    // Every argument is checked before the database is opened.
    let kinds = parse_types(&args.types)?;
    let since = args
        .since
        .as_deref()
        .map(|raw| parse_since(raw, time::OffsetDateTime::now_utc()))
        .transpose()?;
    let client_ip = args.ip.as_deref().map(parse_ip).transpose()?;
    let email = args
        .email
        .as_deref()
        .map(|raw| Email::parse(raw).map_err(|e| anyhow::anyhow!("--email {raw:?}: {e}")))
        .transpose()?;
    let db = open_database(&settings).await?;
    let mut user_id = args.user.map(UserId::from_uuid);
    if let Some(email) = &email {
        let user = db
            .users()
            .find_by_email(email)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        user_id = Some(
            user.with_context(|| format!("no user with email {:?}", email.as_str()))?
                .id,
        );
    }
    let query = EventQuery {
        user_id,
        kinds,
        client_ip,
        since,
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn now() -> time::OffsetDateTime {
        time::macros::datetime!(2026-12-01 12:00 UTC)
    }

    #[test]
    fn relative_and_absolute_times_parse() {
        assert_eq!(
            parse_since("90s", now()).unwrap(),
            now() - time::Duration::seconds(90)
        );
        assert_eq!(
            parse_since("7d", now()).unwrap(),
            now() - time::Duration::days(7)
        );
        assert_eq!(
            parse_since("2026-11-30T00:00:00Z", now()).unwrap(),
            time::macros::datetime!(2026-11-30 0:00 UTC)
        );
    }

    #[test]
    fn bad_values_are_one_line_errors() {
        for raw in [
            "5\u{e9}",
            "\u{e9}",
            "",
            "h",
            "-5m",
            "+5m",
            "5",
            "5 m",
            "99999999999999999999d",
            "9223372036854775807s",
            "1\nh",
            "ls\u{1b}[2J",
        ] {
            let error = parse_since(raw, now()).unwrap_err().to_string();
            assert!(error.starts_with("--since "), "{raw:?}: {error}");
            assert_eq!(error.lines().count(), 1, "{raw:?}: {error}");
        }
        assert!(parse_types(&["login_failed".to_owned()]).is_ok());
        let error = parse_types(&["nope\n".to_owned()]).unwrap_err().to_string();
        assert_eq!(error.lines().count(), 1, "{error}");
        assert!(parse_ip("203.0.113.7").is_ok());
        assert!(parse_ip("2001:db8::1").is_ok());
        assert!(
            parse_ip("203.0.113.7\nx")
                .unwrap_err()
                .to_string()
                .lines()
                .count()
                == 1
        );
    }

    fn one_line(result: anyhow::Result<impl std::fmt::Debug>) -> Result<(), TestCaseError> {
        if let Err(error) = result {
            let text = format!("portcullis: {error:#}");
            prop_assert_eq!(text.lines().count(), 1, "{}", text);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn since_never_panics_and_errs_in_one_line(raw in any::<String>()) {
            one_line(parse_since(&raw, now()))?;
        }

        #[test]
        fn since_near_the_grammar_never_panics(raw in "[0-9]{0,25}[smhd\u{e9}\u{1F600}x]?") {
            one_line(parse_since(&raw, now()))?;
        }

        #[test]
        fn filters_never_panic_and_err_in_one_line(raw in any::<String>()) {
            one_line(parse_types(std::slice::from_ref(&raw)))?;
            one_line(parse_ip(&raw))?;
        }
    }
}
