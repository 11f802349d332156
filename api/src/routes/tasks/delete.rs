//! `DELETE /api/v1/tasks/{id}`: delete one of the caller's tasks.

use poem_openapi::ApiResponse;
use portcullis_domain::context::Principal;
use portcullis_domain::ids::TaskId;
use portcullis_domain::task::TaskService;
use uuid::Uuid;

use crate::routes::tasks::common::ReadErrors;

#[derive(ApiResponse)]
pub enum DeletedResponse {
    /// The task was deleted.
    #[oai(status = 204)]
    NoContent,
}

/// Deletes the caller's task `id`; another user's answers 404.
pub async fn delete(
    tasks: &TaskService,
    caller: &Principal,
    id: Uuid,
) -> Result<DeletedResponse, ReadErrors> {
    tasks.delete(caller.user_id, TaskId::from_uuid(id)).await?;
    Ok(DeletedResponse::NoContent)
}
