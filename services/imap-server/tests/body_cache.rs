//! The front-end body cache (`yubin_blob::CachedBlobStore`) under real IMAP FETCHes: every
//! section form answers the stored bytes, cold and warm, exactly as a node without a cache
//! does; a message read once costs one GET however it is read after; a body APPENDed on this
//! node is read without a GET; a blob-store outage fails what the cache cannot serve with
//! `NO [UNAVAILABLE]` and spares what it can.

mod common;

use common::*;
use yubin_blob::BodyCacheConfig;
use yubin_imap::ImapConfig;

/// Bodies up to this size are cached whole in these tests.
const OBJECT_MAX: u64 = 16 * 1024;

async fn harness() -> Harness {
    start_with(Options {
        config: ImapConfig {
            allow_plaintext_auth: true,
            ..ImapConfig::default()
        },
        body_cache: Some(BodyCacheConfig {
            memory_bytes: 4 << 20,
            object_max_bytes: OBJECT_MAX,
            disk: None,
        }),
        ..Options::default()
    })
    .await
}

/// A multipart/mixed message with a text part, a forwarded message/rfc822 (itself
/// multipart/alternative) and a base64 attachment; `filler` lines of text make it as large as
/// a test needs.
fn message(n: usize, filler: usize) -> String {
    let text = format!("line {n} of the text, with some words to fill it\r\n").repeat(filler);
    let attachment = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\r\n".repeat(8);
    format!(
        "From: Sender {n} <sender{n}@example.com>\r\nTo: reader@example.org\r\n\
         Subject: =?UTF-8?B?44GK55+l44KJ44Gb?= {n}\r\nDate: Thu, 3 Dec 2026 10:00:00 +0000\r\n\
         Message-ID: <m{n}@example.com>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
         preamble\r\n--outer\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n{text}caf\u{e9}\r\n\
         --outer\r\nContent-Type: message/rfc822\r\n\r\n\
         From: inner@example.net\r\nSubject: forwarded {n}\r\n\
         Content-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n\
         --inner\r\nContent-Type: text/plain\r\n\r\nplain {n}\r\n\
         --inner\r\nContent-Type: text/html\r\n\r\n<p>html {n}</p>\r\n--inner--\r\n\
         --outer\r\nContent-Type: application/octet-stream; name=\"a.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{attachment}--outer--\r\n"
    )
}

/// Every section form a client uses, PEEK so that no run changes what the next one sees.
const FORMS: &str = "UID RFC822.SIZE RFC822.HEADER BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT] \
    BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT)] \
    BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[2] BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] \
    BODY.PEEK[2.1] BODY.PEEK[2.2.MIME] BODY.PEEK[3] BINARY.PEEK[3] BINARY.SIZE[3] \
    BINARY.PEEK[1] BODY.PEEK[]<10.50> BODY.PEEK[TEXT]<100.200> BODY.PEEK[3]<4.8>";

fn ok(lines: &[String]) {
    assert!(last(lines).starts_with("T OK"), "{:?}", last(lines));
}

#[tokio::test]
async fn every_section_form_serves_the_stored_bytes_cold_and_warm() {
    let h = harness().await;
    // Delivered through another node: this node's cache has never seen the bodies.
    let other = h.second_node().await;
    let mut writer = Raw::login(other, "alice", "wonderland").await;
    // Messages 1–5 are cached whole; 6 and 7 are over OBJECT_MAX.
    for (n, filler) in [
        (1, 1),
        (2, 10),
        (3, 40),
        (4, 100),
        (5, 200),
        (6, 400),
        (7, 800),
    ] {
        let m = message(n, filler);
        assert_eq!(
            m.len() as u64 > OBJECT_MAX,
            n >= 6,
            "message {n}: {}",
            m.len()
        );
        assert!(
            append(&mut writer, "INBOX", "", m.as_bytes())
                .await
                .starts_with("A OK")
        );
    }
    ok(&writer.cmd("SELECT INBOX").await);
    let command = format!("FETCH 1:7 ({FORMS})");
    let reference = writer.cmd(&command).await;
    ok(&reference);
    assert_eq!(reference.len(), 8);

    let mut reader = Raw::login(h.addr, "alice", "wonderland").await;
    ok(&reader.cmd("SELECT INBOX").await);
    let gets = h.blobs.get_calls();
    let cold = reader.cmd(&command).await;
    assert_eq!(
        cold, reference,
        "cold: the bytes a node without a cache serves"
    );
    assert_eq!(h.blobs.get_calls() - gets, 7, "one GET per message");
    let gets = h.blobs.get_calls();
    let warm = reader.cmd(&command).await;
    assert_eq!(warm, reference, "warm: the same bytes");
    assert_eq!(
        h.blobs.get_calls() - gets,
        2,
        "only the two bodies over the cache's object size are read again"
    );
    // Header reads of the large ones: the leading bytes are kept after one read.
    let gets = h.blobs.get_calls();
    for _ in 0..3 {
        let r = reader
            .cmd("FETCH 6:7 (BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[1.MIME])")
            .await;
        ok(&r);
        assert!(r[0].contains("Subject: =?UTF-8?B?44GK55+l44KJ44Gb?= 6\r\n"));
    }
    assert_eq!(h.blobs.get_calls() - gets, 2, "one GET per large message");
}

#[tokio::test]
async fn a_body_appended_here_is_read_without_a_get() {
    let h = harness().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let m = message(1, 20);
    assert!(
        append(&mut c, "INBOX", "", m.as_bytes())
            .await
            .starts_with("A OK")
    );
    ok(&c.cmd("SELECT INBOX").await);
    let gets = h.blobs.get_calls();
    let r = c.cmd("FETCH 1 (BODY.PEEK[] BODY.PEEK[2.1])").await;
    ok(&r);
    assert!(r[0].contains(&format!("BODY[] {{{}}}\r\n{m}", m.len())));
    assert_eq!(h.blobs.get_calls(), gets, "served from the cache");
}

#[tokio::test]
async fn an_outage_fails_only_what_the_cache_cannot_serve() {
    let h = harness().await;
    let other = h.second_node().await;
    let mut writer = Raw::login(other, "alice", "wonderland").await;
    for n in 1..=20 {
        assert!(
            append(&mut writer, "INBOX", "", message(n, 5).as_bytes())
                .await
                .starts_with("A OK")
        );
    }
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    ok(&c.cmd("SELECT INBOX").await);
    // Messages 1–10 read once: in the cache.
    ok(&c.cmd("FETCH 1:10 (BODY.PEEK[])").await);
    h.blobs.set_fail_all(true);
    let started = std::time::Instant::now();
    let r = c.cmd("FETCH 1:10 (BODY.PEEK[TEXT])").await;
    ok(&r);
    assert_eq!(r.len(), 11);
    let r = c.cmd("FETCH 1:20 (BODY.PEEK[])").await;
    assert!(last(&r).starts_with("T NO [UNAVAILABLE]"), "{:?}", last(&r));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the outage is answered, not waited out"
    );
    h.blobs.heal();
    let r = c.cmd("FETCH 1:20 (BODY.PEEK[])").await;
    ok(&r);
    assert_eq!(r.len(), 21);
}
