//! Building the application: state, routes, middleware, and serving with a
//! graceful shutdown. `Application::build` is what `main` and the black-box
//! tests both call.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use poem::http::{HeaderValue, StatusCode, header};
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::{Endpoint, EndpointExt, IntoResponse, Middleware, Request, Response, Route, Server};
use poem_openapi::{ContactObject, LicenseObject, OpenApiService, ServerObject};
use portcullis_domain::audit::{AuthEventRepository, RequestContext};
use portcullis_domain::auth::{AuthPorts, AuthService, LimitPolicy};
use portcullis_domain::clock::Clock;
use portcullis_domain::limits::{FailureCounter, RateLimiter};
use portcullis_domain::password::PasswordPolicy;
use portcullis_domain::session::ClientInfo;
use portcullis_domain::session::{SessionPolicy, SessionRepository};
use portcullis_domain::task::TaskService;
use portcullis_infra::audit::{AuditFlusher, BackgroundAudit};
use portcullis_infra::clock::SystemClock;
use portcullis_infra::crypto::{
    Argon2Hasher, HashPoolConfig, JwtConfig, JwtTokens, RandomSecrets, SigningKeys,
};
use portcullis_infra::db::{Database, DbOptions, sqlite_url};
use portcullis_infra::limits::{
    FallbackFailures, FallbackLimiter, GovernorRateLimiter, InMemoryFailureCounter,
    RedisFailureCounter, RedisRateLimiter, connect_redis,
};
use portcullis_infra::revocation::{InMemoryRevocations, RevocationFeed};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::client_ip::ClientIpPolicy;
use crate::metrics::{MeteredAudit, Metrics};
use crate::problem::{ApiError, ProblemMiddleware};
use crate::routes::RouteTemplates;
use crate::routes::auth::AuthApi;
use crate::routes::discovery::DiscoveryApi;
use crate::routes::events::EventsApi;
use crate::routes::health::HealthApi;
use crate::routes::sessions::SessionsApi;
use crate::routes::tasks::TasksApi;
use crate::routes::users::UsersApi;
use crate::settings::Settings;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The common-password list shipped with the service.
const COMMON_PASSWORDS: &str = include_str!("../data/common-passwords.txt");

/// Leeway granted to clocks when verifying tokens.
const JWT_LEEWAY_SECS: u64 = 5;

/// What every request handler can reach.
pub struct AppState {
    pub auth: AuthService,
    pub tasks: TaskService,
    pub keys: SigningKeys,
    pub db: Database,
    pub metrics: Arc<Metrics>,
}

type AllApis = (
    AuthApi,
    EventsApi,
    UsersApi,
    SessionsApi,
    TasksApi,
    DiscoveryApi,
    HealthApi,
);

/// The OpenAPI service: the document, Swagger UI, and the operations.
pub fn openapi_service() -> OpenApiService<AllApis, ()> {
    OpenApiService::new(
        (
            AuthApi,
            EventsApi,
            UsersApi,
            SessionsApi,
            TasksApi,
            DiscoveryApi,
            HealthApi,
        ),
        "Portcullis",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Authentication and JWT security service. Sign up and log in with email and password, call protected APIs with short-lived \
         JWT access tokens, rotate refresh tokens, and log out for real. Every error is \
         `application/problem+json` (RFC 9457) with a stable `code`.",
    )
    .license(LicenseObject::new("Apache-2.0").url("https://www.apache.org/licenses/LICENSE-2.0"))
    .contact(
        ContactObject::new()
            .name("Portcullis maintainers")
            .url("https://portcullis.dev"),
    )
    .server(ServerObject::new("/").description("This server"))
}

/// The document as JSON.
pub fn openapi_json() -> String {
    openapi_service().spec()
}

/// The document as YAML.
pub fn openapi_yaml() -> String {
    openapi_service().spec_yaml()
}

