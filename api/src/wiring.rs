//! Wiring: from settings to adapters to services. Opens storage, loads the
//! signing keys, picks the limit stores, builds the hasher, the token issuer
//! and the revocation cache, and assembles `AuthService`, `TaskService` and
//! the `AppState`, plus what the background jobs need. Nothing here serves.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use portcullis_domain::account::{AccountPolicy, AccountPorts, AccountService};
use portcullis_domain::audit::{AuditLog, AuditSink, AuthEventRepository};
use portcullis_domain::auth::{AuthPorts, AuthService};
use portcullis_domain::clock::Clock;
use portcullis_domain::limits::LimitPolicy;
use portcullis_domain::limits::{FailureCounter, RateLimiter};
use portcullis_domain::mfa::{MfaPorts, MfaRepository, MfaService, SecondFactorCrypto};
use portcullis_domain::password::PasswordPolicy;
use portcullis_domain::session::{
    SecretGenerator, SessionPolicy, SessionRepository, SessionService,
};
use portcullis_domain::task::TaskService;
use portcullis_domain::user::UserRepository;
use portcullis_infra::audit::{AuditFlusher, BackgroundAudit};
use portcullis_infra::background::TokioBackground;
use portcullis_infra::clock::SystemClock;
use portcullis_infra::crypto::{
    Argon2Hasher, DataKey, HashPoolConfig, JwtConfig, JwtTokens, RandomSecrets, SigningKeys,
    TotpFactors,
};
use portcullis_infra::db::{Database, DbOptions, ensure_data_dir, prepare_sqlite_file, sqlite_url};
use portcullis_infra::limits::{
    FallbackFailures, FallbackLimiter, GovernorRateLimiter, InMemoryFailureCounter,
    RedisFailureCounter, RedisRateLimiter, connect_redis,
};
use portcullis_infra::mail::{MailConfig, Mailer};
use portcullis_infra::revocation::{InMemoryRevocations, RevocationFeed, retention_for};
use secrecy::ExposeSecret;

use crate::jobs::JobPorts;
use crate::metrics::{MeteredAudit, Metrics};
use crate::settings::Settings;
use crate::state::AppState;

/// The common-password list shipped with the service.
const COMMON_PASSWORDS: &str = include_str!("../data/common-passwords.txt");

/// Leeway granted to clocks when verifying tokens.
const JWT_LEEWAY_SECS: u64 = 5;

/// Opens storage (and applies migrations).
///
/// # Errors
/// When the database cannot be reached or migrated.
pub async fn open_database(settings: &Settings) -> anyhow::Result<Database> {
    let url = match &settings.database_url {
        Some(url) => url.clone(),
        None => {
            ensure_data_dir(&settings.data_dir)?;
            let file = settings.data_dir.join("portcullis.db");
            prepare_sqlite_file(&file)?;
            sqlite_url(&file)
        }
    };
    let options = DbOptions {
        max_connections: settings.db_max_connections,
        acquire_timeout: settings.db_acquire_timeout,
        statement_timeout: settings.db_statement_timeout,
    };
    let db = Database::connect(&url, &options)
        .await
        .context("connecting to the database")?;
    Ok(db)
}

/// Applies the migrations within `PORTCULLIS_DB_MIGRATE_TIMEOUT_SECS`, so a
/// database that accepts connections and then never answers stops the start
/// with a clear error instead of hanging it.
///
/// # Errors
/// A migration failed, or the deadline passed.
pub async fn migrate(db: &Database, settings: &Settings) -> anyhow::Result<()> {
    match tokio::time::timeout(settings.db_migrate_timeout, db.migrate()).await {
        Ok(result) => result.context("applying migrations"),
        Err(_) => anyhow::bail!(
            "applying migrations: the database did not finish within {} s \
             (PORTCULLIS_DB_MIGRATE_TIMEOUT_SECS); is it reachable and answering?",
            settings.db_migrate_timeout.as_secs()
        ),
    }
}

/// Loads the signing keys the settings ask for.
///
/// # Errors
/// When keys cannot be read or created.
pub fn load_keys(settings: &Settings) -> anyhow::Result<SigningKeys> {
    match &settings.jwt_secret {
        Some(secret) => SigningKeys::hs256(secret.expose_secret().as_bytes()),
        None => SigningKeys::load_or_create_ed25519(&settings.data_dir.join("keys")),
    }
}

