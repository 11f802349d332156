//! `TaskRepository` over sea-orm. Every statement filters on the owner, so
//! another user's task behaves exactly like a missing one.

use async_trait::async_trait;
use portcullis_domain::error::Failure;
use portcullis_domain::ids::TaskId;
use portcullis_domain::ids::UserId;
use portcullis_domain::task::{Task, TaskDescription, TaskRepository, TaskTitle};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::Database;
use super::convert::{from_millis, to_millis};
use super::entity::task;
use super::error::{corrupt, store_error};

/// Tasks in the `tasks` table.
#[derive(Clone)]
pub struct SeaOrmTaskRepository {
    db: Database,
}

impl SeaOrmTaskRepository {
    pub(crate) fn new(db: Database) -> Self {
        Self { db }
    }
}

#[async_trait]
impl TaskRepository for SeaOrmTaskRepository {
    async fn insert(&self, task: &Task) -> Result<(), Failure> {
        let row = task::ActiveModel {
            id: Set(task.id.as_uuid()),
            user_id: Set(task.user_id.as_uuid()),
            title: Set(task.title.as_str().to_owned()),
            description: Set(task.description.as_ref().map(|d| d.as_str().to_owned())),
            done: Set(task.done),
            created_at: Set(to_millis(task.created_at)),
            updated_at: Set(to_millis(task.updated_at)),
        };
        let _gate = self.db.write_gate().await;
        task::Entity::insert(row)
            .exec_without_returning(self.db.bounded())
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn list(
        &self,
        owner: UserId,
        before: Option<TaskId>,
        limit: u64,
    ) -> Result<Vec<Task>, Failure> {
        // Ids are UUIDv7 and both backends compare uuid columns byte-wise, so
        // id order is creation order and the id doubles as the cursor.
        let mut query = task::Entity::find().filter(task::Column::UserId.eq(owner.as_uuid()));
        if let Some(before) = before {
            query = query.filter(task::Column::Id.lt(before.as_uuid()));
        }
        query
            .order_by_desc(task::Column::Id)
            .limit(limit)
            .all(self.db.bounded())
            .await
            .map_err(store_error)?
            .into_iter()
            .map(to_domain)
            .collect()
    }

    async fn get(&self, owner: UserId, id: TaskId) -> Result<Option<Task>, Failure> {
        task::Entity::find_by_id(id.as_uuid())
            .filter(task::Column::UserId.eq(owner.as_uuid()))
            .one(self.db.bounded())
            .await
            .map_err(store_error)?
            .map(to_domain)
            .transpose()
    }

    async fn update(&self, owner: UserId, task: &Task) -> Result<bool, Failure> {
        let _gate = self.db.write_gate().await;
        let result = task::Entity::update_many()
            .col_expr(task::Column::Title, Expr::value(task.title.as_str()))
            .col_expr(
                task::Column::Description,
                Expr::value(task.description.as_ref().map(|d| d.as_str().to_owned())),
            )
            .col_expr(task::Column::Done, Expr::value(task.done))
            .col_expr(
                task::Column::UpdatedAt,
                Expr::value(to_millis(task.updated_at)),
            )
            .filter(task::Column::Id.eq(task.id.as_uuid()))
            .filter(task::Column::UserId.eq(owner.as_uuid()))
            .exec(self.db.bounded())
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected > 0)
    }

    async fn delete(&self, owner: UserId, id: TaskId) -> Result<bool, Failure> {
        let _gate = self.db.write_gate().await;
        let result = task::Entity::delete_many()
            .filter(task::Column::Id.eq(id.as_uuid()))
            .filter(task::Column::UserId.eq(owner.as_uuid()))
            .exec(self.db.bounded())
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected > 0)
    }
}

pub(crate) fn to_domain(row: task::Model) -> Result<Task, Failure> {
    let title = TaskTitle::parse(&row.title).map_err(|_| corrupt("task title"))?;
    let description = row
        .description
        .map(|d| TaskDescription::parse(&d))
        .transpose()
        .map_err(|_| corrupt("task description"))?;
    Ok(Task {
        id: TaskId::from_uuid(row.id),
        user_id: UserId::from_uuid(row.user_id),
        title,
        description,
        done: row.done,
        created_at: from_millis(row.created_at)?,
        updated_at: from_millis(row.updated_at)?,
    })
}
