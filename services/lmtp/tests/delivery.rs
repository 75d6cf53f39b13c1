//! The LMTP server in process on 127.0.0.1:0 over real stores — the embedded metadata store or
//! a real redis-server, bodies on disk behind the fault-injecting wrapper — driven over TCP with
//! raw protocol lines: per-recipient replies, what gets stored, and every failure path.

use async_trait::async_trait;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use yubin_blob::{BlobStore, FaultPolicy, FaultyBlobStore, FsBlobStore};
use yubin_lmtp::{LmtpConfig, LmtpServer, OverQuotaReply};
use yubin_meta_api::{
    AccountStore, Alias, Authenticator, Domain, MailStore, MetaError, MetaResult, QuotaLimits,
    UidSet, UserId,
};
use yubin_meta_store::testing::{RedisOptions, RedisServer};
use yubin_meta_store::{EmbeddedStore, RedisStore};

const TIMEOUT: Duration = Duration::from_secs(20);

/// Recipient lookup over the account store, as meta's authenticator does it: the store's
/// address rules (accounts, aliases, alias domains; disabled accounts resolve to nothing).
/// Passwords play no part in LMTP.
struct AccountLookup(Arc<dyn AccountStore>);

#[async_trait]
impl Authenticator for AccountLookup {
    async fn authenticate(
        &self,
        _name: &str,
        _password: &str,
        _client: Option<IpAddr>,
    ) -> MetaResult<UserId> {
        Err(MetaError::AuthenticationFailed)
    }

    async fn lookup(&self, name: &str) -> MetaResult<Option<UserId>> {
        self.0.resolve_address(&name.to_lowercase()).await
    }
}

struct Harness {
    addr: SocketAddr,
    mail: Arc<dyn MailStore>,
    accounts: Arc<dyn AccountStore>,
    blobs: Arc<dyn BlobStore>,
    faults: Arc<FaultPolicy>,
    shutdown: CancellationToken,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn embedded(config: LmtpConfig) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            EmbeddedStore::open(dir.path().join("meta.redb"))
                .await
                .expect("open store"),
        );
        Harness::start(store.clone(), store, dir, config).await
    }

    async fn start<S: MailStore + AccountStore>(
        store: Arc<S>,
        accounts: Arc<dyn AccountStore>,
        dir: tempfile::TempDir,
        mut config: LmtpConfig,
    ) -> Harness {
        let faulty = FaultyBlobStore::new(FsBlobStore::new(dir.path().join("blobs")));
        let faults = faulty.policy();
        let blobs: Arc<dyn BlobStore> = Arc::new(faulty);
        let mail: Arc<dyn MailStore> = store;
        let spool = dir.path().join("spool");
        std::fs::create_dir_all(&spool).expect("spool dir");
        config.spool_dir = Some(spool);
        let server = LmtpServer::new(
            mail.clone(),
            Arc::new(AccountLookup(accounts.clone())),
            blobs.clone(),
            config,
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let served = tokio::spawn(server.serve(listener, shutdown.clone()));
        Harness {
            addr,
            mail,
            accounts,
            blobs,
            faults,
            shutdown,
            served,
            _dir: dir,
        }
    }

    async fn user(&self, name: &str) -> UserId {
        self.accounts
            .create_user(name, "unused-hash")
            .await
            .expect("create user")
            .id
    }

    /// Bodies of the messages in a mailbox, in UID order.
    async fn bodies(&self, user: UserId, mailbox: &str) -> Vec<Vec<u8>> {
        let snapshot = self.mail.select(user, mailbox).await.expect("select");
        let all = UidSet::from_ranges([(1, u32::MAX)]);
        let records = self
            .mail
            .fetch(user, snapshot.info.id, &all, false)
            .await
            .expect("fetch");
        let mut out = Vec::new();
        for r in records {
            out.push(self.blobs.get(&r.blob).await.expect("blob").to_vec());
        }
        out
    }

    async fn count(&self, user: UserId, mailbox: &str) -> u32 {
        self.mail
            .mailbox_status(user, mailbox)
            .await
            .expect("status")
            .exists
    }

    async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }
}

