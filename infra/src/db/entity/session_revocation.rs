//! The `session_revocations` table: the append-only revocation feed.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "session_revocations")]
pub struct Model {
    /// Assigned by the database; the feed's order.
    #[sea_orm(primary_key)]
    pub id: i64,
    pub session_id: Uuid,
    /// The revoking instance's clock: informational, and for start-up and purge.
    pub revoked_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
