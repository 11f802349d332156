//! Reliability of the real `portcullis` binary, run as a child process:
//! database faults (through a test-owned TCP proxy in front of PostgreSQL),
//! graceful shutdown on SIGTERM, crash safety under `kill -9`, and
//! idempotent, concurrent migrations.
//!
//! Tests that need PostgreSQL are ignored by default (`cargo test --workspace`
//! passes without it); CI runs them with `--include-ignored`. They read
//! `PORTCULLIS_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and work in a fresh database
//! each, dropped at the end.
//!
//! Every wait is bounded: a client timeout or a bounded polling loop is a hang
//! guard, never a timing assertion.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Client, RequestBuilder, Response, StatusCode};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const PASSWORD: &str = "a long and quiet river at dawn";
/// Hang guard for one HTTP request.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Hang guard for a server to start (migrations included).
const START_BOUND: Duration = Duration::from_secs(60);
/// Hang guard for the service to recover after a fault ends.
const RECOVERY_BOUND: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(25);

// ---------------------------------------------------------------------------
// The binary as a child process
// ---------------------------------------------------------------------------

fn client() -> Client {
    Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `portcullis` with a clean environment: nothing the developer or CI has
/// exported (`DATABASE_URL`, `PORTCULLIS_*`, `REDIS_URL`, `OTEL_*`) leaks in.
fn portcullis(data_dir: &Path, database_url: Option<&str>, env: &[(&str, String)]) -> Command {
    let mut command = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("PORTCULLIS_")
            || name.starts_with("OTEL_")
            || name == "DATABASE_URL"
            || name == "REDIS_URL"
        {
            command.env_remove(name.as_ref());
        }
    }
    command.env("PORTCULLIS_DATA_DIR", data_dir);
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command.stdin(Stdio::null());
    command
}

static LOG_SEQ: AtomicU64 = AtomicU64::new(0);

