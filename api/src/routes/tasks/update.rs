//! `PATCH /api/v1/tasks/{id}`: change the title, description or done flag
//! of one of the caller's tasks.

use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object};
use portcullis_domain::context::Principal;
use portcullis_domain::ids::TaskId;
use portcullis_domain::task::{TaskDescription, TaskPatch, TaskService, TaskTitle};
use uuid::Uuid;

use crate::routes::bounded::Bounded;
use crate::routes::tasks::common::{TaskBody, TaskFieldError, WriteErrors, not_null};

/// Changes to a task; absent fields stay as they are. Only the description
/// may be `null` (it removes the description).
#[derive(Debug, Object)]
#[oai(example)]
pub struct TaskUpdate {
    /// A new title, 1 to 200 characters (after trimming).
    pub title: MaybeUndefined<Bounded<1, { TaskTitle::MAX }>>,
    /// A new description (at most 2,000 characters), or `null` to remove it.
    #[oai(nullable)]
    pub description: MaybeUndefined<Bounded<0, { TaskDescription::MAX }>>,
    /// Mark the task done or not done.
    pub done: MaybeUndefined<bool>,
}

impl TaskUpdate {
    /// The changes as a domain patch: absent stays, a `null` description clears.
    ///
    /// # Errors
    /// The first field out of bounds, or `null` for the title or done flag.
    pub fn try_into_domain(self) -> Result<TaskPatch, TaskFieldError> {
        let title = not_null("title", self.title.as_ref())?.map(Bounded::as_str);
        let done = not_null("done", self.done)?;
        Ok(TaskPatch {
            title: title.map(TaskTitle::parse).transpose()?,
            description: match self.description {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(d) => Some(Some(TaskDescription::parse(d.as_str())?)),
            },
            done,
        })
    }

    fn example_value() -> Self {
        Self {
            title: MaybeUndefined::Undefined,
            description: MaybeUndefined::Undefined,
            done: MaybeUndefined::Value(true),
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
    use portcullis_domain::task::TaskInputError;

    use super::*;

    fn update(description: MaybeUndefined<Bounded<0, { TaskDescription::MAX }>>) -> TaskUpdate {
        TaskUpdate {
            title: MaybeUndefined::Undefined,
            description,
            done: MaybeUndefined::Value(true),
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
        let patch = update(MaybeUndefined::Value(Bounded("soon".to_owned())))
            .try_into_domain()
            .unwrap();
        assert_eq!(patch.description.flatten().unwrap().as_str(), "soon");
    }

    #[test]
    fn a_field_out_of_bounds_is_named() {
        let too_long = update(MaybeUndefined::Value(Bounded("x".repeat(2_001))));
        assert!(matches!(
            too_long.try_into_domain(),
            Err(TaskFieldError::Input(TaskInputError::Description { .. }))
        ));
        let empty_title = TaskUpdate {
            title: MaybeUndefined::Value(Bounded(String::new())),
            ..update(MaybeUndefined::Undefined)
        };
        assert!(matches!(
            empty_title.try_into_domain(),
            Err(TaskFieldError::Input(TaskInputError::Title { .. }))
        ));
    }

    #[test]
    fn a_null_title_or_done_is_refused() {
        let null_title = TaskUpdate {
            title: MaybeUndefined::Null,
            ..update(MaybeUndefined::Undefined)
        };
        assert!(matches!(
            null_title.try_into_domain(),
            Err(TaskFieldError::Null("title"))
        ));
        let null_done = TaskUpdate {
            done: MaybeUndefined::Null,
            ..update(MaybeUndefined::Undefined)
        };
        assert!(matches!(
            null_done.try_into_domain(),
            Err(TaskFieldError::Null("done"))
        ));
    }
}
