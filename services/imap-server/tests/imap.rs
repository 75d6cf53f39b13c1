//! End-to-end tests: the server in-process over the embedded store, driven by raw scripts and by
//! the async-imap client.

mod common;

use common::*;
use std::sync::Arc;
use std::time::Duration;
use yubin_imap::ImapConfig;

const SIMPLE: &[u8] = b"From: Alice <alice@example.org>\r\n\
To: Bob <bob@example.org>\r\n\
Subject: Hello there\r\n\
Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\
Message-ID: <1@example.org>\r\n\
\r\n\
Hello Bob!\r\n";

const MULTIPART: &[u8] = b"From: Alice <alice@example.org>\r\n\
To: Bob <bob@example.org>\r\n\
Subject: Report\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=\"inner\"\r\n\
\r\n\
--inner\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n\
Plain body\r\n\
--inner\r\n\
Content-Type: text/html; charset=us-ascii\r\n\
\r\n\
<p>HTML body</p>\r\n\
--inner--\r\n\
\r\n\
--outer\r\n\
Content-Type: application/octet-stream; name=\"data.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename=\"data.bin\"\r\n\
\r\n\
AAECAwQFBgcICQ==\r\n\
--outer--\r\n";

const UTF8: &[u8] = "From: Jörg <joerg@example.de>\r\n\
To: bob@example.org\r\n\
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Grüße aus Köln — 日本語\r\n"
    .as_bytes();

fn has(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

fn ok(lines: &[String]) {
    assert!(last(lines).starts_with("T OK"), "{lines:#?}");
}

async fn select(raw: &mut Raw, mailbox: &str) -> Vec<String> {
    let r = raw.cmd(&format!("SELECT {mailbox}")).await;
    ok(&r);
    r
}

#[tokio::test]
async fn greeting_capability_login_logout() {
    let h = start().await;
    let mut c = Raw::connect(h.addr).await;
    assert!(
        c.greeting.starts_with("* OK [CAPABILITY IMAP4rev1 "),
        "{}",
        c.greeting
    );
    assert!(c.greeting.contains("AUTH=PLAIN"));
    // No TLS configured: STARTTLS must not be offered.
    assert!(!c.greeting.contains("STARTTLS"));
    let r = c.cmd("CAPABILITY").await;
    ok(&r);
    for cap in [
        "IMAP4rev1",
        "LITERAL+",
        "SASL-IR",
        "IDLE",
        "UIDPLUS",
        "MOVE",
        "UNSELECT",
        "NAMESPACE",
        "CHILDREN",
        "ID",
        "ENABLE",
    ] {
        assert!(r[0].split(' ').any(|c| c == cap), "{cap} missing: {}", r[0]);
    }
    assert!(r[0].contains(" CONDSTORE ") && r[0].contains(" QRESYNC "));
    let r = c.cmd("SELECT INBOX").await;
    assert!(last(&r).starts_with("T BAD"), "{r:?}");
    let r = c.cmd("LOGIN alice wonderland").await;
    assert!(last(&r).starts_with("T OK [CAPABILITY IMAP4rev1"), "{r:?}");
    assert!(!last(&r).contains("AUTH=PLAIN"));
    let r = c.cmd("LOGIN alice wonderland").await;
    assert!(last(&r).starts_with("T BAD"), "{r:?}");
    let r = c.cmd("NAMESPACE").await;
    assert_eq!(r[0], "* NAMESPACE ((\"\" \"/\")) NIL NIL");
    let r = c.cmd("ENABLE CONDSTORE").await;
    assert_eq!(r[0], "* ENABLED CONDSTORE");
    let r = c.cmd("ID (\"name\" \"test\")").await;
    assert!(r[0].starts_with("* ID (\"name\" \"Yubin\""), "{r:?}");
    let r = c.cmd("LOGOUT").await;
    assert_eq!(r[0], "* BYE Logging out");
    ok(&r);
    assert_eq!(c.until_closed().await, "");
}

#[tokio::test]
async fn authentication_failures_end_in_bye() {
    let h = start().await;
    let mut c = Raw::connect(h.addr).await;
    for _ in 0..2 {
        let r = c.cmd("LOGIN alice wrong").await;
        assert_eq!(
            last(&r),
            "T NO [AUTHENTICATIONFAILED] Authentication failed"
        );
    }
    let r = c.cmd("LOGIN nobody wrong").await;
    assert_eq!(r[0], "* BYE Too many authentication failures");
    assert!(last(&r).starts_with("T NO [AUTHENTICATIONFAILED]"));
    c.until_closed().await;
}

#[tokio::test]
async fn logindisabled_without_tls() {
    let h = start_with(Options {
        config: ImapConfig::default(),
        ..Options::default()
    })
    .await;
    let mut c = Raw::connect(h.addr).await;
    assert!(c.greeting.contains("LOGINDISABLED"), "{}", c.greeting);
    assert!(!c.greeting.contains("AUTH=PLAIN"));
    let r = c.cmd("LOGIN alice wonderland").await;
    assert!(last(&r).starts_with("T NO [PRIVACYREQUIRED]"), "{r:?}");
    let r = c.cmd("AUTHENTICATE PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=").await;
    assert!(last(&r).starts_with("T NO [PRIVACYREQUIRED]"), "{r:?}");
}

#[tokio::test]
async fn authenticate_plain_forms() {
    let h = start().await;
    // SASL-IR: base64("\0alice\0wonderland").
    let mut c = Raw::connect(h.addr).await;
    let r = c.cmd("AUTHENTICATE PLAIN AGFsaWNlAHdvbmRlcmxhbmQ=").await;
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    // Continuation exchange.
    let mut c = Raw::connect(h.addr).await;
    c.send(b"T AUTHENTICATE PLAIN\r\n").await;
    assert_eq!(c.line().await, "+ ");
    c.send(b"AGFsaWNlAHdvbmRlcmxhbmQ=\r\n").await;
    let r = c.until_tag("T").await;
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    // Cancel.
    let mut c = Raw::connect(h.addr).await;
    c.send(b"T AUTHENTICATE PLAIN\r\n").await;
    assert_eq!(c.line().await, "+ ");
    c.send(b"*\r\n").await;
    let r = c.until_tag("T").await;
    assert!(last(&r).starts_with("T BAD"), "{r:?}");
    // Wrong password, other mechanism.
    let r = c.cmd("AUTHENTICATE PLAIN AGFsaWNlAHdyb25n").await;
    assert!(last(&r).starts_with("T NO [AUTHENTICATIONFAILED]"), "{r:?}");
    let r = c.cmd("AUTHENTICATE CRAM-MD5").await;
    assert!(last(&r).starts_with("T NO"), "{r:?}");
}

#[tokio::test]
async fn mailbox_management() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    ok(&c.cmd("CREATE Work/Projects/Yubin").await);
    ok(&c.cmd("CREATE Archive").await);
    ok(&c.cmd("CREATE \"Caf&AOk-\"").await);
    let r = c.cmd("CREATE Archive").await;
    assert!(last(&r).starts_with("T NO [ALREADYEXISTS]"), "{r:?}");
    let r = c.cmd("CREATE inbox").await;
    assert!(last(&r).starts_with("T NO [ALREADYEXISTS]"), "{r:?}");

    let r = c.cmd("LIST \"\" \"\"").await;
    assert_eq!(r[0], "* LIST (\\Noselect) \"/\" \"\"");
    let r = c.cmd("LIST \"\" \"*\"").await;
    ok(&r);
    assert_eq!(r[0], "* LIST (\\HasNoChildren) \"/\" \"INBOX\"");
    assert!(has(&r, "* LIST (\\HasNoChildren) \"/\" \"Archive\""));
    assert!(
        has(&r, "* LIST (\\HasNoChildren) \"/\" \"Caf&AOk-\""),
        "{r:#?}"
    );
    // CREATE made the superior levels too (RFC 3501 §6.3.3).
    assert!(has(&r, "* LIST (\\HasChildren) \"/\" \"Work\""), "{r:#?}");
    assert!(has(&r, "(\\HasNoChildren) \"/\" \"Work/Projects/Yubin\""));
    let r = c.cmd("LIST \"\" \"%\"").await;
    assert_eq!(r.len(), 5, "{r:#?}");
    assert!(has(&r, "* LIST (\\HasChildren) \"/\" \"Work\""), "{r:#?}");
    assert!(!has(&r, "Work/"));
    let r = c.cmd("LIST Work %").await;
    assert_eq!(r.len(), 2, "{r:#?}");
    assert!(has(&r, "\"Work/Projects\""));
    let r = c.cmd("LIST \"\" inBOX").await;
    assert_eq!(r[0], "* LIST (\\HasNoChildren) \"/\" \"INBOX\"");

    ok(&c.cmd("RENAME Work Job").await);
    let r = c.cmd("LIST \"\" *").await;
    assert!(has(&r, "\"Job/Projects/Yubin\""), "{r:#?}");
    assert!(!has(&r, "\"Work"));
    let r = c.cmd("RENAME Nope Other").await;
    assert!(last(&r).starts_with("T NO [NONEXISTENT]"), "{r:?}");

    ok(&c.cmd("SUBSCRIBE Job/Projects/Yubin").await);
    ok(&c.cmd("SUBSCRIBE Archive").await);
    let r = c.cmd("LSUB \"\" *").await;
    assert!(has(&r, "* LSUB () \"/\" \"Archive\""), "{r:#?}");
    assert!(has(&r, "* LSUB () \"/\" \"Job/Projects/Yubin\""));
    let r = c.cmd("LSUB \"\" %").await;
    assert!(has(&r, "* LSUB (\\Noselect) \"/\" \"Job\""), "{r:#?}");
    ok(&c.cmd("UNSUBSCRIBE Archive").await);
    let r = c.cmd("LSUB \"\" *").await;
    assert!(!has(&r, "Archive"), "{r:#?}");

    ok(&c.cmd("CREATE Outbox (USE (\\Sent))").await);
    let r = c.cmd("LIST \"\" Outbox").await;
    assert_eq!(
        r[0], "* LIST (\\HasNoChildren \\Sent) \"/\" \"Outbox\"",
        "{r:?}"
    );
    // Deleting the selected mailbox ends the selection without a BYE.
    select(&mut c, "Outbox").await;
    ok(&c.cmd("DELETE Outbox").await);
    let r = c.cmd("FETCH 1 FLAGS").await;
    assert!(last(&r).starts_with("T BAD"), "{r:?}");
    ok(&c.cmd("DELETE Archive").await);
    let r = c.cmd("SELECT Archive").await;
    assert!(last(&r).starts_with("T NO [NONEXISTENT]"), "{r:?}");
    let r = c.cmd("DELETE INBOX").await;
    assert!(last(&r).starts_with("T NO"), "{r:?}");

    append(&mut c, "INBOX", "\\Seen", SIMPLE).await;
    append(&mut c, "INBOX", "", SIMPLE).await;
    let r = c
        .cmd("STATUS INBOX (MESSAGES UNSEEN UIDNEXT UIDVALIDITY RECENT SIZE DELETED)")
        .await;
    ok(&r);
    assert!(
        r[0].starts_with("* STATUS \"INBOX\" (MESSAGES 2 UNSEEN 1 UIDNEXT 3 UIDVALIDITY "),
        "{r:?}"
    );
    // No session has the two messages yet: both are still to be claimed as \Recent.
    assert!(
        r[0].ends_with(&format!(" RECENT 2 SIZE {} DELETED 0)", 2 * SIMPLE.len())),
        "{r:?}"
    );
}