/// A raw LMTP client.
struct Client {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let (r, w) = tcp.into_split();
        let mut c = Client {
            reader: BufReader::new(r),
            writer: w,
        };
        let greeting = c.reply().await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        c
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write");
    }

    /// One reply (all lines of a multi-line one), joined with newlines.
    async fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(TIMEOUT, self.reader.read_line(&mut line))
                .await
                .expect("reply in time")
                .expect("read");
            assert!(n > 0, "connection closed; got {lines:?}");
            let line = line.trim_end().to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    async fn expect(&mut self, line: &str, code: &str) -> String {
        let r = self.cmd(line).await;
        assert!(r.starts_with(code), "{line} -> {r}");
        r
    }

    /// Whether the server closed the connection (after its last reply).
    async fn closed(&mut self) -> bool {
        let mut line = String::new();
        matches!(
            tokio::time::timeout(TIMEOUT, self.reader.read_line(&mut line)).await,
            Ok(Ok(0))
        )
    }
}

const MESSAGE: &[u8] = b"From: Sender <sender@example.org>\r\n\
To: team@example.com\r\n\
Subject: =?UTF-8?Q?caf=C3=A9?= plans\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Caf\xc3\xa9 at noon \xe2\x80\x94 \xe9\x83\xb5\xe4\xbe\xbf.\r\n\
.a line that starts with a dot\r\n";

/// The message as sent in DATA: dot-stuffed, with the end marker.
fn data_wire(message: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            wire.push(b'.');
        }
        wire.extend_from_slice(line);
    }
    wire.extend_from_slice(b".\r\n");
    wire
}

fn stored(sender: &str, rcpt: &str, message: &[u8]) -> Vec<u8> {
    let mut v = format!("Return-Path: <{sender}>\r\nDelivered-To: {rcpt}\r\n").into_bytes();
    v.extend_from_slice(message);
    v
}

#[tokio::test]
async fn each_recipient_gets_its_copy_and_its_own_reply() {
    let h = Harness::embedded(LmtpConfig::default()).await;
    let alice = h.user("alice").await;
    let bob = h.user("bob").await;
    let carol = h.user("carol").await;
    h.accounts.set_disabled(carol, true).await.expect("disable");
    h.mail
        .create_mailbox(bob, "Lists", None)
        .await
        .expect("create");

    let mut c = h.client().await;
    let lhlo = c.expect("LHLO mx.example.org", "250").await;
    for ext in [
        "PIPELINING",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "SIZE ",
        "CHUNKING",
    ] {
        assert!(lhlo.contains(ext), "{lhlo}");
    }
    c.expect("MAIL FROM:<sender@example.org> BODY=8BITMIME", "250 2.1.0")
        .await;
    c.expect("RCPT TO:<alice@example.com>", "250 2.1.5").await;
    c.expect("RCPT TO:<nobody@example.com>", "550 5.1.1").await;
    c.expect("RCPT TO:<carol@example.com>", "550 5.1.1").await;
    c.expect("RCPT TO:<bob+lists@example.com>", "250 2.1.5")
        .await;
    c.expect("RCPT TO:<Alice+NoSuchFolder@Example.COM>", "250 2.1.5")
        .await;
    c.expect("DATA", "354").await;
    c.send(&data_wire(MESSAGE)).await;
    // One reply per accepted recipient, in RCPT order (RFC 2033 §4.2).
    for rcpt in [
        "alice@example.com",
        "bob+lists@example.com",
        "Alice+NoSuchFolder@Example.COM",
    ] {
        let r = c.reply().await;
        assert!(r.starts_with("250 2.0.0") && r.contains(rcpt), "{r}");
    }
    c.expect("QUIT", "221").await;

    assert_eq!(
        h.bodies(alice, "INBOX").await,
        vec![
            stored("sender@example.org", "alice@example.com", MESSAGE),
            stored(
                "sender@example.org",
                "Alice+NoSuchFolder@Example.COM",
                MESSAGE
            ),
        ]
    );
    assert_eq!(h.count(bob, "INBOX").await, 0);
    assert_eq!(
        h.bodies(bob, "Lists").await,
        vec![stored(
            "sender@example.org",
            "bob+lists@example.com",
            MESSAGE
        )]
    );
    assert_eq!(h.count(carol, "INBOX").await, 0);

    // The summary is computed as for APPEND: SEARCH finds the decoded subject.
    let snapshot = h.mail.select(alice, "INBOX").await.expect("select");
    let found = h
        .mail
        .search(
            alice,
            snapshot.info.id,
            &yubin_meta_api::SearchKey::Header("Subject".into(), "café".into()),
        )
        .await
        .expect("search");
    assert_eq!(found.len(), 2);
}

