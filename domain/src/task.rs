//! Tasks: the sample protected resource. Every operation is scoped to its
//! owner; another user's task is indistinguishable from a missing one.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::Failure;
use crate::clock::Clock;
use crate::error::StoreError;
use crate::user::UserId;

/// A task's identifier (time-ordered, so it doubles as a pagination cursor).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(Uuid);

impl TaskId {
    /// A new, time-ordered identifier.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
    /// Wraps a stored or requested identifier.
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }
    /// The underlying UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for TaskId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({})", self.0)
    }
}

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskPage {
    pub items: Vec<Task>,
    /// Pass as `before` to get the next page; `None` on the last page.
    pub next_cursor: Option<TaskId>,
}

/// Why a task operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// No task with that id belongs to the caller.
    #[error("task not found")]
    NotFound,
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl From<StoreError> for TaskError {
    fn from(error: StoreError) -> Self {
        Self::Failure(error.into())
    }
}

/// Where tasks live. Every method is scoped to `owner`.
#[async_trait]
pub trait TaskRepository: Send + Sync + 'static {
    async fn insert(&self, task: &Task) -> Result<(), StoreError>;
    /// Up to `limit` tasks of `owner` older than `before`, newest first.
    async fn list(
        &self,
        owner: UserId,
        before: Option<TaskId>,
        limit: u64,
    ) -> Result<Vec<Task>, StoreError>;
    async fn get(&self, owner: UserId, id: TaskId) -> Result<Option<Task>, StoreError>;
    /// Stores `task` if it exists and belongs to `owner`; returns whether it did.
    async fn update(&self, owner: UserId, task: &Task) -> Result<bool, StoreError>;
    /// Deletes the task if it belongs to `owner`; returns whether it did.
    async fn delete(&self, owner: UserId, id: TaskId) -> Result<bool, StoreError>;
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
        let limit = limit.clamp(1, Self::MAX_PAGE);
        let mut items = self.tasks.list(owner, before, limit + 1).await?;
        let next_cursor = if items.len() as u64 > limit {
            items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            items.last().map(|task| task.id)
        } else {
            None
        };
        Ok(TaskPage { items, next_cursor })
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