#[tokio::test]
async fn append_and_fetch_exact_bytes() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let r = append(&mut c, "INBOX", "", SIMPLE).await;
    assert!(r.starts_with("A OK [APPENDUID "), "{r}");
    assert!(r.contains(" 1]"), "{r}");
    append(&mut c, "INBOX", "", MULTIPART).await;
    let r = append(&mut c, "INBOX", "\\Flagged", UTF8).await;
    assert!(r.contains(" 3]"), "{r}");
    let r = append(&mut c, "Missing", "", SIMPLE).await;
    assert!(r.starts_with("A NO [TRYCREATE]"), "{r}");
    // LITERAL+ (non-synchronizing literal): no continuation round trip.
    c.send(format!("L APPEND INBOX {{{}+}}\r\n", SIMPLE.len()).as_bytes())
        .await;
    c.send(SIMPLE).await;
    c.send(b"\r\n").await;
    let r = c.until_tag("L").await;
    assert!(last(&r).starts_with("L OK [APPENDUID"), "{r:?}");

    let r = select(&mut c, "INBOX").await;
    assert!(has(&r, "* 4 EXISTS"), "{r:#?}");
    // This SELECT is the first: all four are \Recent to this session (RFC 3501 §2.3.2).
    assert!(has(&r, "* 4 RECENT"), "{r:#?}");
    assert!(has(&r, "[UIDVALIDITY "));
    assert!(has(&r, "* OK [UIDNEXT 5]"));
    assert!(has(&r, "[PERMANENTFLAGS ("));
    assert!(last(&r).starts_with("T OK [READ-WRITE]"));

    for (seq, msg) in [(1, SIMPLE), (2, MULTIPART), (3, UTF8)] {
        c.send(format!("T FETCH {seq} (RFC822.SIZE BODY.PEEK[])\r\n").as_bytes())
            .await;
        let line = c.line_bytes().await;
        let head = format!(
            "* {seq} FETCH (RFC822.SIZE {} BODY[] {{{}}}\r\n",
            msg.len(),
            msg.len()
        );
        assert!(
            line.starts_with(head.as_bytes()),
            "{:?}",
            String::from_utf8_lossy(&line)
        );
        assert_eq!(&line[head.len()..line.len() - 1], msg);
        let r = c.until_tag("T").await;
        ok(&r);
    }

    let r = c
        .cmd("FETCH 2 (BODY.PEEK[1.2] BODY.PEEK[1.1] BODY.PEEK[2] BODY.PEEK[2.MIME])")
        .await;
    ok(&r);
    let l = &r[0];
    assert!(l.contains("BODY[1.2] {16}\r\n<p>HTML body</p>"), "{l}");
    assert!(l.contains("BODY[1.1] {10}\r\nPlain body"), "{l}");
    assert!(l.contains("BODY[2] {16}\r\nAAECAwQFBgcICQ=="), "{l}");
    assert!(l.contains("BODY[2.MIME] {"), "{l}");
    assert!(l.contains("Content-Transfer-Encoding: base64"), "{l}");

    let r = c
        .cmd("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])")
        .await;
    ok(&r);
    assert!(
        r[0].contains("BODY[HEADER.FIELDS (SUBJECT FROM)] {"),
        "{r:?}"
    );
    assert!(
        r[0].contains("From: Alice <alice@example.org>\r\nSubject: Hello there\r\n\r\n"),
        "{r:?}"
    );
    assert!(!r[0].contains("To:"));
    let r = c
        .cmd("FETCH 1 (BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT FROM DATE MESSAGE-ID)])")
        .await;
    assert!(r[0].contains("To: Bob <bob@example.org>\r\n\r\n"), "{r:?}");
    assert!(!r[0].contains("Subject"), "{r:?}");

    let r = c
        .cmd("FETCH 1 (BODY.PEEK[]<0.4> BODY.PEEK[TEXT]<6.3> BODY.PEEK[TEXT]<100.3>)")
        .await;
    ok(&r);
    assert!(r[0].contains("BODY[]<0> {4}\r\nFrom"), "{r:?}");
    assert!(r[0].contains("BODY[TEXT]<6> {3}\r\nBob"), "{r:?}");
    assert!(r[0].contains("BODY[TEXT]<100> {0}\r\n"), "{r:?}");
    let r = c.cmd("FETCH 1 (RFC822.HEADER RFC822.TEXT FLAGS)").await;
    ok(&r);
    assert!(r[0].contains("RFC822.TEXT {12}\r\nHello Bob!\r\n"), "{r:?}");
    assert!(r[0].contains("FLAGS (\\Seen \\Recent)"), "{r:?}");

    let r = c
        .cmd("FETCH 3 (ENVELOPE BODYSTRUCTURE BODY INTERNALDATE FLAGS UID)")
        .await;
    ok(&r);
    assert!(r[0].starts_with("* 3 FETCH (ENVELOPE ("), "{r:?}");
    let upper = r[0].to_ascii_uppercase();
    assert!(upper.contains("BODYSTRUCTURE (\"TEXT\" \"PLAIN\""), "{r:?}");
    assert!(r[0].contains("INTERNALDATE \""), "{r:?}");
    assert!(r[0].contains("FLAGS (\\Flagged \\Recent) UID 3)"), "{r:?}");
    let r = c.cmd("FETCH 2 (BODYSTRUCTURE)").await;
    let upper = r[0].to_ascii_uppercase();
    assert!(upper.contains("\"MIXED\""), "{r:?}");
    assert!(upper.contains("\"ALTERNATIVE\""), "{r:?}");
    assert!(upper.contains("\"BASE64\""), "{r:?}");
    let r = c.cmd("FETCH 2 (BODY.PEEK[9])").await;
    assert!(r[0].contains("BODY[9] NIL"), "{r:?}");

    // A non-peek body fetch sets \Seen and says so.
    let r = c.cmd("FETCH 3 (BODY[TEXT])").await;
    ok(&r);
    assert!(
        r[0].contains("FLAGS (\\Flagged \\Seen \\Recent)")
            || r[0].contains("FLAGS (\\Seen \\Flagged \\Recent)"),
        "{r:?}"
    );
    assert!(r[0].contains("Grüße aus Köln — 日本語"), "{r:?}");
    let r = c.cmd("UID FETCH 2:* (FLAGS)").await;
    ok(&r);
    assert_eq!(r.len(), 4, "{r:#?}");
    assert!(
        r[0].starts_with("* 2 FETCH (UID 2 FLAGS (\\Recent))"),
        "{r:?}"
    );
    let r = c.cmd("FETCH 9 FLAGS").await;
    assert!(last(&r).starts_with("T BAD"), "{r:?}");
    let r = c.cmd("FETCH 1:* FAST").await;
    assert_eq!(r.len(), 5);
    assert!(r[0].contains("RFC822.SIZE"));
}

