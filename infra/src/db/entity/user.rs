//! The `users` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Normalised by the domain; unique by index.
    #[sea_orm(unique)]
    pub email: String,
    pub password_hash: String,
    pub created_at: i64,
    /// When the current address was confirmed; NULL until it is.
    pub email_verified_at: Option<i64>,
    /// Whether TOTP is active.
    pub second_factor: bool,
    pub updated_at: i64,
}

// Password hashes never reach logs, even through a stray `{:?}`.
impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("password_hash", &"[redacted]")
            .field("created_at", &self.created_at)
            .field("email_verified_at", &self.email_verified_at)
            .field("second_factor", &self.second_factor)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::session::Entity")]
    Session,
    #[sea_orm(has_many = "super::task::Entity")]
    Task,
}

impl Related<super::session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Session.def()
    }
}

impl Related<super::task::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Task.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
