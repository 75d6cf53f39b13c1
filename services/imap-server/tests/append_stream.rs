//! APPEND literals over `Limits::max_buffered_literal` (256 KiB by default): streamed from the
//! socket to a spool file and from there to the blob store, never held by the connection.

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;
use yubin_imap::ImapConfig;

/// A message of about 5 MiB with a recognisable subject and a line pattern that shows any
/// shifted or dropped byte.
fn big_message(tag: &str) -> Vec<u8> {
    let mut msg = format!(
        "From: Alice <alice@example.org>\r\nTo: Bob <bob@example.org>\r\n\
Subject: Big {tag}\r\nMessage-ID: <{tag}@example.org>\r\n\r\n"
    )
    .into_bytes();
    let mut i = 0u32;
    while msg.len() < 5 * 1024 * 1024 {
        msg.extend_from_slice(format!("{tag} line {i:0>60}\r\n").as_bytes());
        i += 1;
    }
    msg
}

async fn start_spooling(spool: &Path) -> Harness {
    start_with(Options {
        config: ImapConfig {
            allow_plaintext_auth: true,
            spool_dir: Some(spool.to_path_buf()),
            ..ImapConfig::default()
        },
        ..Options::default()
    })
    .await
}

fn spool_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("spool dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

/// Waits until the spool directory has `want` files (connection teardown is asynchronous).
async fn wait_for_spool_files(dir: &Path, want: usize) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let files = spool_files(dir);
        if files.len() == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "spool files: {files:?}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn select(c: &mut Raw, mailbox: &str) {
    let r = c.cmd(&format!("SELECT {mailbox}")).await;
    assert!(last(&r).starts_with("T OK"), "{r:?}");
}

async fn fetch_body(c: &mut Raw, seq: u32) -> Vec<u8> {
    c.send(format!("F FETCH {seq} (BODY.PEEK[])\r\n").as_bytes())
        .await;
    let line = c.line_bytes().await;
    let r = c.until_tag("F").await;
    assert!(last(&r).starts_with("F OK"), "{r:?}");
    let open = line.iter().position(|&b| b == b'{').expect("literal");
    let close = open
        + line[open..]
            .iter()
            .position(|&b| b == b'}')
            .expect("literal end");
    let size: usize = std::str::from_utf8(&line[open + 1..close])
        .expect("digits")
        .parse()
        .expect("size");
    line[close + 3..close + 3 + size].to_vec()
}

/// RFC 3501 §7.5 synchronizing literal and RFC 7888 LITERAL+, each followed by pipelined
/// commands: the bodies come back byte for byte, the summary is computed, and no spool file
/// remains.
#[tokio::test]
async fn streamed_appends_round_trip() {
    let spool = tempfile::tempdir().expect("spool dir");
    let h = start_spooling(spool.path()).await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;

    let one = big_message("one");
    let r = append(&mut c, "INBOX", "\\Seen", &one).await;
    assert!(r.starts_with("A OK [APPENDUID"), "{r}");

    let two = big_message("two");
    let mut wire = format!("B APPEND INBOX {{{}+}}\r\n", two.len()).into_bytes();
    wire.extend_from_slice(&two);
    wire.extend_from_slice(b"\r\nC NOOP\r\nD STATUS INBOX (MESSAGES)\r\n");
    c.send(&wire).await;
    let r = c.until_tag("B").await;
    assert!(last(&r).starts_with("B OK [APPENDUID"), "{r:?}");
    let r = c.until_tag("C").await;
    assert!(last(&r).starts_with("C OK"), "{r:?}");
    let r = c.until_tag("D").await;
    assert_eq!(r[0], "* STATUS \"INBOX\" (MESSAGES 2)");

    select(&mut c, "INBOX").await;
    assert!(fetch_body(&mut c, 1).await == one, "first body differs");
    assert!(fetch_body(&mut c, 2).await == two, "second body differs");
    let r = c.cmd("FETCH 1:2 (RFC822.SIZE ENVELOPE FLAGS)").await;
    assert!(
        r[0].contains(&format!("RFC822.SIZE {}", one.len())),
        "{r:?}"
    );
    assert!(r[0].contains("\"Big one\""), "{r:?}");
    assert!(r[0].contains("\\Seen"), "{r:?}");
    assert!(r[1].contains("\"Big two\""), "{r:?}");
    assert!(spool_files(spool.path()).is_empty());
}

