//! `/api/v1/auth`: sign up, log in, refresh, log out, verify.
//!
//! `AuthApi` is the document's view of the operations; each handler hands
//! its parsed input to the use-case file of the same name, which holds the
//! request and response bodies, the mapping of the domain error, and its test.

pub mod credentials;
pub mod log_in;
pub mod log_out;
pub mod refresh;
pub mod sign_up;
pub mod verify;

use std::sync::Arc;

use poem::Request;
use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;

use crate::http::middleware::request_scope::request_context;
use crate::http::optional_json::OptionalJson;
use crate::http::security::BearerAuth;
use crate::routes::auth::credentials::Credentials;
use crate::routes::auth::log_in::{LogInErrors, LogInResponse};
use crate::routes::auth::log_out::{LogoutErrors, LogoutRequest, LogoutResponse, LogoutScopeParam};
use crate::routes::auth::refresh::{RefreshErrors, RefreshRequest, RefreshResponse};
use crate::routes::auth::sign_up::{SignUpErrors, SignUpResponse};
use crate::routes::auth::verify::{VerifyErrors, VerifyResponse};
use crate::routes::common::ApiTags;
use crate::state::AppState;

/// Authentication operations.
#[derive(Default)]
pub struct AuthApi;

#[OpenApi(prefix_path = "/api/v1/auth", tag = "ApiTags::Auth")]
impl AuthApi {
    /// Create an account
    ///
    /// Registers an email and password and opens a first session. The password
    /// must be 15 to 128 characters (by default), must not be a common or
    /// breached password, and must not contain the email's name part or the
    /// service name; a refusal says which rule failed in `code`.
    #[oai(path = "/signup", method = "post", operation_id = "signUp")]
    async fn sign_up(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        body: Json<Credentials>,
    ) -> Result<SignUpResponse, SignUpErrors> {
        sign_up::sign_up(&state.auth, &request_context(req), body.0).await
    }

    /// Log in
    ///
    /// Verifies an email and password and opens a new session. Every
    /// credential problem (unknown email, wrong password) gets the same 401.
    #[oai(path = "/login", method = "post", operation_id = "logIn")]
    async fn log_in(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        body: Json<Credentials>,
    ) -> Result<LogInResponse, LogInErrors> {
        log_in::log_in(&state, &request_context(req), body.0).await
    }

    /// Rotate a refresh token
    ///
    /// Exchanges a refresh token for a new token pair of the same session.
    /// The presented token stops working (after a short grace interval for
    /// concurrent refreshes); presenting it again later revokes the session.
    #[oai(path = "/refresh", method = "post", operation_id = "refreshTokens")]
    async fn refresh(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        body: Json<RefreshRequest>,
    ) -> Result<RefreshResponse, RefreshErrors> {
        refresh::refresh(&state, &request_context(req), body.0).await
    }

    /// Log out
    ///
    /// Revokes this session (`scope=this`, the default), every session
    /// (`all`) or every other session (`others`). The scope is given as
    /// `?scope=` or in an optional JSON body `{"scope": ...}`; an unknown
    /// scope, or a query and a body that disagree, is 400. Refresh tokens
    /// and access tokens of revoked sessions are refused from then on.
    #[oai(path = "/logout", method = "post", operation_id = "logOut")]
    async fn log_out(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        auth: BearerAuth,
        /// Which sessions to end (or say it in the body; not both differently).
        scope: Query<Option<LogoutScopeParam>>,
        body: OptionalJson<LogoutRequest>,
    ) -> Result<LogoutResponse, LogoutErrors> {
        log_out::log_out(&state.auth, &request_context(req), &auth.0, scope.0, body.0).await
    }

    /// Verify an access token
    ///
    /// Forward-auth for gateways (Traefik `forwardAuth`, nginx `auth_request`):
    /// 200 with `X-User-Id` and `X-Session-Id` for a valid, unrevoked bearer
    /// token, 401 otherwise. Needs no database round trip.
    #[oai(path = "/verify", method = "get", operation_id = "verifyToken")]
    async fn verify(&self, auth: BearerAuth) -> Result<VerifyResponse, VerifyErrors> {
        verify::verify(auth.0)
    }
}
