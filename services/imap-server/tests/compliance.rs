//! Protocol compliance by RFC section: wire scripts (command bytes in, response lines out) for
//! IMAP4rev2 (RFC 9051) sessions, ESEARCH/SEARCHRES, LIST-EXTENDED/LIST-STATUS, BINARY, QUOTA,
//! response codes and literal forms, and multi-session, multi-node scenarios for `\Recent`
//! ownership and expunges issued elsewhere. `docs/compliance.md` maps sections to these tests.

mod common;

use common::*;
use std::time::Duration;
use yubin_meta_api::{AccountStore, MailStore, NewMessage, QuotaLimits, SearchIndex, Uid, UidSet};

const SIMPLE: &[u8] = b"From: Alice <alice@example.org>\r\n\
To: Bob <bob@example.org>\r\n\
Subject: Hello there\r\n\
Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\
\r\n\
Hello Bob!\r\n";

/// Part 1: quoted-printable text; part 2: base64 binary with NUL octets; part 3: an encoding
/// nobody knows.
const ENCODED: &[u8] = b"From: Alice <alice@example.org>\r\n\
Subject: Encodings\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
caf=C3=A9 cr=C3=A8me\r\n\
--b\r\n\
Content-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
AAECAwQFBgcICQ==\r\n\
--b\r\n\
Content-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: x-uuencode\r\n\
\r\n\
begin 644 x\r\n\
--b--\r\n";

fn has(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

fn ok(lines: &[String]) {
    assert!(last(lines).starts_with("T OK"), "{lines:#?}");
}

fn tagged_starts(lines: &[String], prefix: &str) {
    assert!(last(lines).starts_with(prefix), "{lines:#?}");
}

async fn rev2(raw: &mut Raw) {
    let r = raw.cmd("ENABLE IMAP4rev2").await;
    assert_eq!(r[0], "* ENABLED IMAP4rev2", "{r:?}");
    ok(&r);
}

/// RFC 9051 §6.1.1, §6.3.1, RFC 5161: IMAP4rev2 is advertised next to IMAP4rev1 and chosen with
/// ENABLE, which only lists what it newly enabled and is refused once a mailbox is selected.
#[tokio::test]
async fn rfc9051_capability_and_enable() {
    let h = start().await;
    let mut c = Raw::connect(h.addr).await;
    for cap in [
        " IMAP4rev1 ",
        " IMAP4rev2 ",
        " ESEARCH ",
        " SEARCHRES ",
        " LIST-EXTENDED ",
        " LIST-STATUS ",
        " SPECIAL-USE ",
        " BINARY ",
        " QUOTA ",
        " QUOTA=RES-STORAGE ",
        " QUOTA=RES-MESSAGE",
    ] {
        assert!(c.greeting.contains(cap), "{cap} in {}", c.greeting);
    }
    assert!(!c.greeting.contains("QUOTASET"));
    assert!(!c.greeting.contains("UTF8=ACCEPT"));
    let r = c.cmd("ENABLE IMAP4rev2").await;
    tagged_starts(&r, "T BAD");
    let r = c.cmd("LOGIN alice wonderland").await;
    ok(&r);
    let r = c.cmd("ENABLE X-UNKNOWN UTF8=ACCEPT").await;
    assert_eq!(r, ["* ENABLED", "T OK ENABLE completed"]);
    rev2(&mut c).await;
    // Already enabled: not listed again (RFC 5161 §3.1).
    let r = c.cmd("ENABLE imap4rev2").await;
    assert_eq!(r[0], "* ENABLED");
    ok(&c.cmd("SELECT INBOX").await);
    let r = c.cmd("ENABLE IMAP4rev2").await;
    tagged_starts(&r, "T BAD");
}

/// RFC 9051 §6.3.2: a rev2 SELECT sends the mailbox's LIST and no RECENT or UNSEEN; selecting
/// again first closes the old mailbox with `OK [CLOSED]` (§7.1). FETCH FLAGS never shows
/// `\Recent`, and new messages come as EXISTS alone.
#[tokio::test]
async fn rfc9051_select_and_no_recent() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    append(&mut c, "INBOX", "", SIMPLE).await;
    rev2(&mut c).await;
    let r = c.cmd("SELECT inbox").await;
    ok(&r);
    assert!(
        has(&r, "* LIST (\\HasNoChildren) \"/\" \"INBOX\""),
        "{r:#?}"
    );
    assert!(has(&r, "* 1 EXISTS"));
    assert!(has(&r, "* OK [UIDVALIDITY "));
    assert!(has(&r, "* OK [UIDNEXT 2]"));
    assert!(has(&r, "* OK [PERMANENTFLAGS ("));
    assert!(
        !has(&r, "RECENT") && !has(&r, "UNSEEN") && !has(&r, "CLOSED"),
        "{r:#?}"
    );
    let r = c.cmd("FETCH 1 FLAGS").await;
    assert_eq!(r[0], "* 1 FETCH (FLAGS ())");
    let mut other = Raw::login(h.addr, "alice", "wonderland").await;
    append(&mut other, "INBOX", "", SIMPLE).await;
    let r = c.cmd("NOOP").await;
    assert_eq!(r, ["* 2 EXISTS", "T OK NOOP completed"]);
    ok(&c.cmd("CREATE Sent (USE (\\Sent))").await);
    let r = c.cmd("EXAMINE Sent").await;
    assert_eq!(
        r[0], "* OK [CLOSED] Previous mailbox is now closed",
        "{r:#?}"
    );
    assert!(
        has(&r, "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\""),
        "{r:#?}"
    );
    tagged_starts(&r, "T OK [READ-ONLY]");
    // A failing SELECT closes the mailbox too, and says so.
    let r = c.cmd("SELECT Nope").await;
    assert_eq!(r[0], "* OK [CLOSED] Previous mailbox is now closed");
    tagged_starts(&r, "T NO [NONEXISTENT]");
    let r = c.cmd("SELECT INBOX").await;
    assert!(!has(&r, "CLOSED"), "{r:#?}");
}

