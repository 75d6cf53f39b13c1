//! SORT (RFC 5256 §3), ESORT (RFC 5267 §3) and THREAD=ORDEREDSUBJECT / THREAD=REFERENCES
//! (RFC 5256 §3, §4) over real TCP against a server on the embedded store: messages are
//! appended with APPEND, so the sort fields come from the index built at delivery.

mod common;

use common::*;

/// From, To, Cc, Subject, Date, Message-ID, References and the body; an empty header value
/// leaves the field out.
type TestMessage = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

/// Every sort key and thread link differs between the messages.
const MESSAGES: &[TestMessage] = &[
    (
        "Carol <carol@example.org>",
        "Zed <zed@example.org>",
        "",
        "Lunch",
        "Mon, 7 Feb 1994 10:00:00 +0000",
        "<m1@example.org>",
        "",
        "short",
    ),
    (
        "alice@example.org",
        "Bob <bob@example.org>",
        "=?UTF-8?Q?Aaron=2C_Zed?= <yan@example.org>",
        "Re: Lunch",
        "Mon, 7 Feb 1994 12:00:00 +0000",
        "<m2@example.org>",
        "<m1@example.org>",
        "a somewhat longer body of text",
    ),
    (
        "\"Bob, the builder\" <bob@example.org>",
        "alice@example.org",
        "",
        "[list] Budget (fwd)",
        // Earliest by UTC although its local time reads later.
        "Mon, 7 Feb 1994 09:00:00 -0500",
        "<m3@example.org>",
        "",
        "the longest body of all the messages in this mailbox, by far",
    ),
    (
        "dave@example.org",
        "carol@example.org",
        "Xena <xena@example.org>",
        "Re: Re: lunch",
        "Mon, 7 Feb 1994 13:00:00 +0000",
        "<m4@example.org>",
        "<m1@example.org> <m2@example.org>",
        "mid",
    ),
    (
        "Erin <erin@example.org>",
        "",
        "",
        "budget",
        // No Date: header: INTERNALDATE (the APPEND date below) is the sent date.
        "",
        "<m5@example.org>",
        "",
        "x",
    ),
];

