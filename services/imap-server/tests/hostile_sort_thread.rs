//! SORT and THREAD (RFC 5256) against hostile messages over real TCP: a References field of
//! 200 000 message ids (which once overflowed the stack of the REFERENCES algorithm after a
//! minute of CPU) and a Subject of 100 000 "Re: [x] Fwd: " leaders and 10 000 "(fwd)" trailers
//! (which made base subject extraction quadratic). Each command must answer OK, correctly, in
//! bounded time, both with the default limits and with limits so large that only the
//! algorithms' own complexity protects the server.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// Far more than a debug build needs for the linear algorithms, far less than the old code
/// took (67 s of CPU before it crashed).
const BOUND: Duration = Duration::from_secs(20);

const REFERENCES: usize = 200_000;

/// The message with the huge References (folded, ten ids a line) and a Subject of `leaders`
/// "Re: [x] Fwd: " prefixes around "hello".
fn hostile(leaders: usize) -> Vec<u8> {
    let mut m = String::with_capacity(5 * 1024 * 1024);
    m.push_str("From: mallory@example.org\r\nDate: Mon, 7 Feb 1994 12:00:00 +0000\r\n");
    m.push_str("Subject: ");
    m.push_str(&"Re: [x] Fwd: ".repeat(leaders));
    m.push_str("hello");
    m.push_str(&" (fwd)".repeat(leaders / 10));
    m.push_str("\r\nMessage-ID: <big@example.org>\r\nReferences:");
    for i in 0..REFERENCES {
        m.push_str(&format!(" <r{i}@example.org>"));
        if i % 10 == 9 {
            m.push_str("\r\n");
        }
    }
    m.push_str("\r\n\r\nbody\r\n");
    m.into_bytes()
}

fn plain(subject: &str, id: &str, date: &str) -> Vec<u8> {
    format!(
        "From: alice@example.org\r\nDate: {date}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\r\nhi\r\n"
    )
    .into_bytes()
}

/// A selected INBOX of: 1 the hostile message (12:00), 2 the last message it references (10:00),
/// 3 a reply by subject only (11:00).
async fn mailbox(config: yubin_imap::ImapConfig, leaders: usize) -> (Harness, Raw) {
    let h = start_with(Options {
        config,
        ..Options::default()
    })
    .await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    // Storing the 5.6 MB hostile message takes seconds in a debug build on a busy machine; the
    // bound under test is the one on the commands that follow (BOUND).
    c.timeout = Duration::from_secs(120);
    let messages = [
        hostile(leaders),
        plain(
            "hello",
            &format!("r{}@example.org", REFERENCES - 1),
            "Mon, 7 Feb 1994 10:00:00 +0000",
        ),
        plain(
            "Re: hello",
            "other@example.org",
            "Mon, 7 Feb 1994 11:00:00 +0000",
        ),
    ];
    for m in &messages {
        let r = append(&mut c, "INBOX", "", m).await;
        assert!(r.starts_with("A OK"), "{r}");
    }
    let r = c.tagged("S", "SELECT INBOX").await;
    assert!(last(&r).starts_with("S OK"), "{r:?}");
    (h, c)
}

/// Runs `command` and returns its untagged data line, checking the bound and the OK.
async fn bounded(c: &mut Raw, command: &str) -> String {
    let started = Instant::now();
    let r = tokio::time::timeout(BOUND, c.cmd(command))
        .await
        .unwrap_or_else(|_| panic!("{command} took over {BOUND:?}"));
    let elapsed = started.elapsed();
    assert!(last(&r).starts_with("T OK"), "{command}: {r:?}");
    eprintln!("{command}: {elapsed:?}");
    r.into_iter()
        .find(|l| l.starts_with("* "))
        .unwrap_or_default()
}

fn config(limits: yubin_imap::SortThreadLimits) -> yubin_imap::ImapConfig {
    yubin_imap::ImapConfig {
        allow_plaintext_auth: true,
        sort_thread: limits,
        ..yubin_imap::ImapConfig::default()
    }
}

/// Limits large enough that the whole References and Subject are used: the hostile subject's
/// base subject is HELLO, like the others'. The subject stays within what the search index
/// keeps of one field (64 KiB; the References keep their last 64 KiB, parent included).
#[tokio::test]
async fn hostile_headers_with_unbounded_limits() {
    let (_h, mut c) = mailbox(
        config(yubin_imap::SortThreadLimits {
            max_references: 1_000_000,
            max_sort_field_bytes: 16 * 1024 * 1024,
        }),
        4_000,
    )
    .await;
    // 1 hangs under 2 through its last reference; 3 joins by subject; siblings by date.
    let r = bounded(&mut c, "THREAD REFERENCES UTF-8 ALL").await;
    assert_eq!(r, "* THREAD (2 (3)(1))");
    let r = bounded(&mut c, "THREAD ORDEREDSUBJECT UTF-8 ALL").await;
    assert_eq!(r, "* THREAD (2 (3)(1))");
    // One base subject for all: mailbox order.
    let r = bounded(&mut c, "SORT (SUBJECT) UTF-8 ALL").await;
    assert_eq!(r, "* SORT 1 2 3");
    let r = bounded(&mut c, "UID THREAD REFERENCES US-ASCII ALL").await;
    assert_eq!(r, "* THREAD (2 (3)(1))");
}

/// The default limits: only the last 64 references (still naming the parent), and only the
/// first 4 KiB of the subject (which ends inside the leaders: base subject "R").
#[tokio::test]
async fn hostile_headers_with_default_limits() {
    let (_h, mut c) = mailbox(config(yubin_imap::SortThreadLimits::default()), 100_000).await;
    let r = bounded(&mut c, "THREAD REFERENCES UTF-8 ALL").await;
    assert_eq!(r, "* THREAD (2 (3)(1))");
    let r = bounded(&mut c, "THREAD ORDEREDSUBJECT UTF-8 ALL").await;
    assert_eq!(r, "* THREAD (2 3)(1)");
    let r = bounded(&mut c, "SORT (SUBJECT) UTF-8 ALL").await;
    assert_eq!(r, "* SORT 2 3 1");
}
