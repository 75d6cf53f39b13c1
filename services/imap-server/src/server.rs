//! The node-level server: configuration, the accept loop, connection limits and shutdown.

use crate::connection;
use crate::hub::NotificationHub;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use yubin_blob::BlobStore;
use yubin_meta_api::{Authenticator, MailStore, MetaResult, UserId};

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
    /// Connections one client address may hold on this node at once (IPv4: per address; IPv6:
    /// per /64, what one subscriber is usually given); 0 means no limit. The next one gets
    /// `* BYE` (RFC 3501 §7.1.5) so one host cannot take every slot.
    pub max_connections_per_address: usize,
    /// Whether loopback peers count against `max_connections_per_address`. Off by default: a
    /// loopback peer is a local process (a proxy, through which every client shares one
    /// address, a health checker, a load generator), not a remote host. Tests turn it on.
    pub limit_loopback_per_address: bool,
    /// Longest line, literal and command accepted before authentication, in bytes: what
    /// LOGIN / AUTHENTICATE (with SASL-IR and bearer tokens) need, and no more. Raised to
    /// `limits` once the client has authenticated.
    pub pre_auth_max_bytes: usize,
    /// Host name in the greeting.
    pub greeting_hostname: String,
    /// Failed authentications per connection before `* BYE`.
    pub max_auth_failures: u32,
    /// Directory for APPEND literals over `limits.max_buffered_literal`, spooled to disk on
    /// their way to the blob store; `None` means the OS temporary directory.
    pub spool_dir: Option<PathBuf>,
    /// On shutdown, the connections get their `* BYE` in batches spread over this window, so
    /// that thousands of clients do not all reconnect (and log in) elsewhere in the same
    /// instant. Zero sends every BYE at once.
    pub drain_window: Duration,
    /// METADATA (RFC 5464) limits.
    pub metadata: MetadataLimits,
    /// How much of each message's header SORT and THREAD consider (RFC 5256).
    pub sort_thread: SortThreadLimits,
    /// Most flags one STORE or APPEND message may name; more get `NO [LIMIT]` (RFC 5530 §3)
    /// before the metadata store is asked. The store limits keywords per message (64 by
    /// default), so a longer list can only be refused there, after more work.
    pub max_flags_per_command: usize,
    /// Messages FETCH prepares at once: the bodies of the next ones are read from the blob
    /// store while earlier ones are written, so S3 round trips overlap (Dovecot's
    /// `mail_prefetch_count` does the same for its object storage). 1: one at a time.
    pub fetch_prefetch: usize,
    /// Bodies (the byte range a FETCH needs of a message) larger than this are not read ahead
    /// but when their turn comes: what one FETCH holds ahead is at most `fetch_prefetch` × this.
    pub fetch_prefetch_max_bytes: u64,
    /// Login names of the accounts that may set quotas with SETQUOTA (RFC 9208 §4.1), their own
    /// (root `""`) and other accounts' (root `#user/<name>`). Empty: nobody; quotas are then set
    /// through the admin API only.
    pub quota_admins: Vec<String>,
}

/// Limits of the METADATA extension (RFC 5464), per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataLimits {
    /// Largest value SETMETADATA accepts, in octets; larger ones get `[METADATA MAXSIZE n]`
    /// (RFC 5464 §4.3).
    pub max_entry_size: u32,
    /// Most entries one mailbox (or the server) may hold; a SETMETADATA that would exceed it gets
    /// `[METADATA TOOMANY]` (RFC 5464 §4.3).
    pub max_entries: u32,
}

impl Default for MetadataLimits {
    fn default() -> MetadataLimits {
        // 64 KiB × 128 entries bounds what one GETMETADATA of one mailbox can return to 8 MiB.
        MetadataLimits {
            max_entry_size: 64 * 1024,
            max_entries: 128,
        }
    }
}

/// Bounds on the header data SORT and THREAD (RFC 5256) look at per message, so that one
/// message with a huge References or Subject field costs no more than an ordinary one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortThreadLimits {
    /// THREAD=REFERENCES uses only the last this many message ids of a References field. The
    /// last ones are the nearest ancestors (RFC 5322 §3.6.4: a reply's References is its
    /// parent's plus the parent's id), which is what places a message in its thread; the rest
    /// only repair gaps higher up a thread when intermediate messages are missing.
    pub max_references: usize,
    /// SORT and THREAD consider only the first this many bytes of a Subject (for the base
    /// subject, RFC 5256 §2.1) or address field (for its first mailbox, §3).
    pub max_sort_field_bytes: usize,
}

