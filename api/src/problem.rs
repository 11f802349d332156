//! RFC 9457 problem details: the one error format of the API, including the
//! errors poem produces itself (unknown route, bad JSON, wrong content type...).

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Object};

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Base of the `type` URIs; each code has its own.
const TYPE_BASE: &str = "https://portcullis.dev/problems/";

/// An RFC 9457 problem details object with a stable machine `code`.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
#[oai(example)]
pub struct Problem {
    /// A URI identifying the problem type.
    #[oai(rename = "type")]
    pub type_: String,
    /// A short, human-readable summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// A human-readable explanation specific to this occurrence.
    pub detail: String,
    /// A stable machine-readable code (`invalid_credentials`, `email_taken`, ...).
    pub code: String,
}

impl Problem {
    /// A problem with `status`, machine `code` and human `detail`.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            type_: format!("{TYPE_BASE}{}", code.replace('_', "-")),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_owned(),
        }
    }

    fn example_value() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "The email or password is incorrect.",
        )
    }

    /// The response for this problem, without extra headers.
    pub fn into_poem_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = self.to_json_string();
        Response::builder()
            .status(status)
            .content_type(PROBLEM_JSON)
            .body(body)
    }
}

/// A problem as an `application/problem+json` payload.
#[derive(Debug, Clone)]
pub struct ProblemJson(pub Problem);

impl Payload for ProblemJson {
    const CONTENT_TYPE: &'static str = PROBLEM_JSON;

    fn schema_ref() -> MetaSchemaRef {
        Problem::schema_ref()
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

impl IntoResponse for ProblemJson {
    fn into_response(self) -> Response {
        let body = self.0.to_json_string();
        Response::builder().content_type(PROBLEM_JSON).body(body)
    }
}

impl ApiResponse for ProblemJson {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "A problem",
                status: None,
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: PROBLEM_JSON,
                    schema: Problem::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

/// The `WWW-Authenticate` value of every access-token rejection (RFC 6750).
pub const INVALID_TOKEN_CHALLENGE: &str = r#"Bearer error="invalid_token""#;

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
    for name in [header::RETRY_AFTER, header::WWW_AUTHENTICATE, header::ALLOW] {
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
            format!(
                "The request body exceeds {} bytes.",
                crate::app::MAX_BODY_BYTES
            ),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "The request body must be application/json.".to_owned(),
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

/// An error on its way out: a problem and the headers it needs.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub problem: Problem,
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `status`, machine `code` and human `detail`.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            problem: Problem::new(status, code, detail),
            retry_after: None,
        }
    }

    /// Adds a `Retry-After` in seconds.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The generic 500; the cause is logged, never shown.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "An internal error occurred.",
        )
    }

    pub fn status(&self) -> u16 {
        self.problem.status
    }
}

/// Builds the problem enum of an operation: one variant per status it can
/// return, each `application/problem+json`, so the document lists exactly
/// those statuses; `retry_after` variants carry a `Retry-After` header.
/// Every enum has an `Internal = 500` variant, the landing place of any
/// status it does not list.
macro_rules! problem_responses {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $status:literal $(, retry_after: $hty:ty)? => $doc:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, poem_openapi::ApiResponse)]
        pub enum $name {
            $(
                #[doc = $doc]
                #[oai(status = $status)]
                $variant(
                    $crate::problem::ProblemJson
                    $(, #[oai(header = "Retry-After")] $hty)?
                ),
            )+
        }

        impl From<$crate::problem::ApiError> for $name {
            fn from(error: $crate::problem::ApiError) -> Self {
                $(
                    if error.status() == $status {
                        return Self::$variant(
                            $crate::problem::ProblemJson(error.problem)
                            $(, <$hty>::try_from(error.retry_after.unwrap_or(1)).unwrap_or(<$hty>::MAX))?
                        );
                    }
                )+
                let fallback = $crate::problem::ApiError::internal(&format!("unlisted status {}", error.status()));
                Self::Internal($crate::problem::ProblemJson(fallback.problem))
            }
        }
    };
}
pub(crate) use problem_responses;

impl poem_openapi::types::Example for Problem {
    fn example() -> Self {
        Self::example_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_carry_type_title_status_detail_and_code() {
        let problem = Problem::new(StatusCode::CONFLICT, "email_taken", "taken");
        assert_eq!(problem.type_, "https://portcullis.dev/problems/email-taken");
        assert_eq!(problem.title, "Conflict");
        assert_eq!(problem.status, 409);
        assert_eq!(problem.code, "email_taken");
    }

    #[test]
    fn server_errors_never_show_their_message() {
        let (code, detail) =
            describe_status(StatusCode::INTERNAL_SERVER_ERROR, Some("db password=x"));
        assert_eq!(code, "internal");
        assert!(!detail.contains("password"));
    }
}
