//! CATENATE (RFC 4469) over real TCP against a server on the embedded store, with bodies on the
//! file-system blob store: messages assembled from TEXT literals and server-relative IMAP URLs
//! (RFC 5092), `[BADURL]` and `[TOOBIG]` failures leaving nothing appended.

mod common;

use common::*;

/// A two-part draft, laid out as in RFC 4469 §5's example.
const DRAFT: &str = "From: alice@example.org\r\nTo: bob@example.org\r\nSubject: draft\r\n\
                     MIME-Version: 1.0\r\n\
                     Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n\r\n\
                     --XYZ\r\nContent-Type: text/plain\r\n\r\nFirst part text.\r\n\
                     --XYZ\r\nContent-Type: text/plain; name=\"b.txt\"\r\n\r\nSecond part.\r\n\
                     --XYZ--\r\n";

const HEADER: &str = "From: alice@example.org\r\nTo: bob@example.org\r\nSubject: draft\r\n\
                      MIME-Version: 1.0\r\n\
                      Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n\r\n";

const FORWARDED: &str = "From: carol@example.org\r\nSubject: fwd me\r\n\r\nForwarded body.\r\n";

/// The `APPENDUID validity uid` of a tagged APPEND answer.
fn appenduid(tagged: &str) -> (u32, u32) {
    let rest = tagged
        .split("[APPENDUID ")
        .nth(1)
        .unwrap_or_else(|| panic!("no APPENDUID in {tagged}"));
    let mut it = rest.split([' ', ']']);
    let v = it.next().and_then(|v| v.parse().ok()).expect("uidvalidity");
    let u = it.next().and_then(|u| u.parse().ok()).expect("uid");
    (v, u)
}

/// BODY[] of the message with UID `uid` in the selected mailbox, as bytes.
async fn body_of(c: &mut Raw, uid: u32) -> Vec<u8> {
    c.send(format!("F UID FETCH {uid} BODY.PEEK[]\r\n").as_bytes())
        .await;
    let first = c.line_bytes().await;
    let rest = c.until_tag("F").await;
    assert!(last(&rest).starts_with("F OK"), "{rest:?}");
    let text = first
        .splitn(2, |&b| b == b'\n')
        .nth(1)
        .unwrap_or_else(|| panic!("{:?}", String::from_utf8_lossy(&first)))
        .to_vec();
    // The fetch line ends with `)` after the literal.
    text.strip_suffix(b")").expect("closing paren").to_vec()
}

async fn messages(c: &mut Raw, mailbox: &str) -> String {
    let r = c.cmd(&format!("STATUS {mailbox} (MESSAGES)")).await;
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    r[0].clone()
}

/// Alice with the draft in Drafts and a message to forward in INBOX; returns Drafts'
/// UIDVALIDITY and the two UIDs.
async fn drafts(h: &Harness) -> (Raw, u32, u32, u32) {
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let r = c.cmd("CREATE Drafts").await;
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    let r = append(&mut c, "Drafts", "\\Draft", DRAFT.as_bytes()).await;
    let (validity, draft) = appenduid(&r);
    let r = append(&mut c, "INBOX", "", FORWARDED.as_bytes()).await;
    let (_, fwd) = appenduid(&r);
    (c, validity, draft, fwd)
}

#[tokio::test]
async fn catenate_is_advertised() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let r = c.cmd("CAPABILITY").await;
    assert!(
        r[0].starts_with("* CAPABILITY") && r[0].contains(" CATENATE"),
        "{r:?}"
    );
}

