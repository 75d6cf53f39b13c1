//! The node-level server: configuration, the accept loop, connection limits and shutdown.

use crate::connection;
use crate::hub::NotificationHub;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use yubin_blob::BlobStore;
use yubin_meta_api::{Authenticator, MailStore};

/// Front-end settings.
#[derive(Debug, Clone)]
pub struct ImapConfig {
    /// Receiver limits (line length, literal size, nesting).
    pub limits: yubin_imap_proto::Limits,
    /// Interval of `* OK Still here` while a client idles, so NAT boxes keep the flow alive.
    pub idle_keepalive: Duration,
    /// Allow LOGIN / AUTHENTICATE PLAIN on connections without TLS (dev mode on loopback).
    pub allow_plaintext_auth: bool,
    /// Connections this node serves at once (plain and TLS listeners together).
    pub max_connections: usize,
    /// Host name in the greeting.
    pub greeting_hostname: String,
    /// Failed authentications per connection before `* BYE`.
    pub max_auth_failures: u32,
    /// Directory for APPEND literals over `limits.max_buffered_literal`, spooled to disk on
    /// their way to the blob store; `None` means the OS temporary directory.
    pub spool_dir: Option<PathBuf>,
}

/// Connection timers, separate from [`ImapConfig`] so that configuration stays a plain list of
/// operator settings; the defaults suit production.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// How long a connection may stay unauthenticated without sending anything.
    pub unauthenticated: Duration,
    /// Inactivity autologout of authenticated connections outside IDLE (RFC 3501 §5.4: at least
    /// 30 minutes).
    pub authenticated: Duration,
    /// After shutdown, how long `serve` waits for connections to finish their in-flight command
    /// and say BYE before it returns anyway (a client that stops reading cannot hold it up).
    pub shutdown_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            unauthenticated: Duration::from_secs(60),
            authenticated: Duration::from_secs(30 * 60),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

impl Default for ImapConfig {
    fn default() -> ImapConfig {
        ImapConfig {
            limits: yubin_imap_proto::Limits::default(),
            idle_keepalive: Duration::from_secs(120),
            allow_plaintext_auth: false,
            max_connections: 10_000,
            greeting_hostname: "localhost".to_string(),
            max_auth_failures: 3,
            spool_dir: None,
        }
    }
}

/// One node's IMAP service; cheap to share between listeners.
pub struct ImapServer {
    pub(crate) mail: Arc<dyn MailStore>,
    pub(crate) auth: Arc<dyn Authenticator>,
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    pub(crate) config: ImapConfig,
    pub(crate) timeouts: Timeouts,
    pub(crate) hub: NotificationHub,
    slots: Arc<Semaphore>,
    /// Summaries of streamed (large) APPEND bodies computed at once on this node; each holds
    /// the whole message in memory while it runs, so this bounds that transient peak.
    pub(crate) summary_slots: Semaphore,
}

impl ImapServer {
    /// Where streamed APPEND literals are spooled.
    pub(crate) fn spool_dir(&self) -> PathBuf {
        self.config
            .spool_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir)
    }

    pub fn new(
        mail: Arc<dyn MailStore>,
        auth: Arc<dyn Authenticator>,
        blobs: Arc<dyn BlobStore>,
        tls: Option<Arc<rustls::ServerConfig>>,
        config: ImapConfig,
    ) -> Arc<ImapServer> {
        ImapServer::with_timeouts(mail, auth, blobs, tls, config, Timeouts::default())
    }

    /// [`ImapServer::new`] with explicit connection timers.
    pub fn with_timeouts(
        mail: Arc<dyn MailStore>,
        auth: Arc<dyn Authenticator>,
        blobs: Arc<dyn BlobStore>,
        tls: Option<Arc<rustls::ServerConfig>>,
        config: ImapConfig,
        timeouts: Timeouts,
    ) -> Arc<ImapServer> {
        Arc::new(ImapServer {
            hub: NotificationHub::new(mail.clone()),
            mail,
            auth,
            blobs,
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
            slots: Arc::new(Semaphore::new(config.max_connections)),
            summary_slots: Semaphore::new(
                std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            ),
            config,
            timeouts,
        })
    }

    /// Accepts connections until `shutdown` is cancelled; then sends `* BYE` to every connection,
    /// lets in-flight commands finish, and returns.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        implicit_tls: bool,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        if implicit_tls && self.tls.is_none() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "implicit TLS needs a TLS configuration",
            ));
        }
        let tracker = TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (mut tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "connection limit reached");
                if !implicit_tls {
                    tracker.spawn(async move {
                        let _ = tcp.write_all(b"* BYE Too many connections\r\n").await;
                        let _ = tcp.shutdown().await;
                    });
                }
                continue;
            };
            let server = self.clone();
            let token = shutdown.clone();
            tracker.spawn(async move {
                connection::handle(server, tcp, peer, implicit_tls, token).await;
                drop(permit);
            });
        }
        tracker.close();
        if tokio::time::timeout(self.timeouts.shutdown_grace, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = tracker.len(),
                "connections still busy after the shutdown grace period"
            );
        }
        Ok(())
    }
}
