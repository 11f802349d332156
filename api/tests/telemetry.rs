//! OpenTelemetry export proven end to end, and the secrets scan.
//!
//! The test runs a real OTLP/HTTP receiver (`POST /v1/traces`, `POST
//! /v1/metrics`, protobuf bodies decoded with the official
//! `opentelemetry-proto` messages), starts the `portcullis` binary pointed at
//! it with `RUST_LOG=trace` and JSON logs, drives a full authentication flow
//! (one request continuing a W3C `traceparent`), stops it with SIGTERM and
//! then checks:
//!
//! - what arrived: server spans following the HTTP semantic conventions,
//!   trace continuation, the service spans under their server span, the
//!   password hashing spans under those, and the metrics with the values the
//!   flow implies;
//! - that no password, token or password hash appears in anything the flow
//!   produced: trace-level logs, spans, metrics, responses, audit rows and
//!   the database files;
//! - that each audit row carries the trace and request ids of the request
//!   that caused it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric, number_data_point};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use poem::http::{HeaderMap, StatusCode};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{EndpointExt, IntoResponse, Response, Route, handler, post};
use prost::Message;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
/// Sleep between two polls of a bounded loop.
const POLL: Duration = Duration::from_millis(25);
/// Hang guard for start-up (trace-level logging makes it slower).
const START_BOUND: Duration = Duration::from_secs(30);
/// Hang guard for the graceful shutdown, exporter flushes included.
const EXIT_BOUND: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// The OTLP/HTTP receiver
// ---------------------------------------------------------------------------

/// Everything the receiver was sent.
#[derive(Default)]
struct Received {
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
    /// Requests that were not valid OTLP/HTTP protobuf, described.
    refused: Vec<String>,
}

type Store = Arc<Mutex<Received>>;

fn is_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-protobuf"))
}

fn protobuf(message: &impl Message) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .content_type("application/x-protobuf")
        .body(message.encode_to_vec())
}

