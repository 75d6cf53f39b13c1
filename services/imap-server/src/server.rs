//! The node-level server: configuration, the accept loop, connection limits and shutdown.

use crate::connection;
use crate::hub::NotificationHub;
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
    /// How long a connection may stay unauthenticated without sending anything.
    pub unauthenticated_timeout: Duration,
    /// Inactivity autologout of authenticated connections outside IDLE (RFC 3501 §5.4: at least
    /// 30 minutes).
    pub authenticated_timeout: Duration,
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
            unauthenticated_timeout: Duration::from_secs(60),
            authenticated_timeout: Duration::from_secs(30 * 60),
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
    pub(crate) hub: NotificationHub,
    slots: Arc<Semaphore>,
}

impl ImapServer {
    pub fn new(
        mail: Arc<dyn MailStore>,
        auth: Arc<dyn Authenticator>,
        blobs: Arc<dyn BlobStore>,
        tls: Option<Arc<rustls::ServerConfig>>,
        config: ImapConfig,
    ) -> Arc<ImapServer> {
        Arc::new(ImapServer {
            hub: NotificationHub::new(mail.clone()),
            mail,
            auth,
            blobs,
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
            slots: Arc::new(Semaphore::new(config.max_connections)),
            config,
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
        tracker.wait().await;
        Ok(())
    }
}
