//! Every schema change of Portcullis, forward-only, in the order applied.
//!
//! The schema comes from these migrations alone; the sea-orm entities in
//! `portcullis-infra` describe it but never create it. Each migration must run
//! unchanged on SQLite and PostgreSQL, so only portable column types are used:
//!
//! - identifiers are `uuid` columns (native `uuid` on PostgreSQL, a 16-byte
//!   blob on SQLite as sqlx binds them). Both compare byte-wise, so ordering by
//!   id follows UUID byte order, which for UUIDv7 is creation order;
//! - instants are `BIGINT` Unix epoch milliseconds, UTC: an integer sorts and
//!   compares the same way on both backends, whereas SQLite has no timestamp
//!   type and would compare text.
//!
//! Never edit a migration that has shipped: add a new one.

use sea_orm_migration::prelude::*;

/// Re-exported so callers can run `Migrator::up` without naming sea-orm-migration.
pub use sea_orm_migration::MigratorTrait;

mod m20261124_120000_create_users;
mod m20261124_120100_create_sessions;
mod m20261124_120200_create_refresh_tokens;
mod m20261124_120300_create_tasks;
mod m20261124_130000_create_auth_events;
mod m20261201_120000_create_session_revocations;
mod m20261201_130000_normalize_emails;
mod m20261205_120000_create_account_lifecycle;
mod m20261205_130000_create_second_factors;

/// Applies Portcullis' migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_120000_create_users::Migration),
            Box::new(m20261124_120100_create_sessions::Migration),
            Box::new(m20261124_120200_create_refresh_tokens::Migration),
            Box::new(m20261124_120300_create_tasks::Migration),
            Box::new(m20261124_130000_create_auth_events::Migration),
            Box::new(m20261201_120000_create_session_revocations::Migration),
            Box::new(m20261201_130000_normalize_emails::Migration),
            Box::new(m20261205_120000_create_account_lifecycle::Migration),
            Box::new(m20261205_130000_create_second_factors::Migration),
        ]
    }
}
