//! OpenTelemetry instruments, created once and carried in the app state.
//! With no meter provider configured they are the API's no-ops.
//!
//! | instrument | kind | attributes | meaning |
//! | --- | --- | --- | --- |
//! | `http.server.request.duration` | histogram (s) | `http.request.method`, `http.route`, `http.response.status_code` | every HTTP request |
//! | `portcullis.auth.events` | counter | `event.type`, `outcome` | audit events (sign-ups, log-ins, failures, lockouts, ...) |
//! | `portcullis.auth.login.duration` | histogram (s) | `outcome` | log-in requests, hashing included |
//! | `portcullis.auth.refresh.duration` | histogram (s) | `outcome` | refresh requests |
//! | `portcullis.rate_limit.rejections` | counter | `reason` | requests answered 429 |
//! | `portcullis.password.hash.queue_depth` | gauge | | password hashes waiting or running |
//! | `portcullis.sessions.active` | gauge | | sessions neither revoked nor expired (sampled every 30 s) |
//! | `portcullis.audit.dropped` | gauge | | audit events dropped because the queue was full |
//! | `portcullis.mail.deliveries` | counter | `outcome` (`sent`, `retried`, `failed`) | delivery attempts of the email outbox |

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter, ObservableGauge};
use portcullis_domain::audit::{AuditSink, AuthEvent};

/// The service's instruments.
pub struct Metrics {
    pub http_duration: Histogram<f64>,
    pub auth_events: Counter<u64>,
    pub login_duration: Histogram<f64>,
    pub refresh_duration: Histogram<f64>,
    pub rate_limited: Counter<u64>,
    pub mail_deliveries: Counter<u64>,
    /// Sampled by a background task; read by the gauge.
    pub active_sessions: Arc<AtomicU64>,
    _gauges: Vec<ObservableGauge<u64>>,
}

impl Metrics {
    /// Builds the instruments on the global meter provider.
    pub fn new(
        queue_depth: Arc<dyn Fn() -> u64 + Send + Sync>,
        dropped: Arc<dyn Fn() -> u64 + Send + Sync>,
    ) -> Self {
        let meter: Meter = opentelemetry::global::meter("portcullis");
        let active_sessions = Arc::new(AtomicU64::new(0));
        let sessions = active_sessions.clone();
        let gauges = vec![
            meter
                .u64_observable_gauge("portcullis.password.hash.queue_depth")
                .with_description("Password hashes waiting or running")
                .with_callback(move |observer| observer.observe(queue_depth(), &[]))
                .build(),
            meter
                .u64_observable_gauge("portcullis.sessions.active")
                .with_description("Sessions neither revoked nor expired")
                .with_callback(move |observer| {
                    observer.observe(sessions.load(Ordering::Relaxed), &[])
                })
                .build(),
            meter
                .u64_observable_gauge("portcullis.audit.dropped")
                .with_description("Audit events dropped because the queue was full")
                .with_callback(move |observer| observer.observe(dropped(), &[]))
                .build(),
        ];
        Self {
            http_duration: meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description("Duration of HTTP server requests")
                .build(),
            auth_events: meter
                .u64_counter("portcullis.auth.events")
                .with_description("Authentication events by type and outcome")
                .build(),
            login_duration: meter
                .f64_histogram("portcullis.auth.login.duration")
                .with_unit("s")
                .with_description("Duration of log-in requests")
                .build(),
            refresh_duration: meter
                .f64_histogram("portcullis.auth.refresh.duration")
                .with_unit("s")
                .with_description("Duration of refresh requests")
                .build(),
            rate_limited: meter
                .u64_counter("portcullis.rate_limit.rejections")
                .with_description("Requests answered 429")
                .build(),
            mail_deliveries: meter
                .u64_counter("portcullis.mail.deliveries")
                .with_description("Delivery attempts of the email outbox by outcome")
                .build(),
            active_sessions,
            _gauges: gauges,
        }
    }

    fn count(&self, event: &AuthEvent) {
        self.auth_events.add(
            1,
            &[
                KeyValue::new("event.type", event.kind.as_str()),
                KeyValue::new("outcome", event.outcome.as_str()),
            ],
        );
        if event.kind == portcullis_domain::audit::AuthEventKind::RateLimitHit {
            let reason = event.detail.clone().unwrap_or_default();
            self.rate_limited.add(1, &[KeyValue::new("reason", reason)]);
        }
    }
}

/// Counts every audit event, then hands it on.
pub struct MeteredAudit {
    pub inner: Arc<dyn AuditSink>,
    pub metrics: Arc<Metrics>,
}

impl AuditSink for MeteredAudit {
    fn record(&self, event: AuthEvent) {
        self.metrics.count(&event);
        self.inner.record(event);
    }

    fn committed(&self, event: &AuthEvent) {
        self.metrics.count(event);
    }
}
