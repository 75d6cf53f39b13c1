//! One module per server role.

pub mod dev;
pub mod imap;
pub mod lmtp;
pub mod meta;

use anyhow::Context;
use tokio::net::TcpListener;

/// Binds a listener and announces the address actually bound (port 0 picks a free one), in a
/// stable form tests and operators can read: `<what> listening on <addr>`.
pub async fn bind(what: &str, addr: &str) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {what} on {addr}"))?;
    let local = listener.local_addr()?;
    println!("{what} listening on {local}");
    tracing::info!(%local, "{what} listening");
    Ok(listener)
}

/// Whether an address only accepts connections from this machine.
pub fn is_loopback(addr: &str) -> bool {
    addr.parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback())
}

/// Waits for the role's servers; the first to fail stops the others.
pub async fn wait_all(
    mut tasks: tokio::task::JoinSet<std::io::Result<()>>,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        let outcome = match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow::Error::from(e)),
            Err(e) => Err(anyhow::Error::from(e)),
        };
        if let Err(e) = outcome {
            tracing::error!(error = %e, "server stopped");
            shutdown.cancel();
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
