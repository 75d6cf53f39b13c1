//! Flag reads answered from the session's view (issue 10 item 6): once a session knows the flags
//! of its messages, `FETCH (FLAGS)` / `UID FETCH (FLAGS MODSEQ)` and SEARCH over flag keys cost
//! one catch-up (`changes_since`) instead of a store read, and answer what the store answers.
//! SELECT's snapshot carries every message's flags, so that holds from the first read on.
//!
//! "What the store answers" is taken from a session on a node whose SELECT snapshots carry no
//! flags (as over a meta service from before they did): it EXAMINEs the mailbox and asks the
//! same thing, and knowing no flags, reads them from the store.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

fn message(n: usize) -> String {
    format!("From: a@example.com\r\nSubject: message {n}\r\n\r\nbody {n}\r\n")
}

fn ok(lines: &[String]) {
    assert!(last(lines).starts_with("T OK"), "{lines:?}");
}

async fn select(c: &mut Raw) -> Vec<String> {
    let r = c.cmd("SELECT INBOX").await;
    ok(&r);
    r
}

/// Untagged FETCH responses by sequence number, the last one of each message winning: a
/// catch-up's flag updates come before the command's own responses.
fn fetch_map(lines: &[String]) -> BTreeMap<u32, String> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = l.strip_prefix("* ")?;
            let (seq, rest) = rest.split_once(' ')?;
            let items = rest.strip_prefix("FETCH ")?;
            Some((seq.parse().ok()?, items.to_string()))
        })
        .collect()
}

/// A node whose SELECT snapshots carry no flags (as from an older meta service): its sessions
/// read flags from the store until they know them.
struct Node {
    addr: SocketAddr,
    calls: Arc<StoreCalls>,
}

impl Node {
    /// The untagged lines a fresh session of this node gets for `command` after EXAMINE INBOX,
    /// after running `setup` first; the command reads the store (its view knows no flags).
    async fn answer(&self, setup: &[&str], command: &str) -> Vec<String> {
        let mut c = Raw::login(self.addr, "alice", "wonderland").await;
        for s in setup {
            ok(&c.cmd(s).await);
        }
        ok(&c.cmd("EXAMINE INBOX").await);
        let before = self.calls.now();
        let mut r = c.cmd(command).await;
        let d = self.calls.now() - before;
        assert!(d.fetch + d.search > 0, "{command} read the store: {d:?}");
        r.pop();
        r
    }
}

async fn old_meta_node(h: &Harness) -> Node {
    let (addr, calls) = h.node_without_snapshot_flags().await;
    Node { addr, calls }
}

/// The `* SEARCH` / `* ESEARCH` line of a response.
fn search_line(lines: &[String]) -> String {
    lines
        .iter()
        .find(|l| l.starts_with("* SEARCH") || l.starts_with("* ESEARCH"))
        .cloned()
        .unwrap_or_else(|| panic!("no search result in {lines:?}"))
}

async fn append_all(c: &mut Raw, flags: impl Fn(usize) -> &'static str, n: usize) {
    for i in 1..=n {
        let r = append(c, "INBOX", flags(i), message(i).as_bytes()).await;
        assert!(r.starts_with("A OK"), "{r}");
    }
}