/// RFC 9051 §5.1 / RFC 3501 §5.1.3: one mailbox, spelled in modified UTF-7 to a rev1 session and
/// in UTF-8 to a rev2 one; in rev2 `&` is an ordinary character.
#[tokio::test]
async fn mailbox_names_rev1_utf7_rev2_utf8() {
    let h = start().await;
    let mut v1 = Raw::login(h.addr, "alice", "wonderland").await;
    let mut v2 = Raw::login(h.addr, "alice", "wonderland").await;
    rev2(&mut v2).await;
    ok(&v1.cmd("CREATE Entw&APw-rfe").await);
    v2.send("T CREATE \"Tom & Jerry/K\u{f6}ln\"\r\n".as_bytes())
        .await;
    ok(&v2.until_tag("T").await);
    let r = v1.cmd("LIST \"\" *").await;
    assert!(has(&r, "\"Entw&APw-rfe\""), "{r:#?}");
    assert!(
        has(&r, "* LIST (\\HasChildren) \"/\" \"Tom &- Jerry\""),
        "{r:#?}"
    );
    assert!(has(&r, "\"Tom &- Jerry/K&APY-ln\""), "{r:#?}");
    let r = v2.cmd("LIST \"\" *").await;
    assert!(has(&r, "\"Entw\u{fc}rfe\""), "{r:#?}");
    assert!(has(&r, "\"Tom & Jerry/K\u{f6}ln\""), "{r:#?}");
    // The rev1 spelling is just a name with `&` in it for a rev2 client.
    let r = v2.cmd("STATUS Entw&APw-rfe (MESSAGES)").await;
    tagged_starts(&r, "T NO [NONEXISTENT]");
    v2.send("T STATUS \"Entw\u{fc}rfe\" (MESSAGES)\r\n".as_bytes())
        .await;
    let r = v2.until_tag("T").await;
    assert_eq!(r[0], "* STATUS \"Entw\u{fc}rfe\" (MESSAGES 0)");
    // Invalid modified UTF-7 is a bad argument in rev1.
    let r = v1.cmd("CREATE &Jjo").await;
    tagged_starts(&r, "T BAD");
}

/// RFC 3501 §5.1, §6.3.4, §6.3.5, §6.3.6: INBOX is case-insensitive, RENAME INBOX moves its
/// messages and leaves it empty, deleting a parent keeps its children under a `\Noselect` name,
/// and subscriptions outlive their mailboxes.
#[tokio::test]
async fn mailbox_hierarchy_rules() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    append(&mut c, "inbox", "", SIMPLE).await;
    append(&mut c, "InBox", "", SIMPLE).await;
    ok(&c.cmd("RENAME iNbOx Old").await);
    let r = c.cmd("STATUS INBOX (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS \"INBOX\" (MESSAGES 0)");
    let r = c.cmd("STATUS Old (MESSAGES)").await;
    assert_eq!(r[0], "* STATUS \"Old\" (MESSAGES 2)");
    ok(&c.cmd("CREATE Parent/Child").await);
    ok(&c.cmd("SUBSCRIBE Parent/Child").await);
    ok(&c.cmd("DELETE Parent").await);
    let r = c.cmd("LIST \"\" Parent*").await;
    assert_eq!(
        &r[..2],
        [
            "* LIST (\\Noselect \\HasChildren) \"/\" \"Parent\"",
            "* LIST (\\HasNoChildren) \"/\" \"Parent/Child\""
        ],
        "{r:#?}"
    );
    ok(&c.cmd("DELETE Parent/Child").await);
    let r = c.cmd("LSUB \"\" *").await;
    assert_eq!(r[0], "* LSUB () \"/\" \"Parent/Child\"", "{r:#?}");
    let r = c.cmd("LIST (SUBSCRIBED) \"\" *").await;
    assert_eq!(
        r[0], "* LIST (\\NonExistent \\Subscribed) \"/\" \"Parent/Child\"",
        "{r:#?}"
    );
}

