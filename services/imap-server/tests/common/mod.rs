//! Test harness: the server in-process on 127.0.0.1:0 over the embedded metadata store (or a
//! real `redis-server`, [`start_redis`]) and a blob store in a temporary directory, plus a raw
//! line-oriented client. The store is wrapped to count the calls the front-end makes.
#![allow(dead_code)]

use async_trait::async_trait;
use futures::StreamExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use yubin_blob::{FaultPolicy, FaultyBlobStore, FsBlobStore};
use yubin_imap::{ImapConfig, ImapServer, Timeouts};
use yubin_meta_api::*;
use yubin_meta_store::EmbeddedStore;

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Password check over the account store: the test "hash" is `test:<password>`.
pub struct TestAuth(pub Arc<dyn AccountStore>);

#[async_trait]
impl Authenticator for TestAuth {
    async fn authenticate(
        &self,
        name: &str,
        password: &str,
        _client: Option<std::net::IpAddr>,
    ) -> MetaResult<UserId> {
        match self.0.user_by_name(&name.to_ascii_lowercase()).await? {
            Some(u) if !u.disabled && u.password_hash == format!("test:{password}") => Ok(u.id),
            _ => Err(MetaError::AuthenticationFailed),
        }
    }
    async fn lookup(&self, name: &str) -> MetaResult<Option<UserId>> {
        Ok(self
            .0
            .user_by_name(&name.to_ascii_lowercase())
            .await?
            .map(|u| u.id))
    }
}

/// How a wrapped store's watch stream misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchFault {
    None,
    /// Every watch stream ends at once (a pub/sub connection that keeps dropping).
    Ends,
    /// The stream stays open but never delivers anything (silently lost hints).
    Silent,
    /// The watch is confirmed only after a delay (a slow meta or pub/sub subscribe); changes
    /// committed during the delay send no hint to it.
    SlowStart,
}

/// Appends raced against `\Recent` claims: while armed, each `claim_recent` through the
/// wrapping store is preceded and followed by one append of a copy of `message`, as if another
/// node delivered it between the session's catch-up read and its claim, and right after.
#[derive(Default)]
pub struct ClaimRace {
    armed: std::sync::Mutex<Option<ArmedRace>>,
}

struct ArmedRace {
    user: UserId,
    mailbox: String,
    message: NewMessage,
    claims_left: usize,
}

impl ClaimRace {
    /// Races the next `claims` claims.
    pub fn arm(&self, user: UserId, mailbox: &str, message: NewMessage, claims: usize) {
        *self.armed.lock().expect("race lock") = Some(ArmedRace {
            user,
            mailbox: mailbox.to_string(),
            message,
            claims_left: claims,
        });
    }

    /// Stops racing; returns how many armed claims were not raced.
    pub fn disarm(&self) -> usize {
        self.armed
            .lock()
            .expect("race lock")
            .take()
            .map_or(0, |a| a.claims_left)
    }

    /// The append to race the current claim with, if armed (and counts the claim).
    fn turn(&self) -> Option<(UserId, String, NewMessage)> {
        let mut armed = self.armed.lock().expect("race lock");
        let a = armed.as_mut().filter(|a| a.claims_left > 0)?;
        a.claims_left -= 1;
        Some((a.user, a.mailbox.clone(), a.message.clone()))
    }
}

/// Calls the front-end made to the store, by method (only those the flag-read tests look at).
#[derive(Default, Debug)]
pub struct StoreCalls {
    pub fetch: AtomicUsize,
    /// UIDs asked for by every `fetch` together.
    pub fetched_uids: AtomicUsize,
    pub search: AtomicUsize,
    pub search_indexed: AtomicUsize,
    pub changes_since: AtomicUsize,
    pub store_flags: AtomicUsize,
}

/// A snapshot of [`StoreCalls`], to compare before and after a command.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Calls {
    pub fetch: usize,
    pub fetched_uids: usize,
    pub search: usize,
    pub search_indexed: usize,
    pub changes_since: usize,
    pub store_flags: usize,
}