/// Session B reads flags another session (A) has just changed, without waiting for the change
/// hint: its catch-up reads them, and FETCH and SEARCH answer what the store answers.
async fn sessions_see_each_others_flags(addr: SocketAddr, calls: &StoreCalls, store: Node) {
    let mut a = Raw::login(addr, "alice", "wonderland").await;
    let mut b = Raw::login(addr, "alice", "wonderland").await;
    append_all(&mut a, |i| if i % 3 == 0 { "\\Seen" } else { "" }, 12).await;
    // A selects first and so holds \Recent: neither B nor the EXAMINE sessions show it.
    select(&mut a).await;
    select(&mut b).await;
    ok(&b.cmd("FETCH 1:* (FLAGS)").await);

    ok(&a.cmd("STORE 1:4 +FLAGS (\\Seen)").await);
    ok(&a.cmd("STORE 2,5 +FLAGS ($Work \\Flagged)").await);
    ok(&a.cmd("STORE 3 -FLAGS (\\Seen)").await);
    ok(&a.cmd("UID STORE 6 FLAGS ($Later)").await);

    let before = calls.now();
    let r = b.cmd("FETCH 1:* (FLAGS)").await;
    ok(&r);
    let d = calls.now() - before;
    assert_eq!(
        (d.fetch, d.search, d.changes_since),
        (0, 0, 1),
        "one catch-up, no store read: {d:?}"
    );
    let seen = fetch_map(&r);
    assert_eq!(seen[&2], "(FLAGS (\\Seen $Work \\Flagged))");
    assert_eq!(seen[&3], "(FLAGS ())");
    assert_eq!(seen[&6], "(FLAGS ($Later))");
    assert_eq!(
        seen,
        fetch_map(&store.answer(&[], "FETCH 1:* (FLAGS)").await)
    );

    // Changed again, then read through SEARCH first: the catch-up is SEARCH's this time.
    ok(&a.cmd("STORE 7:8 +FLAGS ($work)").await);
    ok(&a.cmd("STORE 9 +FLAGS (\\Answered \\Deleted)").await);
    for search in [
        "SEARCH UNSEEN",
        "SEARCH KEYWORD $Work",
        "UID SEARCH KEYWORD $WORK",
        "SEARCH OR FLAGGED KEYWORD $Later",
        "SEARCH NOT SEEN 1:6",
        "UID SEARCH UNKEYWORD $Work SEEN",
        "SEARCH ANSWERED UNDELETED",
        "SEARCH DELETED",
        "SEARCH UID 2:7 NOT KEYWORD $Later",
        "SEARCH OLD UNFLAGGED",
        "SEARCH NEW",
        "SEARCH RETURN (MIN MAX COUNT) UNSEEN",
        "SEARCH KEYWORD $Never",
        "SEARCH ALL",
    ] {
        let before = calls.now();
        let r = b.cmd(search).await;
        ok(&r);
        let d = calls.now() - before;
        assert_eq!((d.fetch, d.search), (0, 0), "{search}: {d:?}");
        assert_eq!(
            search_line(&r),
            search_line(&store.answer(&[], search).await),
            "{search}"
        );
    }
    // The catch-up of the first SEARCH told B of A's changes.
    let r = b.cmd("FETCH 7:9 (FLAGS)").await;
    assert_eq!(
        fetch_map(&r)[&9],
        "(FLAGS (\\Seen \\Answered \\Deleted))",
        "{r:?}"
    );
}

#[tokio::test]
async fn sessions_see_each_others_flags_embedded() {
    let h = start().await;
    let store = old_meta_node(&h).await;
    sessions_see_each_others_flags(h.addr, &h.calls, store).await;
}

#[tokio::test]
async fn sessions_see_each_others_flags_on_redis() {
    let h = start_redis().await;
    let (addr, calls) = h.node_without_snapshot_flags().await;
    sessions_see_each_others_flags(h.addr, &h.calls, Node { addr, calls }).await;
}

