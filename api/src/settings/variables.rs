//! Reading one variable: where values come from ([`Source`]), the error
//! that names the variable at fault, and the parsers of numbers, durations,
//! `on`/`off`, CIDR lists, rate quotas and lockout policies.
//!
//! A leaf of `settings`: it imports nothing from `settings/mod.rs`.

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use portcullis_domain::limits::{LockoutPolicy, MAX_FAILURES_CEILING};
use portcullis_infra::limits::{Quota, Quotas};

/// One bad setting: which variable, and why.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {reason}")]
pub struct SettingsError {
    pub var: &'static str,
    pub reason: String,
}

/// Where values come from: the process environment, or a map in tests.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<const N: usize> Source for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

pub(super) fn parse<T>(
    source: &dyn Source,
    var: &'static str,
    default: T,
) -> Result<T, SettingsError>
where
    T: FromStr,
    T::Err: Display,
{
    match source.get(var) {
        None => Ok(default),
        Some(raw) if raw.trim().is_empty() => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|e: T::Err| SettingsError {
            var,
            reason: format!("invalid value {:?}: {e}", truncate(&raw)),
        }),
    }
}

/// `on`/`off` (also `true`/`false`, `1`/`0`).
pub(super) struct OnOff(pub(super) bool);

impl FromStr for OnOff {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "on" | "true" | "1" | "yes" => Ok(Self(true)),
            "off" | "false" | "0" | "no" => Ok(Self(false)),
            _ => Err("expected `on` or `off`".to_owned()),
        }
    }
}

/// A comma-separated list of CIDR blocks or addresses.
#[derive(Default)]
pub(super) struct CidrList(pub(super) Vec<ipnet::IpNet>);

