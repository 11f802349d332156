//! `portcullis-bench`: starts the release `portcullis` binary as a child
//! process (SQLite in a temporary data directory, `PORTCULLIS_RATE_LIMIT=off`,
//! a free loopback port), drives it over real HTTP from this process, and
//! prints throughput, latency, server CPU time and memory per workload next
//! to the baselines (raw argon2id, `/health/live`) and the targets.
//!
//! ```sh
//! cargo build --release -p portcullis-api && cargo run --release -p portcullis-bench -- --all
//! ```
//!
//! `--soak MINUTES` runs the mixed account-lifecycle load instead and prints
//! the server's RSS, open file descriptors, threads and database size as it
//! goes (see `soak.rs`).
//!
//! Any request error (a transport error, or a status other than the one
//! expected) fails the run with a non-zero exit; a missed target is reported
//! (NOT MET) and does not.

mod hash;
mod http;
mod limiter;
mod load;
mod report;
mod server;
mod soak;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use clap::Parser;
use hyper::StatusCode;

use crate::http::Call;
use crate::limiter::LimiterFigures;
use crate::load::{Fixed, Group, LogIns, Refreshes, Script, SignUps, User};
use crate::report::{Baselines, HashRate, Machine, Report, Row, Settings, Startup, Target};
use crate::server::Server;

/// A password every sign-up passes the policy with.
const PASSWORD: &str = "quiet meadow lantern 8472 river";
/// The server restarts timed on the existing database.
const RESTARTS: usize = 3;
/// How long the hash rate is measured again before each hashing workload.
const NEIGHBOUR_BASELINE: Duration = Duration::from_secs(5);
/// Distinct clients of the in-process limiter measurement.
const LIMITER_CLIENTS: u64 = 1_000_000;
/// Let the server settle before idle memory is read.
const SETTLE: Duration = Duration::from_secs(1);

/// Every workload, in the order `--all` runs them.
const WORKLOADS: [&str; 16] = [
    "hash",
    "limiter",
    "health",
    "signup",
    "login",
    "refresh",
    "forgot-known",
    "forgot-unknown",
    "forgot-timing",
    "verify",
    "me",
    "task-create",
    "task-list",
    "probe-idle",
    "flood",
    "restart",
];

/// Benchmarks the release `portcullis` server against its targets.
#[derive(Parser, Debug)]
#[command(name = "portcullis-bench", about)]
struct Args {
    /// Run every workload (the documented command).
    #[arg(long, conflicts_with_all = ["only", "soak"])]
    all: bool,
    /// Soak instead: this many minutes of mixed load (every connection loops
    /// an account's whole life) while the server's RSS, open file
    /// descriptors, threads and database size are sampled. Uses
    /// --hash-connections connections.
    #[arg(long, conflicts_with = "only", value_parser = parse_minutes)]
    soak: Option<f64>,
    /// Seconds between two soak samples.
    #[arg(long, default_value_t = 10)]
    sample_every: u64,
    /// Run only these workloads (comma-separated): hash, limiter, health,
    /// signup, login, refresh, forgot-known, forgot-unknown, forgot-timing,
    /// verify, me,
    /// task-create, task-list, probe-idle, flood, restart. Accounts they need are created first.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Measured seconds per workload.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Warm-up seconds before each measured window.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Connections of the workloads that do not hash passwords.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Connections of the sign-up, log-in and flood workloads.
    #[arg(long, default_value_t = 16)]
    hash_connections: usize,
    /// Paced connections of the latency probe.
    #[arg(long, default_value_t = 4)]
    probe_connections: usize,
    /// Each probe connection sends one request per this many milliseconds.
    #[arg(long, default_value_t = 4.0)]
    probe_interval_ms: f64,
    /// The server's argon2id implementation (`fast` or `reference`), to
    /// compare the two on the same build; the ceiling is always the fastest.
    #[arg(long, default_value = "fast", value_parser = ["fast", "reference"])]
    server_argon2: String,
    /// The server binary (default: target/release/portcullis of this workspace).
    #[arg(long)]
    server: Option<PathBuf>,
    /// Where latest.json and latest.md go (default: bench/results).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the table into the README's "Performance" section.
    #[arg(long)]
    update_readme: bool,
    /// A note stored with the results (for example "before the cache").
    #[arg(long)]
    label: Option<String>,
    /// Keep the loaded server running this many seconds before it stops
    /// (to inspect it: its pid is printed).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=600))]
    hold: u64,
}