/// In a session whose SELECT brought no flags (an older meta service), the first flag reads go
/// to the store; once it knows its flags, a second `UID FETCH 1:* (FLAGS)` and `SEARCH UNSEEN`
/// make no store read but the catch-up; its own STORE is reflected; other keys still go to the
/// store.
#[tokio::test]
async fn a_current_session_reads_flags_from_its_view() {
    let harness = start().await;
    let h = old_meta_node(&harness).await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    append_all(&mut c, |i| if i % 4 == 0 { "\\Seen" } else { "" }, 50).await;
    select(&mut c).await;

    // UIDs alone need no flags: the view answers after its catch-up, knowing no flags yet.
    let before = h.calls.now();
    let r = c.cmd("UID FETCH 45:* (UID)").await;
    assert_eq!(r.len(), 7, "{r:?}");
    assert_eq!(r[0], "* 45 FETCH (UID 45)");
    let d = h.calls.now() - before;
    assert_eq!((d.fetch, d.changes_since), (0, 1), "{d:?}");

    // No flags known yet: the store answers, without a catch-up first.
    let before = h.calls.now();
    let unseen = c.cmd("UID SEARCH UNSEEN").await;
    ok(&unseen);
    let d = h.calls.now() - before;
    assert_eq!(d.search, 1, "{d:?}");
    let before = h.calls.now();
    let first = c.cmd("UID FETCH 1:* (FLAGS)").await;
    ok(&first);
    let d = h.calls.now() - before;
    assert_eq!((d.fetch, d.fetched_uids), (1, 50), "{d:?}");

    for (command, earlier) in [
        ("UID FETCH 1:* (FLAGS)", &first),
        ("UID SEARCH UNSEEN", &unseen),
    ] {
        let before = h.calls.now();
        let r = c.cmd(command).await;
        let d = h.calls.now() - before;
        assert_eq!(
            (d.fetch, d.search, d.changes_since),
            (0, 0, 1),
            "{command}: only the catch-up: {d:?}"
        );
        assert_eq!(&r, earlier, "{command}");
    }
    let before = h.calls.now();
    let r = c.cmd("FETCH 1:* (UID FLAGS)").await;
    ok(&r);
    assert_eq!(r.len(), 51);
    assert_eq!(r[3], "* 4 FETCH (UID 4 FLAGS (\\Seen \\Recent))");
    assert_eq!((h.calls.now() - before).fetch, 0);

    // A key the view does not keep (the subject) goes to the store, with no catch-up first.
    let before = h.calls.now();
    let r = c.cmd("SEARCH SUBJECT \"message 7\"").await;
    assert_eq!(r[0], "* SEARCH 7");
    let d = h.calls.now() - before;
    assert_eq!((d.search, d.changes_since), (1, 0), "{d:?}");

    // The session's own STORE: one store call for the range, and the view takes its result.
    let before = h.calls.now();
    ok(&c.cmd("STORE 1:10 +FLAGS.SILENT (\\Flagged)").await);
    let d = h.calls.now() - before;
    assert_eq!((d.store_flags, d.fetch), (1, 0), "{d:?}");
    let before = h.calls.now();
    let r = c.cmd("SEARCH FLAGGED").await;
    assert_eq!(r[0], "* SEARCH 1 2 3 4 5 6 7 8 9 10");
    let r = c.cmd("FETCH 8 (FLAGS)").await;
    assert_eq!(r[0], "* 8 FETCH (FLAGS (\\Seen \\Flagged \\Recent))");
    let d = h.calls.now() - before;
    assert_eq!((d.fetch, d.search), (0, 0), "{d:?}");
    // Reported once by the STORE: the next catch-up does not repeat it.
    let r = c.cmd("NOOP").await;
    assert_eq!(r.len(), 1, "{r:?}");
}

