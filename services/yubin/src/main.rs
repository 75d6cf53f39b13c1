//! `yubin`: one binary, one role per subcommand (see docs/architecture.md).

mod cli;
mod config;
mod http;
mod roles;
mod telemetry;
mod user;

use clap::Parser;
use cli::{Cli, Command};
use tokio_util::sync::CancellationToken;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::User(args) = cli.command {
        // The admin CLI is a short-lived client: no telemetry, a small runtime.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        return rt.block_on(user::run(args));
    }
    telemetry::init()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        match cli.command {
            Command::Dev(args) => roles::dev::run(args, shutdown).await,
            Command::Meta(args) => roles::meta::run(args, shutdown).await,
            Command::Imap(args) => roles::imap::run(args, shutdown).await,
            Command::User(_) => unreachable!("handled above"),
        }
    })
}

/// SIGTERM (Kubernetes) or Ctrl-C starts a graceful shutdown: listeners close, connections get
/// `* BYE` and in-flight commands finish.
async fn cancel_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for sigterm");
                let _ = tokio::signal::ctrl_c().await;
                shutdown.cancel();
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown requested");
    shutdown.cancel();
}
