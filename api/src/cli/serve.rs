//! `portcullis serve` (the default): run the HTTP server until SIGINT or
//! SIGTERM, then finish in-flight requests and exit.

use portcullis_api::app::Application;
use portcullis_api::settings::Settings;
use portcullis_api::telemetry;
use portcullis_api::wiring::load_keys;

use crate::cli::runtime;

/// Serves until a shutdown signal.
///
/// # Errors
/// Any start-up failure, or the server failing.
pub fn run() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let mut telemetry = telemetry::init(settings.log_format)?;
    if settings.jwt_secret.is_none() {
        // Fail before binding if keys are unusable.
        load_keys(&settings)?;
    }
    let result = runtime()?.block_on(async {
        let app = Application::build(settings).await?;
        app.run_until(shutdown_signal()).await
    });
    // Outside the runtime: the exporters flush on their own threads.
    telemetry.shutdown();
    result
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
