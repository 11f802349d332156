//! What the task operations share: the task body, the two documented sets
//! of error answers (reads and writes), and the mapping of `TaskError` and
//! `TaskInputError` into them. A leaf of `tasks`: it imports no operation.

use poem::http::StatusCode;
use poem_openapi::Object;
use poem_openapi::types::MaybeUndefined;
use portcullis_domain::task::{Task, TaskError, TaskInputError};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::problem::{ApiError, problem_responses};
use crate::routes::common::failure;

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

impl poem_openapi::types::Example for TaskBody {
    fn example() -> Self {
        Self::example_value()
    }
}

problem_responses!(WriteErrors {
    BadRequest = 400 => "The body is not valid JSON, misses a field, has a field of the wrong type or `null`, or the id is not a UUID.",
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

/// Why a task body's fields are refused: a domain bound, or `null` where
/// the document does not allow it (an absent field is the way to say "none"
/// or "unchanged").
#[derive(Debug)]
pub enum TaskFieldError {
    Input(TaskInputError),
    Null(&'static str),
}

impl From<TaskInputError> for TaskFieldError {
    fn from(error: TaskInputError) -> Self {
        Self::Input(error)
    }
}

/// `None` when absent, the value when given; `null` is refused.
///
/// # Errors
/// `TaskFieldError::Null(field)` for `null`.
pub fn not_null<T>(
    field: &'static str,
    value: MaybeUndefined<T>,
) -> Result<Option<T>, TaskFieldError> {
    match value {
        MaybeUndefined::Undefined => Ok(None),
        MaybeUndefined::Null => Err(TaskFieldError::Null(field)),
        MaybeUndefined::Value(value) => Ok(Some(value)),
    }
}

/// The answer to a task the caller cannot have, or a failure.
fn task_error(error: TaskError) -> ApiError {
    match error {
        TaskError::NotFound => ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such task."),
        TaskError::Failure(error) => failure(&error),
    }
}

impl From<TaskError> for ReadErrors {
    fn from(error: TaskError) -> Self {
        task_error(error).into()
    }
}

impl From<TaskError> for WriteErrors {
    fn from(error: TaskError) -> Self {
        task_error(error).into()
    }
}

impl From<TaskInputError> for WriteErrors {
    fn from(error: TaskInputError) -> Self {
        let code = match error {
            TaskInputError::Title { .. } => "invalid_title",
            TaskInputError::Description { .. } => "invalid_description",
        };
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, error.to_string()).into()
    }
}

impl From<TaskFieldError> for WriteErrors {
    fn from(error: TaskFieldError) -> Self {
        match error {
            TaskFieldError::Input(error) => error.into(),
            TaskFieldError::Null(field) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("`{field}` must not be null; leave it out instead."),
            )
            .into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use portcullis_domain::error::Failure;

    use super::*;
    use crate::problem::testing::{Answer, answer};

    fn task_errors() -> Vec<(TaskError, Answer)> {
        vec![
            (TaskError::NotFound, Answer::new(404, "not_found", None)),
            (
                TaskError::Failure(Failure::Overloaded {
                    retry_after_secs: 3,
                }),
                Answer::new(503, "overloaded", Some("3")),
            ),
            (
                TaskError::Failure(Failure::Unavailable(anyhow::anyhow!("refused"))),
                Answer::new(503, "unavailable", Some("2")),
            ),
            (
                TaskError::Failure(Failure::Unexpected(anyhow::anyhow!("bug"))),
                Answer::new(500, "internal", None),
            ),
        ]
    }

    #[tokio::test]
    async fn every_task_error_has_one_status_code_and_retry_after_on_reads() {
        for (error, expected) in task_errors() {
            let shown = format!("{error:?}");
            assert_eq!(answer(ReadErrors::from(error)).await, expected, "{shown}");
        }
    }

    #[tokio::test]
    async fn every_task_error_has_one_status_code_and_retry_after_on_writes() {
        for (error, expected) in task_errors() {
            let shown = format!("{error:?}");
            assert_eq!(answer(WriteErrors::from(error)).await, expected, "{shown}");
        }
    }

    #[tokio::test]
    async fn every_task_input_error_is_a_422_naming_the_field() {
        let cases = [
            (
                TaskInputError::Title { max: 200 },
                Answer::new(422, "invalid_title", None),
            ),
            (
                TaskInputError::Description { max: 2_000 },
                Answer::new(422, "invalid_description", None),
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(answer(WriteErrors::from(error)).await, expected);
        }
    }

    #[tokio::test]
    async fn a_null_field_is_a_400_bad_request() {
        assert_eq!(
            answer(WriteErrors::from(TaskFieldError::Null("done"))).await,
            Answer::new(400, "bad_request", None)
        );
    }
}