impl Default for SortThreadLimits {
    fn default() -> SortThreadLimits {
        // 64 ancestors is deeper than real discussions nest; 4 KiB is four times the longest
        // line RFC 5322 §2.1.1 allows an unfolded Subject to start with.
        SortThreadLimits {
            max_references: 64,
            max_sort_field_bytes: 4096,
        }
    }
}

/// Connection timers, separate from [`ImapConfig`] so that configuration stays a plain list of
/// operator settings; the defaults suit production.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// How long after connecting a client has to authenticate, however much it sends
    /// meanwhile (a client dripping one byte at a time does not extend it).
    pub login: Duration,
    /// Inactivity autologout of authenticated connections outside IDLE (RFC 3501 §5.4: at least
    /// 30 minutes).
    pub authenticated: Duration,
    /// Longest one IDLE command may last before the session is logged out (RFC 2177 §3: clients
    /// re-issue IDLE at least every 29 minutes, since servers may log out inactive clients).
    /// Hints, keepalives and a revoked account end it sooner; this bounds a session nobody reads.
    pub idle_max: Duration,
    /// Slowest average rate at which a streamed APPEND literal must arrive, in bytes per second:
    /// a literal of `n` octets gets at most `n / literal_min_rate` seconds plus `literal_grace`
    /// in all (and `authenticated` between two reads), so a client dripping a byte before each
    /// inactivity deadline cannot hold a connection and a spool file for days.
    pub literal_min_rate: u64,
    /// What a streamed literal gets on top of its size over `literal_min_rate`: the round trip
    /// and a slow start.
    pub literal_grace: Duration,
    /// After shutdown, how long `serve` waits for connections to finish their in-flight command
    /// and say BYE before it returns anyway (a client that stops reading cannot hold it up).
    pub shutdown_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            login: Duration::from_secs(60),
            authenticated: Duration::from_secs(30 * 60),
            idle_max: Duration::from_secs(30 * 60),
            literal_min_rate: 4096,
            literal_grace: Duration::from_secs(60),
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
            max_connections_per_address: 200,
            limit_loopback_per_address: false,
            pre_auth_max_bytes: 8 * 1024,
            greeting_hostname: "localhost".to_string(),
            max_auth_failures: 3,
            spool_dir: None,
            drain_window: Duration::ZERO,
            metadata: MetadataLimits::default(),
            sort_thread: SortThreadLimits::default(),
            max_flags_per_command: 128,
            fetch_prefetch: 8,
            fetch_prefetch_max_bytes: 1024 * 1024,
            quota_admins: Vec::new(),
        }
    }
}

/// How long resolved quota-administrator account ids are reused.
const QUOTA_ADMIN_REFRESH: Duration = Duration::from_secs(60);

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
    /// Open connections per client address (see [`ImapConfig::max_connections_per_address`]).
    per_address: Arc<AddressCounts>,
    /// Summaries of streamed (large) APPEND bodies computed at once on this node; each holds
    /// the whole message in memory while it runs, so this bounds that transient peak.
    pub(crate) summary_slots: Semaphore,
    /// The authenticator validates bearer tokens: AUTH=OAUTHBEARER and AUTH=XOAUTH2 are offered.
    bearer_auth: std::sync::atomic::AtomicBool,
    /// The accounts named in [`ImapConfig::quota_admins`], resolved at most once a minute so a
    /// login does not cost one lookup per admin name.
    quota_admin_ids: tokio::sync::Mutex<Option<(std::time::Instant, Vec<UserId>)>>,
}

