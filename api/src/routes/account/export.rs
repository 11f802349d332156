//! `GET /api/v1/users/me/export`: everything stored about the caller.

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use portcullis_domain::account::{AccountExport, AccountService};
use portcullis_domain::context::{Principal, RequestContext};
use portcullis_domain::error::Failure;
use portcullis_domain::session::Session;
use time::OffsetDateTime;
use uuid::Uuid;

use super::account_gone;
use crate::problem::problem_responses;
use crate::routes::common::{NO_STORE, UserBody, failure};
use crate::routes::events::EventBody;
use crate::routes::mfa::status::FactorState;
use crate::routes::tasks::common::TaskBody;

/// One stored session, ended ones included.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ExportedSession {
    pub id: Uuid,
    pub created_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
    pub idle_expires_at: OffsetDateTime,
    pub absolute_expires_at: OffsetDateTime,
    /// When it was ended, if it was.
    pub revoked_at: Option<OffsetDateTime>,
    /// Why it was ended (`logout`, `password_reset`, ...), if it was.
    pub revoked_reason: Option<String>,
    pub user_agent: Option<String>,
    pub client_ip: Option<String>,
}

impl From<Session> for ExportedSession {
    fn from(session: Session) -> Self {
        Self {
            id: session.id.as_uuid(),
            created_at: session.created_at,
            last_used_at: session.last_used_at,
            idle_expires_at: session.idle_expires_at,
            absolute_expires_at: session.absolute_expires_at,
            revoked_at: session.revoked_at,
            revoked_reason: session.revoked_reason.map(|r| r.as_str().to_owned()),
            user_agent: session.client.user_agent().map(str::to_owned),
            client_ip: session.client.ip().map(str::to_owned),
        }
    }
}

/// Everything Portcullis stores about an account, without hash, token or secret.
#[derive(Debug, Object)]
#[oai(example)]
pub struct AccountExportBody {
    /// When this document was made.
    pub exported_at: OffsetDateTime,
    pub user: UserBody,
    /// Every stored session, newest first (ended sessions are deleted some
    /// time after they end).
    pub sessions: Vec<ExportedSession>,
    /// The account's audit events, newest first (at most 10,000).
    pub events: Vec<EventBody>,
    pub tasks: Vec<TaskBody>,
    /// The state of the second factors (never a seed or a code).
    pub second_factors: ExportedSecondFactors,
}

/// What an export says of the second factors.
#[derive(Debug, Object)]
pub struct ExportedSecondFactors {
    pub totp: FactorState,
    pub recovery_codes_left: u32,
}

impl poem_openapi::types::Example for AccountExportBody {
    fn example() -> Self {
        let at = OffsetDateTime::UNIX_EPOCH;
        Self {
            exported_at: at,
            user: UserBody::example_value(),
            sessions: vec![ExportedSession {
                id: Uuid::nil(),
                created_at: at,
                last_used_at: at,
                idle_expires_at: at,
                absolute_expires_at: at,
                revoked_at: Some(at),
                revoked_reason: Some("logout".to_owned()),
                user_agent: Some("Mozilla/5.0".to_owned()),
                client_ip: Some("203.0.113.7".to_owned()),
            }],
            events: vec![EventBody::example_value()],
            tasks: vec![<TaskBody as poem_openapi::types::Example>::example()],
            second_factors: ExportedSecondFactors {
                totp: FactorState::Active,
                recovery_codes_left: 10,
            },
        }
    }
}

impl From<AccountExport> for AccountExportBody {
    fn from(export: AccountExport) -> Self {
        Self {
            exported_at: export.exported_at,
            user: UserBody::from(&export.profile),
            sessions: export.sessions.into_iter().map(Into::into).collect(),
            events: export.events.into_iter().map(Into::into).collect(),
            tasks: export.tasks.into_iter().map(Into::into).collect(),
            second_factors: ExportedSecondFactors {
                totp: FactorState::of(
                    export.second_factors.totp_active,
                    export.second_factors.totp_pending,
                ),
                recovery_codes_left: export.second_factors.recovery_codes_left,
            },
        }
    }
}

#[derive(ApiResponse)]
pub enum ExportResponse {
    /// The caller's data.
    #[oai(status = 200)]
    Ok(
        Json<AccountExportBody>,
        #[oai(header = "Cache-Control")] String,
    ),
}

problem_responses!(ExportErrors {
    Unauthorized = 401 => "No valid bearer access token (`invalid_token`).",
    NotFound = 404 => "The account no longer exists.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The database is unreachable.",
});

impl From<Failure> for ExportErrors {
    fn from(error: Failure) -> Self {
        failure(&error).into()
    }
}

/// The caller's data as one document.
pub async fn export(
    account: &AccountService,
    ctx: &RequestContext,
    caller: &Principal,
) -> Result<ExportResponse, ExportErrors> {
    match account.export(caller, ctx).await? {
        Some(export) => Ok(ExportResponse::Ok(
            Json(AccountExportBody::from(export)),
            NO_STORE.to_owned(),
        )),
        None => Err(account_gone().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::testing::{answer, failure_cases};

    #[tokio::test]
    async fn every_export_failure_has_one_status_and_code() {
        for (error, expected) in failure_cases() {
            let shown = format!("{error:?}");
            assert_eq!(answer(ExportErrors::from(error)).await, expected, "{shown}");
        }
    }
}
