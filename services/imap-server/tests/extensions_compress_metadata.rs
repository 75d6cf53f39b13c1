//! End-to-end tests over real TCP for COMPRESS=DEFLATE (RFC 4978), plain and under TLS, with a
//! real DEFLATE client (flate2, raw streams in both directions), and for METADATA (RFC 5464).

mod common;

use common::*;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MESSAGE: &[u8] = b"From: Alice <alice@example.org>\r\n\
To: Bob <bob@example.org>\r\n\
Subject: Compressed\r\n\
\r\n\
Hello over DEFLATE!\r\n";

fn literal_size(line: &[u8]) -> Option<usize> {
    let l = line.strip_suffix(b"}")?;
    let open = l.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&l[open + 1..]).ok()?.parse().ok()
}

fn ok(lines: &[String]) {
    assert!(last(lines).starts_with("T OK"), "{lines:#?}");
}

/// An IMAP client after COMPRESS DEFLATE: one raw DEFLATE stream each way for the rest of the
/// connection, as RFC 4978 §3 requires of a client.
struct Deflated {
    io: Box<dyn Io>,
    compress: Compress,
    decompress: Decompress,
    /// Inflated octets not yet returned as lines.
    text: Vec<u8>,
    /// Compressed octets received in total (to see that compression happens).
    wire_in: usize,
}