impl StoreCalls {
    pub fn now(&self) -> Calls {
        let n = |c: &AtomicUsize| c.load(Ordering::SeqCst);
        Calls {
            fetch: n(&self.fetch),
            fetched_uids: n(&self.fetched_uids),
            search: n(&self.search),
            search_indexed: n(&self.search_indexed),
            changes_since: n(&self.changes_since),
            store_flags: n(&self.store_flags),
        }
    }
}

impl std::ops::Sub for Calls {
    type Output = Calls;
    fn sub(self, o: Calls) -> Calls {
        Calls {
            fetch: self.fetch - o.fetch,
            fetched_uids: self.fetched_uids - o.fetched_uids,
            search: self.search - o.search,
            search_indexed: self.search_indexed - o.search_indexed,
            changes_since: self.changes_since - o.changes_since,
            store_flags: self.store_flags - o.store_flags,
        }
    }
}

/// A MailStore that delegates to a real store (embedded or Redis) but can break `watch` and
/// race claims, and counts calls.
pub struct FaultyWatch {
    pub inner: Arc<dyn MailStore>,
    pub fault: WatchFault,
    /// Number of `watch` calls (one per user per node is the contract of the hub).
    pub watch_calls: Arc<AtomicUsize>,
    pub race: Arc<ClaimRace>,
    pub calls: Arc<StoreCalls>,
    /// Whether SELECT snapshots keep each message's flags; without, the node behaves as over a
    /// meta service from before snapshots carried them (its sessions read flags from the store).
    pub snapshot_flags: bool,
}