/// Messages whose flags the view does not know (its SELECT brought none, from an older meta
/// service) are read from the store, in one call for a FETCH; a SEARCH is left to the store
/// until every message is known.
#[tokio::test]
async fn unknown_flags_are_read_from_the_store() {
    let h = start().await;
    let store = old_meta_node(&h).await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    append_all(&mut a, |i| if i % 2 == 0 { "\\Seen" } else { "" }, 20).await;
    // A takes \Recent, so C's answers compare with the EXAMINE session's as they are.
    select(&mut a).await;
    let old = old_meta_node(&h).await;
    let mut c = Raw::login(old.addr, "alice", "wonderland").await;
    select(&mut c).await;
    ok(&c.cmd("FETCH 1:5 (FLAGS)").await);

    let before = old.calls.now();
    let r = c.cmd("FETCH 1:10 (FLAGS)").await;
    ok(&r);
    let d = old.calls.now() - before;
    assert_eq!((d.fetch, d.fetched_uids), (1, 5), "only 6:10 read: {d:?}");
    let mut answer = store.answer(&[], "FETCH 1:10 (FLAGS)").await;
    answer.push("T OK FETCH completed".into());
    assert_eq!(r, answer);

    // Half the view unknown: the store searches, and no catch-up comes first.
    let before = old.calls.now();
    let r = c.cmd("SEARCH UNSEEN").await;
    assert_eq!(r[0], "* SEARCH 1 3 5 7 9 11 13 15 17 19");
    let d = old.calls.now() - before;
    assert_eq!((d.search, d.changes_since), (1, 0), "{d:?}");

    ok(&c.cmd("FETCH 1:* (FLAGS)").await);
    let before = old.calls.now();
    let r = c.cmd("SEARCH UNSEEN").await;
    assert_eq!(r[0], "* SEARCH 1 3 5 7 9 11 13 15 17 19");
    assert_eq!((old.calls.now() - before).search, 0);
}

/// STORE over a range answers the messages it left alone (their flags were already so) from
/// the view, with one store call for the write and none to read back; only where the view
/// disagrees with what the STORE asked for (another session changed the message, unannounced)
/// is the store read. A silent STORE reads nothing back at all.
#[tokio::test]
async fn store_answers_unchanged_messages_from_the_view() {
    let h = start().await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    let mut b = Raw::login(h.addr, "alice", "wonderland").await;
    append_all(&mut a, |i| if i % 2 == 0 { "\\Seen" } else { "" }, 10).await;
    select(&mut b).await;
    select(&mut a).await;

    // Half the range already \Seen: five written, five answered from the view.
    let before = h.calls.now();
    let r = a.cmd("STORE 1:10 +FLAGS (\\Seen)").await;
    ok(&r);
    let d = h.calls.now() - before;
    assert_eq!((d.store_flags, d.fetch), (1, 0), "{d:?}");
    let m = fetch_map(&r);
    assert_eq!(m.len(), 10, "{r:?}");
    assert!(m.values().all(|v| v == "(FLAGS (\\Seen))"), "{r:?}");

    // B flags message 3 without A hearing of it; A's STORE of \Flagged leaves 3 alone, and A's
    // view (no \Flagged) disagrees: 3 alone is read from the store.
    ok(&b.cmd("STORE 3 +FLAGS.SILENT (\\Flagged)").await);
    let before = h.calls.now();
    let r = a.cmd("STORE 2:4 +FLAGS (\\Flagged)").await;
    ok(&r);
    let d = h.calls.now() - before;
    assert_eq!((d.store_flags, d.fetch, d.fetched_uids), (1, 1, 1), "{d:?}");
    let m = fetch_map(&r);
    for seq in 2..=4 {
        assert_eq!(m[&seq], "(FLAGS (\\Seen \\Flagged))", "{r:?}");
    }

    // Silent, nothing changes: one store call, nothing read back, nothing sent.
    ok(&a.cmd("NOOP").await);
    let before = h.calls.now();
    let r = a.cmd("STORE 1:* +FLAGS.SILENT (\\Seen)").await;
    assert_eq!(r, ["T OK STORE completed"]);
    let d = h.calls.now() - before;
    assert_eq!((d.store_flags, d.fetch), (1, 0), "{d:?}");
}

