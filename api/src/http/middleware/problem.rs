//! The problem middleware: every error response poem produces on its own
//! (unknown route, bad JSON, wrong content type, a bare status) leaves as
//! `application/problem+json`, and no 5xx shows its internals.

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

use crate::http::middleware::body_limit::MAX_BODY_BYTES;
use crate::problem::{INVALID_TOKEN_CHALLENGE, PROBLEM_JSON, Problem};

/// Turns every error response poem produces on its own into problem+json,
/// and hides the internals of any 5xx.
pub struct ProblemMiddleware;

impl<E: Endpoint> Middleware<E> for ProblemMiddleware {
    type Output = ProblemEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        ProblemEndpoint(ep)
    }
}

pub struct ProblemEndpoint<E>(E);

impl<E: Endpoint> Endpoint for ProblemEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Self::Output> {
        let response = match self.0.call(req).await {
            Ok(output) => output.into_response(),
            Err(error) => {
                if error.is_from_response() {
                    error.into_response()
                } else {
                    return Ok(problem_for_error(error));
                }
            }
        };
        Ok(ensure_problem(response))
    }
}

fn is_problem(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON))
}

/// A bare error status (no problem body) becomes a problem.
fn ensure_problem(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_problem(&response) {
        return response;
    }
    let (code, detail) = describe_status(status, None);
    let mut problem = Problem::new(status, code, detail).into_poem_response();
    for name in [
        header::RETRY_AFTER,
        header::WWW_AUTHENTICATE,
        header::ALLOW,
        header::CONNECTION,
    ] {
        if let Some(value) = response.headers().get(&name) {
            problem.headers_mut().insert(name, value.clone());
        }
    }
    problem
}

fn problem_for_error(error: poem::Error) -> Response {
    let status = error.status();
    if status.is_server_error() {
        tracing::error!(error = %error, "request failed");
    }
    let message = error.to_string();
    let (code, detail) = describe_status(status, Some(&message));
    let mut response = Problem::new(status, code, detail).into_poem_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(INVALID_TOKEN_CHALLENGE),
        );
    }
    response
}

/// Maps a status (and poem's message, when safe to show) to a code and detail.
fn describe_status(status: StatusCode, message: Option<&str>) -> (&'static str, String) {
    let shown = |fallback: &str| {
        message
            .filter(|m| !m.is_empty())
            .map(|m| m.chars().take(300).collect::<String>())
            .unwrap_or_else(|| fallback.to_owned())
    };
    match status {
        StatusCode::BAD_REQUEST => ("bad_request", shown("The request is malformed.")),
        StatusCode::UNAUTHORIZED => (
            "invalid_token",
            "A valid bearer access token is required.".to_owned(),
        ),
        StatusCode::NOT_FOUND => ("not_found", "No such resource.".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "This method is not allowed on this resource.".to_owned(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            format!("The request body exceeds {} bytes.", MAX_BODY_BYTES),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "The request body must be application/json.".to_owned(),
        ),
        StatusCode::REQUEST_TIMEOUT => (
            "request_timeout",
            "The request body did not arrive in time.".to_owned(),
        ),
        StatusCode::LENGTH_REQUIRED => (
            "length_required",
            "A Content-Length is required.".to_owned(),
        ),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            "headers_too_large",
            "The request headers are too large.".to_owned(),
        ),
        StatusCode::TOO_MANY_REQUESTS => {
            ("rate_limited", "Too many requests; retry later.".to_owned())
        }
        StatusCode::SERVICE_UNAVAILABLE => (
            "unavailable",
            "The service is temporarily unavailable; retry later.".to_owned(),
        ),
        s if s.is_client_error() => ("client_error", shown("The request cannot be processed.")),
        _ => ("internal", "An internal error occurred.".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_never_show_their_message() {
        let (code, detail) =
            describe_status(StatusCode::INTERNAL_SERVER_ERROR, Some("db password=x"));
        assert_eq!(code, "internal");
        assert!(!detail.contains("password"));
    }
}