impl Deflated {
    /// Sends COMPRESS DEFLATE over `raw`, checks the uncompressed tagged OK and switches.
    async fn start(mut raw: Raw) -> Deflated {
        let r = raw.tagged("Z", "COMPRESS DEFLATE").await;
        assert!(last(&r).starts_with("Z OK"), "{r:?}");
        // Nothing may have been read beyond the OK's CRLF: the rest is compressed.
        assert!(raw.io.buffer().is_empty());
        Deflated {
            io: raw.io.into_inner(),
            compress: Compress::new(Compression::default(), false),
            decompress: Decompress::new(false),
            text: Vec::new(),
            wire_in: 0,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        let mut packed = Vec::with_capacity(bytes.len() + 64);
        self.compress
            .compress_vec(bytes, &mut packed, FlushCompress::Sync)
            .expect("compress");
        assert!(packed.len() < packed.capacity(), "flush incomplete");
        self.io.write_all(&packed).await.expect("write");
        self.io.flush().await.expect("flush");
    }

    /// One response line (without CRLF), literals inlined.
    async fn line(&mut self) -> String {
        tokio::time::timeout(TIMEOUT, async {
            let mut all = Vec::new();
            loop {
                while let Some(end) = self.text.windows(2).position(|w| w == b"\r\n") {
                    let part: Vec<u8> = self.text.drain(..end + 2).collect();
                    all.extend_from_slice(&part[..end]);
                    // `{n}` at the end announces a literal of n octets after the CRLF.
                    match literal_size(&part[..end]) {
                        Some(size) => {
                            while self.text.len() < size {
                                self.fill().await;
                            }
                            all.extend(self.text.drain(..size));
                        }
                        None => return String::from_utf8_lossy(&all).into_owned(),
                    }
                }
                self.fill().await;
            }
        })
        .await
        .expect("timed out waiting for a compressed response line")
    }

    /// Reads compressed octets and inflates them onto `text`.
    async fn fill(&mut self) {
        let mut raw = [0u8; 4096];
        let n = self.io.read(&mut raw).await.expect("read");
        assert!(n > 0, "connection closed; pending {:?}", self.text);
        self.wire_in += n;
        let mut input = &raw[..n];
        while !input.is_empty() {
            self.text.reserve(64 * 1024);
            let before = self.decompress.total_in();
            self.decompress
                .decompress_vec(input, &mut self.text, FlushDecompress::Sync)
                .expect("server sent invalid DEFLATE data");
            input = &input[(self.decompress.total_in() - before) as usize..];
        }
    }

    async fn tagged(&mut self, tag: &str, command: &str) -> Vec<String> {
        self.send(format!("{tag} {command}\r\n").as_bytes()).await;
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

    async fn cmd(&mut self, command: &str) -> Vec<String> {
        self.tagged("T", command).await
    }

    /// Inflated text must not arrive within `wait` (nothing pushed outside IDLE).
    async fn quiet(&mut self, wait: Duration) {
        let mut b = [0u8; 64];
        if let Ok(r) = tokio::time::timeout(wait, self.io.read(&mut b)).await {
            panic!("unexpected data: {r:?}");
        }
    }
}

/// The compressed session: commands, a large FETCH, an IDLE push arriving while compressed
/// (so the server flushed its compressor at the end of the push), a second COMPRESS refused.
async fn exercise_compressed_session(addr: std::net::SocketAddr, session: Raw) {
    let mut z = Deflated::start(session).await;
    let r = z.cmd("CAPABILITY").await;
    assert!(r[0].contains("COMPRESS=DEFLATE"), "{r:?}");
    ok(&r);
    let r = z.cmd("COMPRESS DEFLATE").await;
    assert!(last(&r).starts_with("T NO [COMPRESSIONACTIVE]"), "{r:?}");
    ok(&z.cmd("SELECT INBOX").await);

    // A large response, written in several bursts, arrives intact.
    let mut writer = Raw::login(addr, "alice", "wonderland").await;
    let body = format!(
        "Subject: big\r\n\r\n{}",
        "The quick brown fox jumps over the lazy dog.\r\n".repeat(4000)
    );
    assert!(
        append(&mut writer, "INBOX", "", body.as_bytes())
            .await
            .contains("OK")
    );
    let r = z.cmd("NOOP").await;
    assert_eq!(r[0], "* 1 EXISTS", "{r:?}");
    let before = z.wire_in;
    let r = z.cmd("FETCH 1 BODY.PEEK[]").await;
    ok(&r);
    assert!(r[0].starts_with("* 1 FETCH (BODY[] {"), "{:?}", &r[0][..40]);
    assert!(r[0].contains(&body), "body not intact");
    assert!(
        z.wire_in - before < body.len() / 10,
        "{} compressed octets for {} of text",
        z.wire_in - before,
        body.len()
    );

    // Inside IDLE the push must come out of the compressor without a command behind it.
    z.send(b"I IDLE\r\n").await;
    assert_eq!(z.line().await, "+ idling");
    assert!(
        append(&mut writer, "INBOX", "", MESSAGE)
            .await
            .contains("OK")
    );
    assert_eq!(z.line().await, "* 2 EXISTS");
    assert_eq!(z.line().await, "* 2 RECENT");
    z.send(b"DONE\r\n").await;
    assert_eq!(z.line().await, "I OK IDLE terminated");
    z.quiet(Duration::from_millis(100)).await;
    let r = z.cmd("FETCH 2 BODY.PEEK[TEXT]").await;
    assert!(r[0].contains("Hello over DEFLATE!"), "{r:?}");
    let r = z.cmd("LOGOUT").await;
    assert!(r[0].starts_with("* BYE"), "{r:?}");
    ok(&r);
}

#[tokio::test]
async fn compressed_session_over_plain_tcp_including_idle_push() {
    let h = start().await;
    let session = Raw::login(h.addr, "alice", "wonderland").await;
    exercise_compressed_session(h.addr, session).await;
}

#[tokio::test]
async fn compressed_session_inside_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    std::fs::write(dir.path().join("cert.pem"), ck.cert.pem()).expect("cert");
    std::fs::write(dir.path().join("key.pem"), ck.key_pair.serialize_pem()).expect("key");
    let tls = yubin_imap::tls::load_server_config(
        &dir.path().join("cert.pem"),
        &dir.path().join("key.pem"),
    )
    .expect("tls config");
    let h = start_with(Options {
        tls: Some(tls),
        ..Options::default()
    })
    .await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(h.tls_addr.expect("tls listener"))
        .await
        .expect("connect");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").expect("name"),
            tcp,
        )
        .await
        .expect("handshake");
    let mut session = Raw::over(Box::new(tls)).await;
    ok(&session.cmd("LOGIN alice wonderland").await);
    exercise_compressed_session(h.addr, session).await;
}

