//! `/api/v1/auth`: sign up, log in, refresh, log out, verify.

use std::sync::Arc;

use poem::Request;
use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::types::Password as PasswordField;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use portcullis_domain::auth::{LogInError, LogoutScope, RefreshError, SignUpError};
use portcullis_domain::password::Password;
use portcullis_domain::user::Email;
use uuid::Uuid;

use crate::http::middleware::request_scope::request_context;
use crate::http::security::BearerAuth;
use crate::problem::{ApiError, problem_responses};
use crate::routes::common::{ApiTags, NO_STORE, TokenPairBody, failure, rate_limited};
use crate::state::AppState;

/// Credentials for sign-up and log-in.
#[derive(Debug, Object)]
#[oai(example)]
pub struct Credentials {
    /// An email address; it is trimmed and lowercased.
    #[oai(validator(max_length = 320))]
    pub email: String,
    /// 15 to 128 characters (by default); spaces and emoji welcome; not a
    /// common password; must not contain the email's name part.
    #[oai(validator(max_length = 4096))]
    pub password: PasswordField,
}

impl Credentials {
    fn example_value() -> Self {
        Self {
            email: "alice@example.com".to_owned(),
            password: PasswordField("correct horse battery staple 42".to_owned()),
        }
    }

    fn email(&self) -> Result<Email, ApiError> {
        Email::parse(&self.email).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_email",
                e.to_string(),
            )
        })
    }
}

/// A refresh token to exchange.
#[derive(Debug, Object)]
#[oai(example)]
pub struct RefreshRequest {
    /// The refresh token of the latest token pair.
    #[oai(validator(max_length = 4096))]
    pub refresh_token: String,
}

impl RefreshRequest {
    fn example_value() -> Self {
        Self {
            refresh_token: "q3Jk0yq1yVbqQm3a8mF6Qm1b0Jm8u8g8m2t2u3vYc8w".to_owned(),
        }
    }
}

/// Which sessions to end.
#[derive(Debug, Clone, Copy, Enum, Default)]
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

/// Who a valid access token belongs to.
#[derive(Debug, Object)]
#[oai(example)]
pub struct VerifyBody {
    /// The token's subject (`sub`), the user's id.
    pub user_id: Uuid,
    /// The token's session (`sid`).
    pub session_id: Uuid,
    /// When the presented access token expires.
    pub expires_at: time::OffsetDateTime,
}

