//! `POST /api/v1/tasks`: add a task owned by the caller.

use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object};
use portcullis_domain::context::Principal;
use portcullis_domain::task::{TaskDescription, TaskService, TaskTitle};

use crate::routes::bounded::Bounded;
use crate::routes::tasks::common::{TaskBody, TaskFieldError, WriteErrors, not_null};

/// A new task.
#[derive(Debug, Object)]
#[oai(example)]
pub struct NewTask {
    /// 1 to 200 characters (after trimming).
    pub title: Bounded<1, { TaskTitle::MAX }>,
    /// At most 2,000 characters; leave it out for none (`null` is refused).
    pub description: MaybeUndefined<Bounded<0, { TaskDescription::MAX }>>,
}

impl NewTask {
    /// The title and description as domain values.
    ///
    /// # Errors
    /// The first field out of bounds, or `null` for the description.
    pub fn try_into_domain(&self) -> Result<(TaskTitle, Option<TaskDescription>), TaskFieldError> {
        let title = TaskTitle::parse(self.title.as_str())?;
        let description = not_null("description", self.description.as_ref())?
            .map(Bounded::as_str)
            .map(TaskDescription::parse)
            .transpose()?;
        Ok((title, description))
    }

    fn example_value() -> Self {
        Self {
            title: Bounded("Rotate the signing key".to_owned()),
            description: MaybeUndefined::Value(Bounded("Before the quarterly audit".to_owned())),
        }
    }
}

impl poem_openapi::types::Example for NewTask {
    fn example() -> Self {
        Self::example_value()
    }
}

#[derive(ApiResponse)]
pub enum CreatedResponse {
    /// The task was created.
    #[oai(status = 201)]
    Created(Json<TaskBody>),
}

/// Creates `body` as a task of `caller`.
pub async fn create(
    tasks: &TaskService,
    caller: &Principal,
    body: NewTask,
) -> Result<CreatedResponse, WriteErrors> {
    let (title, description) = body.try_into_domain()?;
    let task = tasks.create(caller.user_id, title, description).await?;
    Ok(CreatedResponse::Created(Json(task.into())))
}

#[cfg(test)]
mod tests {
    use portcullis_domain::task::TaskInputError;

    use super::*;

    fn new_task(title: &str, description: Option<&str>) -> NewTask {
        NewTask {
            title: Bounded(title.to_owned()),
            description: description
                .map(|d| Bounded(d.to_owned()))
                .map_or(MaybeUndefined::Undefined, MaybeUndefined::Value),
        }
    }

    #[test]
    fn a_title_and_description_in_bounds_parse() {
        let (title, description) = new_task("Rotate the key", Some("soon"))
            .try_into_domain()
            .unwrap();
        assert_eq!(title.as_str(), "Rotate the key");
        assert_eq!(description.unwrap().as_str(), "soon");
    }

    #[test]
    fn a_field_out_of_bounds_is_named() {
        assert!(matches!(
            new_task("", None).try_into_domain(),
            Err(TaskFieldError::Input(TaskInputError::Title { .. }))
        ));
        assert!(matches!(
            new_task("ok", Some(&"x".repeat(2_001))).try_into_domain(),
            Err(TaskFieldError::Input(TaskInputError::Description { .. }))
        ));
    }

    #[test]
    fn a_null_description_is_refused() {
        let task = NewTask {
            description: MaybeUndefined::Null,
            ..new_task("ok", None)
        };
        assert!(matches!(
            task.try_into_domain(),
            Err(TaskFieldError::Null("description"))
        ));
    }
}
