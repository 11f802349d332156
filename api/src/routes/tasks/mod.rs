//! `/api/v1/tasks`: the sample protected resource. A caller sees and changes
//! only their own tasks; another user's task answers 404.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi};
use portcullis_domain::task::{
    Task, TaskDescription, TaskError, TaskId, TaskInputError, TaskPatch, TaskTitle,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::http::security::BearerAuth;
use crate::problem::{ApiError, problem_responses};
use crate::routes::common::{ApiTags, failure};
use crate::state::AppState;

/// A task.
#[derive(Debug, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct TaskBody {
    /// The task's id.
    pub id: Uuid,
    /// 1 to 200 characters.
    pub title: String,
    /// Absent when the task has no description.
    pub description: Option<String>,
    /// Whether the task is done.
    pub done: bool,
    /// When the task was created (RFC 3339, UTC).
    pub created_at: OffsetDateTime,
    /// When the task last changed (RFC 3339, UTC).
    pub updated_at: OffsetDateTime,
}

impl TaskBody {
    fn example_value() -> Self {
        Self {
            id: Uuid::nil(),
            title: "Rotate the signing key".to_owned(),
            description: Some("Before the quarterly audit".to_owned()),
            done: false,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }
}

impl From<Task> for TaskBody {
    fn from(task: Task) -> Self {
        Self {
            id: task.id.as_uuid(),
            title: task.title.as_str().to_owned(),
            description: task.description.map(|d| d.as_str().to_owned()),
            done: task.done,
            created_at: task.created_at,
            updated_at: task.updated_at,
        }
    }
}

/// A new task.
#[derive(Debug, Object)]
#[oai(example)]
pub struct NewTask {
    /// 1 to 200 characters.
    #[oai(validator(max_length = 4096))]
    pub title: String,
    /// At most 2,000 characters.
    #[oai(validator(max_length = 8192))]
    pub description: Option<String>,
}

impl NewTask {
    fn example_value() -> Self {
        Self {
            title: "Rotate the signing key".to_owned(),
            description: Some("Before the quarterly audit".to_owned()),
        }
    }
}

/// Changes to a task; absent fields stay as they are, a `null` description clears it.
#[derive(Debug, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct TaskUpdate {
    /// A new title, 1 to 200 characters.
    #[oai(validator(max_length = 4096))]
    pub title: Option<String>,
    /// A new description (at most 2,000 characters), or `null` to remove it.
    #[oai(nullable)]
    pub description: MaybeUndefined<String>,
    /// Mark the task done or not done.
    pub done: Option<bool>,
}

impl TaskUpdate {
    fn example_value() -> Self {
        Self {
            title: None,
            description: MaybeUndefined::Undefined,
            done: Some(true),
        }
    }
}

/// A page of tasks, newest first.
#[derive(Debug, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct TaskPageBody {
    /// The tasks of this page.
    pub items: Vec<TaskBody>,
    /// Pass as `before` to get the next page; absent on the last page.
    pub next_cursor: Option<Uuid>,
}

impl poem_openapi::types::Example for TaskPageBody {
    fn example() -> Self {
        Self {
            items: vec![TaskBody::example_value()],
            next_cursor: None,
        }
    }
}

#[derive(ApiResponse)]
pub enum CreatedResponse {
    /// The task was created.
    #[oai(status = 201)]
    Created(Json<TaskBody>),
}

#[derive(ApiResponse)]
pub enum TaskResponse {
    /// The task.
    #[oai(status = 200)]
    Ok(Json<TaskBody>),
}

#[derive(ApiResponse)]
pub enum PageResponse {
    /// A page of the caller's tasks.
    #[oai(status = 200)]
    Ok(Json<TaskPageBody>),
}

#[derive(ApiResponse)]
pub enum DeletedResponse {
    /// The task was deleted.
    #[oai(status = 204)]
    NoContent,
}

problem_responses!(WriteErrors {
    BadRequest = 400 => "The body is not valid JSON, misses a field, or the id is not a UUID.",
    Unauthorized = 401 => "No valid bearer access token (`invalid_token`).",
    NotFound = 404 => "No task of the caller has this id.",
    PayloadTooLarge = 413 => "The body exceeds 16 KiB.",
    UnsupportedMediaType = 415 => "The body is not `application/json`.",
    Unprocessable = 422 => "The title or description is out of bounds.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The database is unreachable.",
});

problem_responses!(ReadErrors {
    BadRequest = 400 => "A parameter is malformed.",
    Unauthorized = 401 => "No valid bearer access token (`invalid_token`).",
    NotFound = 404 => "No task of the caller has this id.",
    Internal = 500 => "An internal error.",
    Unavailable = 503, retry_after: u32 => "The database is unreachable.",
});

