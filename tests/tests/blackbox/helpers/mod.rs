//! `spawn_app()`, its options, and what tests decode from responses.
//!
//! The endpoint methods of [`TestApp`] (one per operation of the HTTP
//! surface, plus `request` for deliberately odd requests) are in `client`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use portcullis_api::{Application, Settings};
use reqwest::{Client, Method, Response, StatusCode};
use sea_orm::{ConnectionTrait, Database};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::oneshot;

mod client;
pub mod mail;

use mail::{PUBLIC_URL, SmtpServer, use_smtp};

pub const PASSWORD: &str = "a long and quiet river at dawn";

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    base: String,
    client: Client,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    _dir: Option<TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The SMTP server of this test server, with `PORTCULLIS_TEST_MAIL=smtp`.
    pub smtp: Option<SmtpServer>,
}

/// Options for a test server.
#[derive(Default, Clone)]
pub struct Options {
    /// Extra environment-style settings, e.g. `("PORTCULLIS_ACCESS_TOKEN_TTL_SECS", "2")`.
    pub env: Vec<(&'static str, String)>,
    /// Reuse this data directory (restart tests).
    pub data_dir: Option<PathBuf>,
    /// Reuse this database (several instances, restarts).
    pub database_url: Option<String>,
    /// Deliver to this SMTP URL, whatever `PORTCULLIS_TEST_MAIL` says (the
    /// test runs the server, or leaves it down).
    pub smtp_url: Option<String>,
    /// Write `.eml` files (the service's default) whatever
    /// `PORTCULLIS_TEST_MAIL` says.
    pub eml_files: bool,
}

fn use_postgres() -> bool {
    std::env::var("PORTCULLIS_TEST_BACKEND").is_ok_and(|b| b.eq_ignore_ascii_case("postgres"))
}

/// A fresh PostgreSQL database for one test.
pub async fn fresh_postgres_database() -> String {
    let base = std::env::var("PORTCULLIS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let name = format!("portcullis_bb_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(&base)
        .await
        .expect("PostgreSQL must be reachable for PORTCULLIS_TEST_BACKEND=postgres");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    let (prefix, _) = base.rsplit_once('/').expect("database URL has a path");
    format!("{prefix}/{name}")
}

/// A database URL for a new test: PostgreSQL when asked for, else `None` (SQLite in the data dir).
pub async fn fresh_database_url() -> Option<String> {
    if use_postgres() {
        Some(fresh_postgres_database().await)
    } else {
        None
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

pub async fn spawn_with(options: Options) -> TestApp {
    let (dir, data_dir) = match options.data_dir.clone() {
        Some(path) => (None, path),
        None => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().to_path_buf();
            (Some(dir), path)
        }
    };
    let database_url = match options.database_url.clone() {
        Some(url) => Some(url),
        None => fresh_database_url().await,
    };
    // Test defaults first; a test's own settings override them. Small pools
    // keep many parallel tests within the machine's limits, and every test
    // client is 127.0.0.1, so budgets are generous unless a test sets its own.
    let mut pairs: Vec<(&'static str, String)> = vec![
        ("PORTCULLIS_BIND", "127.0.0.1:0".to_owned()),
        ("PORTCULLIS_HASH_WORKERS", "1".to_owned()),
        ("PORTCULLIS_DB_MAX_CONNECTIONS", "4".to_owned()),
        ("PORTCULLIS_REVOCATION_POLL_MS", "200".to_owned()),
        ("PORTCULLIS_SHUTDOWN_TIMEOUT_SECS", "2".to_owned()),
        ("PORTCULLIS_PUBLIC_URL", PUBLIC_URL.to_owned()),
    ];
    let smtp = match &options.smtp_url {
        Some(url) => {
            pairs.push(("PORTCULLIS_SMTP_URL", url.clone()));
            None
        }
        None if use_smtp() && !options.eml_files => {
            let server = SmtpServer::start(&data_dir.join("maildir"));
            pairs.push(("PORTCULLIS_SMTP_URL", server.url()));
            Some(server)
        }
        None => None,
    };
    for bucket in ["SIGNUP", "LOGIN", "REFRESH", "RECOVERY", "RECOVERY_EMAIL"] {
        pairs.push((
            leak(format!("PORTCULLIS_RATE_LIMIT_{bucket}_PER_MIN")),
            "10000".to_owned(),
        ));
        pairs.push((
            leak(format!("PORTCULLIS_RATE_LIMIT_{bucket}_BURST")),
            "1000".to_owned(),
        ));
    }
    pairs.extend(options.env.iter().cloned());
    let mut settings = Settings::from_source(&Pairs(&pairs)).expect("valid test settings");
    settings.data_dir = data_dir.clone();
    settings.database_url = database_url.clone();

    let app = Application::build(settings)
        .await
        .expect("application starts");
    let addr = app.local_addr();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let test_app = TestApp {
        base: format!("http://{addr}"),
        client: Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        data_dir,
        database_url,
        _dir: dir,
        shutdown: Some(tx),
        handle: Some(handle),
        smtp,
    };
    test_app.wait_until_live().await;
    test_app
}

/// Settings as environment-style pairs, read through the real parser; the
/// last value of a name wins.
struct Pairs<'a>(&'a [(&'static str, String)]);

impl portcullis_api::settings::Source for Pairs<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

fn leak(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}

impl TestApp {
    /// The server's `host:port`, for tests that speak raw TCP.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn wait_until_live(&self) {
        for _ in 0..200 {
            if let Ok(resp) = self.request(Method::GET, "/health/live").send().await
                && resp.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("server never became live");
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.unwrap().unwrap();
        }
    }

    /// Stops the server but keeps its data directory alive for a restart.
    pub async fn stop_keeping_data(mut self) -> (Option<TempDir>, PathBuf, Option<String>) {
        let dir = self._dir.take();
        let path = self.data_dir.clone();
        let url = self.database_url.clone();
        self.stop().await;
        (dir, path, url)
    }

    /// Signs up a new random user and returns its token pair.
    pub async fn new_user(&self) -> (String, Tokens) {
        let email = format!("user-{}@example.com", uuid::Uuid::new_v4().simple());
        let resp = self.sign_up(&email, PASSWORD).await;
        assert_eq!(
            resp.status(),
            StatusCode::CREATED,
            "{}",
            resp.text().await.unwrap()
        );
        (email, Tokens::from(resp).await)
    }
}

/// The tokens of a successful sign-up, log-in or refresh.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub body: Value,
}

impl Tokens {
    pub async fn from(resp: Response) -> Self {
        assert!(
            resp.status().is_success(),
            "expected a token pair, got {}",
            resp.status()
        );
        let body: Value = resp.json().await.unwrap();
        Self {
            access: body["access_token"].as_str().unwrap().to_owned(),
            refresh: body["refresh_token"].as_str().unwrap().to_owned(),
            body,
        }
    }

    /// The `sid` claim of the access token (read without verification).
    pub fn session_id(&self) -> String {
        claims(&self.access)["sid"].as_str().unwrap().to_owned()
    }
}

/// The claims of a JWT, decoded without verification (test inspection only).
pub fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Asserts a problem+json response with `status` and `code`; returns the body.
pub async fn assert_problem(resp: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(resp.status(), status);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/problem+json"),
        "content type {content_type}"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16());
    for field in ["type", "title", "detail"] {
        assert!(body[field].is_string(), "problem lacks {field}: {body}");
    }
    body
}

/// The single signing key's PEM in a data dir (EdDSA mode).
pub fn signing_key_pem(data_dir: &Path) -> (String, Vec<u8>) {
    let dir = data_dir.join("keys");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let newest = files.last().expect("a key file").clone();
    (newest.display().to_string(), std::fs::read(newest).unwrap())
}
