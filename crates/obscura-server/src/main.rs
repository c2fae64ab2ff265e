//! `obscura-server`: parse configuration, start telemetry, build the app, serve until SIGINT
//! or SIGTERM, flush telemetry.

use std::process::ExitCode;

use clap::Parser as _;
use obscura_server::{telemetry, App, Cli, Settings};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_cli(&cli) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("obscura-server: {err}");
            return ExitCode::from(2);
        }
    };
    let telemetry = match telemetry::init(settings.log_format, settings.otlp.as_ref()) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("obscura-server: {err}");
            return ExitCode::from(2);
        }
    };
    let code = serve(settings).await;
    // Exporters block while flushing; keep that off the async workers.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    code
}

async fn serve(settings: Settings) -> ExitCode {
    let app = match App::build(settings).await {
        Ok(app) => app,
        Err(err) => {
            tracing::error!(error = %err, "start-up failed");
            return ExitCode::FAILURE;
        }
    };
    if let (Ok(api), Ok(mgmt)) = (app.api_addr(), app.mgmt_addr()) {
        tracing::info!(%api, %mgmt, version = env!("CARGO_PKG_VERSION"), "obscura-server listening");
    }
    match app.run(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