#[async_trait]
impl MailStore for FaultyWatch {
    async fn list_mailboxes(&self, u: UserId) -> MetaResult<Vec<MailboxInfo>> {
        self.inner.list_mailboxes(u).await
    }
    async fn list_subscriptions(&self, u: UserId) -> MetaResult<Vec<String>> {
        self.inner.list_subscriptions(u).await
    }
    async fn set_subscribed(&self, u: UserId, n: &str, s: bool) -> MetaResult<()> {
        self.inner.set_subscribed(u, n, s).await
    }
    async fn create_mailbox(
        &self,
        u: UserId,
        n: &str,
        s: Option<SpecialUse>,
    ) -> MetaResult<MailboxInfo> {
        self.inner.create_mailbox(u, n, s).await
    }
    async fn delete_mailbox(&self, u: UserId, n: &str) -> MetaResult<()> {
        self.inner.delete_mailbox(u, n).await
    }
    async fn rename_mailbox(&self, u: UserId, f: &str, t: &str) -> MetaResult<()> {
        self.inner.rename_mailbox(u, f, t).await
    }
    async fn mailbox_status(&self, u: UserId, n: &str) -> MetaResult<MailboxInfo> {
        self.inner.mailbox_status(u, n).await
    }
    async fn select(&self, u: UserId, n: &str) -> MetaResult<MailboxSnapshot> {
        let mut snapshot = self.inner.select(u, n).await?;
        if !self.snapshot_flags {
            snapshot.flags = SnapshotFlags::default();
        }
        Ok(snapshot)
    }
    async fn append(&self, u: UserId, m: &str, msgs: Vec<NewMessage>) -> MetaResult<AppendResult> {
        self.inner.append(u, m, msgs).await
    }
    async fn fetch(
        &self,
        u: UserId,
        m: MailboxId,
        uids: &UidSet,
        s: bool,
    ) -> MetaResult<Vec<MessageRecord>> {
        self.calls.fetch.fetch_add(1, Ordering::SeqCst);
        self.calls
            .fetched_uids
            .fetch_add(uids.len() as usize, Ordering::SeqCst);
        self.inner.fetch(u, m, uids, s).await
    }
    async fn store_flags(
        &self,
        u: UserId,
        m: MailboxId,
        uids: &UidSet,
        op: FlagOp,
        flags: &[String],
        since: Option<ModSeq>,
    ) -> MetaResult<StoreResult> {
        self.calls.store_flags.fetch_add(1, Ordering::SeqCst);
        self.inner.store_flags(u, m, uids, op, flags, since).await
    }
    async fn copy_messages(
        &self,
        u: UserId,
        src: MailboxId,
        uids: &UidSet,
        dst: &str,
        rm: bool,
    ) -> MetaResult<CopyResult> {
        self.inner.copy_messages(u, src, uids, dst, rm).await
    }
    async fn expunge(
        &self,
        u: UserId,
        m: MailboxId,
        uids: Option<&UidSet>,
    ) -> MetaResult<Vec<Uid>> {
        self.inner.expunge(u, m, uids).await
    }
    async fn search(&self, u: UserId, m: MailboxId, k: &SearchKey) -> MetaResult<Vec<Uid>> {
        self.calls.search.fetch_add(1, Ordering::SeqCst);
        self.inner.search(u, m, k).await
    }
    async fn search_indexed(
        &self,
        user: UserId,
        mailbox: MailboxId,
        key: &SearchKey,
        projection: &IndexProjection,
    ) -> MetaResult<Vec<IndexedMessage>> {
        self.calls.search_indexed.fetch_add(1, Ordering::SeqCst);
        self.inner
            .search_indexed(user, mailbox, key, projection)
            .await
    }
    async fn changes_since(&self, u: UserId, m: MailboxId, s: ModSeq) -> MetaResult<Changes> {
        self.calls.changes_since.fetch_add(1, Ordering::SeqCst);
        self.inner.changes_since(u, m, s).await
    }
    async fn quota(&self, u: UserId) -> MetaResult<QuotaUsage> {
        self.inner.quota(u).await
    }
    async fn set_account_quota(&self, u: UserId, limits: QuotaLimits) -> MetaResult<()> {
        self.inner.set_account_quota(u, limits).await
    }
    async fn claim_recent(&self, u: UserId, m: MailboxId, up_to: Uid) -> MetaResult<UidRange> {
        let race = self.race.turn();
        if let Some((user, mailbox, msg)) = &race {
            self.inner.append(*user, mailbox, vec![msg.clone()]).await?;
        }
        let claim = self.inner.claim_recent(u, m, up_to).await;
        if let Some((user, mailbox, msg)) = race {
            self.inner.append(user, &mailbox, vec![msg]).await?;
        }
        claim
    }
    async fn get_metadata(
        &self,
        u: UserId,
        mailbox: Option<&str>,
        entries: &[String],
        depth: MetadataDepth,
    ) -> MetaResult<Vec<MetadataEntry>> {
        self.inner.get_metadata(u, mailbox, entries, depth).await
    }
    async fn set_metadata(
        &self,
        u: UserId,
        mailbox: Option<&str>,
        entries: &[(String, Option<Vec<u8>>)],
        max_entries: u32,
    ) -> MetaResult<()> {
        self.inner
            .set_metadata(u, mailbox, entries, max_entries)
            .await
    }
    async fn watch(&self, u: UserId) -> MetaResult<ChangeStream> {
        self.watch_calls.fetch_add(1, Ordering::SeqCst);
        match self.fault {
            WatchFault::None => self.inner.watch(u).await,
            WatchFault::Ends => Ok(futures::stream::empty().boxed()),
            WatchFault::Silent => Ok(futures::stream::pending().boxed()),
            WatchFault::SlowStart => {
                tokio::time::sleep(Duration::from_millis(700)).await;
                self.inner.watch(u).await
            }
        }
    }
}

