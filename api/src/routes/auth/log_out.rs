//! `POST /api/v1/auth/logout`: end this session, every session, or every
//! other session of the caller. The scope comes from `?scope=` or from an
//! optional JSON body `{"scope": ...}`; both given and different is 400,
//! never a silent default.

use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Enum, Object};
use portcullis_domain::auth::{AuthService, LogoutScope};
use portcullis_domain::context::Principal;
use portcullis_domain::context::RequestContext;
use portcullis_domain::error::Failure;
use uuid::Uuid;

use crate::problem::{ApiError, problem_responses};
use crate::routes::common::failure;

/// Which sessions to end.
#[derive(Debug, Clone, Copy, Enum, Default, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum LogoutScopeParam {
    /// The session of the presented access token.
    #[default]
    This,
    /// Every session of the account.
    All,
    /// Every session but this one.
    Others,
}

impl LogoutScopeParam {
    /// The scope in the domain's words.
    pub fn into_domain(self) -> LogoutScope {
        match self {
            Self::This => LogoutScope::This,
            Self::All => LogoutScope::All,
            Self::Others => LogoutScope::Others,
        }
    }
}

/// The optional body of a logout: `scope` names the sessions to end, as
/// `?scope=` does; `this` when neither says, 400 when the two differ.
#[derive(Debug, Object)]
#[oai(example)]
pub struct LogoutRequest {
    // No doc comment: a described `$ref` becomes an `allOf` wrapper, which
    // SDK generators cannot take for an enum.
    pub scope: MaybeUndefined<LogoutScopeParam>,
}

impl poem_openapi::types::Example for LogoutRequest {
    fn example() -> Self {
        Self {
            scope: MaybeUndefined::Value(LogoutScopeParam::Others),
        }
    }
}

impl LogoutRequest {
    /// The scope the body names, if any.
    ///
    /// # Errors
    /// 400 `bad_request` for `"scope": null` (leave it out instead).
    pub fn scope(&self) -> Result<Option<LogoutScopeParam>, ApiError> {
        match self.scope {
            MaybeUndefined::Undefined => Ok(None),
            MaybeUndefined::Null => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "`scope` must not be null; leave it out instead.",
            )),
            MaybeUndefined::Value(scope) => Ok(Some(scope)),
        }
    }
}

/// The one scope the query and the body ask for.
///
/// # Errors
/// 400 `conflicting_scope` when both name a scope and they differ.
pub fn resolve_scope(
    query: Option<LogoutScopeParam>,
    body: Option<LogoutScopeParam>,
) -> Result<LogoutScopeParam, ApiError> {
    match (query, body) {
        (Some(query), Some(body)) if query != body => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "conflicting_scope",
            "The query and the body name different scopes.",
        )),
        (query, body) => Ok(query.or(body).unwrap_or_default()),
    }
}

/// The sessions a logout ended.
#[derive(Debug, Object)]
#[oai(example)]
pub struct LogoutBody {
    /// Ids of the sessions revoked by this request.
    pub revoked_sessions: Vec<Uuid>,
}

impl LogoutBody {
    fn example_value() -> Self {
        Self {
            revoked_sessions: vec![Uuid::nil()],
        }
    }
}

impl poem_openapi::types::Example for LogoutBody {
    fn example() -> Self {
        Self::example_value()
    }
}

#[derive(ApiResponse)]
pub enum LogoutResponse {
    /// The sessions are revoked: their refresh and access tokens no longer work.
    #[oai(status = 200)]
    Ok(Json<LogoutBody>),
}

problem_responses!(LogoutErrors {
    BadRequest = 400 => "The scope is not one of `this`, `all`, `others`, or the query and the body name different ones (`conflicting_scope`).",
    Unauthorized = 401 => "No valid bearer access token (`invalid_token`).",
    UnsupportedMediaType = 415 => "A body was sent that is not `application/json`.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The database is unreachable.",
});

impl From<Failure> for LogoutErrors {
    fn from(error: Failure) -> Self {
        failure(&error).into()
    }
}

/// Ends the sessions the query or the body name (this one by default).
pub async fn log_out(
    auth: &AuthService,
    ctx: &RequestContext,
    caller: &Principal,
    query: Option<LogoutScopeParam>,
    body: Option<LogoutRequest>,
) -> Result<LogoutResponse, LogoutErrors> {
    let body_scope = match body {
        Some(body) => body.scope()?,
        None => None,
    };
    let scope = resolve_scope(query, body_scope)?.into_domain();
    let revoked = auth.log_out(caller, scope, ctx).await?;
    Ok(LogoutResponse::Ok(Json(LogoutBody {
        revoked_sessions: revoked.iter().map(|id| id.as_uuid()).collect(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::testing::{Answer, answer, failure_cases};

    #[tokio::test]
    async fn every_log_out_failure_has_one_status_code_and_retry_after() {
        let cases = failure_cases();
        for (error, expected) in cases {
            let shown = format!("{error:?}");
            assert_eq!(answer(LogoutErrors::from(error)).await, expected, "{shown}");
        }
    }

    #[tokio::test]
    async fn the_query_and_the_body_agree_or_the_request_is_refused() {
        use LogoutScopeParam::{All, Others, This};
        assert_eq!(resolve_scope(None, None).unwrap(), This);
        assert_eq!(resolve_scope(Some(All), None).unwrap(), All);
        assert_eq!(resolve_scope(None, Some(Others)).unwrap(), Others);
        assert_eq!(resolve_scope(Some(Others), Some(Others)).unwrap(), Others);
        let conflict = resolve_scope(Some(This), Some(Others)).unwrap_err();
        assert_eq!(
            answer(LogoutErrors::from(conflict)).await,
            Answer::new(400, "conflicting_scope", None)
        );
    }

    #[test]
    fn the_default_scope_is_this_session() {
        assert_eq!(LogoutScopeParam::default().into_domain(), LogoutScope::This);
        assert_eq!(LogoutScopeParam::All.into_domain(), LogoutScope::All);
        assert_eq!(LogoutScopeParam::Others.into_domain(), LogoutScope::Others);
    }
}
