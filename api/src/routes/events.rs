//! `/api/v1/auth/events`: the caller's own audit trail.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use portcullis_domain::audit::{AuthEvent, AuthEventKind};
use portcullis_domain::error::Failure;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::http::security::BearerAuth;
use crate::problem::problem_responses;
use crate::routes::common::{ApiTags, failure};
use crate::state::AppState;

/// The kind of an audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum EventType {
    Signup,
    LoginSucceeded,
    LoginFailed,
    AccountLocked,
    TokenRefreshed,
    RefreshTokenReuseDetected,
    Logout,
    SessionRevoked,
    RateLimitHit,
    AccessTokenRejected,
    EmailVerified,
    VerificationEmailSent,
    PasswordResetRequested,
    PasswordResetCompleted,
    PasswordChanged,
    EmailChangeRequested,
    EmailChanged,
    AccountDeleted,
    AccountExported,
    SecondFactorRequired,
    SecondFactorFailed,
    SecondFactorEnabled,
    SecondFactorDisabled,
    RecoveryCodesRegenerated,
    RecoveryCodeUsed,
}

impl EventType {
    fn to_domain(self) -> AuthEventKind {
        match self {
            Self::Signup => AuthEventKind::SignUp,
            Self::LoginSucceeded => AuthEventKind::LoginSucceeded,
            Self::LoginFailed => AuthEventKind::LoginFailed,
            Self::AccountLocked => AuthEventKind::AccountLocked,
            Self::TokenRefreshed => AuthEventKind::TokenRefreshed,
            Self::RefreshTokenReuseDetected => AuthEventKind::RefreshTokenReuseDetected,
            Self::Logout => AuthEventKind::Logout,
            Self::SessionRevoked => AuthEventKind::SessionRevoked,
            Self::RateLimitHit => AuthEventKind::RateLimitHit,
            Self::AccessTokenRejected => AuthEventKind::AccessTokenRejected,
            Self::EmailVerified => AuthEventKind::EmailVerified,
            Self::VerificationEmailSent => AuthEventKind::VerificationEmailSent,
            Self::PasswordResetRequested => AuthEventKind::PasswordResetRequested,
            Self::PasswordResetCompleted => AuthEventKind::PasswordResetCompleted,
            Self::PasswordChanged => AuthEventKind::PasswordChanged,
            Self::EmailChangeRequested => AuthEventKind::EmailChangeRequested,
            Self::EmailChanged => AuthEventKind::EmailChanged,
            Self::AccountDeleted => AuthEventKind::AccountDeleted,
            Self::AccountExported => AuthEventKind::AccountExported,
            Self::SecondFactorRequired => AuthEventKind::SecondFactorRequired,
            Self::SecondFactorFailed => AuthEventKind::SecondFactorFailed,
            Self::SecondFactorEnabled => AuthEventKind::SecondFactorEnabled,
            Self::SecondFactorDisabled => AuthEventKind::SecondFactorDisabled,
            Self::RecoveryCodesRegenerated => AuthEventKind::RecoveryCodesRegenerated,
            Self::RecoveryCodeUsed => AuthEventKind::RecoveryCodeUsed,
        }
    }

    fn from_domain(kind: AuthEventKind) -> Self {
        match kind {
            AuthEventKind::SignUp => Self::Signup,
            AuthEventKind::LoginSucceeded => Self::LoginSucceeded,
            AuthEventKind::LoginFailed => Self::LoginFailed,
            AuthEventKind::AccountLocked => Self::AccountLocked,
            AuthEventKind::TokenRefreshed => Self::TokenRefreshed,
            AuthEventKind::RefreshTokenReuseDetected => Self::RefreshTokenReuseDetected,
            AuthEventKind::Logout => Self::Logout,
            AuthEventKind::SessionRevoked => Self::SessionRevoked,
            AuthEventKind::RateLimitHit => Self::RateLimitHit,
            AuthEventKind::AccessTokenRejected => Self::AccessTokenRejected,
            AuthEventKind::EmailVerified => Self::EmailVerified,
            AuthEventKind::VerificationEmailSent => Self::VerificationEmailSent,
            AuthEventKind::PasswordResetRequested => Self::PasswordResetRequested,
            AuthEventKind::PasswordResetCompleted => Self::PasswordResetCompleted,
            AuthEventKind::PasswordChanged => Self::PasswordChanged,
            AuthEventKind::EmailChangeRequested => Self::EmailChangeRequested,
            AuthEventKind::EmailChanged => Self::EmailChanged,
            AuthEventKind::AccountDeleted => Self::AccountDeleted,
            AuthEventKind::AccountExported => Self::AccountExported,
            AuthEventKind::SecondFactorRequired => Self::SecondFactorRequired,
            AuthEventKind::SecondFactorFailed => Self::SecondFactorFailed,
            AuthEventKind::SecondFactorEnabled => Self::SecondFactorEnabled,
            AuthEventKind::SecondFactorDisabled => Self::SecondFactorDisabled,
            AuthEventKind::RecoveryCodesRegenerated => Self::RecoveryCodesRegenerated,
            AuthEventKind::RecoveryCodeUsed => Self::RecoveryCodeUsed,
        }
    }
}

/// Whether the attempt succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum EventOutcome {
    Success,
    Failure,
}

