//! Slow clients against the real `portcullis` binary under a lowered file
//! limit (`ulimit -n 256`, set in the child's shell so the test process keeps
//! its own): a slowloris from one address opens far more connections than
//! the process has descriptors, each sending half a request head and
//! stalling, and another client must still get `/health/live` and sign-up
//! answered; the overflow is answered at once with 503 and the refusal is
//! logged at WARN.
//!
//! Every wait is bounded by a hang guard, never a timing assertion.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
/// The child's descriptor limit; the flood is well beyond it.
const FILE_LIMIT: u32 = 256;
const FLOOD: usize = 400;
/// Hang guard for one request or one wait.
const GUARD: Duration = Duration::from_secs(20);
/// A second loopback address: the well-behaved client is another client.
const OTHER_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

struct Server {
    child: Child,
    addr: SocketAddr,
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

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(GUARD)
        .no_proxy()
        .local_address(OTHER_CLIENT)
        .build()
        .unwrap()
}

/// The binary under `ulimit -n FILE_LIMIT`, its log in `log`.
async fn start(data_dir: &Path, log: &Path) -> Server {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(format!("ulimit -n {FILE_LIMIT} && exec \"$0\" serve"))
        .arg(BIN);
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
    command
        .env("PORTCULLIS_BIND", addr.to_string())
        .env("PORTCULLIS_DATA_DIR", data_dir)
        .env("PORTCULLIS_HASH_WORKERS", "1")
        // Long enough that the flood holds its places for the whole test:
        // what lets the other client in is the cap, not the deadline.
        .env("PORTCULLIS_HEADER_TIMEOUT_SECS", "300")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(File::create(log).unwrap());
    let server = Server {
        child: command.spawn().unwrap(),
        addr,
    };
    let probe = client();
    for _ in 0..400 {
        if let Ok(resp) = probe.get(format!("http://{addr}/health/live")).send().await
            && resp.status().is_success()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("server did not start");
}

/// One slowloris connection from 127.0.0.1: half a request head, then silence.
async fn stall(addr: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    let mut stream = tokio::time::timeout(GUARD, socket.connect(addr))
        .await
        .ok()?
        .ok()?;
    let _ = stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: portcullis\r\nX-Wait: ")
        .await;
    Some(stream)
}

async fn read_answer(mut stream: TcpStream) -> String {
    let mut received = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn a_slowloris_from_one_address_cannot_starve_other_clients() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let data = dir.path().join("data");
    let server = start(&data, &log).await;
    let base = format!("http://{}", server.addr);

    let mut flood = Vec::new();
    for _ in 0..FLOOD {
        if let Some(stream) = stall(server.addr).await {
            flood.push(stream);
        }
    }
    assert!(
        flood.len() > FILE_LIMIT as usize,
        "the flood must exceed the file limit"
    );

    // Another client is still answered, health and sign-up alike, while the
    // flood holds its connections open.
    let other = client();
    let resp = other
        .get(format!("{base}/health/live"))
        .send()
        .await
        .expect("/health/live must be answered during the flood");
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = other
        .post(format!("{base}/api/v1/auth/signup"))
        .json(&json!({"email": "calm@example.com", "password": "a long and quiet river at dawn"}))
        .send()
        .await
        .expect("sign-up must be answered during the flood");
    assert_eq!(resp.status(), StatusCode::CREATED);

    // The overflow was answered, not left hanging: some flood connection
    // has a 503 (the admitted ones stay open, so wait for the first 503).
    let mut answers: FuturesUnordered<_> = flood.into_iter().map(read_answer).collect();
    let refused = tokio::time::timeout(GUARD, async {
        while let Some(answer) = answers.next().await {
            if answer.starts_with("HTTP/1.1 503") {
                return answer;
            }
        }
        panic!("no flood connection was answered with 503");
    })
    .await
    .expect("no flood connection was answered within the guard");
    assert!(refused.contains("\"code\":\"overloaded\""), "{refused}");
    drop(answers);

    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("WARN") && logged.contains("connection limit reached"),
        "the refusals must be logged at WARN: {logged}"
    );
    drop(server);
}
