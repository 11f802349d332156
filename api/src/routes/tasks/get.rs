//! `GET /api/v1/tasks/{id}`: one of the caller's tasks.

use poem_openapi::ApiResponse;
use poem_openapi::payload::Json;
use portcullis_domain::context::Principal;
use portcullis_domain::ids::TaskId;
use portcullis_domain::task::TaskService;
use uuid::Uuid;

use crate::routes::tasks::common::{ReadErrors, TaskBody};

#[derive(ApiResponse)]
pub enum GetResponse {
    /// The task.
    #[oai(status = 200)]
    Ok(Json<TaskBody>),
}

/// The caller's task `id`; another user's answers 404.
pub async fn get(
    tasks: &TaskService,
    caller: &Principal,
    id: Uuid,
) -> Result<GetResponse, ReadErrors> {
    let task = tasks.get(caller.user_id, TaskId::from_uuid(id)).await?;
    Ok(GetResponse::Ok(Json(task.into())))
}