/// A 300 KiB message: summarized off the async threads, streamed out of the blob bytes.
#[tokio::test]
async fn large_message_round_trip() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let mut msg = b"From: a@example.org\r\nSubject: big\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
hi\r\n--b\r\nContent-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\r\n"
        .to_vec();
    for i in 0..4000u32 {
        msg.extend_from_slice(format!("{:0>74}\r\n", i).as_bytes());
    }
    msg.extend_from_slice(b"--b--\r\n");
    assert!(msg.len() > 300_000);
    let r = append(&mut c, "INBOX", "", &msg).await;
    assert!(r.starts_with("A OK [APPENDUID"), "{r}");
    select(&mut c, "INBOX").await;
    c.send(b"T FETCH 1 (BODY.PEEK[] UID)\r\n").await;
    let line = c.line_bytes().await;
    let head = format!("* 1 FETCH (BODY[] {{{}}}\r\n", msg.len());
    assert!(line.starts_with(head.as_bytes()));
    assert_eq!(&line[head.len()..head.len() + msg.len()], &msg[..]);
    assert_eq!(&line[head.len() + msg.len()..], b" UID 1)");
    ok(&c.until_tag("T").await);
    let r = c.cmd("FETCH 1 (BODY.PEEK[2]<0.10> RFC822.SIZE)").await;
    assert_eq!(
        r[0],
        format!(
            "* 1 FETCH (BODY[2]<0> {{10}}\r\n0000000000 RFC822.SIZE {})",
            msg.len()
        )
    );
}

