//! Connection admission and read deadlines, below HTTP: poem's server sets
//! no header read timeout and caps nothing, so a client that opens
//! connections and sends half a request line could hold them for minutes
//! and run the process out of file descriptors.
//!
//! [`GuardedAcceptor`] wraps the TCP acceptor: it admits at most
//! `max` connections at once (a cap below the open-file limit) and at most
//! `per_client` from one client address (IPv6 by /64; trusted proxies are
//! exempt, they carry many clients), answers the overflow at once with a
//! tiny 503 and closes it, and logs refusals at WARN, at most once per
//! [`WARN_EVERY`] with a count. Each admitted connection is a [`GuardedIo`]:
//! a request head must arrive whole within the header deadline (counted
//! from the connection's start for the first request, from its first byte
//! for later ones), and a connection idle between requests closes after the
//! keep-alive deadline. Body deadlines are the body limit middleware's: it
//! knows where a body ends.
//!
//! A leaf of `http`: it imports no sibling.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use ipnet::IpNet;
use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Refusals and timeouts are logged at most this often (with a count).
pub const WARN_EVERY: Duration = Duration::from_secs(10);
/// Pause after a failed `accept` (the process is out of descriptors, say),
/// so the accept loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How long a refused connection may take to receive its 503.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(1);
/// Refusals being written at once; beyond it the overflow is just closed.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;
/// Descriptors kept for everything but client connections (database pool,
/// Redis, log and key files, refusals in flight), at least.
const RESERVED_DESCRIPTORS: u64 = 64;

const OVERFLOW_BODY: &str = r#"{"type":"https://portcullis.dev/problems/overloaded","title":"Service Unavailable","status":503,"detail":"Too many connections; retry later.","code":"overloaded"}"#;

/// The limits an acceptor enforces.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections open at once.
    pub max: usize,
    /// Connections open at once from one client address.
    pub per_client: usize,
    /// A request head must arrive whole within this.
    pub header_timeout: Duration,
    /// An idle connection between requests closes after this.
    pub keep_alive: Duration,
    /// Peers not capped per client (trusted proxies).
    pub exempt: Vec<IpNet>,
}

/// The default cap: the soft open-file limit less a reserve (a quarter of
/// it, at least [`RESERVED_DESCRIPTORS`]), and at least 1.
pub fn default_max_connections() -> usize {
    let limit = open_file_limit();
    let reserve = (limit / 4).max(RESERVED_DESCRIPTORS);
    usize::try_from(limit.saturating_sub(reserve).max(1)).unwrap_or(usize::MAX)
}

/// The soft `RLIMIT_NOFILE`; 1024 (the usual default) where it is unknown.
fn open_file_limit() -> u64 {
    #[cfg(unix)]
    {
        rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(1 << 20)
    }
    #[cfg(not(unix))]
    {
        1024
    }
}

/// Logs at WARN at most once per [`WARN_EVERY`], counting what it skipped.
struct RateLimitedWarn {
    last: Mutex<Option<Instant>>,
    skipped: AtomicU64,
}

impl RateLimitedWarn {
    fn new() -> Self {
        Self {
            last: Mutex::new(None),
            skipped: AtomicU64::new(0),
        }
    }