/// The wired service: the state handlers reach, the audit queue to flush on
/// shutdown, and what the background jobs need.
pub struct Wired {
    pub state: Arc<AppState>,
    pub audit: AuditFlusher,
    pub jobs: JobPorts,
}

/// Builds the services on `db` and `keys` as `settings` ask, and primes the
/// revocation cache.
///
/// # Errors
/// A bad password policy or hash pool, an unusable Redis URL, or storage
/// that cannot be read.
pub async fn wire(settings: &Settings, db: Database, keys: SigningKeys) -> anyhow::Result<Wired> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let session_policy = SessionPolicy {
        access_ttl: to_time(settings.access_token_ttl),
        idle_ttl: to_time(settings.session_idle_ttl),
        absolute_ttl: to_time(settings.session_absolute_ttl),
        reuse_grace: to_time(settings.refresh_reuse_grace),
    };
    let password_policy = PasswordPolicy::new(
        settings.password_min_length,
        COMMON_PASSWORDS.lines().map(str::to_owned),
    )?;
    let tokens = Arc::new(JwtTokens::new(
        keys.clone(),
        JwtConfig {
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
            leeway_secs: JWT_LEEWAY_SECS,
        },
    ));
    let hasher = Arc::new(Argon2Hasher::new(HashPoolConfig {
        workers: settings.hash_workers,
        queue: settings.hash_queue,
        backend: settings.argon2_backend,
    })?);
    tracing::info!(
        backend = settings.argon2_backend.name(),
        implementation = %settings.argon2_backend.describe(),
        workers = settings.hash_workers,
        "password hashing"
    );
    let hash_depth = hasher.clone();
    // Every access token of a revoked session has expired after this, counted
    // from when this instance learns of the revocation.
    let retention = retention_for(
        session_policy.access_ttl,
        time::Duration::seconds(i64::try_from(JWT_LEEWAY_SECS).unwrap_or(30)),
    );
    let revocations = Arc::new(InMemoryRevocations::new(retention));
    let sessions: Arc<dyn SessionRepository> = Arc::new(db.sessions());
    let mut feed = RevocationFeed::new(
        revocations.clone(),
        sessions.clone(),
        clock.clone(),
        retention,
        settings.revocation_poll,
    );
    feed.prime().await?;

    let events: Arc<dyn AuthEventRepository> = Arc::new(db.events());
    let (audit_sink, audit) = BackgroundAudit::spawn(events.clone(), 10_000);
    let dropped = audit_sink.clone();
    let metrics = Arc::new(Metrics::new(
        Arc::new(move || hash_depth.queue_depth() as u64),
        Arc::new(move || dropped.dropped()),
    ));
    let LimitStores { limiter, failures } = limit_stores(settings)?;
    if !settings.rate_limit {
        tracing::warn!(
            "PORTCULLIS_RATE_LIMIT=off: EVERY RATE LIMIT AND LOGIN LOCKOUT IS DISABLED. Use this for benchmarks only, never in production."
        );
    }
    let audit_port: Arc<dyn AuditSink> = Arc::new(MeteredAudit {
        inner: audit_sink,
        metrics: metrics.clone(),
    });
    let sessions_service = SessionService::new(
        sessions.clone(),
        revocations.clone(),
        audit_port.clone(),
        clock.clone(),
    );
    let events_for_jobs = events.clone();
    let audit_log = AuditLog::new(events);
    let users: Arc<dyn UserRepository> = Arc::new(db.users());
    let data_key = DataKey::load_or_create(
        settings.data_key.as_ref().map(ExposeSecret::expose_secret),
        &settings.data_dir.join("keys"),
    )?;
    let mfa: Arc<dyn MfaRepository> = Arc::new(db.mfa());
    let factors: Arc<dyn SecondFactorCrypto> = Arc::new(TotpFactors::new(data_key, "Portcullis"));
    let secrets: Arc<dyn SecretGenerator> = Arc::new(RandomSecrets);
    let limit_policy = LimitPolicy {
        enabled: settings.rate_limit,
        account: settings.account_lockout,
        client: settings.client_lockout,
    };
    let auth = AuthService::new(
        AuthPorts {
            users: users.clone(),
            sessions: sessions.clone(),
            hasher: hasher.clone(),
            issuer: tokens.clone(),
            verifier: tokens,
            revocations: revocations.clone(),
            secrets: secrets.clone(),
            clock: clock.clone(),
            audit: audit_port.clone(),
            limiter: limiter.clone(),
            failures: failures.clone(),
            mfa: mfa.clone(),
            factors: factors.clone(),
        },
        password_policy.clone(),
        session_policy,
        limit_policy,
    );
    let account_policy = AccountPolicy {
        require_verified_email: settings.require_verified_email,
        ..AccountPolicy::default()
    };
    let account = AccountService::new(
        AccountPorts {
            users: users.clone(),
            accounts: Arc::new(db.accounts()),
            hasher: hasher.clone(),
            revocations: revocations.clone(),
            secrets: secrets.clone(),
            clock: clock.clone(),
            audit: audit_port.clone(),
            limiter: limiter.clone(),
            failures: failures.clone(),
            background: Arc::new(TokioBackground::new()),
            mfa: mfa.clone(),
            factors: factors.clone(),
        },
        password_policy.clone(),
        account_policy,
        limit_policy,
    );
    let mfa_service = MfaService::new(
        MfaPorts {
            users: users.clone(),
            mfa,
            factors,
            hasher: hasher.clone(),
            revocations: revocations.clone(),
            clock: clock.clone(),
            audit: audit_port.clone(),
            limiter: limiter.clone(),
            failures: failures.clone(),
        },
        limit_policy,
    );
    let auth = auth.with_account_policy(account_policy);
    let mailer = Arc::new(Mailer::new(&MailConfig {
        smtp_url: settings.smtp_url.clone(),
        from: settings.mail_from.clone(),
        public_url: settings.public_url.clone(),
        mail_dir: settings.data_dir.join("mail"),
        templates_dir: settings.mail_templates_dir.clone(),
        service_name: "Portcullis".to_owned(),
    })?);
    tracing::info!(
        delivery = %mailer.describe(),
        public_url = %settings.public_url,
        "email"
    );
    let tasks = TaskService::new(Arc::new(db.tasks()), clock.clone());
    let outbox = db.outbox();
    let state = Arc::new(AppState {
        auth,
        account,
        mfa: mfa_service,
        sessions: sessions_service,
        audit_log,
        tasks,
        keys,
        readiness: Arc::new(db),
        metrics: metrics.clone(),
    });
    Ok(Wired {
        state,
        audit,
        jobs: JobPorts {
            sessions,
            clock,
            metrics,
            session_retention: to_time(settings.session_retention),
            events: events_for_jobs,
            event_retention: to_time(settings.audit_retention),
            revocation_retention: retention,
            revocation_feed: feed,
            mailer,
            outbox,
        },
    })
}

