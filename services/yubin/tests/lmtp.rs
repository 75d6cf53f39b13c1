//! LMTP delivery end to end with the real binary: Python's smtplib.LMTP (and raw sockets for
//! BDAT and an explicit pipeline) delivering multi-recipient, 8-bit and multi-MiB mail to
//! `yubin dev` and to a `yubin lmtp` node of the distributed setup, with an IDLE client on an
//! IMAP front-end seeing each delivery at once; and a real MTA — a private Postfix instance from
//! Debian's package — relaying to Yubin's LMTP.

mod common;

use common::{YubinProcess, http_get, start_dev, start_meta, yubin_user};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use yubin_blob::test_server::spawn_s3s_fs;
use yubin_loadtest::client::Imap;
use yubin_meta_store::testing::RedisServer;

const BUCKET: &str = "yubin-lmtp-test";
/// How soon an IDLE client must hear of a delivery. The architecture's target is milliseconds;
/// this bound only keeps a loaded 2-core CI machine from failing the test by accident.
const IDLE_BOUND: Duration = Duration::from_secs(3);

/// The accounts `lmtp_delivery.py` expects: alice, bob (with a folder "Lists") and carol, each
/// with password `<name>-pw`.
async fn create_accounts(admin: SocketAddr, imap: SocketAddr) {
    for name in ["alice", "bob", "carol"] {
        yubin_user(admin, &["add", name, "--password", &format!("{name}-pw")]);
    }
    let mut bob = Imap::login(imap, "bob", "bob-pw").await;
    bob.ok("CREATE Lists").await;
}