#[tokio::test]
async fn flags_store_and_search() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    for _ in 0..3 {
        append(&mut c, "INBOX", "", SIMPLE).await;
    }
    append(&mut c, "INBOX", "", UTF8).await;
    // The first SELECT claims \Recent (RFC 3501 §2.3.2); selecting again finds none left, so
    // the flag lists below are exactly the stored flags.
    select(&mut c, "INBOX").await;
    select(&mut c, "INBOX").await;
    let r = c.cmd("STORE 1:2 +FLAGS (\\Seen $Important)").await;
    ok(&r);
    assert_eq!(r[0], "* 1 FETCH (FLAGS (\\Seen $Important))");
    assert_eq!(r[1], "* 2 FETCH (FLAGS (\\Seen $Important))");
    let r = c.cmd("STORE 2 -FLAGS.SILENT ($Important)").await;
    assert_eq!(r.len(), 1, "{r:?}");
    let r = c.cmd("UID STORE 3 FLAGS (\\flagged)").await;
    assert_eq!(r[0], "* 3 FETCH (UID 3 FLAGS (\\Flagged))");
    let r = c.cmd("STORE 1 +FLAGS (\\Bogus)").await;
    assert!(last(&r).starts_with("T BAD"), "{r:?}");

    let r = c.cmd("SEARCH SEEN").await;
    assert_eq!(r[0], "* SEARCH 1 2");
    let r = c.cmd("SEARCH UNSEEN").await;
    assert_eq!(r[0], "* SEARCH 3 4");
    let r = c.cmd("SEARCH KEYWORD $Important").await;
    assert_eq!(r[0], "* SEARCH 1");
    let r = c.cmd("SEARCH UNKEYWORD $Important NOT FLAGGED").await;
    assert_eq!(r[0], "* SEARCH 2 4");
    let r = c.cmd("SEARCH OR FLAGGED SEEN").await;
    assert_eq!(r[0], "* SEARCH 1 2 3");
    let r = c.cmd("UID SEARCH 2:*").await;
    assert_eq!(r[0], "* SEARCH 2 3 4");
    let r = c.cmd("SEARCH SUBJECT hello").await;
    assert_eq!(r[0], "* SEARCH 1 2 3");
    let r = c.cmd("SEARCH CHARSET UTF-8 BODY {5+}\r\nKöln").await;
    assert_eq!(r[0], "* SEARCH 4", "{r:?}");
    let r = c.cmd("SEARCH CHARSET KOI8-R ALL").await;
    assert_eq!(
        last(&r),
        "T NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"
    );
    let r = c.cmd("SEARCH 5:9").await;
    assert_eq!(r[0], "* SEARCH");
    let r = c.cmd("SEARCH NEW").await;
    assert_eq!(r[0], "* SEARCH");

    // EXAMINE is read-only.
    ok(&c.cmd("EXAMINE INBOX").await);
    let r = c.cmd("STORE 1 +FLAGS (\\Deleted)").await;
    assert!(last(&r).starts_with("T NO [READ-ONLY]"), "{r:?}");
    let r = c.cmd("FETCH 3 BODY[]").await;
    ok(&r);
    assert!(!r[0].contains("\\Seen"), "{r:?}");
}

#[tokio::test]
async fn copy_and_move() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    for _ in 0..4 {
        append(&mut c, "INBOX", "", SIMPLE).await;
    }
    ok(&c.cmd("CREATE Archive").await);
    select(&mut c, "INBOX").await;
    let r = c.cmd("COPY 1:2 Archive").await;
    assert!(last(&r).starts_with("T OK [COPYUID "), "{r:?}");
    assert!(last(&r).contains(" 1:2 1:2]"), "{r:?}");
    let r = c.cmd("COPY 1 Nowhere").await;
    assert!(last(&r).starts_with("T NO [TRYCREATE]"), "{r:?}");
    let r = c.cmd("MOVE 2:3 Archive").await;
    ok(&r);
    assert!(
        r[0].starts_with("* OK [COPYUID ") && r[0].contains(" 2:3 3:4]"),
        "{r:?}"
    );
    assert_eq!(r[1], "* 2 EXPUNGE");
    assert_eq!(r[2], "* 2 EXPUNGE");
    let r = c.cmd("UID MOVE 4 Archive").await;
    ok(&r);
    assert!(r[0].contains(" 4 5]"), "{r:?}");
    assert_eq!(r[1], "* 2 EXPUNGE");
    let r = c.cmd("UID FETCH 1:* (UID)").await;
    assert_eq!(r.len(), 2, "{r:?}");
    let r = c.cmd("STATUS Archive (MESSAGES UIDNEXT)").await;
    assert_eq!(r[0], "* STATUS \"Archive\" (MESSAGES 5 UIDNEXT 6)");
    // The copies share the body: exact bytes come back.
    select(&mut c, "Archive").await;
    let r = c.cmd("FETCH 5 BODY.PEEK[]").await;
    assert!(r[0].ends_with("Hello Bob!\r\n)"), "{r:?}");
}

#[tokio::test]
async fn expunge_sequence_numbers() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    for _ in 0..6 {
        append(&mut c, "INBOX", "", SIMPLE).await;
    }
    select(&mut c, "INBOX").await;
    ok(&c.cmd("STORE 2,4,5 +FLAGS.SILENT (\\Deleted)").await);
    let r = c.cmd("EXPUNGE").await;
    ok(&r);
    assert_eq!(&r[..3], ["* 2 EXPUNGE", "* 3 EXPUNGE", "* 3 EXPUNGE"]);
    let r = c.cmd("FETCH 1:* (UID)").await;
    assert_eq!(
        &r[..3],
        [
            "* 1 FETCH (UID 1)",
            "* 2 FETCH (UID 3)",
            "* 3 FETCH (UID 6)"
        ]
    );
    ok(&c.cmd("STORE 1:3 +FLAGS.SILENT (\\Deleted)").await);
    let r = c.cmd("UID EXPUNGE 3:6").await;
    assert_eq!(&r[..2], ["* 2 EXPUNGE", "* 2 EXPUNGE"]);
    // CLOSE expunges silently.
    let r = c.cmd("CLOSE").await;
    assert_eq!(r.len(), 1, "{r:?}");
    let r = select(&mut c, "INBOX").await;
    assert!(has(&r, "* 0 EXISTS"), "{r:?}");
    let r = c.cmd("UNSELECT").await;
    ok(&r);
    let r = c.cmd("FETCH 1 FLAGS").await;
    assert!(last(&r).starts_with("T BAD"), "{r:?}");
}