/// Opens storage (and applies migrations).
///
/// # Errors
/// When the database cannot be reached or migrated.
pub async fn open_database(settings: &Settings) -> anyhow::Result<Database> {
    let url = match &settings.database_url {
        Some(url) => url.clone(),
        None => {
            std::fs::create_dir_all(&settings.data_dir).with_context(|| {
                format!("creating data directory {}", settings.data_dir.display())
            })?;
            sqlite_url(&settings.data_dir.join("portcullis.db"))
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

/// A built application, bound to its port, ready to serve.
pub struct Application {
    acceptor: TcpAcceptor,
    local_addr: SocketAddr,
    endpoint: poem::endpoint::BoxEndpoint<'static, Response>,
    background: Vec<tokio::task::JoinHandle<()>>,
    audit: AuditFlusher,
    shutdown_timeout: Duration,
}

/// The limit stores in force and the task that keeps in-process ones bounded.
struct LimitStores {
    limiter: Arc<dyn RateLimiter>,
    failures: Arc<dyn FailureCounter>,
    pruner: tokio::task::JoinHandle<()>,
}

/// The limiter and failure counter the settings ask for, and a task that
/// keeps the in-process ones bounded.
fn limit_stores(settings: &Settings) -> anyhow::Result<LimitStores> {
    let local_limiter = GovernorRateLimiter::new(settings.quotas);
    let local_failures = InMemoryFailureCounter::default();
    let (limiter, failures, pruner): (Arc<dyn RateLimiter>, Arc<dyn FailureCounter>, _) =
        match &settings.redis_url {
            Some(url) => {
                let redis = connect_redis(url, "portcullis")?;
                let limiter = Arc::new(FallbackLimiter::new(
                    RedisRateLimiter::new(redis.clone(), settings.quotas),
                    local_limiter,
                ));
                let failures = Arc::new(FallbackFailures::new(
                    RedisFailureCounter::new(redis),
                    local_failures,
                ));
                (limiter, failures, None)
            }
            None => {
                let limiter = Arc::new(local_limiter);
                let failures = Arc::new(local_failures);
                (
                    limiter.clone() as Arc<dyn RateLimiter>,
                    failures.clone() as Arc<dyn FailureCounter>,
                    Some((limiter, failures)),
                )
            }
        };
    let task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(30));
        loop {
            ticker.tick().await;
            if let Some((limiter, failures)) = &pruner {
                limiter.prune();
                failures.prune();
            }
        }
    });
    Ok(LimitStores {
        limiter,
        failures,
        pruner: task,
    })
}

impl Application {
    /// Connects, migrates, loads keys, binds the port and builds the routes.
    ///
    /// # Errors
    /// Any start-up failure, with context.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let db = open_database(&settings).await?;
        db.migrate().await.context("applying migrations")?;
        let keys = load_keys(&settings)?;

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
        })?);
        let hash_depth = hasher.clone();
        // Every access token of a revoked session has expired after this.
        let retention = session_policy.access_ttl
            + time::Duration::seconds(i64::try_from(JWT_LEEWAY_SECS).unwrap_or(30))
            + time::Duration::minutes(1);
        let revocations = Arc::new(InMemoryRevocations::new(retention));
        let sessions = Arc::new(db.sessions());
        let feed = RevocationFeed::new(
            revocations.clone(),
            sessions.clone(),
            clock.clone(),
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
        let sampler = spawn_session_sampler(db.sessions(), clock.clone(), metrics.clone());
        let purger = spawn_session_purger(db.sessions(), clock.clone(), settings.session_retention);
        let LimitStores {
            limiter,
            failures,
            pruner,
        } = limit_stores(&settings)?;
        if !settings.rate_limit {
            tracing::warn!(
                "PORTCULLIS_RATE_LIMIT=off: EVERY RATE LIMIT AND LOGIN LOCKOUT IS DISABLED. Use this for benchmarks only, never in production."
            );
        }
        let auth = AuthService::new(
            AuthPorts {
                users: Arc::new(db.users()),
                sessions,
                hasher,
                issuer: tokens.clone(),
                verifier: tokens,
                revocations,
                secrets: Arc::new(RandomSecrets),
                clock: clock.clone(),
                events,
                audit: Arc::new(MeteredAudit {
                    inner: audit_sink,
                    metrics: metrics.clone(),
                }),
                limiter,
                failures,
            },
            password_policy,
            session_policy,
            LimitPolicy {
                enabled: settings.rate_limit,
                account: settings.account_lockout,
                client: settings.client_lockout,
            },
        );
        let tasks = TaskService::new(Arc::new(db.tasks()), clock);
        let state = Arc::new(AppState {
            auth,
            tasks,
            keys,
            db,
            metrics,
        });

        let acceptor = TcpListener::bind(settings.bind.to_string())
            .into_acceptor()
            .await
            .with_context(|| format!("binding {}", settings.bind))?;
        let local_addr = acceptor
            .local_addr()
            .first()
            .and_then(|addr| addr.as_socket_addr().copied())
            .context("listener has no address")?;

        Ok(Self {
            acceptor,
            local_addr,
            endpoint: routes(state, ClientIpPolicy::new(settings.trusted_proxies.clone())).boxed(),
            background: vec![feed.spawn(), pruner, sampler, purger],
            audit,
            shutdown_timeout: settings.shutdown_timeout,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish
    /// within the configured deadline.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        tracing::info!(address = %self.local_addr, "portcullis listening");
        let result = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(self.endpoint, shutdown, Some(self.shutdown_timeout))
            .await;
        self.audit.flush(Duration::from_secs(5)).await;
        for task in self.background {
            task.abort();
        }
        result.context("serving HTTP")
    }
}

/// Samples the number of active sessions for the gauge every 30 s.
fn spawn_session_sampler(
    sessions: portcullis_infra::db::SeaOrmSessionRepository,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(30));
        loop {
            ticker.tick().await;
            match sessions.count_active(clock.now()).await {
                Ok(count) => metrics
                    .active_sessions
                    .store(count, std::sync::atomic::Ordering::Relaxed),
                Err(error) => tracing::debug!(error = %error, "sampling active sessions failed"),
            }
        }
    })
}