/// RFC 4731 §3 (ESEARCH), RFC 9051 §6.4.4 / §7.3.4, RFC 5182 (SEARCHRES).
#[tokio::test]
async fn esearch_and_searchres() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    for flags in ["\\Seen", "", "\\Seen", "", "", "\\Flagged"] {
        append(&mut c, "INBOX", flags, SIMPLE).await;
    }
    select(&mut c).await;
    // Messages 2, 4, 5, 6 are unseen; UIDs equal sequence numbers here.
    let r = c
        .tagged("A1", "SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN")
        .await;
    assert_eq!(
        r,
        [
            "* ESEARCH (TAG \"A1\") MIN 2 MAX 6 ALL 2,4:6 COUNT 4",
            "A1 OK SEARCH completed"
        ]
    );
    let r = c.tagged("A2", "UID SEARCH RETURN () UNSEEN").await;
    assert_eq!(r[0], "* ESEARCH (TAG \"A2\") UID ALL 2,4:6");
    let r = c
        .tagged("A3", "SEARCH RETURN (MIN COUNT) KEYWORD nothere")
        .await;
    assert_eq!(r[0], "* ESEARCH (TAG \"A3\") COUNT 0");
    // Without RETURN, a rev1 session gets the classic response.
    let r = c.cmd("SEARCH UNSEEN").await;
    assert_eq!(r[0], "* SEARCH 2 4 5 6");

    // SAVE alone answers nothing untagged; `$` then names the result in any command.
    let r = c.cmd("SEARCH RETURN (SAVE) UNSEEN NOT FLAGGED").await;
    assert_eq!(r, ["T OK SEARCH completed"]);
    let r = c.cmd("FETCH $ (UID)").await;
    assert_eq!(
        &r[..3],
        [
            "* 2 FETCH (UID 2)",
            "* 4 FETCH (UID 4)",
            "* 5 FETCH (UID 5)"
        ]
    );
    let r = c.cmd("UID SEARCH $ 3:5").await;
    assert_eq!(r[0], "* SEARCH 4 5");
    let r = c.cmd("SEARCH OR $ 1 NOT 5").await;
    assert_eq!(r[0], "* SEARCH 1 2 4");
    ok(&c.cmd("STORE $ +FLAGS.SILENT (\\Answered)").await);
    let r = c.cmd("SEARCH ANSWERED").await;
    assert_eq!(r[0], "* SEARCH 2 4 5");
    // With MIN and MAX but neither ALL nor COUNT, only those two are saved (RFC 5182 §2.1).
    let r = c
        .tagged("B1", "SEARCH RETURN (MIN MAX SAVE) ANSWERED")
        .await;
    assert_eq!(r[0], "* ESEARCH (TAG \"B1\") MIN 2 MAX 5");
    let r = c.cmd("SEARCH $").await;
    assert_eq!(r[0], "* SEARCH 2 5");
    // A failed SEARCH with SAVE empties the result.
    let r = c.cmd("SEARCH RETURN (SAVE) CHARSET KOI8-R ALL").await;
    tagged_starts(&r, "T NO [BADCHARSET");
    let r = c.cmd("SEARCH $").await;
    assert_eq!(r[0], "* SEARCH");
    // Expunged messages drop out of `$`.
    ok(&c.cmd("SEARCH RETURN (SAVE) 5:6").await);
    ok(&c.cmd("STORE 6 +FLAGS.SILENT (\\Deleted)").await);
    ok(&c.cmd("EXPUNGE").await);
    let r = c.cmd("UID SEARCH $").await;
    assert_eq!(r[0], "* SEARCH 5");

    // An IMAP4rev2 session always gets ESEARCH; no RETURN means ALL (RFC 9051 §6.4.4).
    let mut v2 = Raw::login(h.addr, "alice", "wonderland").await;
    rev2(&mut v2).await;
    select(&mut v2).await;
    let r = v2.tagged("C1", "SEARCH UNSEEN").await;
    assert_eq!(r[0], "* ESEARCH (TAG \"C1\") ALL 2,4:5");
    let r = v2.tagged("C2", "UID SEARCH DELETED").await;
    assert_eq!(r, ["* ESEARCH (TAG \"C2\") UID", "C2 OK SEARCH completed"]);
}

async fn select(c: &mut Raw) -> Vec<String> {
    let r = c.cmd("SELECT INBOX").await;
    ok(&r);
    r
}

/// RFC 3501 §6.4.4 SEARCH keys over the wire: every key, dates against INTERNALDATE and
/// `Date:`, sizes, header and MIME-decoded body text, deep OR/NOT/parenthesis nesting, the
/// configured nesting limit answered `BAD [LIMIT]`.
#[tokio::test]
async fn search_keys_over_the_wire() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    c.send(
        format!(
            "A APPEND INBOX (\\Seen work) \"01-Mar-2024 10:00:00 +0000\" {{{}}}\r\n",
            SIMPLE.len()
        )
        .as_bytes(),
    )
    .await;
    assert!(c.line().await.starts_with('+'));
    c.send(SIMPLE).await;
    c.send(b"\r\n").await;
    tagged_starts(&c.until_tag("A").await, "A OK");
    append(&mut c, "INBOX", "\\Flagged", ENCODED).await;
    select(&mut c).await;
    let table: &[(&str, &str)] = &[
        ("ALL", "1 2"),
        ("SEEN", "1"),
        ("UNSEEN", "2"),
        ("FLAGGED", "2"),
        ("KEYWORD work", "1"),
        ("UNKEYWORD work", "2"),
        ("ON 1-Mar-2024", "1"),
        ("BEFORE 2-Mar-2024", "1"),
        ("SINCE 2-Mar-2024", "2"),
        // Date: is Mon, 7 Feb 1994 -0800 in its own zone.
        ("SENTON 7-Feb-1994", "1"),
        ("SENTBEFORE 8-Feb-1994", "1"),
        ("SENTSINCE 8-Feb-1994", ""),
        ("LARGER 200", "2"),
        ("SMALLER 200", "1"),
        ("HEADER Subject encod", "2"),
        ("SUBJECT \"HELLO\"", "1"),
        ("FROM alice", "1 2"),
        ("TO bob@", "1"),
        // Body text is matched after quoted-printable decoding, case-insensitively.
        ("BODY \"CAF\u{c9}\"", "2"),
        ("CHARSET UTF-8 TEXT \"cr\u{e8}me\"", "2"),
        ("TEXT \"hello bob\"", "1"),
        ("NOT (OR SEEN (FLAGGED NOT ALL))", "2"),
        ("OR OR OR NOT ALL SEEN NOT ALL NOT ALL", "1"),
        ("((((((((((SEEN))))))))))", "1"),
        ("*", "2"),
        ("UID 2:*", "2"),
        ("1:* NOT 1", "2"),
    ];
    for (keys, want) in table {
        c.send(format!("T SEARCH {keys}\r\n").as_bytes()).await;
        let r = c.until_tag("T").await;
        let expect = if want.is_empty() {
            "* SEARCH".to_string()
        } else {
            format!("* SEARCH {want}")
        };
        assert_eq!(r[0], expect, "SEARCH {keys}: {r:?}");
        ok(&r);
    }
    // Nesting deeper than the limit (500 by default) is refused before evaluation.
    let deep = format!("{}SEEN{}", "(".repeat(80), ")".repeat(80));
    ok(&c.cmd(&format!("SEARCH {deep}")).await);
    let deep = format!("{}SEEN{}", "(".repeat(600), ")".repeat(600));
    let r = c.cmd(&format!("SEARCH {deep}")).await;
    assert_eq!(last(&r), "T BAD [LIMIT] search keys nested too deeply");
}

