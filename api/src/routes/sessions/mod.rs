//! `/api/v1/sessions`: the caller's sessions. `SessionsApi` delegates each
//! operation to its use-case file (`list`, `revoke`).

pub mod list;
pub mod revoke;

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::Path;
use uuid::Uuid;

use crate::http::middleware::request_scope::request_context;
use crate::http::security::BearerAuth;
use crate::routes::common::ApiTags;
use crate::routes::sessions::list::{ListErrors, ListResponse};
use crate::routes::sessions::revoke::{RevokeErrors, RevokeResponse};
use crate::state::AppState;

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
        list::list(&state.sessions, &auth.0).await
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
        revoke::revoke(&state.sessions, &request_context(req), &auth.0, id.0).await
    }
}