/// Runs the Python client scenario in the background; returns its process.
fn spawn_python_delivery(lmtp: SocketAddr, imap: SocketAddr) -> std::process::Child {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/lmtp_delivery.py");
    Command::new("python3")
        .args([
            script,
            &lmtp.ip().to_string(),
            &lmtp.port().to_string(),
            &imap.port().to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs")
}

async fn wait_python(child: std::process::Child) {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("python3 output");
    assert!(
        out.status.success(),
        "lmtp_delivery.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Delivers one message over LMTP with raw protocol lines; returns the reply per recipient.
async fn lmtp_deliver(addr: SocketAddr, from: &str, rcpts: &[&str], message: &str) -> Vec<String> {
    let tcp = TcpStream::connect(addr).await.expect("connect lmtp");
    let (r, mut w) = tcp.into_split();
    let mut r = BufReader::new(r);
    let mut wire = format!("LHLO test\r\nMAIL FROM:<{from}>\r\n");
    for rcpt in rcpts {
        wire.push_str(&format!("RCPT TO:<{rcpt}>\r\n"));
    }
    wire.push_str("DATA\r\n");
    w.write_all(wire.as_bytes()).await.expect("write");
    // Greeting, LHLO, MAIL, the RCPTs, 354.
    let mut accepted = 0;
    for i in 0..(3 + rcpts.len() + 1) {
        let reply = read_reply(&mut r).await;
        if (3..3 + rcpts.len()).contains(&i) && reply.starts_with("250") {
            accepted += 1;
        }
    }
    w.write_all(message.as_bytes()).await.expect("write");
    w.write_all(b".\r\n").await.expect("write");
    let mut replies = Vec::new();
    for _ in 0..accepted {
        replies.push(read_reply(&mut r).await);
    }
    w.write_all(b"QUIT\r\n").await.expect("write");
    replies
}

async fn read_reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(30), r.read_line(&mut line))
            .await
            .expect("lmtp reply in time")
            .expect("read");
        assert!(n > 0, "lmtp connection closed");
        if line.as_bytes().get(3) != Some(&b'-') {
            return line.trim_end().to_string();
        }
    }
}

/// IDLE on `imap` as alice sees the Python client's deliveries (made through `lmtp`, verified
/// by the script over `verify_imap`), then a single delivery within [`IDLE_BOUND`].
async fn deliveries_reach_idle(lmtp: SocketAddr, imap: SocketAddr, verify_imap: SocketAddr) {
    let mut idle = Imap::login(imap, "alice", "alice-pw").await;
    idle.ok("SELECT INBOX").await;
    let tag = idle.idle().await;
    let python = spawn_python_delivery(lmtp, verify_imap);
    let first = idle.wait_for("EXISTS", Duration::from_secs(60)).await;
    assert!(first.is_some(), "IDLE saw no delivery");
    wait_python(python).await;
    // Drain what the rest of the scenario announced, then time one more delivery.
    while idle
        .read_line_within(Duration::from_millis(300))
        .await
        .is_some()
    {}
    let started = Instant::now();
    let replies = lmtp_deliver(
        lmtp,
        "timing@example.org",
        &["alice@example.com"],
        "Subject: timed\r\n\r\nhow soon?\r\n",
    )
    .await;
    assert!(replies[0].starts_with("250 2.0.0"), "{replies:?}");
    let seen = idle.wait_for("EXISTS", IDLE_BOUND).await;
    assert!(
        seen.is_some_and(|l| l.has("* 4 EXISTS")),
        "IDLE did not see the 4th message within {IDLE_BOUND:?}"
    );
    eprintln!("delivery to IDLE notification: {:?}", started.elapsed());
    idle.done(&tag).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_delivers_smtplib_mail_to_every_recipient_and_wakes_idle() {
    let data = tempfile::tempdir().expect("tempdir");
    let dev = start_dev(data.path());
    create_accounts(dev.addr("http"), dev.addr("imap")).await;
    deliveries_reach_idle(dev.addr("lmtp"), dev.addr("imap"), dev.addr("imap")).await;
    assert!(dev.stop().success(), "dev exits cleanly on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lmtp_node_delivers_through_meta_and_idle_on_another_front_end_sees_it() {
    let redis = RedisServer::spawn_with_aof().expect("redis-server");
    let s3_dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(s3_dir.path().join(BUCKET)).expect("bucket dir");
    let s3 = spawn_s3s_fs(s3_dir.path()).await.expect("s3s-fs");
    let meta = start_meta(&redis.url(), "127.0.0.1:0", &[], &[]);
    let meta_url = format!("http://{}", meta.addr("grpc"));
    let s3_env = [
        ("AWS_ENDPOINT_URL_S3", s3.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", s3.access_key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", s3.secret_key.as_str()),
        ("AWS_REGION", "us-east-1"),
    ];
    let imap_node = || {
        YubinProcess::start(
            &[
                "imap",
                "--meta-url",
                &meta_url,
                "--s3-bucket",
                BUCKET,
                "--imap-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
                "--allow-plaintext-auth",
                "true",
            ],
            &s3_env,
            &["imap", "http"],
        )
    };
    let (node0, node1) = (imap_node(), imap_node());
    let spool = tempfile::tempdir().expect("spool");
    let lmtp = YubinProcess::start(
        &[
            "lmtp",
            "--meta-url",
            &meta_url,
            "--s3-bucket",
            BUCKET,
            "--lmtp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--spool-dir",
            spool.path().to_str().expect("utf-8"),
        ],
        &s3_env,
        &["lmtp", "http"],
    );
    create_accounts(meta.addr("http"), node0.addr("imap")).await;
    deliveries_reach_idle(lmtp.addr("lmtp"), node0.addr("imap"), node1.addr("imap")).await;

    // The role's HTTP port: ready (meta and S3 reachable) and counting deliveries.
    let http = lmtp.addr("http");
    let (status, ready) = http_get(http, "/readyz");
    assert_eq!(status, 200, "{ready}");
    let (_, metrics) = http_get(http, "/metrics");
    for needle in [
        "yubin_lmtp_deliveries_total{result=\"delivered\"}",
        "yubin_lmtp_deliveries_total{result=\"unknown_user\"}",
        "yubin_lmtp_delivery_duration_seconds",
        "yubin_lmtp_connections",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from /metrics");
    }
    assert_eq!(
        std::fs::read_dir(spool.path()).expect("spool").count(),
        0,
        "no spool file left behind"
    );
    assert!(lmtp.stop().success(), "lmtp exits cleanly on SIGTERM");
}

/// A private Postfix instance: its own configuration directory, queue and log under a temporary
/// directory, no listening ports (mail is submitted with `sendmail -C`), every domain relayed to
/// Yubin's LMTP. Stopped on drop.
struct PrivatePostfix {
    dir: tempfile::TempDir,
}

impl PrivatePostfix {
    fn start(lmtp: SocketAddr) -> PrivatePostfix {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        // Postfix's daemons run as the `postfix` user and must reach the queue below it.
        set_mode(root, 0o755);
        let d = root.display();
        let main_cf = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {d}/queue\n\
             data_directory = {d}/data\n\
             meta_directory = /etc/postfix\n\
             mail_owner = postfix\n\
             setgid_group = postdrop\n\
             inet_interfaces = loopback-only\n\
             inet_protocols = ipv4\n\
             master_service_disable = inet\n\
             myhostname = mx.test.invalid\n\
             mydomain = test.invalid\n\
             myorigin = $mydomain\n\
             mydestination =\n\
             relayhost =\n\
             local_transport = error:local delivery is disabled\n\
             default_transport = lmtp:inet:{lmtp}\n\
             alias_maps =\n\
             alias_database =\n\
             smtputf8_enable = no\n\
             maillog_file_prefixes = {d}\n\
             maillog_file = {d}/maillog\n\
             queue_run_delay = 1s\n\
             minimal_backoff_time = 1s\n\
             maximal_backoff_time = 2s\n"
        );
        std::fs::write(root.join("main.cf"), main_cf).expect("main.cf");
        std::fs::write(root.join("master.cf"), MASTER_CF).expect("master.cf");
        std::fs::create_dir_all(root.join("queue")).expect("queue dir");
        let pf = PrivatePostfix { dir };
        // `check` creates the queue's subdirectories with their owners and modes.
        pf.postfix(&["check"]);
        pf.postfix(&["start"]);
        pf
    }

    fn config_dir(&self) -> &Path {
        self.dir.path()
    }

    fn postfix(&self, args: &[&str]) {
        let out = Command::new(sbin("postfix"))
            .arg("-c")
            .arg(self.config_dir())
            .args(args)
            .output()
            .expect("run postfix");
        assert!(
            out.status.success(),
            "postfix {args:?} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// Submits a message as the local sendmail would.
    fn sendmail(&self, from: &str, rcpts: &[&str], message: &[u8]) {
        let mut child = Command::new(sbin("sendmail"))
            .arg("-C")
            .arg(self.config_dir())
            .args(["-f", from])
            .args(rcpts)
            .stdin(Stdio::piped())
            .spawn()
            .expect("run sendmail");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(message)
            .expect("write message");
        let status = child.wait().expect("sendmail exits");
        assert!(status.success(), "sendmail failed\n{}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.config_dir().join("maillog")).unwrap_or_default()
    }
}

impl Drop for PrivatePostfix {
    fn drop(&mut self) {
        let _ = Command::new(sbin("postfix"))
            .arg("-c")
            .arg(self.config_dir())
            .arg("stop")
            .output();
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The services a private instance needs, none chrooted (a temporary queue has no chroot
/// setup) and none listening on the network.
const MASTER_CF: &str = "\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

/// Postfix's programs live in /usr/sbin, which a non-login environment may not have on PATH.
fn sbin(program: &str) -> String {
    let path = format!("/usr/sbin/{program}");
    if Path::new(&path).exists() {
        path
    } else {
        program.to_string()
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Postfix → LMTP → Yubin: one submission to two recipients reaches both in one LMTP
/// transaction, each gets its own copy, and an IDLE client sees it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_relays_to_yubin_lmtp_and_every_recipient_gets_a_copy() {
    if !running_as_root() {
        // A Postfix instance (master, postdrop) needs root; CI runs as root.
        eprintln!("skipping the Postfix test: it needs root to run a private Postfix instance");
        return;
    }
    assert!(
        Command::new(sbin("postconf"))
            .args(["-d", "mail_version"])
            .output()
            .is_ok_and(|o| o.status.success()),
        "Postfix is not installed (scripts/test.sh installs it)"
    );
    let data = tempfile::tempdir().expect("tempdir");
    let dev = start_dev(data.path());
    for name in ["alice", "bob"] {
        yubin_user(
            dev.addr("http"),
            &["add", name, "--password", &format!("{name}-pw")],
        );
    }
    let mut idle = Imap::login(dev.addr("imap"), "alice", "alice-pw").await;
    idle.ok("SELECT INBOX").await;
    let tag = idle.idle().await;

    let postfix = PrivatePostfix::start(dev.addr("lmtp"));
    let message = "From: Sender <sender@example.org>\r\n\
                   To: alice@example.com, bob@example.com\r\n\
                   Subject: via Postfix\r\n\
                   Content-Type: text/plain; charset=utf-8\r\n\
                   Content-Transfer-Encoding: 8bit\r\n\
                   \r\n\
                   Relayed by Postfix — über LMTP.\r\n"
        .as_bytes();
    postfix.sendmail(
        "sender@example.org",
        &["alice@example.com", "bob@example.com"],
        message,
    );
    let seen = idle.wait_for("EXISTS", Duration::from_secs(30)).await;
    assert!(
        seen.is_some(),
        "IDLE saw nothing from Postfix\n{}",
        postfix.log()
    );
    idle.done(&tag).await;

    for name in ["alice", "bob"] {
        let mut imap = Imap::login(dev.addr("imap"), name, &format!("{name}-pw")).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = imap.ok("SELECT INBOX").await;
            if r.find("* 1 EXISTS").is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} got nothing from Postfix\n{}",
                postfix.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let r = imap.ok("FETCH 1 BODY.PEEK[]").await;
        let body = r
            .untagged
            .iter()
            .flat_map(|l| l.literals.iter())
            .next()
            .expect("a body literal")
            .clone();
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.starts_with(&format!(
                "Return-Path: <sender@example.org>\r\nDelivered-To: {name}@example.com\r\n"
            )),
            "{text}"
        );
        assert!(
            text.contains("Received: by mx.test.invalid (Postfix"),
            "{text}"
        );
        assert!(text.contains("über LMTP"), "{text}");
    }
    let log = postfix.log();
    assert!(
        log.matches("status=sent (250 2.0.0").count() == 2,
        "Postfix did not report two deliveries:\n{log}"
    );
}

/// Issue 9 item 3: LMTP accepted mail for anyone from anyone who could connect. With an
/// allow-list that excludes loopback, a local client is greeted with `421 4.7.1`, closed, and
/// counted in `yubin_lmtp_refused_connections_total{reason="client_not_allowed"}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lmtp_refuses_clients_outside_lmtp_allow() {
    let data = tempfile::tempdir().expect("tempdir");
    let dev = YubinProcess::start(
        &[
            "dev",
            "--data-dir",
            data.path().to_str().expect("utf-8 path"),
            "--imap-listen",
            "127.0.0.1:0",
            "--imaps-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--lmtp-listen",
            "127.0.0.1:0",
            "--lmtp-allow",
            "192.0.2.0/24,2001:db8::/32",
        ],
        &[],
        &["lmtp", "http"],
    );
    let tcp = TcpStream::connect(dev.addr("lmtp")).await.expect("connect");
    let mut reader = BufReader::new(tcp);
    let mut greeting = String::new();
    tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut greeting))
        .await
        .expect("greeting in time")
        .expect("read");
    assert!(greeting.starts_with("421 4.7.1 "), "{greeting:?}");
    let mut rest = String::new();
    let n = tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut rest))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed after the 421, got {rest:?}");
    let (_, metrics) = http_get(dev.addr("http"), "/metrics");
    assert!(
        metrics.contains("yubin_lmtp_refused_connections_total{reason=\"client_not_allowed\"} 1"),
        "{metrics}"
    );
}