/// Addresses map to accounts by the metadata store's rules: aliases, alias domains, the local
/// part within the installation's domains; `+detail` is stripped before the lookup.
/// A sender cannot file mail into the user's Sent, Drafts or Trash through `+detail` (a forged
/// "sent" message, a draft the user would edit and send): that mail goes to INBOX. Junk and
/// ordinary folders still take it.
#[tokio::test]
async fn detail_never_files_into_sent_drafts_or_trash() {
    use yubin_meta_api::SpecialUse;
    let h = Harness::embedded(LmtpConfig::default()).await;
    let bob = h.user("bob").await;
    for (name, special_use) in [
        ("Sent", SpecialUse::Sent),
        ("Drafts", SpecialUse::Drafts),
        ("Trash", SpecialUse::Trash),
        ("Junk", SpecialUse::Junk),
    ] {
        h.mail
            .create_mailbox(bob, name, Some(special_use))
            .await
            .expect("create");
    }
    let recipients = [
        "bob+sent@example.com",
        "bob+Drafts@example.com",
        "bob+trash@example.com",
        "bob+junk@example.com",
    ];
    let mut c = h.client().await;
    c.expect("LHLO mx.example.org", "250").await;
    c.expect("MAIL FROM:<mallory@example.org>", "250 2.1.0")
        .await;
    for rcpt in recipients {
        c.expect(&format!("RCPT TO:<{rcpt}>"), "250 2.1.5").await;
    }
    c.expect("DATA", "354").await;
    c.send(&data_wire(MESSAGE)).await;
    for rcpt in recipients {
        let r = c.reply().await;
        assert!(r.starts_with("250 2.0.0") && r.contains(rcpt), "{r}");
    }
    c.expect("QUIT", "221").await;
    assert_eq!(h.count(bob, "INBOX").await, 3);
    for name in ["Sent", "Drafts", "Trash"] {
        assert_eq!(h.count(bob, name).await, 0, "{name}");
    }
    assert_eq!(h.count(bob, "Junk").await, 1);
}

#[tokio::test]
async fn aliases_and_alias_domains_resolve_and_foreign_domains_do_not() {
    let h = Harness::embedded(LmtpConfig::default()).await;
    let alice = h.user("alice").await;
    let bob = h.user("bob").await;
    for (name, alias_of) in [("example.com", None), ("example.net", Some("example.com"))] {
        h.accounts
            .put_domain(&Domain {
                name: name.into(),
                alias_of: alias_of.map(str::to_string),
            })
            .await
            .expect("put domain");
    }
    h.accounts
        .put_alias(&Alias {
            address: "sales@example.com".into(),
            target: bob,
        })
        .await
        .expect("put alias");

    let mut c = h.client().await;
    c.expect("LHLO mx", "250").await;
    c.expect("MAIL FROM:<s@example.org>", "250").await;
    c.expect("RCPT TO:<alice@example.net>", "250 2.1.5").await;
    c.expect("RCPT TO:<Sales+orders@Example.NET>", "250 2.1.5")
        .await;
    c.expect("RCPT TO:<alice@foreign.example>", "550 5.1.1")
        .await;
    c.expect("DATA", "354").await;
    c.send(&data_wire(MESSAGE)).await;
    for _ in 0..2 {
        let r = c.reply().await;
        assert!(r.starts_with("250 2.0.0"), "{r}");
    }
    assert_eq!(
        h.bodies(alice, "INBOX").await,
        vec![stored("s@example.org", "alice@example.net", MESSAGE)]
    );
    assert_eq!(
        h.bodies(bob, "INBOX").await,
        vec![stored("s@example.org", "Sales+orders@Example.NET", MESSAGE)]
    );
}