/// RFC 4469 §5's example shape: header and parts of a draft, new boundary lines as TEXT, a
/// whole message from another mailbox; the result is those octets exactly, with the flags
/// given, and the referenced messages keep their own flags (no `\Seen` from reading them).
#[tokio::test]
async fn rfc4469_example_assembles_exact_octets() {
    let h = start().await;
    let (mut c, v, draft, fwd) = drafts(&h).await;
    let b1 = "\r\n--XYZ\r\n";
    let b2 = "\r\n--XYZ\r\nContent-Type: message/rfc822\r\n\r\n";
    let end = "\r\n--XYZ--\r\n";
    let cmd = format!(
        "A003 APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE \
         (URL \"/Drafts;UIDVALIDITY={v}/;UID={draft}/;section=HEADER\" \
         TEXT {{{}+}}\r\n{b1} \
         URL \"/Drafts;UIDVALIDITY={v}/;UID={draft}/;section=1.MIME\" \
         URL \"/Drafts;UIDVALIDITY={v}/;UID={draft}/;section=1\" \
         TEXT {{{}+}}\r\n{b2} \
         URL \"/INBOX/;UID={fwd}\" \
         TEXT {{{}+}}\r\n{end})\r\n",
        b1.len(),
        b2.len(),
        end.len()
    );
    c.send(cmd.as_bytes()).await;
    let r = c.until_tag("A003").await;
    assert!(last(&r).starts_with("A003 OK [APPENDUID "), "{r:?}");
    let (v2, uid) = appenduid(last(&r));
    assert_eq!(v2, v);
    let expected =
        format!("{HEADER}{b1}Content-Type: text/plain\r\n\r\nFirst part text.{b2}{FORWARDED}{end}");
    let r = c.cmd("SELECT Drafts").await;
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    assert_eq!(
        String::from_utf8(body_of(&mut c, uid).await).expect("utf-8"),
        expected
    );
    let r = c.cmd(&format!("UID FETCH {uid},{draft} FLAGS")).await;
    assert!(
        r.iter().any(|l| l.contains(&format!("UID {uid}"))
            && l.contains("\\Seen")
            && l.contains("$MDNSent")),
        "{r:?}"
    );
    assert!(
        r.iter()
            .any(|l| l.contains(&format!("UID {draft}")) && !l.contains("\\Seen")),
        "{r:?}"
    );
    // The new message is a real message: its structure is parsed like any other.
    let r = c.cmd(&format!("UID FETCH {uid} BODY[2.HEADER]")).await;
    assert!(
        r[0].contains("Subject: fwd me"),
        "the forwarded message is part 2: {r:?}"
    );
}

/// `/;UID=n` names a message of the selected mailbox; HEADER.FIELDS and PARTIAL select octets;
/// percent-encoded mailbox names resolve; the result may go to another mailbox.
#[tokio::test]
async fn relative_urls_sections_and_partial() {
    let h = start().await;
    let (mut c, _, draft, _) = drafts(&h).await;
    let r = c.cmd("CREATE \"Sent Items\"").await;
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    let r = c.cmd("SELECT Drafts").await;
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    let cmd = format!(
        "A APPEND \"Sent Items\" CATENATE (URL \"/;UID={draft}/;SECTION=HEADER.FIELDS%20(Subject%20From)\" \
         URL \"/;uid={draft}/;SECTION=2/;PARTIAL=7.4\" TEXT {{2+}}\r\n!\n \
         URL \"/Drafts/;UID={draft}/;SECTION=1/;PARTIAL=6\")\r\n"
    );
    c.send(cmd.as_bytes()).await;
    let r = c.until_tag("A").await;
    assert!(last(&r).starts_with("A OK [APPENDUID "), "{r:?}");
    let (_, uid) = appenduid(last(&r));
    let r = c.cmd("SELECT \"Sent Items\"").await;
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    assert_eq!(
        String::from_utf8(body_of(&mut c, uid).await).expect("utf-8"),
        "From: alice@example.org\r\nSubject: draft\r\n\r\npart!\npart text."
    );
    // Relative to the now selected "Sent Items": UID `uid` is the message just made.
    let cmd = format!("A APPEND INBOX CATENATE (URL \"/;UID={uid}/;SECTION=TEXT\")\r\n");
    c.send(cmd.as_bytes()).await;
    let r = c.until_tag("A").await;
    assert!(last(&r).starts_with("A OK [APPENDUID "), "{r:?}");
    let (_, copy) = appenduid(last(&r));
    let r = c.cmd("SELECT INBOX").await;
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    assert_eq!(body_of(&mut c, copy).await, b"part!\npart text.");
}