/// Two sessions on one mailbox: B learns about A's changes on NOOP.
#[tokio::test]
async fn second_session_sees_changes_on_noop() {
    let h = start().await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    let mut b = Raw::login(h.addr, "alice", "wonderland").await;
    append(&mut a, "INBOX", "", SIMPLE).await;
    append(&mut a, "INBOX", "", SIMPLE).await;
    select(&mut a, "INBOX").await;
    select(&mut b, "INBOX").await;

    // Appended by a session with nothing selected: B's NOOP is the first to learn of it, so
    // the message is \Recent to B (and only to B, RFC 3501 §2.3.2).
    let mut w = Raw::login(h.addr, "alice", "wonderland").await;
    append(&mut w, "INBOX", "", SIMPLE).await;
    let r = b.cmd("NOOP").await;
    assert_eq!(&r[..2], ["* 3 EXISTS", "* 1 RECENT"], "{r:?}");
    ok(&r);

    ok(&a.cmd("STORE 2 +FLAGS.SILENT (\\Answered)").await);
    let r = b.cmd("NOOP").await;
    assert_eq!(r[0], "* 2 FETCH (FLAGS (\\Answered))", "{r:?}");
    let r = b.cmd("UID FETCH 3 FLAGS").await;
    assert_eq!(r[0], "* 3 FETCH (UID 3 FLAGS (\\Recent))", "{r:?}");

    ok(&a.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").await);
    ok(&a.cmd("EXPUNGE").await);
    let r = b.cmd("NOOP").await;
    assert_eq!(r[0], "* 1 EXPUNGE", "{r:?}");
    let r = b.cmd("FETCH 1:* UID").await;
    assert_eq!(&r[..2], ["* 1 FETCH (UID 2)", "* 2 FETCH (UID 3)"]);
    // B's own store is reported once, not again on the next NOOP.
    let r = b.cmd("STORE 1 +FLAGS (\\Seen)").await;
    assert_eq!(r.len(), 2, "{r:?}");
    let r = b.cmd("NOOP").await;
    assert_eq!(r.len(), 1, "{r:?}");
    let r = a.cmd("NOOP").await;
    // A selected first, so messages 1 and 2 are \Recent to A.
    assert!(
        has(&r, "* 1 FETCH (FLAGS (\\Answered \\Seen \\Recent))")
            || has(&r, "* 1 FETCH (FLAGS (\\Seen \\Answered \\Recent))"),
        "{r:?}"
    );
    // During a UID command, flag updates from elsewhere carry the UID (RFC 3501 §6.4.8). B
    // knows the flags of its whole view, so the SEARCH is answered from it after the catch-up,
    // which sends the update first.
    ok(&a.cmd("STORE 1 -FLAGS.SILENT (\\Seen)").await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = b.cmd("UID SEARCH ALL").await;
    assert_eq!(r[0], "* 1 FETCH (UID 2 FLAGS (\\Answered))", "{r:?}");
    assert_eq!(r[1], "* SEARCH 2 3");
    // A SEARCH the view cannot answer (a size) goes to the store; its catch-up follows it.
    ok(&a.cmd("STORE 1 +FLAGS.SILENT (\\Seen)").await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = b.cmd("UID SEARCH LARGER 1").await;
    assert_eq!(r[0], "* SEARCH 2 3");
    assert_eq!(r[1], "* 1 FETCH (UID 2 FLAGS (\\Answered \\Seen))", "{r:?}");
}

/// RFC 3501 §7.4.1: no EXPUNGE while a FETCH/STORE/SEARCH is answered; it comes later.
#[tokio::test]
async fn expunge_is_held_back_during_fetch_store_search() {
    let h = start().await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    let mut b = Raw::login(h.addr, "alice", "wonderland").await;
    for _ in 0..3 {
        append(&mut a, "INBOX", "", SIMPLE).await;
    }
    select(&mut a, "INBOX").await;
    select(&mut b, "INBOX").await;
    ok(&a.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)").await);
    ok(&a.cmd("EXPUNGE").await);
    // Nothing is sent while no command is in progress (outside IDLE).
    b.quiet(Duration::from_millis(300)).await;

    let r = b.cmd("FETCH 1:* (UID)").await;
    assert!(!r.iter().any(|l| l.ends_with(" EXPUNGE")), "{r:?}");
    // Sequence numbers stay as B knows them: message 3 is still UID 3.
    assert!(has(&r, "* 3 FETCH (UID 3)"), "{r:?}");
    // Message 2 is gone from the store: the rest is answered and the client is told to catch up
    // (RFC 9051 §7.1 EXPUNGEISSUED).
    assert!(last(&r).starts_with("T NO [EXPUNGEISSUED]"), "{r:?}");
    let r = b.cmd("STORE 3 +FLAGS (\\Flagged)").await;
    assert!(!has(&r, "EXPUNGE"), "{r:?}");
    assert_eq!(r[0], "* 3 FETCH (FLAGS (\\Flagged))");
    let r = b.cmd("SEARCH ALL").await;
    assert!(!has(&r, "EXPUNGE"), "{r:?}");
    assert_eq!(r[0], "* SEARCH 1 3");
    let r = b.cmd("NOOP").await;
    assert_eq!(r[0], "* 2 EXPUNGE", "{r:?}");
    let r = b.cmd("FETCH 2 UID").await;
    assert_eq!(r[0], "* 2 FETCH (UID 3)");
}

/// IDLE: EXISTS, FETCH FLAGS and EXPUNGE arrive while idling, without a command.
#[tokio::test]
async fn idle_delivers_changes_from_another_session() {
    let h = start().await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    let mut b = Raw::login(h.addr, "alice", "wonderland").await;
    append(&mut a, "INBOX", "", SIMPLE).await;
    select(&mut a, "INBOX").await;
    select(&mut b, "INBOX").await;
    b.send(b"I IDLE\r\n").await;
    assert_eq!(b.line().await, "+ idling");

    // A writer with nothing selected, so the idling B is the one to claim \Recent.
    let mut w = Raw::login(h.addr, "alice", "wonderland").await;
    append(&mut w, "INBOX", "", SIMPLE).await;
    assert_eq!(b.line().await, "* 2 EXISTS");
    assert_eq!(b.line().await, "* 1 RECENT");
    ok(&a.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").await);
    assert_eq!(b.line().await, "* 1 FETCH (FLAGS (\\Deleted))");
    ok(&a.cmd("EXPUNGE").await);
    assert_eq!(b.line().await, "* 1 EXPUNGE");
    b.send(b"DONE\r\n").await;
    assert_eq!(b.line().await, "I OK IDLE terminated");
    let r = b.cmd("FETCH 1 UID").await;
    assert_eq!(r[0], "* 1 FETCH (UID 2)");
}

/// Two front-end nodes on one store: a change made through one reaches an IDLE client on the
/// other, and the bodies are shared.
#[tokio::test]
async fn change_on_one_node_reaches_idle_client_on_another() {
    let h = start().await;
    let node2 = h.second_node().await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    let mut b = Raw::login(node2, "alice", "wonderland").await;
    select(&mut b, "INBOX").await;
    b.send(b"I IDLE\r\n").await;
    assert_eq!(b.line().await, "+ idling");
    append(&mut a, "INBOX", "", UTF8).await;
    assert_eq!(b.line().await, "* 1 EXISTS");
    assert_eq!(b.line().await, "* 1 RECENT");
    b.send(b"DONE\r\n").await;
    assert_eq!(b.line().await, "I OK IDLE terminated");
    let r = b.cmd("FETCH 1 BODY.PEEK[TEXT]").await;
    assert!(r[0].contains("Grüße aus Köln"), "{r:?}");
}

/// One watch stream per user per node, shared by all that user's sessions; it stops when the
/// last session of the user is gone.
#[tokio::test]
async fn one_watch_stream_per_user() {
    use std::sync::atomic::Ordering;
    let h = start().await;
    let mut a1 = Raw::login(h.addr, "alice", "wonderland").await;
    let mut a2 = Raw::login(h.addr, "alice", "wonderland").await;
    let _b = Raw::login(h.addr, "bob", "builder").await;
    ok(&a1.cmd("NOOP").await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.watch_calls.load(Ordering::SeqCst), 2);
    ok(&a1.cmd("LOGOUT").await);
    ok(&a2.cmd("LOGOUT").await);
    a1.until_closed().await;
    a2.until_closed().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A new session of alice after all hers ended starts a fresh watch.
    let _a3 = Raw::login(h.addr, "alice", "wonderland").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.watch_calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let h = start().await;
    let mut c = Raw::connect(h.addr).await;
    c.send(b"1 LOGIN alice wonderland\r\n2 SELECT INBOX\r\n3 NOOP\r\n4 LOGOUT\r\n")
        .await;
    let all = c.until_closed().await;
    let tags: Vec<&str> = all
        .lines()
        .filter(|l| !l.starts_with('*'))
        .map(|l| &l[..4])
        .collect();
    assert_eq!(tags, ["1 OK", "2 OK", "3 OK", "4 OK"], "{all}");
}

#[tokio::test]
async fn idle_keepalive() {
    let h = start_with(Options {
        config: ImapConfig {
            allow_plaintext_auth: true,
            idle_keepalive: Duration::from_millis(200),
            ..ImapConfig::default()
        },
        ..Options::default()
    })
    .await;
    let mut b = Raw::login(h.addr, "alice", "wonderland").await;
    b.send(b"I IDLE\r\n").await;
    assert_eq!(b.line().await, "+ idling");
    assert_eq!(b.line().await, "* OK Still here");
    assert_eq!(b.line().await, "* OK Still here");
    b.send(b"DONE\r\n").await;
    assert_eq!(b.line().await, "I OK IDLE terminated");
}

/// Hints are not truth: with a watch stream that silently delivers nothing, NOOP still finds
/// every change by MODSEQ.
#[tokio::test]
async fn silent_watch_stream_still_syncs_on_noop() {
    let h = start_with(Options {
        fault: WatchFault::Silent,
        ..Options::default()
    })
    .await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    let mut b = Raw::login(h.addr, "alice", "wonderland").await;
    append(&mut a, "INBOX", "", SIMPLE).await;
    append(&mut a, "INBOX", "", SIMPLE).await;
    select(&mut a, "INBOX").await;
    select(&mut b, "INBOX").await;
    append(&mut a, "INBOX", "", SIMPLE).await;
    ok(&a.cmd("STORE 2 +FLAGS.SILENT (\\Deleted \\Seen)").await);
    ok(&a.cmd("STORE 1 +FLAGS.SILENT (\\Flagged)").await);
    ok(&a.cmd("UID EXPUNGE 2").await);
    let r = b.cmd("NOOP").await;
    assert_eq!(
        &r[..4],
        [
            "* 2 EXPUNGE",
            "* 2 EXISTS",
            // A appended with INBOX selected: its own catch-up claimed \Recent first.
            "* 0 RECENT",
            "* 1 FETCH (FLAGS (\\Flagged))"
        ],
        "{r:?}"
    );
}

/// A change committed after a session's SELECT but before the user's first watch is confirmed
/// sends no hint; the hub resyncs every session once the watch is up, so the IDLE client still
/// hears of it at once (not at the next keepalive, minutes later).
#[tokio::test]
async fn change_before_first_watch_is_confirmed_reaches_idle_session() {
    let h = start_with(Options {
        fault: WatchFault::SlowStart,
        ..Options::default()
    })
    .await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    select(&mut a, "INBOX").await;
    a.send(b"I IDLE\r\n").await;
    assert_eq!(a.line().await, "+ idling");
    let mut b = Raw::login(h.addr, "alice", "wonderland").await;
    append(&mut b, "INBOX", "", SIMPLE).await;
    assert_eq!(a.line().await, "* 1 EXISTS");
}

/// A watch stream that keeps ending: the hub re-establishes it and tells sessions to resync, so
/// an idling client still hears about the change without doing anything.
#[tokio::test]
async fn ending_watch_stream_resyncs_idle_sessions() {
    let h = start_with(Options {
        fault: WatchFault::Ends,
        ..Options::default()
    })
    .await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    let mut b = Raw::login(h.addr, "alice", "wonderland").await;
    select(&mut b, "INBOX").await;
    b.send(b"I IDLE\r\n").await;
    assert_eq!(b.line().await, "+ idling");
    append(&mut a, "INBOX", "", SIMPLE).await;
    assert_eq!(b.line().await, "* 1 EXISTS");
    b.send(b"DONE\r\n").await;
    assert_eq!(b.line().await, "* 1 RECENT");
    assert_eq!(b.line().await, "I OK IDLE terminated");
}

/// Each user has their own namespace: bob cannot reach alice's mailboxes or messages.
#[tokio::test]
async fn users_are_isolated() {
    let h = start().await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    ok(&a.cmd("CREATE Secret").await);
    append(&mut a, "Secret", "", SIMPLE).await;
    append(&mut a, "INBOX", "", SIMPLE).await;
    let mut b = Raw::login(h.addr, "bob", "builder").await;
    let r = b.cmd("SELECT Secret").await;
    assert!(last(&r).starts_with("T NO [NONEXISTENT]"), "{r:?}");
    let r = b.cmd("LIST \"\" *").await;
    assert_eq!(r.len(), 2, "{r:?}");
    let r = b.cmd("STATUS Secret (MESSAGES)").await;
    assert!(last(&r).starts_with("T NO"), "{r:?}");
    let r = select(&mut b, "INBOX").await;
    assert!(has(&r, "* 0 EXISTS"), "{r:?}");
    let r = b.cmd("UID FETCH 1:* (UID)").await;
    assert_eq!(r.len(), 1, "{r:?}");
    let r = b.cmd("COPY 1 Secret").await;
    assert!(last(&r).starts_with("T BAD"), "{r:?}");
    // And alice's session does not see bob's activity.
    append(&mut b, "INBOX", "", SIMPLE).await;
    select(&mut a, "INBOX").await;
    let r = a.cmd("NOOP").await;
    assert_eq!(r.len(), 1, "{r:?}");
}

#[tokio::test]
async fn protocol_errors_get_bad() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let r = c.cmd("FROBNICATE").await;
    assert!(last(&r).starts_with("T BAD"), "{r:?}");
    let r = c.cmd("NOOP").await;
    ok(&r);
}

#[tokio::test]
async fn shutdown_sends_bye_and_serve_returns() {
    let mut h = start().await;
    let mut idle = Raw::login(h.addr, "alice", "wonderland").await;
    idle.send(b"I IDLE\r\n").await;
    assert_eq!(idle.line().await, "+ idling");
    let mut plain = Raw::connect(h.addr).await;
    h.shutdown.cancel();
    let bye = "* BYE [UNAVAILABLE] Server shutting down, please reconnect";
    assert_eq!(idle.line().await, bye);
    assert_eq!(plain.line().await, bye);
    for t in h.tasks.drain(..) {
        tokio::time::timeout(TIMEOUT, t)
            .await
            .expect("serve returns")
            .expect("join")
            .expect("serve ok");
    }
    assert!(tokio::net::TcpStream::connect(h.addr).await.is_err());
}

/// Body first: a blob-store outage fails the APPEND with UNAVAILABLE and leaves no metadata.
/// Folder-sync FETCH items never touch the blob store; header sections read only a range.
#[tokio::test]
async fn blob_store_use_and_outages() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    append(&mut c, "INBOX", "", MULTIPART).await;
    h.blobs.fail_next_puts(1);
    let r = append(&mut c, "INBOX", "", SIMPLE).await;
    assert!(r.starts_with("A NO [UNAVAILABLE]"), "{r}");
    let r = c.cmd("STATUS INBOX (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS \"INBOX\" (MESSAGES 1)");

    select(&mut c, "INBOX").await;
    let gets = h.blobs.get_calls();
    ok(&c
        .cmd("FETCH 1:* (FLAGS UID ENVELOPE BODYSTRUCTURE RFC822.SIZE INTERNALDATE)")
        .await);
    assert_eq!(
        h.blobs.get_calls(),
        gets,
        "metadata-only FETCH read the blob store"
    );
    let r = c.cmd("FETCH 1 (BODY.PEEK[HEADER] BODY.PEEK[1.1])").await;
    ok(&r);
    assert_eq!(h.blobs.get_calls(), gets + 1, "one ranged read per message");
    h.blobs.fail_next_gets(1);
    let r = c.cmd("FETCH 1 BODY.PEEK[]").await;
    assert!(last(&r).starts_with("T NO [UNAVAILABLE]"), "{r:?}");
    let r = c.cmd("FETCH 1 BODY.PEEK[]").await;
    ok(&r);
}

#[tokio::test]
async fn unauthenticated_connections_time_out() {
    let h = start_with(Options {
        timeouts: yubin_imap::Timeouts {
            login: Duration::from_millis(300),
            ..yubin_imap::Timeouts::default()
        },
        ..Options::default()
    })
    .await;
    let mut c = Raw::connect(h.addr).await;
    assert_eq!(
        c.line().await,
        "* BYE Autologout; not authenticated in time"
    );
    c.until_closed().await;
}

/// Another session deleting the selected mailbox ends this one with BYE: its sequence numbers
/// no longer mean anything.
#[tokio::test]
async fn selected_mailbox_deleted_elsewhere() {
    let h = start().await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    let mut b = Raw::login(h.addr, "alice", "wonderland").await;
    ok(&a.cmd("CREATE Temp").await);
    select(&mut b, "Temp").await;
    ok(&a.cmd("DELETE Temp").await);
    let r = b.cmd("NOOP").await;
    assert_eq!(
        r[0], "* BYE Selected mailbox was deleted by another session",
        "{r:?}"
    );
    b.until_closed().await;
}

#[tokio::test]
async fn connection_limit() {
    let h = start_with(Options {
        config: ImapConfig {
            allow_plaintext_auth: true,
            max_connections: 1,
            ..ImapConfig::default()
        },
        ..Options::default()
    })
    .await;
    let _first = Raw::connect(h.addr).await;
    let second = Raw::connect(h.addr).await;
    assert_eq!(second.greeting, "* BYE Too many connections");
}

// ---- TLS ----

struct Pki {
    server: Arc<rustls::ServerConfig>,
    client: tokio_rustls::TlsConnector,
    _dir: tempfile::TempDir,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().expect("tempdir");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).expect("write");
    std::fs::write(&key, ck.key_pair.serialize_pem()).expect("write");
    let server = yubin_imap::tls::load_server_config(&cert, &key).expect("server config");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).expect("root");
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Pki {
        server,
        client: tokio_rustls::TlsConnector::from(Arc::new(client)),
        _dir: dir,
    }
}

