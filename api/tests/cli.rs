//! The `portcullis` binary as an operator uses it: subcommands, bad
//! configuration, key rotation across restarts, and two processes sharing one
//! PostgreSQL database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const PASSWORD: &str = "a long and quiet river at dawn";

fn run(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

#[test]
fn help_and_openapi_work_without_any_configuration() {
    let help = run(&["--help"], &[]);
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).unwrap();
    for sub in ["serve", "migrate", "openapi", "keys", "events"] {
        assert!(text.contains(sub), "--help lacks {sub}");
    }
    let spec = run(&["openapi"], &[]);
    assert!(spec.status.success());
    let doc: Value = serde_json::from_slice(&spec.stdout).unwrap();
    assert_eq!(doc["info"]["title"], "Portcullis");
}

#[test]
fn keys_generate_prints_a_key_or_a_secret() {
    let pem = run(&["keys", "generate"], &[]);
    assert!(pem.status.success());
    let pem = String::from_utf8(pem.stdout).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    let secret = run(&["keys", "generate", "--hs256"], &[]);
    let secret = String::from_utf8(secret.stdout).unwrap();
    assert!(secret.trim().len() >= 43);
    assert_ne!(
        secret,
        String::from_utf8(run(&["keys", "generate", "--hs256"], &[]).stdout).unwrap()
    );
}

#[test]
fn bad_configuration_stops_the_start_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    for (var, value) in [
        ("PORTCULLIS_BIND", "not-an-address"),
        ("PORTCULLIS_JWT_SECRET", "too-short"),
        ("PORTCULLIS_PASSWORD_MIN_LENGTH", "4"),
        ("DATABASE_URL", "mysql://nope"),
        ("PORTCULLIS_TRUSTED_PROXIES", "10.0.0.0/33"),
    ] {
        let out = run(&["serve"], &[("PORTCULLIS_DATA_DIR", data), (var, value)]);
        assert!(!out.status.success(), "{var}={value} was accepted");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{var}: {stderr}");
        assert!(lines[0].contains(var), "{var}: {stderr}");
        assert!(!stderr.contains("too-short"), "a secret was echoed");
    }
}

#[test]
fn bad_events_arguments_are_one_line_and_a_failed_exit_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    for args in [
        &["events", "--since", "5\u{e9}"][..],
        &["events", "--since", "99999999999999999999d"],
        &["events", "--since", "9223372036854775807d"],
        &["events", "--since", "1\nh"],
        &["events", "--type", "nope"],
        &["events", "--ip", "not an address"],
    ] {
        let out = run(args, &[("PORTCULLIS_DATA_DIR", data)]);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
        assert!(lines[0].starts_with("portcullis: --"), "{args:?}: {stderr}");
    }
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(data_dir: &Path, env: &[(&str, &str)]) -> Server {
    let port = free_port();
    let mut command = Command::new(BIN);
    command
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env("PORTCULLIS_BIND", format!("127.0.0.1:{port}"))
        .env("PORTCULLIS_DATA_DIR", data_dir)
        .env("PORTCULLIS_HASH_WORKERS", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let server = Server {
        child: command.spawn().unwrap(),
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    for _ in 0..400 {
        if let Ok(resp) = client
            .get(format!("{}/health/live", server.base))
            .send()
            .await
            && resp.status().is_success()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("server did not start");
}

async fn signup(base: &str, email: &str) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/signup"))
        .json(&serde_json::json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

async fn me_status(base: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/api/v1/users/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn kid(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn keys_rotate_adds_a_signing_key_and_old_tokens_live_until_their_key_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]).await;
    let old = signup(&server.base, "rotate@example.com").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    drop(server);

    let out = run(
        &["keys", "rotate"],
        &[("PORTCULLIS_DATA_DIR", dir.path().to_str().unwrap())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_kid = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    let server = start(dir.path(), &[]).await;
    let jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2);
    assert!(kids.contains(&new_kid.as_str()) && kids.contains(&kid(&old).as_str()));
    assert_eq!(
        me_status(&server.base, &old).await,
        200,
        "old tokens stay valid"
    );
    let fresh = signup(&server.base, "rotate2@example.com").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(kid(&fresh), new_kid, "the new key signs");
    drop(server);

    // The operator removes the old key: its tokens stop working.
    for entry in std::fs::read_dir(dir.path().join("keys")).unwrap() {
        let path = entry.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .contains(&new_kid[..8])
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    let server = start(dir.path(), &[]).await;
    assert_eq!(me_status(&server.base, &old).await, 401);
    assert_eq!(me_status(&server.base, &fresh).await, 200);
}

#[tokio::test]
#[ignore = "needs PostgreSQL: run with --include-ignored (CI does)"]
async fn a_logout_on_one_process_reaches_another_process_on_the_same_postgres() {
    use sea_orm::ConnectionTrait;
    let base = std::env::var("PORTCULLIS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let name = format!("portcullis_cli_{}", uuid::Uuid::new_v4().simple());
    let admin = sea_orm::Database::connect(&base).await.unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);

    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("PORTCULLIS_REVOCATION_POLL_MS", "250"),
    ];
    let first = start(dir.path(), &env).await;
    let second = start(dir.path(), &env).await;
    let tokens = signup(&first.base, "two-processes@example.com").await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(me_status(&second.base, access).await, 200);

    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/logout", first.base))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        me_status(&first.base, access).await,
        401,
        "immediate on the instance that logged out"
    );
    let mut rejected = false;
    for _ in 0..100 {
        if me_status(&second.base, access).await == 401 {
            rejected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rejected, "the other process never learned of the logout");
    drop(first);
    drop(second);
    let _ = admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
}