/// The view interns at most the stores' default number of keywords per mailbox; under a raised
/// store limit, the messages carrying the rest are read from the store every time.
#[tokio::test]
async fn keywords_past_the_view_limit_are_read_from_the_store() {
    let h = start_with(Options {
        store_limits: yubin_meta_store::StoreLimits {
            max_keywords_per_mailbox: 400,
            ..yubin_meta_store::StoreLimits::default()
        },
        ..Options::default()
    })
    .await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    append_all(&mut a, |_| "", 5).await;
    select(&mut a).await;
    for n in 0..5 {
        let keywords: Vec<String> = (n * 60..n * 60 + 60).map(|k| format!("k{k}")).collect();
        ok(&a
            .cmd(&format!(
                "STORE {} +FLAGS.SILENT ({})",
                n + 1,
                keywords.join(" ")
            ))
            .await);
    }
    let mut b = Raw::login(h.addr, "alice", "wonderland").await;
    select(&mut b).await;
    // The SELECT snapshot told the view of every message, but message 5's keywords do not fit.
    let before = h.calls.now();
    let first = b.cmd("FETCH 1:* (FLAGS)").await;
    ok(&first);
    let d = h.calls.now() - before;
    assert_eq!((d.fetch, d.fetched_uids), (1, 1), "message 5 only: {d:?}");
    let before = h.calls.now();
    let again = b.cmd("FETCH 1:* (FLAGS)").await;
    let d = h.calls.now() - before;
    assert_eq!((d.fetch, d.fetched_uids), (1, 1), "message 5 only: {d:?}");
    assert_eq!(again, first);
    assert!(again[4].contains(" k299)"), "{}", again[4]);
    let before = h.calls.now();
    let r = b.cmd("SEARCH KEYWORD k250").await;
    assert_eq!(r[0], "* SEARCH 5");
    assert_eq!((h.calls.now() - before).search, 1);
}

/// Expunges and arrivals keep the view's flags on the right messages: held-back expunges
/// (RFC 3501 §7.4.1) are left out of a FETCH with `NO [EXPUNGEISSUED]`, announced ones shift
/// the sequence numbers, new messages come with their flags.
#[tokio::test]
async fn expunges_and_arrivals_keep_the_view_aligned() {
    let h = start().await;
    let store = old_meta_node(&h).await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    let mut b = Raw::login(h.addr, "alice", "wonderland").await;
    append_all(&mut a, |i| if i % 2 == 1 { "\\Seen" } else { "" }, 8).await;
    select(&mut a).await;
    select(&mut b).await;
    ok(&b.cmd("FETCH 1:* (FLAGS)").await);

    ok(&a.cmd("UID STORE 2,4 +FLAGS.SILENT (\\Deleted)").await);
    ok(&a.cmd("EXPUNGE").await);
    for _ in 0..2 {
        let r = append(&mut a, "INBOX", "\\Flagged $New", message(9).as_bytes()).await;
        assert!(r.starts_with("A OK"), "{r}");
    }
    ok(&a.cmd("UID STORE 7 +FLAGS (\\Answered)").await);

    let before = h.calls.now();
    let r = b.cmd("FETCH 1:* (FLAGS)").await;
    assert_eq!(
        (h.calls.now() - before).fetch,
        0,
        "new messages come with their flags"
    );
    assert!(r.iter().any(|l| l == "* 10 EXISTS"), "{r:?}");
    assert!(!r.iter().any(|l| l.contains("EXPUNGE ")), "{r:?}");
    assert!(
        last(&r).starts_with("T NO [EXPUNGEISSUED]"),
        "{:?}",
        last(&r)
    );
    let got = fetch_map(&r);
    assert!(!got.contains_key(&2) && !got.contains_key(&4), "{r:?}");
    assert_eq!(got[&7], "(FLAGS (\\Seen \\Answered))");
    assert_eq!(got[&10], "(FLAGS (\\Flagged $New))");

    let r = b.cmd("NOOP").await;
    assert_eq!(&r[..2], ["* 2 EXPUNGE", "* 3 EXPUNGE"], "{r:?}");
    for command in [
        "FETCH 1:* (FLAGS)",
        "UID FETCH 1:* (FLAGS)",
        "FETCH 5:* (UID FLAGS)",
    ] {
        let before = h.calls.now();
        let mut r = b.cmd(command).await;
        ok(&r);
        assert_eq!((h.calls.now() - before).fetch, 0, "{command}");
        r.pop();
        assert_eq!(r, store.answer(&[], command).await, "{command}");
    }
    for search in [
        "SEARCH FLAGGED",
        "UID SEARCH KEYWORD $New",
        "SEARCH UNSEEN 3:*",
    ] {
        let r = b.cmd(search).await;
        assert_eq!(
            search_line(&r),
            search_line(&store.answer(&[], search).await),
            "{search}"
        );
    }

    // A UID FETCH may announce expunges first (RFC 3501 §7.4.1): the responses that follow
    // use the sequence numbers after them.
    ok(&a.cmd("UID STORE 1 +FLAGS.SILENT (\\Deleted)").await);
    ok(&a.cmd("EXPUNGE").await);
    let mut r = b.cmd("UID FETCH 1:* (FLAGS)").await;
    ok(&r);
    assert_eq!(r[0], "* 1 EXPUNGE", "{r:?}");
    r.pop();
    assert_eq!(r[1..], store.answer(&[], "UID FETCH 1:* (FLAGS)").await);
}