/// Sessions deleted per statement by the retention task.
const PURGE_BATCH: u64 = 1_000;

/// Deletes, every hour, the sessions that ended more than `retention` ago
/// (with their refresh tokens; audit events stay).
fn spawn_session_purger(
    sessions: portcullis_infra::db::SeaOrmSessionRepository,
    clock: Arc<dyn Clock>,
    retention: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(3_600));
        loop {
            ticker.tick().await;
            let before = clock.now() - to_time(retention);
            let mut purged = 0;
            loop {
                match sessions.purge_ended(before, PURGE_BATCH).await {
                    Ok(count) => {
                        purged += count;
                        if count < PURGE_BATCH {
                            break;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(error = %error, "purging ended sessions failed; retrying in an hour");
                        break;
                    }
                }
            }
            if purged > 0 {
                tracing::info!(
                    purged,
                    "purged sessions that ended before the retention period"
                );
            }
        }
    })
}

fn to_time(duration: Duration) -> time::Duration {
    time::Duration::try_from(duration).unwrap_or(time::Duration::MAX)
}

/// All routes with their middleware.
pub fn routes(
    state: Arc<AppState>,
    client_ips: ClientIpPolicy,
) -> impl Endpoint<Output = Response> {
    let api = openapi_service();
    let templates = Arc::new(RouteTemplates::from_spec(&api.spec()));
    let metrics = state.metrics.clone();
    let docs = api.swagger_ui();
    let json = api.spec_endpoint();
    let yaml = api.spec_endpoint_yaml();
    Route::new()
        .nest("/", api)
        .nest("/docs", docs)
        .at("/openapi.json", json)
        .at("/openapi.yaml", yaml)
        // Browsers ask for it on /docs; an empty answer keeps their consoles clean.
        .at(
            "/favicon.ico",
            poem::endpoint::make_sync(|_| StatusCode::NO_CONTENT),
        )
        .data(state)
        .with(BodyLimit)
        .with(ProblemMiddleware)
        .with(RequestScope {
            client_ips,
            templates,
            metrics,
        })
}

/// Refuses bodies over [`MAX_BODY_BYTES`] with 413, whether or not they
/// announce their length.
struct BodyLimit;

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint(ep)
    }
}

struct BodyLimitEndpoint<E>(E);

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let too_large = || poem::Error::from_status(StatusCode::PAYLOAD_TOO_LARGE);
        let announced = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
            return Err(too_large());
        }
        let body = req.take_body();
        if !body.is_empty() {
            let bytes = body
                .into_bytes_limit(MAX_BODY_BYTES)
                .await
                .map_err(|_| too_large())?;
            req.set_body(bytes);
        }
        self.0.call(req).await
    }
}

/// Gives every request an id (`X-Request-Id`), its client address, a
/// server span following the HTTP semantic conventions (continuing an
/// incoming W3C `traceparent`), a trace id (`X-Trace-Id`), and a duration
/// measurement.
struct RequestScope {
    client_ips: ClientIpPolicy,
    templates: Arc<RouteTemplates>,
    metrics: Arc<Metrics>,
}

