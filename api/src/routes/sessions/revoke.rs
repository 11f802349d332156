//! `DELETE /api/v1/sessions/{id}`: end one of the caller's own sessions.

use poem::http::StatusCode;
use poem_openapi::ApiResponse;
use portcullis_domain::context::Principal;
use portcullis_domain::context::RequestContext;
use portcullis_domain::ids::SessionId;
use portcullis_domain::session::RevokeSessionError;
use portcullis_domain::session::SessionService;
use uuid::Uuid;

use crate::problem::{ApiError, problem_responses};
use crate::routes::common::failure;

#[derive(ApiResponse)]
pub enum RevokeResponse {
    /// The session is revoked.
    #[oai(status = 204)]
    NoContent,
}

problem_responses!(RevokeErrors {
    BadRequest = 400 => "The id is not a UUID.",
    Unauthorized = 401 => "No valid bearer access token (`invalid_token`).",
    NotFound = 404 => "No active session of the caller has this id.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The database is unreachable.",
});

impl From<RevokeSessionError> for RevokeErrors {
    fn from(error: RevokeSessionError) -> Self {
        match error {
            RevokeSessionError::NotFound => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such session.")
            }
            RevokeSessionError::Failure(error) => failure(&error),
        }
        .into()
    }
}

/// Revokes the caller's session `id`; another user's answers 404.
pub async fn revoke(
    sessions: &SessionService,
    ctx: &RequestContext,
    caller: &Principal,
    id: Uuid,
) -> Result<RevokeResponse, RevokeErrors> {
    sessions
        .revoke(caller, SessionId::from_uuid(id), ctx)
        .await?;
    Ok(RevokeResponse::NoContent)
}

#[cfg(test)]
mod tests {
    use portcullis_domain::error::Failure;

    use super::*;
    use crate::problem::testing::{Answer, answer};

    #[tokio::test]
    async fn every_revoke_error_has_one_status_code_and_retry_after() {
        let cases = [
            (
                RevokeSessionError::NotFound,
                Answer::new(404, "not_found", None),
            ),
            (
                RevokeSessionError::Failure(Failure::Overloaded {
                    retry_after_secs: 3,
                }),
                Answer::new(503, "overloaded", Some("3")),
            ),
            (
                RevokeSessionError::Failure(Failure::Unavailable(anyhow::anyhow!("refused"))),
                Answer::new(503, "unavailable", Some("2")),
            ),
            (
                RevokeSessionError::Failure(Failure::Unexpected(anyhow::anyhow!("bug"))),
                Answer::new(500, "internal", None),
            ),
        ];
        for (error, expected) in cases {
            let shown = format!("{error:?}");
            assert_eq!(answer(RevokeErrors::from(error)).await, expected, "{shown}");
        }
    }
}