fn invalid(error: &TaskInputError) -> ApiError {
    let code = match error {
        TaskInputError::Title { .. } => "invalid_title",
        TaskInputError::Description { .. } => "invalid_description",
    };
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, error.to_string())
}

fn task_error(error: TaskError) -> ApiError {
    match error {
        TaskError::NotFound => ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such task."),
        TaskError::Failure(failure_) => failure(&failure_),
    }
}

/// Task operations.
#[derive(Default)]
pub struct TasksApi;

#[OpenApi(prefix_path = "/api/v1/tasks", tag = "ApiTags::Tasks")]
impl TasksApi {
    /// Create a task
    ///
    /// Adds a task owned by the caller.
    #[oai(path = "/", method = "post", operation_id = "createTask")]
    async fn create(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
        body: Json<NewTask>,
    ) -> Result<CreatedResponse, WriteErrors> {
        let title = TaskTitle::parse(&body.title).map_err(|e| invalid(&e))?;
        let description = body
            .description
            .as_deref()
            .map(TaskDescription::parse)
            .transpose()
            .map_err(|e| invalid(&e))?;
        let task = state
            .tasks
            .create(auth.0.user_id, title, description)
            .await
            .map_err(task_error)?;
        Ok(CreatedResponse::Created(Json(task.into())))
    }

    /// List my tasks
    ///
    /// The caller's tasks, newest first, by pages.
    #[oai(path = "/", method = "get", operation_id = "listTasks")]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
        /// Page size, 1 to 100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// The `next_cursor` of the previous page.
        before: Query<Option<Uuid>>,
    ) -> Result<PageResponse, ReadErrors> {
        let page = state
            .tasks
            .list(
                auth.0.user_id,
                before.0.map(TaskId::from_uuid),
                u64::from(limit.0.unwrap_or(20)),
            )
            .await
            .map_err(task_error)?;
        Ok(PageResponse::Ok(Json(TaskPageBody {
            items: page.items.into_iter().map(TaskBody::from).collect(),
            next_cursor: page.next_cursor.map(|id| id.as_uuid()),
        })))
    }

    /// Get a task
    ///
    /// One of the caller's tasks.
    #[oai(path = "/:id", method = "get", operation_id = "getTask")]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
        /// The task id.
        id: Path<Uuid>,
    ) -> Result<TaskResponse, ReadErrors> {
        let task = state
            .tasks
            .get(auth.0.user_id, TaskId::from_uuid(id.0))
            .await
            .map_err(task_error)?;
        Ok(TaskResponse::Ok(Json(task.into())))
    }

    /// Update a task
    ///
    /// Changes the title, description or done flag of one of the caller's tasks.
    #[oai(path = "/:id", method = "patch", operation_id = "updateTask")]
    async fn update(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
        /// The task id.
        id: Path<Uuid>,
        body: Json<TaskUpdate>,
    ) -> Result<TaskResponse, WriteErrors> {
        let body = body.0;
        let patch = TaskPatch {
            title: body
                .title
                .as_deref()
                .map(TaskTitle::parse)
                .transpose()
                .map_err(|e| invalid(&e))?,
            description: match body.description {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(d) => {
                    Some(Some(TaskDescription::parse(&d).map_err(|e| invalid(&e))?))
                }
            },
            done: body.done,
        };
        let task = state
            .tasks
            .update(auth.0.user_id, TaskId::from_uuid(id.0), patch)
            .await
            .map_err(task_error)?;
        Ok(TaskResponse::Ok(Json(task.into())))
    }

    /// Delete a task
    ///
    /// Deletes one of the caller's tasks.
    #[oai(path = "/:id", method = "delete", operation_id = "deleteTask")]
    async fn delete(
        &self,
        state: Data<&Arc<AppState>>,
        auth: BearerAuth,
        /// The task id.
        id: Path<Uuid>,
    ) -> Result<DeletedResponse, ReadErrors> {
        state
            .tasks
            .delete(auth.0.user_id, TaskId::from_uuid(id.0))
            .await
            .map_err(task_error)?;
        Ok(DeletedResponse::NoContent)
    }
}

impl poem_openapi::types::Example for TaskBody {
    fn example() -> Self {
        Self::example_value()
    }
}

impl poem_openapi::types::Example for NewTask {
    fn example() -> Self {
        Self::example_value()
    }
}

impl poem_openapi::types::Example for TaskUpdate {
    fn example() -> Self {
        Self::example_value()
    }
}