/// MULTIAPPEND (RFC 3502) mixing a buffered and a streamed message: both land, in order.
#[tokio::test]
async fn multiappend_inline_and_streamed() {
    let spool = tempfile::tempdir().expect("spool dir");
    let h = start_spooling(spool.path()).await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let small = b"Subject: small\r\n\r\nhi\r\n";
    let big = big_message("multi");
    let mut wire = format!("M APPEND INBOX {{{}+}}\r\n", small.len()).into_bytes();
    wire.extend_from_slice(small);
    wire.extend_from_slice(format!(" (\\Flagged) {{{}+}}\r\n", big.len()).as_bytes());
    wire.extend_from_slice(&big);
    wire.extend_from_slice(b"\r\n");
    c.send(&wire).await;
    let r = c.until_tag("M").await;
    assert!(last(&r).starts_with("M OK [APPENDUID"), "{r:?}");
    assert!(last(&r).contains(" 1:2]"), "{r:?}");
    select(&mut c, "INBOX").await;
    assert!(fetch_body(&mut c, 1).await == small, "small body differs");
    assert!(fetch_body(&mut c, 2).await == big, "big body differs");
    let r = c.cmd("FETCH 2 (FLAGS)").await;
    assert!(r[0].contains("\\Flagged"), "{r:?}");
    assert!(spool_files(spool.path()).is_empty());
}

/// Body first: a blob-store outage during a streamed APPEND answers NO [UNAVAILABLE], commits
/// no metadata and removes the spool file; the connection goes on.
#[tokio::test]
async fn streamed_append_blob_outage() {
    let spool = tempfile::tempdir().expect("spool dir");
    let h = start_spooling(spool.path()).await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let puts = h.blobs.put_calls();
    h.blobs.fail_next_puts(1);
    let r = append(&mut c, "INBOX", "", &big_message("lost")).await;
    assert!(r.starts_with("A NO [UNAVAILABLE]"), "{r}");
    assert_eq!(h.blobs.put_calls(), puts + 1);
    let r = c.cmd("STATUS INBOX (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS \"INBOX\" (MESSAGES 0)");
    assert!(spool_files(spool.path()).is_empty());
    // The stream stayed in step: the next streamed APPEND works.
    let r = append(&mut c, "INBOX", "", &big_message("kept")).await;
    assert!(r.starts_with("A OK [APPENDUID"), "{r}");
    assert!(spool_files(spool.path()).is_empty());
}

/// A client that goes away in the middle of a streamed literal (synchronizing or LITERAL+)
/// leaves no spool file and no message.
#[tokio::test]
async fn disconnect_mid_literal_leaves_no_spool_file() {
    let spool = tempfile::tempdir().expect("spool dir");
    let h = start_spooling(spool.path()).await;
    let msg = big_message("cut");
    for marker in ["", "+"] {
        let mut c = Raw::login(h.addr, "alice", "wonderland").await;
        c.send(format!("A APPEND INBOX {{{}{marker}}}\r\n", msg.len()).as_bytes())
            .await;
        if marker.is_empty() {
            let cont = c.line().await;
            assert!(cont.starts_with('+'), "{cont}");
        }
        c.send(&msg[..1024 * 1024]).await;
        // The spool file exists while the literal arrives...
        wait_for_spool_files(spool.path(), 1).await;
        drop(c);
        // ... and is gone once the connection is.
        wait_for_spool_files(spool.path(), 0).await;
    }
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let r = c.cmd("STATUS INBOX (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS \"INBOX\" (MESSAGES 0)");
}

/// Before authentication a large APPEND literal is neither spooled to disk nor read: it is
/// over the pre-authentication limit, so the non-synchronizing literal ends the connection.
#[tokio::test]
async fn unauthenticated_streamed_literal_is_not_spooled() {
    let spool = tempfile::tempdir().expect("spool dir");
    let h = start_spooling(spool.path()).await;
    let mut c = Raw::connect(h.addr).await;
    let msg = big_message("anon");
    // The answer comes at the marker, before any of the octets are sent.
    c.send(format!("A APPEND INBOX {{{}+}}\r\n", msg.len()).as_bytes())
        .await;
    assert_eq!(c.line().await, "A BAD [TOOBIG] literal too large");
    assert_eq!(
        c.line().await,
        "* BYE Cannot recover from the protocol error"
    );
    assert!(spool_files(spool.path()).is_empty());
}