impl<E: Endpoint> Middleware<E> for RequestScope {
    type Output = RequestScopeEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        RequestScopeEndpoint {
            inner: ep,
            client_ips: self.client_ips.clone(),
            templates: self.templates.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

struct RequestScopeEndpoint<E> {
    inner: E,
    client_ips: ClientIpPolicy,
    templates: Arc<RouteTemplates>,
    metrics: Arc<Metrics>,
}

struct HeaderExtractor<'a>(&'a poem::http::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The trace id of `span`: OpenTelemetry's when exporting, else the one of
/// an incoming `traceparent`, else a fresh random one, so audit events and
/// logs always carry one.
fn trace_id(span: &tracing::Span, headers: &poem::http::HeaderMap) -> String {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let context = span.context();
    let otel = context.span().span_context().trace_id();
    if otel != opentelemetry::trace::TraceId::INVALID {
        return otel.to_string();
    }
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let parts: Vec<&str> = v.split('-').collect();
            (parts.len() == 4
                && parts[1].len() == 32
                && parts[1]
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                && parts[1] != "00000000000000000000000000000000")
                .then(|| parts[1].to_owned())
        })
        .unwrap_or_else(|| Uuid::new_v4().simple().to_string())
}

impl<E: Endpoint> Endpoint for RequestScopeEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        use opentelemetry::KeyValue;
        use tracing::Instrument;
        use tracing_opentelemetry::OpenTelemetrySpanExt;

        let started = std::time::Instant::now();
        let request_id = Uuid::new_v4().to_string();
        let peer = req.remote_addr().as_socket_addr().map(|addr| addr.ip());
        let client_ip = self.client_ips.client_ip(peer, req.headers());
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let method = req.method().as_str().to_owned();
        let route = self.templates.route(req.uri().path());
        let span = tracing::info_span!(
            "http.server.request",
            otel.name = %format!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            http.request.method = %method,
            http.route = %route,
            url.path = %req.uri().path(),
            url.scheme = "http",
            client.address = %client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            user_agent.original = %user_agent.as_deref().unwrap_or_default().chars().take(256).collect::<String>(),
            http.response.status_code = tracing::field::Empty,
            request_id = %request_id,
            trace_id = tracing::field::Empty,
        );
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderExtractor(req.headers()))
        });
        let _ = span.set_parent(parent);
        let trace_id = trace_id(&span, req.headers());
        span.record("trace_id", trace_id.as_str());
        req.extensions_mut().insert(RequestContext {
            client: ClientInfo::new(user_agent.as_deref(), client_ip.map(|ip| ip.to_string())),
            request_id: Some(request_id.clone()),
            trace_id: Some(trace_id.clone()),
        });

        let result = self.inner.call(req).instrument(span.clone()).await;
        let mut response = match result {
            Ok(response) => response.into_response(),
            Err(error) => {
                let status = error.status();
                ApiError::new(status, "internal", "An internal error occurred.")
                    .problem
                    .into_poem_response()
            }
        };
        let status = response.status().as_u16();
        if response.status() == StatusCode::METHOD_NOT_ALLOWED
            && !response.headers().contains_key(header::ALLOW)
            && let Some(allow) = self.templates.allowed_methods(&route)
            && let Ok(value) = HeaderValue::from_str(&allow)
        {
            response.headers_mut().insert(header::ALLOW, value);
        }
        // As i64: tracing-opentelemetry exports u64 fields as strings, and
        // the semantic conventions want an int.
        span.record("http.response.status_code", i64::from(status));
        if status >= 500 {
            span.record("otel.status_code", "ERROR");
        }
        let elapsed = started.elapsed();
        self.metrics.http_duration.record(
            elapsed.as_secs_f64(),
            &[
                KeyValue::new("http.request.method", method),
                KeyValue::new("http.route", route),
                KeyValue::new("http.response.status_code", i64::from(status)),
            ],
        );
        span.in_scope(|| {
            tracing::info!(
                status,
                elapsed_ms = elapsed.as_millis() as u64,
                "request finished"
            );
        });
        for (name, value) in [("x-request-id", request_id), ("x-trace-id", trace_id)] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        Ok(response)
    }
}
