//! The `totp_factors` table: one TOTP factor per user, its seed sealed with
//! the data key.

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "totp_factors")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    /// Nonce, ciphertext and tag (AES-256-GCM under the data key).
    pub seed: Vec<u8>,
    pub active: bool,
    /// The last time step accepted.
    pub last_step: Option<i64>,
    pub created_at: i64,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("user_id", &self.user_id)
            .field("seed", &"[redacted]")
            .field("active", &self.active)
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