/// The limit stores in force. The in-process ones bound their own memory
/// (a hard cap with O(1) eviction): nothing needs pruning.
struct LimitStores {
    limiter: Arc<dyn RateLimiter>,
    failures: Arc<dyn FailureCounter>,
}

/// The limiter and failure counter the settings ask for: shared in Redis
/// (with an in-process fallback), or in-process only.
fn limit_stores(settings: &Settings) -> anyhow::Result<LimitStores> {
    let local_limiter = GovernorRateLimiter::new(settings.quotas);
    let local_failures = InMemoryFailureCounter::default();
    match &settings.redis_url {
        Some(url) => {
            let redis = connect_redis(url, "portcullis")?;
            Ok(LimitStores {
                limiter: Arc::new(FallbackLimiter::new(
                    RedisRateLimiter::new(redis.clone(), settings.quotas),
                    local_limiter,
                )),
                failures: Arc::new(FallbackFailures::new(
                    RedisFailureCounter::new(redis),
                    local_failures,
                )),
            })
        }
        None => Ok(LimitStores {
            limiter: Arc::new(local_limiter),
            failures: Arc::new(local_failures),
        }),
    }
}

fn to_time(duration: Duration) -> time::Duration {
    time::Duration::try_from(duration).unwrap_or(time::Duration::MAX)
}
