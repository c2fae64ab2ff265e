//! `obscura-server`: parse configuration, start telemetry, build the app, serve until SIGINT
//! or SIGTERM, flush telemetry. Or run a maintenance command (`backup`) and exit.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser as _;
use obscura_server::adapters::store::{sqlite::backup::backup_into, Backend};
use obscura_server::config::cli::Command;
use obscura_server::config::settings::database_url;
use obscura_server::{telemetry, App, Cli, Settings};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Backup { output }) = &cli.command {
        return backup(&cli, output).await;
    }
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

/// `obscura-server backup --output <file>`: an online copy of the embedded database.
async fn backup(cli: &Cli, output: &Path) -> ExitCode {
    let url = match database_url(cli) {
        Ok(url) => url,
        Err(err) => {
            eprintln!("obscura-server: {err}");
            return ExitCode::from(2);
        }
    };
    if Backend::of(&url) != Some(Backend::Sqlite) {
        eprintln!("obscura-server: backup copies the embedded SQLite database; back up PostgreSQL with pg_dump (docs/operations.md)");
        return ExitCode::from(2);
    }
    match backup_into(&url, output).await {
        Ok(size) => {
            println!("backed up {url} to {} ({size} bytes)", output.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("obscura-server: backup failed: {err}");
            ExitCode::FAILURE
        }
    }
}
