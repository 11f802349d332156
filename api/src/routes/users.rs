//! `/api/v1/users`: the caller's account.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use portcullis_domain::error::Failure;

use crate::http::security::BearerAuth;
use crate::problem::{ApiError, problem_responses};
use crate::routes::common::{ApiTags, UserBody, failure};
use crate::state::AppState;

#[derive(ApiResponse)]
pub enum MeResponse {
    /// The caller's profile.
    #[oai(status = 200)]
    Ok(Json<UserBody>),
}

problem_responses!(MeErrors {
    Unauthorized = 401 => "No valid bearer access token (`invalid_token`).",
    NotFound = 404 => "The account no longer exists.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The database is unreachable.",
});

impl From<Failure> for MeErrors {
    fn from(error: Failure) -> Self {
        failure(&error).into()
    }
}

/// Account operations.
#[derive(Default)]
pub struct UsersApi;

#[OpenApi(prefix_path = "/api/v1/users", tag = "ApiTags::Users")]
impl UsersApi {
    /// Get my profile
    ///
    /// The account that the presented access token belongs to.
    #[oai(path = "/me", method = "get", operation_id = "getMe")]
    async fn me(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
    ) -> Result<MeResponse, MeErrors> {
        match state.auth.me(&auth.0).await {
            Ok(Some(profile)) => Ok(MeResponse::Ok(Json(UserBody::from(&profile)))),
            Ok(None) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "The account no longer exists.",
            )
            .into()),
            Err(error) => Err(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::testing::{answer, failure_cases};

    #[tokio::test]
    async fn every_me_failure_has_one_status_code_and_retry_after() {
        let cases = failure_cases();
        for (error, expected) in cases {
            let shown = format!("{error:?}");
            assert_eq!(answer(MeErrors::from(error)).await, expected, "{shown}");
        }
    }
}
