//! The `portcullis` binary at start, as an operator meets it: the files it
//! creates are private, it refuses keys anyone else could have planted, and a
//! database that stops answering during migrations stops the start with a
//! clear line instead of hanging it. Each refusal is one line on stderr and a
//! non-zero exit.
//!
//! Every wait is bounded by a hang guard (the child is killed and the test
//! fails), never a timing assertion.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// Hang guard for a process that should exit on its own.
const EXIT_BOUND: Duration = Duration::from_secs(60);

/// Runs the binary with a clean environment plus `env`; kills it and fails
/// the test when it has not exited within [`EXIT_BOUND`].
fn run_bounded(args: &[&str], data_dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORTCULLIS_BIND", "127.0.0.1:0")
        .env("PORTCULLIS_DATA_DIR", data_dir)
        .env("PORTCULLIS_HASH_WORKERS", "1")
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > EXIT_BOUND {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!(
                "portcullis {args:?} did not exit within {EXIT_BOUND:?}; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Asserts a failed exit with exactly one line on stderr, and returns it.
fn one_line_refusal(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "it started: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "not one line: {stderr}");
    lines[0].to_owned()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

#[test]
fn a_fresh_start_creates_a_private_data_dir_and_private_database_files() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");

    let output = run_bounded(&["migrate"], &data, &[]);

    assert!(output.status.success(), "{output:?}");
    assert_eq!(mode(&data), 0o700, "data directory");
    let db = data.join("portcullis.db");
    assert_eq!(mode(&db), 0o600, "database file");
    for sidecar in ["portcullis.db-wal", "portcullis.db-shm"] {
        let path = data.join(sidecar);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{sidecar}");
        }
    }
    // Keys made at the first serve-like use are private too.
    let rotated = run_bounded(&["keys", "rotate"], &data, &[]);
    assert!(rotated.status.success(), "{rotated:?}");
    assert_eq!(mode(&data.join("keys")), 0o700, "keys directory");
}

#[test]
fn a_database_file_left_world_readable_is_narrowed() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).unwrap();
    let db = data.join("portcullis.db");
    fs::write(&db, b"").unwrap();
    fs::set_permissions(&db, fs::Permissions::from_mode(0o644)).unwrap();

    let output = run_bounded(&["migrate"], &data, &[]);

    assert!(output.status.success(), "{output:?}");
    assert_eq!(mode(&db), 0o600);
}

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

/// A data directory whose keys directory holds one key made by the service.
fn data_dir_with_a_key() -> (tempfile::TempDir, std::path::PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let output = run_bounded(&["keys", "rotate"], &data, &[]);
    assert!(output.status.success(), "{output:?}");
    (root, data)
}

#[test]
fn a_planted_symlink_key_refuses_the_start_in_one_line() {
    let (root, data) = data_dir_with_a_key();
    let planted = root.path().join("planted.pem");
    let pem = run_bounded(&["keys", "generate"], &data, &[]);
    fs::write(&planted, &pem.stdout).unwrap();
    std::os::unix::fs::symlink(
        &planted,
        data.join("keys")
            .join("ed25519-20991231T235959Z-planted0.pem"),
    )
    .unwrap();

    let line = one_line_refusal(&run_bounded(&["serve"], &data, &[]));

    assert!(line.contains("symlink"), "{line}");
    assert!(line.contains("planted0.pem"), "{line}");
}

#[test]
fn a_keys_dir_writable_by_others_refuses_the_start_in_one_line() {
    let (_root, data) = data_dir_with_a_key();
    let keys = data.join("keys");
    fs::set_permissions(&keys, fs::Permissions::from_mode(0o777)).unwrap();

    let line = one_line_refusal(&run_bounded(&["serve"], &data, &[]));

    assert!(line.contains("writable by group or others"), "{line}");
    assert!(line.contains(&keys.display().to_string()), "{line}");
}

#[test]
fn a_stray_file_in_the_keys_dir_refuses_the_start_in_one_line() {
    let (_root, data) = data_dir_with_a_key();
    fs::write(data.join("keys").join("id_rsa"), b"not ours").unwrap();

    let line = one_line_refusal(&run_bounded(&["serve"], &data, &[]));

    assert!(line.contains("id_rsa"), "{line}");
}

// ---------------------------------------------------------------------------
// A database that stops answering
// ---------------------------------------------------------------------------

fn read_exact_or_stop(stream: &mut TcpStream, buf: &mut [u8]) -> bool {
    stream.read_exact(buf).is_ok()
}

/// Speaks just enough of the PostgreSQL protocol to let a client connect
/// (no TLS, trust authentication) and answer its pings (a bare `Sync`), then
/// never answers a query: a server that hangs half-way through start-up.
fn silent_postgres() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || hang_after_handshake(stream));
        }
    });
    port
}

fn hang_after_handshake(mut stream: TcpStream) {
    // Start-up phase: length-prefixed messages without a type byte.
    loop {
        let mut len = [0u8; 4];
        if !read_exact_or_stop(&mut stream, &mut len) {
            return;
        }
        let len = u32::from_be_bytes(len) as usize;
        let mut body = vec![0u8; len.saturating_sub(4)];
        if !read_exact_or_stop(&mut stream, &mut body) {
            return;
        }
        let code = body
            .get(..4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()));
        match code {
            // SSLRequest, GSSENCRequest: not supported here.
            Some(80_877_103 | 80_877_104) => {
                if stream.write_all(b"N").is_err() {
                    return;
                }
            }
            _ => break,
        }
    }
    let mut hello = Vec::new();
    hello.extend_from_slice(&[b'R', 0, 0, 0, 8, 0, 0, 0, 0]); // AuthenticationOk
    for (name, value) in [("server_version", "16.0"), ("client_encoding", "UTF8")] {
        let payload = format!("{name}\0{value}\0");
        hello.push(b'S');
        hello.extend_from_slice(&u32::try_from(payload.len() + 4).unwrap().to_be_bytes());
        hello.extend_from_slice(payload.as_bytes());
    }
    hello.extend_from_slice(&[b'K', 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 2]); // BackendKeyData
    hello.extend_from_slice(&[b'Z', 0, 0, 0, 5, b'I']); // ReadyForQuery
    if stream.write_all(&hello).is_err() {
        return;
    }
    let mut silent = false;
    loop {
        let mut head = [0u8; 5];
        if !read_exact_or_stop(&mut stream, &mut head) {
            return;
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len.saturating_sub(4)];
        if !read_exact_or_stop(&mut stream, &mut body) {
            return;
        }
        match head[0] {
            b'X' => return,
            // A bare Sync is sqlx's ping: answer it until a query arrives.
            b'S' if !silent => {
                if stream.write_all(&[b'Z', 0, 0, 0, 5, b'I']).is_err() {
                    return;
                }
            }
            _ => silent = true,
        }
    }
}

#[test]
fn a_database_that_hangs_during_migrations_stops_the_start_with_one_line() {
    let port = silent_postgres();
    let root = tempfile::tempdir().unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{port}/silent");
    for command in ["serve", "migrate"] {
        let output = run_bounded(
            &[command],
            &root.path().join("data"),
            &[
                ("DATABASE_URL", url.as_str()),
                ("PORTCULLIS_DB_MIGRATE_TIMEOUT_SECS", "2"),
            ],
        );

        let line = one_line_refusal(&output);

        assert!(
            line.contains("PORTCULLIS_DB_MIGRATE_TIMEOUT_SECS"),
            "{command}: {line}"
        );
    }
}
