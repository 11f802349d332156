//! `GET /api/v1/sessions`: the caller's active sessions, newest first.

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use portcullis_domain::context::Principal;
use portcullis_domain::error::Failure;
use portcullis_domain::ids::SessionId;
use portcullis_domain::session::Session;
use portcullis_domain::session::SessionService;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::problem::problem_responses;
use crate::routes::common::failure;

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

impl poem_openapi::types::Example for SessionList {
    fn example() -> Self {
        Self::example_value()
    }
}

#[derive(ApiResponse)]
pub enum ListResponse {
    /// The caller's active sessions.
    #[oai(status = 200)]
    Ok(Json<SessionList>),
}

problem_responses!(ListErrors {
    Unauthorized = 401 => "No valid bearer access token (`invalid_token`).",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The database is unreachable.",
});

impl From<Failure> for ListErrors {
    fn from(error: Failure) -> Self {
        failure(&error).into()
    }
}

/// The caller's active sessions; `current` marks the caller's own.
pub async fn list(
    sessions: &SessionService,
    caller: &Principal,
) -> Result<ListResponse, ListErrors> {
    let sessions = sessions.list(caller).await?;
    Ok(ListResponse::Ok(Json(SessionList {
        items: sessions
            .iter()
            .map(|s| body(s, caller.session_id))
            .collect(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::testing::{answer, failure_cases};

    #[tokio::test]
    async fn every_list_failure_has_one_status_code_and_retry_after() {
        let cases = failure_cases();
        for (error, expected) in cases {
            let shown = format!("{error:?}");
            assert_eq!(answer(ListErrors::from(error)).await, expected, "{shown}");
        }
    }
}
