//! Creates `auth_events`: the append-only audit trail.
//!
//! No foreign keys on purpose: the trail outlives the rows it talks about,
//! and events about unknown users (a failed log-in) have no user at all.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuthEvents {
    Table,
    Id,
    OccurredAt,
    Kind,
    Outcome,
    UserId,
    SessionId,
    ClientIp,
    UserAgent,
    RequestId,
    TraceId,
    Detail,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuthEvents::Table)
                    // UUIDv7: time-ordered, so it doubles as the page cursor.
                    .col(
                        ColumnDef::new(AuthEvents::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    // Unix epoch milliseconds, UTC (see the crate docs).
                    .col(
                        ColumnDef::new(AuthEvents::OccurredAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(AuthEvents::Kind).string_len(40).not_null())
                    .col(
                        ColumnDef::new(AuthEvents::Outcome)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(AuthEvents::UserId).uuid().null())
                    .col(ColumnDef::new(AuthEvents::SessionId).uuid().null())
                    .col(ColumnDef::new(AuthEvents::ClientIp).string_len(64).null())
                    .col(
                        ColumnDef::new(AuthEvents::UserAgent)
                            .string_len(1024)
                            .null(),
                    )
                    .col(ColumnDef::new(AuthEvents::RequestId).string_len(64).null())
                    .col(ColumnDef::new(AuthEvents::TraceId).string_len(32).null())
                    .col(ColumnDef::new(AuthEvents::Detail).string_len(1024).null())
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            (
                "ix_auth_events_user_id_id",
                vec![AuthEvents::UserId, AuthEvents::Id],
            ),
            (
                "ix_auth_events_kind_occurred_at",
                vec![AuthEvents::Kind, AuthEvents::OccurredAt],
            ),
            (
                "ix_auth_events_client_ip_occurred_at",
                vec![AuthEvents::ClientIp, AuthEvents::OccurredAt],
            ),
            ("ix_auth_events_occurred_at", vec![AuthEvents::OccurredAt]),
        ] {
            let mut index = Index::create();
            index.name(name).table(AuthEvents::Table);
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }
}