impl FromStr for CidrList {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| {
                part.parse::<ipnet::IpNet>()
                    .or_else(|_| part.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("`{part}` is not a CIDR block or an IP address"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(CidrList)
    }
}

pub(super) fn quotas(source: &dyn Source) -> Result<Quotas, SettingsError> {
    let defaults = Quotas::default();
    let quota =
        |rate: &'static str, burst: &'static str, default: Quota| -> Result<Quota, SettingsError> {
            let quota = Quota {
                per_minute: parse(source, rate, default.per_minute)?,
                burst: parse(source, burst, default.burst)?,
            };
            if quota.per_minute == 0 || quota.burst == 0 {
                return Err(SettingsError {
                var: rate,
                reason:
                    "rates and bursts must be at least 1 (use PORTCULLIS_RATE_LIMIT=off to disable)"
                        .to_owned(),
            });
            }
            Ok(quota)
        };
    Ok(Quotas {
        sign_up: quota(
            "PORTCULLIS_RATE_LIMIT_SIGNUP_PER_MIN",
            "PORTCULLIS_RATE_LIMIT_SIGNUP_BURST",
            defaults.sign_up,
        )?,
        log_in: quota(
            "PORTCULLIS_RATE_LIMIT_LOGIN_PER_MIN",
            "PORTCULLIS_RATE_LIMIT_LOGIN_BURST",
            defaults.log_in,
        )?,
        refresh: quota(
            "PORTCULLIS_RATE_LIMIT_REFRESH_PER_MIN",
            "PORTCULLIS_RATE_LIMIT_REFRESH_BURST",
            defaults.refresh,
        )?,
        recovery: quota(
            "PORTCULLIS_RATE_LIMIT_RECOVERY_PER_MIN",
            "PORTCULLIS_RATE_LIMIT_RECOVERY_BURST",
            defaults.recovery,
        )?,
        recovery_email: quota(
            "PORTCULLIS_RATE_LIMIT_RECOVERY_EMAIL_PER_MIN",
            "PORTCULLIS_RATE_LIMIT_RECOVERY_EMAIL_BURST",
            defaults.recovery_email,
        )?,
    })
}

pub(super) fn lockout(
    source: &dyn Source,
    prefix: &'static str,
    default: LockoutPolicy,
) -> Result<LockoutPolicy, SettingsError> {
    // Names are static so errors can carry them.
    let names: [&'static str; 5] = match prefix {
        "PORTCULLIS_LOCKOUT" => [
            "PORTCULLIS_LOCKOUT_SLOW_AFTER",
            "PORTCULLIS_LOCKOUT_LOCK_AFTER",
            "PORTCULLIS_LOCKOUT_DURATION_SECS",
            "PORTCULLIS_LOCKOUT_WINDOW_SECS",
            "PORTCULLIS_LOCKOUT_MAX_FAILURES",
        ],
        _ => [
            "PORTCULLIS_CLIENT_LOCKOUT_SLOW_AFTER",
            "PORTCULLIS_CLIENT_LOCKOUT_LOCK_AFTER",
            "PORTCULLIS_CLIENT_LOCKOUT_DURATION_SECS",
            "PORTCULLIS_CLIENT_LOCKOUT_WINDOW_SECS",
            "PORTCULLIS_CLIENT_LOCKOUT_MAX_FAILURES",
        ],
    };
    let whole = |d: time::Duration| u64::try_from(d.whole_seconds()).unwrap_or(900);
    let policy = LockoutPolicy {
        slow_after: parse(source, names[0], default.slow_after)?,
        lock_after: parse(source, names[1], default.lock_after)?,
        lock_duration: time::Duration::seconds(
            i64::try_from(parse(source, names[2], whole(default.lock_duration))?).unwrap_or(900),
        ),
        window: time::Duration::seconds(
            i64::try_from(parse(source, names[3], whole(default.window))?).unwrap_or(86_400),
        ),
        max_failures: parse(source, names[4], default.max_failures)?,
    };
    if policy.slow_after == 0
        || policy.lock_after < policy.slow_after
        || policy.lock_after > MAX_FAILURES_CEILING
    {
        return Err(SettingsError {
            var: names[1],
            reason: "need 1 <= SLOW_AFTER <= LOCK_AFTER <= 100 (NIST 800-63B caps failed attempts at 100)".to_owned(),
        });
    }
    if policy.max_failures < policy.lock_after || policy.max_failures > MAX_FAILURES_CEILING {
        return Err(SettingsError {
            var: names[4],
            reason:
                "need LOCK_AFTER <= MAX_FAILURES <= 100 (NIST 800-63B caps failed attempts at 100)"
                    .to_owned(),
        });
    }
    if policy.lock_duration <= time::Duration::ZERO || policy.window <= time::Duration::ZERO {
        return Err(SettingsError {
            var: names[2],
            reason: "lock durations and windows must be at least 1 second".to_owned(),
        });
    }
    Ok(policy)
}

fn truncate(raw: &str) -> String {
    raw.chars().take(64).collect()
}

pub(super) fn secs(
    source: &dyn Source,
    var: &'static str,
    default: u64,
    min: u64,
) -> Result<Duration, SettingsError> {
    let value: u64 = parse(source, var, default)?;
    if value < min {
        return Err(SettingsError {
            var,
            reason: format!("must be at least {min}"),
        });
    }
    Ok(Duration::from_secs(value))
}

/// A whole number of days between 1 and 100 years (retention periods).
pub(super) fn days(
    source: &dyn Source,
    var: &'static str,
    default: u64,
) -> Result<u64, SettingsError> {
    let value: u64 = parse(source, var, default)?;
    if !(1..=36_500).contains(&value) {
        return Err(SettingsError {
            var,
            reason: "must be between 1 and 36500".to_owned(),
        });
    }
    Ok(value)
}

pub(super) fn millis(
    source: &dyn Source,
    var: &'static str,
    default: u64,
    min: u64,
) -> Result<Duration, SettingsError> {
    let value: u64 = parse(source, var, default)?;
    if value < min {
        return Err(SettingsError {
            var,
            reason: format!("must be at least {min}"),
        });
    }
    Ok(Duration::from_millis(value))
}

/// An optional count of at least 1: unset or empty is `None`.
pub(super) fn positive(
    source: &dyn Source,
    var: &'static str,
) -> Result<Option<usize>, SettingsError> {
    let value: usize = parse(source, var, 0)?;
    if value == 0 && source.get(var).is_some_and(|raw| !raw.trim().is_empty()) {
        return Err(SettingsError {
            var,
            reason: "must be at least 1".to_owned(),
        });
    }
    Ok((value > 0).then_some(value))
}
