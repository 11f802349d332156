//! The server under test: the release `portcullis` binary as a child process
//! on SQLite in a temporary data directory, and what `/proc` says about it.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use tokio::process::{Child, Command};

use crate::http::{self, Call};

/// How long a start may take before the bench gives up.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a graceful stop may take before the process is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(20);
/// Readiness polling interval.
const POLL: Duration = Duration::from_millis(2);

/// Environment variables of the caller that would change what is measured.
fn is_inherited_setting(name: &str) -> bool {
    name.starts_with("PORTCULLIS_")
        || name.starts_with("OTEL_")
        || matches!(name, "DATABASE_URL" | "REDIS_URL" | "RUST_LOG")
}

/// A running server.
pub struct Server {
    child: Child,
    pid: u32,
    pub addr: SocketAddr,
    log: PathBuf,
    /// From spawn to the first 200 of `/health/live`.
    pub start_to_ready: Duration,
}

/// A start that failed because the process exited (for example when the
/// free port was taken in the meantime): worth another try.
struct ExitedDuringStart(anyhow::Error);

impl Server {
    /// Starts `binary` on `data_dir` (created on first start) on a free
    /// loopback port, and waits until `/health/live` answers 200. Tried up to
    /// three times if the process exits during its start. `argon2` is the
    /// server's `PORTCULLIS_ARGON2_BACKEND`.
    pub async fn start(binary: &Path, data_dir: &Path, argon2: &str) -> anyhow::Result<Self> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::try_start(binary, data_dir, argon2).await? {
                Ok(server) => return Ok(server),
                Err(ExitedDuringStart(error)) if attempt >= 3 => return Err(error),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    async fn try_start(
        binary: &Path,
        data_dir: &Path,
        argon2: &str,
    ) -> anyhow::Result<Result<Self, ExitedDuringStart>> {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let log = data_dir.join("server.log");
        let out = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;

        let mut command = Command::new(binary);
        command.arg("serve");
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(is_inherited_setting) {
                command.env_remove(&name);
            }
        }
        command
            .env("PORTCULLIS_BIND", addr.to_string())
            .env("PORTCULLIS_DATA_DIR", data_dir)
            .env("PORTCULLIS_RATE_LIMIT", "off")
            .env("PORTCULLIS_ARGON2_BACKEND", argon2)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);

        let spawned = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let probe = Call::get("/health/live");
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(Err(ExitedDuringStart(anyhow!(
                    "the server exited during start ({status}); its log:\n{}",
                    tail(&log)
                ))));
            }
            if let Ok((status, _)) = http::once(addr, &probe).await
                && status.is_success()
            {
                break;
            }
            if spawned.elapsed() > START_DEADLINE {
                bail!(
                    "the server did not answer /health/live within {START_DEADLINE:?}; its log:\n{}",
                    tail(&log)
                );
            }
            tokio::time::sleep(POLL).await;
        }
        let start_to_ready = spawned.elapsed();
        Ok(Ok(Self {
            child,
            pid,
            addr,
            log,
            start_to_ready,
        }))
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The end of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }

    /// Fails when the server has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the server exited ({status}); its log:\n{}",
                tail(&self.log)
            );
        }
        Ok(())
    }

    /// SIGTERM, then waits for the graceful shutdown (killed after a deadline).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if !sent.is_ok_and(|status| status.success()) {
            self.child.start_kill()?;
        }
        match tokio::time::timeout(STOP_DEADLINE, self.child.wait()).await {
            Ok(status) => {
                status?;
                Ok(())
            }
            Err(_) => {
                self.child.start_kill()?;
                self.child.wait().await?;
                Err(anyhow!(
                    "the server did not stop within {STOP_DEADLINE:?} of SIGTERM"
                ))
            }
        }
    }
}

/// A port that was free a moment ago.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Clock ticks per second of `/proc/<pid>/stat` times.
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}

/// User plus system CPU time of a whole process (all its threads), in ticks.
pub fn cpu_ticks(pid: &str) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name is in parentheses and may hold spaces: count from
    // after the last ')'. Fields 14 and 15 (utime, stime) are then 12 and 13.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc/<pid>/stat format")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |index: usize| -> anyhow::Result<u64> {
        fields
            .get(index)
            .context("short /proc/<pid>/stat")?
            .parse::<u64>()
            .context("bad /proc/<pid>/stat field")
    };
    Ok(field(11)? + field(12)?)
}

/// Busy CPU time of the whole machine (every CPU, every process), in ticks:
/// the first line of `/proc/stat` less idle and iowait.
pub fn machine_busy_ticks() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().context("bad /proc/stat field"))
        .collect::<anyhow::Result<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is in user).
    let field = |i: usize| values.get(i).copied().unwrap_or(0);
    Ok(field(0) + field(1) + field(2) + field(5) + field(6) + field(7))
}

/// A `Vm*` line of `/proc/<pid>/status`, in KiB.
pub fn status_kib(pid: &str, key: &str) -> anyhow::Result<u64> {
    status_count(pid, key)
}

/// The number of a line of `/proc/<pid>/status` (`Threads`, or a `Vm*` size
/// in KiB).
pub fn status_count(pid: &str, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow!("no {key} in /proc/{pid}/status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        assert!(cpu_ticks("self").is_ok());
        assert!(machine_busy_ticks().unwrap() > 0);
        assert!(status_kib("self", "VmRSS").unwrap() > 0);
        assert!(status_kib("self", "VmHWM").unwrap() > 0);
        assert!(status_kib("self", "NoSuchKey").is_err());
        assert!(status_count("self", "Threads").unwrap() >= 1);
    }
}
