//! The telemetry of an in-process application, read back from the
//! OpenTelemetry SDK's in-memory exporters.
//!
//! A test binary of its own: it installs the global tracing subscriber,
//! propagator and meter provider, once, before `Application::build` creates
//! its instruments. The spans and metrics are then checked the way a backend
//! would see them: names, kinds, attributes, parent/child links, continuation
//! of an incoming `traceparent`, and the counts the requests imply.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry::trace::{SpanId, SpanKind, TraceId, TracerProvider as _};
use opentelemetry::{Key, KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use portcullis_api::{Application, Settings};
use serde_json::json;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use uuid::Uuid;

/// The exporters and providers installed for this process.
struct Telemetry {
    spans: InMemorySpanExporter,
    tracer: SdkTracerProvider,
    metrics: InMemoryMetricExporter,
    meter: SdkMeterProvider,
}

/// What `portcullis_api::telemetry::init` installs when exporting, with the
/// OTLP exporters swapped for in-memory ones. Spans are exported as they
/// end; metrics when flushed.
fn install() -> Telemetry {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let spans = InMemorySpanExporter::default();
    let tracer = SdkTracerProvider::builder()
        .with_simple_exporter(spans.clone())
        .build();
    tracing_subscriber::registry()
        // The service's default level (`RUST_LOG` unset is `info`).
        .with(LevelFilter::INFO)
        .with(tracing_opentelemetry::layer().with_tracer(tracer.tracer("portcullis")))
        .init();
    let metrics = InMemoryMetricExporter::default();
    let meter = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(metrics.clone()).build())
        .build();
    opentelemetry::global::set_meter_provider(meter.clone());
    Telemetry {
        spans,
        tracer,
        metrics,
        meter,
    }
}

