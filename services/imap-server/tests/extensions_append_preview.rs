//! PREVIEW (RFC 8970) and MULTIAPPEND (RFC 3502) over real TCP against a server on the
//! embedded store, with bodies on the file-system blob store behind the fault-injecting wrapper.

mod common;

use common::*;

fn untagged<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {lines:#?}"))
}

fn count(lines: &[String], prefix: &str) -> usize {
    lines.iter().filter(|l| l.starts_with(prefix)).count()
}

const PLAIN: &str = "From: a@example.org\r\nSubject: plain\r\n\r\n\r\n  Hello Bob,\r\n\r\n\tthe \
                     meeting   moved to\r\nThursday.\r\n";

const HTML: &str = "From: a@example.org\r\nSubject: html\r\nMIME-Version: 1.0\r\n\
                    Content-Type: text/html; charset=utf-8\r\n\r\n\
                    <html><head><title>t</title></head><body><p>Caf\u{e9} <b>menu</b></p>\
                    <p>today</p></body></html>\r\n";

const MULTIPART: &str = "From: a@example.org\r\nSubject: mixed\r\nMIME-Version: 1.0\r\n\
                         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
                         preamble is not text\r\n\
                         --b1\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
                         Content-Transfer-Encoding: quoted-printable\r\n\r\n\
                         Gr=FC=DFe aus Berlin\r\n\
                         --b1\r\nContent-Type: application/octet-stream\r\n\
                         Content-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n--b1--\r\n";

/// A session on INBOX holding the plain, HTML and multipart messages, a long one and one
/// without any text.
async fn previews_mailbox() -> (Harness, Raw) {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let long = format!(
        "From: a@example.org\r\nSubject: long\r\n\r\n{}\r\n",
        "word ".repeat(200)
    );
    let empty = "From: a@example.org\r\nSubject: nothing\r\nContent-Type: image/png\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n";
    for m in [PLAIN, HTML, MULTIPART, long.as_str(), empty] {
        let r = append(&mut c, "INBOX", "", m.as_bytes()).await;
        assert!(r.starts_with("A OK"), "{r}");
    }
    let r = c.tagged("S", "SELECT INBOX").await;
    assert!(last(&r).starts_with("S OK"), "{r:?}");
    (h, c)
}

#[tokio::test]
async fn preview_multiappend_replace_are_advertised() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let r = c.cmd("CAPABILITY").await;
    let caps = untagged(&r, "* CAPABILITY");
    for cap in [" PREVIEW", " MULTIAPPEND", " REPLACE"] {
        assert!(caps.contains(cap), "{cap} in {caps}");
    }
}

/// RFC 8970 §3.3: whitespace collapsed, HTML reduced to text, the text part of a multipart
/// decoded from its charset and transfer encoding, at most 256 characters, "" without text.
#[tokio::test]
async fn preview_text_of_plain_html_and_multipart() {
    let (_h, mut c) = previews_mailbox().await;
    let r = c.cmd("FETCH 1 (PREVIEW)").await;
    assert_eq!(
        r[0],
        "* 1 FETCH (PREVIEW \"Hello Bob, the meeting moved to Thursday.\")"
    );
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    // Non-ASCII text goes out as a literal (inlined by the test client).
    let r = c.cmd("FETCH 2 PREVIEW").await;
    assert!(r[0].starts_with("* 2 FETCH (PREVIEW {"), "{r:?}");
    assert!(r[0].ends_with("}\r\nCafé menu today)"), "{r:?}");
    let r = c.cmd("FETCH 3 (PREVIEW)").await;
    assert!(r[0].ends_with("}\r\nGrüße aus Berlin)"), "{r:?}");
    let r = c.cmd("FETCH 4 (PREVIEW)").await;
    let text = r[0]
        .strip_prefix("* 4 FETCH (PREVIEW \"")
        .and_then(|t| t.strip_suffix("\")"))
        .unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!(text.chars().count(), 256, "{text}");
    assert!(text.starts_with("word word word"), "{text}");
    let r = c.cmd("FETCH 5 (PREVIEW)").await;
    assert_eq!(r[0], "* 5 FETCH (PREVIEW \"\")");
}