impl VerifyBody {
    fn example_value() -> Self {
        Self {
            user_id: Uuid::nil(),
            session_id: Uuid::nil(),
            expires_at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }
}

#[derive(ApiResponse)]
pub enum SignUpResponse {
    /// The account was created; here is its first token pair.
    #[oai(status = 201)]
    Created(Json<TokenPairBody>, #[oai(header = "Cache-Control")] String),
}

#[derive(ApiResponse)]
pub enum TokenResponse {
    /// A new token pair.
    #[oai(status = 200)]
    Ok(Json<TokenPairBody>, #[oai(header = "Cache-Control")] String),
}

#[derive(ApiResponse)]
pub enum LogoutResponse {
    /// The sessions are revoked: their refresh and access tokens no longer work.
    #[oai(status = 200)]
    Ok(Json<LogoutBody>),
}

#[derive(ApiResponse)]
pub enum VerifyResponse {
    /// The token is valid; the identity is also in `X-User-Id` and `X-Session-Id`.
    #[oai(status = 200)]
    Ok(
        Json<VerifyBody>,
        #[oai(header = "X-User-Id")] String,
        #[oai(header = "X-Session-Id")] String,
    ),
}

problem_responses!(SignUpErrors {
    BadRequest = 400 => "The body is not valid JSON or misses a field.",
    Conflict = 409 => "The email is already registered (`email_taken`).",
    PayloadTooLarge = 413 => "The body exceeds 16 KiB.",
    UnsupportedMediaType = 415 => "The body is not `application/json`.",
    Unprocessable = 422 => "The email is invalid or the password breaks the policy; `code` names the rule.",
    TooManyRequests = 429, retry_after: u32 => "Too many sign-ups from this client.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The service is overloaded or its database is unreachable.",
});

problem_responses!(LogInErrors {
    BadRequest = 400 => "The body is not valid JSON or misses a field.",
    Unauthorized = 401 => "The email or password is incorrect (`invalid_credentials`), whatever the cause.",
    PayloadTooLarge = 413 => "The body exceeds 16 KiB.",
    UnsupportedMediaType = 415 => "The body is not `application/json`.",
    Unprocessable = 422 => "The email is not a valid address.",
    TooManyRequests = 429, retry_after: u32 => "Too many attempts.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The service is overloaded or its database is unreachable.",
});

problem_responses!(RefreshErrors {
    BadRequest = 400 => "The body is not valid JSON or misses a field.",
    Unauthorized = 401 => "The refresh token is unknown, expired, revoked or reused (`invalid_grant`).",
    PayloadTooLarge = 413 => "The body exceeds 16 KiB.",
    UnsupportedMediaType = 415 => "The body is not `application/json`.",
    TooManyRequests = 429, retry_after: u32 => "Too many refreshes from this client.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The database is unreachable.",
});

problem_responses!(LogoutErrors {
    BadRequest = 400 => "The scope is not one of `this`, `all`, `others`.",
    Unauthorized = 401 => "No valid bearer access token (`invalid_token`).",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The database is unreachable.",
});

problem_responses!(VerifyErrors {
    Unauthorized = 401 => "No valid bearer access token (`invalid_token`).",
    Internal = 500 => "An internal error.",
});

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
        let email = body.email()?;
        let password = Password::new(body.0.password.0);
        match state
            .auth
            .sign_up(email, password, &request_context(req))
            .await
        {
            Ok(pair) => Ok(SignUpResponse::Created(
                Json(TokenPairBody::from(&pair)),
                NO_STORE.to_owned(),
            )),
            Err(SignUpError::WeakPassword(rejection)) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                rejection.code(),
                rejection.to_string(),
            )
            .into()),
            Err(SignUpError::EmailTaken) => Err(ApiError::new(
                StatusCode::CONFLICT,
                "email_taken",
                "An account with this email already exists.",
            )
            .into()),
            Err(SignUpError::RateLimited { retry_after_secs }) => {
                Err(rate_limited(retry_after_secs).into())
            }
            Err(SignUpError::Failure(error)) => Err(failure(&error).into()),
        }
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
    ) -> Result<TokenResponse, LogInErrors> {
        let email = body.email()?;
        let password = Password::new(body.0.password.0);
        let started = std::time::Instant::now();
        let result = state
            .auth
            .log_in(email, password, &request_context(req))
            .await;
        let outcome = match &result {
            Ok(_) => "success",
            Err(LogInError::InvalidCredentials) => "invalid_credentials",
            Err(LogInError::RateLimited { .. }) => "rate_limited",
            Err(LogInError::Failure(_)) => "error",
        };
        state.metrics.login_duration.record(
            started.elapsed().as_secs_f64(),
            &[opentelemetry::KeyValue::new("outcome", outcome)],
        );
        match result {
            Ok(pair) => Ok(TokenResponse::Ok(
                Json(TokenPairBody::from(&pair)),
                NO_STORE.to_owned(),
            )),
            Err(LogInError::InvalidCredentials) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "The email or password is incorrect.",
            )
            .into()),
            Err(LogInError::RateLimited { retry_after_secs }) => {
                Err(rate_limited(retry_after_secs).into())
            }
            Err(LogInError::Failure(error)) => Err(failure(&error).into()),
        }
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
    ) -> Result<TokenResponse, RefreshErrors> {
        let started = std::time::Instant::now();
        let result = state
            .auth
            .refresh(&body.refresh_token, &request_context(req))
            .await;
        let outcome = match &result {
            Ok(_) => "success",
            Err(RefreshError::InvalidGrant) => "invalid_grant",
            Err(RefreshError::Reused { .. }) => "reuse_detected",
            Err(RefreshError::RateLimited { .. }) => "rate_limited",
            Err(RefreshError::Failure(_)) => "error",
        };
        state.metrics.refresh_duration.record(
            started.elapsed().as_secs_f64(),
            &[opentelemetry::KeyValue::new("outcome", outcome)],
        );
        match result {
            Ok(pair) => Ok(TokenResponse::Ok(
                Json(TokenPairBody::from(&pair)),
                NO_STORE.to_owned(),
            )),
            Err(RefreshError::InvalidGrant | RefreshError::Reused { .. }) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_grant",
                "The refresh token is invalid, expired or revoked.",
            )
            .into()),
            Err(RefreshError::RateLimited { retry_after_secs }) => {
                Err(rate_limited(retry_after_secs).into())
            }
            Err(RefreshError::Failure(error)) => Err(failure(&error).into()),
        }
    }

    /// Log out
    ///
    /// Revokes this session (`scope=this`, the default), every session
    /// (`all`) or every other session (`others`). Refresh tokens and access
    /// tokens of revoked sessions are refused from then on.
    #[oai(path = "/logout", method = "post", operation_id = "logOut")]
    async fn log_out(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        auth: BearerAuth,
        /// Which sessions to end.
        scope: Query<Option<LogoutScopeParam>>,
    ) -> Result<LogoutResponse, LogoutErrors> {
        let scope = match scope.0.unwrap_or_default() {
            LogoutScopeParam::This => LogoutScope::This,
            LogoutScopeParam::All => LogoutScope::All,
            LogoutScopeParam::Others => LogoutScope::Others,
        };
        let revoked = state
            .auth
            .log_out(&auth.0, scope, &request_context(req))
            .await
            .map_err(|e| failure(&e))?;
        Ok(LogoutResponse::Ok(Json(LogoutBody {
            revoked_sessions: revoked.iter().map(|id| id.as_uuid()).collect(),
        })))
    }

    /// Verify an access token
    ///
    /// Forward-auth for gateways (Traefik `forwardAuth`, nginx `auth_request`):
    /// 200 with `X-User-Id` and `X-Session-Id` for a valid, unrevoked bearer
    /// token, 401 otherwise. Needs no database round trip.
    #[oai(path = "/verify", method = "get", operation_id = "verifyToken")]
    async fn verify(&self, auth: BearerAuth) -> Result<VerifyResponse, VerifyErrors> {
        let principal = auth.0;
        Ok(VerifyResponse::Ok(
            Json(VerifyBody {
                user_id: principal.user_id.as_uuid(),
                session_id: principal.session_id.as_uuid(),
                expires_at: principal.expires_at,
            }),
            principal.user_id.to_string(),
            principal.session_id.to_string(),
        ))
    }
}

impl poem_openapi::types::Example for Credentials {
    fn example() -> Self {
        Self::example_value()
    }
}

impl poem_openapi::types::Example for RefreshRequest {
    fn example() -> Self {
        Self::example_value()
    }
}

impl poem_openapi::types::Example for LogoutBody {
    fn example() -> Self {
        Self::example_value()
    }
}

impl poem_openapi::types::Example for VerifyBody {
    fn example() -> Self {
        Self::example_value()
    }
}
