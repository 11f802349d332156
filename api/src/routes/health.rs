//! `/health`: liveness and readiness probes.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use crate::problem::{ApiError, problem_responses};
use crate::routes::common::ApiTags;
use crate::state::AppState;

/// A probe result.
#[derive(Debug, Object)]
#[oai(example)]
pub struct HealthBody {
    /// `ok`.
    pub status: String,
}

impl HealthBody {
    fn example_value() -> Self {
        Self {
            status: "ok".to_owned(),
        }
    }
}

#[derive(ApiResponse)]
pub enum HealthResponse {
    /// The probe passed.
    #[oai(status = 200)]
    Ok(Json<HealthBody>),
}

problem_responses!(ReadyErrors {
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The database is unreachable.",
});

/// Probe operations.
#[derive(Default)]
pub struct HealthApi;

#[OpenApi(prefix_path = "/health", tag = "ApiTags::Health")]
impl HealthApi {
    /// Liveness probe
    ///
    /// 200 while the process serves requests; checks nothing else.
    #[oai(path = "/live", method = "get", operation_id = "getLiveness")]
    async fn live(&self) -> HealthResponse {
        HealthResponse::Ok(Json(HealthBody {
            status: "ok".to_owned(),
        }))
    }

    /// Readiness probe
    ///
    /// 200 when the database answers, 503 otherwise.
    #[oai(path = "/ready", method = "get", operation_id = "getReadiness")]
    async fn ready(&self, state: Data<&Arc<AppState>>) -> Result<HealthResponse, ReadyErrors> {
        match state.readiness.check().await {
            Ok(()) => Ok(HealthResponse::Ok(Json(HealthBody {
                status: "ok".to_owned(),
            }))),
            Err(error) => {
                tracing::warn!(error = %error, "readiness check failed");
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "The database is unreachable.",
                )
                .retry_after(2)
                .into())
            }
        }
    }
}

impl poem_openapi::types::Example for HealthBody {
    fn example() -> Self {
        Self::example_value()
    }
}