/// RFC 5258 (LIST-EXTENDED), RFC 5819 (LIST-STATUS), RFC 6154 (SPECIAL-USE), RFC 9051 §6.3.9.
#[tokio::test]
async fn list_extended_and_list_status() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    for name in [
        "Work/Projects",
        "Work/Notes",
        "Trash (USE (\\Trash))",
        "Fun",
    ] {
        ok(&c.cmd(&format!("CREATE {name}")).await);
    }
    ok(&c.cmd("SUBSCRIBE Work/Projects").await);
    ok(&c.cmd("SUBSCRIBE Fun").await);
    ok(&c.cmd("SUBSCRIBE Gone").await);
    append(&mut c, "Fun", "", SIMPLE).await;
    append(&mut c, "Fun", "\\Seen", SIMPLE).await;

    let r = c.cmd("LIST (SUBSCRIBED) \"\" *").await;
    assert_eq!(
        r,
        [
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"Fun\"",
            "* LIST (\\NonExistent \\Subscribed) \"/\" \"Gone\"",
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"Work/Projects\"",
            "T OK LIST completed"
        ]
    );
    // RECURSIVEMATCH: Work is not subscribed, but a child that `%` does not reach is.
    let r = c.cmd("LIST (SUBSCRIBED RECURSIVEMATCH) \"\" %").await;
    assert_eq!(
        r,
        [
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"Fun\"",
            "* LIST (\\NonExistent \\Subscribed) \"/\" \"Gone\"",
            "* LIST (\\HasChildren) \"/\" \"Work\" (\"CHILDINFO\" (\"SUBSCRIBED\"))",
            "T OK LIST completed"
        ]
    );
    let r = c.cmd("LIST (RECURSIVEMATCH) \"\" %").await;
    tagged_starts(&r, "T BAD");
    let r = c.cmd("LIST (SPECIAL-USE) \"\" *").await;
    assert_eq!(
        r,
        [
            "* LIST (\\HasNoChildren \\Trash) \"/\" \"Trash\"",
            "T OK LIST completed"
        ]
    );
    let r = c
        .cmd("LIST (REMOTE) \"\" (INBOX Fun) RETURN (SUBSCRIBED CHILDREN)")
        .await;
    assert_eq!(
        r,
        [
            "* LIST (\\HasNoChildren) \"/\" \"INBOX\"",
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"Fun\"",
            "T OK LIST completed"
        ]
    );
    let r = c
        .cmd("LIST \"\" % RETURN (STATUS (MESSAGES UNSEEN UIDNEXT))")
        .await;
    assert_eq!(
        r,
        [
            "* LIST (\\HasNoChildren) \"/\" \"INBOX\"",
            "* STATUS \"INBOX\" (MESSAGES 0 UNSEEN 0 UIDNEXT 1)",
            "* LIST (\\HasNoChildren) \"/\" \"Fun\"",
            "* STATUS \"Fun\" (MESSAGES 2 UNSEEN 1 UIDNEXT 3)",
            "* LIST (\\HasNoChildren \\Trash) \"/\" \"Trash\"",
            "* STATUS \"Trash\" (MESSAGES 0 UNSEEN 0 UIDNEXT 1)",
            // `Work` exists (CREATE made it); Work/… are not reached by `%`.
            "* LIST (\\HasChildren) \"/\" \"Work\"",
            "* STATUS \"Work\" (MESSAGES 0 UNSEEN 0 UIDNEXT 1)",
            "T OK LIST completed"
        ]
    );
    let r = c.cmd("LIST \"\" Fun RETURN (STATUS (SIZE DELETED))").await;
    assert_eq!(
        r[1],
        format!("* STATUS \"Fun\" (SIZE {} DELETED 0)", 2 * SIMPLE.len())
    );
    let r = c
        .cmd("LIST \"\" Fun RETURN (STATUS (DELETED-STORAGE))")
        .await;
    tagged_starts(&r, "T BAD");
}

/// RFC 3516 (BINARY) and RFC 9051 §6.4.5: decoded part contents, literal8 for NUL octets,
/// partials over decoded bytes, BINARY.SIZE, UNKNOWN-CTE, `\Seen`, and APPEND of a literal8.
#[tokio::test]
async fn binary_fetch_and_append() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    append(&mut c, "INBOX", "", ENCODED).await;
    select(&mut c).await;
    c.send(b"T FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2] BINARY.SIZE[1])\r\n")
        .await;
    let line = c.line_bytes().await;
    assert_eq!(
        line,
        b"* 1 FETCH (BINARY[2] ~{10}\r\n\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09 BINARY.SIZE[2] 10 BINARY.SIZE[1] 12)"
    );
    ok(&c.until_tag("T").await);
    let r = c.cmd("FETCH 1 (BINARY.PEEK[1]<6.6> BINARY.PEEK[9])").await;
    assert_eq!(
        r[0], "* 1 FETCH (BINARY[1]<6> {6}\r\ncr\u{e8}me BINARY[9] NIL)",
        "{r:?}"
    );
    // Peeking left \Seen alone (the message is \Recent to this session, which selected it).
    let r = c.cmd("FETCH 1 (FLAGS)").await;
    assert_eq!(r[0], "* 1 FETCH (FLAGS (\\Recent))");
    let r = c.cmd("FETCH 1 BINARY.PEEK[3]").await;
    assert_eq!(r.len(), 1, "{r:?}");
    tagged_starts(&r, "T NO [UNKNOWN-CTE]");
    // Non-peek BINARY sets \Seen (RFC 3516 §4.2).
    let r = c.cmd("FETCH 1 BINARY[1]").await;
    assert_eq!(
        r[0],
        "* 1 FETCH (BINARY[1] {12}\r\ncaf\u{e9} cr\u{e8}me FLAGS (\\Seen \\Recent))"
    );

    // APPEND with literal8 (RFC 3516 §4.4): stored as sent, NUL octets and all.
    let msg = b"Subject: raw\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\xffbin\r\n";
    c.send(format!("A APPEND INBOX ~{{{}}}\r\n", msg.len()).as_bytes())
        .await;
    assert!(c.line().await.starts_with('+'));
    c.send(msg).await;
    c.send(b"\r\n").await;
    tagged_starts(&c.until_tag("A").await, "A OK [APPENDUID ");
    ok(&c.cmd("NOOP").await);
    c.send(b"T FETCH 2 (BODY.PEEK[] BINARY.PEEK[1])\r\n").await;
    let mut want = format!("* 2 FETCH (BODY[] ~{{{}}}\r\n", msg.len()).into_bytes();
    want.extend_from_slice(msg);
    want.extend_from_slice(b" BINARY[1] ~{7}\r\n\x00\xffbin\r\n)");
    assert_eq!(c.line_bytes().await, want);
    ok(&c.until_tag("T").await);
}