impl ImapServer {
    /// Where streamed APPEND literals are spooled.
    pub(crate) fn spool_dir(&self) -> PathBuf {
        self.config
            .spool_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir)
    }

    /// Offers (or stops offering) the bearer-token mechanisms OAUTHBEARER and XOAUTH2; set from
    /// [`Authenticator::accepts_bearer_tokens`], which a remote meta may answer only later.
    pub fn set_bearer_auth(&self, enabled: bool) {
        self.bearer_auth
            .store(enabled, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn bearer_auth(&self) -> bool {
        self.bearer_auth.load(std::sync::atomic::Ordering::Relaxed)
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
        crate::telemetry::register_node_metrics();
        Arc::new(ImapServer {
            hub: NotificationHub::new(mail.clone()),
            mail,
            auth,
            blobs,
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
            slots: Arc::new(Semaphore::new(config.max_connections)),
            per_address: Arc::new(AddressCounts::default()),
            summary_slots: Semaphore::new(
                std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            ),
            config,
            timeouts,
            bearer_auth: std::sync::atomic::AtomicBool::new(false),
            quota_admin_ids: tokio::sync::Mutex::new(None),
        })
    }

    /// Whether `user` is one of the configured quota administrators (RFC 9208 SETQUOTA).
    pub(crate) async fn is_quota_admin(&self, user: UserId) -> MetaResult<bool> {
        if self.config.quota_admins.is_empty() {
            return Ok(false);
        }
        let mut cached = self.quota_admin_ids.lock().await;
        if let Some((at, ids)) = cached.as_ref()
            && at.elapsed() < QUOTA_ADMIN_REFRESH
        {
            return Ok(ids.contains(&user));
        }
        let mut ids = Vec::with_capacity(self.config.quota_admins.len());
        let mut complete = true;
        for name in &self.config.quota_admins {
            match self.auth.lookup(name).await? {
                Some(id) => ids.push(id),
                None => complete = false,
            }
        }
        let admin = ids.contains(&user);
        // A name that does not resolve yet (the account is created later) is looked up again
        // at the next login instead of being cached as absent.
        *cached = complete.then(|| (std::time::Instant::now(), ids));
        Ok(admin)
    }

    /// Accepts connections until `shutdown` is cancelled; then stops accepting (the port is
    /// closed at once, so new clients go to other nodes), tells the connections `* BYE` in
    /// batches spread over [`ImapConfig::drain_window`], lets in-flight commands finish, and
    /// returns. A connection gets its BYE only between commands: a command being executed
    /// completes and is answered first, so nothing a client was told OK is cut short.
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
        let open = OpenConnections::default();
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
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
                crate::telemetry::connection_refused("node_limit");
                refuse(
                    &tracker,
                    tcp,
                    implicit_tls,
                    b"* BYE Too many connections\r\n",
                );
                continue;
            };
            let per_address = if peer.ip().to_canonical().is_loopback()
                && !self.config.limit_loopback_per_address
            {
                0
            } else {
                self.config.max_connections_per_address
            };
            let Some(address_slot) = self.per_address.acquire(peer.ip(), per_address) else {
                tracing::info!(%peer, "per-address connection limit reached");
                crate::telemetry::connection_refused("address_limit");
                refuse(
                    &tracker,
                    tcp,
                    implicit_tls,
                    b"* BYE Too many connections from your address\r\n",
                );
                continue;
            };
            let server = self.clone();
            let registered = open.register();
            tracker.spawn(async move {
                connection::handle(server, tcp, peer, implicit_tls, registered.token.clone()).await;
                drop(registered);
                drop(address_slot);
                drop(permit);
            });
        }
        drop(listener);
        tracker.close();
        drain(&open, self.config.drain_window).await;
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

/// Turns a connection away. On the plain port it gets a `* BYE` greeting (RFC 3501 §7.1.5); on
/// the implicit-TLS port there is no session to say it in without a handshake, which is what the
/// refusal saves, so it is just closed.
fn refuse(tracker: &TaskTracker, mut tcp: TcpStream, implicit_tls: bool, bye: &'static [u8]) {
    if implicit_tls {
        return;
    }
    tracker.spawn(async move {
        // A client that does not read cannot hold the task: the BYE fits the socket buffer.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let _ = tcp.write_all(bye).await;
            let _ = tcp.shutdown().await;
        })
        .await;
    });
}

/// What connections are counted under: an IPv4 address (also when it arrives IPv4-mapped on
/// an IPv6 socket), or the /64 prefix of an IPv6 address, since one host or subscriber is
/// routinely given a whole /64 and can pick any address in it.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

/// Open connections per address key, node-wide (every listener of this server).
#[derive(Default)]
struct AddressCounts {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection; dropping it gives the slot back.
struct AddressSlot {
    counts: Arc<AddressCounts>,
    key: IpAddr,
}

impl AddressCounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Every critical section is one map operation; a poisoned lock holds a consistent map.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for one more connection from `ip`, unless it already holds `max` (0: no limit).
    fn acquire(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let key = address_key(ip);
        let mut counts = self.lock();
        let n = counts.entry(key).or_insert(0);
        if max > 0 && *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            counts: self.clone(),
            key,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                // The map only holds addresses with open connections.
                counts.remove(&self.key);
            }
        }
    }
}

/// The live connections of one listener, each with the token that tells it to say BYE.
#[derive(Default, Clone)]
struct OpenConnections {
    inner: Arc<OpenInner>,
}

#[derive(Default)]
struct OpenInner {
    next_id: AtomicU64,
    /// In accept order, so the oldest connections are drained first.
    tokens: Mutex<BTreeMap<u64, CancellationToken>>,
}

/// A connection's entry; dropping it (the connection ended) removes it.
struct Registered {
    open: OpenConnections,
    id: u64,
    token: CancellationToken,
}

