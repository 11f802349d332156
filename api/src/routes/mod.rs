//! The HTTP operations, one module per tag, and the bodies they share.

pub mod auth;
pub mod discovery;
pub mod events;
pub mod health;
pub mod sessions;
pub mod tasks;
pub mod users;

use poem::Request;
use poem_openapi::{Object, Tags};
use portcullis_domain::audit::RequestContext;
use portcullis_domain::auth::{Failure, TokenPair};
use portcullis_domain::session::ClientInfo;
use portcullis_domain::user::Profile;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::problem::ApiError;
use poem::http::StatusCode;

/// Operation groups of the document.
#[derive(Tags)]
pub enum ApiTags {
    /// Sign up, log in, refresh, log out, verify.
    Auth,
    /// The caller's account.
    Users,
    /// The caller's sessions.
    Sessions,
    /// A sample protected resource, strictly per user.
    Tasks,
    /// Public signing keys.
    Discovery,
    /// Liveness and readiness.
    Health,
}

/// A user's public profile.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct UserBody {
    /// The user's id.
    pub id: Uuid,
    /// The normalised (lowercase) email address.
    pub email: String,
    /// When the account was created (RFC 3339, UTC).
    pub created_at: OffsetDateTime,
}

impl UserBody {
    fn example_value() -> Self {
        Self {
            id: Uuid::nil(),
            email: "alice@example.com".to_owned(),
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }
}

impl From<&Profile> for UserBody {
    fn from(user: &Profile) -> Self {
        Self {
            id: user.id.as_uuid(),
            email: user.email.as_str().to_owned(),
            created_at: user.created_at,
        }
    }
}

/// An access token, a refresh token, and `user`, the account they belong to.
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct TokenPairBody {
    /// A JWT to send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// An opaque token for `POST /api/v1/auth/refresh`; single use, rotated on every refresh.
    pub refresh_token: String,
    /// Seconds until the refresh token expires if it is not used.
    pub refresh_expires_in: i64,
    // No doc comment: a described `$ref` becomes an `allOf` wrapper, which
    // SDK generators turn into a needless copy of `UserBody`.
    pub user: UserBody,
}

impl TokenPairBody {
    fn example_value() -> Self {
        Self {
            access_token: "eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCIsImtpZCI6Ii4uLiJ9.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl".to_owned(),
            token_type: "Bearer".to_owned(),
            expires_in: 900,
            refresh_token: "q3Jk0yq1yVbqQm3a8mF6Qm1b0Jm8u8g8m2t2u3vYc8w".to_owned(),
            refresh_expires_in: 604_800,
            user: UserBody::example_value(),
        }
    }
}

impl From<&TokenPair> for TokenPairBody {
    fn from(pair: &TokenPair) -> Self {
        Self {
            access_token: pair.access_token.expose().to_owned(),
            token_type: "Bearer".to_owned(),
            expires_in: (pair.access_expires_at - pair.issued_at)
                .whole_seconds()
                .max(0),
            refresh_token: pair.refresh_token.expose().to_owned(),
            refresh_expires_in: (pair.refresh_expires_at - pair.issued_at)
                .whole_seconds()
                .max(0),
            user: UserBody::from(&pair.user),
        }
    }
}

/// `Cache-Control` of every response that carries a token.
pub const NO_STORE: &str = "no-store";

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

/// The 429 of every exhausted budget or lock.
pub fn rate_limited(retry_after_secs: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "Too many attempts; retry later.",
    )
    .retry_after(retry_after_secs.max(1))
}

/// The answer to an infrastructure failure: 503 with `Retry-After` when
/// retrying can help, 500 otherwise.
pub fn failure(error: &Failure) -> ApiError {
    match error {
        Failure::Overloaded { retry_after_secs } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "The service is busy hashing passwords; retry shortly.",
        )
        .retry_after(*retry_after_secs),
        Failure::Unavailable(cause) => {
            tracing::warn!(error = %cause, "storage unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The service is temporarily unavailable; retry shortly.",
            )
            .retry_after(2)
        }
        Failure::Unexpected(cause) => ApiError::internal(cause),
    }
}

impl poem_openapi::types::Example for UserBody {
    fn example() -> Self {
        Self::example_value()
    }
}

impl poem_openapi::types::Example for TokenPairBody {
    fn example() -> Self {
        Self::example_value()
    }
}

/// The route templates of the document (`/api/v1/tasks/{id}`), to name
/// spans and label metrics without one series per id.
pub struct RouteTemplates {
    templates: Vec<(String, Vec<Option<String>>)>,
    methods: std::collections::HashMap<String, String>,
}

impl RouteTemplates {
    /// Reads the paths of an OpenAPI document.
    pub fn from_spec(spec: &str) -> Self {
        let doc = serde_json::from_str::<serde_json::Value>(spec).unwrap_or_default();
        let operations = doc
            .get("paths")
            .and_then(|p| p.as_object())
            .cloned()
            .unwrap_or_default();
        let paths: Vec<String> = operations.keys().cloned().collect();
        let methods = operations
            .iter()
            .map(|(path, item)| {
                let mut verbs: Vec<String> = item
                    .as_object()
                    .map(|ops| ops.keys().map(|m| m.to_ascii_uppercase()).collect())
                    .unwrap_or_default();
                if verbs.iter().any(|v| v == "GET") {
                    verbs.push("HEAD".to_owned());
                }
                (path.clone(), verbs.join(", "))
            })
            .collect();
        let templates = paths
            .into_iter()
            .map(|path| {
                let segments = path
                    .split('/')
                    .map(|seg| {
                        (!(seg.starts_with('{') && seg.ends_with('}'))).then(|| seg.to_owned())
                    })
                    .collect();
                (path, segments)
            })
            .collect();
        Self { templates, methods }
    }

    /// The `Allow` value of a route template.
    pub fn allowed_methods(&self, template: &str) -> Option<String> {
        self.methods.get(template).cloned()
    }

    /// The template matching `path`; a fixed label for anything else.
    pub fn route(&self, path: &str) -> String {
        let segments: Vec<&str> = path.split('/').collect();
        for (template, pattern) in &self.templates {
            if pattern.len() == segments.len()
                && pattern
                    .iter()
                    .zip(&segments)
                    .all(|(want, got)| want.as_deref().is_none_or(|w| w == *got))
            {
                return template.clone();
            }
        }
        match path {
            "/openapi.json" | "/openapi.yaml" => path.to_owned(),
            p if p == "/docs" || p.starts_with("/docs/") => "/docs".to_owned(),
            _ => "unmatched".to_owned(),
        }
    }
}