/// RFC 9208: GETQUOTAROOT / GETQUOTA over the account's one root `""` (STORAGE in KiB, MESSAGE),
/// SETQUOTA refused, `NO [OVERQUOTA]` from APPEND, COPY and MOVE.
#[tokio::test]
async fn quota_commands_and_overquota() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    append(&mut c, "INBOX", "", SIMPLE).await;
    // No limits: no quota root.
    let r = c.cmd("GETQUOTAROOT INBOX").await;
    assert_eq!(r, ["* QUOTAROOT \"INBOX\"", "T OK GETQUOTAROOT completed"]);
    let r = c.cmd("GETQUOTA \"\"").await;
    tagged_starts(&r, "T NO [NONEXISTENT]");
    let alice = h
        .store
        .user_by_name("alice")
        .await
        .expect("lookup")
        .expect("alice");
    h.store
        .set_quota(
            alice.id,
            QuotaLimits {
                storage_bytes: Some(3 * 1024),
                messages: Some(2),
            },
        )
        .await
        .expect("set quota");
    let r = c.cmd("GETQUOTAROOT inbox").await;
    assert_eq!(
        r,
        [
            "* QUOTAROOT \"INBOX\" \"\"",
            "* QUOTA \"\" (STORAGE 1 3 MESSAGE 1 2)",
            "T OK GETQUOTAROOT completed"
        ]
    );
    let r = c.cmd("GETQUOTA \"\"").await;
    assert_eq!(r[0], "* QUOTA \"\" (STORAGE 1 3 MESSAGE 1 2)");
    // Only quota administrators may look at other roots.
    let r = c.cmd("GETQUOTA other").await;
    tagged_starts(&r, "T NO [NOPERM]");
    let r = c.cmd("GETQUOTAROOT Nope").await;
    tagged_starts(&r, "T NO [NONEXISTENT]");
    let r = c.cmd("SETQUOTA \"\" (STORAGE 100)").await;
    tagged_starts(&r, "T NO");

    append(&mut c, "INBOX", "", SIMPLE).await;
    let tagged = append(&mut c, "INBOX", "", SIMPLE).await;
    assert!(tagged.starts_with("A NO [OVERQUOTA]"), "{tagged}");
    ok(&c.cmd("CREATE Other").await);
    select(&mut c).await;
    let r = c.cmd("COPY 1 Other").await;
    tagged_starts(&r, "T NO [OVERQUOTA]");
    let r = c.cmd("GETQUOTA \"\"").await;
    assert_eq!(r[0], "* QUOTA \"\" (STORAGE 1 3 MESSAGE 2 2)");
}

/// RFC 9208 §4.1: the configured quota administrators see QUOTASET and set limits on their own
/// root `""` and on other accounts' `#user/<name>`; everyone else gets `NO [NOPERM]`.
#[tokio::test]
async fn setquota_for_admins() {
    let h = start_with(Options {
        config: yubin_imap::ImapConfig {
            allow_plaintext_auth: true,
            quota_admins: vec!["alice".to_string()],
            ..yubin_imap::ImapConfig::default()
        },
        ..Options::default()
    })
    .await;
    let mut admin = Raw::login(h.addr, "alice", "wonderland").await;
    let caps = admin.cmd("CAPABILITY").await;
    assert!(caps[0].contains(" QUOTASET"), "{caps:?}");
    let mut bob = Raw::login(h.addr, "bob", "builder").await;
    append(&mut bob, "INBOX", "", SIMPLE).await;

    // Bob: one message of under 1 KiB; at most 2 messages.
    let r = admin
        .cmd("SETQUOTA \"#user/bob\" (STORAGE 100 MESSAGE 2)")
        .await;
    assert_eq!(
        r,
        [
            "* QUOTA \"#user/bob\" (STORAGE 1 100 MESSAGE 1 2)",
            "T OK SETQUOTA completed"
        ]
    );
    let r = admin.cmd("GETQUOTA \"#user/bob\"").await;
    assert_eq!(r[0], "* QUOTA \"#user/bob\" (STORAGE 1 100 MESSAGE 1 2)");
    let r = bob.cmd("GETQUOTA \"\"").await;
    assert_eq!(r[0], "* QUOTA \"\" (STORAGE 1 100 MESSAGE 1 2)");
    append(&mut bob, "INBOX", "", SIMPLE).await;
    let tagged = append(&mut bob, "INBOX", "", SIMPLE).await;
    assert!(tagged.starts_with("A NO [OVERQUOTA]"), "{tagged}");

    // Errors: unknown resource, unknown account, a root that is not an account's.
    let r = admin.cmd("SETQUOTA \"#user/bob\" (MAILBOX 5)").await;
    tagged_starts(&r, "T NO ");
    let r = admin.cmd("SETQUOTA \"#user/nobody\" (MESSAGE 5)").await;
    tagged_starts(&r, "T NO [NONEXISTENT]");
    let r = admin.cmd("GETQUOTA \"#user/nobody\"").await;
    tagged_starts(&r, "T NO [NONEXISTENT]");
    let r = admin.cmd("SETQUOTA other (MESSAGE 5)").await;
    tagged_starts(&r, "T NO [NONEXISTENT]");

    // The administrator's own root; an empty list removes every limit.
    let r = admin.cmd("SETQUOTA \"\" (MESSAGE 10)").await;
    assert_eq!(
        r,
        ["* QUOTA \"\" (MESSAGE 0 10)", "T OK SETQUOTA completed"]
    );
    ok(&admin.cmd("SETQUOTA \"#user/bob\" ()").await);
    let r = admin.cmd("GETQUOTA \"#user/bob\"").await;
    tagged_starts(&r, "T NO [NONEXISTENT]");
    let tagged = append(&mut bob, "INBOX", "", SIMPLE).await;
    assert!(tagged.starts_with("A OK"), "{tagged}");

    // Not an administrator: no QUOTASET, and no SETQUOTA or foreign roots.
    let caps = bob.cmd("CAPABILITY").await;
    assert!(!caps[0].contains("QUOTASET"), "{caps:?}");
    let r = bob.cmd("SETQUOTA \"\" (STORAGE 100000)").await;
    tagged_starts(&r, "T NO [NOPERM]");
    let r = bob.cmd("SETQUOTA \"#user/alice\" (MESSAGE 1)").await;
    tagged_starts(&r, "T NO [NOPERM]");
    let r = bob.cmd("GETQUOTA \"#user/alice\"").await;
    tagged_starts(&r, "T NO [NOPERM]");
}