    /// Calls `log` with the number of occurrences since the last log line,
    /// or counts this one.
    fn hit(&self, log: impl FnOnce(u64)) {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| now.duration_since(at) < WARN_EVERY) {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(now);
        drop(last);
        log(self.skipped.swap(0, Ordering::Relaxed) + 1);
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

struct Shared {
    limits: ConnectionLimits,
    counts: Mutex<Counts>,
    refusals_in_flight: AtomicUsize,
    refused: RateLimitedWarn,
    head_timeouts: RateLimitedWarn,
    accept_errors: RateLimitedWarn,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Total,
    PerClient,
}

impl Shared {
    fn admit(self: &Arc<Self>, peer: Option<IpAddr>) -> Result<Permit, Refusal> {
        let key = peer
            .filter(|ip| !self.limits.exempt.iter().any(|net| net.contains(ip)))
            .map(|ip| client_key(&ip));
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.total >= self.limits.max {
            return Err(Refusal::Total);
        }
        if let Some(key) = key {
            let open = counts.per_client.entry(key).or_default();
            if *open >= self.limits.per_client {
                return Err(Refusal::PerClient);
            }
            *open += 1;
        }
        counts.total += 1;
        Ok(Permit {
            shared: Arc::clone(self),
            key,
        })
    }
}

/// The address a per-client cap counts by: IPv4 as is, IPv6 by its /64.
fn client_key(ip: &IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// One admitted connection's place; given back when the connection ends.
struct Permit {
    shared: Arc<Shared>,
    key: Option<IpAddr>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self
            .shared
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(key) = self.key
            && let Some(open) = counts.per_client.get_mut(&key)
        {
            *open = open.saturating_sub(1);
            if *open == 0 {
                counts.per_client.remove(&key);
            }
        }
    }
}

/// An acceptor that caps connections and puts deadlines on request heads.
pub struct GuardedAcceptor<A> {
    inner: A,
    shared: Arc<Shared>,
}

impl<A> GuardedAcceptor<A> {
    pub fn new(inner: A, limits: ConnectionLimits) -> Self {
        Self {
            inner,
            shared: Arc::new(Shared {
                limits,
                counts: Mutex::new(Counts::default()),
                refusals_in_flight: AtomicUsize::new(0),
                refused: RateLimitedWarn::new(),
                head_timeouts: RateLimitedWarn::new(),
                accept_errors: RateLimitedWarn::new(),
            }),
        }
    }
}

impl<A: Acceptor> Acceptor for GuardedAcceptor<A> {
    type Io = GuardedIo<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        loop {
            let (io, local, remote, scheme) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    self.shared.accept_errors.hit(|count| {
                        tracing::warn!(%error, count, "accepting a connection failed");
                    });
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let peer = remote.as_socket_addr().map(std::net::SocketAddr::ip);
            match self.shared.admit(peer) {
                Ok(permit) => {
                    let limits = &self.shared.limits;
                    let io = GuardedIo::new(io, permit, limits.header_timeout, limits.keep_alive);
                    return Ok((io, local, remote, scheme));
                }
                Err(refusal) => {
                    let limits = &self.shared.limits;
                    self.shared.refused.hit(|count| match refusal {
                        Refusal::Total => tracing::warn!(
                            max = limits.max,
                            count,
                            "connection limit reached: refusing connections (PORTCULLIS_MAX_CONNECTIONS)"
                        ),
                        Refusal::PerClient => tracing::warn!(
                            per_client = limits.per_client,
                            client = ?peer.map(|ip| client_key(&ip)),
                            count,
                            "per-client connection limit reached: refusing connections (PORTCULLIS_MAX_CONNECTIONS_PER_CLIENT)"
                        ),
                    });
                    refuse(&self.shared, io);
                }
            }
        }
    }
}

/// Writes a tiny 503 to a refused connection and closes it, off the accept
/// loop and within [`REFUSAL_DEADLINE`]; past [`MAX_REFUSALS_IN_FLIGHT`] the
/// connection is closed without an answer.
fn refuse<Io: AsyncRead + AsyncWrite + Send + Unpin + 'static>(shared: &Arc<Shared>, mut io: Io) {
    if shared.refusals_in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_REFUSALS_IN_FLIGHT {
        shared.refusals_in_flight.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
             retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{OVERFLOW_BODY}",
            OVERFLOW_BODY.len()
        );
        let _ = tokio::time::timeout(REFUSAL_DEADLINE, async {
            io.write_all(answer.as_bytes()).await?;
            io.shutdown().await?;
            // Read what the client sent before closing, so the close is not
            // a reset that discards the answer on the client's side.
            let mut sink = [0u8; 1024];
            while io.read(&mut sink).await? > 0 {}
            Ok::<(), io::Error>(())
        })
        .await;
        shared.refusals_in_flight.fetch_sub(1, Ordering::AcqRel);
    });
}

/// Where a connection is in its request cycle, as far as bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No byte of the next request yet; closes quietly at the deadline.
    Waiting { deadline: Instant, first: bool },
    /// Part of a request head; `newline` tracks a blank line in progress.
    Head { deadline: Instant, newline: u8 },
    /// Head read: the body and the answer are HTTP's business.
    Busy,
    /// HTTP/2 (prior knowledge): its frames are not tracked here.
    Http2,
}

/// A connection with read deadlines on request heads and idle keep-alive.
pub struct GuardedIo<Io> {
    inner: Io,
    permit: Permit,
    phase: Phase,
    sleep: Pin<Box<Sleep>>,
    header_timeout: Duration,
    keep_alive: Duration,
}

impl<Io> GuardedIo<Io> {
    fn new(inner: Io, permit: Permit, header_timeout: Duration, keep_alive: Duration) -> Self {
        let deadline = Instant::now() + header_timeout;
        Self {
            inner,
            permit,
            phase: Phase::Waiting {
                deadline,
                first: true,
            },
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            header_timeout,
            keep_alive,
        }
    }

