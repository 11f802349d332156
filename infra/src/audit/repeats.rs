//! Folding repeated noise into counted events: for each (kind, client,
//! detail) of the kinds anyone can cause at will (rejected tokens, refused
//! requests), the first event of a window is written at once and the
//! repeats are only counted; when the window ends, one summary event
//! carries the count. A client that keeps going costs one row a window, and
//! the map is bounded: past [`Repeats::MAX_KEYS`] distinct keys, events of
//! new keys fold into one overflow entry per kind, without a client.
//!
//! Pure bookkeeping with no I/O and no clock of its own: the writer task
//! says what time it is.

use std::collections::HashMap;
use std::time::Duration;

use portcullis_domain::audit::{AuthEvent, AuthEventKind};
use tokio::time::Instant;
use uuid::Uuid;

/// What identifies "the same event again".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    kind: AuthEventKind,
    client_ip: Option<String>,
    detail: Option<String>,
}

/// One open window.
struct Entry {
    opened: Instant,
    /// Repeats since the last event written for this key.
    count: u64,
    /// The first event of the key: the summary copies its fields.
    first: AuthEvent,
    /// When the latest repeat happened (the summary's time).
    last_at: time::OffsetDateTime,
}

/// The detail of the overflow entries: events of many clients, folded.
pub const OVERFLOW_DETAIL: &str = "other_clients";

/// The open windows of repeated noise.
pub struct Repeats {
    window: Duration,
    max_keys: usize,
    entries: HashMap<Key, Entry>,
}

impl Repeats {
    /// Most distinct keys counted at once, overflow entries aside.
    pub const MAX_KEYS: usize = 256;

    /// Windows of `window`, at most [`Self::MAX_KEYS`] keys.
    pub fn new(window: Duration) -> Self {
        Self::with_capacity(window, Self::MAX_KEYS)
    }

    /// Windows of `window`, at most `max_keys` keys (tests use small maps).
    pub fn with_capacity(window: Duration, max_keys: usize) -> Self {
        Self {
            window,
            max_keys: max_keys.max(1),
            entries: HashMap::new(),
        }
    }

    /// Keys counted now, overflow entries included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is being counted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Takes a noise event: `Some` is the event to write now (the first of
    /// its window), `None` means it was counted into an open window.
    pub fn admit(&mut self, event: AuthEvent, now: Instant) -> Option<AuthEvent> {
        let mut key = Key {
            kind: event.kind,
            client_ip: event.client_ip.clone(),
            detail: event.detail.clone(),
        };
        let mut event = event;
        if !self.entries.contains_key(&key) && self.entries.len() >= self.max_keys {
            key = Key {
                kind: event.kind,
                client_ip: None,
                detail: Some(OVERFLOW_DETAIL.to_owned()),
            };
            event.client_ip = None;
            event.user_agent = None;
            event.request_id = None;
            event.trace_id = None;
            event.detail = Some(OVERFLOW_DETAIL.to_owned());
        }
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.count += 1;
            entry.last_at = event.at;
            return None;
        }
        self.entries.insert(
            key,
            Entry {
                opened: now,
                count: 0,
                first: event.clone(),
                last_at: event.at,
            },
        );
        Some(event)
    }

    /// The summaries of the windows that ended by `now`. A key that
    /// repeated starts a new window (its next repeats are counted, not
    /// written); a key that did not is forgotten.
    pub fn sweep(&mut self, now: Instant) -> Vec<AuthEvent> {
        let window = self.window;
        let mut summaries = Vec::new();
        self.entries.retain(|_, entry| {
            if now.saturating_duration_since(entry.opened) < window {
                return true;
            }
            if entry.count == 0 {
                return false;
            }
            summaries.push(summary(entry));
            entry.count = 0;
            entry.opened = now;
            true
        });
        summaries
    }

    /// The summaries of every open window with repeats, at once (a flush
    /// before shutdown); the windows stay open with nothing counted.
    pub fn drain(&mut self) -> Vec<AuthEvent> {
        let mut summaries = Vec::new();
        for entry in self.entries.values_mut() {
            if entry.count > 0 {
                summaries.push(summary(entry));
                entry.count = 0;
            }
        }
        summaries
    }
}