/// RFC 4469 §3: a URL that names nothing fails the APPEND with `NO [BADURL url]`, and nothing
/// is appended, in a MULTIAPPEND (RFC 3502) not even the good messages before it.
#[tokio::test]
async fn bad_urls_append_nothing() {
    let h = start().await;
    let (mut c, v, draft, fwd) = drafts(&h).await;
    let before = messages(&mut c, "INBOX").await;
    let stale = v.wrapping_add(1).max(1);
    for url in [
        format!("/Drafts;UIDVALIDITY={stale}/;UID={draft}"),
        format!("/Drafts/;UID={}", draft + 100),
        format!("/Drafts/;UID={draft}/;SECTION=7"),
        format!("/Drafts/;UID={draft}/;SECTION=1.HEADER"),
        format!("/NoSuchBox/;UID={draft}"),
        format!("/INBOX/;UID={fwd}/;URLAUTH=anonymous"),
        format!("imap://alice@localhost/INBOX/;UID={fwd}"),
        // Relative, but nothing is selected.
        format!("/;UID={fwd}"),
        "junk]".to_string(),
    ] {
        let cmd = format!(
            "A APPEND INBOX {{5+}}\r\nfirst CATENATE (TEXT {{4+}}\r\nhead URL \"{url}\")\r\n"
        );
        c.send(cmd.as_bytes()).await;
        let r = c.until_tag("A").await;
        let shown = url.replace(']', "%5D");
        assert_eq!(
            last(&r),
            format!("A NO [BADURL {shown}] CATENATE URL does not name a message or section"),
            "{url}"
        );
        assert_eq!(messages(&mut c, "INBOX").await, before, "{url}");
    }
    // Another user's messages are out of reach: for bob the same URL names his own INBOX.
    let mut b = Raw::login(h.addr, "bob", "builder").await;
    let url = format!("/INBOX/;UID={fwd}");
    let cmd = format!("A APPEND INBOX CATENATE (URL \"{url}\")\r\n");
    b.send(cmd.as_bytes()).await;
    let r = b.until_tag("A").await;
    assert!(
        last(&r).starts_with(&format!("A NO [BADURL {url}]")),
        "{r:?}"
    );
    assert_eq!(
        messages(&mut b, "INBOX").await,
        "* STATUS \"INBOX\" (MESSAGES 0)"
    );
    // The very same URL works for alice.
    c.send(cmd.as_bytes()).await;
    let r = c.until_tag("A").await;
    assert!(last(&r).starts_with("A OK [APPENDUID "), "{r:?}");
}

/// RFC 4469 §3 / RFC 7889: a result over APPENDLIMIT is refused with `[TOOBIG]` before it is
/// stored, whichever part makes it too big.
#[tokio::test]
async fn too_big_result_is_refused() {
    let mut opts = Options::default();
    opts.config.limits.max_literal = 400;
    let h = start_with(opts).await;
    let (mut c, _, draft, _) = drafts(&h).await;
    assert!(DRAFT.len() > 200 && DRAFT.len() <= 400, "{}", DRAFT.len());
    let before = messages(&mut c, "Drafts").await;
    let r = c.cmd("CAPABILITY").await;
    assert!(r[0].contains(" APPENDLIMIT=400"), "{r:?}");
    // Two URLs: the second one goes over.
    let cmd = format!(
        "A APPEND Drafts CATENATE (URL \"/Drafts/;UID={draft}\" URL \"/Drafts/;UID={draft}\")\r\n"
    );
    c.send(cmd.as_bytes()).await;
    let r = c.until_tag("A").await;
    assert!(last(&r).starts_with("A NO [TOOBIG]"), "{r:?}");
    // A URL then a TEXT literal that goes over.
    let text = "x".repeat(400 - DRAFT.len() + 1);
    let cmd = format!(
        "A APPEND Drafts CATENATE (URL \"/Drafts/;UID={draft}\" TEXT {{{}+}}\r\n{text})\r\n",
        text.len()
    );
    c.send(cmd.as_bytes()).await;
    let r = c.until_tag("A").await;
    assert!(last(&r).starts_with("A NO [TOOBIG]"), "{r:?}");
    assert_eq!(messages(&mut c, "Drafts").await, before);
    // Exactly at the limit is fine.
    let text = "x".repeat(400 - DRAFT.len());
    let cmd = format!(
        "A APPEND Drafts CATENATE (URL \"/Drafts/;UID={draft}\" TEXT {{{}+}}\r\n{text})\r\n",
        text.len()
    );
    c.send(cmd.as_bytes()).await;
    let r = c.until_tag("A").await;
    assert!(last(&r).starts_with("A OK [APPENDUID "), "{r:?}");
}