/// RFC 3501 §2.3.2: `\Recent` is owned by exactly one session, across nodes. The first session
/// to learn of a message (by SELECT or by a catch-up) claims it; EXAMINE and rev2 never do.
#[tokio::test]
async fn recent_belongs_to_one_session_across_nodes() {
    let h = start().await;
    let node2 = h.second_node().await;
    let mut writer = Raw::login(h.addr, "alice", "wonderland").await;
    append(&mut writer, "INBOX", "", SIMPLE).await;
    append(&mut writer, "INBOX", "", SIMPLE).await;

    // EXAMINE sees nothing recent and claims nothing.
    let mut examiner = Raw::login(node2, "alice", "wonderland").await;
    let r = examiner.cmd("EXAMINE INBOX").await;
    assert!(has(&r, "* 0 RECENT"), "{r:#?}");
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    let r = select(&mut a).await;
    assert!(has(&r, "* 2 RECENT"), "{r:#?}");
    let r = a.cmd("FETCH 1:2 FLAGS").await;
    assert_eq!(r[0], "* 1 FETCH (FLAGS (\\Recent))");
    let r = a.cmd("SEARCH RECENT").await;
    assert_eq!(r[0], "* SEARCH 1 2");
    let mut b = Raw::login(node2, "alice", "wonderland").await;
    let r = select(&mut b).await;
    assert!(has(&r, "* 0 RECENT"), "{r:#?}");
    let r = b.cmd("SEARCH NEW").await;
    assert_eq!(r[0], "* SEARCH");

    // New messages: whichever of A (node 1) and B (node 2) catches up first owns them; the
    // other sees them as not recent. Both race with NOOPs.
    for _ in 0..3 {
        append(&mut writer, "INBOX", "", SIMPLE).await;
    }
    let (ra, rb) = tokio::join!(a.cmd("NOOP"), b.cmd("NOOP"));
    let recent_of = |r: &[String]| -> u32 {
        r.iter()
            .find_map(|l| l.strip_suffix(" RECENT")?.strip_prefix("* ")?.parse().ok())
            .expect("RECENT line")
    };
    assert!(has(&ra, "* 5 EXISTS") && has(&rb, "* 5 EXISTS"));
    let (na, nb) = (recent_of(&ra), recent_of(&rb));
    // A still has its first two.
    assert_eq!((na - 2) + nb, 3, "{ra:?} {rb:?}");
    let ra = a.cmd("SEARCH RECENT").await;
    let rb = b.cmd("SEARCH RECENT").await;
    let count = |r: &[String]| r[0].split(' ').count() - 2;
    assert_eq!(count(&ra) + count(&rb), 5, "{ra:?} {rb:?}");
    // A session selecting now finds nothing left to claim.
    let mut late = Raw::login(node2, "alice", "wonderland").await;
    let r = select(&mut late).await;
    assert!(has(&r, "* 0 RECENT"), "{r:#?}");
    // The examiner learned of the new messages too, without claiming any.
    let r = examiner.cmd("NOOP").await;
    assert_eq!(&r[..2], ["* 5 EXISTS", "* 0 RECENT"], "{r:?}");
}

