//! `POST /api/v1/users/me/mfa/totp`: start a TOTP enrolment.

use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use portcullis_domain::context::{Principal, RequestContext};
use portcullis_domain::mfa::EnrolTotpError;
use portcullis_domain::mfa::MfaService;
use portcullis_domain::password::Password;
use secrecy::ExposeSecret as _;

use crate::problem::{ApiError, problem_responses};
use crate::routes::account::{CurrentPasswordField, account_gone, wrong_password};
use crate::routes::bounded::Bounded;
use crate::routes::common::{NO_STORE, failure, rate_limited};

/// The current password.
#[derive(Debug, Object)]
#[oai(example)]
pub struct EnrolTotpRequest {
    pub current_password: CurrentPasswordField,
}

impl poem_openapi::types::Example for EnrolTotpRequest {
    fn example() -> Self {
        Self {
            current_password: Bounded("correct horse battery staple 42".to_owned()),
        }
    }
}

/// What an authenticator app needs, shown this once.
#[derive(Debug, Object)]
#[oai(example)]
pub struct TotpEnrolmentBody {
    /// The seed in base32 (160 bits), to type in by hand.
    pub secret: String,
    /// `otpauth://totp/...`: SHA-1, 6 digits, 30 s.
    pub otpauth_uri: String,
    /// The URI as a QR code: an SVG document.
    pub qr_svg: String,
}

impl poem_openapi::types::Example for TotpEnrolmentBody {
    fn example() -> Self {
        Self {
            secret: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".to_owned(),
            otpauth_uri: "otpauth://totp/Portcullis:alice%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Portcullis".to_owned(),
            qr_svg: "<?xml version=\"1.0\" standalone=\"yes\"?><svg xmlns=\"http://www.w3.org/2000/svg\">...</svg>".to_owned(),
        }
    }
}

#[derive(ApiResponse)]
pub enum EnrolTotpResponse {
    /// A pending factor: confirm it with a first code.
    #[oai(status = 201)]
    Created(
        Json<TotpEnrolmentBody>,
        #[oai(header = "Cache-Control")] String,
    ),
}

problem_responses!(EnrolTotpErrors {
    BadRequest = 400 => "The body is not valid JSON or misses a field.",
    Unauthorized = 401 => "No valid bearer access token (`invalid_token`).",
    Forbidden = 403 => "The current password is incorrect (`wrong_password`).",
    NotFound = 404 => "The account no longer exists.",
    Conflict = 409 => "TOTP is active already (`already_enrolled`): turn it off first.",
    PayloadTooLarge = 413 => "The body exceeds 16 KiB.",
    UnsupportedMediaType = 415 => "The body is not `application/json`.",
    TooManyRequests = 429, retry_after: u32 => "Too many wrong passwords: the account is locked for a while.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The service is overloaded or its database is unreachable.",
});

impl From<EnrolTotpError> for EnrolTotpErrors {
    fn from(error: EnrolTotpError) -> Self {
        match error {
            EnrolTotpError::WrongPassword => wrong_password(),
            EnrolTotpError::RateLimited { retry_after_secs } => rate_limited(retry_after_secs),
            EnrolTotpError::AlreadyActive => ApiError::new(
                StatusCode::CONFLICT,
                "already_enrolled",
                "TOTP is active already; turn it off first to enrol a new app.",
            ),
            EnrolTotpError::NotFound => account_gone(),
            EnrolTotpError::Failure(error) => failure(&error),
        }
        .into()
    }
}

/// Starts the caller's TOTP enrolment.
pub async fn enrol_totp(
    mfa: &MfaService,
    ctx: &RequestContext,
    caller: &Principal,
    body: EnrolTotpRequest,
) -> Result<EnrolTotpResponse, EnrolTotpErrors> {
    let shown = mfa
        .enrol_totp(caller, Password::new(body.current_password.0), ctx)
        .await?;
    Ok(EnrolTotpResponse::Created(
        Json(TotpEnrolmentBody {
            secret: shown.secret.expose_secret().to_owned(),
            otpauth_uri: shown.otpauth_uri.expose_secret().to_owned(),
            qr_svg: shown.qr_svg.expose_secret().to_owned(),
        }),
        NO_STORE.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::testing::{Answer, answer, failure_cases};

    #[tokio::test]
    async fn every_enrol_error_has_one_status_and_code() {
        let mut cases = vec![
            (
                EnrolTotpError::WrongPassword,
                Answer::new(403, "wrong_password", None),
            ),
            (
                EnrolTotpError::RateLimited {
                    retry_after_secs: 9,
                },
                Answer::new(429, "rate_limited", Some("9")),
            ),
            (
                EnrolTotpError::AlreadyActive,
                Answer::new(409, "already_enrolled", None),
            ),
            (
                EnrolTotpError::NotFound,
                Answer::new(404, "not_found", None),
            ),
        ];
        cases.extend(failure_cases().map(|(f, a)| (EnrolTotpError::Failure(f), a)));
        for (error, expected) in cases {
            let shown = format!("{error:?}");
            assert_eq!(
                answer(EnrolTotpErrors::from(error)).await,
                expected,
                "{shown}"
            );
        }
    }
}