/// RFC 8970 §5 examples: PREVIEW with other items, the LAZY modifier (the index always has the
/// text, so LAZY never answers NIL), UID FETCH, and no \Seen from a preview.
#[tokio::test]
async fn rfc8970_examples_and_lazy() {
    let (_h, mut c) = previews_mailbox().await;
    let r = c.cmd("FETCH 1:2 (UID PREVIEW (LAZY) FLAGS)").await;
    assert_eq!(
        r[0],
        "* 1 FETCH (UID 1 PREVIEW \"Hello Bob, the meeting moved to Thursday.\" FLAGS (\\Recent))"
    );
    assert!(r[1].starts_with("* 2 FETCH (UID 2 PREVIEW {"), "{r:?}");
    assert!(r[1].ends_with("Café menu today FLAGS (\\Recent))"), "{r:?}");
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    let r = c.cmd("UID FETCH 3,5 (PREVIEW)").await;
    assert!(r[0].starts_with("* 3 FETCH (UID 3 PREVIEW {"), "{r:?}");
    assert_eq!(r[1], "* 5 FETCH (UID 5 PREVIEW \"\")");
    // Fetching a preview is not reading the message: \Seen stays unset.
    let r = c.cmd("FETCH 1:5 (FLAGS)").await;
    assert_eq!(count(&r, "* "), 5);
    assert!(r.iter().all(|l| !l.contains("\\Seen")), "{r:?}");
    // Malformed modifiers are BAD.
    let r = c.cmd("FETCH 1 (PREVIEW (FUZZY))").await;
    assert!(last(&r).starts_with("T BAD"), "{r:?}");
}

/// Sends `A APPEND <mailbox>` with each of `messages` (flags and date text, body) as a
/// non-synchronizing literal and returns every response line.
async fn multiappend(c: &mut Raw, mailbox: &str, messages: &[(&str, &[u8])]) -> Vec<String> {
    let mut cmd = format!("A APPEND {mailbox}").into_bytes();
    for (prefix, body) in messages {
        cmd.extend_from_slice(format!(" {prefix}{{{}+}}\r\n", body.len()).as_bytes());
        cmd.extend_from_slice(body);
    }
    cmd.extend_from_slice(b"\r\n");
    c.send(&cmd).await;
    c.until_tag("A").await
}

/// RFC 3502 §6.3.11 example shape: several messages with their own flags and dates, one
/// APPENDUID with the UID set (RFC 4315 §3), all visible at once.
#[tokio::test]
async fn rfc3502_multiappend_appends_all() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let r = c.cmd("CREATE saved-messages").await;
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    let m1 = b"Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\nFrom: Fred Foobar \
               <foobar@Blurdybloop.example.COM>\r\nSubject: afternoon meeting\r\n\r\n\
               Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n";
    let m2 = b"Date: Mon, 7 Feb 1994 22:43:04 -0800 (PST)\r\nFrom: Joe Mooch \
               <mooch@OWATAGU.example.net>\r\nSubject: Re: afternoon meeting\r\n\r\n\
               3:30 is fine with me.\r\n";
    let r = multiappend(
        &mut c,
        "saved-messages",
        &[
            ("(\\Seen) \"07-Feb-1994 22:43:04 -0800\" ", &m1[..]),
            ("(\\Seen $Work) \"07-Feb-1994 22:43:04 -0800\" ", &m2[..]),
            ("", b"Subject: third\r\n\r\nthree\r\n"),
        ],
    )
    .await;
    let done = last(&r);
    assert!(done.starts_with("A OK [APPENDUID "), "{r:?}");
    assert!(done.contains(" 1:3]"), "{done}");
    let r = c.cmd("SELECT saved-messages").await;
    assert!(r.contains(&"* 3 EXISTS".to_string()), "{r:?}");
    let r = c
        .cmd("FETCH 1:3 (FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        .await;
    assert!(r[0].contains("FLAGS (\\Seen \\Recent)"), "{r:?}");
    assert!(
        r[0].contains("INTERNALDATE \"07-Feb-1994 22:43:04 -0800\""),
        "{r:?}"
    );
    assert!(r[0].contains("afternoon meeting"), "{r:?}");
    assert!(r[1].contains("FLAGS (\\Seen $Work \\Recent)"), "{r:?}");
    assert!(r[1].contains("Re: afternoon meeting"), "{r:?}");
    assert!(
        r[2].contains("FLAGS (\\Recent)") && r[2].contains("third"),
        "{r:?}"
    );
}

