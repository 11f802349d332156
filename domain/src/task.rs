//! Tasks: the sample protected resource. Every operation is scoped to its
//! owner; another user's task is indistinguishable from a missing one.

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::error::Failure;
pub use crate::ids::TaskId;
use crate::ids::UserId;
use crate::paging::{Page, clamp_limit, fetch_limit};

/// Why task input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskInputError {
    #[error("title must be between 1 and {max} characters")]
    Title { max: usize },
    #[error("description must be at most {max} characters")]
    Description { max: usize },
}

/// A trimmed title of 1..=200 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTitle(String);

impl TaskTitle {
    pub const MAX: usize = 200;

    /// Trims and bounds a title.
    ///
    /// # Errors
    /// `TaskInputError::Title` when empty or too long.
    pub fn parse(raw: &str) -> Result<Self, TaskInputError> {
        let trimmed = raw.trim();
        let len = trimmed.chars().count();
        if len == 0 || len > Self::MAX {
            return Err(TaskInputError::Title { max: Self::MAX });
        }
        Ok(Self(trimmed.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An optional description of at most 2,000 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDescription(String);

impl TaskDescription {
    pub const MAX: usize = 2000;

    /// Bounds a description.
    ///
    /// # Errors
    /// `TaskInputError::Description` when too long.
    pub fn parse(raw: &str) -> Result<Self, TaskInputError> {
        if raw.chars().count() > Self::MAX {
            return Err(TaskInputError::Description { max: Self::MAX });
        }
        Ok(Self(raw.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stored task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: TaskId,
    pub user_id: UserId,
    pub title: TaskTitle,
    pub description: Option<TaskDescription>,
    pub done: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A partial update; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskPatch {
    pub title: Option<TaskTitle>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<TaskDescription>>,
    pub done: Option<bool>,
}

/// A page of tasks, newest first.
pub type TaskPage = Page<Task, TaskId>;

/// Why a task operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// No task with that id belongs to the caller.
    #[error("task not found")]
    NotFound,
    #[error(transparent)]
    Failure(#[from] Failure),
}

/// Where tasks live. Every method is scoped to `owner`.
#[async_trait]
pub trait TaskRepository: Send + Sync + 'static {
    async fn insert(&self, task: &Task) -> Result<(), Failure>;
    /// Up to `limit` tasks of `owner` older than `before`, newest first.
    async fn list(
        &self,
        owner: UserId,
        before: Option<TaskId>,
        limit: u64,
    ) -> Result<Vec<Task>, Failure>;
    async fn get(&self, owner: UserId, id: TaskId) -> Result<Option<Task>, Failure>;
    /// Stores `task` if it exists and belongs to `owner`; returns whether it did.
    async fn update(&self, owner: UserId, task: &Task) -> Result<bool, Failure>;
    /// Deletes the task if it belongs to `owner`; returns whether it did.
    async fn delete(&self, owner: UserId, id: TaskId) -> Result<bool, Failure>;
}

/// The task use cases.
#[derive(Clone)]
pub struct TaskService {
    tasks: Arc<dyn TaskRepository>,
    clock: Arc<dyn Clock>,
}

impl TaskService {
    pub const MAX_PAGE: u64 = 100;

    pub fn new(tasks: Arc<dyn TaskRepository>, clock: Arc<dyn Clock>) -> Self {
        Self { tasks, clock }
    }

    /// Creates a task for `owner`.
    ///
    /// # Errors
    /// A `Failure` only.
    pub async fn create(
        &self,
        owner: UserId,
        title: TaskTitle,
        description: Option<TaskDescription>,
    ) -> Result<Task, TaskError> {
        let now = self.clock.now();
        let task = Task {
            id: TaskId::new(),
            user_id: owner,
            title,
            description,
            done: false,
            created_at: now,
            updated_at: now,
        };
        self.tasks.insert(&task).await?;
        Ok(task)
    }

    /// A page of the owner's tasks, newest first. `limit` is clamped to 1..=100.
    ///
    /// # Errors
    /// A `Failure` only.
    pub async fn list(
        &self,
        owner: UserId,
        before: Option<TaskId>,
        limit: u64,
    ) -> Result<TaskPage, TaskError> {
        let limit = clamp_limit(limit, Self::MAX_PAGE);
        let fetched = self.tasks.list(owner, before, fetch_limit(limit)).await?;
        Ok(Page::from_fetched(fetched, limit, |task| task.id))
    }

    /// One of the owner's tasks.
    ///
    /// # Errors
    /// `NotFound` when it is missing or not the owner's.
    pub async fn get(&self, owner: UserId, id: TaskId) -> Result<Task, TaskError> {
        self.tasks.get(owner, id).await?.ok_or(TaskError::NotFound)
    }

    /// Applies `patch` to one of the owner's tasks.
    ///
    /// # Errors
    /// `NotFound` when it is missing or not the owner's.
    pub async fn update(
        &self,
        owner: UserId,
        id: TaskId,
        patch: TaskPatch,
    ) -> Result<Task, TaskError> {
        let mut task = self.get(owner, id).await?;
        if let Some(title) = patch.title {
            task.title = title;
        }
        if let Some(description) = patch.description {
            task.description = description;
        }
        if let Some(done) = patch.done {
            task.done = done;
        }
        task.updated_at = self.clock.now();
        if self.tasks.update(owner, &task).await? {
            Ok(task)
        } else {
            Err(TaskError::NotFound)
        }
    }

    /// Deletes one of the owner's tasks.
    ///
    /// # Errors
    /// `NotFound` when it is missing or not the owner's.
    pub async fn delete(&self, owner: UserId, id: TaskId) -> Result<(), TaskError> {
        if self.tasks.delete(owner, id).await? {
            Ok(())
        } else {
            Err(TaskError::NotFound)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(
            TaskTitle::parse("  buy milk ").unwrap().as_str(),
            "buy milk"
        );
        assert!(TaskTitle::parse("   ").is_err());
        assert!(TaskTitle::parse(&"x".repeat(200)).is_ok());
        assert!(TaskTitle::parse(&"x".repeat(201)).is_err());
        assert!(TaskDescription::parse(&"x".repeat(2001)).is_err());
    }
}
