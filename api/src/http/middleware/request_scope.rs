//! The request scope: every request gets an id (`X-Request-Id`), its client
//! address, a server span following the HTTP semantic conventions (continuing
//! an incoming W3C `traceparent`), a trace id (`X-Trace-Id`) and a duration
//! measurement. [`request_context`] reads back, in a handler, what this
//! middleware resolved.

use std::sync::Arc;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use portcullis_domain::context::ClientInfo;
use portcullis_domain::context::RequestContext;
use uuid::Uuid;

use crate::http::client_ip::ClientIpPolicy;
use crate::http::middleware::route_templates::RouteTemplates;
use crate::metrics::Metrics;
use crate::problem::ApiError;

/// Who sent the request (client address, user agent) and its ids, as the
/// request middleware resolved them.
pub fn request_context(req: &Request) -> RequestContext {
    req.extensions()
        .get::<RequestContext>()
        .cloned()
        .unwrap_or_else(|| RequestContext {
            client: ClientInfo::new(
                None,
                req.remote_addr()
                    .as_socket_addr()
                    .map(|a| a.ip().to_string()),
            ),
            ..RequestContext::default()
        })
}

/// Gives every request an id (`X-Request-Id`), its client address, a
/// server span following the HTTP semantic conventions (continuing an
/// incoming W3C `traceparent`), a trace id (`X-Trace-Id`), and a duration
/// measurement.
pub struct RequestScope {
    client_ips: ClientIpPolicy,
    templates: Arc<RouteTemplates>,
    metrics: Arc<Metrics>,
}

impl RequestScope {
    /// A scope that resolves client addresses with `client_ips` and names
    /// routes with `templates`.
    pub fn new(
        client_ips: ClientIpPolicy,
        templates: Arc<RouteTemplates>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client_ips,
            templates,
            metrics,
        }
    }
}

impl<E: Endpoint> Middleware<E> for RequestScope {
    type Output = RequestScopeEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        RequestScopeEndpoint {
            inner: ep,
            client_ips: self.client_ips.clone(),
            templates: self.templates.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

pub struct RequestScopeEndpoint<E> {
    inner: E,
    client_ips: ClientIpPolicy,
    templates: Arc<RouteTemplates>,
    metrics: Arc<Metrics>,
}

struct HeaderExtractor<'a>(&'a poem::http::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The trace id of `span`: OpenTelemetry's when exporting, else the one of
/// an incoming `traceparent`, else a fresh random one, so audit events and
/// logs always carry one.
fn trace_id(span: &tracing::Span, headers: &poem::http::HeaderMap) -> String {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let context = span.context();
    let otel = context.span().span_context().trace_id();
    if otel != opentelemetry::trace::TraceId::INVALID {
        return otel.to_string();
    }
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let parts: Vec<&str> = v.split('-').collect();
            (parts.len() == 4
                && parts[1].len() == 32
                && parts[1]
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                && parts[1] != "00000000000000000000000000000000")
                .then(|| parts[1].to_owned())
        })
        .unwrap_or_else(|| Uuid::new_v4().simple().to_string())
}

impl<E: Endpoint> Endpoint for RequestScopeEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        use opentelemetry::KeyValue;
        use tracing::Instrument;
        use tracing_opentelemetry::OpenTelemetrySpanExt;

        let started = std::time::Instant::now();
        let request_id = Uuid::new_v4().to_string();
        let peer = req.remote_addr().as_socket_addr().map(|addr| addr.ip());
        let client_ip = self.client_ips.client_ip(peer, req.headers());
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let method = req.method().as_str().to_owned();
        let route = self.templates.route(req.uri().path());
        let span = tracing::info_span!(
            "http.server.request",
            otel.name = %format!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            http.request.method = %method,
            http.route = %route,
            url.path = %req.uri().path(),
            url.scheme = "http",
            client.address = %client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            user_agent.original = %user_agent.as_deref().unwrap_or_default().chars().take(256).collect::<String>(),
            http.response.status_code = tracing::field::Empty,
            request_id = %request_id,
            trace_id = tracing::field::Empty,
        );
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderExtractor(req.headers()))
        });
        let _ = span.set_parent(parent);
        let trace_id = trace_id(&span, req.headers());
        span.record("trace_id", trace_id.as_str());
        req.extensions_mut().insert(RequestContext {
            client: ClientInfo::new(user_agent.as_deref(), client_ip.map(|ip| ip.to_string()))
                .with_limit_key(client_ip.map(|ip| self.client_ips.limit_key(ip))),
            request_id: Some(request_id.clone()),
            trace_id: Some(trace_id.clone()),
        });

        let result = self.inner.call(req).instrument(span.clone()).await;
        let mut response = match result {
            Ok(response) => response.into_response(),
            Err(error) => {
                let status = error.status();
                ApiError::new(status, "internal", "An internal error occurred.")
                    .problem
                    .into_poem_response()
            }
        };
        let status = response.status().as_u16();
        if response.status() == StatusCode::METHOD_NOT_ALLOWED
            && !response.headers().contains_key(header::ALLOW)
            && let Some(allow) = self.templates.allowed_methods(&route)
            && let Ok(value) = HeaderValue::from_str(&allow)
        {
            response.headers_mut().insert(header::ALLOW, value);
        }
        // As i64: tracing-opentelemetry exports u64 fields as strings, and
        // the semantic conventions want an int.
        span.record("http.response.status_code", i64::from(status));
        if status >= 500 {
            span.record("otel.status_code", "ERROR");
        }
        let elapsed = started.elapsed();
        self.metrics.http_duration.record(
            elapsed.as_secs_f64(),
            &[
                KeyValue::new("http.request.method", method),
                KeyValue::new("http.route", route),
                KeyValue::new("http.response.status_code", i64::from(status)),
            ],
        );
        span.in_scope(|| {
            tracing::info!(
                status,
                elapsed_ms = elapsed.as_millis() as u64,
                "request finished"
            );
        });
        for (name, value) in [("x-request-id", request_id), ("x-trace-id", trace_id)] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        Ok(response)
    }
}