/// RFC 3502 §6.3.11: if any message cannot be appended, none is. An invalid flag on the middle
/// message (found after the first body was stored), a blob store failure and a message over
/// APPENDLIMIT each leave the mailbox untouched, as a second session's view confirms.
#[tokio::test]
async fn multiappend_is_all_or_none() {
    let h = start_with(Options {
        config: yubin_imap::ImapConfig {
            allow_plaintext_auth: true,
            limits: yubin_imap_proto::Limits {
                max_literal: 4096,
                ..yubin_imap_proto::Limits::default()
            },
            ..yubin_imap::ImapConfig::default()
        },
        ..Options::default()
    })
    .await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let mut watcher = Raw::login(h.addr, "alice", "wonderland").await;
    let r = watcher.cmd("SELECT INBOX").await;
    assert!(r.contains(&"* 0 EXISTS".to_string()), "{r:?}");

    let one = b"Subject: one\r\n\r\n1\r\n";
    let two = b"Subject: two\r\n\r\n2\r\n";
    let three = b"Subject: three\r\n\r\n3\r\n";
    // A failing middle message: \Bogus is no system flag.
    let r = multiappend(
        &mut c,
        "INBOX",
        &[("", &one[..]), ("(\\Bogus) ", &two[..]), ("", &three[..])],
    )
    .await;
    assert!(last(&r).starts_with("A BAD"), "{r:?}");
    // A blob store failure on the first body.
    h.blobs.fail_next_puts(1);
    let r = multiappend(&mut c, "INBOX", &[("", &one[..]), ("", &two[..])]).await;
    assert!(last(&r).starts_with("A NO"), "{r:?}");
    // A middle message over APPENDLIMIT, announced with a synchronizing literal: refused with
    // TOOBIG before its octets are sent (RFC 7889), and the earlier message is dropped too.
    c.send(format!("A APPEND INBOX {{{}+}}\r\n", one.len()).as_bytes())
        .await;
    c.send(one).await;
    c.send(b" {5000}\r\n").await;
    let r = c.until_tag("A").await;
    assert!(last(&r).contains(" [TOOBIG] "), "{r:?}");
    // A bad date on the last message: the whole command is malformed.
    let r = multiappend(
        &mut c,
        "INBOX",
        &[
            ("", &one[..]),
            ("\"31-Feb-2024 00:00:00 +0000\" ", &two[..]),
        ],
    )
    .await;
    assert!(last(&r).starts_with("A BAD"), "{r:?}");

    let r = watcher.cmd("NOOP").await;
    assert_eq!(count(&r, "* "), 0, "nothing was appended: {r:?}");
    let r = c.cmd("STATUS INBOX (MESSAGES UIDNEXT)").await;
    assert!(
        untagged(&r, "* STATUS").contains("(MESSAGES 0 UIDNEXT 1)"),
        "{r:?}"
    );
    // The session still works: a good MULTIAPPEND after the failures appends both at once.
    let r = multiappend(&mut c, "INBOX", &[("", &one[..]), ("", &two[..])]).await;
    assert!(last(&r).starts_with("A OK [APPENDUID "), "{r:?}");
    assert!(last(&r).contains(" 1:2]"), "{r:?}");
    let r = watcher.cmd("NOOP").await;
    assert!(r.contains(&"* 2 EXISTS".to_string()), "{r:?}");
}

/// RFC 8508 §3 example: REPLACE of a draft in the selected mailbox. The replacing session gets
/// the APPENDUID before the EXPUNGE; a second session on the same mailbox sees the original's
/// EXPUNGE and the new EXISTS; the replacement carries the new flags and body.
#[tokio::test]
async fn rfc8508_replace_seen_from_a_second_session() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let r = c.cmd("CREATE Drafts").await;
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    for body in ["first draft", "keep me", "second version"] {
        let m = format!("Subject: draft\r\n\r\n{body}\r\n");
        let r = append(&mut c, "Drafts", "\\Draft", m.as_bytes()).await;
        assert!(r.starts_with("A OK"), "{r}");
    }
    let r = c.cmd("SELECT Drafts").await;
    assert!(r.contains(&"* 3 EXISTS".to_string()), "{r:?}");
    let mut other = Raw::login(h.addr, "alice", "wonderland").await;
    let r = other.cmd("SELECT Drafts").await;
    assert!(r.contains(&"* 3 EXISTS".to_string()), "{r:?}");

    let new = b"Subject: draft\r\n\r\nthe final text\r\n";
    c.send(
        format!(
            "A003 REPLACE 1 Drafts (\\Seen \\Draft) {{{}}}\r\n",
            new.len()
        )
        .as_bytes(),
    )
    .await;
    let cont = c.line().await;
    assert!(cont.starts_with('+'), "{cont}");
    c.send(new).await;
    c.send(b"\r\n").await;
    let r = c.until_tag("A003").await;
    let appenduid = r
        .iter()
        .position(|l| {
            l.starts_with("* OK [APPENDUID ") && l.ends_with(" 4] Replacement Message ID")
        })
        .unwrap_or_else(|| panic!("{r:?}"));
    let expunge = r
        .iter()
        .position(|l| l == "* 1 EXPUNGE")
        .unwrap_or_else(|| panic!("{r:?}"));
    assert!(appenduid < expunge, "{r:?}");
    assert!(r.contains(&"* 3 EXISTS".to_string()), "{r:?}");
    assert!(last(&r).starts_with("A003 OK"), "{r:?}");

    let r = other.cmd("NOOP").await;
    assert!(r.contains(&"* 1 EXPUNGE".to_string()), "{r:?}");
    assert!(r.contains(&"* 3 EXISTS".to_string()), "{r:?}");
    let r = other.cmd("UID FETCH 1:* (FLAGS BODY.PEEK[TEXT])").await;
    assert_eq!(count(&r, "* "), 3, "{r:?}");
    assert!(r[0].contains("UID 2") && r[0].contains("keep me"), "{r:?}");
    assert!(r[2].contains("UID 4"), "{r:?}");
    assert!(r[2].contains("\\Seen") && r[2].contains("\\Draft"), "{r:?}");
    assert!(r[2].contains("the final text"), "{r:?}");
}

