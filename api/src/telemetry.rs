//! Logs, traces and metrics.
//!
//! Logs go to stderr, human-readable by default or JSON with
//! `PORTCULLIS_LOG_FORMAT=json`, level from `RUST_LOG`. When
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or its `_TRACES_`/`_METRICS_` variants) is
//! set, spans are bridged to OpenTelemetry by tracing-opentelemetry and
//! exported with metrics over OTLP/HTTP (protobuf); the SDK reads the other
//! standard variables itself (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_TRACES_SAMPLER`, ...). Unset, nothing
//! is exported and the OpenTelemetry API is the no-op one. The W3C
//! `traceparent` propagator is installed in both cases.

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{MetricExporter, Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::settings::LogFormat;

/// Flushes and shuts the exporters down when dropped.
pub struct TelemetryGuard {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

impl TelemetryGuard {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.tracer.is_some()
    }

    /// Flushes pending spans and metrics (also done on drop).
    pub fn shutdown(&mut self) {
        if let Some(tracer) = self.tracer.take() {
            if let Err(error) = tracer.force_flush() {
                eprintln!("portcullis: flushing spans failed: {error}");
            }
            let _ = tracer.shutdown();
        }
        if let Some(meter) = self.meter.take() {
            if let Err(error) = meter.force_flush() {
                eprintln!("portcullis: flushing metrics failed: {error}");
            }
            let _ = meter.shutdown();
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

fn resource() -> Resource {
    let mut builder = Resource::builder();
    if !env_set("OTEL_SERVICE_NAME") {
        builder = builder.with_service_name("portcullis");
    }
    builder
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build()
}

/// Spans of dependencies that record secrets in their fields, so they stay
/// off whatever `RUST_LOG` says: sea-orm's trace-level driver `connect`
/// records the whole `ConnectOptions` (the database URL, password
/// included), and its stream `build` the statement with its bound values.
fn records_secrets(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.is_span()
        && match metadata.name() {
            "connect" => metadata.target().starts_with("sea_orm::driver"),
            "build" => metadata.target().starts_with("sea_orm::database::stream"),
            _ => false,
        }
}

/// Installs logging and, when configured, OTLP export.
///
/// # Errors
/// When an exporter cannot be built from the `OTEL_*` settings.
pub fn init(format: LogFormat) -> anyhow::Result<TelemetryGuard> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    let traces = !disabled
        && (env_set("OTEL_EXPORTER_OTLP_ENDPOINT")
            || env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"));
    let metrics = !disabled
        && (env_set("OTEL_EXPORTER_OTLP_ENDPOINT")
            || env_set("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"));
    if (traces || metrics)
        && std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").is_ok_and(|p| p.trim() == "grpc")
    {
        eprintln!(
            "portcullis: OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not built in; exporting over http/protobuf"
        );
    }

    let tracer = if traces {
        let exporter = SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()
            .context("OTEL_EXPORTER_OTLP_*: building the span exporter")?;
        Some(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource())
                .build(),
        )
    } else {
        None
    };
    let meter = if metrics {
        let exporter = MetricExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()
            .context("OTEL_EXPORTER_OTLP_*: building the metric exporter")?;
        let provider = SdkMeterProvider::builder()
            .with_periodic_exporter(exporter)
            .with_resource(resource())
            .build();
        opentelemetry::global::set_meter_provider(provider.clone());
        Some(provider)
    } else {
        None
    };

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let otel_layer = tracer
        .as_ref()
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("portcullis")));
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::filter::filter_fn(|metadata| {
            !records_secrets(metadata)
        }))
        .with(otel_layer);
    let result = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // Already installed (tests start several apps in one process): keep it.
    let _ = result;
    Ok(TelemetryGuard { tracer, meter })
}
