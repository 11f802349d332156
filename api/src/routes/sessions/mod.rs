//! `/api/v1/sessions`: the caller's sessions.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use portcullis_domain::auth::RevokeSessionError;
use portcullis_domain::session::{Session, SessionId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::http::middleware::request_scope::request_context;
use crate::http::security::BearerAuth;
use crate::problem::{ApiError, problem_responses};
use crate::routes::common::{ApiTags, failure};
use crate::state::AppState;

/// One active session.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SessionBody {
    /// The session's id.
    pub id: Uuid,
    /// Whether this is the session of the presented access token.
    pub current: bool,
    /// When the session was opened (log-in or sign-up).
    pub created_at: OffsetDateTime,
    /// When the session was last used to refresh tokens.
    pub last_used_at: OffsetDateTime,
    /// The session ends if not used before this.
    pub idle_expires_at: OffsetDateTime,
    /// The session ends at this time whatever happens.
    pub absolute_expires_at: OffsetDateTime,
    /// The user agent that opened the session; absent if it sent none.
    pub user_agent: Option<String>,
    /// The client address that opened the session; absent if unknown.
    pub client_ip: Option<String>,
}

/// The caller's active sessions, newest first.
#[derive(Debug, Object)]
#[oai(example)]
pub struct SessionList {
    /// The sessions.
    pub items: Vec<SessionBody>,
}

impl SessionList {
    fn example_value() -> Self {
        Self {
            items: vec![SessionBody {
                id: Uuid::nil(),
                current: true,
                created_at: OffsetDateTime::UNIX_EPOCH,
                last_used_at: OffsetDateTime::UNIX_EPOCH,
                idle_expires_at: OffsetDateTime::UNIX_EPOCH,
                absolute_expires_at: OffsetDateTime::UNIX_EPOCH,
                user_agent: Some("Mozilla/5.0".to_owned()),
                client_ip: Some("203.0.113.7".to_owned()),
            }],
        }
    }
}

fn body(session: &Session, current: SessionId) -> SessionBody {
    SessionBody {
        id: session.id.as_uuid(),
        current: session.id == current,
        created_at: session.created_at,
        last_used_at: session.last_used_at,
        idle_expires_at: session.idle_expires_at,
        absolute_expires_at: session.absolute_expires_at,
        user_agent: session.client.user_agent().map(str::to_owned),
        client_ip: session.client.ip().map(str::to_owned),
    }
}

#[derive(ApiResponse)]
pub enum ListResponse {
    /// The caller's active sessions.
    #[oai(status = 200)]
    Ok(Json<SessionList>),
}

#[derive(ApiResponse)]
pub enum RevokeResponse {
    /// The session is revoked.
    #[oai(status = 204)]
    NoContent,
}

problem_responses!(ListErrors {
    Unauthorized = 401 => "No valid bearer access token (`invalid_token`).",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The database is unreachable.",
});

problem_responses!(RevokeErrors {
    BadRequest = 400 => "The id is not a UUID.",
    Unauthorized = 401 => "No valid bearer access token (`invalid_token`).",
    NotFound = 404 => "No active session of the caller has this id.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The database is unreachable.",
});

/// Session operations.
#[derive(Default)]
pub struct SessionsApi;

#[OpenApi(prefix_path = "/api/v1/sessions", tag = "ApiTags::Sessions")]
impl SessionsApi {
    /// List my sessions
    ///
    /// The caller's active sessions, newest first; `current` marks the one of
    /// the presented access token.
    #[oai(path = "/", method = "get", operation_id = "listSessions")]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
    ) -> Result<ListResponse, ListErrors> {
        let sessions = state
            .auth
            .sessions(&auth.0)
            .await
            .map_err(|e| failure(&e))?;
        Ok(ListResponse::Ok(Json(SessionList {
            items: sessions
                .iter()
                .map(|s| body(s, auth.0.session_id))
                .collect(),
        })))
    }

    /// Revoke one of my sessions
    ///
    /// Ends a session of the caller: its refresh token and access tokens stop
    /// working. Another user's session id answers 404.
    #[oai(path = "/:id", method = "delete", operation_id = "revokeSession")]
    async fn revoke(
        &self,
        state: Data<&Arc<AppState>>,
        req: &poem::Request,
        auth: BearerAuth,
        /// The session id.
        id: Path<Uuid>,
    ) -> Result<RevokeResponse, RevokeErrors> {
        match state
            .auth
            .revoke_session(&auth.0, SessionId::from_uuid(id.0), &request_context(req))
            .await
        {
            Ok(()) => Ok(RevokeResponse::NoContent),
            Err(RevokeSessionError::NotFound) => {
                Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such session.").into())
            }
            Err(RevokeSessionError::Failure(error)) => Err(failure(&error).into()),
        }
    }
}

impl poem_openapi::types::Example for SessionList {
    fn example() -> Self {
        Self::example_value()
    }
}