/// UID REPLACE into another mailbox, with QRESYNC: VANISHED instead of EXPUNGE (RFC 8508 §3,
/// RFC 7162 §3.2.10); a UID that does not exist is NO and stores nothing; EXAMINE is read-only.
#[tokio::test]
async fn uid_replace_to_other_mailbox_and_errors() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    for m in ["one", "two"] {
        let r = append(
            &mut c,
            "INBOX",
            "",
            format!("Subject: {m}\r\n\r\n{m}\r\n").as_bytes(),
        )
        .await;
        assert!(r.starts_with("A OK"), "{r}");
    }
    let r = c.cmd("CREATE Archive").await;
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    let r = c.cmd("ENABLE QRESYNC").await;
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    let r = c.cmd("SELECT INBOX").await;
    assert!(last(&r).starts_with("T OK"), "{r:?}");

    let body = b"Subject: two\r\n\r\nedited\r\n";
    let send = |uid: u32, mailbox: &str| {
        let mut cmd = format!("B UID REPLACE {uid} {mailbox} {{{}+}}\r\n", body.len()).into_bytes();
        cmd.extend_from_slice(body);
        cmd.extend_from_slice(b"\r\n");
        cmd
    };
    c.send(&send(2, "Archive")).await;
    let r = c.until_tag("B").await;
    assert!(
        r.iter().any(|l| l.starts_with("* OK [APPENDUID ") && l.ends_with(" 1] Replacement Message ID")),
        "{r:?}"
    );
    assert!(r.contains(&"* VANISHED 2".to_string()), "{r:?}");
    assert!(last(&r).starts_with("B OK"), "{r:?}");
    let r = c.cmd("STATUS Archive (MESSAGES)").await;
    assert!(untagged(&r, "* STATUS").contains("(MESSAGES 1)"), "{r:?}");

    // UID 9 does not exist: NO, and the Archive is unchanged.
    c.send(&send(9, "Archive")).await;
    let r = c.until_tag("B").await;
    assert!(last(&r).starts_with("B NO"), "{r:?}");
    // A sequence number beyond EXISTS is BAD.
    let r = c.cmd("REPLACE 5 Archive {1+}\r\nx").await;
    assert!(last(&r).starts_with("T BAD"), "{r:?}");
    // A missing destination: TRYCREATE, and the original stays.
    c.send(&send(1, "Nowhere")).await;
    let r = c.until_tag("B").await;
    assert!(last(&r).starts_with("B NO [TRYCREATE]"), "{r:?}");
    let r = c.cmd("STATUS Archive (MESSAGES)").await;
    assert!(untagged(&r, "* STATUS").contains("(MESSAGES 1)"), "{r:?}");
    // EXAMINE: the original cannot be expunged.
    let r = c.cmd("EXAMINE INBOX").await;
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    c.send(&send(1, "Archive")).await;
    let r = c.until_tag("B").await;
    assert!(last(&r).starts_with("B NO [READ-ONLY]"), "{r:?}");
    let r = c.cmd("STATUS INBOX (MESSAGES)").await;
    assert!(untagged(&r, "* STATUS").contains("(MESSAGES 1)"), "{r:?}");
}
