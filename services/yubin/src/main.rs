//! `yubin`: one binary, one role per subcommand (see docs/architecture.md).

mod cli;
mod config;
mod http;
mod roles;
mod service_auth;
mod telemetry;
mod user;

use clap::Parser;
use cli::{Cli, Command};
use tokio_util::sync::CancellationToken;

/// mimalloc rather than glibc's malloc for every role: under the mixed load glibc's allocator
/// (`_int_malloc`, `malloc_consolidate`, `unlink_chunk`) took about a quarter of `yubin meta`'s
/// CPU and a tenth of `yubin imap`'s — many short-lived buffers (gRPC frames, Redis replies,
/// bodies) freed on other Tokio workers than the ones that allocated them. See
/// docs/performance.md ("The allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let command = match Cli::parse().command.into_invocation() {
        cli::Invocation::Admin(admin) => {
            // The admin CLI is a short-lived client: no telemetry, a small runtime.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            return rt.block_on(user::run(admin));
        }
        cli::Invocation::Role(role) => *role,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let role = match &command {
        Command::Dev(_) => "dev",
        Command::Meta(_) => "meta",
        Command::Imap(_) => "imap",
        Command::Lmtp(_) => "lmtp",
        Command::User(_) | Command::Alias(_) | Command::Domain(_) | Command::Mailbox(_) => {
            unreachable!("admin commands are handled above")
        }
    };
    let telemetry = {
        // The OTLP exporter's channel is spawned on the runtime.
        let _runtime = rt.enter();
        telemetry::init(role)?
    };
    let result = rt.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        match command {
            Command::Dev(args) => roles::dev::run(args, shutdown).await,
            Command::Meta(args) => roles::meta::run(args, shutdown).await,
            Command::Imap(args) => roles::imap::run(args, shutdown).await,
            Command::Lmtp(args) => roles::lmtp::run(args, shutdown).await,
            Command::User(_) | Command::Alias(_) | Command::Domain(_) | Command::Mailbox(_) => {
                unreachable!("admin commands are handled above")
            }
        }
    });
    // The last spans (the drain, the final commands) are flushed before the process exits.
    telemetry.shutdown();
    result
}

/// SIGTERM (Kubernetes) or Ctrl-C starts a graceful shutdown: listeners close, `/readyz` turns
/// 503, connections get `* BYE` spread over the drain window and in-flight commands finish.
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
    http::mark_shutting_down();
    shutdown.cancel();
}
