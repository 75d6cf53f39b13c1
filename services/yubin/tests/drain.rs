//! Graceful drain of a front-end, end to end: 200 IDLE clients on one `yubin imap` node of the
//! distributed stack (a real redis-server, a real S3 protocol server, `yubin meta`, two front-end
//! processes) while another client APPENDs through it. SIGTERM: the node stops accepting, its
//! `/readyz` turns 503, every client gets `* BYE [UNAVAILABLE]` in batches spread over the drain
//! window, the clients reconnect to the other node, every APPEND that was answered OK is there,
//! and the process exits 0 within the window.

mod common;

use common::{YubinProcess, http_get, sample_message, start_meta, yubin_user};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use yubin_blob::test_server::spawn_s3s_fs;
use yubin_loadtest::client::Imap;
use yubin_meta_store::testing::RedisServer;

const BUCKET: &str = "yubin-drain";
const IDLE_CLIENTS: usize = 200;
const USERS: usize = 4;
const DRAIN_SECONDS: u64 = 4;

fn start_node(meta_url: &str, s3: &yubin_blob::test_server::TestS3Server) -> YubinProcess {
    YubinProcess::start(
        &[
            "imap",
            "--meta-url",
            meta_url,
            "--s3-bucket",
            BUCKET,
            "--imap-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--allow-plaintext-auth",
            "true",
            "--drain-seconds",
            &DRAIN_SECONDS.to_string(),
        ],
        &[
            ("AWS_ENDPOINT_URL_S3", &s3.endpoint),
            ("AWS_ACCESS_KEY_ID", &s3.access_key),
            ("AWS_SECRET_ACCESS_KEY", &s3.secret_key),
            ("AWS_REGION", "us-east-1"),
        ],
        &["imap", "http"],
    )
}

/// The value of an unlabelled sample in a Prometheus exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A writer that keeps APPENDing (LITERAL+, no round trip for the continuation) and, when its
/// node says BYE or goes away, moves to the next address. Unlike the test client it survives a
/// closed connection: an APPEND whose tagged OK never came is simply not counted.
struct Writer {
    io: BufReader<TcpStream>,
    next_tag: u32,
}

enum Outcome {
    Acknowledged,
    Refused(String),
    /// BYE or connection closed before the tagged answer.
    Gone,
}

impl Writer {
    async fn login(addr: SocketAddr, user: &str, password: &str) -> Option<Writer> {
        let tcp = TcpStream::connect(addr).await.ok()?;
        let mut w = Writer {
            io: BufReader::new(tcp),
            next_tag: 1,
        };
        let greeting = w.line().await?;
        if !greeting.starts_with("* OK") {
            return None;
        }
        match w
            .command(&format!("LOGIN {user} {password}\r\n"), &[])
            .await
        {
            Outcome::Acknowledged => Some(w),
            _ => None,
        }
    }

    async fn line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(20), self.io.read_until(b'\n', &mut buf))
            .await
            .ok()?
            .ok()?;
        (n > 0).then(|| String::from_utf8_lossy(&buf).trim_end().to_string())
    }

    /// Sends `head` (the command line, CRLF included) and `body`, then waits for the tag.
    async fn command(&mut self, head: &str, body: &[u8]) -> Outcome {
        let tag = format!("W{}", self.next_tag);
        self.next_tag += 1;
        let mut wire = format!("{tag} {head}").into_bytes();
        wire.extend_from_slice(body);
        if self.io.get_mut().write_all(&wire).await.is_err() {
            return Outcome::Gone;
        }
        loop {
            let Some(line) = self.line().await else {
                return Outcome::Gone;
            };
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                return if rest.starts_with("OK") {
                    Outcome::Acknowledged
                } else {
                    Outcome::Refused(line)
                };
            }
            if line.starts_with("* BYE") {
                // RFC 3501 §7.1.5: the server closes; the command (if it had not run yet) has
                // no answer and so no effect the client may count on.
                return Outcome::Gone;
            }
        }
    }

    async fn append(&mut self, message: &[u8]) -> Outcome {
        let head = format!("APPEND INBOX {{{}+}}\r\n", message.len());
        let mut body = message.to_vec();
        body.extend_from_slice(b"\r\n");
        self.command(&head, &body).await
    }
}

