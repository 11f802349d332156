//! Creates `session_revocations`: the append-only feed of revocations that
//! other instances follow.
//!
//! The feed is ordered by `id`, which the database assigns, never by a clock:
//! an instance reads the rows after the last id it read. `id` is an
//! auto-increment `BIGINT` (`bigserial` on PostgreSQL; `INTEGER PRIMARY KEY
//! AUTOINCREMENT` on SQLite, so an id is never reused even after the newest
//! rows are purged). `revoked_at` is the revoking instance's clock: it only
//! chooses what a starting instance loads and which rows the purge deletes.
//! No foreign key: a revocation must outlive the session row it names.
//!
//! Rows are written only by `portcullis-infra`'s session repository, which on
//! PostgreSQL makes ids commit in order (see `db/session/revocations.rs`).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SessionRevocations {
    Table,
    Id,
    SessionId,
    RevokedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SessionRevocations::Table)
                    .col(
                        ColumnDef::new(SessionRevocations::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SessionRevocations::SessionId)
                            .uuid()
                            .not_null(),
                    )
                    // Unix epoch milliseconds, UTC (see the crate docs).
                    .col(
                        ColumnDef::new(SessionRevocations::RevokedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        // A starting instance loads `revoked_at >= ?`; the purge deletes `revoked_at < ?`.
        manager
            .create_index(
                Index::create()
                    .name("ix_session_revocations_revoked_at")
                    .table(SessionRevocations::Table)
                    .col(SessionRevocations::RevokedAt)
                    .to_owned(),
            )
            .await
    }
}