/// CONDSTORE (RFC 7162): MODSEQ in FETCH, CHANGEDSINCE, SEARCH MODSEQ and the session's own
/// conditional STORE come out of the view exactly as from the store; a catch-up held back by
/// an expunge it may not announce leaves the read to the store.
#[tokio::test]
async fn condstore_reads_from_the_view() {
    let h = start().await;
    let store = old_meta_node(&h).await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    let mut b = Raw::login(h.addr, "alice", "wonderland").await;
    append_all(&mut a, |_| "", 6).await;
    select(&mut a).await;
    ok(&b.cmd("ENABLE CONDSTORE").await);
    let r = select(&mut b).await;
    let highest: u64 = r
        .iter()
        .find_map(|l| l.strip_prefix("* OK [HIGHESTMODSEQ "))
        .and_then(|l| l.split(']').next())
        .and_then(|n| n.parse().ok())
        .expect("HIGHESTMODSEQ");
    ok(&b.cmd("FETCH 1:* (FLAGS MODSEQ)").await);

    ok(&a.cmd("STORE 2 +FLAGS ($A)").await);
    ok(&a.cmd("STORE 4 +FLAGS (\\Seen)").await);
    let r = b.cmd("NOOP").await;
    assert_eq!(r.len(), 3, "two flag updates: {r:?}");
    let setup = ["ENABLE CONDSTORE"];
    for command in [
        format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {highest})"),
        format!("UID FETCH 1:* (UID MODSEQ) (CHANGEDSINCE {})", highest + 1),
        "UID FETCH 1:* (MODSEQ FLAGS)".to_string(),
        "FETCH 2 (MODSEQ)".to_string(),
    ] {
        let before = h.calls.now();
        let mut r = b.cmd(&command).await;
        ok(&r);
        let d = h.calls.now() - before;
        assert_eq!((d.fetch, d.changes_since), (0, 1), "{command}: {d:?}");
        r.pop();
        assert_eq!(r, store.answer(&setup, &command).await, "{command}");
    }
    let changed = b
        .cmd(&format!("FETCH 1:* (FLAGS) (CHANGEDSINCE {highest})"))
        .await;
    assert_eq!(changed.len(), 3, "messages 2 and 4 only: {changed:?}");
    for search in [
        format!("SEARCH MODSEQ {}", highest + 1),
        format!("UID SEARCH MODSEQ {highest} UNSEEN"),
        format!("SEARCH RETURN (MAX) MODSEQ {}", highest + 1),
    ] {
        let before = h.calls.now();
        let r = b.cmd(&search).await;
        let d = h.calls.now() - before;
        assert_eq!((d.fetch, d.search), (0, 0), "{search}: {d:?}");
        assert_eq!(
            search_line(&r),
            search_line(&store.answer(&setup, &search).await),
            "{search}"
        );
    }

    // B's own conditional STORE: the view takes the new MODSEQ it reported.
    let r = b.cmd("STORE 3 +FLAGS.SILENT (\\Flagged)").await;
    ok(&r);
    let modseq = r[0]
        .strip_prefix("* 3 FETCH (MODSEQ (")
        .and_then(|m| m.strip_suffix("))"))
        .unwrap_or_else(|| panic!("{r:?}"));
    let before = h.calls.now();
    let r = b.cmd("FETCH 3 (FLAGS MODSEQ)").await;
    assert_eq!(
        r[0],
        format!("* 3 FETCH (FLAGS (\\Flagged) MODSEQ ({modseq}))")
    );
    assert_eq!((h.calls.now() - before).fetch, 0);
    assert_eq!(b.cmd("NOOP").await.len(), 1, "reported once");

    // An expunge B may not announce during FETCH holds its whole catch-up back once MODSEQs
    // are visible (RFC 7162 §3.2.5 would lose it otherwise): the store answers, as before.
    ok(&a.cmd("STORE 5 +FLAGS.SILENT (\\Deleted)").await);
    ok(&a.cmd("EXPUNGE").await);
    ok(&a.cmd("STORE 1 +FLAGS ($Z)").await);
    let before = h.calls.now();
    let r = b.cmd("FETCH 1:* (FLAGS)").await;
    assert_eq!((h.calls.now() - before).fetch, 1);
    assert!(
        last(&r).starts_with("T NO [EXPUNGEISSUED]"),
        "{:?}",
        last(&r)
    );
    assert_eq!(r[0], "* 1 FETCH (FLAGS ($Z))");
    assert!(!fetch_map(&r).contains_key(&5), "{r:?}");
    let r = b.cmd("NOOP").await;
    assert!(r.iter().any(|l| l == "* 5 EXPUNGE"), "{r:?}");
    let mut r = b.cmd("FETCH 1:* (FLAGS MODSEQ)").await;
    ok(&r);
    r.pop();
    assert_eq!(r, store.answer(&setup, "FETCH 1:* (FLAGS MODSEQ)").await);
}

