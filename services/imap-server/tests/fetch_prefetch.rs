//! FETCH reads bodies ahead (`ImapConfig::fetch_prefetch`): the bytes served are the stored
//! bytes for every section form, in order, whether a body was read ahead or (over
//! `fetch_prefetch_max_bytes`) in turn; a blob-store failure during read-ahead fails that
//! command with `NO [UNAVAILABLE]` and the session goes on.

mod common;

use common::*;
use yubin_imap::ImapConfig;

fn message(n: usize) -> String {
    // Every fifth message is over the read-ahead cap of these tests (4 KiB).
    let filler = if n.is_multiple_of(5) { 3000 } else { 10 };
    format!(
        "From: sender{n}@example.com\r\nSubject: message {n}\r\n\r\nbody {n} {}\r\n",
        format!("line {n} of the text\r\n").repeat(filler / 10)
    )
}

async fn harness() -> Harness {
    start_with(Options {
        config: ImapConfig {
            allow_plaintext_auth: true,
            fetch_prefetch: 8,
            fetch_prefetch_max_bytes: 4096,
            ..ImapConfig::default()
        },
        ..Options::default()
    })
    .await
}

fn ok(lines: &[String]) {
    assert!(last(lines).starts_with("T OK"), "{:?}", last(lines));
}

#[tokio::test]
async fn read_ahead_serves_the_stored_bytes_in_order() {
    let h = harness().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let messages: Vec<String> = (1..=40).map(message).collect();
    for m in &messages {
        assert!(
            append(&mut c, "INBOX", "", m.as_bytes())
                .await
                .starts_with("A OK")
        );
    }
    ok(&c.cmd("SELECT INBOX").await);
    let gets = h.blobs.get_calls();
    let r = c
        .cmd(
            "FETCH 1:40 (UID BODY.PEEK[] BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT]<5.20>)",
        )
        .await;
    ok(&r);
    assert_eq!(r.len(), 41, "one response per message and the tagged OK");
    assert_eq!(h.blobs.get_calls(), gets + 40, "one read per message");
    for (i, line) in r[..40].iter().enumerate() {
        let (n, m) = (i + 1, &messages[i]);
        assert!(
            line.starts_with(&format!("* {n} FETCH (UID {n} ")),
            "{line:.80}"
        );
        assert!(
            line.contains(&format!("BODY[] {{{}}}\r\n{m}", m.len())),
            "message {n}: the whole body as stored"
        );
        let subject = format!("Subject: message {n}\r\n\r\n");
        assert!(
            line.contains(&format!(
                "BODY[HEADER.FIELDS (SUBJECT)] {{{}}}\r\n{subject}",
                subject.len()
            )),
            "message {n}: the header field"
        );
        let text = &m[m.find("\r\n\r\n").unwrap() + 4..];
        assert!(
            line.contains(&format!("BODY[TEXT]<5> {{20}}\r\n{}", &text[5..25])),
            "message {n}: the partial text"
        );
    }
}

#[tokio::test]
async fn a_failed_read_ahead_fails_the_command_not_the_session() {
    let h = harness().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    for n in 1..=30 {
        assert!(
            append(&mut c, "INBOX", "", message(n).as_bytes())
                .await
                .starts_with("A OK")
        );
    }
    ok(&c.cmd("SELECT INBOX").await);
    // One read among the first ones read ahead fails: the others are still answered.
    h.blobs.fail_next_gets(1);
    let r = c.cmd("FETCH 1:30 (BODY.PEEK[])").await;
    assert!(last(&r).starts_with("T NO [UNAVAILABLE]"), "{:?}", last(&r));
    assert_eq!(r.len(), 30, "29 messages and the tagged NO");
    // The blob store down for the whole command: NO, promptly, and the session goes on.
    h.blobs.set_fail_all(true);
    let r = c.cmd("FETCH 1:30 (BODY.PEEK[])").await;
    assert!(last(&r).starts_with("T NO [UNAVAILABLE]"), "{:?}", last(&r));
    h.blobs.heal();
    let r = c.cmd("FETCH 1:30 (BODY.PEEK[])").await;
    ok(&r);
    assert_eq!(r.len(), 31);
}