/// A TEXT literal larger than the receiver buffers (256 KiB by default) is streamed and spooled
/// like an APPEND message literal, then catenated; synchronizing literals get their `+`.
#[tokio::test]
async fn large_streamed_text_part() {
    let h = start().await;
    let (mut c, _, _, fwd) = drafts(&h).await;
    let big: Vec<u8> = (0..300 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    c.send(
        format!(
            "A APPEND INBOX CATENATE (URL \"/INBOX/;UID={fwd}/;SECTION=HEADER\" TEXT {{{}}}\r\n",
            big.len()
        )
        .as_bytes(),
    )
    .await;
    let cont = c.line().await;
    assert!(cont.starts_with('+'), "{cont}");
    c.send(&big).await;
    c.send(b" TEXT {2}\r\n").await;
    let cont = c.line().await;
    assert!(cont.starts_with('+'), "{cont}");
    c.send(b"!!)\r\n").await;
    let r = c.until_tag("A").await;
    assert!(last(&r).starts_with("A OK [APPENDUID "), "{r:?}");
    let (_, uid) = appenduid(last(&r));
    let r = c.cmd("SELECT INBOX").await;
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    let mut expected = b"From: carol@example.org\r\nSubject: fwd me\r\n\r\n".to_vec();
    expected.extend_from_slice(&big);
    expected.extend_from_slice(b"!!");
    assert!(body_of(&mut c, uid).await == expected);
}

/// RFC 8508 §4 (REPLACE takes an `append-message`, so CATENATE too): a draft replaced by a
/// version built from its own parts.
#[tokio::test]
async fn replace_with_catenate() {
    let h = start().await;
    let (mut c, v, draft, _) = drafts(&h).await;
    let r = c.cmd("SELECT Drafts").await;
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    let cmd = format!(
        "A UID REPLACE {draft} Drafts (\\Draft) CATENATE \
         (URL \"/Drafts;UIDVALIDITY={v}/;UID={draft}/;SECTION=HEADER\" TEXT {{8+}}\r\nNew text)\r\n"
    );
    c.send(cmd.as_bytes()).await;
    let r = c.until_tag("A").await;
    assert!(last(&r).starts_with("A OK"), "{r:?}");
    let appended = r
        .iter()
        .find(|l| l.starts_with("* OK [APPENDUID "))
        .unwrap_or_else(|| panic!("{r:?}"));
    let (_, uid) = appenduid(appended);
    assert!(r.iter().any(|l| l == "* 1 EXPUNGE"), "{r:?}");
    assert_eq!(
        String::from_utf8(body_of(&mut c, uid).await).expect("utf-8"),
        format!("{HEADER}New text")
    );
}

/// URL parts are located first and their bodies read together (up to `fetch_prefetch` at once):
/// the octets still come in the parts' order; a result that cannot fit APPENDLIMIT is refused
/// before any body is read; a blob-store failure while reading appends nothing.
#[tokio::test]
async fn url_parts_are_read_together_in_order() {
    let mut opts = Options::default();
    opts.config.limits.max_literal = 4096;
    let h = start_with(opts).await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let mut uids = Vec::new();
    for n in 0..12 {
        let m = format!("Subject: part {n}\r\n\r\nbody of part {n}\r\n");
        let (_, uid) = appenduid(&append(&mut c, "INBOX", "", m.as_bytes()).await);
        uids.push(uid);
    }
    let urls: String = uids
        .iter()
        .map(|u| format!(" URL \"/INBOX/;UID={u}/;SECTION=TEXT\""))
        .collect();
    let cmd = format!("A APPEND INBOX CATENATE (TEXT {{4+}}\r\nhead{urls})\r\n");
    c.send(cmd.as_bytes()).await;
    let r = c.until_tag("A").await;
    assert!(last(&r).starts_with("A OK [APPENDUID "), "{r:?}");
    let (_, made) = appenduid(last(&r));
    let r = c.cmd("SELECT INBOX").await;
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    let expected: String = std::iter::once("head".to_string())
        .chain((0..12).map(|n| format!("body of part {n}\r\n")))
        .collect();
    assert_eq!(
        String::from_utf8(body_of(&mut c, made).await).expect("utf-8"),
        expected
    );

    // 200 whole messages of ~40 octets: over 4096 once located, so no body is read.
    let before = messages(&mut c, "INBOX").await;
    let gets = h.blobs.get_calls();
    let urls: String = (0..200)
        .map(|i| format!(" URL \"/INBOX/;UID={}\"", uids[i % uids.len()]))
        .collect();
    let cmd = format!("A APPEND INBOX CATENATE ({})\r\n", urls.trim_start());
    c.send(cmd.as_bytes()).await;
    let r = c.until_tag("A").await;
    assert!(last(&r).starts_with("A NO [TOOBIG]"), "{r:?}");
    assert_eq!(
        h.blobs.get_calls(),
        gets,
        "refused before any body was read"
    );

    // One of the reads fails: NO, and nothing is appended.
    h.blobs.fail_next_gets(1);
    let urls: String = uids
        .iter()
        .map(|u| format!(" URL \"/INBOX/;UID={u}\""))
        .collect();
    let cmd = format!("A APPEND INBOX CATENATE ({})\r\n", urls.trim_start());
    c.send(cmd.as_bytes()).await;
    let r = c.until_tag("A").await;
    assert!(last(&r).starts_with("A NO [UNAVAILABLE]"), "{r:?}");
    assert_eq!(messages(&mut c, "INBOX").await, before);
}