/// The view answers each message's flags in the store's order, also where messages hold the
/// same flags in different orders (each such order is a list of its own in the view).
#[tokio::test]
async fn flag_lists_keep_the_stores_order() {
    let h = start().await;
    let store = old_meta_node(&h).await;
    let mut a = Raw::login(h.addr, "alice", "wonderland").await;
    append_all(&mut a, |_| "", 60).await;
    select(&mut a).await;
    // Each message gets its own ordering of a few keywords: lists differ by order alone.
    for n in 1..=60usize {
        let mut kws: Vec<String> = (0..4).map(|k| format!("w{}", (n + k) % 7)).collect();
        kws.rotate_left(n % 4);
        ok(&a
            .cmd(&format!("STORE {n} FLAGS.SILENT ({})", kws.join(" ")))
            .await);
    }
    let mut b = Raw::login(h.addr, "alice", "wonderland").await;
    select(&mut b).await;
    let first = b.cmd("FETCH 1:* (FLAGS)").await;
    let again = b.cmd("FETCH 1:* (FLAGS)").await;
    assert_eq!(first, again);
    let mut r = again;
    r.pop();
    assert_eq!(r, store.answer(&[], "FETCH 1:* (FLAGS)").await);
}

/// The `[UIDVALIDITY n]` and `[HIGHESTMODSEQ n]` of a SELECT response.
fn validity_and_modseq(lines: &[String]) -> (u64, u64) {
    let code = |name: &str| -> u64 {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("* OK [{name} ")))
            .and_then(|l| l.split(']').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {lines:?}"))
    };
    (code("UIDVALIDITY"), code("HIGHESTMODSEQ"))
}