    /// Moves the phase on over bytes just read.
    fn saw_read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Phase::Waiting { deadline, first } = self.phase {
            if first && bytes.starts_with(b"PRI ") {
                self.phase = Phase::Http2;
                return;
            }
            // The first request's head is due from the connection's start.
            let deadline = if first {
                deadline
            } else {
                Instant::now() + self.header_timeout
            };
            self.phase = Phase::Head {
                deadline,
                newline: 0,
            };
        }
        if let Phase::Head { deadline, newline } = self.phase {
            match scan_head(newline, bytes) {
                Some(newline) => self.phase = Phase::Head { deadline, newline },
                None => self.phase = Phase::Busy,
            }
        }
    }

    /// Moves the phase on over bytes about to be written: the start of a
    /// final answer (not `1xx`) makes the connection wait for the next head.
    fn saw_write(&mut self, bytes: &[u8]) {
        let waiting = Phase::Waiting {
            deadline: Instant::now() + self.keep_alive,
            first: false,
        };
        match self.phase {
            Phase::Busy | Phase::Head { .. }
                if bytes.starts_with(b"HTTP/1.") && bytes.get(9) != Some(&b'1') =>
            {
                self.phase = waiting;
            }
            Phase::Waiting { first: false, .. } => self.phase = waiting,
            _ => {}
        }
    }
}

/// Follows a blank line (`\r\n\r\n` or `\n\n`) through `bytes`: `None` when
/// the head ended, else the state to carry into the next read.
fn scan_head(mut newline: u8, bytes: &[u8]) -> Option<u8> {
    for &byte in bytes {
        newline = match (newline, byte) {
            (1 | 2, b'\n') => return None,
            (_, b'\n') => 1,
            (1, b'\r') => 2,
            _ => 0,
        };
    }
    Some(newline)
}

impl<Io: AsyncRead + Unpin> AsyncRead for GuardedIo<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.saw_read(&buf.filled()[before..]);
                Poll::Ready(result)
            }
            Poll::Pending => {
                // Silence since the connection opened counts as a slow head;
                // silence after an answer is an idle keep-alive.
                let (deadline, in_head) = match this.phase {
                    Phase::Waiting { deadline, first } => (deadline, first),
                    Phase::Head { deadline, .. } => (deadline, true),
                    Phase::Busy | Phase::Http2 => return Poll::Pending,
                };
                if this.sleep.deadline() != deadline {
                    this.sleep.as_mut().reset(deadline);
                }
                ready!(this.sleep.as_mut().poll(cx));
                if in_head {
                    this.permit.shared.head_timeouts.hit(|count| {
                        tracing::warn!(
                            header_timeout_secs = this.header_timeout.as_secs_f32(),
                            count,
                            "closing connections whose request head did not arrive in time (PORTCULLIS_HEADER_TIMEOUT_SECS)"
                        );
                    });
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request head not received in time",
                    )))
                } else {
                    // An idle connection ends like a closed one.
                    Poll::Ready(Ok(()))
                }
            }
        }
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for GuardedIo<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.saw_write(buf);
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            self.saw_write(first);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_ends_at_a_blank_line_even_across_reads() {
        assert_eq!(scan_head(0, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), None);
        assert_eq!(scan_head(0, b"GET / HTTP/1.1\nHost: x\n\n"), None);
        let carried = scan_head(0, b"GET / HTTP/1.1\r\nHost: x\r\n\r").unwrap();
        assert_eq!(scan_head(carried, b"\n"), None);
        assert!(scan_head(0, b"GET / HTTP/1.1\r\nHost: x\r\n").is_some());
        assert!(scan_head(0, b"GET / HTT").is_some());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(&a), client_key(&b));
        assert_ne!(client_key(&a), client_key(&c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(&mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    fn shared(max: usize, per_client: usize, exempt: Vec<IpNet>) -> Arc<Shared> {
        let acceptor = GuardedAcceptor::new(
            (),
            ConnectionLimits {
                max,
                per_client,
                header_timeout: Duration::from_secs(1),
                keep_alive: Duration::from_secs(1),
                exempt,
            },
        );
        acceptor.shared
    }

    #[test]
    fn admission_caps_the_total_and_each_client_and_gives_places_back() {
        let shared = shared(3, 2, vec!["10.0.0.0/8".parse().unwrap()]);
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let proxy: IpAddr = "10.1.1.1".parse().unwrap();
        let a = shared.admit(Some(one)).unwrap();
        let _b = shared.admit(Some(one)).unwrap();
        assert!(matches!(shared.admit(Some(one)), Err(Refusal::PerClient)));
        let _c = shared.admit(Some(proxy)).unwrap();
        assert!(matches!(shared.admit(Some(proxy)), Err(Refusal::Total)));
        drop(a);
        assert!(shared.admit(Some(one)).is_ok());
    }

    #[test]
    fn the_default_cap_stays_below_the_file_limit() {
        let max = default_max_connections() as u64;
        assert!(max >= 1);
        assert!(max < open_file_limit().max(2));
    }
}