fn localhost() -> rustls::pki_types::ServerName<'static> {
    rustls::pki_types::ServerName::try_from("localhost").expect("name")
}

#[tokio::test]
async fn starttls_upgrade() {
    let pki = pki();
    let h = start_with(Options {
        config: ImapConfig::default(),
        tls: Some(pki.server.clone()),
        ..Options::default()
    })
    .await;
    let tcp = tokio::net::TcpStream::connect(h.addr)
        .await
        .expect("connect");
    let mut io = tokio::io::BufReader::new(tcp);
    let mut greeting = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut io, &mut greeting)
        .await
        .expect("greeting");
    assert!(
        greeting.contains("STARTTLS") && greeting.contains("LOGINDISABLED"),
        "{greeting}"
    );
    tokio::io::AsyncWriteExt::write_all(io.get_mut(), b"S STARTTLS\r\n")
        .await
        .expect("write");
    let mut line = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut io, &mut line)
        .await
        .expect("ok");
    assert_eq!(line, "S OK Begin TLS negotiation now\r\n");
    assert!(io.buffer().is_empty());
    let tls = pki
        .client
        .connect(localhost(), io.into_inner())
        .await
        .expect("handshake");
    let mut c = Raw {
        io: tokio::io::BufReader::new(Box::new(tls)),
        greeting: String::new(),
        timeout: common::TIMEOUT,
    };
    let r = c.cmd("CAPABILITY").await;
    assert!(
        !r[0].contains("STARTTLS") && !r[0].contains("LOGINDISABLED"),
        "{r:?}"
    );
    assert!(r[0].contains("AUTH=PLAIN"), "{r:?}");
    let r = c.cmd("STARTTLS").await;
    assert!(last(&r).starts_with("T BAD"), "{r:?}");
    ok(&c.cmd("LOGIN alice wonderland").await);
    ok(&c.cmd("SELECT INBOX").await);
}