pub struct Harness {
    pub addr: SocketAddr,
    pub tls_addr: Option<SocketAddr>,
    pub shutdown: CancellationToken,
    pub tasks: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
    pub store: Arc<EmbeddedStore>,
    /// Fault injection and call counters of the blob store.
    pub blobs: Arc<FaultPolicy>,
    pub blob_dir: std::path::PathBuf,
    pub watch_calls: Arc<AtomicUsize>,
    /// Appends raced against the `\Recent` claims of the first node's sessions.
    pub race: Arc<ClaimRace>,
    /// The first node's calls to the store.
    pub calls: Arc<StoreCalls>,
    pub _dir: tempfile::TempDir,
}

impl Harness {
    /// Starts another front-end node over the same stores (as two `yubin imap` processes share
    /// one meta service and one bucket) and returns its address.
    pub async fn second_node(&self) -> SocketAddr {
        spawn_node(
            self.store.clone(),
            self.store.clone(),
            &self.blob_dir,
            &self.shutdown,
            true,
        )
        .await
        .0
    }

    /// [`Harness::second_node`] whose SELECT snapshots carry no flags (as from an older meta
    /// service): its sessions know no message's flags after SELECT and read them from the
    /// store. Returns its address and its calls to the store.
    pub async fn node_without_snapshot_flags(&self) -> (SocketAddr, Arc<StoreCalls>) {
        spawn_node(
            self.store.clone(),
            self.store.clone(),
            &self.blob_dir,
            &self.shutdown,
            false,
        )
        .await
    }
}

/// A front-end node over `mail` and `accounts`, stopped by `shutdown`.
async fn spawn_node(
    mail: Arc<dyn MailStore>,
    accounts: Arc<dyn AccountStore>,
    blob_dir: &std::path::Path,
    shutdown: &CancellationToken,
    snapshot_flags: bool,
) -> (SocketAddr, Arc<StoreCalls>) {
    let calls = Arc::new(StoreCalls::default());
    let mail: Arc<dyn MailStore> = Arc::new(FaultyWatch {
        inner: mail,
        fault: WatchFault::None,
        watch_calls: Arc::new(AtomicUsize::new(0)),
        race: Arc::new(ClaimRace::default()),
        calls: calls.clone(),
        snapshot_flags,
    });
    let server = ImapServer::new(
        mail,
        Arc::new(TestAuth(accounts)),
        Arc::new(FsBlobStore::new(blob_dir.to_path_buf())),
        None,
        ImapConfig {
            allow_plaintext_auth: true,
            ..ImapConfig::default()
        },
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(server.serve(listener, false, shutdown.clone()));
    (addr, calls)
}

pub struct Options {
    pub config: ImapConfig,
    pub timeouts: Timeouts,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub fault: WatchFault,
    /// The metadata store's keyword and mailbox limits.
    pub store_limits: yubin_meta_store::StoreLimits,
    /// The first node's body cache, in front of the fault-injecting store (so `blobs` counts
    /// what reaches the store behind the cache).
    pub body_cache: Option<yubin_blob::BodyCacheConfig>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            config: ImapConfig {
                allow_plaintext_auth: true,
                ..ImapConfig::default()
            },
            timeouts: Timeouts::default(),
            tls: None,
            fault: WatchFault::None,
            store_limits: yubin_meta_store::StoreLimits::default(),
            body_cache: None,
        }
    }
}

pub async fn start() -> Harness {
    start_with(Options::default()).await
}