/// A file to send a child's output to, kept in the test's temp dir.
fn log_file(dir: &Path, what: &str) -> (PathBuf, File) {
    let path = dir.join(format!(
        "{what}-{}.log",
        LOG_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let file = File::create(&path).unwrap();
    (path, file)
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// How to start the server.
#[derive(Clone)]
struct Config {
    data_dir: PathBuf,
    database_url: Option<String>,
    env: Vec<(&'static str, String)>,
}

impl Config {
    fn new(data_dir: &Path, database_url: Option<String>) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            database_url,
            env: vec![
                ("PORTCULLIS_HASH_WORKERS", "2".to_owned()),
                ("PORTCULLIS_DB_MAX_CONNECTIONS", "4".to_owned()),
            ],
        }
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.env.retain(|(n, _)| *n != name);
        self.env.push((name, value.into()));
        self
    }
}

/// A running `portcullis serve`. Killed on drop; its log is printed when the
/// test fails.
struct Service {
    child: Child,
    addr: SocketAddr,
    base: String,
    log: PathBuf,
}

enum StartError {
    /// The process exited before it became live.
    Exited(ExitStatus),
}

impl Service {
    /// Starts the server on a free port and waits until `/health/live` is 200.
    async fn start(config: &Config) -> Service {
        // A free port can be taken by someone else before the child binds it:
        // try again on another port when that happens.
        for _ in 0..5 {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let (log, file) = log_file(&config.data_dir, "serve");
            let child = portcullis(
                &config.data_dir,
                config.database_url.as_deref(),
                &config.env,
            )
            .arg("serve")
            .env("PORTCULLIS_BIND", addr.to_string())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
            let mut service = Service {
                child,
                addr,
                base: format!("http://{addr}"),
                log,
            };
            match service.wait_live().await {
                Ok(()) => return service,
                Err(StartError::Exited(status)) => {
                    let log = tail(&service.log);
                    if log.contains("binding") {
                        continue;
                    }
                    panic!("portcullis exited with {status} before becoming live:\n{log}");
                }
            }
        }
        panic!("could not find a free port for portcullis");
    }

    async fn wait_live(&mut self) -> Result<(), StartError> {
        let client = client();
        let deadline = Instant::now() + START_BOUND;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(StartError::Exited(status));
            }
            if let Ok(resp) = client
                .get(self.url("/health/live"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                && resp.status() == StatusCode::OK
            {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
        panic!(
            "portcullis never became live within {START_BOUND:?}:\n{}",
            tail(&self.log)
        );
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -TERM`.
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("the `kill` command runs");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// `kill -9`, and reap the process.
    fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for the process to exit, at most `bound`.
    async fn wait_exit(&mut self, bound: Duration) -> ExitStatus {
        let deadline = Instant::now() + bound;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!(
            "portcullis did not exit within {bound:?}:\n{}",
            tail(&self.log)
        );
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- portcullis log ({}) ---\n{}",
                self.log.display(),
                tail(&self.log)
            );
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP helpers
// ---------------------------------------------------------------------------

fn credentials(email: &str) -> Value {
    json!({ "email": email, "password": PASSWORD })
}

fn new_email(prefix: &str) -> String {
    format!("{prefix}-{}@example.com", Uuid::new_v4().simple())
}

async fn body(resp: Response) -> Value {
    resp.json().await.unwrap_or(Value::Null)
}

/// Waits until the mail directory holds a message.
async fn wait_for_eml(dir: &Path) {
    for _ in 0..200 {
        let written = std::fs::read_dir(dir).is_ok_and(|entries| entries.count() > 0);
        if written {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no message was written to {}", dir.display());
}

/// Signs up a fresh user; returns its email and token pair.
async fn sign_up(client: &Client, service: &Service) -> (String, Value) {
    let email = new_email("user");
    let resp = client
        .post(service.url("/api/v1/auth/signup"))
        .json(&credentials(&email))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let pair = body(resp).await;
    assert_eq!(status, StatusCode::CREATED, "sign-up: {pair}");
    (email, pair)
}

fn token(pair: &Value, name: &str) -> String {
    pair[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {pair}"))
        .to_owned()
}

/// Asserts a 503 `application/problem+json` with a `Retry-After`.
async fn assert_unavailable(what: &str, resp: Result<Response, reqwest::Error>) {
    let resp = resp.unwrap_or_else(|e| {
        panic!("{what}: no answer within the {CLIENT_TIMEOUT:?} client timeout: {e}")
    });
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let problem = body(resp).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: expected 503, got {status}: {problem}"
    );
    assert!(
        content_type.starts_with("application/problem+json"),
        "{what}: content type {content_type:?}"
    );
    assert!(
        retry_after.is_some_and(|secs| secs >= 1),
        "{what}: 503 without a Retry-After in seconds"
    );
    assert_eq!(problem["status"], 503, "{what}: {problem}");
    assert!(problem["code"].is_string(), "{what}: {problem}");
}

// ---------------------------------------------------------------------------
// PostgreSQL: a fresh database per test, and a fault-injecting proxy
// ---------------------------------------------------------------------------

/// The parts of a `postgres://` URL the tests rewrite.
#[derive(Clone)]
struct PgUrl {
    /// `postgres://user@`
    prefix: String,
    /// `host:port`
    host_port: String,
    /// `?...`, or empty.
    query: String,
}

impl PgUrl {
    fn from_env() -> (PgUrl, String) {
        let url = std::env::var("PORTCULLIS_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((user, host)) => (format!("{user}@"), host.to_owned()),
            None => (String::new(), authority.to_owned()),
        };
        let host_port = if host_port.contains(':') {
            host_port
        } else {
            format!("{host_port}:5432")
        };
        let query = path
            .split_once('?')
            .map(|(_, q)| format!("?{q}"))
            .unwrap_or_default();
        (
            PgUrl {
                prefix: format!("{scheme}://{userinfo}"),
                host_port,
                query,
            },
            url,
        )
    }

    fn database(&self, name: &str) -> String {
        format!("{}{}/{name}{}", self.prefix, self.host_port, self.query)
    }

    /// Through the proxy, in clear text so that the proxy can tell a ping
    /// from a statement.
    fn database_via(&self, proxy: SocketAddr, name: &str) -> String {
        let query = if self.query.is_empty() {
            "?sslmode=disable".to_owned()
        } else {
            format!("{}&sslmode=disable", self.query)
        };
        format!("{}{proxy}/{name}{query}", self.prefix)
    }
}

/// A fresh PostgreSQL database, dropped (`WITH (FORCE)`) when this is.
struct PgDatabase {
    admin_url: String,
    pg: PgUrl,
    name: String,
}

impl PgDatabase {
    async fn create() -> PgDatabase {
        let (pg, admin_url) = PgUrl::from_env();
        let name = format!("portcullis_rel_{}", Uuid::new_v4().simple());
        let admin = sea_orm::Database::connect(&admin_url)
            .await
            .expect("PostgreSQL must be reachable at PORTCULLIS_TEST_POSTGRES_URL");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        PgDatabase {
            admin_url,
            pg,
            name,
        }
    }

    fn url(&self) -> String {
        self.pg.database(&self.name)
    }

    fn url_via(&self, proxy: &Proxy) -> String {
        self.pg.database_via(proxy.addr, &self.name)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop cannot await: do it on a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let admin = sea_orm::Database::connect(&admin_url).await.ok()?;
                let result = admin.execute_unprepared(&sql).await;
                let _ = admin.close().await;
                result.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Forward everything.
    Pass,
    /// New connections are reset as soon as they are accepted (the database
    /// is down). Existing ones are left alone: see [`Proxy::drop_connections`].
    Refuse,
    /// Accept, but never forward a byte either way, on new and existing
    /// connections (the database host froze).
    BlackHole,
    /// Existing connections keep answering sqlx's liveness ping (a lone
    /// `Sync` message) but every statement is swallowed, so a query already
    /// on its way never gets an answer and the server's `statement_timeout`
    /// cannot fire (the network failed mid-query). New connections are black
    /// holes.
    Stall,
}

#[derive(Clone, Copy, Debug)]
struct ProxyState {
    mode: Mode,
    /// Connections opened under an older epoch are reset.
    epoch: u64,
}

/// A TCP proxy between the service and PostgreSQL that injects faults.
struct Proxy {
    addr: SocketAddr,
    state: watch::Sender<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

/// A PostgreSQL `Sync` message: what sqlx's ping sends.
const PG_SYNC: [u8; 5] = [b'S', 0, 0, 0, 4];

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (state, watcher) = watch::channel(ProxyState {
            mode: Mode::Pass,
            epoch: 0,
        });
        let task = tokio::spawn(async move {
            // Aborting this task drops the set, which aborts every connection.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            connections.spawn(proxy_connection(stream, upstream.clone(), watcher.clone()));
                        }
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Proxy { addr, state, task }
    }

    fn set_mode(&self, mode: Mode) {
        self.state.send_modify(|state| {
            // Leaving a black hole or a stall resets what it held: those
            // connections are mid-protocol and cannot be resumed.
            if matches!(state.mode, Mode::BlackHole | Mode::Stall) && state.mode != mode {
                state.epoch += 1;
            }
            state.mode = mode;
        });
    }

    /// Resets every open connection.
    fn drop_connections(&self) {
        self.state.send_modify(|state| state.epoch += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Closes with a TCP reset rather than an orderly FIN.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

enum Ended {
    /// One side closed.
    Closed,
    /// A fault took the connection over.
    Interrupted,
}

async fn proxy_connection(
    mut client: TcpStream,
    upstream: String,
    mut state: watch::Receiver<ProxyState>,
) {
    let start = *state.borrow_and_update();
    let epoch = start.epoch;
    match start.mode {
        Mode::Pass => {}
        Mode::Refuse => return reset(client),
        Mode::BlackHole | Mode::Stall => {
            let _ = state.wait_for(|s| s.epoch != epoch).await;
            return reset(client);
        }
    }
    let Ok(mut server) = TcpStream::connect(&upstream).await else {
        return reset(client);
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let ended = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        tokio::select! {
            ended = pump(client_read, server_write, state.clone(), epoch, true) => ended,
            ended = pump(server_read, client_write, state.clone(), epoch, false) => ended,
        }
    };
    if let Ended::Interrupted = ended {
        // Hold both sockets open, silent, until the fault ends.
        let _ = state.wait_for(|s| s.epoch != epoch).await;
        reset(client);
        reset(server);
    }
}

async fn pump(
    mut from: tokio::net::tcp::ReadHalf<'_>,
    mut to: tokio::net::tcp::WriteHalf<'_>,
    mut state: watch::Receiver<ProxyState>,
    epoch: u64,
    to_database: bool,
) -> Ended {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            // A fault that has begun wins over bytes that are waiting.
            biased;
            _ = state.wait_for(|s| s.epoch != epoch || s.mode == Mode::BlackHole) => {
                return Ended::Interrupted;
            }
            read = from.read(&mut buf) => read,
        };
        let n = match read {
            Ok(0) | Err(_) => return Ended::Closed,
            Ok(n) => n,
        };
        let now = *state.borrow();
        if now.epoch != epoch || now.mode == Mode::BlackHole {
            return Ended::Interrupted;
        }
        let mode = now.mode;
        if to_database && mode == Mode::Stall && buf[..n] != PG_SYNC {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return Ended::Closed;
        }
    }
}

// ---------------------------------------------------------------------------
// 1. Database faults
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// PostgreSQL went away: connections reset, new ones refused.
    Down,
    /// PostgreSQL's host froze: nothing comes back, nothing is refused.
    Hang,
    /// The network failed with statements in flight on live connections.
    Stall,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: run with --include-ignored (CI does)"]
async fn postgres_faults_give_503_and_the_service_recovers_by_itself() {
    let db = PgDatabase::create().await;
    let proxy = Proxy::start(db.pg.host_port.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Config::new(dir.path(), Some(db.url_via(&proxy)))
        .with("PORTCULLIS_DB_ACQUIRE_TIMEOUT_MS", "1000")
        .with("PORTCULLIS_DB_STATEMENT_TIMEOUT_MS", "1000")
        .with("PORTCULLIS_RATE_LIMIT", "off");
    let service = Service::start(&config).await;
    let client = client();

    let (email, pair) = sign_up(&client, &service).await;
    let access = token(&pair, "access_token");
    let login = || {
        client
            .post(service.url("/api/v1/auth/login"))
            .json(&credentials(&email))
            .send()
    };
    let get = |path: &str| client.get(service.url(path)).send();
    let get_auth = |path: &str| client.get(service.url(path)).bearer_auth(&access).send();
    assert_eq!(get("/health/ready").await.unwrap().status(), StatusCode::OK);
    // Read once, the profile is kept in memory (it never changes).
    assert_eq!(
        get_auth("/api/v1/users/me").await.unwrap().status(),
        StatusCode::OK
    );

    for fault in [Fault::Down, Fault::Hang, Fault::Stall] {
        match fault {
            Fault::Down => {
                proxy.set_mode(Mode::Refuse);
                proxy.drop_connections();
            }
            Fault::Hang => proxy.set_mode(Mode::BlackHole),
            Fault::Stall => proxy.set_mode(Mode::Stall),
        }

        assert_unavailable(
            &format!("{fault:?}: /health/ready"),
            get("/health/ready").await,
        )
        .await;
        assert_unavailable(&format!("{fault:?}: login"), login().await).await;
        assert_unavailable(
            &format!("{fault:?}: /sessions"),
            get_auth("/api/v1/sessions").await,
        )
        .await;
        // Checking a token needs no database; neither does liveness, nor a
        // profile already read.
        let verify = get_auth("/api/v1/auth/verify").await.unwrap();
        assert_eq!(verify.status(), StatusCode::OK, "{fault:?}: verify");
        let me = get_auth("/api/v1/users/me").await.unwrap();
        assert_eq!(me.status(), StatusCode::OK, "{fault:?}: /users/me");
        assert_eq!(
            get("/health/live").await.unwrap().status(),
            StatusCode::OK,
            "{fault:?}: live"
        );

        proxy.set_mode(Mode::Pass);
        let deadline = Instant::now() + RECOVERY_BOUND;
        loop {
            let ready = get("/health/ready").await.map(|r| r.status());
            let logged_in = login().await.map(|r| r.status());
            if matches!(ready, Ok(StatusCode::OK)) && matches!(logged_in, Ok(StatusCode::OK)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{fault:?}: no recovery within {RECOVERY_BOUND:?}: ready {ready:?}, login {logged_in:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let sessions = get_auth("/api/v1/sessions").await.unwrap();
        assert_eq!(
            sessions.status(),
            StatusCode::OK,
            "{fault:?}: /sessions after recovery"
        );
    }
    drop(service);
}

/// SQLite's fault: another process holds the database's write lock. Writers
/// wait out `busy_timeout` and get a 503, never a 500 or a hang; readers go on
/// (WAL); once the lock is released, writes work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_write_lock_held_elsewhere_gives_503_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::new(dir.path(), None).with("PORTCULLIS_RATE_LIMIT", "off");
    let service = Service::start(&config).await;
    let client = client();
    let (email, pair) = sign_up(&client, &service).await;
    let access = token(&pair, "access_token");
    // The sign-up's verification email is written first: the lock below is
    // about requests, not about mail queued just before it.
    wait_for_eml(&dir.path().join("mail")).await;
    let sign_up_request = || {
        client
            .post(service.url("/api/v1/auth/signup"))
            .json(&credentials(&new_email("locked")))
            .send()
    };

    let url = portcullis_infra::db::sqlite_url(&dir.path().join("portcullis.db"));
    let other = sea_orm::Database::connect(&url).await.unwrap();
    let lock = other.begin().await.unwrap();
    lock.execute_unprepared("CREATE TABLE reliability_lock (x INTEGER)")
        .await
        .unwrap();

    assert_unavailable(
        "sign-up while the write lock is held",
        sign_up_request().await,
    )
    .await;
    let login = client
        .post(service.url("/api/v1/auth/login"))
        .json(&credentials(&email))
        .send()
        .await;
    assert_unavailable("log-in while the write lock is held", login).await;
    for path in ["/api/v1/users/me", "/api/v1/auth/verify"] {
        let resp = client
            .get(service.url(path))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "{path} while the write lock is held"
        );
    }

    lock.rollback().await.unwrap();
    let _ = other.close().await;
    let resp = sign_up_request().await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "sign-up once the lock is gone"
    );
}

// ---------------------------------------------------------------------------
// 2. Graceful shutdown
// ---------------------------------------------------------------------------

/// How a request sent before SIGTERM ended.
#[derive(Debug)]
enum Answer {
    Status(StatusCode),
    /// Refused at connect: the server had stopped accepting.
    NeverConnected,
    /// Any other failure, printed through `Debug` when the test fails.
    Failed(#[allow(dead_code)] String),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_refuses_new_ones_and_exits_0() {
    const SHUTDOWN_TIMEOUT_SECS: u64 = 10;
    /// What may follow the HTTP drain: flushing buffered audit events (5 s at
    /// most, `Application::run_until`), plus slack for a loaded machine.
    const AFTER_DRAIN: Duration = Duration::from_secs(10);
    const IN_FLIGHT: usize = 8;

    let dir = tempfile::tempdir().unwrap();
    // One hashing thread: the sign-ups queue behind each other, so most of
    // them are still in flight when the signal arrives.
    let config = Config::new(dir.path(), None)
        .with("PORTCULLIS_HASH_WORKERS", "1")
        .with("PORTCULLIS_RATE_LIMIT", "off")
        .with(
            "PORTCULLIS_SHUTDOWN_TIMEOUT_SECS",
            SHUTDOWN_TIMEOUT_SECS.to_string(),
        );
    let mut service = Service::start(&config).await;
    let client = client();

    let signalled = Arc::new(AtomicBool::new(false));
    let mut requests = JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let email = new_email("inflight");
        let request = client
            .post(service.url("/api/v1/auth/signup"))
            .json(&credentials(&email));
        let signalled = signalled.clone();
        requests.spawn(async move {
            let result = request.send().await;
            let after_signal = signalled.load(Ordering::SeqCst);
            let answer = match result {
                Ok(resp) => Answer::Status(resp.status()),
                Err(e) if e.is_connect() => Answer::NeverConnected,
                Err(e) => Answer::Failed(e.to_string()),
            };
            (email, answer, after_signal)
        });
    }
    // Once one sign-up has been answered, the others have reached the server
    // and wait for the hashing thread.
    let first = requests.join_next().await.unwrap().unwrap();
    signalled.store(true, Ordering::SeqCst);
    service.terminate();

    // New connections are refused once the server stops accepting.
    let addr = service.addr;
    let refused = tokio::spawn(async move {
        for _ in 0..400 {
            match TcpStream::connect(addr).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return true,
                _ => tokio::time::sleep(POLL).await,
            }
        }
        false
    });

    let mut outcomes = vec![first];
    while let Some(joined) = requests.join_next().await {
        outcomes.push(joined.unwrap());
    }
    let status = service
        .wait_exit(Duration::from_secs(SHUTDOWN_TIMEOUT_SECS) + AFTER_DRAIN)
        .await;
    assert!(
        refused.await.unwrap(),
        "new connections were still accepted"
    );

    // A request refused at connect was never in flight; every other one
    // must have been answered in full.
    let created: Vec<&String> = outcomes
        .iter()
        .filter(|(_, answer, _)| !matches!(answer, Answer::NeverConnected))
        .map(|(email, answer, _)| {
            assert!(
                matches!(answer, Answer::Status(StatusCode::CREATED)),
                "in-flight sign-up of {email}: {answer:?}"
            );
            email
        })
        .collect();
    let drained = outcomes
        .iter()
        .filter(|(_, answer, after)| *after && matches!(answer, Answer::Status(_)))
        .count();
    assert!(
        drained >= 1,
        "no request was still in flight at SIGTERM, so the drain was not exercised"
    );
    assert!(status.success(), "exit status {status}");
    assert_eq!(status.code(), Some(0));

    // What was answered 201 during the drain was committed.
    let service = Service::start(&config).await;
    for email in created {
        let resp = client
            .post(service.url("/api/v1/auth/login"))
            .json(&credentials(email))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "log-in of {email} after restart"
        );
    }
}

// ---------------------------------------------------------------------------
// 3. Crash safety
// ---------------------------------------------------------------------------

/// What a flood saw.
#[derive(Default)]
struct FloodLog {
    /// Emails whose sign-up was answered 201.
    created: Mutex<Vec<String>>,
    /// Anything other than the expected answer, seen before the kill.
    unexpected: Mutex<Vec<String>>,
    answered: AtomicUsize,
}

struct Flood {
    client: Client,
    base: String,
    killed: Arc<AtomicBool>,
    log: Arc<FloodLog>,
}

impl Flood {
    /// Sends one request; `None` once the server is gone (or when it failed
    /// before the kill, which is recorded as unexpected).
    async fn call(&self, what: &str, request: RequestBuilder, expect: StatusCode) -> Option<Value> {
        let killed_before = self.killed.load(Ordering::SeqCst);
        let outcome = match request.send().await {
            Ok(resp) => {
                let status = resp.status();
                match resp.json::<Value>().await {
                    Ok(body) => Ok((status, body)),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok((status, body)) => {
                self.log.answered.fetch_add(1, Ordering::Relaxed);
                if status == expect {
                    Some(body)
                } else {
                    // Every answer came from the live server, so none may be
                    // a 5xx (SQLITE_BUSY, pool exhaustion...) or otherwise off.
                    self.log
                        .unexpected
                        .lock()
                        .unwrap()
                        .push(format!("{what}: {status} {body}"));
                    None
                }
            }
            Err(error) => {
                if !killed_before && !self.killed.load(Ordering::SeqCst) {
                    self.log
                        .unexpected
                        .lock()
                        .unwrap()
                        .push(format!("{what}: transport error before the kill: {error}"));
                }
                None
            }
        }
    }

    /// Sign up, refresh along the chain (each token used once), log out;
    /// again, until the server is gone.
    async fn worker(self) {
        loop {
            let email = new_email("flood");
            let request = self
                .client
                .post(format!("{}/api/v1/auth/signup", self.base))
                .json(&credentials(&email));
            let Some(mut pair) = self.call("sign-up", request, StatusCode::CREATED).await else {
                return;
            };
            self.log.created.lock().unwrap().push(email);
            for _ in 0..3 {
                let request = self
                    .client
                    .post(format!("{}/api/v1/auth/refresh", self.base))
                    .json(&json!({ "refresh_token": token(&pair, "refresh_token") }));
                let Some(next) = self.call("refresh", request, StatusCode::OK).await else {
                    return;
                };
                pair = next;
            }
            let request = self
                .client
                .post(format!("{}/api/v1/auth/logout?scope=this", self.base))
                .bearer_auth(token(&pair, "access_token"));
            if self.call("logout", request, StatusCode::OK).await.is_none() {
                return;
            }
        }
    }
}

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_string(backend, sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// Floods the server with sign-ups, refreshes and logouts, kills it with
/// SIGKILL mid-flood, restarts it on the same storage, and checks the data.
async fn crash_mid_flood(config: Config, database_url: String) {
    const WORKERS: usize = 8;
    const FLOOD_FOR: Duration = Duration::from_secs(2);

    let config = config
        .with("PORTCULLIS_RATE_LIMIT", "off")
        .with("PORTCULLIS_REFRESH_REUSE_GRACE_SECS", "0");
    let mut service = Service::start(&config).await;
    let client = client();
    let killed = Arc::new(AtomicBool::new(false));
    let log = Arc::new(FloodLog::default());
    let mut workers = JoinSet::new();
    for _ in 0..WORKERS {
        let flood = Flood {
            client: client.clone(),
            base: service.base.clone(),
            killed: killed.clone(),
            log: log.clone(),
        };
        workers.spawn(flood.worker());
    }
    tokio::time::sleep(FLOOD_FOR).await;
    killed.store(true, Ordering::SeqCst);
    service.kill9();
    let joined = tokio::time::timeout(CLIENT_TIMEOUT * 2, async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    assert!(joined.is_ok(), "flood workers did not stop after the kill");

    let unexpected = log.unexpected.lock().unwrap().clone();
    assert!(
        unexpected.is_empty(),
        "unexpected answers before the kill: {unexpected:#?}"
    );
    let created = log.created.lock().unwrap().clone();
    eprintln!(
        "flood: {} answers before the kill, {} sign-ups answered 201",
        log.answered.load(Ordering::Relaxed),
        created.len()
    );
    assert!(
        !created.is_empty() && log.answered.load(Ordering::Relaxed) > created.len(),
        "the flood made no progress"
    );
    drop(service);

    // Restart on the same storage.
    let service = Service::start(&config).await;
    assert_eq!(
        client
            .get(service.url("/health/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // Everyone who was told 201 can log in.
    let mut logins = JoinSet::new();
    let emails = Arc::new(Mutex::new(created.clone()));
    for _ in 0..4 {
        let (client, emails, url) = (
            client.clone(),
            emails.clone(),
            service.url("/api/v1/auth/login"),
        );
        logins.spawn(async move {
            let mut failures = Vec::new();
            loop {
                let Some(email) = emails.lock().unwrap().pop() else {
                    return failures;
                };
                let resp = client
                    .post(&url)
                    .json(&credentials(&email))
                    .send()
                    .await
                    .unwrap();
                if resp.status() != StatusCode::OK {
                    failures.push(format!("{email}: {}", resp.status()));
                }
            }
        });
    }
    let mut failures = Vec::new();
    while let Some(joined) = logins.join_next().await {
        failures.extend(joined.unwrap());
    }
    assert!(
        failures.is_empty(),
        "users answered 201 before the crash cannot log in: {failures:#?}"
    );

    // The stored data is consistent.
    let db = sea_orm::Database::connect(&database_url).await.unwrap();
    let users = count(&db, "SELECT COUNT(*) FROM users").await;
    assert!(
        users >= i64::try_from(created.len()).unwrap(),
        "{users} users stored, {} sign-ups answered 201",
        created.len()
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM users WHERE email IS NULL OR email = '' \
             OR password_hash IS NULL OR password_hash = ''"
        )
        .await,
        0,
        "users with an empty email or password hash"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM (SELECT session_id FROM refresh_tokens \
             WHERE rotated_at IS NULL GROUP BY session_id HAVING COUNT(*) > 1) AS forked"
        )
        .await,
        0,
        "sessions with more than one live refresh token (no grace replays were made)"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM sessions s WHERE NOT EXISTS \
             (SELECT 1 FROM refresh_tokens t WHERE t.session_id = s.id)"
        )
        .await,
        0,
        "sessions stored without their first refresh token"
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM users u WHERE NOT EXISTS \
             (SELECT 1 FROM sessions s WHERE s.user_id = u.id)"
        )
        .await,
        0,
        "users stored without the session their sign-up opened"
    );
    // Each state change committed together with its audit event.
    for (sql, what) in [
        (
            "SELECT COUNT(*) FROM users u WHERE (SELECT COUNT(*) FROM auth_events e \
             WHERE e.kind = 'signup' AND e.outcome = 'success' AND e.user_id = u.id) <> 1",
            "users without exactly one sign-up event",
        ),
        (
            "SELECT COUNT(*) FROM auth_events e WHERE e.kind = 'signup' AND e.outcome = 'success' \
             AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = e.user_id)",
            "sign-up events without their user",
        ),
        (
            "SELECT COUNT(*) FROM sessions s WHERE \
             (SELECT COUNT(*) FROM refresh_tokens t WHERE t.session_id = s.id AND t.rotated_at IS NOT NULL) \
             <> (SELECT COUNT(*) FROM auth_events e WHERE e.session_id = s.id AND e.kind = 'token_refreshed')",
            "sessions whose rotations and token_refreshed events disagree",
        ),
        (
            "SELECT COUNT(*) FROM sessions s WHERE \
             (CASE WHEN s.revoked_at IS NULL THEN 0 ELSE 1 END) \
             <> (SELECT COUNT(*) FROM auth_events e WHERE e.session_id = s.id AND e.kind = 'logout')",
            "sessions whose revocation and logout event disagree",
        ),
    ] {
        assert_eq!(count(&db, sql).await, 0, "{what}");
    }
    if db.get_database_backend() == DbBackend::Sqlite {
        let row = db
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "PRAGMA integrity_check",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get_by_index::<String>(0).unwrap(), "ok");
    }
    let _ = db.close().await;
    drop(service);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_survives_kill_9_mid_flood() {
    let dir = tempfile::tempdir().unwrap();
    let url = portcullis_infra::db::sqlite_url(&dir.path().join("portcullis.db"));
    crash_mid_flood(Config::new(dir.path(), None), url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: run with --include-ignored (CI does)"]
async fn postgres_survives_kill_9_mid_flood() {
    let db = PgDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    crash_mid_flood(Config::new(dir.path(), Some(db.url())), db.url()).await;
}

// ---------------------------------------------------------------------------
// 4. Migrations
// ---------------------------------------------------------------------------

/// Starts `portcullis migrate`.
fn spawn_migrate(dir: &Path, database_url: Option<&str>) -> (Child, PathBuf) {
    let (log, file) = log_file(dir, "migrate");
    let child = portcullis(dir, database_url, &[])
        .arg("migrate")
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    (child, log)
}

async fn wait_migrate(mut child: Child, log: &Path) {
    let deadline = Instant::now() + START_BOUND;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "portcullis migrate failed with {status}:\n{}",
                tail(log)
            );
            return;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("portcullis migrate hung:\n{}", tail(log));
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn migrate(dir: &Path, database_url: Option<&str>) {
    let (child, log) = spawn_migrate(dir, database_url);
    wait_migrate(child, &log).await;
}

async fn query_strings(db: &DatabaseConnection, sql: &str) -> BTreeSet<String> {
    let backend = db.get_database_backend();
    db.query_all_raw(Statement::from_string(backend, sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|row| row.try_get_by_index::<String>(0).unwrap())
        .collect()
}

/// The applied migrations and the shape of every table and index.
async fn schema(url: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let db = sea_orm::Database::connect(url).await.unwrap();
    let applied = query_strings(&db, "SELECT version FROM seaql_migrations").await;
    let shape = if db.get_database_backend() == DbBackend::Sqlite {
        query_strings(
            &db,
            "SELECT type || ' ' || name || ': ' || COALESCE(sql, '') FROM sqlite_master",
        )
        .await
    } else {
        let mut shape = query_strings(
            &db,
            "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable \
             FROM information_schema.columns WHERE table_schema = 'public'",
        )
        .await;
        shape.extend(
            query_strings(
                &db,
                "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'",
            )
            .await,
        );
        shape.extend(
            query_strings(
                &db,
                "SELECT conrelid::regclass::text || ' ' || pg_get_constraintdef(oid) \
                 FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
            )
            .await,
        );
        shape
    };
    let _ = db.close().await;
    (applied, shape)
}

fn assert_core_tables(shape: &BTreeSet<String>) {
    for table in ["users", "sessions", "refresh_tokens", "tasks"] {
        assert!(
            shape.iter().any(|entry| entry.contains(table)),
            "table {table} missing from {shape:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migrate_is_idempotent_and_safe_to_run_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let url = portcullis_infra::db::sqlite_url(&dir.path().join("portcullis.db"));
    migrate(dir.path(), None).await;
    let first = schema(&url).await;
    migrate(dir.path(), None).await;
    let second = schema(&url).await;
    assert!(!first.0.is_empty(), "no migration recorded");
    assert_core_tables(&first.1);
    assert_eq!(first, second, "a second migrate changed the schema");

    // Two processes at once on a fresh file (`portcullis migrate` beside a
    // starting server), a few times over to give a race a chance to show.
    for _ in 0..3 {
        let fresh = tempfile::tempdir().unwrap();
        let url = portcullis_infra::db::sqlite_url(&fresh.path().join("portcullis.db"));
        let a = spawn_migrate(fresh.path(), None);
        let b = spawn_migrate(fresh.path(), None);
        wait_migrate(a.0, &a.1).await;
        wait_migrate(b.0, &b.1).await;
        assert_eq!(
            schema(&url).await,
            first,
            "two concurrent migrations left a different schema"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: run with --include-ignored (CI does)"]
async fn postgres_migrate_is_idempotent_and_safe_to_run_concurrently() {
    let dir = tempfile::tempdir().unwrap();

    // Twice in a row.
    let reference = PgDatabase::create().await;
    migrate(dir.path(), Some(&reference.url())).await;
    let first = schema(&reference.url()).await;
    migrate(dir.path(), Some(&reference.url())).await;
    let second = schema(&reference.url()).await;
    assert!(!first.0.is_empty(), "no migration recorded");
    assert_core_tables(&first.1);
    assert_eq!(first, second, "a second migrate changed the schema");

    // Two at once on a fresh database, a few times over to give a race a
    // chance to show.
    for _ in 0..3 {
        let fresh = PgDatabase::create().await;
        let url = fresh.url();
        let a = spawn_migrate(dir.path(), Some(&url));
        let b = spawn_migrate(dir.path(), Some(&url));
        wait_migrate(a.0, &a.1).await;
        wait_migrate(b.0, &b.1).await;
        assert_eq!(
            schema(&url).await,
            first,
            "two concurrent migrations left a different schema"
        );
    }
}
