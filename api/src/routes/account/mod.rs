//! The account lifecycle by email: `/api/v1/auth/email/verify`,
//! `/api/v1/auth/password/{forgot,reset}` and `/api/v1/users/me/{email,
//! email/verification,password,delete,export}`.
//!
//! `AccountApi` is the document's view of the operations; each handler hands
//! its parsed input to the use-case file of the same name, which holds the
//! bodies, the mapping of the domain error and its test. `pages` serves the
//! small HTML pages the emailed links open (not part of the document).

pub mod change_email;
pub mod change_password;
pub mod delete;
pub mod export;
pub mod forgot_password;
pub mod pages;
pub mod resend_verification;
pub mod reset_password;
pub mod verify_email;

use std::sync::Arc;

use poem::Request;
use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use portcullis_domain::one_time::{ENCODED_LEN, OneTimeToken};
use portcullis_domain::password::{Password, PasswordPolicy};

use crate::http::middleware::request_scope::request_context;
use crate::http::security::BearerAuth;
use crate::problem::ApiError;
use crate::routes::bounded::BoundedSecret;
use crate::routes::common::ApiTags;
use crate::state::AppState;

/// A one-time token as sent (its exact shape is checked on parsing, so a
/// wrong one gets the same `invalid_token` as a used one).
pub type TokenField = BoundedSecret<1, 128>;

/// A password field: the document's floor and ceiling (see `credentials`).
pub type PasswordField =
    BoundedSecret<{ PasswordPolicy::MIN_LEN_FLOOR }, { PasswordPolicy::MAX_LEN }>;

/// A current password as presented for a check: any length up to the
/// ceiling (a too-short one is simply wrong).
pub type CurrentPasswordField = BoundedSecret<1, { PasswordPolicy::MAX_LEN }>;

/// The body of every 202 of these operations: the same text whatever
/// happened behind it.
#[derive(Debug, Object)]
#[oai(example)]
pub struct AcceptedBody {
    /// What happens next, in words.
    pub message: String,
}

impl AcceptedBody {
    pub fn new(message: &str) -> Json<Self> {
        Json(Self {
            message: message.to_owned(),
        })
    }
}

impl poem_openapi::types::Example for AcceptedBody {
    fn example() -> Self {
        Self {
            message: "A link is on its way.".to_owned(),
        }
    }
}

/// A token as the document's examples show it.
pub const EXAMPLE_TOKEN: &str = "9ZyGKrL0wqH5mJ3vX8c1Tn4bQe7pAs2uDf6hWk0oYiR";

/// The answer to a token that is malformed, unknown, used, voided or expired.
pub fn invalid_token() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_token",
        "This link is invalid, was already used or has expired. Ask for a new one.",
    )
}

/// The answer to a wrong current password.
pub fn wrong_password() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "wrong_password",
        "The current password is incorrect.",
    )
}

/// The answer when the caller's account was deleted meanwhile.
pub fn account_gone() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "The account no longer exists.",
    )
}

/// Parses a token field; any malformed token is `invalid_token`.
pub fn parse_token(field: TokenField) -> Result<OneTimeToken, ApiError> {
    if field.as_str().len() != ENCODED_LEN {
        return Err(invalid_token());
    }
    OneTimeToken::parse(field.as_str()).map_err(|_| invalid_token())
}

/// A password field as a domain value (policy checks are the use case's).
pub fn password(field: PasswordField) -> Password {
    Password::new(field.0)
}

/// Account lifecycle operations.
#[derive(Default)]
pub struct AccountApi;