#[tokio::test]
async fn starttls_with_pipelined_command_is_refused() {
    let pki = pki();
    let h = start_with(Options {
        tls: Some(pki.server.clone()),
        ..Options::default()
    })
    .await;
    let mut c = Raw::connect(h.addr).await;
    c.send(b"S STARTTLS\r\nX LOGIN alice wonderland\r\n").await;
    assert_eq!(
        c.line().await,
        "S BAD STARTTLS must be the last command sent before TLS negotiation"
    );
    assert!(c.line().await.starts_with("* BYE"));
    c.until_closed().await;
}

#[tokio::test]
async fn implicit_tls() {
    let pki = pki();
    let h = start_with(Options {
        config: ImapConfig::default(),
        tls: Some(pki.server.clone()),
        ..Options::default()
    })
    .await;
    let tcp = tokio::net::TcpStream::connect(h.tls_addr.expect("tls listener"))
        .await
        .expect("connect");
    let tls = pki
        .client
        .connect(localhost(), tcp)
        .await
        .expect("handshake");
    let mut c = Raw::over(Box::new(tls)).await;
    assert!(c.greeting.starts_with("* OK [CAPABILITY"), "{}", c.greeting);
    assert!(!c.greeting.contains("STARTTLS") && c.greeting.contains("AUTH=PLAIN"));
    ok(&c.cmd("LOGIN alice wonderland").await);
    let r = c.cmd("LIST \"\" INBOX").await;
    assert_eq!(r[0], "* LIST (\\HasNoChildren) \"/\" \"INBOX\"");
}

