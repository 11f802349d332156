//! RFC 9457 problem details: the one error format of the API. `Problem` is
//! the body, `ApiError` an error on its way out, and `problem_responses!`
//! builds the documented error enum of an operation.
//!
//! A leaf: it imports no sibling. The middleware that turns poem's own errors
//! (unknown route, bad JSON, wrong content type...) into problems lives in
//! `http::middleware::problem`.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
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
#[oai(example, skip_serializing_if_is_none)]
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
    /// With `mfa_required` only: the single-use challenge token of the
    /// log-in's second step (`POST /api/v1/auth/mfa/verify`), valid 5 minutes.
    pub mfa_token: Option<String>,
    /// With `mfa_required` only: the second factors the account accepts
    /// (`totp`, `recovery_code`).
    pub methods: Option<Vec<String>>,
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
            mfa_token: None,
            methods: None,
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
pub struct ProblemJson(pub Box<Problem>);

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

/// An error on its way out: a problem and the headers it needs.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// Boxed: an error travels in `Result`s, which stay small.
    pub problem: Box<Problem>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `status`, machine `code` and human `detail`.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            problem: Box::new(Problem::new(status, code, detail)),
            retry_after: None,
        }
    }

    /// Adds the members of a log-in's second step (`mfa_required`).
    pub fn second_step(mut self, mfa_token: &str, methods: &[&str]) -> Self {
        self.problem.mfa_token = Some(mfa_token.to_owned());
        self.problem.methods = Some(methods.iter().map(|m| (*m).to_owned()).collect());
        self
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

/// What a test needs to pin of an error answer: its status, problem `code`
/// and `Retry-After`.
#[cfg(test)]
pub(crate) mod testing {
    use poem::IntoResponse;
    use poem::http::header;

    use portcullis_domain::error::Failure;

    use super::PROBLEM_JSON;

    /// Every kind of `Failure` and the one answer each gets in every
    /// operation: 503 with `Retry-After` when retrying can help, else 500.
    pub(crate) fn failure_cases() -> [(Failure, Answer); 3] {
        [
            (
                Failure::Overloaded {
                    retry_after_secs: 3,
                },
                Answer::new(503, "overloaded", Some("3")),
            ),
            (
                Failure::Unavailable(anyhow::anyhow!("refused")),
                Answer::new(503, "unavailable", Some("2")),
            ),
            (
                Failure::Unexpected(anyhow::anyhow!("bug")),
                Answer::new(500, "internal", None),
            ),
        ]
    }

    /// The status, problem `code` and `Retry-After` of an answer.
    #[derive(Debug, PartialEq, Eq)]
    pub(crate) struct Answer {
        pub status: u16,
        pub code: String,
        pub retry_after: Option<String>,
    }

    impl Answer {
        pub(crate) fn new(status: u16, code: &str, retry_after: Option<&str>) -> Self {
            Self {
                status,
                code: code.to_owned(),
                retry_after: retry_after.map(str::to_owned),
            }
        }
    }

    /// Renders `answer` as poem would send it; asserts it is problem+json
    /// and that the body's `status` is the response's.
    pub(crate) async fn answer(answer: impl IntoResponse) -> Answer {
        let response = answer.into_response();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert_eq!(content_type.as_deref(), Some(PROBLEM_JSON));
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.into_body().into_string().await.unwrap();
        let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["status"], status, "{body}");
        Answer {
            status,
            code: problem["code"].as_str().unwrap_or_default().to_owned(),
            retry_after,
        }
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
}