/// RFC 3501 §2.3.2: a session claims as `\Recent` exactly the messages it announces. Session A
/// catches up on M1 while other messages land in the store right before and right after each of
/// its claims (as another node's deliveries would); A then logs out without another catch-up.
/// Every message A never announced must still be `\Recent` to the next session that selects:
/// a claim that reached past A's catch-up read would leave them recent to no session.
#[tokio::test]
async fn recent_claims_only_what_the_session_announces() {
    let h = start().await;
    let node2 = h.second_node().await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    let r = select(&mut a).await;
    assert!(has(&r, "* 0 RECENT"), "{r:#?}");
    let mut writer = Raw::login(node2, "alice", "wonderland").await;
    append(&mut writer, "INBOX", "", SIMPLE).await;

    // Copies of M1 are what lands during A's claims.
    let user = h
        .store
        .user_by_name("alice")
        .await
        .expect("user")
        .expect("alice")
        .id;
    let mbox = h.store.mailbox_status(user, "INBOX").await.expect("status");
    let m1 = h
        .store
        .fetch(user, mbox.id, &UidSet::from_uids([Uid(1)]), true)
        .await
        .expect("fetch")
        .pop()
        .expect("M1");
    let copy = NewMessage {
        blob: m1.blob,
        size: m1.size,
        internal_date: m1.internal_date,
        flags: Vec::new(),
        summary: m1.summary.expect("summary"),
        index: SearchIndex::default(),
    };
    // Enough raced claims to outlast any fixed number of catch-up passes around a claim.
    h.race.arm(user, "INBOX", copy, 4);
    let ra = a.cmd("NOOP").await;
    h.race.disarm();
    let last_count = |r: &[String], what: &str| -> Option<u32> {
        r.iter().rev().find_map(|l| {
            l.strip_prefix("* ")?
                .strip_suffix(what)?
                .strip_suffix(' ')?
                .parse()
                .ok()
        })
    };
    let announced = last_count(&ra, "EXISTS").expect("A learned of M1");
    let recent_a = last_count(&ra, "RECENT").expect("RECENT with EXISTS");
    assert_eq!(recent_a, announced, "A claimed what it announced: {ra:?}");
    let r = a.cmd("LOGOUT").await;
    assert!(!r.iter().any(|l| l.ends_with(" EXISTS")), "{r:?}");

    let total = h
        .store
        .mailbox_status(user, "INBOX")
        .await
        .expect("status")
        .exists;
    assert!(
        announced < total,
        "messages landed after A's catch-up read: {announced} of {total}"
    );
    let mut b = Raw::login(node2, "alice", "wonderland").await;
    let r = select(&mut b).await;
    assert!(has(&r, &format!("* {total} EXISTS")), "{r:#?}");
    assert!(
        has(&r, &format!("* {} RECENT", total - announced)),
        "every message A did not announce is recent to B: {r:#?}"
    );
    let r = b.cmd("UID SEARCH RECENT").await;
    let want: Vec<String> = (announced + 1..=total).map(|u| u.to_string()).collect();
    assert_eq!(r[0], format!("* SEARCH {}", want.join(" ")), "{r:?}");
}

/// RFC 3501 §7.4.1 and RFC 2180 §4.1–4.2 across nodes: a message expunged by another session
/// stays in this session's view until an EXPUNGE may be sent; FETCH and STORE naming it by
/// sequence number: FETCH answers `NO [EXPUNGEISSUED]` (RFC 9051 §7.1) after doing the rest,
/// STORE stores the rest and answers OK, and the next command that may send EXPUNGE delivers
/// it.
/// RFC 3501 §6.4.6 / §7.4.1: after `STORE ... .SILENT` the client knows only its own change. When
/// another session changed the same message just before (unannounced), both changes end in the
/// message's newest MODSEQ; the session must still be told the whole flag state, not skip it as
/// a change it reported itself. (Found by the randomized concurrency test.)
#[tokio::test]
async fn silent_store_does_not_hide_another_sessions_change() {
    let h = start().await;
    let node2 = h.second_node().await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    let mut b = Raw::login(node2, "alice", "wonderland").await;
    append(&mut a, "INBOX", "", SIMPLE).await;
    select(&mut b).await;
    select(&mut a).await;
    for round in 0..5 {
        let (flag, silent_flag) = [("\\Flagged", "\\Seen"), ("\\Answered", "\\Draft")][round % 2];
        ok(&b.cmd(&format!("STORE 1 +FLAGS.SILENT ({flag})")).await);
        let mut told = a
            .cmd(&format!("STORE 1 +FLAGS.SILENT ({silent_flag})"))
            .await;
        ok(&told);
        told.extend(a.cmd("NOOP").await);
        assert!(
            told.iter().any(|l| l.starts_with("* 1 FETCH (")
                && l.contains(flag)
                && l.contains(silent_flag)),
            "round {round}: A was never told of B's {flag}: {told:?}"
        );
        ok(&b.cmd(&format!("STORE 1 -FLAGS.SILENT ({flag})")).await);
        ok(&a.cmd(&format!("STORE 1 -FLAGS ({silent_flag})")).await);
        a.cmd("NOOP").await;
    }
}

