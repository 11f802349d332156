//! Revocation across instances whose clocks disagree by minutes: two (then
//! three) `portcullis` processes on one PostgreSQL database, one of them on a
//! clock shifted by libfaketime (Debian's `faketime` package). A logout on
//! either instance must make the session's access tokens fail on every
//! instance, whatever the clocks say.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const PASSWORD: &str = "a long and quiet river at dawn";
const POLL_MS: &str = "200";
/// Generous: the documented bound is one poll interval plus one query.
const PROPAGATION_DEADLINE: Duration = Duration::from_secs(15);

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn libfaketime() -> &'static str {
    for candidate in [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
    ] {
        if Path::new(candidate).exists() {
            return candidate;
        }
    }
    panic!("libfaketime is not installed: apt-get install -y faketime (.ci/run does)");
}

/// One instance; `shift` is a libfaketime offset such as `-5m`.
struct Instance {
    base: String,
    _proc: Proc,
}

impl Instance {
    async fn start(data_dir: &Path, database: &str, shift: Option<&str>) -> Instance {
        let port = free_port();
        let mut command = Command::new(BIN);
        command
            .env("PORTCULLIS_BIND", format!("127.0.0.1:{port}"))
            .env("PORTCULLIS_DATA_DIR", data_dir)
            .env("DATABASE_URL", database)
            .env_remove("REDIS_URL")
            .env("PORTCULLIS_REVOCATION_POLL_MS", POLL_MS)
            .env("PORTCULLIS_HASH_WORKERS", "1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(shift) = shift {
            command
                .env("LD_PRELOAD", libfaketime())
                .env("FAKETIME", shift)
                // Only the wall clock is wrong; timers keep working.
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_NO_CACHE", "1");
        }
        let instance = Instance {
            base: format!("http://127.0.0.1:{port}"),
            _proc: Proc(command.spawn().unwrap()),
        };
        instance.wait_ready().await;
        instance
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(resp) = client
                .get(format!("{}/health/ready", self.base))
                .send()
                .await
                && resp.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{} never became ready", self.base);
    }

    async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = reqwest::Client::new().post(format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let resp = request.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn log_in(&self, email: &str) -> (String, String) {
        let (status, body) = self
            .post(
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "log-in on {}: {body}", self.base);
        (
            body["access_token"].as_str().unwrap().to_owned(),
            session_of(body["access_token"].as_str().unwrap()),
        )
    }

    async fn me(&self, token: &str) -> StatusCode {
        let resp = reqwest::Client::new()
            .get(format!("{}/api/v1/users/me", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        assert!(!status.is_server_error(), "{}: {status}", self.base);
        status
    }

    async fn accepts(&self, token: &str, what: &str) {
        assert_eq!(
            self.me(token).await,
            StatusCode::OK,
            "{what} must work on {} before the logout",
            self.base
        );
    }

    /// Polls until `token` is refused, up to a generous deadline.
    async fn refuses_soon(&self, token: &str, what: &str) {
        let deadline = Instant::now() + PROPAGATION_DEADLINE;
        loop {
            if self.me(token).await == StatusCode::UNAUTHORIZED {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what} still works on {} {PROPAGATION_DEADLINE:?} after the logout",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn session_of(token: &str) -> String {
    claims(token)["sid"].as_str().unwrap().to_owned()
}

fn issued_at(token: &str) -> i64 {
    claims(token)["iat"].as_i64().unwrap()
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

struct PgDatabase {
    admin: sea_orm::DatabaseConnection,
    name: String,
    url: String,
}

impl PgDatabase {
    async fn create() -> PgDatabase {
        use sea_orm::ConnectionTrait;
        let pg = std::env::var("PORTCULLIS_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let name = format!("portcullis_clocks_{}", uuid::Uuid::new_v4().simple());
        let admin = sea_orm::Database::connect(&pg).await.unwrap();
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let url = format!("{}/{name}", pg.rsplit_once('/').unwrap().0);
        PgDatabase { admin, name, url }
    }

    async fn drop_it(self) {
        use sea_orm::ConnectionTrait;
        let _ = self
            .admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL and libfaketime (apt-get install faketime): run with --include-ignored (CI does)"]
async fn logouts_reach_instances_whose_clocks_differ_by_minutes() {
    let pg = PgDatabase::create().await;
    let data = tempfile::tempdir().unwrap();
    // The first instance creates the schema and the signing key; the other shares both.
    let right = Instance::start(data.path(), &pg.url, None).await;
    let behind = Instance::start(data.path(), &pg.url, Some("-5m")).await;

    let email = format!("clocks-{}@example.com", uuid::Uuid::new_v4().simple());
    let (status, body) = right
        .post(
            "/api/v1/auth/signup",
            None,
            Some(json!({"email": email, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Log in on the right clock, log out on the one behind. A token issued
    // on the right clock is "not yet valid" on the one behind, so the user
    // logs out everywhere from a session opened there.
    let (on_right, right_session) = right.log_in(&email).await;
    let (first_behind, behind_session) = behind.log_in(&email).await;
    assert!(
        issued_at(&first_behind) < unix_now() - 240,
        "libfaketime did not shift the clock of the second instance"
    );
    right
        .accepts(&on_right, "a token issued on the right clock")
        .await;
    right.accepts(&first_behind, "a token issued behind").await;
    behind.accepts(&first_behind, "a token issued behind").await;
    let (status, body) = behind
        .post("/api/v1/auth/logout?scope=all", Some(&first_behind), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let revoked: Vec<&str> = body["revoked_sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect();
    assert!(
        revoked.contains(&right_session.as_str()),
        "{body} lacks {right_session} (behind: {behind_session})"
    );
    assert!(revoked.contains(&behind_session.as_str()), "{body}");
    behind
        .refuses_soon(&first_behind, "the logged-out token")
        .await;
    right
        .refuses_soon(&on_right, "a session logged out from the instance behind")
        .await;
    right
        .refuses_soon(
            &first_behind,
            "a session logged out from the instance behind",
        )
        .await;

    // The other way round: log in behind, log out on the right clock.
    let (second_behind, _) = behind.log_in(&email).await;
    right.accepts(&second_behind, "a token issued behind").await;
    behind
        .accepts(&second_behind, "a token issued behind")
        .await;
    let (status, body) = right
        .post("/api/v1/auth/logout?scope=this", Some(&second_behind), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    right
        .refuses_soon(&second_behind, "the logged-out token")
        .await;
    behind
        .refuses_soon(&second_behind, "a session logged out on the right clock")
        .await;

    // An instance started afterwards, on a clock five minutes ahead, knows
    // both revocations once it is ready: the tokens issued behind are still
    // within their lifetime for it.
    let (alive, _) = behind.log_in(&email).await;
    let ahead = Instance::start(data.path(), &pg.url, Some("+5m")).await;
    ahead.accepts(&alive, "a token issued behind").await;
    for (token, what) in [
        (&first_behind, "logged out behind"),
        (&second_behind, "logged out on the right clock"),
    ] {
        assert_eq!(
            ahead.me(token).await,
            StatusCode::UNAUTHORIZED,
            "a session {what} before this instance started works on it"
        );
    }

    drop((right, behind, ahead));
    pg.drop_it().await;
}
