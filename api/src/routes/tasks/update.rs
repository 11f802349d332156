//! `PATCH /api/v1/tasks/{id}`: change the title, description or done flag
//! of one of the caller's tasks.

use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object};
use portcullis_domain::context::Principal;
use portcullis_domain::ids::TaskId;
use portcullis_domain::task::{TaskDescription, TaskInputError, TaskPatch, TaskService, TaskTitle};
use uuid::Uuid;

use crate::routes::tasks::common::{TaskBody, WriteErrors};

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
    /// The changes as a domain patch: absent stays, `null` clears.
    ///
    /// # Errors
    /// The first field out of bounds.
    pub fn try_into_domain(self) -> Result<TaskPatch, TaskInputError> {
        Ok(TaskPatch {
            title: self.title.as_deref().map(TaskTitle::parse).transpose()?,
            description: match self.description {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(d) => Some(Some(TaskDescription::parse(&d)?)),
            },
            done: self.done,
        })
    }

    fn example_value() -> Self {
        Self {
            title: None,
            description: MaybeUndefined::Undefined,
            done: Some(true),
        }
    }
}

impl poem_openapi::types::Example for TaskUpdate {
    fn example() -> Self {
        Self::example_value()
    }
}

#[derive(ApiResponse)]
pub enum UpdateResponse {
    /// The task.
    #[oai(status = 200)]
    Ok(Json<TaskBody>),
}

/// Applies `body` to the caller's task `id`.
pub async fn update(
    tasks: &TaskService,
    caller: &Principal,
    id: Uuid,
    body: TaskUpdate,
) -> Result<UpdateResponse, WriteErrors> {
    let patch = body.try_into_domain()?;
    let task = tasks
        .update(caller.user_id, TaskId::from_uuid(id), patch)
        .await?;
    Ok(UpdateResponse::Ok(Json(task.into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(description: MaybeUndefined<String>) -> TaskUpdate {
        TaskUpdate {
            title: None,
            description,
            done: Some(true),
        }
    }

    #[test]
    fn absent_keeps_null_clears_a_value_sets() {
        let patch = update(MaybeUndefined::Undefined).try_into_domain().unwrap();
        assert!(patch.title.is_none());
        assert!(patch.description.is_none());
        assert_eq!(patch.done, Some(true));
        let patch = update(MaybeUndefined::Null).try_into_domain().unwrap();
        assert!(matches!(patch.description, Some(None)));
        let patch = update(MaybeUndefined::Value("soon".to_owned()))
            .try_into_domain()
            .unwrap();
        assert_eq!(patch.description.flatten().unwrap().as_str(), "soon");
    }

    #[test]
    fn a_field_out_of_bounds_is_named() {
        let too_long = update(MaybeUndefined::Value("x".repeat(2_001)));
        assert!(matches!(
            too_long.try_into_domain(),
            Err(TaskInputError::Description { .. })
        ));
        let empty_title = TaskUpdate {
            title: Some(String::new()),
            ..update(MaybeUndefined::Undefined)
        };
        assert!(matches!(
            empty_title.try_into_domain(),
            Err(TaskInputError::Title { .. })
        ));
    }
}