#[handler]
async fn receive_traces(store: Data<&Store>, headers: &HeaderMap, body: Vec<u8>) -> Response {
    if !is_protobuf(headers) {
        store
            .lock()
            .unwrap()
            .refused
            .push(format!("/v1/traces: content type {headers:?}"));
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    match ExportTraceServiceRequest::decode(body.as_slice()) {
        Ok(request) => {
            store.lock().unwrap().traces.push(request);
            protobuf(&ExportTraceServiceResponse::default())
        }
        Err(error) => {
            store
                .lock()
                .unwrap()
                .refused
                .push(format!("/v1/traces: {error}"));
            StatusCode::BAD_REQUEST.into_response()
        }
    }
}

#[handler]
async fn receive_metrics(store: Data<&Store>, headers: &HeaderMap, body: Vec<u8>) -> Response {
    if !is_protobuf(headers) {
        store
            .lock()
            .unwrap()
            .refused
            .push(format!("/v1/metrics: content type {headers:?}"));
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    match ExportMetricsServiceRequest::decode(body.as_slice()) {
        Ok(request) => {
            store.lock().unwrap().metrics.push(request);
            protobuf(&ExportMetricsServiceResponse::default())
        }
        Err(error) => {
            store
                .lock()
                .unwrap()
                .refused
                .push(format!("/v1/metrics: {error}"));
            StatusCode::BAD_REQUEST.into_response()
        }
    }
}

/// Starts the receiver on 127.0.0.1 and a free port.
async fn start_receiver() -> (SocketAddr, Store) {
    let store = Store::default();
    let app = Route::new()
        .at("/v1/traces", post(receive_traces))
        .at("/v1/metrics", post(receive_metrics))
        .data(store.clone());
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    (addr, store)
}

// ---------------------------------------------------------------------------
// The service under test
// ---------------------------------------------------------------------------

/// The `portcullis` process; killed on drop if still running.
struct Service {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- end of the portcullis log ---\n{}", tail(&self.log));
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

impl Service {
    /// Starts the binary exporting to `receiver`, with trace-level JSON logs
    /// written to `<dir>/stderr.log`, its data in `data_dir` and `env` on
    /// top, and waits until it is live.
    async fn start(receiver: SocketAddr, dir: &Path, data_dir: &Path) -> Self {
        let mut service = Self::spawn(receiver, dir, data_dir, &[]);
        service.wait_live().await;
        service
    }

    fn spawn(receiver: SocketAddr, dir: &Path, data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let log = dir.join("stderr.log");
        let mut command = Command::new(BIN);
        // Only what this test sets: no inherited OTEL_* or PORTCULLIS_* setting.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("OTEL_") || name.starts_with("PORTCULLIS_") {
                command.env_remove(name.as_ref());
            }
        }
        command
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{receiver}"))
            // Both read by opentelemetry_sdk 0.33 (milliseconds).
            .env("OTEL_METRIC_EXPORT_INTERVAL", "500")
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            .env("PORTCULLIS_BIND", format!("127.0.0.1:{port}"))
            .env("PORTCULLIS_DATA_DIR", data_dir)
            .env("PORTCULLIS_HASH_WORKERS", "1")
            .env("PORTCULLIS_LOG_FORMAT", "json")
            .env("RUST_LOG", "trace")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
        command.envs(env.iter().copied());
        Self {
            child: command.spawn().unwrap(),
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    async fn wait_live(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + START_BOUND;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("portcullis exited with {status}:\n{}", tail(&self.log));
            }
            if let Ok(resp) = client.get(self.url("/health/live")).send().await
                && resp.status() == reqwest::StatusCode::OK
            {
                return;
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

    /// `kill -TERM`, then waits for the exit.
    async fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("the `kill` command runs");
        assert!(status.success(), "kill -TERM failed: {status}");
        self.wait_exit().await
    }

    async fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + EXIT_BOUND;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!(
            "portcullis did not exit within {EXIT_BOUND:?}:\n{}",
            tail(&self.log)
        );
    }
}

/// One request and its answer, kept for the checks.
struct Exchange {
    what: &'static str,
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Exchange {
    async fn send(what: &'static str, request: reqwest::RequestBuilder) -> Self {
        let resp = request.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = resp.text().await.unwrap();
        Self {
            what,
            status,
            headers,
            body,
        }
    }

    fn expect(self, status: u16) -> Self {
        assert_eq!(self.status, status, "{}: {}", self.what, self.body);
        self
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{}: no {name} header", self.what))
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    fn field(&self, name: &str) -> String {
        self.json()[name]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no {name} in {}", self.what, self.body))
            .to_owned()
    }

    /// Headers and body as text for the secrets scan; the token fields of
    /// a token response (where tokens belong) are left out.
    fn scannable(&self) -> String {
        let mut body = self.body.clone();
        if let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(&self.body) {
            let had_tokens =
                map.remove("access_token").is_some() | map.remove("refresh_token").is_some();
            if had_tokens {
                body = Value::Object(map).to_string();
            }
        }
        let mut text = format!("{} {}\n", self.what, self.status);
        for (name, value) in &self.headers {
            text.push_str(&format!("{name}: {value}\n"));
        }
        text.push_str(&body);
        text
    }
}

// ---------------------------------------------------------------------------
// Reading what arrived
// ---------------------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn render_value(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(any_value::Value::ArrayValue(array)) => array
            .values
            .iter()
            .map(|v| render_value(Some(v)))
            .collect::<Vec<_>>()
            .join(","),
        Some(any_value::Value::KvlistValue(list)) => render_attributes(&list.values),
        Some(_) => format!("{value:?}"),
    }
}

fn render_attributes(attributes: &[KeyValue]) -> String {
    attributes
        .iter()
        .map(|kv| format!("{}={}", kv.key, render_value(kv.value.as_ref())))
        .collect::<Vec<_>>()
        .join(" ")
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn string_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match attribute(attributes, key) {
        Some(any_value::Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn int_attribute(attributes: &[KeyValue], key: &str) -> Option<i64> {
    match attribute(attributes, key) {
        Some(any_value::Value::IntValue(i)) => Some(*i),
        _ => None,
    }
}

/// Every span received.
fn spans(received: &Received) -> Vec<Span> {
    received
        .traces
        .iter()
        .flat_map(|request| &request.resource_spans)
        .flat_map(|resource| &resource.scope_spans)
        .flat_map(|scope| scope.spans.clone())
        .collect()
}

/// Every span with its events, as text.
fn render_spans(received: &Received) -> String {
    let mut text = String::new();
    for resource in received.traces.iter().flat_map(|r| &r.resource_spans) {
        if let Some(r) = &resource.resource {
            text.push_str(&format!("resource {}\n", render_attributes(&r.attributes)));
        }
        for scope in &resource.scope_spans {
            for span in &scope.spans {
                text.push_str(&format!(
                    "span {} trace={} id={} parent={} {} status={:?}\n",
                    span.name,
                    hex(&span.trace_id),
                    hex(&span.span_id),
                    hex(&span.parent_span_id),
                    render_attributes(&span.attributes),
                    span.status,
                ));
                for event in &span.events {
                    text.push_str(&format!(
                        "  event {} {}\n",
                        event.name,
                        render_attributes(&event.attributes)
                    ));
                }
                for link in &span.links {
                    text.push_str(&format!(
                        "  link {} {}\n",
                        hex(&link.trace_id),
                        render_attributes(&link.attributes)
                    ));
                }
            }
        }
    }
    text
}

fn metrics(received: &Received) -> Vec<&Metric> {
    received
        .metrics
        .iter()
        .flat_map(|request| &request.resource_metrics)
        .flat_map(|resource| &resource.scope_metrics)
        .flat_map(|scope| &scope.metrics)
        .collect()
}

/// Every metric with its data points' attributes and values, as text.
fn render_metrics(received: &Received) -> String {
    let mut text = String::new();
    for resource in received.metrics.iter().flat_map(|r| &r.resource_metrics) {
        if let Some(r) = &resource.resource {
            text.push_str(&format!("resource {}\n", render_attributes(&r.attributes)));
        }
    }
    for metric in metrics(received) {
        text.push_str(&format!(
            "metric {} ({}) [{}]\n",
            metric.name, metric.description, metric.unit
        ));
        for (attributes, value) in points(metric) {
            text.push_str(&format!(
                "  {} = {value:?}\n",
                render_attributes(&attributes)
            ));
        }
    }
    text
}

/// What one data point says.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Point {
    Number(f64),
    Histogram { count: u64 },
}

/// The data points of one exported metric, with their attributes.
fn points(metric: &Metric) -> Vec<(Vec<KeyValue>, (u64, Point))> {
    let number = |value: &Option<number_data_point::Value>| match value {
        Some(number_data_point::Value::AsInt(i)) => *i as f64,
        Some(number_data_point::Value::AsDouble(d)) => *d,
        None => f64::NAN,
    };
    match &metric.data {
        Some(metric::Data::Sum(sum)) => sum
            .data_points
            .iter()
            .map(|p| {
                (
                    p.attributes.clone(),
                    (p.time_unix_nano, Point::Number(number(&p.value))),
                )
            })
            .collect(),
        Some(metric::Data::Gauge(gauge)) => gauge
            .data_points
            .iter()
            .map(|p| {
                (
                    p.attributes.clone(),
                    (p.time_unix_nano, Point::Number(number(&p.value))),
                )
            })
            .collect(),
        Some(metric::Data::Histogram(histogram)) => histogram
            .data_points
            .iter()
            .map(|p| {
                (
                    p.attributes.clone(),
                    (p.time_unix_nano, Point::Histogram { count: p.count }),
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The latest value of each data point of metric `name`, keyed by its
/// attributes (`key=value` pairs, sorted). The SDK exports cumulative
/// values, so the latest one covers the whole flow.
fn latest(received: &Received, name: &str) -> BTreeMap<BTreeMap<String, String>, Point> {
    let mut newest: BTreeMap<BTreeMap<String, String>, (u64, Point)> = BTreeMap::new();
    for metric in metrics(received).into_iter().filter(|m| m.name == name) {
        for (attributes, (time, point)) in points(metric) {
            let key = attributes
                .iter()
                .map(|kv| (kv.key.clone(), render_value(kv.value.as_ref())))
                .collect();
            let entry = newest.entry(key).or_insert((time, point));
            if time >= entry.0 {
                *entry = (time, point);
            }
        }
    }
    newest.into_iter().map(|(k, (_, p))| (k, p)).collect()
}

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------
// The secrets scan
// ---------------------------------------------------------------------------

/// Substrings this long of a secret count as a leak.
const WINDOW: usize = 16;

/// Finds secrets, whole or as any [`WINDOW`]-byte piece of their secret part.
#[derive(Default)]
struct Scanner {
    whole: Vec<(String, String)>,
    pieces: HashMap<Vec<u8>, String>,
}

impl Scanner {
    /// `core` is the part of `value` whose pieces are secret too (a JWT's
    /// header is the same for every token and says nothing; its payload and
    /// signature are the token).
    fn add(&mut self, name: &str, value: &str, core: &str) {
        assert!(core.len() >= WINDOW, "{name}: too short to scan for");
        self.whole.push((name.to_owned(), value.to_owned()));
        for piece in core.as_bytes().windows(WINDOW) {
            self.pieces
                .entry(piece.to_vec())
                .or_insert_with(|| name.to_owned());
        }
    }

    fn add_jwt(&mut self, name: &str, token: &str) {
        let (_, core) = token
            .split_once('.')
            .unwrap_or_else(|| panic!("{name} is not a JWT"));
        self.add(name, token, core);
    }

    /// The leaks in `text`, described with some context.
    fn find(&self, place: &str, text: &str) -> Vec<String> {
        let mut found = BTreeSet::new();
        for (name, value) in &self.whole {
            if let Some(at) = text.find(value.as_str()) {
                found.insert(format!("{name} in {place}: {}", context(text, at)));
            }
        }
        let mut named = BTreeSet::new();
        for (at, piece) in text.as_bytes().windows(WINDOW).enumerate() {
            if let Some(name) = self.pieces.get(piece)
                && named.insert(name.clone())
            {
                found.insert(format!(
                    "a {WINDOW}-byte piece of {name} in {place}: {}",
                    context(text, at)
                ));
            }
        }
        found.into_iter().collect()
    }
}

fn context(text: &str, at: usize) -> String {
    let mut start = at.saturating_sub(120);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (at + 200).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    format!("…{}…", &text[start..end])
}

// ---------------------------------------------------------------------------
// The database
// ---------------------------------------------------------------------------

struct AuditRow {
    kind: String,
    request_id: Option<String>,
    trace_id: Option<String>,
    text: String,
}

async fn read_database(data_dir: &Path) -> (Vec<AuditRow>, String) {
    let url = portcullis_infra::db::sqlite_url(&data_dir.join("portcullis.db"));
    let db = sea_orm::Database::connect(url).await.unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT kind, outcome, hex(user_id), hex(session_id), client_ip, user_agent, \
             request_id, trace_id, detail FROM auth_events ORDER BY id",
        ))
        .await
        .unwrap();
    let audit = rows
        .iter()
        .map(|row| {
            let columns: Vec<Option<String>> = (0..9)
                .map(|i| row.try_get_by_index::<Option<String>>(i).unwrap())
                .collect();
            AuditRow {
                kind: columns[0].clone().unwrap(),
                request_id: columns[6].clone(),
                trace_id: columns[7].clone(),
                text: columns
                    .iter()
                    .map(|c| c.as_deref().unwrap_or("-"))
                    .collect::<Vec<_>>()
                    .join(" | "),
            }
        })
        .collect();
    let hash: String = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT password_hash FROM users",
        ))
        .await
        .unwrap()
        .expect("the user exists")
        .try_get_by_index(0)
        .unwrap();
    db.close().await.unwrap();
    (audit, hash)
}

/// The raw bytes of the SQLite files, as text.
fn database_files(data_dir: &Path) -> String {
    let mut text = String::new();
    for suffix in ["", "-wal", "-journal"] {
        let path = data_dir.join(format!("portcullis.db{suffix}"));
        if let Ok(bytes) = std::fs::read(&path) {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    text
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

/// The token of the `count`-th link to `/account/<page>` written to
/// `data_dir/mail` for `email` (waits up to 20 s). The `.eml` text part is
/// quoted-printable: soft line breaks and `=3D` are undone first.
async fn link_token(data_dir: &Path, email: &str, page: &str, count: usize) -> String {
    let marker = format!("/account/{page}#token=");
    for _ in 0..200 {
        let mut found = Vec::new();
        if let Ok(entries) = std::fs::read_dir(data_dir.join("mail")) {
            for entry in entries.flatten() {
                let raw = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let text = raw
                    .replace("=\r\n", "")
                    .replace("=\n", "")
                    .replace("=3D", "=");
                if !text.contains(&format!("To: {email}")) {
                    continue;
                }
                if let Some(at) = text.find(&marker) {
                    let token: String = text[at + marker.len()..].chars().take(43).collect();
                    found.push(token);
                }
            }
        }
        if found.len() >= count {
            return found.swap_remove(count - 1);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {page} link was written for {email}");
}

/// A fresh 16-hex-digit id, never all zeros.
fn span_id_hex() -> String {
    Uuid::new_v4().simple().to_string()[..16].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_export_carries_the_flow_and_nothing_secret() {
    let (receiver, store) = start_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut service = Service::start(receiver, dir.path(), &data_dir).await;
    let client = reqwest::Client::new();

    // The flow, with a known password and a caller-chosen trace on the log-in.
    let email = format!(
        "otel.{}@example.com",
        &Uuid::new_v4().simple().to_string()[..8]
    );
    let password = format!("{}-quiet-canary-{}", span_id_hex(), span_id_hex());
    let wrong_password = format!("{}-wrong-canary-{}", span_id_hex(), span_id_hex());
    let trace_id = Uuid::new_v4().simple().to_string();
    let parent_id = span_id_hex();
    let traceparent = format!("00-{trace_id}-{parent_id}-01");
    let credentials = json!({ "email": email, "password": password });

    let signup = Exchange::send(
        "signup",
        client
            .post(service.url("/api/v1/auth/signup"))
            .json(&credentials),
    )
    .await
    .expect(201);
    let login = Exchange::send(
        "login",
        client
            .post(service.url("/api/v1/auth/login"))
            .header("traceparent", &traceparent)
            .json(&credentials),
    )
    .await
    .expect(200);
    let access = login.field("access_token");
    let me = Exchange::send(
        "me",
        client
            .get(service.url("/api/v1/users/me"))
            .bearer_auth(&access),
    )
    .await
    .expect(200);
    let refresh = Exchange::send(
        "refresh",
        client
            .post(service.url("/api/v1/auth/refresh"))
            .json(&json!({ "refresh_token": login.field("refresh_token") })),
    )
    .await
    .expect(200);
    let refreshed_access = refresh.field("access_token");
    let failed = Exchange::send(
        "failed login",
        client
            .post(service.url("/api/v1/auth/login"))
            .json(&json!({ "email": email, "password": wrong_password })),
    )
    .await
    .expect(401);
    let events = Exchange::send(
        "events",
        client
            .get(service.url("/api/v1/auth/events"))
            .bearer_auth(&refreshed_access),
    )
    .await
    .expect(200);
    let logout = Exchange::send(
        "logout",
        client
            .post(service.url("/api/v1/auth/logout"))
            .bearer_auth(&refreshed_access),
    )
    .await
    .expect(200);
    // The account flows by email: the links' tokens and the new password
    // are secrets too. Mail goes to `.eml` files (no SMTP configured).
    let verification = link_token(&data_dir, &email, "verify-email", 1).await;
    let verified = Exchange::send(
        "verify email",
        client
            .post(service.url("/api/v1/auth/email/verify"))
            .json(&json!({ "token": verification })),
    )
    .await
    .expect(200);
    let forgot = Exchange::send(
        "forgot password",
        client
            .post(service.url("/api/v1/auth/password/forgot"))
            .json(&json!({ "email": email })),
    )
    .await
    .expect(202);
    let reset_token = link_token(&data_dir, &email, "reset-password", 1).await;
    let new_password = format!("{}-new-canary-{}", span_id_hex(), span_id_hex());
    let reset = Exchange::send(
        "reset password",
        client
            .post(service.url("/api/v1/auth/password/reset"))
            .json(&json!({ "token": reset_token, "new_password": new_password })),
    )
    .await
    .expect(204);
    let exchanges = [
        &signup, &login, &me, &refresh, &failed, &events, &logout, &verified, &forgot, &reset,
    ];

    // Graceful shutdown flushes the exporters before the process exits.
    let status = service.terminate().await;
    assert!(
        status.success(),
        "portcullis exited with {status} after SIGTERM:\n{}",
        tail(&service.log)
    );
    let logs = std::fs::read_to_string(&service.log).unwrap();
    let received = std::mem::take(&mut *store.lock().unwrap());
    assert!(received.refused.is_empty(), "{:?}", received.refused);

    check_spans(
        &received, &trace_id, &parent_id, &login, &failed, &exchanges,
    );
    check_metrics(&received);
    let (audit, password_hash) = read_database(&data_dir).await;
    check_audit_ids(
        &audit,
        &[
            ("signup", &signup),
            ("login_succeeded", &login),
            ("token_refreshed", &refresh),
            ("login_failed", &failed),
            ("logout", &logout),
            ("email_verified", &verified),
            ("password_reset_requested", &forgot),
            ("password_reset_completed", &reset),
        ],
    );

    // Everything the flow produced, scanned for every secret it involved.
    let mut secrets = Scanner::default();
    secrets.add("the password", &password, &password);
    secrets.add("the wrong password", &wrong_password, &wrong_password);
    for exchange in [&signup, &login, &refresh] {
        let access = exchange.field("access_token");
        let refresh = exchange.field("refresh_token");
        secrets.add_jwt(&format!("the {} access token", exchange.what), &access);
        secrets.add(
            &format!("the {} refresh token", exchange.what),
            &refresh,
            &refresh,
        );
        secrets.add(
            &format!("the {} Authorization header", exchange.what),
            &format!("Bearer {access}"),
            &access,
        );
    }
    // The database may hold the hash (in `users`) but nothing else secret.
    let files = database_files(&data_dir);
    let mut leaks = secrets.find("the database files", &files);
    // The links' tokens and the new password: never in logs, spans, metrics,
    // the audit trail or responses. (The outbox held the tokens until
    // delivery; SQLite may keep scrubbed bytes in free pages and the WAL,
    // so the database files are not scanned for them.)
    secrets.add("the verification token", &verification, &verification);
    secrets.add("the reset token", &reset_token, &reset_token);
    secrets.add("the new password", &new_password, &new_password);
    // `$argon2id$v=19$m=...,t=...,p=...$` is public; the salt and hash are not.
    let hash_core = password_hash.splitn(5, '$').nth(4).unwrap_or_default();
    assert!(
        password_hash.starts_with("$argon2") && hash_core.len() > 40,
        "not a PHC string: {password_hash}"
    );
    secrets.add("the password hash", &password_hash, hash_core);

    assert!(
        logs.contains("\"level\":\"TRACE\"") && logs.contains("request finished"),
        "the logs are not trace-level JSON:\n{}",
        tail(&service.log)
    );
    let spans_text = render_spans(&received);
    let metrics_text = render_metrics(&received);
    let audit_text = audit
        .iter()
        .map(|row| row.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    leaks.extend(secrets.find("the trace-level logs", &logs));
    leaks.extend(secrets.find("the exported spans", &spans_text));
    leaks.extend(secrets.find("the exported metrics", &metrics_text));
    leaks.extend(secrets.find("the audit rows", &audit_text));
    for exchange in exchanges {
        leaks.extend(secrets.find(
            &format!("the {} response", exchange.what),
            &exchange.scannable(),
        ));
    }
    // The scan itself works: a token piece and the hash are found.
    let refresh_token = login.field("refresh_token");
    assert_eq!(
        secrets
            .find("probe", &format!("x{}y", &refresh_token[3..3 + WINDOW]))
            .len(),
        1
    );
    assert!(!secrets.find("probe", &password_hash).is_empty());
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n\n"));
}

fn check_spans(
    received: &Received,
    trace_id: &str,
    parent_id: &str,
    login: &Exchange,
    failed: &Exchange,
    exchanges: &[&Exchange],
) {
    assert!(!received.traces.is_empty(), "no spans arrived");
    for resource in received.traces.iter().flat_map(|r| &r.resource_spans) {
        let attributes = &resource.resource.as_ref().unwrap().attributes;
        assert_eq!(
            string_attribute(attributes, "service.name"),
            Some("portcullis"),
            "resource {}",
            render_attributes(attributes)
        );
    }
    let spans = spans(received);
    let by_id: HashMap<Vec<u8>, &Span> = spans.iter().map(|s| (s.span_id.clone(), s)).collect();
    let server_spans_of = |trace: &str| -> Vec<&Span> {
        spans
            .iter()
            .filter(|s| hex(&s.trace_id) == trace && s.kind == SpanKind::Server as i32)
            .collect()
    };
    let child_named = |parent: &Span, name: &str| -> Span {
        spans
            .iter()
            .find(|s| s.name == name && s.parent_span_id == parent.span_id)
            .unwrap_or_else(|| panic!("no {name} span under {}", parent.name))
            .clone()
    };
    let descends_from = |span: &Span, ancestor: &Span| -> bool {
        let mut current = span;
        for _ in 0..32 {
            if current.parent_span_id == ancestor.span_id {
                return true;
            }
            match by_id.get(&current.parent_span_id) {
                Some(parent) => current = parent,
                None => return false,
            }
        }
        false
    };

    // Every request has one server span, in the trace its X-Trace-Id names.
    for exchange in exchanges {
        let server = server_spans_of(exchange.header("x-trace-id"));
        assert_eq!(
            server.len(),
            1,
            "{}: server spans {server:?}",
            exchange.what
        );
        let attributes = &server[0].attributes;
        assert_eq!(
            int_attribute(attributes, "http.response.status_code"),
            Some(i64::from(exchange.status)),
            "{}: {}",
            exchange.what,
            render_attributes(attributes)
        );
        assert_eq!(
            string_attribute(attributes, "request_id"),
            Some(exchange.header("x-request-id")),
            "{}",
            exchange.what
        );
    }

    // The log-in continued the caller's trace.
    assert_eq!(login.header("x-trace-id"), trace_id);
    let server = server_spans_of(trace_id)[0].clone();
    assert_eq!(server.name, "POST /api/v1/auth/login");
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(hex(&server.parent_span_id), parent_id, "not continued");
    let attributes = &server.attributes;
    for (key, want) in [
        ("http.request.method", "POST"),
        ("http.route", "/api/v1/auth/login"),
        ("client.address", "127.0.0.1"),
    ] {
        assert_eq!(
            string_attribute(attributes, key),
            Some(want),
            "{key}: {}",
            render_attributes(attributes)
        );
    }
    assert_eq!(
        int_attribute(attributes, "http.response.status_code"),
        Some(200)
    );

    // The service span under it, and the password check under that.
    let log_in = child_named(&server, "auth.log_in");
    assert_eq!(log_in.trace_id, server.trace_id);
    assert_eq!(
        string_attribute(&log_in.attributes, "outcome"),
        Some("success")
    );
    let verify = spans
        .iter()
        .find(|s| s.name == "password.verify" && s.trace_id == server.trace_id)
        .expect("a password.verify span in the log-in trace");
    assert!(
        descends_from(verify, &log_in),
        "password.verify is not under auth.log_in"
    );

    // The failed log-in says why.
    let failed_server = server_spans_of(failed.header("x-trace-id"))[0].clone();
    assert_eq!(failed_server.name, "POST /api/v1/auth/login");
    let failed_log_in = child_named(&failed_server, "auth.log_in");
    assert_eq!(
        string_attribute(&failed_log_in.attributes, "outcome"),
        Some("invalid_credentials")
    );

    // Sign-up hashes under its own service span.
    let signup_server = spans
        .iter()
        .find(|s| s.name == "POST /api/v1/auth/signup")
        .expect("a sign-up server span");
    let sign_up = child_named(signup_server, "auth.sign_up");
    assert_eq!(
        string_attribute(&sign_up.attributes, "outcome"),
        Some("success")
    );
    let hash = spans
        .iter()
        .find(|s| s.name == "password.hash" && s.trace_id == sign_up.trace_id)
        .expect("a password.hash span in the sign-up trace");
    assert!(descends_from(hash, &sign_up));
    for (route, service_span) in [
        ("POST /api/v1/auth/refresh", "auth.refresh"),
        ("POST /api/v1/auth/logout", "auth.log_out"),
    ] {
        let server = spans
            .iter()
            .find(|s| s.name == route)
            .unwrap_or_else(|| panic!("no {route} span"));
        let span = child_named(server, service_span);
        assert_eq!(
            string_attribute(&span.attributes, "outcome"),
            Some("success")
        );
    }
}

fn check_metrics(received: &Received) {
    assert!(!received.metrics.is_empty(), "no metrics arrived");
    for resource in received.metrics.iter().flat_map(|r| &r.resource_metrics) {
        let attributes = &resource.resource.as_ref().unwrap().attributes;
        assert_eq!(
            string_attribute(attributes, "service.name"),
            Some("portcullis")
        );
    }

    let events = latest(received, "portcullis.auth.events");
    let expected: BTreeMap<_, _> = [
        ("signup", "success"),
        ("login_succeeded", "success"),
        ("login_failed", "failure"),
        ("token_refreshed", "success"),
        ("logout", "success"),
        ("email_verified", "success"),
        ("password_reset_requested", "success"),
        ("password_reset_completed", "success"),
    ]
    .into_iter()
    .map(|(kind, outcome)| {
        (
            attrs(&[("event.type", kind), ("outcome", outcome)]),
            Point::Number(1.0),
        )
    })
    .collect();
    assert_eq!(events, expected);

    let http = latest(received, "http.server.request.duration");
    for (method, route, status, count) in [
        ("POST", "/api/v1/auth/signup", "201", 1),
        ("POST", "/api/v1/auth/login", "200", 1),
        ("POST", "/api/v1/auth/login", "401", 1),
        ("POST", "/api/v1/auth/refresh", "200", 1),
        ("GET", "/api/v1/users/me", "200", 1),
        ("POST", "/api/v1/auth/logout", "200", 1),
    ] {
        let key = attrs(&[
            ("http.request.method", method),
            ("http.route", route),
            ("http.response.status_code", status),
        ]);
        assert_eq!(
            http.get(&key),
            Some(&Point::Histogram { count }),
            "{method} {route} {status} in {http:?}"
        );
    }

    let login = latest(received, "portcullis.auth.login.duration");
    assert_eq!(
        login,
        BTreeMap::from([
            (
                attrs(&[("outcome", "invalid_credentials")]),
                Point::Histogram { count: 1 }
            ),
            (
                attrs(&[("outcome", "success")]),
                Point::Histogram { count: 1 }
            ),
        ])
    );
    let refresh = latest(received, "portcullis.auth.refresh.duration");
    assert_eq!(
        refresh,
        BTreeMap::from([(
            attrs(&[("outcome", "success")]),
            Point::Histogram { count: 1 }
        )])
    );
    for gauge in [
        "portcullis.password.hash.queue_depth",
        "portcullis.audit.dropped",
    ] {
        assert_eq!(
            latest(received, gauge),
            BTreeMap::from([(BTreeMap::new(), Point::Number(0.0))]),
            "{gauge}"
        );
    }
}

fn check_audit_ids(audit: &[AuditRow], causes: &[(&str, &Exchange)]) {
    let mut kinds: Vec<&str> = audit.iter().map(|row| row.kind.as_str()).collect();
    kinds.sort_unstable();
    let mut expected: Vec<&str> = causes.iter().map(|(kind, _)| *kind).collect();
    expected.sort_unstable();
    assert_eq!(kinds, expected, "audit events of the flow");
    for row in audit {
        let (_, cause) = causes.iter().find(|(kind, _)| *kind == row.kind).unwrap();
        assert_eq!(
            row.trace_id.as_deref(),
            Some(cause.header("x-trace-id")),
            "{} event: trace id",
            row.kind
        );
        assert_eq!(
            row.request_id.as_deref(),
            Some(cause.header("x-request-id")),
            "{} event: request id",
            row.kind
        );
    }
}

/// A password in `DATABASE_URL` stays out of trace-level logs and spans,
/// and out of the start-up error. (sea-orm's trace-level driver `connect`
/// spans record the whole connection options, URL included.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_password_stays_out_of_logs_and_spans() {
    let (receiver, store) = start_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let db_password = format!("db-canary-{}", Uuid::new_v4().simple());
    // Nothing listens there: the start fails after trying to connect.
    let url = format!(
        "postgres://portcullis:{db_password}@127.0.0.1:{}/portcullis",
        free_port()
    );
    let mut service = Service::spawn(
        receiver,
        dir.path(),
        &dir.path().join("data"),
        &[
            ("DATABASE_URL", &url),
            ("PORTCULLIS_DB_ACQUIRE_TIMEOUT_MS", "500"),
        ],
    );
    let status = service.wait_exit().await;
    assert!(!status.success(), "started without a database");
    let logs = std::fs::read_to_string(&service.log).unwrap();
    let received = std::mem::take(&mut *store.lock().unwrap());
    assert!(received.refused.is_empty(), "{:?}", received.refused);

    // The attempt was traced at trace level (so the scan means something)...
    assert!(
        spans(&received)
            .iter()
            .any(|s| string_attribute(&s.attributes, "code.module.name")
                .is_some_and(|m| m.starts_with("sea_orm"))),
        "no sea-orm span arrived:\n{}",
        render_spans(&received)
    );
    assert!(logs.contains("connecting to the database"), "{logs}");
    // ...without the password.
    let mut secrets = Scanner::default();
    secrets.add("the database password", &db_password, &db_password);
    let mut leaks = secrets.find("the trace-level logs", &logs);
    leaks.extend(secrets.find("the exported spans", &render_spans(&received)));
    leaks.extend(secrets.find("the exported metrics", &render_metrics(&received)));
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n\n"));
}
