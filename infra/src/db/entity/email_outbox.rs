//! The `email_outbox` table: messages waiting for delivery, and the record
//! of delivered ones with their payload scrubbed.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "email_outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub kind: String,
    pub recipient: String,
    /// JSON with the one-time token and the other address, if any; NULL
    /// once the message is no longer pending.
    pub payload: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub attempts: i32,
    pub next_attempt_at: i64,
    /// `pending`, `sent`, `expired` or `failed`.
    pub status: String,
    pub sent_at: Option<i64>,
    pub last_error: Option<String>,
}

// The payload may hold a one-time token: never in logs.
impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("payload", &self.payload.as_ref().map(|_| "[redacted]"))
            .field("status", &self.status)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
