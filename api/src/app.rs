//! Assembly: `Application::build` opens storage, migrates, loads keys, wires
//! the services, starts the background jobs and binds the port; `routes`
//! puts the operations behind their middleware; `run_until` serves with a
//! graceful shutdown. `main` and the black-box tests both call it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::{Endpoint, EndpointExt, Response, Route, Server};
use portcullis_infra::audit::AuditFlusher;

use crate::http::client_ip::ClientIpPolicy;
use crate::http::connections::{ConnectionLimits, GuardedAcceptor, default_max_connections};
use crate::http::middleware::body_limit::BodyLimit;
use crate::http::middleware::problem::ProblemMiddleware;
use crate::http::middleware::request_scope::RequestScope;
use crate::http::middleware::route_templates::RouteTemplates;
use crate::jobs;
use crate::jobs::shutdown::Jobs;
use crate::openapi::openapi_service;
use crate::settings::Settings;
use crate::state::AppState;
use crate::wiring::{self, Wired, load_keys, open_database};

/// How long the background jobs get to stop after the server has.
const JOBS_DEADLINE: Duration = Duration::from_secs(5);

/// A built application, bound to its port, ready to serve.
pub struct Application {
    acceptor: GuardedAcceptor<TcpAcceptor>,
    local_addr: SocketAddr,
    endpoint: poem::endpoint::BoxEndpoint<'static, Response>,
    jobs: Jobs,
    audit: AuditFlusher,
    shutdown_timeout: Duration,
}

impl Application {
    /// Connects, migrates, loads keys, binds the port and builds the routes.
    ///
    /// # Errors
    /// Any start-up failure, with context.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let db = open_database(&settings).await?;
        wiring::migrate(&db, &settings).await?;
        let keys = load_keys(&settings)?;
        let Wired { state, audit, jobs } = wiring::wire(&settings, db, keys).await?;
        let jobs = jobs::start(jobs);

        let acceptor = TcpListener::bind(settings.bind.to_string())
            .into_acceptor()
            .await
            .with_context(|| format!("binding {}", settings.bind))?;
        let local_addr = acceptor
            .local_addr()
            .first()
            .and_then(|addr| addr.as_socket_addr().copied())
            .context("listener has no address")?;

        let limits = connection_limits(&settings);
        tracing::debug!(?limits, "connection limits");
        Ok(Self {
            acceptor: GuardedAcceptor::new(acceptor, limits),
            local_addr,
            endpoint: routes(
                state,
                ClientIpPolicy::new(
                    settings.trusted_proxies.clone(),
                    settings.client_ip_header,
                    settings.ipv6_prefix,
                ),
                settings.body_timeout,
            )
            .boxed(),
            jobs,
            audit,
            shutdown_timeout: settings.shutdown_timeout,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish
    /// within the configured deadline, flushes the audit queue and stops the
    /// background jobs.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        tracing::info!(address = %self.local_addr, "portcullis listening");
        let result = Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(self.endpoint, shutdown, Some(self.shutdown_timeout))
            .await;
        self.audit.flush(Duration::from_secs(5)).await;
        self.jobs.stop(JOBS_DEADLINE).await;
        result.context("serving HTTP")
    }
}

/// The caps and deadlines of the acceptor, defaults derived from the
/// open-file limit.
fn connection_limits(settings: &Settings) -> ConnectionLimits {
    let max = settings
        .max_connections
        .unwrap_or_else(default_max_connections);
    ConnectionLimits {
        max,
        per_client: settings
            .max_connections_per_client
            .unwrap_or((max / 4).max(1)),
        header_timeout: settings.header_timeout,
        keep_alive: settings.keep_alive_timeout,
        exempt: settings.trusted_proxies.clone(),
    }
}

/// All routes with their middleware; request bodies must arrive within
/// `body_timeout`.
pub fn routes(
    state: Arc<AppState>,
    client_ips: ClientIpPolicy,
    body_timeout: Duration,
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
        .nest("/account", crate::routes::account::pages::routes())
        .at("/openapi.json", json)
        .at("/openapi.yaml", yaml)
        // Browsers ask for it on /docs; an empty answer keeps their consoles clean.
        .at(
            "/favicon.ico",
            poem::endpoint::make_sync(|_| StatusCode::NO_CONTENT),
        )
        .data(state)
        .with(BodyLimit::new(body_timeout))
        .with(ProblemMiddleware)
        .with(RequestScope::new(client_ips, templates, metrics))
}
