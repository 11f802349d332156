//! Load generation: N keep-alive connections, each looping one script of
//! requests (closed loop, or paced at a fixed interval), over a warm-up and
//! then a measured window; the server's CPU time and RSS are read from
//! `/proc` over the same window.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use hyper::StatusCode;
use serde::Serialize;
use tokio::time::{Instant, sleep_until};

use crate::http::{Call, Connection};
use crate::server;

/// How often the server's RSS is sampled during a window.
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// Error messages kept per workload for the report.
const ERROR_EXAMPLES: usize = 5;

/// An account the bench created, with its latest tokens.
#[derive(Debug, Clone)]
pub struct User {
    pub email: String,
    pub password: String,
    pub access: String,
    pub refresh: String,
}

/// What one connection sends, request after request.
pub trait Script: Send + 'static {
    /// The next request.
    fn next_call(&mut self) -> Call;
    /// The status every answer must have.
    fn expected(&self) -> StatusCode;
    /// Looks at a successful answer (a refresh takes its new token from it).
    fn answer(&mut self, _body: &Bytes) -> anyhow::Result<()> {
        Ok(())
    }
    /// Told when an answer was not the expected one (the run fails anyway;
    /// a multi-step script can start over instead of repeating the step).
    fn failed(&mut self) {}
}

/// The same request every time.
pub struct Fixed {
    pub call: Call,
    pub status: StatusCode,
}

impl Script for Fixed {
    fn next_call(&mut self) -> Call {
        self.call.clone()
    }
    fn expected(&self) -> StatusCode {
        self.status
    }
}

/// Sign-ups with fresh emails; the new accounts go to `created`.
pub struct SignUps {
    pub prefix: String,
    pub connection: usize,
    pub counter: u64,
    pub password: String,
    pub pending: Option<(String, String)>,
    pub created: Arc<Mutex<Vec<User>>>,
}

impl Script for SignUps {
    fn next_call(&mut self) -> Call {
        self.counter += 1;
        let email = format!(
            "{}-{}-{}@bench.example.com",
            self.prefix, self.connection, self.counter
        );
        let body = credentials(&email, &self.password);
        self.pending = Some((email, self.password.clone()));
        Call::post("/api/v1/auth/signup", body)
    }
    fn expected(&self) -> StatusCode {
        StatusCode::CREATED
    }
    fn answer(&mut self, body: &Bytes) -> anyhow::Result<()> {
        let (access, refresh) = token_pair(body)?;
        if let Some((email, password)) = self.pending.take() {
            self.created
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(User {
                    email,
                    password,
                    access,
                    refresh,
                });
        }
        Ok(())
    }
}

/// Log-ins cycling through existing accounts.
pub struct LogIns {
    pub users: Arc<Vec<User>>,
    pub next: usize,
    pub stride: usize,
}

impl Script for LogIns {
    fn next_call(&mut self) -> Call {
        let call = match self.users.get(self.next % self.users.len().max(1)) {
            Some(user) => Call::post(
                "/api/v1/auth/login",
                credentials(&user.email, &user.password),
            ),
            None => Call::post("/api/v1/auth/login", "{}"),
        };
        self.next = self.next.wrapping_add(self.stride);
        call
    }
    fn expected(&self) -> StatusCode {
        StatusCode::OK
    }
}

/// One refresh-token chain: each answer's token is presented next.
pub struct Refreshes {
    pub token: String,
}

impl Script for Refreshes {
    fn next_call(&mut self) -> Call {
        let body = serde_json::json!({ "refresh_token": self.token }).to_string();
        Call::post("/api/v1/auth/refresh", body)
    }
    fn expected(&self) -> StatusCode {
        StatusCode::OK
    }
    fn answer(&mut self, body: &Bytes) -> anyhow::Result<()> {
        self.token = token_pair(body)?.1;
        Ok(())
    }
}

pub fn credentials(email: &str, password: &str) -> String {
    serde_json::json!({ "email": email, "password": password }).to_string()
}

/// `access_token` and `refresh_token` of a token-pair body.
pub fn token_pair(body: &Bytes) -> anyhow::Result<(String, String)> {
    let value: serde_json::Value =
        serde_json::from_slice(body).context("a token pair that is not JSON")?;
    let field = |name: &str| {
        value
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("a token pair without `{name}`"))
    };
    Ok((field("access_token")?, field("refresh_token")?))
}

