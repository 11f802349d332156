//! The bearer security scheme: the one place where access tokens are checked.
//! An endpoint that takes a [`BearerAuth`] argument cannot run without a valid,
//! unrevoked token; nothing else in the API reads the `Authorization` header.

use std::sync::Arc;

use poem::Request;
use poem::http::{HeaderValue, StatusCode, header};
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;
use portcullis_domain::context::Principal;
use portcullis_domain::token::TokenRejection;

use crate::http::middleware::request_scope::request_context;
use crate::problem::{INVALID_TOKEN_CHALLENGE, Problem};
use crate::state::AppState;

/// A JWT access token from `POST /api/v1/auth/login`, `signup` or `refresh`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_bearer")]
pub struct BearerAuth(pub Principal);

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let Some(state) = req.data::<Arc<AppState>>() else {
        return Err(poem::Error::from_status(StatusCode::INTERNAL_SERVER_ERROR));
    };
    // poem trims the credential; a token with stray whitespace is malformed
    // (SECURITY.md), so compare with the raw header.
    let raw = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.get(7..))
        .unwrap_or_default();
    if raw != bearer.token || raw.chars().any(char::is_whitespace) {
        reject(state, req, TokenRejection::Malformed);
        return Err(invalid_token());
    }
    state.auth.authenticate(&bearer.token).map_err(|rejection| {
        reject(state, req, rejection);
        invalid_token()
    })
}

fn reject(state: &AppState, req: &Request, rejection: TokenRejection) {
    tracing::info!(reason = rejection.as_str(), "access token rejected");
    state.auth.token_rejected(rejection, &request_context(req));
}

/// The 401 of every token rejection: one body and header whatever the reason.
pub fn invalid_token() -> poem::Error {
    let mut response = Problem::new(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "A valid bearer access token is required.",
    )
    .into_poem_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(INVALID_TOKEN_CHALLENGE),
    );
    poem::Error::from_response(response)
}