/// The ceiling measured next to a hashing workload: the fast implementation
/// on every core, for at most [`NEIGHBOUR_BASELINE`].
async fn neighbour_rate(window: Duration, nproc: usize) -> anyhow::Result<f64> {
    let window = window.min(NEIGHBOUR_BASELINE);
    tokio::task::spawn_blocking(move || {
        hash::rate(
            hash::Implementation::Fast,
            nproc,
            Duration::from_secs(1),
            window,
        )
    })
    .await?
}

fn parse_minutes(text: &str) -> Result<f64, String> {
    let minutes: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if minutes > 0.0 && minutes <= 24.0 * 60.0 {
        Ok(minutes)
    } else {
        Err("the soak lasts more than 0 and at most 1440 minutes".to_owned())
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn default_server() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
        .join("release")
        .join("portcullis")
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("portcullis-bench: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("\nportcullis-bench FAILED: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(minutes) = args.soak {
        return run_soak(&args, minutes).await;
    }
    let selected: Vec<&str> = if args.all {
        WORKLOADS.to_vec()
    } else if args.only.is_empty() {
        bail!("say --all (or --only a,b,c, or --soak MINUTES); see --help");
    } else {
        for name in &args.only {
            if !WORKLOADS.contains(&name.as_str()) {
                bail!("unknown workload {name:?}; known: {}", WORKLOADS.join(", "));
            }
        }
        WORKLOADS
            .iter()
            .copied()
            .filter(|w| args.only.iter().any(|o| o == w))
            .collect()
    };
    anyhow::ensure!(
        args.duration > 0.0 && args.duration <= 120.0,
        "--duration must be in (0, 120] seconds"
    );
    anyhow::ensure!(
        args.warmup >= 0.0 && args.warmup <= 60.0,
        "--warmup must be in [0, 60] seconds"
    );
    anyhow::ensure!(
        (1..=1024).contains(&args.connections)
            && (1..=1024).contains(&args.hash_connections)
            && (1..=64).contains(&args.probe_connections),
        "connection counts must be at least 1 (at most 1024, 64 for the probe)"
    );
    anyhow::ensure!(
        args.probe_interval_ms >= 0.1,
        "--probe-interval-ms must be at least 0.1"
    );

    let Setup {
        binary,
        nproc,
        load_before,
        data,
        data_dir,
    } = Setup::new(&args, "portcullis-bench-")?;

    let mut bench = Bench {
        args: &args,
        warmup: Duration::from_secs_f64(args.warmup),
        window: Duration::from_secs_f64(args.duration),
        users: Vec::new(),
        rows: Vec::new(),
        run_id: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let mut baselines = Baselines {
        argon2_threads: nproc,
        argon2_hashes_per_s: None,
        argon2_before: Vec::new(),
        argon2_after: Vec::new(),
        argon2_implementations: Vec::new(),
    };
    let mut startup = Startup::default();
    let mut limiter_figures = None;

    println!(
        "portcullis-bench: server {} on SQLite in {}",
        binary.display(),
        data_dir.display()
    );
    let mut server = Server::start(&binary, &data_dir, &args.server_argon2).await?;
    startup.first_start_ms = Some(millis(server.start_to_ready));
    tokio::time::sleep(SETTLE).await;
    startup.idle_rss_fresh_mib = Some(rss_mib(&server, "VmRSS")?);
    println!(
        "  started in {:.0} ms; idle RSS {:.1} MiB",
        millis(server.start_to_ready),
        startup.idle_rss_fresh_mib.unwrap_or_default()
    );

    let outcome = async {
        for workload in selected.iter().copied().filter(|w| *w != "restart") {
            println!("- {workload}");
            if workload == "hash" {
                // Each implementation on one thread and on the server's
                // hashing workers; the ceiling is the fast one on all of them.
                let (warmup, window) = (bench.warmup, bench.window.min(NEIGHBOUR_BASELINE));
                for implementation in [hash::Implementation::Fast, hash::Implementation::Reference]
                {
                    for threads in [1, nproc] {
                        let rate = tokio::task::spawn_blocking(move || {
                            hash::rate(implementation, threads, warmup, window)
                        })
                        .await??;
                        println!(
                            "  {}: {rate:.1} hashes/s on {threads} thread(s)",
                            implementation.name()
                        );
                        baselines.argon2_implementations.push(HashRate {
                            implementation: implementation.name().to_owned(),
                            threads,
                            hashes_per_s: rate,
                        });
                        if implementation == hash::Implementation::Fast && threads == nproc {
                            baselines.argon2_hashes_per_s = Some(rate);
                        }
                    }
                }
            } else if workload == "limiter" {
                let figures = tokio::task::spawn_blocking(|| limiter::measure(LIMITER_CLIENTS))
                    .await??;
                println!(
                    "  {} distinct clients: {:.0} ns per decision ({:.0} ns for the first 100k, {:.0} ns for the last), {} held (cap {}), RSS +{:.1} MiB",
                    figures.clients,
                    figures.ns_per_decision,
                    figures.ns_per_decision_first_100k,
                    figures.ns_per_decision_last_100k,
                    figures.held,
                    figures.cap,
                    figures.rss_growth_mib
                );
                limiter_figures = Some(figures);
            } else {
                let hashing = matches!(workload, "signup" | "login");
                if hashing {
                    let rate = neighbour_rate(bench.window, nproc).await?;
                    println!("  argon2id just before: {rate:.1} hashes/s");
                    baselines.argon2_before.push((workload.to_owned(), rate));
                }
                bench.workload(&mut server, workload).await?;
                if hashing {
                    let rate = neighbour_rate(bench.window, nproc).await?;
                    println!("  argon2id just after: {rate:.1} hashes/s");
                    baselines.argon2_after.push((workload.to_owned(), rate));
                }
            }
            server.check_alive()?;
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(error) = outcome {
        let _ = server.stop().await;
        return Err(error);
    }

    tokio::time::sleep(SETTLE * 2).await;
    startup.idle_rss_after_load_mib = Some(rss_mib(&server, "VmRSS")?);
    if args.hold > 0 {
        println!(
            "holding the server (pid {}, http://{}) for {} s",
            server.pid(),
            server.addr,
            args.hold
        );
        tokio::time::sleep(Duration::from_secs(args.hold)).await;
    }
    startup.lifetime_peak_rss_mib = Some(rss_mib(&server, "VmHWM")?);
    server.stop().await?;

    if selected.contains(&"restart") {
        println!("- restart (x{RESTARTS}, existing database)");
        let mut idle: f64 = 0.0;
        for _ in 0..RESTARTS {
            let server = Server::start(&binary, &data_dir, &args.server_argon2).await?;
            startup
                .start_to_ready_ms
                .push(millis(server.start_to_ready));
            tokio::time::sleep(SETTLE).await;
            idle = idle.max(rss_mib(&server, "VmRSS")?);
            server.stop().await?;
        }
        startup.idle_rss_restarted_mib = Some(idle);
    }

    let report = Report {
        label: args.label.clone(),
        machine: machine(nproc, load_before),
        settings: Settings {
            warmup_s: args.warmup,
            window_s: args.duration,
            connections: args.connections,
            hash_connections: args.hash_connections,
            probe_connections: args.probe_connections,
            probe_interval_ms: args.probe_interval_ms,
            server: binary.display().to_string(),
            server_argon2: args.server_argon2.clone(),
        },
        targets: targets(&bench.rows, &baselines, &startup, limiter_figures.as_ref()),
        baselines,
        startup,
        limiter: limiter_figures,
        rows: bench.rows,
    };
    println!("\n{}", report.text());
    let out = out_dir(&args);
    report.write(&out)?;
    println!("wrote {}/latest.json and latest.md", out.display());
    if args.update_readme {
        update_readme(report::README_BEGIN, report::README_END, &report.markdown())?;
    }
    drop(data);
    Ok(())
}

/// Where results go: `--out`, or `bench/results` of this workspace.
fn out_dir(args: &Args) -> PathBuf {
    args.out
        .clone()
        .unwrap_or_else(|| workspace_root().join("bench").join("results"))
}

/// Replaces the README's generated block between `begin` and `end`.
fn update_readme(begin: &str, end: &str, block: &str) -> anyhow::Result<()> {
    let path = workspace_root().join("README.md");
    let readme =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let updated = report::splice_between(&readme, begin, end, block)?;
    std::fs::write(&path, updated).with_context(|| format!("writing {}", path.display()))?;
    println!("updated the generated block of {}", path.display());
    Ok(())
}

/// What every run needs before the server starts.
struct Setup {
    binary: PathBuf,
    nproc: usize,
    load_before: String,
    /// Removed when dropped.
    data: tempfile::TempDir,
    data_dir: PathBuf,
}

impl Setup {
    fn new(args: &Args, prefix: &str) -> anyhow::Result<Self> {
        let binary = args.server.clone().unwrap_or_else(default_server);
        if !binary.is_file() {
            bail!(
                "no server binary at {}: build it first with `cargo build --release -p portcullis-api`",
                binary.display()
            );
        }
        warn_if_stale(&binary);
        let data = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .context("creating a temporary data directory")?;
        Ok(Self {
            binary,
            nproc: std::thread::available_parallelism().map_or(1, usize::from),
            load_before: load_average(),
            data_dir: data.path().join("data"),
            data,
        })
    }
}

/// The soak: one server, `minutes` of the account-lifecycle load.
async fn run_soak(args: &Args, minutes: f64) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=1024).contains(&args.hash_connections),
        "--hash-connections must be in 1..=1024"
    );
    anyhow::ensure!(
        (1..=600).contains(&args.sample_every),
        "--sample-every must be in 1..=600 seconds"
    );
    let Setup {
        binary,
        nproc,
        load_before,
        data,
        data_dir,
    } = Setup::new(args, "portcullis-soak-")?;
    let server = Server::start(&binary, &data_dir, &args.server_argon2).await?;
    println!(
        "portcullis-bench --soak {minutes}: server {} (pid {}) on SQLite in {}; {} connections",
        binary.display(),
        server.pid(),
        data_dir.display(),
        args.hash_connections
    );
    let run_id = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let outcome = soak::run(
        &server,
        &data_dir,
        args.hash_connections,
        Duration::from_secs_f64(minutes * 60.0),
        Duration::from_secs(args.sample_every),
        PASSWORD,
        run_id,
    )
    .await;
    let (results, usage, samples) = match outcome {
        Ok(outcome) => outcome,
        Err(error) => {
            let _ = server.stop().await;
            return Err(error);
        }
    };
    if let Err(error) = load::ensure_no_errors(&results, || server.log_tail()) {
        let _ = server.stop().await;
        return Err(error);
    }
    server.stop().await?;
    let result = results.first().context("the soak produced no result")?;
    let report = soak::SoakReport {
        machine: machine(nproc, load_before),
        minutes,
        connections: args.hash_connections,
        requests: result.requests,
        errors: result.errors,
        latency: result.latency,
        server_cpu_s: usage.server_cpu_s,
        samples,
    };
    println!("\n{}", report.markdown());
    let out = out_dir(args);
    report.write(&out)?;
    println!("wrote {}/soak.json and soak.md", out.display());
    if args.update_readme {
        update_readme(soak::README_BEGIN, soak::README_END, &report.markdown())?;
    }
    drop(data);
    Ok(())
}

struct Bench<'a> {
    args: &'a Args,
    warmup: Duration,
    window: Duration,
    users: Vec<User>,
    rows: Vec<Row>,
    run_id: u64,
}

impl Bench<'_> {
    async fn workload(&mut self, server: &mut Server, name: &str) -> anyhow::Result<()> {
        let conns = self.args.connections;
        let hash_conns = self.args.hash_connections;
        match name {
            "health" => {
                let scripts = fixed(conns, |_| Call::get("/health/live"), StatusCode::OK);
                self.alone(server, "health/live (floor)", scripts).await?;
            }
            "signup" => {
                let created = Arc::new(Mutex::new(Vec::new()));
                let scripts = self.sign_ups(hash_conns, &created, "signup");
                self.alone(server, "signup", scripts).await?;
                self.take_users(&created);
            }
            "login" => {
                self.ensure_users(server, hash_conns).await?;
                let scripts = self.log_ins(hash_conns);
                self.alone(server, "login", scripts).await?;
            }
            "refresh" => {
                self.ensure_users(server, conns).await?;
                let scripts: Vec<Box<dyn Script>> = self.users[..conns]
                    .iter()
                    .map(|user| {
                        Box::new(Refreshes {
                            token: user.refresh.clone(),
                        }) as Box<dyn Script>
                    })
                    .collect();
                self.alone(server, "refresh", scripts).await?;
                // The chains moved on; the accounts' old refresh tokens are spent.
                for user in &mut self.users[..conns] {
                    user.refresh.clear();
                }
            }
            "forgot-known" | "forgot-unknown" => {
                self.ensure_users(server, conns).await?;
                let known = name == "forgot-known";
                let scripts = fixed(
                    conns,
                    |i| {
                        let email = if known {
                            self.users[i].email.clone()
                        } else {
                            format!("nobody-{}-{i}@bench.example.com", self.run_id)
                        };
                        Call::post(
                            "/api/v1/auth/password/forgot",
                            serde_json::json!({ "email": email }).to_string(),
                        )
                    },
                    StatusCode::ACCEPTED,
                );
                let label = if known {
                    "forgot password (known address)"
                } else {
                    "forgot password (unknown address)"
                };
                self.alone(server, label, scripts).await?;
            }
            "forgot-timing" => {
                // Known and unknown addresses side by side, paced below
                // saturation: what an attacker timing answers would see.
                let side = self.args.probe_connections;
                self.ensure_users(server, side).await?;
                let pace = Some(Duration::from_secs_f64(
                    self.args.probe_interval_ms / 1000.0,
                ));
                let forgot = |email: String| {
                    Call::post(
                        "/api/v1/auth/password/forgot",
                        serde_json::json!({ "email": email }).to_string(),
                    )
                };
                let groups = vec![
                    Group {
                        name: "forgot password, timed (known address)".to_owned(),
                        scripts: fixed(
                            side,
                            |i| forgot(self.users[i].email.clone()),
                            StatusCode::ACCEPTED,
                        ),
                        pace,
                    },
                    Group {
                        name: "forgot password, timed (unknown address)".to_owned(),
                        scripts: fixed(
                            side,
                            |i| forgot(format!("nobody-{}-{i}@bench.example.com", self.run_id)),
                            StatusCode::ACCEPTED,
                        ),
                        pace,
                    },
                ];
                let (results, usage) =
                    load::run(server.addr, server.pid(), groups, self.warmup, self.window).await?;
                load::ensure_no_errors(&results, || server.log_tail())?;
                for result in &results {
                    let row = Row::new(result, &usage, false);
                    print_row(&row);
                    self.rows.push(row);
                }
            }
            "verify" => {
                self.ensure_users(server, conns).await?;
                let scripts = self.authenticated(conns, "/api/v1/auth/verify");
                self.alone(server, "auth/verify", scripts).await?;
            }
            "me" => {
                self.ensure_users(server, conns).await?;
                let scripts = self.authenticated(conns, "/api/v1/users/me");
                self.alone(server, "users/me", scripts).await?;
            }
            "task-create" => {
                self.ensure_users(server, conns).await?;
                let scripts = fixed(
                    conns,
                    |i| {
                        Call::post(
                            "/api/v1/tasks",
                            r#"{"title":"Benchmark task","description":"made by portcullis-bench"}"#,
                        )
                        .bearer(&self.users[i].access)
                    },
                    StatusCode::CREATED,
                );
                self.alone(server, "task create", scripts).await?;
            }
            "task-list" => {
                self.ensure_users(server, conns).await?;
                let scripts = self.authenticated(conns, "/api/v1/tasks?limit=20");
                self.alone(server, "task list (20 per page)", scripts)
                    .await?;
            }
            "probe-idle" => {
                self.ensure_users(server, self.args.probe_connections)
                    .await?;
                let mut probe = self.probe();
                probe.name = "users/me probe (idle)".to_owned();
                self.measure(server, probe).await?;
            }
            "flood" => {
                self.ensure_users(server, hash_conns.max(self.args.probe_connections))
                    .await?;
                let flood = Group {
                    name: "login flood".to_owned(),
                    scripts: self.log_ins(hash_conns),
                    pace: None,
                };
                let mut probe = self.probe();
                probe.name = "users/me probe (during flood)".to_owned();
                let (results, usage) = load::run(
                    server.addr,
                    server.pid(),
                    vec![flood, probe],
                    self.warmup,
                    self.window,
                )
                .await?;
                load::ensure_no_errors(&results, || server.log_tail())?;
                for result in &results {
                    let row = Row::new(result, &usage, false);
                    print_row(&row);
                    self.rows.push(row);
                }
            }
            other => bail!("unknown workload {other}"),
        }
        Ok(())
    }

    /// Runs one group with the server to itself and keeps its row.
    async fn alone(
        &mut self,
        server: &Server,
        name: &str,
        scripts: Vec<Box<dyn Script>>,
    ) -> anyhow::Result<()> {
        let group = Group {
            name: name.to_owned(),
            scripts,
            pace: None,
        };
        self.measure(server, group).await
    }

    /// Runs `group` with the server to itself and keeps its row.
    async fn measure(&mut self, server: &Server, group: Group) -> anyhow::Result<()> {
        let (results, usage) = load::run(
            server.addr,
            server.pid(),
            vec![group],
            self.warmup,
            self.window,
        )
        .await?;
        load::ensure_no_errors(&results, || server.log_tail())?;
        for result in &results {
            let row = Row::new(result, &usage, true);
            print_row(&row);
            self.rows.push(row);
        }
        Ok(())
    }

    fn sign_ups(
        &self,
        conns: usize,
        created: &Arc<Mutex<Vec<User>>>,
        tag: &str,
    ) -> Vec<Box<dyn Script>> {
        (0..conns)
            .map(|connection| {
                Box::new(SignUps {
                    prefix: format!("{tag}-{}", self.run_id),
                    connection,
                    counter: 0,
                    password: PASSWORD.to_owned(),
                    pending: None,
                    created: Arc::clone(created),
                }) as Box<dyn Script>
            })
            .collect()
    }

    fn log_ins(&self, conns: usize) -> Vec<Box<dyn Script>> {
        let users = Arc::new(self.users.clone());
        (0..conns)
            .map(|connection| {
                Box::new(LogIns {
                    users: Arc::clone(&users),
                    next: connection,
                    stride: conns,
                }) as Box<dyn Script>
            })
            .collect()
    }

    /// `GET path` with the access token of account `i` on connection `i`.
    fn authenticated(&self, conns: usize, path: &str) -> Vec<Box<dyn Script>> {
        fixed(
            conns,
            |i| Call::get(path).bearer(&self.users[i].access),
            StatusCode::OK,
        )
    }

    fn probe(&self) -> Group {
        let conns = self.args.probe_connections;
        Group {
            name: "users/me probe".to_owned(),
            scripts: self.authenticated(conns, "/api/v1/users/me"),
            pace: Some(Duration::from_secs_f64(
                self.args.probe_interval_ms / 1000.0,
            )),
        }
    }

    fn take_users(&mut self, created: &Arc<Mutex<Vec<User>>>) {
        let mut created = created.lock().unwrap_or_else(PoisonError::into_inner);
        self.users.append(&mut created);
    }

    /// Signs up accounts (unmeasured) until there are `count`.
    async fn ensure_users(&mut self, server: &Server, count: usize) -> anyhow::Result<()> {
        if self.users.len() >= count {
            return Ok(());
        }
        let created = Arc::new(Mutex::new(Vec::new()));
        let mut round = 0;
        while self.users.len() < count {
            round += 1;
            anyhow::ensure!(round <= 10, "could not create {count} accounts");
            let missing = count - self.users.len();
            let scripts = self.sign_ups(
                missing.min(self.args.hash_connections),
                &created,
                &format!("setup{round}"),
            );
            let group = Group {
                name: "setup: signup".to_owned(),
                scripts,
                pace: None,
            };
            // Short windows; enough for a few hashes per connection.
            let (results, _) = load::run(
                server.addr,
                server.pid(),
                vec![group],
                Duration::ZERO,
                Duration::from_secs(2),
            )
            .await?;
            load::ensure_no_errors(&results, || server.log_tail())?;
            self.take_users(&created);
        }
        Ok(())
    }
}

