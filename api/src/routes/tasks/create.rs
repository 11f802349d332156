//! `POST /api/v1/tasks`: add a task owned by the caller.

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use portcullis_domain::context::Principal;
use portcullis_domain::task::{TaskDescription, TaskInputError, TaskService, TaskTitle};

use crate::routes::tasks::common::{TaskBody, WriteErrors};

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
    /// The title and description as domain values.
    ///
    /// # Errors
    /// The first field out of bounds.
    pub fn try_into_domain(&self) -> Result<(TaskTitle, Option<TaskDescription>), TaskInputError> {
        let title = TaskTitle::parse(&self.title)?;
        let description = self
            .description
            .as_deref()
            .map(TaskDescription::parse)
            .transpose()?;
        Ok((title, description))
    }

    fn example_value() -> Self {
        Self {
            title: "Rotate the signing key".to_owned(),
            description: Some("Before the quarterly audit".to_owned()),
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
    use super::*;

    fn new_task(title: &str, description: Option<&str>) -> NewTask {
        NewTask {
            title: title.to_owned(),
            description: description.map(str::to_owned),
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
            Err(TaskInputError::Title { .. })
        ));
        assert!(matches!(
            new_task("ok", Some(&"x".repeat(2_001))).try_into_domain(),
            Err(TaskInputError::Description { .. })
        ));
    }
}