#[OpenApi(tag = "ApiTags::Account")]
impl AccountApi {
    /// Confirm an email address
    ///
    /// Consumes the token of a verification link (sent at sign-up or on
    /// request) or of an email-change link (sent to the new address). The
    /// address is confirmed; an email change applies now, the old address
    /// gets a notice and every other session of the account ends. Each token
    /// works once.
    #[oai(
        path = "/api/v1/auth/email/verify",
        method = "post",
        operation_id = "verifyEmail"
    )]
    async fn verify_email(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        body: Json<verify_email::VerifyEmailRequest>,
    ) -> Result<verify_email::VerifyEmailResponse, verify_email::VerifyEmailErrors> {
        verify_email::verify_email(&state.account, &request_context(req), body.0).await
    }

    /// Resend the verification email
    ///
    /// Sends a new verification link to the caller's address (the older link
    /// stops working). At most once a minute.
    #[oai(
        path = "/api/v1/users/me/email/verification",
        method = "post",
        operation_id = "resendVerificationEmail"
    )]
    async fn resend_verification(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        auth: BearerAuth,
    ) -> Result<resend_verification::ResendResponse, resend_verification::ResendErrors> {
        resend_verification::resend(&state.account, &request_context(req), &auth.0).await
    }

    /// Ask for a password reset link
    ///
    /// Always 202 with the same body, in the same time, whether or not an
    /// account has this address: only the address's owner learns the answer,
    /// by email. The link works once, for 30 minutes; a new request voids the
    /// older link. Requests are limited per address and per client, silently.
    #[oai(
        path = "/api/v1/auth/password/forgot",
        method = "post",
        operation_id = "forgotPassword"
    )]
    async fn forgot_password(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        body: Json<forgot_password::ForgotPasswordRequest>,
    ) -> Result<forgot_password::ForgotPasswordResponse, forgot_password::ForgotPasswordErrors>
    {
        forgot_password::forgot_password(&state.account, &request_context(req), body.0).await
    }

    /// Reset the password
    ///
    /// Sets a new password with the token of a reset link. The password
    /// policy applies; every session of the account ends at once (access
    /// tokens included), the login lockout is lifted and a notice is emailed.
    #[oai(
        path = "/api/v1/auth/password/reset",
        method = "post",
        operation_id = "resetPassword"
    )]
    async fn reset_password(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        body: Json<reset_password::ResetPasswordRequest>,
    ) -> Result<reset_password::ResetPasswordResponse, reset_password::ResetPasswordErrors> {
        reset_password::reset_password(&state.account, &request_context(req), body.0).await
    }

    /// Change my password
    ///
    /// Needs the current password. Every other session of the account ends;
    /// this one stays. A notice is emailed.
    #[oai(
        path = "/api/v1/users/me/password",
        method = "post",
        operation_id = "changePassword"
    )]
    async fn change_password(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        auth: BearerAuth,
        body: Json<change_password::ChangePasswordRequest>,
    ) -> Result<change_password::ChangePasswordResponse, change_password::ChangePasswordErrors>
    {
        change_password::change_password(&state.account, &request_context(req), &auth.0, body.0)
            .await
    }

    /// Change my email address
    ///
    /// Needs the current password. The new address gets a confirmation link
    /// and the change applies only when it is used; the current address gets
    /// a notice. An address that another account has gets the same 202, and
    /// nothing happens.
    #[oai(
        path = "/api/v1/users/me/email",
        method = "post",
        operation_id = "changeEmail"
    )]
    async fn change_email(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        auth: BearerAuth,
        body: Json<change_email::ChangeEmailRequest>,
    ) -> Result<change_email::ChangeEmailResponse, change_email::ChangeEmailErrors> {
        change_email::change_email(&state.account, &request_context(req), &auth.0, body.0).await
    }

    /// Delete my account
    ///
    /// Needs the current password. Every session and access token stops
    /// working at once; sessions, tasks and pending links are deleted; the
    /// audit trail keeps the user id only. A notice is emailed.
    #[oai(
        path = "/api/v1/users/me/delete",
        method = "post",
        operation_id = "deleteAccount"
    )]
    async fn delete_account(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        auth: BearerAuth,
        body: Json<delete::DeleteAccountRequest>,
    ) -> Result<delete::DeleteAccountResponse, delete::DeleteAccountErrors> {
        delete::delete_account(&state.account, &request_context(req), &auth.0, body.0).await
    }

    /// Export my data
    ///
    /// Everything stored about the caller's account as one JSON document:
    /// the profile, every stored session, the audit events (newest first, at
    /// most 10,000) and the tasks. No password hash, token or secret.
    #[oai(
        path = "/api/v1/users/me/export",
        method = "get",
        operation_id = "exportAccount"
    )]
    async fn export(
        &self,
        state: Data<&Arc<AppState>>,
        req: &Request,
        auth: BearerAuth,
    ) -> Result<export::ExportResponse, export::ExportErrors> {
        export::export(&state.account, &request_context(req), &auth.0).await
    }
}