/// Settings as environment-style pairs, read through the real parser.
struct Pairs(Vec<(&'static str, String)>);

impl portcullis_api::settings::Source for Pairs {
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn string(span: &SpanData, key: &str) -> Option<String> {
    match attribute(span, key) {
        Some(Value::String(s)) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// Sum values or histogram counts of metric `name`, by attributes.
fn metric(resources: &[ResourceMetrics], name: &str) -> BTreeMap<Vec<(String, String)>, u64> {
    fn key(attributes: Vec<&KeyValue>) -> Vec<(String, String)> {
        let mut key: Vec<_> = attributes
            .into_iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect();
        key.sort();
        key
    }
    let mut values = BTreeMap::new();
    // Cumulative temporality: the last collection holds the totals.
    let last = resources.last().expect("metrics were exported");
    for found in last
        .scope_metrics()
        .flat_map(|scope| scope.metrics())
        .filter(|m| m.name() == name)
    {
        match found.data() {
            AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                for point in sum.data_points() {
                    values.insert(key(point.attributes().collect()), point.value());
                }
            }
            AggregatedMetrics::F64(MetricData::Histogram(histogram)) => {
                for point in histogram.data_points() {
                    values.insert(key(point.attributes().collect()), point.count());
                }
            }
            other => panic!("{name}: unexpected data {other:?}"),
        }
    }
    values
}

fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut key: Vec<_> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    key.sort();
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_follow_the_requests() {
    let telemetry = install();

    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::from_source(&Pairs(vec![
        ("PORTCULLIS_BIND", "127.0.0.1:0".to_owned()),
        ("PORTCULLIS_DATA_DIR", dir.path().display().to_string()),
        ("PORTCULLIS_HASH_WORKERS", "1".to_owned()),
    ]))
    .unwrap();
    let app = Application::build(settings).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::new();
    let credentials = json!({
        "email": format!("inmem.{}@example.com", &Uuid::new_v4().simple().to_string()[..8]),
        "password": "a long and quiet river at dawn",
    });
    let signup = client
        .post(format!("{base}/api/v1/auth/signup"))
        .json(&credentials)
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), 201);
    let signup_trace = signup.headers()["x-trace-id"].to_str().unwrap().to_owned();

    let trace_id = TraceId::from_hex(&Uuid::new_v4().simple().to_string()).unwrap();
    let parent_id = SpanId::from_hex("00f067aa0ba902b7").unwrap();
    let login = client
        .post(format!("{base}/api/v1/auth/login"))
        .header("traceparent", format!("00-{trace_id}-{parent_id}-01"))
        .json(&credentials)
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    assert_eq!(login.headers()["x-trace-id"], trace_id.to_string().as_str());

    let mut wrong = credentials.clone();
    wrong["password"] = json!("not the password at all, sorry");
    for _ in 0..2 {
        let failed = client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(failed.status(), 401);
    }

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
    telemetry.tracer.force_flush().unwrap();
    telemetry.meter.force_flush().unwrap();

    // Spans.
    let spans = telemetry.spans.get_finished_spans().unwrap();
    let named =
        |name: &str| -> Vec<&SpanData> { spans.iter().filter(|s| s.name == name).collect() };
    let child_of = |parent: &SpanData, name: &str| -> SpanData {
        spans
            .iter()
            .find(|s| {
                s.name == name
                    && s.span_context.trace_id() == parent.span_context.trace_id()
                    && s.parent_span_id == parent.span_context.span_id()
            })
            .unwrap_or_else(|| panic!("no {name} under {}", parent.name))
            .clone()
    };

    // The log-in continued the caller's trace, as a server span with the
    // HTTP semantic-convention attributes.
    let server = named("POST /api/v1/auth/login")
        .into_iter()
        .find(|s| s.span_context.trace_id() == trace_id)
        .expect("the log-in server span continues the incoming trace")
        .clone();
    assert_eq!(server.span_kind, SpanKind::Server);
    assert_eq!(server.parent_span_id, parent_id);
    assert!(server.parent_span_is_remote);
    for (key, want) in [
        ("http.request.method", "POST"),
        ("http.route", "/api/v1/auth/login"),
        ("url.path", "/api/v1/auth/login"),
        ("url.scheme", "http"),
        ("client.address", "127.0.0.1"),
    ] {
        assert_eq!(string(&server, key).as_deref(), Some(want), "{key}");
    }
    assert_eq!(
        attribute(&server, "http.response.status_code"),
        Some(&Value::I64(200))
    );
    assert_eq!(
        string(&server, "trace_id"),
        Some(trace_id.to_string()),
        "the span's own trace_id field"
    );

    // auth.log_in under it, password.verify under that.
    let log_in = child_of(&server, "auth.log_in");
    assert_eq!(string(&log_in, "outcome").as_deref(), Some("success"));
    let verify = child_of(&log_in, "password.verify");
    assert_eq!(verify.span_context.trace_id(), trace_id);

    // Requests without a traceparent start their own trace, the one their
    // X-Trace-Id names.
    let signup_server = named("POST /api/v1/auth/signup")[0];
    assert_eq!(signup_server.parent_span_id, SpanId::INVALID);
    assert_eq!(
        signup_server.span_context.trace_id().to_string(),
        signup_trace
    );
    assert_eq!(
        attribute(signup_server, "http.response.status_code"),
        Some(&Value::I64(201))
    );
    let sign_up = child_of(signup_server, "auth.sign_up");
    assert_eq!(string(&sign_up, "outcome").as_deref(), Some("success"));
    child_of(&sign_up, "password.hash");

    let failures: Vec<_> = named("POST /api/v1/auth/login")
        .into_iter()
        .filter(|s| attribute(s, "http.response.status_code") == Some(&Value::I64(401)))
        .collect();
    assert_eq!(failures.len(), 2);
    assert_ne!(
        failures[0].span_context.trace_id(),
        failures[1].span_context.trace_id()
    );
    for failed in failures {
        let log_in = child_of(failed, "auth.log_in");
        assert_eq!(
            string(&log_in, "outcome").as_deref(),
            Some("invalid_credentials")
        );
        // A 4xx is the caller's problem: the server span stays unset.
        assert_eq!(failed.status, opentelemetry::trace::Status::Unset);
    }
    assert!(
        spans
            .iter()
            .all(|s| !s.attributes.iter().any(|kv| kv.key == Key::new("password"))),
        "a span has a password attribute"
    );

    // Metrics.
    let exported = telemetry.metrics.get_finished_metrics().unwrap();
    assert_eq!(
        metric(&exported, "portcullis.auth.events"),
        BTreeMap::from([
            (
                pairs(&[("event.type", "login_failed"), ("outcome", "failure")]),
                2
            ),
            (
                pairs(&[("event.type", "login_succeeded"), ("outcome", "success")]),
                1
            ),
            (
                pairs(&[("event.type", "signup"), ("outcome", "success")]),
                1
            ),
        ])
    );
    assert_eq!(
        metric(&exported, "portcullis.auth.login.duration"),
        BTreeMap::from([
            (pairs(&[("outcome", "invalid_credentials")]), 2),
            (pairs(&[("outcome", "success")]), 1),
        ])
    );
    let http = metric(&exported, "http.server.request.duration");
    for (route, status, count) in [
        ("/api/v1/auth/signup", "201", 1),
        ("/api/v1/auth/login", "200", 1),
        ("/api/v1/auth/login", "401", 2),
    ] {
        let key = pairs(&[
            ("http.request.method", "POST"),
            ("http.route", route),
            ("http.response.status_code", status),
        ]);
        assert_eq!(http.get(&key), Some(&count), "{route} {status}: {http:?}");
    }
}