impl OpenConnections {
    fn register(&self) -> Registered {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        self.lock().insert(id, token.clone());
        Registered {
            open: self.clone(),
            id,
            token,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, CancellationToken>> {
        // Every critical section is one map operation; a poisoned lock holds a consistent map.
        self.inner.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn snapshot(&self) -> Vec<CancellationToken> {
        self.lock().values().cloned().collect()
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.open.lock().remove(&self.id);
    }
}

/// Shortest pause between two BYE batches: below it, batching buys nothing over one burst.
const MIN_BATCH_INTERVAL: Duration = Duration::from_millis(50);

/// The batch plan of a drain: how many batches for `connections` over `window`.
fn batch_count(connections: usize, window: Duration) -> usize {
    if connections == 0 || window.is_zero() {
        return 1;
    }
    let slots = (window.as_millis() / MIN_BATCH_INTERVAL.as_millis()).max(1);
    connections.min(usize::try_from(slots).unwrap_or(usize::MAX))
}

/// Tells every open connection to say BYE: batch `b` of `n` at `b/n` of the window, so the last
/// batch goes out one batch interval before the window ends. Connections that end on their own
/// meanwhile are simply skipped (cancelling a finished connection's token does nothing).
async fn drain(open: &OpenConnections, window: Duration) {
    let tokens = open.snapshot();
    let batches = batch_count(tokens.len(), window);
    tracing::info!(
        connections = tokens.len(),
        batches,
        window_ms = window.as_millis() as u64,
        "draining connections"
    );
    let started = tokio::time::Instant::now();
    let total = tokens.len();
    for b in 0..batches {
        let at = started + window.mul_f64(b as f64 / batches as f64);
        tokio::time::sleep_until(at).await;
        for token in &tokens[b * total / batches..(b + 1) * total / batches] {
            token.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_count_per_ipv4_address_and_per_ipv6_slash_64() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(address_key(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(address_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa::1")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            address_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            address_key(ip("2001:db8:1:2::9"))
        );
        assert_ne!(address_key(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));

        let counts = Arc::new(AddressCounts::default());
        let a = counts.acquire(ip("2001:db8::1"), 2).expect("first");
        let b = counts
            .acquire(ip("2001:db8::2"), 2)
            .expect("second, same /64");
        assert!(
            counts.acquire(ip("2001:db8::3"), 2).is_none(),
            "third refused"
        );
        assert!(
            counts.acquire(ip("2001:db8:0:1::3"), 2).is_some(),
            "another /64"
        );
        drop(a);
        let c = counts
            .acquire(ip("2001:db8::3"), 2)
            .expect("a slot was freed");
        drop((b, c));
        assert!(
            counts.lock().is_empty(),
            "no entry is kept for closed connections"
        );
        assert!(counts.acquire(ip("192.0.2.1"), 0).is_some(), "0: no limit");
    }

    #[test]
    fn batches_are_bounded_by_connections_and_by_the_window() {
        assert_eq!(batch_count(0, Duration::from_secs(10)), 1);
        assert_eq!(batch_count(200, Duration::ZERO), 1);
        assert_eq!(batch_count(3, Duration::from_secs(10)), 3);
        // 10 s at one batch per 50 ms at most: 200 batches of 5 for 1 000 connections.
        assert_eq!(batch_count(1_000, Duration::from_secs(10)), 200);
        assert_eq!(batch_count(10, Duration::from_millis(10)), 1);
    }

    #[tokio::test]
    async fn drain_spreads_the_byes_over_the_window_and_reaches_everyone() {
        let open = OpenConnections::default();
        let conns: Vec<Registered> = (0..8).map(|_| open.register()).collect();
        let window = Duration::from_millis(800);
        let started = tokio::time::Instant::now();
        let watcher = {
            let tokens: Vec<CancellationToken> = conns.iter().map(|c| c.token.clone()).collect();
            tokio::spawn(async move {
                let mut at = Vec::new();
                for t in tokens {
                    t.cancelled().await;
                    at.push(started.elapsed());
                }
                at
            })
        };
        drain(&open, window).await;
        let at = watcher.await.expect("join");
        assert_eq!(at.len(), 8, "every connection is told");
        assert!(at[0] < window / 4, "the first batch goes at once: {at:?}");
        // 8 batches at 0, 100, …, 700 ms (timers may fire a little late).
        assert!(
            at[7] < window + window / 4,
            "the last batch goes within the window: {at:?}"
        );
        assert!(
            at[7] >= window * 7 / 8 - Duration::from_millis(5),
            "batches are spread, not a burst: {at:?}"
        );
        drop(conns);
        assert!(
            open.snapshot().is_empty(),
            "ended connections leave the registry"
        );
    }
}