#[tokio::test]
async fn self_signed_config_serves_tls() {
    let config = yubin_imap::tls::self_signed_server_config(&["localhost".to_string()])
        .expect("self-signed");
    let h = start_with(Options {
        tls: Some(config),
        ..Options::default()
    })
    .await;
    let mut c = Raw::connect(h.addr).await;
    assert!(c.greeting.contains("STARTTLS"));
    ok(&c.cmd("NOOP").await);
}

// ---- a real client ----

#[tokio::test]
async fn async_imap_client_round_trip() {
    use futures::TryStreamExt;
    let h = start().await;
    let tcp = tokio::net::TcpStream::connect(h.addr)
        .await
        .expect("connect");
    let mut client = async_imap::Client::new(tcp);
    let _greeting = client.read_response().await.expect("greeting").expect("io");
    let mut s = client
        .login("alice", "wonderland")
        .await
        .map_err(|(e, _)| e)
        .expect("login");
    s.create("Reports").await.expect("create");
    s.append("Reports", Some("(\\Seen)"), None, MULTIPART)
        .await
        .expect("append");
    s.append("Reports", None, None, UTF8).await.expect("append");
    let caps = s.capabilities().await.expect("caps");
    assert!(caps.has_str("IDLE") && caps.has_str("MOVE"));
    let names: Vec<_> = s
        .list(Some(""), Some("*"))
        .await
        .expect("list")
        .try_collect()
        .await
        .expect("names");
    assert!(names.iter().any(|n| n.name() == "Reports"));
    let mb = s.select("Reports").await.expect("select");
    assert_eq!(mb.exists, 2);
    let fetched: Vec<_> = s
        .fetch("1:2", "(UID FLAGS BODY.PEEK[])")
        .await
        .expect("fetch")
        .try_collect()
        .await
        .expect("fetches");
    assert_eq!(fetched.len(), 2);
    assert_eq!(fetched[0].body(), Some(MULTIPART));
    assert_eq!(fetched[1].body(), Some(UTF8));
    let _: Vec<_> = s
        .store("2", "+FLAGS (\\Deleted)")
        .await
        .expect("store")
        .try_collect()
        .await
        .expect("store");
    let expunged: Vec<_> = s
        .expunge()
        .await
        .expect("expunge")
        .try_collect()
        .await
        .expect("seqs");
    assert_eq!(expunged, vec![2]);
    let found = s.uid_search("SEEN").await.expect("search");
    assert_eq!(found.into_iter().collect::<Vec<_>>(), vec![1]);
    s.logout().await.expect("logout");
}

#[tokio::test]
async fn async_imap_idle_sees_append() {
    let h = start().await;
    let tcp = tokio::net::TcpStream::connect(h.addr)
        .await
        .expect("connect");
    let mut client = async_imap::Client::new(tcp);
    let _ = client.read_response().await;
    let mut s = client
        .login("bob", "builder")
        .await
        .map_err(|(e, _)| e)
        .expect("login");
    s.select("INBOX").await.expect("select");
    let mut idle = s.idle();
    idle.init().await.expect("idle");
    let (wait, _stop) = idle.wait_with_timeout(TIMEOUT);
    let mut other = Raw::login(h.addr, "bob", "builder").await;
    append(&mut other, "INBOX", "", SIMPLE).await;
    match wait.await.expect("idle wait") {
        async_imap::extensions::idle::IdleResponse::NewData(d) => {
            let text = format!("{:?}", d.parsed());
            assert!(text.contains("Exists(1)"), "{text}");
        }
        other => panic!("unexpected {other:?}"),
    }
    let mut s = idle.done().await.expect("done");
    s.logout().await.expect("logout");
}
