//! Typed settings, read once at start from the environment.
//!
//! Written by hand rather than with figment or clap's `env`: figment sniffs
//! values (a secret of `true` or `1e5` would silently become a bool or a
//! float), and clap's errors name the flag, not the variable. An operator
//! must get one line naming the variable at fault, which this does in a few
//! lines of code.
//!
//! This file says which variables there are and checks them together;
//! `variables` reads one variable.

mod variables;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use portcullis_domain::limits::LockoutPolicy;
use portcullis_infra::crypto::Argon2Backend;
use secrecy::SecretString;

use crate::http::client_ip::{DEFAULT_IPV6_PREFIX, ForwardedHeader};
use crate::settings::variables::{
    CidrList, OnOff, days, lockout, millis, parse, positive, quotas, secs,
};
pub use crate::settings::variables::{ProcessEnv, SettingsError, Source};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" | "pretty" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err("expected `text` or `json`".to_owned()),
        }
    }
}

/// Everything the service can be told at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `PORTCULLIS_BIND`: address to listen on.
    pub bind: SocketAddr,
    /// `PORTCULLIS_DATA_DIR`: SQLite file and generated keys.
    pub data_dir: PathBuf,
    /// `DATABASE_URL`: `postgres://...` or `sqlite://...`; default SQLite in the data dir.
    pub database_url: Option<String>,
    /// `PORTCULLIS_JWT_SECRET`: switches to HS256 with this secret (>= 32 bytes).
    pub jwt_secret: Option<SecretString>,
    /// `PORTCULLIS_JWT_ISSUER`.
    pub jwt_issuer: String,
    /// `PORTCULLIS_JWT_AUDIENCE`.
    pub jwt_audience: String,
    /// `PORTCULLIS_ACCESS_TOKEN_TTL_SECS` (default 900).
    pub access_token_ttl: Duration,
    /// `PORTCULLIS_SESSION_RETENTION_DAYS` (default 30): ended sessions are
    /// deleted this long after they end.
    pub session_retention: Duration,
    /// `PORTCULLIS_AUDIT_RETENTION_DAYS` (default 400): audit events are
    /// deleted this long after they occurred.
    pub audit_retention: Duration,
    /// `PORTCULLIS_SESSION_IDLE_TTL_SECS` (default 7 days).
    pub session_idle_ttl: Duration,
    /// `PORTCULLIS_SESSION_ABSOLUTE_TTL_SECS` (default 30 days).
    pub session_absolute_ttl: Duration,
    /// `PORTCULLIS_REFRESH_REUSE_GRACE_SECS` (default 10, 0 allowed).
    pub refresh_reuse_grace: Duration,
    /// `PORTCULLIS_REVOCATION_POLL_MS` (default 1000): how often other
    /// instances' revocations are read; the cross-instance bound.
    pub revocation_poll: Duration,
    /// `PORTCULLIS_PASSWORD_MIN_LENGTH` (default 15, never under 8).
    pub password_min_length: usize,
    /// `PORTCULLIS_HASH_WORKERS` (default: number of CPUs).
    pub hash_workers: usize,
    /// `PORTCULLIS_HASH_QUEUE` (default 64): waiting hashes before 503.
    pub hash_queue: usize,
    /// `PORTCULLIS_ARGON2_BACKEND` (`fast`, the default, or `reference`).
    pub argon2_backend: Argon2Backend,
    /// `PORTCULLIS_DB_MAX_CONNECTIONS` (default 10 on PostgreSQL, 4 on SQLite).
    pub db_max_connections: u32,
    /// `PORTCULLIS_DB_ACQUIRE_TIMEOUT_MS` (default 5000).
    pub db_acquire_timeout: Duration,
    /// `PORTCULLIS_DB_STATEMENT_TIMEOUT_MS` (default 10000).
    pub db_statement_timeout: Duration,
    /// `PORTCULLIS_DB_MIGRATE_TIMEOUT_SECS` (default 120): longest the
    /// migrations at start may take, waiting for another instance's included.
    pub db_migrate_timeout: Duration,
    /// `PORTCULLIS_SHUTDOWN_TIMEOUT_SECS` (default 10): in-flight deadline on SIGTERM.
    pub shutdown_timeout: Duration,
    /// `PORTCULLIS_HEADER_TIMEOUT_SECS` (default 5): a request head must arrive whole within it.
    pub header_timeout: Duration,
    /// `PORTCULLIS_BODY_TIMEOUT_SECS` (default 10): a request body must arrive whole within it.
    pub body_timeout: Duration,
    /// `PORTCULLIS_KEEP_ALIVE_TIMEOUT_SECS` (default 30): an idle connection closes after it.
    pub keep_alive_timeout: Duration,
    /// `PORTCULLIS_MAX_CONNECTIONS` (unset: the open-file limit less a reserve).
    pub max_connections: Option<usize>,
    /// `PORTCULLIS_MAX_CONNECTIONS_PER_CLIENT` (unset: a quarter of the maximum).
    pub max_connections_per_client: Option<usize>,
    /// `PORTCULLIS_LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// `REDIS_URL`: shared rate limits and lockouts across instances.
    pub redis_url: Option<String>,
    /// `PORTCULLIS_RATE_LIMIT`: `on` (default) or `off` (benchmarks only).
    pub rate_limit: bool,
    /// `PORTCULLIS_TRUSTED_PROXIES`: CIDR list whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `PORTCULLIS_CLIENT_IP_HEADER`: the one header trusted proxies write,
    /// `x-forwarded-for` (default) or `forwarded`.
    pub client_ip_header: ForwardedHeader,
    /// `PORTCULLIS_IPV6_PREFIX` (default 64, 32..=128): IPv6 clients of one
    /// network this long share their limits.
    pub ipv6_prefix: u8,
    /// `PORTCULLIS_RATE_LIMIT_{SIGNUP,LOGIN,REFRESH}_PER_MIN` and `_BURST`.
    pub quotas: portcullis_infra::limits::Quotas,
    /// `PORTCULLIS_LOCKOUT_SLOW_AFTER` (5), `PORTCULLIS_LOCKOUT_LOCK_AFTER` (10),
    /// `PORTCULLIS_LOCKOUT_DURATION_SECS` (900), `PORTCULLIS_LOCKOUT_WINDOW_SECS`
    /// (86400), `PORTCULLIS_LOCKOUT_MAX_FAILURES` (100).
    pub account_lockout: portcullis_domain::limits::LockoutPolicy,
    /// `PORTCULLIS_CLIENT_LOCKOUT_SLOW_AFTER` (20), `_LOCK_AFTER` (50),
    /// `_DURATION_SECS` (900), `_WINDOW_SECS` (3600), `_MAX_FAILURES` (100).
    pub client_lockout: portcullis_domain::limits::LockoutPolicy,
    /// `PORTCULLIS_SMTP_URL`: lettre's URL form (`smtp://host:port`,
    /// `smtp://host:587?tls=required`, `smtps://user:pass@host:465`). Unset:
    /// messages are written as `.eml` files under `data_dir/mail/`.
    pub smtp_url: Option<SecretString>,
    /// `PORTCULLIS_MAIL_FROM` (default `Portcullis <no-reply@localhost>`).
    pub mail_from: String,
    /// `PORTCULLIS_PUBLIC_URL` (default `http://` + the bind address): what
    /// links in emails start with. Never taken from a request.
    pub public_url: String,
    /// `PORTCULLIS_MAIL_TEMPLATES_DIR`: files that replace the built-in
    /// templates (`<kind>.txt`, `<kind>.html`).
    pub mail_templates_dir: Option<PathBuf>,
    /// `PORTCULLIS_REQUIRE_VERIFIED_EMAIL` (default `false`): log-in of an
    /// unconfirmed address answers 403 `email_not_verified`.
    pub require_verified_email: bool,
    /// `PORTCULLIS_DATA_KEY`: 32 bytes in standard base64 that encrypt TOTP
    /// seeds and key recovery-code digests. Unset: `data_dir/keys/data.key`,
    /// generated on first start.
    pub data_key: Option<SecretString>,
}

