//! `/api/v1/tasks`: the sample protected resource. A caller sees and changes
//! only their own tasks; another user's task answers 404. `TasksApi`
//! delegates each operation to its use-case file; `common` holds the task
//! body and the error answers they share.

pub mod common;
pub mod create;
pub mod delete;
pub mod get;
pub mod list;
pub mod update;

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use uuid::Uuid;

use crate::http::security::BearerAuth;
use crate::routes::common::ApiTags;
use crate::routes::tasks::common::{ReadErrors, WriteErrors};
use crate::routes::tasks::create::{CreatedResponse, NewTask};
use crate::routes::tasks::delete::DeletedResponse;
use crate::routes::tasks::get::GetResponse;
use crate::routes::tasks::list::PageResponse;
use crate::routes::tasks::update::{TaskUpdate, UpdateResponse};
use crate::state::AppState;

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
        create::create(&state.tasks, &auth.0, body.0).await
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
        list::list(&state.tasks, &auth.0, limit.0, before.0).await
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
    ) -> Result<GetResponse, ReadErrors> {
        get::get(&state.tasks, &auth.0, id.0).await
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
    ) -> Result<UpdateResponse, WriteErrors> {
        update::update(&state.tasks, &auth.0, id.0, body.0).await
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
        delete::delete(&state.tasks, &auth.0, id.0).await
    }
}