/// A message whose Message-ID says which APPEND it was.
fn numbered_message(n: usize) -> (String, Vec<u8>) {
    let id = format!("<drain-{n}@yubin.test>");
    let message = format!(
        "From: writer@example.org\r\nTo: user0@example.org\r\nSubject: drain {n}\r\n\
         Message-ID: {id}\r\nDate: Tue, 3 Nov 2026 10:00:00 +0000\r\n\r\nbody {n}\r\n"
    );
    (id, message.into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_idle_clients_with_spread_byes_and_loses_no_acknowledged_append() {
    let redis = RedisServer::spawn_with_aof().expect("redis-server");
    let s3_dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(s3_dir.path().join(BUCKET)).expect("bucket dir");
    let s3 = spawn_s3s_fs(s3_dir.path()).await.expect("s3s-fs");
    let meta = start_meta(&redis.url(), "127.0.0.1:0", &[], &[]);
    let meta_url = format!("http://{}", meta.addr("grpc"));
    let draining = start_node(&meta_url, &s3);
    let other = start_node(&meta_url, &s3);
    let (a, b) = (draining.addr("imap"), other.addr("imap"));
    let a_http = draining.addr("http");
    for u in 0..USERS {
        yubin_user(
            meta.addr("http"),
            &["add", &format!("user{u}"), "--password", "pw"],
        );
    }
    // Some mail to SELECT, so the sessions are in the selected state.
    let mut seed = Imap::login(b, "user1", "pw").await;
    assert!(seed.append("INBOX", "", &sample_message(1)).await.is_ok());

    // 200 IDLE clients on node A, connected a few at a time.
    let mut connecting = tokio::task::JoinSet::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(20));
    for i in 0..IDLE_CLIENTS {
        let gate = gate.clone();
        connecting.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore");
            let user = format!("user{}", i % USERS);
            let mut c = Imap::login(a, &user, "pw").await;
            c.ok("SELECT INBOX").await;
            let tag = c.idle().await;
            (i, user, c, tag)
        });
    }
    let mut idlers = Vec::new();
    while let Some(joined) = connecting.join_next().await {
        idlers.push(joined.expect("idle client connects"));
    }
    let (_, metrics) = http_get(a_http, "/metrics");
    assert_eq!(
        sample(&metrics, "yubin_imap_idle_sessions"),
        Some(IDLE_CLIENTS as f64),
        "node A counts its IDLE sessions"
    );

    // The writer: APPENDs through A until its BYE, then through B.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut refused = Vec::new();
            let mut on_a_after_sigterm = 0usize;
            let mut targets = vec![b, a];
            let mut conn = Writer::login(targets.pop().expect("a"), "user0", "pw")
                .await
                .expect("writer logs in on A");
            let mut on_a = true;
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let (id, message) = numbered_message(n);
                n += 1;
                match conn.append(&message).await {
                    Outcome::Acknowledged => {
                        if on_a && SIGTERM_SENT.load(Ordering::SeqCst) {
                            on_a_after_sigterm += 1;
                        }
                        acknowledged.push(id);
                    }
                    Outcome::Refused(line) => refused.push(line),
                    Outcome::Gone => {
                        let next = targets.pop().expect("the writer moves only once, to B");
                        conn = Writer::login(next, "user0", "pw")
                            .await
                            .expect("writer logs in on B");
                        on_a = false;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (acknowledged, refused, on_a_after_sigterm, on_a)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Each IDLE client waits for its BYE, then reconnects to B.
    let sigterm_at = Instant::now();
    let mut reconnecting = tokio::task::JoinSet::new();
    for (i, user, mut c, _tag) in idlers {
        reconnecting.spawn(async move {
            let bye = c
                .wait_for("BYE", Duration::from_secs(DRAIN_SECONDS + 15))
                .await
                .unwrap_or_else(|| panic!("IDLE client {i} got no BYE"));
            let at = sigterm_at.elapsed();
            assert!(
                bye.text.starts_with("* BYE [UNAVAILABLE]"),
                "client {i}: {}",
                bye.text
            );
            let mut again = Imap::login(b, &user, "pw").await;
            again.ok("SELECT INBOX").await;
            at
        });
    }
    SIGTERM_SENT.store(true, Ordering::SeqCst);
    let stopping = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let status = draining.stop();
        (status, started.elapsed())
    });
    // Mid-drain: the port is closed to new clients, readiness says so, metrics still served.
    tokio::time::sleep(Duration::from_millis(DRAIN_SECONDS * 1000 / 2)).await;
    assert!(
        TcpStream::connect(a).await.is_err(),
        "a draining node accepts no new IMAP connections"
    );
    let (status, body) = http_get(a_http, "/readyz");
    assert_eq!(status, 503, "draining node is not ready: {body}");
    let (_, metrics) = http_get(a_http, "/metrics");
    let byes_mid = sample(&metrics, "yubin_imap_shutdown_byes_total").unwrap_or(0.0);
    assert!(
        byes_mid > 0.0 && byes_mid < IDLE_CLIENTS as f64,
        "halfway through the window some but not all BYEs are out: {byes_mid}"
    );

    let mut bye_times = Vec::new();
    while let Some(joined) = reconnecting.join_next().await {
        bye_times.push(joined.expect("client got BYE and reconnected to B"));
    }
    let (status, took) = stopping.await.expect("join");
    assert!(status.success(), "drained node exits 0: {status:?}");
    assert!(
        took <= Duration::from_secs(DRAIN_SECONDS + 3),
        "the node exits within the drain window (+ slack), took {took:?}"
    );
    assert_eq!(bye_times.len(), IDLE_CLIENTS, "every IDLE client got a BYE");
    bye_times.sort();
    let spread = bye_times[bye_times.len() - 1] - bye_times[0];
    assert!(
        spread >= Duration::from_secs(DRAIN_SECONDS) / 2,
        "BYEs are spread over the window, not one burst: first {:?}, last {:?}",
        bye_times[0],
        bye_times[bye_times.len() - 1]
    );
    assert!(
        bye_times[bye_times.len() - 1] <= Duration::from_secs(DRAIN_SECONDS + 2),
        "the last BYE goes out within the window: {:?}",
        bye_times[bye_times.len() - 1]
    );

    // A few more APPENDs through B, then stop the writer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let (acknowledged, refused, on_a_after_sigterm, still_on_a) = writer.await.expect("writer");
    assert!(refused.is_empty(), "no APPEND was refused: {refused:?}");
    assert!(!still_on_a, "the writer was told BYE and moved to B");
    assert!(
        on_a_after_sigterm > 0,
        "APPENDs went through node A during its drain"
    );

    // Every acknowledged APPEND is in the mailbox, read through B.
    let mut check = Imap::login(b, "user0", "pw").await;
    check.ok("SELECT INBOX").await;
    let r = check
        .ok("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        .await;
    let stored: Vec<String> = r
        .untagged
        .iter()
        .flat_map(|l| l.literals.iter())
        .map(|lit| String::from_utf8_lossy(lit).into_owned())
        .collect();
    for id in &acknowledged {
        assert!(
            stored.iter().any(|h| h.contains(id.as_str())),
            "acknowledged APPEND {id} is missing ({} stored, {} acknowledged)",
            stored.len(),
            acknowledged.len()
        );
    }
    println!(
        "drain: {} acknowledged APPENDs ({on_a_after_sigterm} through A while it drained), \
         BYEs from {:?} to {:?} after SIGTERM, node exited after {took:?}",
        acknowledged.len(),
        bye_times[0],
        bye_times[bye_times.len() - 1]
    );
}

/// Set when SIGTERM goes to node A, so the writer can tell APPENDs made during the drain.
static SIGTERM_SENT: AtomicBool = AtomicBool::new(false);
