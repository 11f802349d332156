//! Three `portcullis` processes on one PostgreSQL database and one Redis,
//! behind a real HAProxy from Debian's packages: a bounded mixed workload
//! where every request may land on any instance.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const PASSWORD: &str = "a long and quiet river at dawn";

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

async fn wait_ready(base: &str) {
    let client = reqwest::Client::new();
    for _ in 0..400 {
        if let Ok(resp) = client.get(format!("{base}/health/ready")).send().await
            && resp.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{base} never became ready");
}

fn instance(data_dir: &Path, port: u16, database: &str, redis: &str) -> Proc {
    Proc(
        Command::new(BIN)
            .env("PORTCULLIS_BIND", format!("127.0.0.1:{port}"))
            .env("PORTCULLIS_DATA_DIR", data_dir)
            .env("DATABASE_URL", database)
            .env("REDIS_URL", redis)
            .env("PORTCULLIS_TRUSTED_PROXIES", "127.0.0.1/32")
            .env("PORTCULLIS_REVOCATION_POLL_MS", "250")
            .env("PORTCULLIS_HASH_WORKERS", "1")
            .env("PORTCULLIS_RATE_LIMIT_SIGNUP_BURST", "3")
            .env("PORTCULLIS_RATE_LIMIT_SIGNUP_PER_MIN", "1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn haproxy_binary() -> &'static str {
    for candidate in ["/usr/sbin/haproxy", "/usr/bin/haproxy"] {
        if Path::new(candidate).exists() {
            return candidate;
        }
    }
    panic!("HAProxy is not installed: apt-get install -y haproxy (.ci/run does)");
}

/// A client that opens a new connection per request, so HAProxy balances
/// every request, as a fleet of clients would.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

struct Lb {
    base: String,
    client: reqwest::Client,
}

impl Lb {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        ip: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, String, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("x-forwarded-for", ip);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let resp = request.send().await.unwrap();
        let status = resp.status();
        let backend = resp
            .headers()
            .get("x-backend")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        assert!(!status.is_server_error(), "{path}: {status} {body}");
        (status, backend, body)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL, Redis and HAProxy: run with --include-ignored (CI does)"]
async fn three_instances_behind_haproxy_lose_nothing_and_share_limits_and_revocations() {
    use sea_orm::ConnectionTrait;
    let pg = std::env::var("PORTCULLIS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let redis = std::env::var("PORTCULLIS_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let name = format!("portcullis_lb_{}", uuid::Uuid::new_v4().simple());
    let admin = sea_orm::Database::connect(&pg).await.unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let database = format!("{}/{name}", pg.rsplit_once('/').unwrap().0);
    let data = tempfile::tempdir().unwrap();

    // The first instance creates the schema and the signing key; the others share both.
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut instances = vec![instance(data.path(), ports[0], &database, &redis)];
    wait_ready(&format!("http://127.0.0.1:{}", ports[0])).await;
    for port in &ports[1..] {
        instances.push(instance(data.path(), *port, &database, &redis));
    }
    for port in &ports {
        wait_ready(&format!("http://127.0.0.1:{port}")).await;
    }

    let lb_port = free_port();
    let config = format!(
        "defaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n  option http-server-close\n  option forwardfor\n\
         frontend fe\n  bind 127.0.0.1:{lb_port}\n  default_backend be\n\
         backend be\n  balance roundrobin\n  http-response set-header X-Backend %s\n{}",
        ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("  server s{i} 127.0.0.1:{p}\n"))
            .collect::<String>()
    );
    let config_path = data.path().join("haproxy.cfg");
    std::fs::write(&config_path, config).unwrap();
    let _haproxy = Proc(
        Command::new(haproxy_binary())
            .arg("-db")
            .arg("-f")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let lb = Lb {
        base: format!("http://127.0.0.1:{lb_port}"),
        client: client(),
    };
    wait_ready(&lb.base).await;

    // Client addresses of this run only: Redis keeps budgets for minutes,
    // and other tests (or an earlier run) share it.
    let net = run_network();
    let net = net.as_str();
    // The mixed workload: every user has its own client address.
    let backends_seen = std::sync::Mutex::new(HashMap::<String, usize>::new());
    let users = futures::future::join_all((0..9).map(|i| {
        let lb = &lb;
        let seen = &backends_seen;
        async move {
            use reqwest::Method;
            let ip = client_address(net, 10 + i);
            let email = format!("fleet-{i}-{}@example.com", uuid::Uuid::new_v4().simple());
            let note = |backend: String| *seen.lock().unwrap().entry(backend).or_default() += 1;
            let (status, backend, _) = lb
                .send(
                    Method::POST,
                    "/api/v1/auth/signup",
                    &ip,
                    None,
                    Some(json!({"email": email, "password": PASSWORD})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED);
            note(backend);
            let (status, backend, body) = lb
                .send(
                    Method::POST,
                    "/api/v1/auth/login",
                    &ip,
                    None,
                    Some(json!({"email": email, "password": PASSWORD})),
                )
                .await;
            assert_eq!(status, StatusCode::OK);
            note(backend);
            let mut refresh = body["refresh_token"].as_str().unwrap().to_owned();
            let mut access = String::new();
            for _ in 0..5 {
                let (status, backend, body) = lb
                    .send(
                        Method::POST,
                        "/api/v1/auth/refresh",
                        &ip,
                        None,
                        Some(json!({"refresh_token": refresh})),
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "a refresh chain crosses instances");
                note(backend);
                refresh = body["refresh_token"].as_str().unwrap().to_owned();
                access = body["access_token"].as_str().unwrap().to_owned();
            }
            for n in 0..3 {
                let (status, backend, _) = lb
                    .send(
                        Method::POST,
                        "/api/v1/tasks",
                        &ip,
                        Some(&access),
                        Some(json!({"title": format!("task {n}")})),
                    )
                    .await;
                assert_eq!(status, StatusCode::CREATED);
                note(backend);
            }
            let (status, _, body) = lb
                .send(Method::GET, "/api/v1/tasks", &ip, Some(&access), None)
                .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(body["items"].as_array().unwrap().len(), 3, "no task lost");
            let (status, _, _) = lb
                .send(
                    Method::POST,
                    "/api/v1/auth/logout",
                    &ip,
                    Some(&access),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK);
            (ip, access, refresh)
        }
    }))
    .await;

    // Revocation reaches every instance within the documented bound (poll
    // interval 250 ms plus one query); allow ample slack, then require that
    // several requests in a row, landing on all instances, are refused.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for (ip, access, refresh) in &users {
        for _ in 0..6 {
            let (status, _, _) = lb
                .send(
                    reqwest::Method::GET,
                    "/api/v1/users/me",
                    ip,
                    Some(access),
                    None,
                )
                .await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "a logged-out token was accepted somewhere"
            );
        }
        let (status, _, _) = lb
            .send(
                reqwest::Method::POST,
                "/api/v1/auth/refresh",
                ip,
                None,
                Some(json!({"refresh_token": refresh})),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    // Rate limits are global: a burst of 3 sign-ups per client across all three instances.
    let ip = client_address(net, 0xc8);
    let ip = ip.as_str();
    let mut created = 0;
    let mut limited = 0;
    for n in 0..6 {
        let email = format!("burst-{n}-{}@example.com", uuid::Uuid::new_v4().simple());
        let (status, _, _) = lb
            .send(
                reqwest::Method::POST,
                "/api/v1/auth/signup",
                ip,
                None,
                Some(json!({"email": email, "password": PASSWORD})),
            )
            .await;
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        (created, limited),
        (3, 3),
        "the budget is shared, not per instance"
    );

    let seen = backends_seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        3,
        "every instance served part of the workload: {seen:?}"
    );

    drop(instances);
    let _ = admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
}

/// A documentation-range IPv6 /48 (`2001:db8::/32`) no other run uses. Each
/// simulated client gets a /64 of its own inside it (`client_address`): clients are
/// grouped by /64, so two addresses of one /64 would be one client.
fn run_network() -> String {
    let id = uuid::Uuid::new_v4().as_u128();
    format!("2001:db8:{:x}", id as u16)
}

/// The address of simulated client `n` of the run network: one /64 each.
fn client_address(net: &str, n: u16) -> String {
    format!("{net}:{n:x}::1")
}
