//! Second factors: `users.second_factor` (TOTP active), what each session's
//! user proved (`sessions.amr`, `sessions.auth_time`), the TOTP factors
//! (`totp_factors`: the seed sealed with the data key, never in clear), the
//! recovery codes (`recovery_codes`: keyed digests only) and the log-in
//! challenges waiting for their second step (`mfa_challenges`: digests of
//! the challenge tokens). Every row of the new tables goes with its account
//! (foreign key, cascade).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    SecondFactor,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Amr,
    AuthTime,
}

#[derive(DeriveIden)]
enum TotpFactors {
    Table,
    UserId,
    Seed,
    Active,
    LastStep,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RecoveryCodes {
    Table,
    UserId,
    Digest,
}

#[derive(DeriveIden)]
enum MfaChallenges {
    Table,
    TokenHash,
    UserId,
    ExpiresAt,
    Tries,
}

fn owner(
    table: impl IntoIden + 'static,
    column: impl IntoIden + 'static,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, column)
        .to(Users::Table, Users::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(
                        ColumnDef::new(Users::SecondFactor)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .to_owned(),
            )
            .await?;
        // SQLite adds one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(ColumnDef::new(Sessions::Amr).string_len(64).null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(ColumnDef::new(Sessions::AuthTime).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TotpFactors::Table)
                    .col(
                        ColumnDef::new(TotpFactors::UserId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(TotpFactors::Seed).binary().not_null())
                    .col(ColumnDef::new(TotpFactors::Active).boolean().not_null())
                    .col(ColumnDef::new(TotpFactors::LastStep).big_integer().null())
                    .col(
                        ColumnDef::new(TotpFactors::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .foreign_key(&mut owner(TotpFactors::Table, TotpFactors::UserId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RecoveryCodes::Table)
                    .col(ColumnDef::new(RecoveryCodes::UserId).uuid().not_null())
                    .col(ColumnDef::new(RecoveryCodes::Digest).binary().not_null())
                    .primary_key(
                        Index::create()
                            .col(RecoveryCodes::UserId)
                            .col(RecoveryCodes::Digest),
                    )
                    .foreign_key(&mut owner(RecoveryCodes::Table, RecoveryCodes::UserId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MfaChallenges::Table)
                    .col(
                        ColumnDef::new(MfaChallenges::TokenHash)
                            .binary()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(MfaChallenges::UserId).uuid().not_null())
                    .col(
                        ColumnDef::new(MfaChallenges::ExpiresAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(MfaChallenges::Tries)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .foreign_key(&mut owner(MfaChallenges::Table, MfaChallenges::UserId))
                    .to_owned(),
            )
            .await
    }
}
