//! `portcullis migrate`: apply database migrations and exit.

use portcullis_api::settings::Settings;
use portcullis_api::telemetry;
use portcullis_api::wiring::{migrate, open_database};

use crate::cli::runtime;

/// Applies the migrations to the configured database.
///
/// # Errors
/// Bad settings, or a database that cannot be reached or migrated.
pub fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let _telemetry = telemetry::init(settings.log_format)?;
    runtime()?.block_on(async {
        let db = open_database(&settings).await?;
        migrate(&db, &settings).await?;
        tracing::info!("migrations applied");
        anyhow::Ok(())
    })
}