/// Connections that run the same kind of script together.
pub struct Group {
    pub name: String,
    pub scripts: Vec<Box<dyn Script>>,
    /// One request per connection per `pace` instead of back to back.
    pub pace: Option<Duration>,
}

/// Latency percentiles, milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    /// Nearest-rank percentiles of microsecond samples.
    pub fn from_micros(samples: &mut [u32]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let rank = |p: f64| {
            let index = ((p * samples.len() as f64).ceil() as usize).saturating_sub(1);
            f64::from(samples[index.min(samples.len() - 1)]) / 1000.0
        };
        let sum: u64 = samples.iter().map(|&s| u64::from(s)).sum();
        Self {
            p50_ms: rank(0.50),
            p90_ms: rank(0.90),
            p99_ms: rank(0.99),
            max_ms: rank(1.0),
            mean_ms: sum as f64 / samples.len() as f64 / 1000.0,
        }
    }
}

/// What one group did in the measured window.
#[derive(Debug, Clone)]
pub struct GroupResult {
    pub name: String,
    pub connections: usize,
    pub pace: Option<Duration>,
    pub requests: u64,
    pub per_second: f64,
    pub latency: Latency,
    pub errors: u64,
    pub error_examples: Vec<String>,
}

/// What the server (and the bench itself) used over the measured window.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Usage {
    pub window_s: f64,
    pub server_cpu_s: f64,
    pub client_cpu_s: f64,
    /// CPU time of everything else on the machine: noise when well above 0.
    pub other_cpu_s: f64,
    /// Largest VmRSS sampled in the window.
    pub server_peak_rss_mib: f64,
}

struct ConnectionResult {
    latencies_us: Vec<u32>,
    errors: u64,
    examples: Vec<String>,
}