pub async fn start_with(opts: Options) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(
        EmbeddedStore::open(dir.path().join("meta.redb"))
            .await
            .expect("open store")
            .with_limits(opts.store_limits),
    );
    for (name, pass) in [("alice", "wonderland"), ("bob", "builder")] {
        store
            .create_user(name, &format!("test:{pass}"))
            .await
            .expect("create user");
    }
    let blob_dir = dir.path().join("blobs");
    std::fs::create_dir_all(&blob_dir).expect("blob dir");
    let watch_calls = Arc::new(AtomicUsize::new(0));
    let race = Arc::new(ClaimRace::default());
    let calls = Arc::new(StoreCalls::default());
    let mail: Arc<dyn MailStore> = Arc::new(FaultyWatch {
        inner: store.clone(),
        fault: opts.fault,
        watch_calls: watch_calls.clone(),
        race: race.clone(),
        calls: calls.clone(),
        snapshot_flags: true,
    });
    let has_tls = opts.tls.is_some();
    let blobs = FaultyBlobStore::new(FsBlobStore::new(blob_dir.clone()));
    let policy = blobs.policy();
    let blobs: Arc<dyn yubin_blob::BlobStore> = match &opts.body_cache {
        Some(config) => {
            Arc::new(yubin_blob::CachedBlobStore::new(Arc::new(blobs), config).expect("body cache"))
        }
        None => Arc::new(blobs),
    };
    let server = ImapServer::with_timeouts(
        mail,
        Arc::new(TestAuth(store.clone())),
        blobs,
        opts.tls,
        opts.config,
        opts.timeouts,
    );
    let shutdown = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut tasks = vec![tokio::spawn(server.clone().serve(
        listener,
        false,
        shutdown.clone(),
    ))];
    let mut tls_addr = None;
    if has_tls {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        tls_addr = Some(l.local_addr().expect("addr"));
        tasks.push(tokio::spawn(server.serve(l, true, shutdown.clone())));
    }
    Harness {
        addr,
        tls_addr,
        shutdown,
        tasks,
        store,
        blobs: policy,
        blob_dir,
        watch_calls,
        race,
        calls,
        _dir: dir,
    }
}

/// A front-end over a real `redis-server` (the distributed setup's store, in-process instead
/// of behind meta's gRPC): the server is killed when this is dropped.
pub struct RedisHarness {
    pub addr: SocketAddr,
    pub calls: Arc<StoreCalls>,
    pub shutdown: CancellationToken,
    pub store: Arc<yubin_meta_store::RedisStore>,
    pub blob_dir: std::path::PathBuf,
    pub _redis: yubin_meta_store::testing::RedisServer,
    pub _dir: tempfile::TempDir,
}

impl Drop for RedisHarness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl RedisHarness {
    /// [`Harness::node_without_snapshot_flags`] over this Redis.
    pub async fn node_without_snapshot_flags(&self) -> (SocketAddr, Arc<StoreCalls>) {
        spawn_node(
            self.store.clone(),
            self.store.clone(),
            &self.blob_dir,
            &self.shutdown,
            false,
        )
        .await
    }
}

