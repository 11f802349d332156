//! `GET /api/v1/auth/verify`: forward-auth for gateways. The bearer scheme
//! has checked the token; this only says whose it is.

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use portcullis_domain::context::Principal;
use uuid::Uuid;

use crate::problem::problem_responses;

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
    /// What the session's user proved (RFC 8176 `amr`).
    pub amr: Vec<String>,
    /// When they last proved it (`auth_time`).
    pub auth_time: time::OffsetDateTime,
}

impl VerifyBody {
    fn example_value() -> Self {
        Self {
            user_id: Uuid::nil(),
            session_id: Uuid::nil(),
            expires_at: time::OffsetDateTime::UNIX_EPOCH,
            amr: vec!["pwd".to_owned(), "otp".to_owned(), "mfa".to_owned()],
            auth_time: time::OffsetDateTime::UNIX_EPOCH,
        }
    }
}

impl poem_openapi::types::Example for VerifyBody {
    fn example() -> Self {
        Self::example_value()
    }
}

#[derive(ApiResponse)]
pub enum VerifyResponse {
    /// The token is valid; the identity is also in `X-User-Id` and `X-Session-Id`.
    #[oai(status = 200)]
    Ok(
        Json<VerifyBody>,
        #[oai(header = "X-User-Id")] String,
        #[oai(header = "X-Session-Id")] String,
        /// What the session's user proved (RFC 8176 `amr`), comma-separated:
        /// `pwd`, or `pwd,otp,mfa` after a second factor.
        #[oai(header = "X-Auth-Methods")]
        String,
    ),
}

// No domain error: every refusal is the bearer scheme's 401.
problem_responses!(VerifyErrors {
    Unauthorized = 401 => "No valid bearer access token (`invalid_token`).",
    Internal = 500 => "An internal error.",
});

/// The identity of `principal`, in the body and in headers.
pub fn verify(principal: Principal) -> Result<VerifyResponse, VerifyErrors> {
    let amr: Vec<String> = principal
        .amr
        .to_vec()
        .into_iter()
        .map(|m| m.as_str().to_owned())
        .collect();
    let header = amr.join(",");
    Ok(VerifyResponse::Ok(
        Json(VerifyBody {
            user_id: principal.user_id.as_uuid(),
            session_id: principal.session_id.as_uuid(),
            expires_at: principal.expires_at,
            amr,
            auth_time: principal.auth_time,
        }),
        principal.user_id.to_string(),
        principal.session_id.to_string(),
        header,
    ))
}
