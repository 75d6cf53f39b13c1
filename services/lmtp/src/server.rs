//! The node-level LMTP server: configuration, the accept loop, the connection limit, shutdown.

use crate::allow::ClientNetwork;
use crate::connection;
use crate::telemetry::{self, Refusal};
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

/// How a delivery refused for quota is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverQuotaReply {
    /// `552 5.2.2` (RFC 3463 "mailbox full"): the MTA bounces the message.
    Permanent,
    /// `452 4.2.2`: the MTA keeps the message and retries, so the user has until the MTA's
    /// queue lifetime to make room.
    Temporary,
}

/// LMTP settings; the defaults suit production.
#[derive(Debug, Clone)]
pub struct LmtpConfig {
    /// Host name in the greeting and the LHLO reply.
    pub hostname: String,
    /// Largest message accepted, advertised as `SIZE` (RFC 1870).
    pub max_message_bytes: u64,
    /// Recipients per transaction; more get `452 4.5.3` (RFC 5321 §4.5.3.1.10), and the MTA
    /// sends them in another transaction.
    pub max_recipients: usize,
    /// Longest command line.
    pub max_line_bytes: usize,
    /// Connections served at once.
    pub max_connections: usize,
    /// Messages up to this size are held in memory; larger ones are spooled to disk as they
    /// arrive.
    pub max_buffered_message_bytes: usize,
    /// Directory for spooled messages; `None` means the OS temporary directory.
    pub spool_dir: Option<PathBuf>,
    pub over_quota: OverQuotaReply,
    /// How long the server waits for a command or for message data before it closes the
    /// connection with `421 4.4.2` (RFC 5321 §4.5.3.2.7 recommends 5 minutes).
    pub idle_timeout: Duration,
    /// After shutdown, how long `serve` waits for transactions in progress to finish.
    pub shutdown_grace: Duration,
    /// Networks clients may connect from (see [`crate::allow`]); others get `421 4.7.1` and
    /// are closed before they hold a connection slot. Default: loopback only.
    pub allowed_clients: Vec<ClientNetwork>,
}

impl Default for LmtpConfig {
    fn default() -> LmtpConfig {
        LmtpConfig {
            hostname: "localhost".to_string(),
            max_message_bytes: 64 * 1024 * 1024,
            max_recipients: 1000,
            max_line_bytes: 4096,
            max_connections: 1000,
            max_buffered_message_bytes: 1024 * 1024,
            spool_dir: None,
            over_quota: OverQuotaReply::Permanent,
            idle_timeout: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(30),
            allowed_clients: ClientNetwork::loopback(),
        }
    }
}

/// One node's LMTP service.
pub struct LmtpServer {
    pub(crate) mail: Arc<dyn MailStore>,
    pub(crate) auth: Arc<dyn Authenticator>,
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) config: LmtpConfig,
    slots: Arc<Semaphore>,
    /// Large messages delivered at once on this node: each holds the whole message in memory
    /// while its summary is computed (mail-parser works on a slice), so this bounds that peak.
    pub(crate) large_delivery_slots: Semaphore,
}

impl LmtpServer {
    pub fn new(
        mail: Arc<dyn MailStore>,
        auth: Arc<dyn Authenticator>,
        blobs: Arc<dyn BlobStore>,
        config: LmtpConfig,
    ) -> Arc<LmtpServer> {
        Arc::new(LmtpServer {
            mail,
            auth,
            blobs,
            slots: Arc::new(Semaphore::new(config.max_connections)),
            large_delivery_slots: Semaphore::new(
                std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            ),
            config,
        })
    }

    pub fn config(&self) -> &LmtpConfig {
        &self.config
    }

    /// Where large messages are spooled.
    pub(crate) fn spool_dir(&self) -> PathBuf {
        self.config
            .spool_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir)
    }

    /// Accepts connections until `shutdown` is cancelled; then every connection finishes the
    /// delivery it is in, answers `421 4.3.2` and closes, and `serve` returns.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let tracker = TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "lmtp accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            if !self
                .config
                .allowed_clients
                .iter()
                .any(|network| network.contains(peer.ip()))
            {
                // Checked before taking a slot, so strangers cannot crowd out the MTA.
                tracing::info!(%peer, "lmtp connection from outside the allowed networks refused");
                telemetry::refused(Refusal::ClientNotAllowed);
                // RFC 3463 X.7.1: delivery not authorized.
                tracker.spawn(refuse(
                    tcp,
                    b"421 4.7.1 Client address not allowed to deliver here\r\n",
                ));
                continue;
            }
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "lmtp connection limit reached");
                telemetry::refused(Refusal::ConnectionLimit);
                tracker.spawn(refuse(
                    tcp,
                    b"421 4.3.2 Too many connections, try again later\r\n",
                ));
                continue;
            };
            let server = self.clone();
            let token = shutdown.clone();
            tracker.spawn(async move {
                connection::handle(server, tcp, peer, token).await;
                drop(permit);
            });
        }
        tracker.close();
        if tokio::time::timeout(self.config.shutdown_grace, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = tracker.len(),
                "lmtp connections still busy after the shutdown grace period"
            );
        }
        Ok(())
    }
}

/// How long a refused peer gets to take its `421` line before the socket is dropped anyway.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers `reply` in place of the greeting and closes (RFC 5321 §3.1: a server may refuse a
/// connection with 421 at greeting time).
async fn refuse(mut tcp: tokio::net::TcpStream, reply: &'static [u8]) {
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        let _ = tcp.write_all(reply).await;
        let _ = tcp.shutdown().await;
    })
    .await;
}