/// The event that stands for `entry.count` repeats of its first event: its
/// fields, the time of the latest repeat, and `count=N` after the detail
/// (which is cut, never the count, to stay within the bound).
fn summary(entry: &Entry) -> AuthEvent {
    let suffix = format!("count={}", entry.count);
    let detail = match entry.first.detail.as_deref() {
        Some(detail) => {
            let room = AuthEvent::MAX_DETAIL.saturating_sub(suffix.len() + 1);
            let kept: String = detail.chars().take(room).collect();
            format!("{kept} {suffix}")
        }
        None => suffix,
    };
    AuthEvent {
        id: Uuid::now_v7(),
        at: entry.last_at,
        request_id: None,
        trace_id: None,
        detail: Some(detail),
        ..entry.first.clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use portcullis_domain::audit::Outcome;
    use portcullis_domain::context::{ClientInfo, RequestContext};
    use time::OffsetDateTime;

    const WINDOW: Duration = Duration::from_secs(60);

    fn rejected(ip: &str, detail: &str) -> AuthEvent {
        AuthEvent::new(
            AuthEventKind::AccessTokenRejected,
            Outcome::Failure,
            OffsetDateTime::now_utc(),
            &RequestContext {
                client: ClientInfo::new(Some("flood/1.0"), Some(ip.to_owned())),
                request_id: Some("req-1".to_owned()),
                trace_id: None,
            },
        )
        .detail(detail)
    }

    #[test]
    fn the_first_is_written_and_repeats_become_one_summary_per_window() {
        let mut repeats = Repeats::new(WINDOW);
        let t0 = Instant::now();
        let first = rejected("192.0.2.1", "malformed");
        assert_eq!(repeats.admit(first.clone(), t0), Some(first.clone()));
        for _ in 0..299 {
            assert_eq!(repeats.admit(rejected("192.0.2.1", "malformed"), t0), None);
        }
        assert!(repeats.sweep(t0 + WINDOW / 2).is_empty());

        let summaries = repeats.sweep(t0 + WINDOW);
        assert_eq!(summaries.len(), 1);
        let summary = &summaries[0];
        assert_eq!(summary.detail.as_deref(), Some("malformed count=299"));
        assert_eq!(summary.kind, first.kind);
        assert_eq!(summary.client_ip, first.client_ip);
        assert_eq!(summary.request_id, None);
        assert_ne!(summary.id, first.id);

        // Still going: counted, not written; a quiet window forgets the key.
        assert_eq!(
            repeats.admit(rejected("192.0.2.1", "malformed"), t0 + WINDOW),
            None
        );
        let next = repeats.sweep(t0 + 2 * WINDOW);
        assert_eq!(next[0].detail.as_deref(), Some("malformed count=1"));
        assert!(repeats.sweep(t0 + 3 * WINDOW).is_empty());
        assert!(repeats.is_empty());
        assert!(
            repeats
                .admit(rejected("192.0.2.1", "malformed"), t0 + 3 * WINDOW)
                .is_some()
        );
    }

    #[test]
    fn kind_client_and_detail_each_make_their_own_key() {
        let mut repeats = Repeats::new(WINDOW);
        let t0 = Instant::now();
        assert!(
            repeats
                .admit(rejected("192.0.2.1", "malformed"), t0)
                .is_some()
        );
        assert!(
            repeats
                .admit(rejected("192.0.2.2", "malformed"), t0)
                .is_some()
        );
        assert!(
            repeats
                .admit(rejected("192.0.2.1", "expired"), t0)
                .is_some()
        );
        let mut limited = rejected("192.0.2.1", "malformed");
        limited.kind = AuthEventKind::RateLimitHit;
        assert!(repeats.admit(limited, t0).is_some());
        assert_eq!(repeats.len(), 4);
    }

    #[test]
    fn past_the_cap_new_clients_fold_into_one_overflow_entry() {
        let mut repeats = Repeats::with_capacity(WINDOW, 3);
        let t0 = Instant::now();
        let written: Vec<AuthEvent> = (0..1_000)
            .filter_map(|n| {
                repeats.admit(
                    rejected(&format!("10.0.{}.{}", n / 256, n % 256), "malformed"),
                    t0,
                )
            })
            .collect();
        // Three clients of their own, then one overflow event.
        assert_eq!(written.len(), 4);
        assert_eq!(written[3].client_ip, None);
        assert_eq!(written[3].detail.as_deref(), Some(OVERFLOW_DETAIL));
        assert_eq!(repeats.len(), 4);
        let summaries = repeats.drain();
        assert_eq!(summaries.len(), 1);
        assert_eq!(
            summaries[0].detail.as_deref(),
            Some("other_clients count=996")
        );
    }

    #[test]
    fn a_long_detail_is_cut_and_the_count_kept() {
        let mut repeats = Repeats::new(WINDOW);
        let t0 = Instant::now();
        let long = "d".repeat(500);
        repeats.admit(rejected("192.0.2.1", &long), t0);
        repeats.admit(rejected("192.0.2.1", &long), t0);
        let summary = repeats.drain().remove(0);
        let detail = summary.detail.unwrap();
        assert!(detail.ends_with(" count=1"), "{detail}");
        assert!(detail.chars().count() <= AuthEvent::MAX_DETAIL);
        assert!(
            repeats.drain().is_empty(),
            "drained counts are not counted twice"
        );
    }
}
