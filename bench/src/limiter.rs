//! The in-process request limiter under a flood of distinct clients: one
//! log-in decision each for `clients` distinct IPv6 /64 prefixes, in this
//! process, on the adapter the server uses without Redis
//! (`GovernorRateLimiter`, a hard cap of `MAX_KEYS` clients per bucket).
//! Prints and keeps the cost per decision over the whole flood and over its
//! first and last 100,000 decisions (flat when eviction is O(1)), the
//! clients held, and how much the process's memory grew.

use std::time::Instant;

use portcullis_domain::limits::{Bucket, Decision};
use portcullis_infra::limits::{GovernorRateLimiter, MAX_KEYS, Quotas};
use serde::Serialize;

use crate::server::status_kib;

/// Decisions timed together; the keys of one chunk are made before it.
const CHUNK: u64 = 100_000;

#[derive(Debug, Clone, Serialize)]
pub struct LimiterFigures {
    /// Distinct clients, one decision each.
    pub clients: u64,
    /// The most clients the bucket may hold.
    pub cap: usize,
    /// Clients held after the flood.
    pub held: usize,
    pub ns_per_decision: f64,
    pub ns_per_decision_first_100k: f64,
    pub ns_per_decision_last_100k: f64,
    /// Growth of this process's resident memory over the flood (limiter alive).
    pub rss_growth_mib: f64,
}

fn rss_kib() -> anyhow::Result<u64> {
    status_kib(&std::process::id().to_string(), "VmRSS")
}

/// One decision for each of `clients` distinct clients.
pub fn measure(clients: u64) -> anyhow::Result<LimiterFigures> {
    anyhow::ensure!(clients >= CHUNK, "at least {CHUNK} clients");
    let before = rss_kib()?;
    let limiter = GovernorRateLimiter::new(Quotas::default());
    let mut chunks_ns = Vec::new();
    let mut keys = Vec::with_capacity(usize::try_from(CHUNK)?);
    let mut next = 0u64;
    while next < clients {
        keys.clear();
        let end = (next + CHUNK).min(clients);
        keys.extend((next..end).map(|i| format!("2001:db8:{:x}:{:x}::", i >> 16, i & 0xffff)));
        let started = Instant::now();
        for key in &keys {
            let decision = limiter.decide(Bucket::LogIn, key);
            anyhow::ensure!(
                decision == Decision::Allowed,
                "a new client was limited: {decision:?}"
            );
        }
        chunks_ns.push((started.elapsed().as_nanos() as f64, keys.len() as f64));
        next = end;
    }
    drop(keys);
    let after = rss_kib()?;
    let per = |(ns, n): (f64, f64)| ns / n;
    let total_ns: f64 = chunks_ns.iter().map(|(ns, _)| ns).sum();
    let figures = LimiterFigures {
        clients,
        cap: MAX_KEYS,
        held: limiter.len_of(Bucket::LogIn),
        ns_per_decision: total_ns / clients as f64,
        ns_per_decision_first_100k: chunks_ns.first().copied().map_or(0.0, per),
        ns_per_decision_last_100k: chunks_ns.last().copied().map_or(0.0, per),
        rss_growth_mib: after.saturating_sub(before) as f64 / 1024.0,
    };
    drop(limiter);
    Ok(figures)
}