/// [`start`] over a fresh `redis-server` from `PATH`, with the same two accounts.
pub async fn start_redis() -> RedisHarness {
    let redis = yubin_meta_store::testing::RedisServer::spawn().expect("redis-server on PATH");
    let store = Arc::new(
        yubin_meta_store::RedisStore::connect(&redis.url())
            .await
            .expect("connect to redis"),
    );
    for (name, pass) in [("alice", "wonderland"), ("bob", "builder")] {
        store
            .create_user(name, &format!("test:{pass}"))
            .await
            .expect("create user");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let blob_dir = dir.path().join("blobs");
    std::fs::create_dir_all(&blob_dir).expect("blob dir");
    let shutdown = CancellationToken::new();
    let (addr, calls) = spawn_node(store.clone(), store.clone(), &blob_dir, &shutdown, true).await;
    RedisHarness {
        addr,
        calls,
        shutdown,
        store,
        blob_dir,
        _redis: redis,
        _dir: dir,
    }
}

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A raw IMAP client: sends bytes, reads response lines (literals inlined).
pub struct Raw {
    pub io: BufReader<Box<dyn Io>>,
    pub greeting: String,
    /// How long a response line may take; tests that send megabytes raise it.
    pub timeout: Duration,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Raw::over(Box::new(tcp)).await
    }

    pub async fn over(io: Box<dyn Io>) -> Raw {
        let mut raw = Raw {
            io: BufReader::new(io),
            greeting: String::new(),
            timeout: TIMEOUT,
        };
        raw.greeting = raw.line().await;
        raw
    }

    /// Connects and logs in as `user`.
    pub async fn login(addr: SocketAddr, user: &str, pass: &str) -> Raw {
        let mut raw = Raw::connect(addr).await;
        let r = raw.cmd(&format!("LOGIN {user} {pass}")).await;
        assert!(last(&r).starts_with("T OK"), "{r:?}");
        raw
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.expect("write");
        self.io.get_mut().flush().await.expect("flush");
    }

    /// One response line, with any literals it contains inlined (lossy UTF-8), without CRLF.
    pub async fn line(&mut self) -> String {
        String::from_utf8_lossy(&self.line_bytes().await).into_owned()
    }

    /// One response line as bytes, literals inlined, without the final CRLF.
    pub async fn line_bytes(&mut self) -> Vec<u8> {
        tokio::time::timeout(self.timeout, async {
            let mut all = Vec::new();
            loop {
                let mut l = Vec::new();
                let n = self.io.read_until(b'\n', &mut l).await.expect("read");
                assert!(
                    n > 0,
                    "connection closed; got so far: {:?}",
                    String::from_utf8_lossy(&all)
                );
                all.extend_from_slice(&l);
                // `{n}\r\n` at the end announces a literal.
                if let Some(size) = literal_size(&l) {
                    let mut lit = vec![0u8; size];
                    self.io.read_exact(&mut lit).await.expect("literal");
                    all.extend_from_slice(&lit);
                    continue;
                }
                if all.ends_with(b"\r\n") {
                    all.truncate(all.len() - 2);
                }
                return all;
            }
        })
        .await
        .expect("timed out waiting for a response line")
    }

    /// Sends `T <command>` and returns every line up to and including the tagged one.
    pub async fn cmd(&mut self, command: &str) -> Vec<String> {
        self.tagged("T", command).await
    }

    pub async fn tagged(&mut self, tag: &str, command: &str) -> Vec<String> {
        self.send(format!("{tag} {command}\r\n").as_bytes()).await;
        self.until_tag(tag).await
    }

    pub async fn until_tag(&mut self, tag: &str) -> Vec<String> {
        let prefix = format!("{tag} ");
        let mut lines = Vec::new();
        loop {
            let l = self.line().await;
            let done = l.starts_with(&prefix);
            lines.push(l);
            if done {
                return lines;
            }
        }
    }

    /// Asserts that nothing arrives within `wait`.
    pub async fn quiet(&mut self, wait: Duration) {
        let mut b = [0u8; 1];
        if let Ok(r) = tokio::time::timeout(wait, self.io.read(&mut b)).await {
            panic!("unexpected data: {r:?} {:?}", b[0] as char);
        }
    }

    /// Reads until the peer closes; returns what came.
    pub async fn until_closed(&mut self) -> String {
        let mut v = Vec::new();
        tokio::time::timeout(TIMEOUT, self.io.read_to_end(&mut v))
            .await
            .expect("close timeout")
            .ok();
        String::from_utf8_lossy(&v).into_owned()
    }
}

fn literal_size(line: &[u8]) -> Option<usize> {
    let l = line.strip_suffix(b"}\r\n")?;
    let open = l.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&l[open + 1..]).ok()?.parse().ok()
}

pub fn last(lines: &[String]) -> &str {
    lines.last().map(String::as_str).unwrap_or("")
}

/// Appends `msg` to `mailbox` over `raw` with a synchronizing literal; returns the tagged line.
pub async fn append(raw: &mut Raw, mailbox: &str, flags: &str, msg: &[u8]) -> String {
    raw.send(format!("A APPEND {mailbox} ({flags}) {{{}}}\r\n", msg.len()).as_bytes())
        .await;
    let cont = raw.line().await;
    assert!(cont.starts_with('+'), "{cont}");
    raw.send(msg).await;
    raw.send(b"\r\n").await;
    let lines = raw.until_tag("A").await;
    last(&lines).to_string()
}