fn message(i: usize) -> Vec<u8> {
    let (from, to, cc, subject, date, id, refs, body) = MESSAGES[i];
    let mut m = String::new();
    for (name, value) in [
        ("From", from),
        ("To", to),
        ("Cc", cc),
        ("Subject", subject),
        ("Date", date),
        ("Message-ID", id),
        ("References", refs),
    ] {
        if !value.is_empty() {
            m.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    m.push_str(&format!("\r\n{body}\r\n"));
    m.into_bytes()
}

/// The INTERNALDATE each message is appended with: 5's is before every sent date, so DATE puts
/// it first; 1 and 3 arrive at the same second (ARRIVAL falls back to sequence order), and the
/// order of arrival is not the order of UIDs.
const INTERNAL_DATES: [&str; 5] = [
    "10-Feb-1994 00:00:00 +0000",
    "09-Feb-1994 00:00:00 +0000",
    "10-Feb-1994 01:00:00 +0100",
    "11-Feb-1994 00:00:00 +0000",
    "01-Jan-1990 00:00:00 +0000",
];

/// A session with the five messages in INBOX, selected.
async fn mailbox() -> (Harness, Raw) {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    for (i, internal_date) in INTERNAL_DATES.iter().enumerate() {
        let m = message(i);
        let date = format!(" \"{internal_date}\"");
        c.send(format!("A APPEND INBOX (){date} {{{}}}\r\n", m.len()).as_bytes())
            .await;
        let cont = c.line().await;
        assert!(cont.starts_with('+'), "{cont}");
        c.send(&m).await;
        c.send(b"\r\n").await;
        let r = c.until_tag("A").await;
        assert!(last(&r).starts_with("A OK"), "{r:?}");
    }
    let r = c.tagged("S", "SELECT INBOX").await;
    assert!(last(&r).starts_with("S OK"), "{r:?}");
    (h, c)
}

fn untagged<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {lines:#?}"))
}

#[tokio::test]
async fn sort_and_thread_are_advertised() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let r = c.cmd("CAPABILITY").await;
    let caps = untagged(&r, "* CAPABILITY");
    for cap in [
        " SORT",
        " ESORT",
        " THREAD=ORDEREDSUBJECT",
        " THREAD=REFERENCES",
    ] {
        assert!(caps.contains(cap), "{cap} in {caps}");
    }
}

/// RFC 5256 §3: every sort key, REVERSE, ties in mailbox order, SORT and UID SORT.
#[tokio::test]
async fn rfc5256_sort_keys() {
    let (_h, mut c) = mailbox().await;
    for (criteria, want) in [
        // INTERNALDATE (RFC 5256 §3), ties (1 and 3) in sequence order even when reversed.
        ("(ARRIVAL)", "* SORT 5 2 1 3 4"),
        ("(REVERSE ARRIVAL)", "* SORT 4 1 3 2 5"),
        // 5 has no Date: its INTERNALDATE (1990) is first; 3 is 14:00Z, after 1 and 2.
        ("(DATE)", "* SORT 5 1 2 4 3"),
        // Sizes: 153, 252, 229, 222, 83 octets.
        ("(SIZE)", "* SORT 5 1 4 3 2"),
        ("(REVERSE SIZE)", "* SORT 2 3 4 1 5"),
        // Base subjects: LUNCH (1, 2, 4) and BUDGET (3, 5); ties stay in mailbox order.
        ("(SUBJECT)", "* SORT 3 5 1 2 4"),
        ("(SUBJECT REVERSE DATE)", "* SORT 3 5 4 2 1"),
        // First From mailbox: ALICE, BOB, CAROL, DAVE, ERIN.
        ("(FROM)", "* SORT 2 3 1 4 5"),
        // First To mailbox: "" (5), ALICE, BOB, CAROL, ZED.
        ("(TO)", "* SORT 5 3 2 4 1"),
        // Cc: "" for 1, 3, 5 (mailbox order), then XENA, YAN: the mailbox, not 2's display
        // name, which decodes to "Aaron, Zed" with a bare comma.
        ("(CC)", "* SORT 1 3 5 4 2"),
        ("(CC REVERSE ARRIVAL)", "* SORT 1 3 5 4 2"),
    ] {
        let r = c.cmd(&format!("SORT {criteria} UTF-8 ALL")).await;
        assert_eq!(untagged(&r, "* SORT"), want, "{criteria}: {r:#?}");
        assert!(last(&r).starts_with("T OK"), "{r:?}");
    }
    // The search criteria restrict what is sorted.
    let r = c.cmd("SORT (DATE) US-ASCII SUBJECT lunch").await;
    assert_eq!(untagged(&r, "* SORT"), "* SORT 1 2 4");
    let r = c.cmd("SORT (DATE) UTF-8 2:4 NOT FROM dave").await;
    assert_eq!(untagged(&r, "* SORT"), "* SORT 2 3");
    let r = c.cmd("SORT (DATE) UTF-8 SUBJECT nothing-matches").await;
    assert_eq!(untagged(&r, "* SORT"), "* SORT");
    // UID SORT answers UIDs; after an expunge they differ from sequence numbers.
    let r = c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    let r = c.cmd("EXPUNGE").await;
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    let r = c.cmd("UID SORT (REVERSE SIZE) UTF-8 ALL").await;
    assert_eq!(untagged(&r, "* SORT"), "* SORT 2 3 4 5");
    let r = c.cmd("SORT (REVERSE DATE) UTF-8 ALL").await;
    assert_eq!(untagged(&r, "* SORT"), "* SORT 2 3 1 4");
    let r = c.cmd("UID SORT (REVERSE DATE) UTF-8 ALL").await;
    assert_eq!(untagged(&r, "* SORT"), "* SORT 3 4 2 5");
}

/// RFC 5256 §3: an unknown charset is `NO [BADCHARSET]`, a malformed command BAD, and SORT
/// needs a selected mailbox.
#[tokio::test]
async fn rfc5256_sort_errors() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    let r = c.cmd("SORT (DATE) UTF-8 ALL").await;
    assert!(last(&r).starts_with("T BAD"), "{r:?}");
    let r = c.tagged("S", "SELECT INBOX").await;
    assert!(last(&r).starts_with("S OK"), "{r:?}");
    let r = c.cmd("SORT (DATE) KOI8-R ALL").await;
    assert!(
        last(&r).starts_with("T NO [BADCHARSET (UTF-8 US-ASCII)]"),
        "{r:?}"
    );
    let r = c.cmd("THREAD REFERENCES ISO-8859-1 ALL").await;
    assert!(last(&r).starts_with("T NO [BADCHARSET"), "{r:?}");
    for bad in [
        "SORT DATE UTF-8 ALL",
        "SORT (DATE) ALL",
        "SORT (WEIGHT) UTF-8 ALL",
        "THREAD THREADLESS UTF-8 ALL",
    ] {
        let r = c.cmd(bad).await;
        assert!(last(&r).starts_with("T BAD"), "{bad}: {r:?}");
    }
}