#[tokio::test]
async fn pipelined_transaction_and_bdat_chunks() {
    let h = Harness::embedded(LmtpConfig::default()).await;
    let alice = h.user("alice").await;
    let bob = h.user("bob").await;
    let mut c = h.client().await;
    // Everything up to DATA in one write (RFC 2920), then the message.
    c.send(
        b"LHLO mx\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.com>\r\nRCPT TO:<ghost@example.com>\r\n\
RCPT TO:<bob@example.com>\r\nDATA\r\n",
    )
    .await;
    assert!(c.reply().await.starts_with("250-"));
    for want in ["250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "354"] {
        let r = c.reply().await;
        assert!(r.starts_with(want), "want {want}, got {r}");
    }
    c.send(&data_wire(b"Subject: bounce\r\n\r\nnull sender\r\n"))
        .await;
    for _ in 0..2 {
        let r = c.reply().await;
        assert!(r.starts_with("250 2.0.0"), "{r}");
    }

    // CHUNKING: two chunks, the second LAST, pipelined with the transaction. BDAT octets are
    // not dot-stuffed: a "." line is content.
    let part1: &[u8] = b"Subject: chunked\r\n\r\n.\r\n";
    let part2: &[u8] = b"second chunk \xff\xfe binary-safe\r\n";
    let mut wire = b"MAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\n"
        .to_vec();
    wire.extend_from_slice(format!("BDAT {}\r\n", part1.len()).as_bytes());
    wire.extend_from_slice(part1);
    wire.extend_from_slice(format!("BDAT {} LAST\r\n", part2.len()).as_bytes());
    wire.extend_from_slice(part2);
    c.send(&wire).await;
    for want in ["250 2.1.0", "250 2.1.5", "250 2.1.5", "250 2.0.0"] {
        let r = c.reply().await;
        assert!(r.starts_with(want), "want {want}, got {r}");
    }
    for _ in 0..2 {
        let r = c.reply().await;
        assert!(r.starts_with("250 2.0.0") && r.contains("delivered"), "{r}");
    }
    // A BDAT without a transaction is refused after its octets are read; the connection stays
    // in step.
    c.send(b"BDAT 5 LAST\r\nhello").await;
    assert!(c.reply().await.starts_with("503 5.5.1"));
    c.expect("NOOP", "250").await;

    let mut chunked = part1.to_vec();
    chunked.extend_from_slice(part2);
    let alice_bodies = h.bodies(alice, "INBOX").await;
    assert_eq!(alice_bodies.len(), 2);
    assert!(alice_bodies[0].starts_with(b"Return-Path: <>\r\nDelivered-To: alice@example.com\r\n"));
    assert_eq!(
        alice_bodies[1],
        stored("s@example.org", "alice@example.com", &chunked)
    );
    assert_eq!(h.count(bob, "INBOX").await, 2);
}

#[tokio::test]
async fn protocol_errors_get_their_codes() {
    let config = LmtpConfig {
        max_recipients: 2,
        max_message_bytes: 1000,
        max_line_bytes: 1024,
        ..LmtpConfig::default()
    };
    let h = Harness::embedded(config).await;
    let alice = h.user("alice").await;
    let mut c = h.client().await;
    c.expect("EHLO mx", "500 5.5.1").await;
    c.expect("MAIL FROM:<a@example.org>", "503 5.5.1").await;
    c.expect("LHLO mx", "250").await;
    c.expect("RCPT TO:<alice@example.com>", "503 5.5.1").await;
    c.expect("DATA", "503 5.5.1").await;
    c.expect("MAIL FROM:<a@example.org> SIZE=1001", "552 5.3.4")
        .await;
    c.expect("MAIL FROM:<a@example.org> FOO=BAR", "555 5.5.4")
        .await;
    c.expect("MAIL FROM:a@example.org", "501 5.1.7").await;
    c.expect("MAIL FROM:<a@example.org>", "250").await;
    c.expect("MAIL FROM:<a@example.org>", "503 5.5.1").await;
    c.expect("DATA", "503 5.5.1").await; // no recipients yet
    c.expect("RCPT TO:<a b>", "501 5.1.3").await;
    c.expect("RCPT TO:<alice@example.com>", "250").await;
    c.expect("RCPT TO:<alice+x@example.com>", "250").await;
    c.expect("RCPT TO:<alice+y@example.com>", "452 4.5.3").await;
    let long = format!("NOOP {}", "x".repeat(2000));
    c.expect(&long, "500 5.5.2").await;
    c.expect("XYZZY", "500 5.5.1").await;
    c.expect("STARTTLS", "502").await;
    c.expect("VRFY alice", "252").await;

    // Over the size limit: the whole message is read, then each recipient is refused.
    c.expect("DATA", "354").await;
    let big = format!("Subject: big\r\n\r\n{}\r\n", "y".repeat(1200));
    c.send(&data_wire(big.as_bytes())).await;
    for _ in 0..2 {
        let r = c.reply().await;
        assert!(r.starts_with("552 5.3.4"), "{r}");
    }
    c.expect("RSET", "250").await;
    c.expect("NOOP", "250").await;
    assert_eq!(h.count(alice, "INBOX").await, 0);
    c.expect("QUIT", "221").await;
    assert!(c.closed().await);
}

