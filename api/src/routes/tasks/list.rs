//! `GET /api/v1/tasks`: the caller's tasks, newest first, by pages.

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use portcullis_domain::context::Principal;
use portcullis_domain::ids::TaskId;
use portcullis_domain::task::TaskService;
use uuid::Uuid;

use crate::routes::tasks::common::{ReadErrors, TaskBody};

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
            items: vec![<TaskBody as poem_openapi::types::Example>::example()],
            next_cursor: None,
        }
    }
}

#[derive(ApiResponse)]
pub enum PageResponse {
    /// A page of the caller's tasks.
    #[oai(status = 200)]
    Ok(Json<TaskPageBody>),
}

/// A page of at most `limit` (default 20) of the caller's tasks older than `before`.
pub async fn list(
    tasks: &TaskService,
    caller: &Principal,
    limit: Option<u32>,
    before: Option<Uuid>,
) -> Result<PageResponse, ReadErrors> {
    let page = tasks
        .list(
            caller.user_id,
            before.map(TaskId::from_uuid),
            u64::from(limit.unwrap_or(20)),
        )
        .await?;
    Ok(PageResponse::Ok(Json(TaskPageBody {
        items: page.items.into_iter().map(TaskBody::from).collect(),
        next_cursor: page.next_cursor.map(|id| id.as_uuid()),
    })))
}