/// Runs `groups` at the same time: warm-up, then the measured window.
/// Fails when a connection cannot be opened; request errors are counted
/// and returned (the caller fails loudly on them).
pub async fn run(
    addr: SocketAddr,
    server_pid: u32,
    groups: Vec<Group>,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<(Vec<GroupResult>, Usage)> {
    // Every connection is open before the clock starts.
    let mut opened = Vec::new();
    for group in groups {
        let mut connections = Vec::with_capacity(group.scripts.len());
        for script in group.scripts {
            connections.push((Connection::open(addr).await?, script));
        }
        opened.push((group.name, group.pace, connections));
    }

    let start = Instant::now() + warmup;
    let end = start + window;
    let pid = server_pid.to_string();
    let monitor = tokio::spawn(monitor(pid, start, end));

    let mut running = Vec::new();
    for (name, pace, connections) in opened {
        let count = connections.len();
        let mut tasks = Vec::with_capacity(count);
        for (connection, script) in connections {
            tasks.push(tokio::spawn(drive(connection, script, pace, start, end)));
        }
        running.push((name, pace, count, tasks));
    }

    let mut results = Vec::new();
    for (name, pace, connections, tasks) in running {
        let mut latencies = Vec::new();
        let mut errors = 0;
        let mut examples = Vec::new();
        for task in tasks {
            let result = task.await.context("a load task failed")?;
            latencies.extend_from_slice(&result.latencies_us);
            errors += result.errors;
            for example in result.examples {
                if examples.len() < ERROR_EXAMPLES {
                    examples.push(example);
                }
            }
        }
        let requests = latencies.len() as u64;
        results.push(GroupResult {
            name,
            connections,
            pace,
            requests,
            per_second: requests as f64 / window.as_secs_f64(),
            latency: Latency::from_micros(&mut latencies),
            errors,
            error_examples: examples,
        });
    }
    let usage = monitor.await.context("the monitor task failed")??;
    Ok((results, usage))
}

/// One connection's loop. Requests sent in the window are measured; any
/// unexpected status or transport error is an error, and a transport error
/// ends the connection.
async fn drive(
    mut connection: Connection,
    mut script: Box<dyn Script>,
    pace: Option<Duration>,
    start: Instant,
    end: Instant,
) -> ConnectionResult {
    let mut result = ConnectionResult {
        latencies_us: Vec::with_capacity(16_384),
        errors: 0,
        examples: Vec::new(),
    };
    let mut next_send = Instant::now();
    loop {
        if let Some(pace) = pace {
            sleep_until(next_send).await;
            // Late answers do not cause a burst afterwards.
            next_send = (next_send + pace).max(Instant::now());
        }
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        let call = script.next_call();
        let outcome = connection.send(&call).await;
        let elapsed = sent.elapsed();
        let failure = match outcome {
            Ok((status, body)) if status == script.expected() => match script.answer(&body) {
                Ok(()) => None,
                Err(error) => Some((format!("{} {}: {error:#}", call.method, call.path), false)),
            },
            Ok((status, body)) => Some((
                format!(
                    "{} {}: expected {}, got {status}: {}",
                    call.method,
                    call.path,
                    script.expected().as_u16(),
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                ),
                false,
            )),
            Err(error) => Some((format!("{} {}: {error:#}", call.method, call.path), true)),
        };
        match failure {
            None => {
                if sent >= start {
                    result
                        .latencies_us
                        .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
                }
            }
            Some((message, fatal)) => {
                script.failed();
                result.errors += 1;
                if result.examples.len() < ERROR_EXAMPLES {
                    result.examples.push(message);
                }
                if fatal {
                    break;
                }
            }
        }
    }
    result
}

/// CPU time of the server and of this process over the window, and the
/// server's largest RSS sampled in it.
async fn monitor(pid: String, start: Instant, end: Instant) -> anyhow::Result<Usage> {
    let ticks = server::clock_ticks();
    sleep_until(start).await;
    let began = Instant::now();
    let server_before = server::cpu_ticks(&pid)?;
    let client_before = server::cpu_ticks("self")?;
    let machine_before = server::machine_busy_ticks()?;
    let mut peak_kib = server::status_kib(&pid, "VmRSS")?;
    while Instant::now() < end {
        tokio::time::sleep(RSS_SAMPLE_EVERY.min(end.saturating_duration_since(Instant::now())))
            .await;
        peak_kib = peak_kib.max(server::status_kib(&pid, "VmRSS")?);
    }
    let server_after = server::cpu_ticks(&pid)?;
    let client_after = server::cpu_ticks("self")?;
    let machine_after = server::machine_busy_ticks()?;
    let server_ticks = server_after.saturating_sub(server_before);
    let client_ticks = client_after.saturating_sub(client_before);
    let other_ticks = machine_after
        .saturating_sub(machine_before)
        .saturating_sub(server_ticks + client_ticks);
    Ok(Usage {
        window_s: began.elapsed().as_secs_f64(),
        server_cpu_s: server_ticks as f64 / ticks,
        client_cpu_s: client_ticks as f64 / ticks,
        other_cpu_s: other_ticks as f64 / ticks,
        server_peak_rss_mib: peak_kib as f64 / 1024.0,
    })
}

/// Fails loudly on any request error of `results`.
pub fn ensure_no_errors(
    results: &[GroupResult],
    server_log: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    let failed: Vec<&GroupResult> = results.iter().filter(|r| r.errors > 0).collect();
    if failed.is_empty() {
        return Ok(());
    }
    let mut message = String::from("request errors (every request must succeed):\n");
    for result in failed {
        message.push_str(&format!(
            "  {}: {} errors, for example:\n",
            result.name, result.errors
        ));
        for example in &result.error_examples {
            message.push_str(&format!("    {example}\n"));
        }
    }
    message.push_str("end of the server log:\n");
    message.push_str(&server_log());
    bail!(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<u32> = (1..=100).rev().map(|ms| ms * 1000).collect();
        let latency = Latency::from_micros(&mut samples);
        assert_eq!(latency.p50_ms, 50.0);
        assert_eq!(latency.p90_ms, 90.0);
        assert_eq!(latency.p99_ms, 99.0);
        assert_eq!(latency.max_ms, 100.0);
        assert_eq!(latency.mean_ms, 50.5);
        assert_eq!(Latency::from_micros(&mut []).max_ms, 0.0);
    }

    #[test]
    fn token_pairs_are_read() {
        let body = Bytes::from_static(br#"{"access_token":"a","refresh_token":"r","x":1}"#);
        assert_eq!(token_pair(&body).unwrap(), ("a".to_owned(), "r".to_owned()));
        assert!(token_pair(&Bytes::from_static(b"{}")).is_err());
    }
}