/// RFC 5267 §3: SORT with RETURN answers ESEARCH (not SORT, not a made-up ESORT response);
/// MIN / MAX are the first and last in sort order, ALL lists the messages in sort order.
#[tokio::test]
async fn rfc5267_esort() {
    let (_h, mut c) = mailbox().await;
    let r = c
        .tagged("E1", "SORT RETURN (MIN MAX COUNT ALL) (DATE) UTF-8 ALL")
        .await;
    assert_eq!(
        untagged(&r, "* ESEARCH"),
        "* ESEARCH (TAG \"E1\") MIN 5 MAX 3 COUNT 5 ALL 5,1:2,4,3"
    );
    assert!(!r.iter().any(|l| l.starts_with("* SORT")), "{r:?}");
    let r = c
        .tagged("E2", "UID SORT RETURN (COUNT) (SIZE) UTF-8 ALL")
        .await;
    assert_eq!(
        untagged(&r, "* ESEARCH"),
        "* ESEARCH (TAG \"E2\") UID COUNT 5"
    );
    let r = c.tagged("E3", "SORT RETURN () (ARRIVAL) UTF-8 ALL").await;
    assert_eq!(
        untagged(&r, "* ESEARCH"),
        "* ESEARCH (TAG \"E3\") ALL 5,2,1,3:4"
    );
    let r = c
        .tagged("E4", "SORT RETURN (MIN COUNT) (DATE) UTF-8 SUBJECT absent")
        .await;
    assert_eq!(untagged(&r, "* ESEARCH"), "* ESEARCH (TAG \"E4\") COUNT 0");
    let r = c
        .tagged("E5", "UID SORT RETURN (MIN MAX) (REVERSE SIZE) UTF-8 ALL")
        .await;
    assert_eq!(
        untagged(&r, "* ESEARCH"),
        "* ESEARCH (TAG \"E5\") UID MIN 2 MAX 5"
    );
}

/// RFC 5256 §3 ORDEREDSUBJECT: grouped by base subject, threads ordered by their first
/// message's sent date, the first message the parent of the rest.
#[tokio::test]
async fn rfc5256_thread_orderedsubject() {
    let (_h, mut c) = mailbox().await;
    // BUDGET: 5 (1990) then 3; LUNCH: 1, 2, 4 by date. Thread BUDGET starts first.
    let r = c.cmd("THREAD ORDEREDSUBJECT UTF-8 ALL").await;
    assert_eq!(untagged(&r, "* THREAD"), "* THREAD (5 3)(1 (2)(4))");
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    let r = c
        .cmd("THREAD ORDEREDSUBJECT UTF-8 NOT SUBJECT budget")
        .await;
    assert_eq!(untagged(&r, "* THREAD"), "* THREAD (1 (2)(4))");
    let r = c.cmd("THREAD ORDEREDSUBJECT UTF-8 SUBJECT absent").await;
    assert_eq!(untagged(&r, "* THREAD"), "* THREAD");
}

/// RFC 5256 §4 REFERENCES: reply chains from References, subjects gathered, UID THREAD.
#[tokio::test]
async fn rfc5256_thread_references() {
    let (_h, mut c) = mailbox().await;
    // 2 replies to 1, 4 to 2 (its References chain); 5 and 3 share the base subject BUDGET,
    // neither is a reply... but 3's "(fwd)" makes it one, so it becomes 5's child.
    let r = c.cmd("THREAD REFERENCES UTF-8 ALL").await;
    assert_eq!(untagged(&r, "* THREAD"), "* THREAD (5 3)(1 2 4)");
    // Without 2, 4 still hangs under 1 through its References.
    let r = c.cmd("THREAD REFERENCES UTF-8 NOT 2").await;
    assert_eq!(untagged(&r, "* THREAD"), "* THREAD (5 3)(1 4)");
    let r = c.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    let r = c.cmd("EXPUNGE").await;
    assert!(last(&r).starts_with("T OK"), "{r:?}");
    // 1 is gone: its dummy keeps 2 and 4 together; UIDs are reported.
    let r = c.cmd("UID THREAD REFERENCES UTF-8 ALL").await;
    assert_eq!(untagged(&r, "* THREAD"), "* THREAD (5 3)(2 4)");
    let r = c.cmd("THREAD REFERENCES UTF-8 ALL").await;
    assert_eq!(untagged(&r, "* THREAD"), "* THREAD (4 2)(1 3)");
}