/// Right after SELECT, EXAMINE or a QRESYNC SELECT, flag reads cost the catch-up alone: the
/// snapshot brought every message's flags and MODSEQ. The answers are the store's, including
/// for a change another session made after the SELECT.
async fn select_brings_every_flag(addr: SocketAddr, calls: &StoreCalls, store: Node) {
    let mut a = Raw::login(addr, "alice", "wonderland").await;
    let flags = |i: usize| match i % 5 {
        0 => "\\Seen",
        1 => "",
        2 => "\\Seen $Work \\Flagged",
        3 => "\\Flagged \\Seen $Work",
        _ => "\\Answered $label1",
    };
    append_all(&mut a, flags, 40).await;
    // A takes \Recent: the sessions below and the store's session show none.
    let r = select(&mut a).await;
    let (validity, _) = validity_and_modseq(&r);
    ok(&a.cmd("STORE 1:10 +FLAGS.SILENT ($WORK \\Deleted)").await);
    ok(&a.cmd("STORE 5:15 -FLAGS.SILENT (\\seen)").await);
    ok(&a.cmd("EXPUNGE").await);
    ok(&a.cmd("STORE 20 FLAGS.SILENT ($Later)").await);

    let reads = [
        "UID FETCH 1:* (FLAGS)",
        "FETCH 1:* (FLAGS MODSEQ)",
        "UID SEARCH UNSEEN",
        "SEARCH KEYWORD $work NOT FLAGGED",
        "UID FETCH 1:* (UID FLAGS)",
    ];
    let setups: [(&str, &[&str], &str); 3] = [
        ("SELECT", &[], "SELECT INBOX"),
        ("EXAMINE", &[], "EXAMINE INBOX"),
        ("QRESYNC", &["ENABLE QRESYNC"], ""),
    ];
    for (what, setup, open) in setups {
        let mut b = Raw::login(addr, "alice", "wonderland").await;
        for s in setup {
            ok(&b.cmd(s).await);
        }
        let open = if open.is_empty() {
            format!("SELECT INBOX (QRESYNC ({validity} 2))")
        } else {
            open.to_string()
        };
        let before = calls.now();
        let r = b.cmd(&open).await;
        ok(&r);
        let d = calls.now() - before;
        assert_eq!((d.fetch, d.search), (0, 0), "{what}: {d:?}");
        if what == "QRESYNC" {
            assert!(r.iter().any(|l| l.contains("VANISHED (EARLIER)")), "{r:?}");
        }
        for (n, command) in reads.iter().enumerate() {
            if n == 2 {
                // Changed by another session after this one's SELECT: the catch-up tells it.
                ok(&a.cmd("STORE 3 -FLAGS.SILENT (\\Seen)").await);
            }
            let before = calls.now();
            let mut r = b.cmd(command).await;
            ok(&r);
            let d = calls.now() - before;
            assert_eq!(
                (d.fetch, d.search, d.changes_since),
                (0, 0, 1),
                "{what}, {command}: the catch-up alone: {d:?}"
            );
            r.pop();
            let expected = store.answer(setup, command).await;
            if command.contains("SEARCH") {
                assert_eq!(search_line(&r), search_line(&expected), "{what}, {command}");
            } else {
                assert_eq!(fetch_map(&r), fetch_map(&expected), "{what}, {command}");
            }
        }
        ok(&a.cmd("STORE 3 +FLAGS.SILENT (\\Seen)").await);
    }
}

#[tokio::test]
async fn select_brings_every_flag_embedded() {
    let h = start().await;
    let store = old_meta_node(&h).await;
    select_brings_every_flag(h.addr, &h.calls, store).await;
}

#[tokio::test]
async fn select_brings_every_flag_on_redis() {
    let h = start_redis().await;
    let (addr, calls) = h.node_without_snapshot_flags().await;
    select_brings_every_flag(h.addr, &h.calls, Node { addr, calls }).await;
}