#[tokio::test]
async fn a_blob_store_failure_answers_451_and_stores_no_metadata() {
    let h = Harness::embedded(LmtpConfig::default()).await;
    let alice = h.user("alice").await;
    let bob = h.user("bob").await;
    let mut c = h.client().await;
    c.expect("LHLO mx", "250").await;

    // The first put fails: alice's copy is refused, bob's is delivered.
    h.faults.fail_next_puts(1);
    c.expect("MAIL FROM:<s@example.org>", "250").await;
    c.expect("RCPT TO:<alice@example.com>", "250").await;
    c.expect("RCPT TO:<bob@example.com>", "250").await;
    c.expect("DATA", "354").await;
    c.send(&data_wire(MESSAGE)).await;
    assert!(c.reply().await.starts_with("451 4.3.0"));
    assert!(c.reply().await.starts_with("250 2.0.0"));
    assert_eq!(
        h.count(alice, "INBOX").await,
        0,
        "no metadata without a body"
    );
    assert_eq!(h.count(bob, "INBOX").await, 1);

    // A total outage: nobody gets anything, and a large (spooled) message takes the same path.
    h.faults.set_fail_all(true);
    c.expect("MAIL FROM:<s@example.org>", "250").await;
    c.expect("RCPT TO:<alice@example.com>", "250").await;
    c.expect("RCPT TO:<bob@example.com>", "250").await;
    c.expect("DATA", "354").await;
    let large = format!(
        "Subject: large\r\n\r\n{}",
        "0123456789abcdef\r\n".repeat(200_000)
    );
    c.send(&data_wire(large.as_bytes())).await;
    assert!(c.reply().await.starts_with("451 4.3.0"));
    assert!(c.reply().await.starts_with("451 4.3.0"));
    h.faults.heal();
    assert_eq!(h.count(alice, "INBOX").await, 0);
    assert_eq!(h.count(bob, "INBOX").await, 1);

    // Healed: the MTA's retry goes through, large message included.
    c.expect("MAIL FROM:<s@example.org>", "250").await;
    c.expect("RCPT TO:<alice@example.com>", "250").await;
    c.expect("DATA", "354").await;
    c.send(&data_wire(large.as_bytes())).await;
    assert!(c.reply().await.starts_with("250 2.0.0"));
    assert_eq!(
        h.bodies(alice, "INBOX").await,
        vec![stored(
            "s@example.org",
            "alice@example.com",
            large.as_bytes()
        )]
    );
}

#[tokio::test]
async fn over_quota_is_552_or_452_as_configured() {
    for (reply, code) in [
        (OverQuotaReply::Permanent, "552 5.2.2"),
        (OverQuotaReply::Temporary, "452 4.2.2"),
    ] {
        let h = Harness::embedded(LmtpConfig {
            over_quota: reply,
            ..LmtpConfig::default()
        })
        .await;
        let alice = h.user("alice").await;
        let bob = h.user("bob").await;
        h.accounts
            .set_quota(
                alice,
                QuotaLimits {
                    storage_bytes: Some(100),
                    messages: None,
                },
            )
            .await
            .expect("set quota");
        let mut c = h.client().await;
        c.expect("LHLO mx", "250").await;
        c.expect("MAIL FROM:<s@example.org>", "250").await;
        c.expect("RCPT TO:<alice@example.com>", "250").await;
        c.expect("RCPT TO:<bob@example.com>", "250").await;
        c.expect("DATA", "354").await;
        c.send(&data_wire(MESSAGE)).await;
        let r = c.reply().await;
        assert!(r.starts_with(code), "{reply:?}: {r}");
        assert!(c.reply().await.starts_with("250 2.0.0"));
        assert_eq!(h.count(alice, "INBOX").await, 0);
        assert_eq!(h.count(bob, "INBOX").await, 1);
    }
}