#[tokio::test]
async fn expunge_issued_elsewhere() {
    let h = start().await;
    let node2 = h.second_node().await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    let mut b = Raw::login(node2, "alice", "wonderland").await;
    for _ in 0..3 {
        append(&mut a, "INBOX", "", SIMPLE).await;
    }
    // B selects first and so owns \Recent; A's responses carry no \Recent.
    select(&mut b).await;
    select(&mut a).await;
    ok(&b.cmd("STORE 2 +FLAGS.SILENT (\\Deleted)").await);
    ok(&b.cmd("EXPUNGE").await);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let r = a.cmd("FETCH 1:3 (UID)").await;
    assert_eq!(
        r,
        [
            "* 1 FETCH (UID 1)",
            "* 3 FETCH (UID 3)",
            "T NO [EXPUNGEISSUED] Some of the requested messages no longer exist"
        ]
    );
    let r = a.cmd("STORE 2:3 +FLAGS (\\Flagged)").await;
    assert_eq!(r[0], "* 3 FETCH (FLAGS (\\Flagged))", "{r:?}");
    assert!(!has(&r, "EXPUNGE "), "{r:?}");
    // STORE stores what still exists and succeeds (RFC 2180 §4.2.1, as Dovecot): a NO would
    // fail the whole command for the client.
    tagged_starts(&r, "T OK");
    let r = a.cmd("STORE 2 +FLAGS.SILENT (\\Seen)").await;
    tagged_starts(&r, "T OK");
    let r = a.cmd("SEARCH ALL").await;
    assert_eq!(r[0], "* SEARCH 1 3");
    // A UID command ignores UIDs that no longer exist, and may announce the EXPUNGE at once.
    let r = a.cmd("UID FETCH 2 (FLAGS)").await;
    assert_eq!(r, ["* 2 EXPUNGE", "T OK FETCH completed"]);
    let r = a.cmd("NOOP").await;
    assert_eq!(r, ["T OK NOOP completed"]);
    let r = a.cmd("FETCH 1:* (UID)").await;
    assert_eq!(r.len(), 3, "{r:?}");
    ok(&r);
    // B's flag change reached A's next UID command as FETCH with UID (RFC 3501 §6.4.8). A's
    // view knows every flag since its SELECT, so the SEARCH is answered from it after the
    // catch-up: the FETCH comes first, and the result already counts the change.
    ok(&b.cmd("STORE 1 +FLAGS.SILENT (\\Answered)").await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = a.cmd("UID SEARCH ANSWERED").await;
    assert_eq!(r[0], "* 1 FETCH (UID 1 FLAGS (\\Answered))", "{r:?}");
    assert_eq!(r[1], "* SEARCH 1");
}

/// Response codes (RFC 3501 §7.1, RFC 5530, RFC 9051 §7.1) as the server emits them.
#[tokio::test]
async fn response_codes() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    append(&mut c, "INBOX", "", SIMPLE).await;
    let r = c.cmd("SELECT Nope").await;
    tagged_starts(&r, "T NO [NONEXISTENT]");
    let r = c.cmd("CREATE INBOX").await;
    tagged_starts(&r, "T NO [ALREADYEXISTS]");
    let r = c.cmd("DELETE INBOX").await;
    tagged_starts(&r, "T NO [CANNOT]");
    let r = c.cmd("APPEND Nope {1+}\r\nx").await;
    tagged_starts(&r, "T NO [TRYCREATE]");
    let r = select(&mut c).await;
    assert!(has(&r, "* OK [UNSEEN 1]"), "{r:#?}");
    assert!(has(&r, "* OK [UIDVALIDITY "));
    assert!(has(&r, "* OK [UIDNEXT 2]"));
    assert!(has(
        &r,
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)]"
    ));
    tagged_starts(&r, "T OK [READ-WRITE]");
    let r = c.cmd("COPY 1 Nope").await;
    tagged_starts(&r, "T NO [TRYCREATE]");
    let r = c.cmd("MOVE 1 Nope").await;
    tagged_starts(&r, "T NO [TRYCREATE]");
    // A sequence number the client was never told about is its bug.
    let r = c.cmd("FETCH 5 FLAGS").await;
    tagged_starts(&r, "T BAD [CLIENTBUG]");
    let r = c.cmd("COPY 1 INBOX").await;
    tagged_starts(&r, "T OK [COPYUID ");
    let r = c.cmd("EXAMINE INBOX").await;
    assert!(has(&r, "* OK [PERMANENTFLAGS ()]"), "{r:#?}");
    tagged_starts(&r, "T OK [READ-ONLY]");
    let r = c.cmd("STORE 1 +FLAGS (\\Seen)").await;
    tagged_starts(&r, "T NO [READ-ONLY]");
    let r = c.cmd("SEARCH CHARSET ISO-2022-JP ALL").await;
    tagged_starts(&r, "T NO [BADCHARSET (UTF-8 US-ASCII)]");
    // Limits (RFC 9051 §7.1 LIMIT, RFC 7889 TOOBIG).
    let long = "x".repeat(70 * 1024);
    let r = c.cmd(&format!("NOOP {long}")).await;
    assert_eq!(last(&r), "T BAD [LIMIT] line too long");
    let r = c.cmd("APPEND INBOX {999999999999}").await;
    assert_eq!(last(&r), "T BAD [TOOBIG] literal too large");
}

/// Literal forms (RFC 3501 §4.3 synchronizing, RFC 7888 LITERAL+ and LITERAL-, RFC 3516
/// literal8) in command arguments, and the continuation request only for synchronizing ones.
#[tokio::test]
async fn literal_forms() {
    let h = start().await;
    let mut c = Raw::connect(h.addr).await;
    // Synchronizing: `+` before each literal.
    c.send(b"T LOGIN {5}\r\n").await;
    assert!(c.line().await.starts_with("+ "));
    c.send(b"alice {10}\r\n").await;
    assert!(c.line().await.starts_with("+ "));
    c.send(b"wonderland\r\n").await;
    ok(&c.until_tag("T").await);
    // Non-synchronizing (LITERAL+; small enough for LITERAL- too): no continuation.
    c.send(b"T CREATE {4+}\r\nPets\r\n").await;
    ok(&c.until_tag("T").await);
    c.send(b"T STATUS {4+}\r\nPets (MESSAGES)\r\n").await;
    let r = c.until_tag("T").await;
    assert_eq!(r[0], "* STATUS \"Pets\" (MESSAGES 0)");
    // Several literals in one command, mixed.
    c.send(b"T RENAME {4+}\r\nPets {5}\r\n").await;
    assert!(c.line().await.starts_with("+ "));
    c.send(b"Birds\r\n").await;
    ok(&c.until_tag("T").await);
    // literal8 is only for APPEND messages.
    c.send(b"T SELECT ~{5+}\r\nINBOX\r\n").await;
    tagged_starts(&c.until_tag("T").await, "T BAD");
    // A literal larger than allowed is refused before it is sent.
    c.send(b"T CREATE {99999999999}\r\n").await;
    let r = c.until_tag("T").await;
    assert_eq!(r, ["T BAD [TOOBIG] literal too large"]);
    let r = c.cmd("NOOP").await;
    ok(&r);
}