fn fixed(
    conns: usize,
    mut call: impl FnMut(usize) -> Call,
    status: StatusCode,
) -> Vec<Box<dyn Script>> {
    (0..conns)
        .map(|i| {
            Box::new(Fixed {
                call: call(i),
                status,
            }) as Box<dyn Script>
        })
        .collect()
}

fn print_row(row: &Row) {
    println!(
        "  {}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms, server CPU {:.2} s{}, peak RSS {:.1} MiB",
        row.workload,
        row.req_per_s,
        row.latency.p50_ms,
        row.latency.p99_ms,
        row.latency.max_ms,
        row.server_cpu_s,
        row.req_per_server_cpu_s
            .map(|v| format!(" ({v:.0} req/CPU-s)"))
            .unwrap_or_default(),
        row.server_peak_rss_mib
    );
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn rss_mib(server: &Server, key: &str) -> anyhow::Result<f64> {
    Ok(server::status_kib(&server.pid().to_string(), key)? as f64 / 1024.0)
}

/// The targets of issue 8, from the rows of this run.
fn targets(
    rows: &[Row],
    baselines: &Baselines,
    startup: &Startup,
    limiter: Option<&LimiterFigures>,
) -> Vec<Target> {
    let row = |name: &str| rows.iter().find(|row| row.workload == name);
    let cpu = |name: &str| row(name).and_then(|row| row.req_per_server_cpu_s);
    let mut targets = Vec::new();
    let mut push = |target: &str, measured: Option<(String, bool)>| {
        targets.push(Target {
            target: target.to_owned(),
            measured: measured
                .as_ref()
                .map_or_else(|| "-".to_owned(), |(text, _)| text.clone()),
            met: measured.map(|(_, met)| met),
        });
    };

    let hashes = baselines.argon2_hashes_per_s;
    for name in ["signup", "login"] {
        let reading = |readings: &[(String, f64)]| {
            readings
                .iter()
                .find(|(workload, _)| workload == name)
                .map(|(_, rate)| *rate)
        };
        let neighbour = match (
            reading(&baselines.argon2_before),
            reading(&baselines.argon2_after),
        ) {
            (Some(before), Some(after)) => Some((before + after) / 2.0),
            (before, after) => before.or(after).or(hashes),
        };
        push(
            &format!(
                "{name} throughput >= 90% of the raw argon2id rate (argon2-rust) on the same cores (mean of just before and just after)"
            ),
            row(name).zip(neighbour).map(|(row, hashes)| {
                let ratio = row.req_per_s / hashes;
                (
                    format!(
                        "{:.1} req/s vs {hashes:.1} hashes/s = {:.0}%",
                        row.req_per_s,
                        ratio * 100.0
                    ),
                    ratio >= 0.9,
                )
            }),
        );
    }
    for name in ["auth/verify", "users/me"] {
        push(
            &format!("{name} >= 17,000 req per server CPU-second (20x the peers)"),
            cpu(name).map(|v| (format!("{v:.0} req/CPU-s"), v >= 17_000.0)),
        );
    }
    push(
        "auth/verify >= 50% of /health/live's req per server CPU-second",
        cpu("auth/verify")
            .zip(cpu("health/live (floor)"))
            .map(|(verify, floor)| {
                (
                    format!(
                        "{verify:.0} vs {floor:.0} req/CPU-s = {:.0}%",
                        verify / floor * 100.0
                    ),
                    verify >= 0.5 * floor,
                )
            }),
    );
    push(
        "forgot password: the answer takes the same time for a known and an unknown address, side by side (p50 and p99 within 25%)",
        row("forgot password, timed (known address)")
            .zip(row("forgot password, timed (unknown address)"))
            .map(|(known, unknown)| {
                let p50 = known.latency.p50_ms / unknown.latency.p50_ms.max(0.001);
                let p99 = known.latency.p99_ms / unknown.latency.p99_ms.max(0.001);
                (
                    format!(
                        "p50 {:.2} vs {:.2} ms, p99 {:.2} vs {:.2} ms at {:.0} + {:.0} req/s",
                        known.latency.p50_ms,
                        unknown.latency.p50_ms,
                        known.latency.p99_ms,
                        unknown.latency.p99_ms,
                        known.req_per_s,
                        unknown.req_per_s,
                    ),
                    (0.8..=1.25).contains(&p50) && (0.8..=1.25).contains(&p99),
                )
            }),
    );
    push(
        "refresh >= 3,000 req per server CPU-second on SQLite",
        cpu("refresh").map(|v| (format!("{v:.0} req/CPU-s"), v >= 3_000.0)),
    );
    push(
        "refresh: no errors under 64 concurrent connections",
        row("refresh").map(|row| {
            (
                format!(
                    "{} errors in {} requests on {} connections",
                    row.errors, row.requests, row.connections
                ),
                row.errors == 0 && row.connections >= 64,
            )
        }),
    );
    push(
        "during a login flood that saturates hashing: users/me p99 within 10x its idle p99",
        row("users/me probe (idle)")
            .zip(row("users/me probe (during flood)"))
            .map(|(idle, flood)| {
                let ratio = flood.latency.p99_ms / idle.latency.p99_ms.max(0.001);
                let saturation = row("login flood")
                    .zip(hashes)
                    .map(|(login, hashes)| {
                        format!(
                            "; flood {:.1} logins/s = {:.0}% of the hash rate",
                            login.req_per_s,
                            login.req_per_s / hashes * 100.0
                        )
                    })
                    .unwrap_or_default();
                (
                    format!(
                        "p99 {:.2} ms vs idle {:.2} ms = {ratio:.1}x{saturation}",
                        flood.latency.p99_ms, idle.latency.p99_ms
                    ),
                    ratio <= 10.0,
                )
            }),
    );
    push(
        "during the login flood: server peak RSS < 256 MiB",
        row("login flood").map(|row| {
            (
                format!("{:.1} MiB", row.server_peak_rss_mib),
                row.server_peak_rss_mib < 256.0,
            )
        }),
    );
    // Idle means a server that has not served load yet: after its first
    // start and after a restart. After the load, glibc keeps freed memory in
    // its per-thread arenas; that figure is printed, not judged.
    let idle = [startup.idle_rss_fresh_mib, startup.idle_rss_restarted_mib];
    let idle_max = idle.iter().flatten().copied().reduce(f64::max);
    push(
        "idle RSS < 40 MiB (after the first start, and after a restart on the existing database)",
        idle_max.map(|max| {
            let shown: Vec<String> = idle
                .iter()
                .map(|v| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}")))
                .collect();
            (format!("{} MiB", shown.join(" / ")), max < 40.0)
        }),
    );
    push(
        "start to ready < 1 s on an existing database (every restart)",
        startup
            .start_to_ready_ms
            .iter()
            .copied()
            .reduce(f64::max)
            .map(|max| {
                (
                    format!("max {max:.0} ms of {}", startup.start_to_ready_ms.len()),
                    max < 1000.0,
                )
            }),
    );
    push(
        "in-process limiter, 1M distinct clients: at most its cap held, and the last 100k decisions cost at most 2x the first 100k (O(1) eviction)",
        limiter.map(|l| {
            (
                format!(
                    "{} held (cap {}); {:.0} ns vs {:.0} ns per decision; RSS +{:.1} MiB",
                    l.held,
                    l.cap,
                    l.ns_per_decision_last_100k,
                    l.ns_per_decision_first_100k,
                    l.rss_growth_mib
                ),
                l.held <= l.cap
                    && l.ns_per_decision_last_100k <= 2.0 * l.ns_per_decision_first_100k,
            )
        }),
    );
    targets
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn load_average() -> String {
    read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn machine(nproc: usize, load_before: String) -> Machine {
    let cpuinfo = read("/proc/cpuinfo");
    let cpu_model = cpuinfo
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "model name").then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let memory_kib: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let date_utc = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .unwrap_or_default();
    Machine {
        nproc,
        cpu_model,
        memory_gib: memory_kib / 1024.0 / 1024.0,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        date_utc,
        load_average_before: load_before,
        load_average_after: load_average(),
        commit: commit(),
    }
}

fn commit() -> Option<String> {
    let root = workspace_root();
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(args)
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let head = git(&["rev-parse", "--short", "HEAD"])?;
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|status| !status.is_empty());
    Some(if dirty {
        format!("{head} + local changes")
    } else {
        head
    })
}

/// Warns when a source file of the server is newer than the binary.
fn warn_if_stale(binary: &Path) {
    let Ok(built) = std::fs::metadata(binary).and_then(|m| m.modified()) else {
        return;
    };
    let root = workspace_root();
    let mut stack: Vec<PathBuf> = ["api/src", "infra/src", "domain/src", "migration/src"]
        .iter()
        .map(|dir| root.join(dir))
        .collect();
    let mut visited = 0;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            visited += 1;
            if visited > 10_000 {
                return;
            }
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified > built)
            {
                eprintln!(
                    "warning: {} is newer than {}; run `cargo build --release -p portcullis-api` to measure the current code",
                    path.display(),
                    binary.display()
                );
                return;
            }
        }
    }
}