#[tokio::test]
async fn compress_refusals() {
    let h = start().await;
    // Not before authentication (RFC 4978 §3: authenticated and selected states).
    let mut raw = Raw::connect(h.addr).await;
    assert!(!raw.greeting.contains("COMPRESS"), "{}", raw.greeting);
    let r = raw.cmd("COMPRESS DEFLATE").await;
    assert!(last(&r).starts_with("T BAD"), "{r:?}");

    let mut raw = Raw::login(h.addr, "alice", "wonderland").await;
    let r = raw.cmd("COMPRESS LZ4").await;
    assert!(last(&r).starts_with("T BAD"), "{r:?}");
    // Still uncompressed after the refusals.
    ok(&raw.cmd("NOOP").await);

    // Bytes pipelined behind COMPRESS were sent uncompressed: refused and closed.
    raw.send(b"T COMPRESS DEFLATE\r\nU NOOP\r\n").await;
    let rest = raw.until_closed().await;
    assert!(
        rest.starts_with("T BAD") && rest.contains("* BYE"),
        "{rest:?}"
    );
}

/// The untagged METADATA line of a response, if any.
fn metadata_line(lines: &[String]) -> Option<&str> {
    lines
        .iter()
        .find(|l| l.starts_with("* METADATA "))
        .map(String::as_str)
}

/// METADATA and METADATA-SERVER (RFC 5464) across two front-end nodes sharing one store: what
/// one node sets, the other reads; DEPTH, MAXSIZE/LONGENTRIES, NIL for missing entries, binary
/// values as literal8 and removal with NIL.
#[tokio::test]
async fn metadata_set_on_one_node_read_on_another() {
    let h = start().await;
    let second = h.second_node().await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    let mut b = Raw::login(second, "alice", "wonderland").await;

    let caps = a.cmd("CAPABILITY").await;
    assert!(
        caps[0].contains(" METADATA ") && caps[0].contains(" METADATA-SERVER"),
        "{caps:?}"
    );
    let pre_auth = Raw::connect(h.addr).await;
    assert!(
        !pre_auth.greeting.contains("METADATA"),
        "{}",
        pre_auth.greeting
    );

    // Server entries (mailbox ""), RFC 5464 §4.3 example shapes; names are case-insensitive.
    ok(&a
        .cmd("SETMETADATA \"\" (/shared/Comment \"Shared server note\" /private/vendor/x/a \"1\" /private/vendor/x/a/b \"2\" /private/vendor/xy \"3\")")
        .await);
    // A binary value (NUL) as a non-synchronizing literal8.
    a.send(b"T SETMETADATA INBOX (/private/bin ~{3+}\r\na\0b /shared/comment \"Inbox\")\r\n")
        .await;
    ok(&a.until_tag("T").await);

    let r = b.cmd("GETMETADATA \"\" /shared/comment").await;
    ok(&r);
    assert_eq!(
        metadata_line(&r),
        Some("* METADATA \"\" (/shared/comment \"Shared server note\")"),
        "{r:?}"
    );
    let r = b
        .cmd("GETMETADATA (DEPTH 1) \"\" (/private/vendor/x /private/none)")
        .await;
    ok(&r);
    assert_eq!(
        metadata_line(&r),
        Some("* METADATA \"\" (/private/none NIL /private/vendor/x NIL /private/vendor/x/a \"1\")"),
        "depth 1: children only, not grandchildren or a prefix sibling: {r:?}"
    );
    let r = b
        .cmd("GETMETADATA (DEPTH infinity) \"\" /private/vendor")
        .await;
    assert_eq!(
        metadata_line(&r),
        Some(
            "* METADATA \"\" (/private/vendor NIL /private/vendor/x/a \"1\" \
             /private/vendor/x/a/b \"2\" /private/vendor/xy \"3\")"
        ),
        "{r:?}"
    );
    // Mailbox entries: the NUL-bearing value comes back as literal8; MAXSIZE leaves out the
    // longer value and reports its size.
    b.send(b"T GETMETADATA inbox (/private/bin /shared/comment)\r\n")
        .await;
    let raw_line = b.line_bytes().await;
    assert_eq!(
        raw_line,
        b"* METADATA \"INBOX\" (/private/bin ~{3}\r\na\0b /shared/comment \"Inbox\")".to_vec()
    );
    ok(&b.until_tag("T").await);
    let r = b
        .cmd("GETMETADATA (MAXSIZE 3) INBOX (/private/bin /shared/comment)")
        .await;
    assert_eq!(
        metadata_line(&r),
        Some("* METADATA \"INBOX\" (/private/bin ~{3}\r\na\0b)"),
        "{r:?}"
    );
    assert!(
        last(&r).starts_with("T OK [METADATA LONGENTRIES 5]"),
        "{r:?}"
    );

    // NIL removes, seen from the other node.
    ok(&b.cmd("SETMETADATA INBOX (/shared/comment NIL)").await);
    let r = a.cmd("GETMETADATA INBOX /shared/comment").await;
    ok(&r);
    assert_eq!(
        metadata_line(&r),
        Some("* METADATA \"INBOX\" (/shared/comment NIL)"),
        "{r:?}"
    );
    // Another account sees none of alice's entries.
    let mut bob = Raw::login(second, "bob", "builder").await;
    let r = bob.cmd("GETMETADATA \"\" /shared/comment").await;
    assert_eq!(
        metadata_line(&r),
        Some("* METADATA \"\" (/shared/comment NIL)"),
        "{r:?}"
    );
}