#[tokio::test]
async fn shutdown_answers_421_and_lets_the_server_return() {
    let h = Harness::embedded(LmtpConfig::default()).await;
    let mut c = h.client().await;
    c.expect("LHLO mx", "250").await;
    h.shutdown.cancel();
    let r = c.reply().await;
    assert!(r.starts_with("421 4.3.2"), "{r}");
    assert!(c.closed().await);
    tokio::time::timeout(TIMEOUT, h.served)
        .await
        .expect("serve returns")
        .expect("join")
        .expect("serve ok");
}

/// Meta's store (a real redis-server) goes away in the middle of a transaction: the recipients
/// get 451 4.3.0 and, once it is back, no metadata of that message exists.
#[tokio::test]
async fn an_unavailable_metadata_store_answers_451_and_commits_nothing() {
    let aof = tempfile::tempdir().expect("aof dir");
    let redis = RedisServer::spawn_persistent(aof.path()).expect("redis-server");
    let port = redis.port();
    let store = Arc::new(RedisStore::connect(&redis.url()).await.expect("connect"));
    let dir = tempfile::tempdir().expect("tempdir");
    let h = Harness::start(store.clone(), store.clone(), dir, LmtpConfig::default()).await;
    let alice = h.user("alice").await;

    let mut c = h.client().await;
    c.expect("LHLO mx", "250").await;
    c.expect("MAIL FROM:<s@example.org>", "250").await;
    c.expect("RCPT TO:<alice@example.com>", "250").await;
    c.expect("DATA", "354").await;
    drop(redis); // SIGKILL
    c.send(&data_wire(MESSAGE)).await;
    let r = c.reply().await;
    assert!(r.starts_with("451 4.3.0"), "{r}");
    // With the store down, recipients cannot even be looked up.
    c.expect("MAIL FROM:<s@example.org>", "250").await;
    c.expect("RCPT TO:<alice@example.com>", "451 4.3.0").await;
    c.expect("RSET", "250").await;

    let _redis = restart_on(port, aof.path());
    wait_until_available(&h, alice).await;
    assert_eq!(h.count(alice, "INBOX").await, 0, "nothing half-delivered");
    // And delivery works again.
    c.expect("MAIL FROM:<s@example.org>", "250").await;
    c.expect("RCPT TO:<alice@example.com>", "250").await;
    c.expect("DATA", "354").await;
    c.send(&data_wire(MESSAGE)).await;
    let r = c.reply().await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    assert_eq!(h.count(alice, "INBOX").await, 1);
}

fn restart_on(port: u16, aof: &Path) -> RedisServer {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        match RedisServer::spawn_with(RedisOptions {
            port: Some(port),
            aof_dir: Some(aof.to_path_buf()),
        }) {
            Ok(r) => return r,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("restarting redis-server: {e}"),
        }
    }
}

async fn wait_until_available(h: &Harness, user: UserId) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while h.mail.mailbox_status(user, "INBOX").await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "store back in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Issue 9 item 3: LMTP delivered for anyone from anyone who could connect. A client outside
/// the allowed networks (here: loopback excluded) is greeted with 421 and closed before it can
/// say anything.
#[tokio::test]
async fn clients_outside_the_allowed_networks_get_421_and_deliver_nothing() {
    let config = LmtpConfig {
        allowed_clients: vec!["192.0.2.0/24".parse().unwrap(), "fd00::/8".parse().unwrap()],
        ..LmtpConfig::default()
    };
    let h = Harness::embedded(config).await;
    let alice = h.user("alice").await;
    let (r, w) = TcpStream::connect(h.addr)
        .await
        .expect("connect")
        .into_split();
    let mut refused = Client {
        reader: BufReader::new(r),
        writer: w,
    };
    let greeting = refused.reply().await;
    assert!(greeting.starts_with("421 4.7.1 "), "{greeting}");
    assert!(refused.closed().await, "closed after the 421");
    assert_eq!(h.count(alice, "INBOX").await, 0, "nothing delivered");
    // With the default list (loopback) the same client is greeted with 220.
    let open = Harness::embedded(LmtpConfig::default()).await;
    let _client = open.client().await;
}