impl Settings {
    /// Reads the process environment.
    ///
    /// # Errors
    /// The first bad variable.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_source(&ProcessEnv)
    }

    /// Reads `source`, applying defaults for anything unset.
    ///
    /// # Errors
    /// The first bad variable.
    pub fn from_source(source: &dyn Source) -> Result<Self, SettingsError> {
        let default_workers =
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let jwt_secret = source
            .get("PORTCULLIS_JWT_SECRET")
            .filter(|s| !s.is_empty())
            .map(|secret| {
                if secret.len() < 32 {
                    Err(SettingsError {
                        var: "PORTCULLIS_JWT_SECRET",
                        reason: "must be at least 32 bytes (generate one with `portcullis keys generate --hs256`)".to_owned(),
                    })
                } else {
                    Ok(SecretString::from(secret))
                }
            })
            .transpose()?;
        let database_url = source.get("DATABASE_URL").filter(|s| !s.trim().is_empty());
        // SQLite has one writer at a time and every connection keeps its own
        // caches in its own thread: four readers are plenty and cost less
        // memory than ten (measured by `portcullis-bench`).
        let default_pool = if database_url
            .as_deref()
            .is_none_or(|url| url.starts_with("sqlite:"))
        {
            4
        } else {
            10
        };
        let retention_days = days(source, "PORTCULLIS_SESSION_RETENTION_DAYS", 30)?;
        let audit_retention_days = days(source, "PORTCULLIS_AUDIT_RETENTION_DAYS", 400)?;
        let bind = parse(
            source,
            "PORTCULLIS_BIND",
            SocketAddr::from(([127, 0, 0, 1], 8080)),
        )?;
        let settings = Self {
            bind,
            data_dir: parse(source, "PORTCULLIS_DATA_DIR", PathBuf::from("./data"))?,
            database_url,
            jwt_secret,
            jwt_issuer: parse(source, "PORTCULLIS_JWT_ISSUER", "portcullis".to_owned())?,
            jwt_audience: parse(
                source,
                "PORTCULLIS_JWT_AUDIENCE",
                "portcullis-api".to_owned(),
            )?,
            access_token_ttl: secs(source, "PORTCULLIS_ACCESS_TOKEN_TTL_SECS", 900, 1)?,
            session_idle_ttl: secs(source, "PORTCULLIS_SESSION_IDLE_TTL_SECS", 7 * 86_400, 1)?,
            session_retention: Duration::from_secs(86_400 * retention_days),
            audit_retention: Duration::from_secs(86_400 * audit_retention_days),
            session_absolute_ttl: secs(
                source,
                "PORTCULLIS_SESSION_ABSOLUTE_TTL_SECS",
                30 * 86_400,
                1,
            )?,
            refresh_reuse_grace: secs(source, "PORTCULLIS_REFRESH_REUSE_GRACE_SECS", 10, 0)?,
            revocation_poll: millis(source, "PORTCULLIS_REVOCATION_POLL_MS", 1000, 50)?,
            password_min_length: parse(source, "PORTCULLIS_PASSWORD_MIN_LENGTH", 15)?,
            hash_workers: parse(source, "PORTCULLIS_HASH_WORKERS", default_workers)?,
            hash_queue: parse(source, "PORTCULLIS_HASH_QUEUE", 64)?,
            argon2_backend: parse(source, "PORTCULLIS_ARGON2_BACKEND", Argon2Backend::Fast)?,
            db_max_connections: parse(source, "PORTCULLIS_DB_MAX_CONNECTIONS", default_pool)?,
            db_acquire_timeout: millis(source, "PORTCULLIS_DB_ACQUIRE_TIMEOUT_MS", 5000, 1)?,
            db_statement_timeout: millis(source, "PORTCULLIS_DB_STATEMENT_TIMEOUT_MS", 10_000, 1)?,
            db_migrate_timeout: secs(source, "PORTCULLIS_DB_MIGRATE_TIMEOUT_SECS", 120, 1)?,
            shutdown_timeout: secs(source, "PORTCULLIS_SHUTDOWN_TIMEOUT_SECS", 10, 0)?,
            header_timeout: secs(source, "PORTCULLIS_HEADER_TIMEOUT_SECS", 5, 1)?,
            body_timeout: secs(source, "PORTCULLIS_BODY_TIMEOUT_SECS", 10, 1)?,
            keep_alive_timeout: secs(source, "PORTCULLIS_KEEP_ALIVE_TIMEOUT_SECS", 30, 1)?,
            max_connections: positive(source, "PORTCULLIS_MAX_CONNECTIONS")?,
            max_connections_per_client: positive(source, "PORTCULLIS_MAX_CONNECTIONS_PER_CLIENT")?,
            log_format: parse(source, "PORTCULLIS_LOG_FORMAT", LogFormat::Text)?,
            redis_url: source.get("REDIS_URL").filter(|s| !s.trim().is_empty()),
            rate_limit: parse(source, "PORTCULLIS_RATE_LIMIT", OnOff(true))?.0,
            trusted_proxies: parse(source, "PORTCULLIS_TRUSTED_PROXIES", CidrList::default())?.0,
            client_ip_header: parse(
                source,
                "PORTCULLIS_CLIENT_IP_HEADER",
                ForwardedHeader::default(),
            )?,
            ipv6_prefix: parse(source, "PORTCULLIS_IPV6_PREFIX", DEFAULT_IPV6_PREFIX)?,
            quotas: quotas(source)?,
            account_lockout: lockout(
                source,
                "PORTCULLIS_LOCKOUT",
                LockoutPolicy::account_default(),
            )?,
            client_lockout: lockout(
                source,
                "PORTCULLIS_CLIENT_LOCKOUT",
                LockoutPolicy::client_default(),
            )?,
            smtp_url: source
                .get("PORTCULLIS_SMTP_URL")
                .filter(|s| !s.trim().is_empty())
                .map(SecretString::from),
            mail_from: parse(
                source,
                "PORTCULLIS_MAIL_FROM",
                "Portcullis <no-reply@localhost>".to_owned(),
            )?,
            public_url: parse(source, "PORTCULLIS_PUBLIC_URL", format!("http://{bind}"))?,
            mail_templates_dir: source
                .get("PORTCULLIS_MAIL_TEMPLATES_DIR")
                .filter(|s| !s.trim().is_empty())
                .map(PathBuf::from),
            data_key: source
                .get("PORTCULLIS_DATA_KEY")
                .filter(|s| !s.trim().is_empty())
                .map(SecretString::from),
            require_verified_email: parse(
                source,
                "PORTCULLIS_REQUIRE_VERIFIED_EMAIL",
                OnOff(false),
            )?
            .0,
        };
        settings.validate()
    }

    fn validate(self) -> Result<Self, SettingsError> {
        let url = self.public_url.as_str();
        let well_formed = (url.starts_with("http://") || url.starts_with("https://"))
            && url.len() > "https://".len()
            && !url.contains(['#', '?', ' ', '\n', '\r', '"', '<', '>']);
        if !well_formed {
            return Err(SettingsError {
                var: "PORTCULLIS_PUBLIC_URL",
                reason: "must be an http(s) URL without query or fragment, e.g. https://auth.example.com".to_owned(),
            });
        }
        if !(8..=128).contains(&self.password_min_length) {
            return Err(SettingsError {
                var: "PORTCULLIS_PASSWORD_MIN_LENGTH",
                reason: "must be between 8 and 128".to_owned(),
            });
        }
        if self.hash_workers == 0 {
            return Err(SettingsError {
                var: "PORTCULLIS_HASH_WORKERS",
                reason: "must be at least 1".to_owned(),
            });
        }
        if !(32..=128).contains(&self.ipv6_prefix) {
            return Err(SettingsError {
                var: "PORTCULLIS_IPV6_PREFIX",
                reason: "must be between 32 and 128".to_owned(),
            });
        }
        if self.db_max_connections == 0 {
            return Err(SettingsError {
                var: "PORTCULLIS_DB_MAX_CONNECTIONS",
                reason: "must be at least 1".to_owned(),
            });
        }
        if self.session_idle_ttl > self.session_absolute_ttl {
            return Err(SettingsError {
                var: "PORTCULLIS_SESSION_IDLE_TTL_SECS",
                reason: "must not exceed PORTCULLIS_SESSION_ABSOLUTE_TTL_SECS".to_owned(),
            });
        }
        if let Some(url) = &self.redis_url
            && !(url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("unix://"))
        {
            return Err(SettingsError {
                var: "REDIS_URL",
                reason: "must start with redis://, rediss:// or unix://".to_owned(),
            });
        }
        if let Some(url) = &self.database_url
            && !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"))
        {
            return Err(SettingsError {
                var: "DATABASE_URL",
                reason: "must start with postgres://, postgresql:// or sqlite:".to_owned(),
            });
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_safe_for_local_use() {
        let settings = Settings::from_source(&[]).unwrap();
        assert_eq!(settings.bind, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(settings.data_dir, PathBuf::from("./data"));
        assert_eq!(settings.password_min_length, 15);
        assert!(settings.jwt_secret.is_none());
        assert_eq!(settings.argon2_backend, Argon2Backend::Fast);
    }

    #[test]
    fn the_argon2_backend_is_fast_or_reference() {
        let settings =
            Settings::from_source(&[("PORTCULLIS_ARGON2_BACKEND", "reference")]).unwrap();
        assert_eq!(settings.argon2_backend, Argon2Backend::Reference);
        let err = Settings::from_source(&[("PORTCULLIS_ARGON2_BACKEND", "turbo")]).unwrap_err();
        assert_eq!(err.var, "PORTCULLIS_ARGON2_BACKEND");
        assert!(err.to_string().contains("fast or reference"));
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = Settings::from_source(&[("PORTCULLIS_BIND", "not-an-address")]).unwrap_err();
        assert_eq!(err.var, "PORTCULLIS_BIND");
        assert!(
            err.to_string()
                .starts_with("PORTCULLIS_BIND: invalid value")
        );
        let err = Settings::from_source(&[("PORTCULLIS_JWT_SECRET", "short")]).unwrap_err();
        assert_eq!(err.var, "PORTCULLIS_JWT_SECRET");
        assert!(
            !err.to_string().contains("short"),
            "the secret must not be echoed"
        );
        let err = Settings::from_source(&[("PORTCULLIS_PASSWORD_MIN_LENGTH", "7")]).unwrap_err();
        assert_eq!(err.var, "PORTCULLIS_PASSWORD_MIN_LENGTH");
        let err = Settings::from_source(&[("DATABASE_URL", "mysql://x")]).unwrap_err();
        assert_eq!(err.var, "DATABASE_URL");
        let err = Settings::from_source(&[("PORTCULLIS_TRUSTED_PROXIES", "10.0.0.0/8, nonsense")])
            .unwrap_err();
        assert_eq!(err.var, "PORTCULLIS_TRUSTED_PROXIES");
        assert!(err.to_string().contains("nonsense"));
        for prefix in ["31", "129", "-1", "/64"] {
            let err = Settings::from_source(&[("PORTCULLIS_IPV6_PREFIX", prefix)]).unwrap_err();
            assert_eq!(err.var, "PORTCULLIS_IPV6_PREFIX");
        }
        let err =
            Settings::from_source(&[("PORTCULLIS_CLIENT_IP_HEADER", "x-real-ip")]).unwrap_err();
        assert_eq!(err.var, "PORTCULLIS_CLIENT_IP_HEADER");
        let err =
            Settings::from_source(&[("PORTCULLIS_DB_MIGRATE_TIMEOUT_SECS", "0")]).unwrap_err();
        assert_eq!(err.var, "PORTCULLIS_DB_MIGRATE_TIMEOUT_SECS");
        let err = Settings::from_source(&[("PORTCULLIS_RATE_LIMIT", "maybe")]).unwrap_err();
        assert_eq!(err.var, "PORTCULLIS_RATE_LIMIT");
        let err = Settings::from_source(&[("PORTCULLIS_LOCKOUT_LOCK_AFTER", "500")]).unwrap_err();
        assert_eq!(err.var, "PORTCULLIS_LOCKOUT_LOCK_AFTER");
        for max in ["101", "9"] {
            let err =
                Settings::from_source(&[("PORTCULLIS_LOCKOUT_MAX_FAILURES", max)]).unwrap_err();
            assert_eq!(err.var, "PORTCULLIS_LOCKOUT_MAX_FAILURES");
        }
        let err =
            Settings::from_source(&[("PORTCULLIS_CLIENT_LOCKOUT_WINDOW_SECS", "0")]).unwrap_err();
        assert_eq!(err.var, "PORTCULLIS_CLIENT_LOCKOUT_DURATION_SECS");
        for var in [
            "PORTCULLIS_SESSION_RETENTION_DAYS",
            "PORTCULLIS_AUDIT_RETENTION_DAYS",
        ] {
            for days in ["0", "36501", "-1", "soon"] {
                let err = Settings::from_source(&[(var, days)]).unwrap_err();
                assert_eq!(err.var, var);
            }
        }
    }

    #[test]
    fn the_pool_and_retention_have_backend_aware_defaults() {
        let sqlite = Settings::from_source(&[]).unwrap();
        assert_eq!(sqlite.db_max_connections, 4);
        assert_eq!(sqlite.session_retention, Duration::from_secs(30 * 86_400));
        assert_eq!(sqlite.audit_retention, Duration::from_secs(400 * 86_400));
        let postgres =
            Settings::from_source(&[("DATABASE_URL", "postgres://u@127.0.0.1/db")]).unwrap();
        assert_eq!(postgres.db_max_connections, 10);
        let set = Settings::from_source(&[
            ("DATABASE_URL", "postgres://u@127.0.0.1/db"),
            ("PORTCULLIS_DB_MAX_CONNECTIONS", "3"),
            ("PORTCULLIS_SESSION_RETENTION_DAYS", "7"),
            ("PORTCULLIS_AUDIT_RETENTION_DAYS", "90"),
        ])
        .unwrap();
        assert_eq!(set.db_max_connections, 3);
        assert_eq!(set.session_retention, Duration::from_secs(7 * 86_400));
        assert_eq!(set.audit_retention, Duration::from_secs(90 * 86_400));
    }

    #[test]
    fn proxies_and_limits_parse() {
        let settings = Settings::from_source(&[
            ("PORTCULLIS_TRUSTED_PROXIES", "10.0.0.0/8,127.0.0.1, ::1"),
            ("PORTCULLIS_RATE_LIMIT", "off"),
            ("PORTCULLIS_RATE_LIMIT_LOGIN_PER_MIN", "7"),
        ])
        .unwrap();
        assert_eq!(settings.trusted_proxies.len(), 3);
        assert_eq!(settings.client_ip_header, ForwardedHeader::XForwardedFor);
        assert_eq!(settings.ipv6_prefix, 64);
        assert!(!settings.rate_limit);
        assert_eq!(settings.quotas.log_in.per_minute, 7);
        let settings = Settings::from_source(&[
            ("PORTCULLIS_CLIENT_IP_HEADER", "Forwarded"),
            ("PORTCULLIS_IPV6_PREFIX", "56"),
        ])
        .unwrap();
        assert_eq!(settings.client_ip_header, ForwardedHeader::Forwarded);
        assert_eq!(settings.ipv6_prefix, 56);
    }
}