/// One audit event of the caller. Optional fields are absent when unknown.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EventBody {
    /// Time-ordered id; also the page cursor.
    pub id: Uuid,
    /// When it happened (UTC).
    pub occurred_at: OffsetDateTime,
    #[oai(rename = "type")]
    pub type_: EventType,
    pub outcome: EventOutcome,
    /// The session concerned, if any.
    pub session_id: Option<Uuid>,
    /// The client address of the request.
    pub client_ip: Option<String>,
    /// The user agent of the request (bounded).
    pub user_agent: Option<String>,
    /// The request's `X-Request-Id`.
    pub request_id: Option<String>,
    /// The W3C trace id of the request, to find it in a tracing backend.
    pub trace_id: Option<String>,
}

impl From<AuthEvent> for EventBody {
    fn from(event: AuthEvent) -> Self {
        Self {
            id: event.id,
            occurred_at: event.at,
            type_: EventType::from_domain(event.kind),
            outcome: match event.outcome {
                portcullis_domain::audit::Outcome::Success => EventOutcome::Success,
                portcullis_domain::audit::Outcome::Failure => EventOutcome::Failure,
            },
            session_id: event.session_id.map(|id| id.as_uuid()),
            client_ip: event.client_ip,
            user_agent: event.user_agent,
            request_id: event.request_id,
            trace_id: event.trace_id,
        }
    }
}

/// A page of the caller's events, newest first.
#[derive(Debug, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct EventPageBody {
    /// The events of this page.
    pub items: Vec<EventBody>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_cursor: Option<Uuid>,
}

impl EventBody {
    /// An event as the document shows it.
    pub fn example_value() -> Self {
        Self {
            id: Uuid::nil(),
            occurred_at: OffsetDateTime::UNIX_EPOCH,
            type_: EventType::LoginSucceeded,
            outcome: EventOutcome::Success,
            session_id: Some(Uuid::nil()),
            client_ip: Some("203.0.113.7".to_owned()),
            user_agent: Some("Mozilla/5.0".to_owned()),
            request_id: Some("6f1c2c9e-4a43-4d0b-9d0c-2f2f0a0c9d11".to_owned()),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
        }
    }
}

impl poem_openapi::types::Example for EventPageBody {
    fn example() -> Self {
        Self {
            items: vec![EventBody {
                id: Uuid::nil(),
                occurred_at: OffsetDateTime::UNIX_EPOCH,
                type_: EventType::LoginSucceeded,
                outcome: EventOutcome::Success,
                session_id: Some(Uuid::nil()),
                client_ip: Some("203.0.113.7".to_owned()),
                user_agent: Some("Mozilla/5.0".to_owned()),
                request_id: Some("6f1c2c9e-4a43-4d0b-9d0c-2f2f0a0c9d11".to_owned()),
                trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
            }],
            next_cursor: None,
        }
    }
}

#[derive(ApiResponse)]
pub enum EventsResponse {
    /// A page of the caller's events.
    #[oai(status = 200)]
    Ok(Json<EventPageBody>),
}

problem_responses!(EventsErrors {
    BadRequest = 400 => "A parameter is malformed.",
    Unauthorized = 401 => "No valid bearer access token (`invalid_token`).",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The database is unreachable.",
});

impl From<Failure> for EventsErrors {
    fn from(error: Failure) -> Self {
        failure(&error).into()
    }
}

/// Audit operations.
#[derive(Default)]
pub struct EventsApi;

#[OpenApi(prefix_path = "/api/v1/auth", tag = "ApiTags::Auth")]
impl EventsApi {
    /// List my auth events
    ///
    /// The caller's own audit trail (sign-up, log-ins, refreshes, logouts,
    /// revocations, lockouts...), newest first, by pages. Internal reasons
    /// (why a log-in failed, why a token was refused) are kept for operators
    /// and not shown here.
    #[oai(path = "/events", method = "get", operation_id = "listAuthEvents")]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
        /// Only events of this type.
        #[oai(name = "type")]
        type_: Query<Option<EventType>>,
        /// The `next_cursor` of the previous page.
        before: Query<Option<Uuid>>,
        /// Page size, 1 to 100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
    ) -> Result<EventsResponse, EventsErrors> {
        let kinds = type_.0.map(EventType::to_domain).into_iter().collect();
        let page = state
            .audit_log
            .mine(&auth.0, kinds, before.0, u64::from(limit.0.unwrap_or(20)))
            .await?;
        Ok(EventsResponse::Ok(Json(EventPageBody {
            items: page.items.into_iter().map(EventBody::from).collect(),
            next_cursor: page.next_cursor,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::testing::{answer, failure_cases};

    #[tokio::test]
    async fn every_events_failure_has_one_status_code_and_retry_after() {
        let cases = failure_cases();
        for (error, expected) in cases {
            let shown = format!("{error:?}");
            assert_eq!(answer(EventsErrors::from(error)).await, expected, "{shown}");
        }
    }

    #[test]
    fn every_event_type_maps_both_ways() {
        for kind in [
            EventType::Signup,
            EventType::LoginSucceeded,
            EventType::LoginFailed,
            EventType::AccountLocked,
            EventType::TokenRefreshed,
            EventType::RefreshTokenReuseDetected,
            EventType::Logout,
            EventType::SessionRevoked,
            EventType::RateLimitHit,
            EventType::AccessTokenRejected,
        ] {
            assert_eq!(EventType::from_domain(kind.to_domain()), kind);
        }
    }
}
