//! CONDSTORE and QRESYNC (RFC 7162), OBJECTID (RFC 8474), APPENDLIMIT (RFC 7889) and STATUS
//! RECENT over the wire: real TCP, the exact response lines, and multi-session, multi-node
//! scenarios (two front-end nodes on one store) for what other sessions change.
//! `docs/compliance.md` maps the RFC sections to these tests.

mod common;

use common::*;
use std::time::Duration;

const MSG: &[u8] = b"From: Alice <alice@example.org>\r\n\
To: Bob <bob@example.org>\r\n\
Subject: Modseq\r\n\
\r\n\
Body\r\n";

fn has(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

fn ok(lines: &[String]) {
    assert!(last(lines).starts_with("T OK"), "{lines:#?}");
}

fn tagged_starts(lines: &[String], prefix: &str) {
    assert!(last(lines).starts_with(prefix), "{lines:#?}");
}

/// The number after `name ` in the first line that has it, e.g. `HIGHESTMODSEQ 7` or
/// `MODSEQ (7)`.
fn number_after(lines: &[String], name: &str) -> u64 {
    let key = format!("{name} ");
    for l in lines {
        if let Some(i) = l.find(&key) {
            let digits: String = l[i + key.len()..]
                .trim_start_matches('(')
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            return digits.parse().expect("number");
        }
    }
    panic!("no {name} in {lines:#?}")
}

async fn fill(c: &mut Raw, n: usize) {
    for _ in 0..n {
        let r = append(c, "INBOX", "", MSG).await;
        assert!(r.starts_with("A OK"), "{r}");
    }
}

/// Lets hints travel to the other node's session (its next command asks the store anyway; the
/// pause only keeps the test about one thing at a time).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// RFC 7162 §3.1.1, §3.2.3, RFC 5161, RFC 7889 §2, RFC 8474 §3: advertised capabilities;
/// ENABLE CONDSTORE / QRESYNC list only what they newly enable (QRESYNC implies CONDSTORE).
#[tokio::test]
async fn capabilities_and_enable() {
    let h = start().await;
    let mut c = Raw::connect(h.addr).await;
    for cap in [" CONDSTORE ", " QRESYNC ", " OBJECTID"] {
        assert!(c.greeting.contains(cap), "{cap} in {}", c.greeting);
    }
    let limit = yubin_imap_proto::Limits::default().max_literal;
    assert!(
        c.greeting.contains(&format!(" APPENDLIMIT={limit}")),
        "{}",
        c.greeting
    );
    assert!(!c.greeting.contains("UTF8=ACCEPT"));
    let r = c.cmd("LOGIN alice wonderland").await;
    ok(&r);
    let r = c.cmd("ENABLE QRESYNC").await;
    assert_eq!(r, ["* ENABLED QRESYNC", "T OK ENABLE completed"]);
    let r = c.cmd("ENABLE CONDSTORE QRESYNC").await;
    assert_eq!(r, ["* ENABLED", "T OK ENABLE completed"]);
    let mut d = Raw::login(h.addr, "alice", "wonderland").await;
    let r = d.cmd("ENABLE CONDSTORE QRESYNC").await;
    assert_eq!(r, ["* ENABLED CONDSTORE QRESYNC", "T OK ENABLE completed"]);
}

/// RFC 7162 §3.1.2.1, §3.1.4, §3.1.6–3.1.8, RFC 8474 §4: SELECT reports HIGHESTMODSEQ and
/// MAILBOXID; STATUS HIGHESTMODSEQ / MAILBOXID / APPENDLIMIT; FETCH MODSEQ and CHANGEDSINCE;
/// before CONDSTORE is enabled flag changes carry no MODSEQ, after its first use they do (from
/// this session's STORE and from another node's).
#[tokio::test]
async fn condstore_fetch_status_and_enabling_by_use() {
    let h = start().await;
    let node2 = h.second_node().await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    fill(&mut a, 3).await;
    let r = a
        .cmd("STATUS INBOX (HIGHESTMODSEQ MAILBOXID APPENDLIMIT MESSAGES)")
        .await;
    ok(&r);
    let highest = number_after(&r, "HIGHESTMODSEQ");
    let limit = yubin_imap_proto::Limits::default().max_literal;
    assert!(
        r[0].starts_with("* STATUS \"INBOX\" (HIGHESTMODSEQ "),
        "{r:?}"
    );
    assert!(r[0].contains(&format!(" APPENDLIMIT {limit} MESSAGES 3)")));
    let status_id = r[0]
        .split("MAILBOXID (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .expect("mailbox id")
        .to_string();

    // A plain SELECT already reports both (RFC 7162 §3.1.2.1, RFC 8474 §4.2).
    let mut b = Raw::login(node2, "alice", "wonderland").await;
    let r = b.cmd("SELECT INBOX").await;
    ok(&r);
    assert!(
        has(&r, &format!("* OK [HIGHESTMODSEQ {highest}]")),
        "{r:#?}"
    );
    assert!(
        has(&r, &format!("* OK [MAILBOXID ({status_id})]")),
        "{r:#?}"
    );
    // B has not enabled CONDSTORE: its STORE answers FLAGS alone.
    let r = b.cmd("STORE 1 +FLAGS (\\Flagged)").await;
    assert_eq!(r[0], "* 1 FETCH (FLAGS (\\Flagged \\Recent))", "{r:?}");
    // FETCH MODSEQ is a CONDSTORE enabling command.
    let r = b.cmd("FETCH 1:3 (MODSEQ)").await;
    ok(&r);
    let m1 = number_after(&r[..1], "MODSEQ");
    assert!(m1 > highest, "{r:?}");
    assert!(r[1].starts_with("* 2 FETCH (MODSEQ ("), "{r:?}");
    let r = b.cmd("STORE 2 +FLAGS (\\Answered)").await;
    let m2 = number_after(&r, "MODSEQ");
    assert_eq!(
        r[0],
        format!("* 2 FETCH (FLAGS (\\Answered \\Recent) MODSEQ ({m2}))")
    );
    assert!(m2 > m1);

    // CHANGEDSINCE: only messages changed after the value, MODSEQ implied.
    let r = b
        .cmd(&format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {m1})"))
        .await;
    assert_eq!(
        r,
        [
            format!("* 2 FETCH (FLAGS (\\Answered \\Recent) MODSEQ ({m2}))"),
            "T OK FETCH completed".to_string()
        ]
    );
    let r = b
        .cmd(&format!("UID FETCH 1:* (FLAGS) (CHANGEDSINCE {highest})"))
        .await;
    assert_eq!(r.len(), 3, "{r:?}");
    assert!(r[0].starts_with("* 1 FETCH (UID 1 FLAGS"), "{r:?}");

    // A on the other node selects with (CONDSTORE) and sees B's later changes with MODSEQ; a
    // non-peek BODY fetch that sets \Seen reports the new MODSEQ too.
    let r = a.cmd("SELECT INBOX (CONDSTORE)").await;
    ok(&r);
    assert!(has(&r, &format!("* OK [HIGHESTMODSEQ {m2}]")), "{r:#?}");
    let r = b.cmd("STORE 3 +FLAGS.SILENT (\\Draft)").await;
    let m3 = number_after(&r, "MODSEQ");
    // .SILENT under CONDSTORE still reports the new MODSEQ (RFC 7162 §3.1.3).
    assert_eq!(
        r,
        [
            format!("* 3 FETCH (MODSEQ ({m3}))"),
            "T OK STORE completed".into()
        ]
    );
    settle().await;
    let r = a.cmd("NOOP").await;
    assert_eq!(
        r,
        [
            format!("* 3 FETCH (FLAGS (\\Draft) MODSEQ ({m3}))"),
            "T OK NOOP completed".to_string()
        ]
    );
    let r = a.cmd("FETCH 1 (BODY[TEXT])").await;
    ok(&r);
    let m4 = number_after(&r, "MODSEQ");
    assert!(m4 > m3, "{r:?}");
    assert!(
        r[0].ends_with(&format!("FLAGS (\\Flagged \\Seen) MODSEQ ({m4}))")),
        "{r:?}"
    );
    // EXAMINE: the same HIGHESTMODSEQ, MODSEQ fetchable, nothing writable.
    let r = a.cmd("EXAMINE INBOX").await;
    assert!(has(&r, &format!("* OK [HIGHESTMODSEQ {m4}]")), "{r:#?}");
    let r = a.cmd("FETCH 3 (MODSEQ UID)").await;
    assert_eq!(r[0], format!("* 3 FETCH (MODSEQ ({m3}) UID 3)"));
}

/// RFC 7162 §3.1.3: STORE / UID STORE UNCHANGEDSINCE leave messages changed after the value
/// alone and name them in `[MODIFIED ...]` (sequence numbers, or UIDs for UID STORE); 0 fails
/// every message; the others are stored and reported with their new MODSEQ.
#[tokio::test]
async fn store_unchangedsince_reports_modified() {
    let h = start().await;
    let node2 = h.second_node().await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    fill(&mut a, 4).await;
    let r = a.cmd("SELECT INBOX").await;
    let base = number_after(&r, "HIGHESTMODSEQ");
    // Another session on another node changes messages 2 and 4 after `base`.
    let mut b = Raw::login(node2, "alice", "wonderland").await;
    ok(&b.cmd("SELECT INBOX").await);
    ok(&b.cmd("STORE 2,4 +FLAGS.SILENT ($Work)").await);
    settle().await;

    let r = a
        .cmd(&format!(
            "STORE 1:4 (UNCHANGEDSINCE {base}) +FLAGS.SILENT (\\Deleted)"
        ))
        .await;
    // The command enabled CONDSTORE: the catch-up after it reports B's changes with MODSEQ.
    let stored: Vec<&String> = r
        .iter()
        .filter(|l| l.ends_with("))") && !l.contains("FLAGS"))
        .collect();
    assert_eq!(stored.len(), 2, "{r:#?}");
    assert!(stored[0].starts_with("* 1 FETCH (MODSEQ ("), "{r:#?}");
    assert!(stored[1].starts_with("* 3 FETCH (MODSEQ ("), "{r:#?}");
    assert_eq!(last(&r), "T OK [MODIFIED 2,4] Conditional STORE failed");
    assert!(
        has(&r, "* 2 FETCH (FLAGS ($Work \\Recent) MODSEQ ("),
        "{r:#?}"
    );
    let r = a.cmd("FETCH 1:4 (FLAGS)").await;
    assert_eq!(r[0], "* 1 FETCH (FLAGS (\\Deleted \\Recent))");
    assert_eq!(r[1], "* 2 FETCH (FLAGS ($Work \\Recent))");

    // UID STORE names UIDs; a non-silent conditional STORE reports FLAGS and MODSEQ.
    let now = number_after(
        &a.cmd("STATUS INBOX (HIGHESTMODSEQ)").await,
        "HIGHESTMODSEQ",
    );
    ok(&b.cmd("STORE 4 +FLAGS.SILENT (\\Answered)").await);
    settle().await;
    let r = a
        .cmd(&format!(
            "UID STORE 3:4 (UNCHANGEDSINCE {now}) -FLAGS (\\Deleted)"
        ))
        .await;
    assert_eq!(
        last(&r),
        "T OK [MODIFIED 4] Conditional STORE failed",
        "{r:#?}"
    );
    assert!(
        has(&r, "* 3 FETCH (UID 3 FLAGS (\\Recent) MODSEQ ("),
        "{r:#?}"
    );
    // UNCHANGEDSINCE 0: every message has a MODSEQ above 0.
    let r = a.cmd("STORE 1,2 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)").await;
    assert_eq!(r, ["T OK [MODIFIED 1:2] Conditional STORE failed"]);
}

/// RFC 7162 §3.1.5, §3.1.6, RFC 4731 §3.2: SEARCH MODSEQ matches messages with a MODSEQ at
/// least the value and reports the highest MODSEQ of the result; ESEARCH carries it as a
/// result item (MIN/MAX alone: of those messages); no match, no MODSEQ.
#[tokio::test]
async fn search_modseq() {
    let h = start().await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    fill(&mut a, 4).await;
    let r = a.cmd("SELECT INBOX").await;
    let base = number_after(&r, "HIGHESTMODSEQ");
    let r = a.cmd("STORE 2 +FLAGS (\\Seen)").await;
    assert_eq!(r[0], "* 2 FETCH (FLAGS (\\Seen \\Recent))");
    let m2 = number_after(&a.cmd("FETCH 2 (MODSEQ)").await, "MODSEQ");
    let r = a.cmd("STORE 4 +FLAGS (\\Flagged)").await;
    let m4 = number_after(&r, "MODSEQ");
    let after = base + 1;
    let r = a.cmd(&format!("SEARCH MODSEQ {after}")).await;
    assert_eq!(r[0], format!("* SEARCH 2 4 (MODSEQ {m4})"));
    let r = a
        .cmd(&format!(
            "UID SEARCH MODSEQ \"/flags/\\\\Seen\" all {after} SEEN"
        ))
        .await;
    assert_eq!(r[0], format!("* SEARCH 2 (MODSEQ {m2})"));
    let r = a.cmd(&format!("SEARCH MODSEQ {}", m4 + 1)).await;
    assert_eq!(r[0], "* SEARCH");
    let r = a.cmd(&format!("SEARCH RETURN (MIN) MODSEQ {after}")).await;
    assert_eq!(r[0], format!("* ESEARCH (TAG \"T\") MIN 2 MODSEQ {m2}"));
    let r = a
        .cmd(&format!(
            "UID SEARCH RETURN (ALL COUNT) OR MODSEQ {after} 1"
        ))
        .await;
    assert_eq!(
        r[0],
        format!("* ESEARCH (TAG \"T\") UID ALL 1:2,4 COUNT 3 MODSEQ {m4}")
    );
}

/// RFC 7162 §3.2.5, §3.2.6, §3.2.10, §3.2.11 across two nodes: a client that left with a
/// HIGHESTMODSEQ comes back with SELECT (QRESYNC ...) and learns what was expunged as
/// `VANISHED (EARLIER)` and what changed as FETCH, limited to its known UIDs; UID FETCH
/// (CHANGEDSINCE .. VANISHED) does the same for a UID range; the QRESYNC parameter needs
/// ENABLE QRESYNC, and a different UIDVALIDITY makes it a plain SELECT.
#[tokio::test]
async fn qresync_select_and_vanished_fetch() {
    let h = start().await;
    let node2 = h.second_node().await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    fill(&mut a, 6).await;
    let r = a.cmd("SELECT INBOX").await;
    let uidvalidity = number_after(&r, "UIDVALIDITY");
    let known = number_after(&r, "HIGHESTMODSEQ");
    ok(&a.cmd("LOGOUT").await);

    // Meanwhile, on the other node: 2 and 5 expunged, 3 flagged, one more message arrives.
    let mut b = Raw::login(node2, "alice", "wonderland").await;
    ok(&b.cmd("SELECT INBOX").await);
    ok(&b.cmd("STORE 2,5 +FLAGS.SILENT (\\Deleted)").await);
    ok(&b.cmd("EXPUNGE").await);
    ok(&b.cmd("STORE 2 +FLAGS.SILENT (\\Flagged)").await);
    fill(&mut b, 1).await;

    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    let r = a
        .cmd(&format!("SELECT INBOX (QRESYNC ({uidvalidity} {known}))"))
        .await;
    tagged_starts(&r, "T BAD");
    ok(&a.cmd("ENABLE QRESYNC").await);
    let r = a
        .cmd(&format!("SELECT INBOX (QRESYNC ({uidvalidity} {known}))"))
        .await;
    ok(&r);
    let i = r
        .iter()
        .position(|l| l.starts_with("* OK [MAILBOXID"))
        .expect("MAILBOXID");
    assert_eq!(r[i + 1], "* VANISHED (EARLIER) 2,5", "{r:#?}");
    assert!(
        r[i + 2].starts_with("* 2 FETCH (UID 3 FLAGS (\\Flagged) MODSEQ ("),
        "{r:#?}"
    );
    // The message that arrived meanwhile is in EXISTS and changed since the client's MODSEQ.
    assert!(has(&r, "* 5 EXISTS"), "{r:#?}");
    assert!(
        r[i + 3].starts_with("* 5 FETCH (UID 7 FLAGS () MODSEQ ("),
        "{r:#?}"
    );
    assert_eq!(r.len(), i + 5, "{r:#?}");
    // Known UIDs limit both parts; a stale UIDVALIDITY turns the parameter off.
    let r = a
        .cmd(&format!(
            "SELECT INBOX (QRESYNC ({uidvalidity} {known} 4:6))"
        ))
        .await;
    assert_eq!(r[0], "* OK [CLOSED] Previous mailbox is now closed");
    assert!(has(&r, "* VANISHED (EARLIER) 5"), "{r:#?}");
    assert!(!has(&r, "FETCH"), "{r:#?}");
    let r = a
        .cmd(&format!(
            "SELECT INBOX (QRESYNC ({} {known} 1:6 (1:3 1:3)))",
            uidvalidity + 1
        ))
        .await;
    assert!(!has(&r, "VANISHED") && !has(&r, "FETCH"), "{r:#?}");
    ok(&r);

    // UID FETCH with VANISHED: expunged UIDs of the range after the MODSEQ, then the changes.
    let r = a
        .cmd(&format!(
            "UID FETCH 3:* (FLAGS) (CHANGEDSINCE {known} VANISHED)"
        ))
        .await;
    assert_eq!(r[0], "* VANISHED (EARLIER) 5", "{r:#?}");
    assert!(
        r[1].starts_with("* 2 FETCH (UID 3 FLAGS (\\Flagged) MODSEQ ("),
        "{r:#?}"
    );
    assert!(
        r[2].starts_with("* 5 FETCH (UID 7 FLAGS () MODSEQ ("),
        "{r:#?}"
    );
    ok(&r);
    // Without QRESYNC enabled the VANISHED modifier is refused.
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    ok(&c.cmd("SELECT INBOX").await);
    let r = c
        .cmd(&format!(
            "UID FETCH 1:* (FLAGS) (CHANGEDSINCE {known} VANISHED)"
        ))
        .await;
    tagged_starts(&r, "T BAD");
}

/// RFC 7162 §3.2.10 and RFC 3501 §7.4.1 across nodes: once QRESYNC is enabled, expunges
/// (another session's, and this session's own EXPUNGE, UID EXPUNGE and MOVE) are announced as
/// `* VANISHED uids`, never `* n EXPUNGE`, and never during FETCH, STORE or SEARCH by
/// sequence number; EXPUNGE's tagged OK carries the new HIGHESTMODSEQ.
#[tokio::test]
async fn qresync_vanished_replaces_expunge() {
    let h = start().await;
    let node2 = h.second_node().await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    fill(&mut a, 6).await;
    ok(&a.cmd("CREATE Archive").await);
    ok(&a.cmd("ENABLE QRESYNC").await);
    ok(&a.cmd("SELECT INBOX").await);
    let mut b = Raw::login(node2, "alice", "wonderland").await;
    ok(&b.cmd("SELECT INBOX").await);
    ok(&b.cmd("STORE 1:2 +FLAGS.SILENT (\\Deleted)").await);
    ok(&b.cmd("EXPUNGE").await);
    ok(&b.cmd("UID STORE 3 +FLAGS.SILENT (\\Flagged)").await);
    settle().await;

    // A FETCH by sequence number may not announce the expunge, and with CONDSTORE on it holds
    // back the flag change that came after it too.
    let r = a.cmd("FETCH 3 (UID)").await;
    assert_eq!(r, ["* 3 FETCH (UID 3)", "T OK FETCH completed"]);
    let r = a.cmd("NOOP").await;
    assert_eq!(r[0], "* VANISHED 1:2", "{r:#?}");
    assert!(
        r[1].starts_with("* 1 FETCH (UID 3 FLAGS (\\Flagged \\Recent) MODSEQ ("),
        "{r:#?}"
    );
    assert!(!has(&r, "EXPUNGE"), "{r:#?}");
    ok(&r);

    // A's own EXPUNGE.
    ok(&a.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)").await);
    let r = a.cmd("EXPUNGE").await;
    assert_eq!(r[0], "* VANISHED 3");
    let highest = number_after(&r, "HIGHESTMODSEQ");
    assert_eq!(
        last(&r),
        format!("T OK [HIGHESTMODSEQ {highest}] EXPUNGE completed")
    );
    let r = a.cmd("STATUS INBOX (HIGHESTMODSEQ MESSAGES)").await;
    assert_eq!(
        r[0],
        format!("* STATUS \"INBOX\" (HIGHESTMODSEQ {highest} MESSAGES 3)")
    );
    // UID EXPUNGE and MOVE.
    ok(&a.cmd("UID STORE 4:5 +FLAGS.SILENT (\\Deleted)").await);
    let r = a.cmd("UID EXPUNGE 4").await;
    assert_eq!(r[0], "* VANISHED 4");
    tagged_starts(&r, "T OK [HIGHESTMODSEQ ");
    let r = a.cmd("UID MOVE 5 Archive").await;
    assert!(r[0].starts_with("* OK [COPYUID "), "{r:#?}");
    assert_eq!(r[1], "* VANISHED 5");
    ok(&r);
    let r = a.cmd("FETCH 1:* (UID)").await;
    assert_eq!(r, ["* 1 FETCH (UID 6)", "T OK FETCH completed"]);
    // B, without QRESYNC, still gets classic EXPUNGE responses.
    let r = b.cmd("NOOP").await;
    assert!(has(&r, "* 1 EXPUNGE") && !has(&r, "VANISHED"), "{r:#?}");
    // SELECT after SELECT under QRESYNC says CLOSED (RFC 7162 §3.2.11).
    let r = a.cmd("EXAMINE Archive").await;
    assert_eq!(r[0], "* OK [CLOSED] Previous mailbox is now closed");
}

/// RFC 3501 §6.3.10 (STATUS RECENT), RFC 8474 §4–5 (MAILBOXID from CREATE, kept by RENAME;
/// EMAILID shared by a COPY; THREADID NIL) across nodes; `[CLOSED]` in a rev1 session.
#[tokio::test]
async fn status_recent_and_object_ids() {
    let h = start().await;
    let node2 = h.second_node().await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    fill(&mut a, 2).await;
    let r = a.cmd("STATUS INBOX (RECENT MESSAGES)").await;
    assert_eq!(r[0], "* STATUS \"INBOX\" (RECENT 2 MESSAGES 2)");
    // EXAMINE claims nothing; a SELECT on the other node claims both.
    ok(&a.cmd("EXAMINE INBOX").await);
    let r = a.cmd("STATUS INBOX (RECENT)").await;
    assert_eq!(r[0], "* STATUS \"INBOX\" (RECENT 2)");
    let mut b = Raw::login(node2, "alice", "wonderland").await;
    let r = b.cmd("SELECT INBOX").await;
    assert!(has(&r, "* 2 RECENT"), "{r:#?}");
    let r = a.cmd("STATUS INBOX (RECENT)").await;
    assert_eq!(r[0], "* STATUS \"INBOX\" (RECENT 0)");
    fill(&mut a, 1).await;
    let r = a.cmd("STATUS INBOX (RECENT MESSAGES)").await;
    assert_eq!(r[0], "* STATUS \"INBOX\" (RECENT 1 MESSAGES 3)");

    let r = a.cmd("CREATE Projects").await;
    let created = last(&r)
        .strip_prefix("T OK [MAILBOXID (")
        .and_then(|s| s.split(')').next())
        .expect("MAILBOXID in CREATE's OK")
        .to_string();
    assert!(
        created
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "{created}"
    );
    ok(&a.cmd("RENAME Projects Work").await);
    let r = a.cmd("STATUS Work (MAILBOXID)").await;
    assert_eq!(r[0], format!("* STATUS \"Work\" (MAILBOXID ({created}))"));
    let r = a.cmd("STATUS INBOX (MAILBOXID)").await;
    assert!(!r[0].contains(&created), "{r:?}");
    ok(&a.cmd("DELETE Work").await);
    let r = a.cmd("CREATE Work").await;
    assert!(!last(&r).contains(&created), "{r:?}");

    // Still EXAMINEd from above: a rev1 session without QRESYNC is told of the close too.
    let r = a.cmd("SELECT INBOX").await;
    assert_eq!(r[0], "* OK [CLOSED] Previous mailbox is now closed");
    ok(&r);
    let r = a.cmd("FETCH 1 (EMAILID THREADID)").await;
    let email = r[0]
        .split("EMAILID (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .expect("EMAILID")
        .to_string();
    assert!(r[0].ends_with(" THREADID NIL)"), "{r:?}");
    assert!(email.chars().all(|c| c.is_ascii_alphanumeric()), "{email}");
    ok(&a.cmd("COPY 1 Work").await);
    ok(&a.cmd("SELECT Work").await);
    let r = a.cmd("UID FETCH 1 (EMAILID)").await;
    assert_eq!(r[0], format!("* 1 FETCH (UID 1 EMAILID ({email}))"));
}

/// A client's QRESYNC MODSEQ above the mailbox's HIGHESTMODSEQ under the same UIDVALIDITY means
/// the store lost writes the client saw (a Redis failover to a replica that missed them): the
/// SELECT fails as unavailable, the mailbox moves to a new UIDVALIDITY, and selecting again
/// shows the new one, so the client resynchronizes in full instead of trusting cached UIDs.
#[tokio::test]
async fn qresync_modseq_ahead_of_the_server_moves_the_mailbox() {
    let h = start().await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    fill(&mut a, 2).await;
    ok(&a.cmd("ENABLE QRESYNC").await);
    let r = a.cmd("SELECT INBOX").await;
    let uidvalidity = number_after(&r, "UIDVALIDITY");
    let highest = number_after(&r, "HIGHESTMODSEQ");
    let r = a
        .cmd(&format!(
            "SELECT INBOX (QRESYNC ({uidvalidity} {}))",
            highest + 10
        ))
        .await;
    tagged_starts(&r, "T NO [UNAVAILABLE]");
    let r = a.cmd("SELECT INBOX").await;
    ok(&r);
    let moved = number_after(&r, "UIDVALIDITY");
    assert!(
        moved > uidvalidity,
        "new UIDVALIDITY {moved} > {uidvalidity}"
    );
    assert!(has(&r, "* 2 EXISTS"), "the messages stay: {r:#?}");
    // With the new UIDVALIDITY the old MODSEQ is just ignored (RFC 7162 §3.2.5).
    let r = a
        .cmd(&format!(
            "SELECT INBOX (QRESYNC ({uidvalidity} {}))",
            highest + 10
        ))
        .await;
    ok(&r);
}

/// Expunges `uids` (a UID set) in the selected mailbox with UID EXPUNGE; returns the response
/// lines (tagged OK with the new HIGHESTMODSEQ last).
async fn uid_expunge(c: &mut Raw, uids: &str) -> Vec<String> {
    ok(&c
        .cmd(&format!("UID STORE {uids} +FLAGS.SILENT (\\Deleted)"))
        .await);
    let r = c.cmd(&format!("UID EXPUNGE {uids}")).await;
    tagged_starts(&r, "T OK [HIGHESTMODSEQ ");
    r
}

/// RFC 7162 §3.2.5.2 and §3.2.10 with a capped expunge log (`max_expunge_log` 16): a QRESYNC
/// SELECT or UID FETCH (CHANGEDSINCE .. VANISHED) from a MODSEQ older than the entries the store
/// dropped gets every UID below UIDNEXT that is not in the mailbox (a superset: here it includes
/// UID 26, expunged before that MODSEQ), limited to the known UIDs; from the newest dropped
/// MODSEQ on the answer is exact. A session whose view fell below the floor is caught up by
/// comparing UIDs instead of being disconnected.
#[tokio::test]
async fn qresync_from_below_the_trimmed_expunge_log() {
    let h = start_with(Options {
        store_limits: yubin_meta_store::StoreLimits {
            max_expunge_log: 16,
            ..yubin_meta_store::StoreLimits::default()
        },
        ..Options::default()
    })
    .await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    fill(&mut a, 40).await;
    ok(&a.cmd("ENABLE QRESYNC").await);
    let r = a.cmd("SELECT INBOX").await;
    let uidvalidity = number_after(&r, "UIDVALIDITY");
    let r = uid_expunge(&mut a, "26").await;
    let before = number_after(&r, "HIGHESTMODSEQ");
    // An idle session whose view stays at `before`.
    let mut idle = Raw::login(h.addr, "alice", "wonderland").await;
    ok(&idle.cmd("ENABLE QRESYNC").await);
    ok(&idle.cmd("SELECT INBOX").await);

    uid_expunge(&mut a, "1:5").await;
    // 6 + 20 entries: the 10 oldest go, the newest of them at this EXPUNGE's MODSEQ.
    let r = uid_expunge(&mut a, "6:25").await;
    assert_eq!(r[0], "* VANISHED 6:25", "{r:#?}");
    let floor = number_after(&r, "HIGHESTMODSEQ");
    uid_expunge(&mut a, "30").await;
    uid_expunge(&mut a, "31").await;

    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    ok(&c.cmd("ENABLE QRESYNC").await);
    let r = c
        .cmd(&format!("SELECT INBOX (QRESYNC ({uidvalidity} {before}))"))
        .await;
    ok(&r);
    assert!(has(&r, "* VANISHED (EARLIER) 1:26,30:31"), "{r:#?}");
    let r = c
        .cmd(&format!(
            "SELECT INBOX (QRESYNC ({uidvalidity} {before} 20:40))"
        ))
        .await;
    assert!(has(&r, "* VANISHED (EARLIER) 20:26,30:31"), "{r:#?}");
    let r = c
        .cmd(&format!("SELECT INBOX (QRESYNC ({uidvalidity} {floor}))"))
        .await;
    assert!(has(&r, "* VANISHED (EARLIER) 30:31"), "{r:#?}");
    assert_eq!(
        r.iter().filter(|l| l.contains("VANISHED")).count(),
        1,
        "{r:#?}"
    );
    let r = c
        .cmd(&format!(
            "UID FETCH 1:40 (FLAGS) (CHANGEDSINCE {before} VANISHED)"
        ))
        .await;
    assert_eq!(r[0], "* VANISHED (EARLIER) 1:26,30:31", "{r:#?}");
    ok(&r);
    let r = c
        .cmd(&format!(
            "UID FETCH 1:40 (FLAGS) (CHANGEDSINCE {floor} VANISHED)"
        ))
        .await;
    assert_eq!(r[0], "* VANISHED (EARLIER) 30:31", "{r:#?}");
    ok(&r);

    // The idle session learns exactly what went from its view, and stays.
    let r = idle.cmd("NOOP").await;
    assert_eq!(r[0], "* VANISHED 1:25,30:31", "{r:#?}");
    ok(&r);
    let r = idle.cmd("FETCH 1:* (UID)").await;
    assert_eq!(r.len(), 40 - 28 + 1, "{r:#?}");
}