/// The configured limits ([METADATA MAXSIZE], [METADATA TOOMANY], all-or-none), bad input, and
/// entries following their mailbox through RENAME and DELETE.
#[tokio::test]
async fn metadata_limits_rename_and_delete() {
    let h = start_with(Options {
        config: yubin_imap::ImapConfig {
            allow_plaintext_auth: true,
            metadata: yubin_imap::MetadataLimits {
                max_entry_size: 8,
                max_entries: 2,
            },
            ..yubin_imap::ImapConfig::default()
        },
        ..Options::default()
    })
    .await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;

    let r = c.cmd("SETMETADATA INBOX (/private/a \"123456789\")").await;
    assert!(last(&r).starts_with("T NO [METADATA MAXSIZE 8]"), "{r:?}");
    ok(&c.cmd("SETMETADATA INBOX (/private/a \"12345678\")").await);
    let r = c
        .cmd("SETMETADATA INBOX (/private/b \"b\" /private/c \"c\")")
        .await;
    assert!(last(&r).starts_with("T NO [METADATA TOOMANY]"), "{r:?}");
    let r = c.cmd("GETMETADATA INBOX (/private/b /private/c)").await;
    assert_eq!(
        metadata_line(&r),
        Some("* METADATA \"INBOX\" (/private/b NIL /private/c NIL)"),
        "a refused SETMETADATA sets nothing: {r:?}"
    );
    // Replacing and removing at the limit work; the server entries have their own count.
    ok(&c
        .cmd("SETMETADATA INBOX (/private/b \"b\" /private/a \"new\")")
        .await);
    ok(&c
        .cmd("SETMETADATA \"\" (/private/a \"s\" /shared/b \"s\")")
        .await);

    // Bad input: entry names outside /private and /shared, wildcards; unknown mailboxes;
    // before authentication.
    let r = c.cmd("SETMETADATA INBOX (/other/x \"x\")").await;
    assert!(last(&r).starts_with("T BAD"), "{r:?}");
    let r = c.cmd("GETMETADATA INBOX /private/*").await;
    assert!(last(&r).starts_with("T BAD"), "{r:?}");
    let r = c.cmd("GETMETADATA Nope /private/a").await;
    assert!(last(&r).starts_with("T NO [NONEXISTENT]"), "{r:?}");
    let r = c.cmd("SETMETADATA Nope (/private/a \"x\")").await;
    assert!(last(&r).starts_with("T NO [NONEXISTENT]"), "{r:?}");
    let mut anon = Raw::connect(h.addr).await;
    let r = anon.cmd("GETMETADATA \"\" /private/a").await;
    assert!(last(&r).starts_with("T BAD"), "{r:?}");

    // RENAME keeps the entries; DELETE drops them; a re-created mailbox starts empty.
    ok(&c.cmd("CREATE Work").await);
    ok(&c.cmd("SETMETADATA Work (/shared/comment \"work\")").await);
    ok(&c.cmd("RENAME Work Job").await);
    let r = c.cmd("GETMETADATA Job /shared/comment").await;
    assert_eq!(
        metadata_line(&r),
        Some("* METADATA \"Job\" (/shared/comment \"work\")"),
        "{r:?}"
    );
    ok(&c.cmd("DELETE Job").await);
    let r = c.cmd("GETMETADATA Job /shared/comment").await;
    assert!(last(&r).starts_with("T NO [NONEXISTENT]"), "{r:?}");
    ok(&c.cmd("CREATE Job").await);
    let r = c.cmd("GETMETADATA (DEPTH infinity) Job /shared").await;
    ok(&r);
    assert_eq!(
        metadata_line(&r),
        Some("* METADATA \"Job\" (/shared NIL)"),
        "{r:?}"
    );
}
