//! Account lifecycle by email: `users.email_verified_at`, the one-time
//! tokens of email links (`account_tokens`) and the transactional outbox of
//! messages (`email_outbox`).
//!
//! `account_tokens` holds digests only, one row per live token, deleted when
//! used, voided or its account goes (foreign key, cascade). `email_outbox`
//! has no foreign key on purpose: the notice of a deletion must outlive the
//! account. Its `payload` (JSON, it may hold a one-time token) is set to
//! NULL once the message is delivered, expired or given up on.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    EmailVerifiedAt,
}

#[derive(DeriveIden)]
enum AccountTokens {
    Table,
    TokenHash,
    UserId,
    Purpose,
    NewEmail,
    SessionId,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum EmailOutbox {
    Table,
    Id,
    UserId,
    Kind,
    Recipient,
    Payload,
    CreatedAt,
    ExpiresAt,
    Attempts,
    NextAttemptAt,
    Status,
    SentAt,
    LastError,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Unix epoch milliseconds, UTC (see the crate docs); NULL: unconfirmed.
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(ColumnDef::new(Users::EmailVerifiedAt).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AccountTokens::Table)
                    .col(
                        ColumnDef::new(AccountTokens::TokenHash)
                            .binary()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(AccountTokens::UserId).uuid().not_null())
                    .col(
                        ColumnDef::new(AccountTokens::Purpose)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(AccountTokens::NewEmail).text().null())
                    .col(ColumnDef::new(AccountTokens::SessionId).uuid().null())
                    .col(
                        ColumnDef::new(AccountTokens::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AccountTokens::ExpiresAt)
                            .big_integer()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_account_tokens_user")
                            .from(AccountTokens::Table, AccountTokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_account_tokens_user_purpose")
                    .table(AccountTokens::Table)
                    .col(AccountTokens::UserId)
                    .col(AccountTokens::Purpose)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(EmailOutbox::Table)
                    .col(
                        ColumnDef::new(EmailOutbox::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(EmailOutbox::UserId).uuid().not_null())
                    .col(ColumnDef::new(EmailOutbox::Kind).string_len(40).not_null())
                    .col(ColumnDef::new(EmailOutbox::Recipient).text().not_null())
                    .col(ColumnDef::new(EmailOutbox::Payload).text().null())
                    .col(
                        ColumnDef::new(EmailOutbox::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(EmailOutbox::ExpiresAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(EmailOutbox::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(EmailOutbox::NextAttemptAt)
                            .big_integer()
                            .not_null(),
                    )
                    // pending, sent, expired, failed
                    .col(
                        ColumnDef::new(EmailOutbox::Status)
                            .string_len(16)
                            .not_null(),
                    )
                    .col(ColumnDef::new(EmailOutbox::SentAt).big_integer().null())
                    .col(
                        ColumnDef::new(EmailOutbox::LastError)
                            .string_len(512)
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        // The worker claims `status = 'pending' AND next_attempt_at <= now`.
        manager
            .create_index(
                Index::create()
                    .name("ix_email_outbox_due")
                    .table(EmailOutbox::Table)
                    .col(EmailOutbox::Status)
                    .col(EmailOutbox::NextAttemptAt)
                    .to_owned(),
            )
            .await
    }
}
