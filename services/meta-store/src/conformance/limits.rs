//! Checks of the keyword and mailbox limits ([`crate::StoreLimits`]): every backend refuses the
//! same writes with `MetaError::Limit`, atomically (nothing of a refused write remains), and
//! merges long flag lists in linear time.
//!
//! They expect a store built with [`LIMITS`], small enough that reaching them is cheap.

use yubin_meta_api::{
    AccountStore, FlagOp, MailStore, MailboxId, MessageRecord, MetaError, MetadataDepth, UidSet,
    UserId,
};

use super::{all, msg, new_user, s};
use crate::StoreLimits;

/// The limits every conformance store is built with.
pub const LIMITS: StoreLimits = StoreLimits {
    max_keywords_per_message: 16,
    max_keywords_per_mailbox: 40,
    max_keyword_bytes: 64,
    max_mailboxes: 24,
    max_metadata_bytes_per_account: 100_000,
    // Small, so that the checks' STOREs over a few dozen messages run in several batches.
    redis_batch_messages: 16,
    max_expunge_log: 16,
};

fn keywords(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

fn is_limit<T: std::fmt::Debug>(r: &Result<T, MetaError>) -> bool {
    matches!(r, Err(MetaError::Limit(_)))
}

async fn flags_of<S: MailStore>(store: &S, user: UserId, mbox: MailboxId) -> Vec<MessageRecord> {
    store.fetch(user, mbox, &all(), false).await.expect("fetch")
}

/// Keywords per message and per mailbox, keyword length: STORE, APPEND and COPY beyond them are
/// refused and change nothing; the snapshot tells when the mailbox can learn no new keyword.
pub async fn keyword_limits<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-kwlimit").await;
    let r = store
        .append(user, "INBOX", (1..=3).map(|n| msg(user, n, &[])).collect())
        .await
        .expect("append");
    let mbox = r.mailbox;
    let before = flags_of(store, user, mbox).await;
    let st0 = store.mailbox_status(user, "INBOX").await.expect("status");

    // The attack: thousands of distinct keywords on every message. Refused as a whole.
    let flood = keywords("k", 0..10_000);
    for op in [FlagOp::Add, FlagOp::Replace] {
        let r = store
            .store_flags(user, mbox, &all(), op, &flood, None)
            .await;
        assert!(is_limit(&r), "10 000 keywords ({op:?}): {r:?}");
    }
    assert_eq!(flags_of(store, user, mbox).await, before, "nothing changed");
    let st = store.mailbox_status(user, "INBOX").await.expect("status");
    assert_eq!(st.highest_modseq, st0.highest_modseq, "no MODSEQ spent");
    let snap = store.select(user, "INBOX").await.expect("select");
    assert!(
        snap.keywords.is_empty(),
        "no keyword learnt: {:?}",
        snap.keywords
    );

    // Up to the per-message limit is fine (system flags do not count) ...
    let per_msg = LIMITS.max_keywords_per_message as usize;
    let mut full = keywords("a", 0..per_msg);
    full.push("\\Seen".into());
    store
        .store_flags(user, mbox, &all(), FlagOp::Add, &full, None)
        .await
        .expect("as many keywords as allowed");
    // ... one more on a message already at the limit is not, and changes nothing.
    let at_limit = flags_of(store, user, mbox).await;
    let r = store
        .store_flags(user, mbox, &all(), FlagOp::Add, &s(&["extra"]), None)
        .await;
    assert!(is_limit(&r), "one keyword too many: {r:?}");
    assert_eq!(
        flags_of(store, user, mbox).await,
        at_limit,
        "nothing changed"
    );
    // Re-adding known keywords in another case is no growth.
    store
        .store_flags(user, mbox, &all(), FlagOp::Add, &s(&["A0", "a1"]), None)
        .await
        .expect("known keywords");
    // Removing always works.
    store
        .store_flags(user, mbox, &all(), FlagOp::Remove, &s(&["a0"]), None)
        .await
        .expect("remove");

    // A keyword longer than allowed.
    let long = "x".repeat(LIMITS.max_keyword_bytes as usize + 1);
    let r = store
        .store_flags(
            user,
            mbox,
            &all(),
            FlagOp::Add,
            std::slice::from_ref(&long),
            None,
        )
        .await;
    assert!(is_limit(&r), "long keyword: {r:?}");
    let r = store
        .append(user, "INBOX", vec![msg(user, 9, &[long.as_str()])])
        .await;
    assert!(is_limit(&r), "long keyword on APPEND: {r:?}");

    // APPEND with too many keywords on one message.
    let many = keywords("a", 0..per_msg + 1);
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let r = store
        .append(user, "INBOX", vec![msg(user, 10, &many)])
        .await;
    assert!(is_limit(&r), "APPEND with too many keywords: {r:?}");
    let st = store.mailbox_status(user, "INBOX").await.expect("status");
    assert_eq!(st.exists, 3, "nothing appended");

    // Fill the mailbox's keyword table: it learns every keyword it is given, per message in
    // batches within the per-message limit.
    let per_mb = LIMITS.max_keywords_per_mailbox as usize;
    let one = UidSet::from_ranges([(1, 1)]);
    let mut known = per_msg;
    while known < per_mb {
        let batch = keywords("b", known..(known + per_msg).min(per_mb));
        known += batch.len();
        store
            .store_flags(user, mbox, &one, FlagOp::Replace, &batch, None)
            .await
            .expect("replace within limits");
        let snap = store.select(user, "INBOX").await.expect("select");
        assert_eq!(snap.keywords.len(), known, "keywords learnt");
        assert_eq!(snap.keywords_full, known >= per_mb, "full at {known}");
    }
    // Full: no new keyword by STORE, APPEND (nothing appended) or COPY (nothing copied) ...
    let snap = store.select(user, "INBOX").await.expect("select");
    assert!(snap.keywords_full);
    let r = store
        .store_flags(user, mbox, &all(), FlagOp::Add, &s(&["fresh"]), None)
        .await;
    assert!(is_limit(&r), "new keyword in a full mailbox: {r:?}");
    let r = store
        .append(user, "INBOX", vec![msg(user, 11, &["fresh"])])
        .await;
    assert!(
        is_limit(&r),
        "APPEND of a new keyword to a full mailbox: {r:?}"
    );
    store
        .create_mailbox(user, "Other", None)
        .await
        .expect("create");
    let other = store
        .append(user, "Other", vec![msg(user, 12, &["fresh", "\\Flagged"])])
        .await
        .expect("append to the other mailbox");
    let r = store
        .copy_messages(user, other.mailbox, &all(), "INBOX", false)
        .await;
    assert!(
        is_limit(&r),
        "COPY of a new keyword into a full mailbox: {r:?}"
    );
    let r = store
        .copy_messages(user, other.mailbox, &all(), "INBOX", true)
        .await;
    assert!(
        is_limit(&r),
        "MOVE of a new keyword into a full mailbox: {r:?}"
    );
    let st = store.mailbox_status(user, "INBOX").await.expect("status");
    assert_eq!(st.exists, 3, "nothing appended or copied");
    let st = store.mailbox_status(user, "Other").await.expect("status");
    assert_eq!(st.exists, 1, "nothing moved away");
    // ... but known keywords (any case) and system flags still work.
    store
        .store_flags(
            user,
            mbox,
            &all(),
            FlagOp::Add,
            &s(&["B20", "\\Flagged"]),
            None,
        )
        .await
        .expect("known keyword in a full mailbox");
    store
        .append(user, "INBOX", vec![msg(user, 13, &["b21", "\\Draft"])])
        .await
        .expect("append with a known keyword");
    let snap = store.select(user, "INBOX").await.expect("select");
    assert_eq!(snap.keywords.len(), per_mb, "no keyword added");
}

/// Flag lists far longer than any message may hold are merged in linear time: removing
/// 10 000 keywords from many messages takes one pass over each list (the quadratic merge made
/// this take minutes inside one Redis script).
pub async fn flag_merge_is_linear<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-kwlinear").await;
    let r = store
        .append(
            user,
            "INBOX",
            (1..=50)
                .map(|n| msg(user, n, &["k1", "k9999", "keep", "\\Seen"]))
                .collect(),
        )
        .await
        .expect("append");
    let mut doomed = keywords("K", 0..10_000);
    doomed.push("\\Seen".into());
    let res = store
        .store_flags(user, r.mailbox, &all(), FlagOp::Remove, &doomed, None)
        .await
        .expect("remove 10 000 keywords");
    assert_eq!(res.updated.len(), 50);
    for m in flags_of(store, user, r.mailbox).await {
        assert_eq!(m.flags, s(&["keep"]), "uid {:?}", m.uid);
    }
    let st = store.mailbox_status(user, "INBOX").await.expect("status");
    assert_eq!(st.unseen, 50);
}

/// Mailboxes per account: CREATE and RENAME beyond the limit (superiors they would create
/// count) are refused and create nothing; after a DELETE there is room again.
pub async fn mailbox_limit<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-mblimit").await;
    let max = LIMITS.max_mailboxes as usize;
    let count = |v: Vec<yubin_meta_api::MailboxInfo>| v.len();
    let have = count(store.list_mailboxes(user).await.expect("list"));
    for i in have..max - 1 {
        store
            .create_mailbox(user, &format!("box{i}"), None)
            .await
            .expect("create within the limit");
    }
    // One left: a name needing a new superior does not fit, and creates nothing.
    let r = store.create_mailbox(user, "deep/child", None).await;
    assert!(is_limit(&r), "create with a superior: {r:?}");
    let r = store.rename_mailbox(user, "box1", "far/away/x").await;
    assert!(is_limit(&r), "rename needing two superiors: {r:?}");
    let r = store.rename_mailbox(user, "INBOX", "old-inbox/x").await;
    assert!(is_limit(&r), "INBOX rename needing two mailboxes: {r:?}");
    assert_eq!(
        count(store.list_mailboxes(user).await.expect("list")),
        max - 1
    );
    // A plain rename does not add a mailbox.
    store
        .rename_mailbox(user, "box1", "renamed")
        .await
        .expect("rename in place");
    store
        .create_mailbox(user, "last", None)
        .await
        .expect("the last one fits");
    let r = store.create_mailbox(user, "one-more", None).await;
    assert!(is_limit(&r), "create beyond the limit: {r:?}");
    assert_eq!(count(store.list_mailboxes(user).await.expect("list")), max);
    store.delete_mailbox(user, "last").await.expect("delete");
    store
        .create_mailbox(user, "one-more", None)
        .await
        .expect("room after a delete");
}

/// A STORE over more messages than one Redis script call handles
/// ([`StoreLimits::redis_batch_messages`], 16 here) behaves like one STORE: every message in the
/// set is changed and reported, UNCHANGEDSINCE is honoured per message, and a keyword-limit
/// refusal caused by a message in a later batch still changes nothing at all.
pub async fn store_in_batches<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-batches").await;
    let r = store
        .append(user, "INBOX", (1..=50).map(|n| msg(user, n, &[])).collect())
        .await
        .expect("append");
    let mbox = r.mailbox;
    // A sparse set crossing several batches: 2, 4, …, 50 and an out-of-range tail.
    let even = UidSet::from_ranges((1..=25).map(|i| (2 * i, 2 * i)).chain([(60, 70)]));
    let r = store
        .store_flags(
            user,
            mbox,
            &even,
            FlagOp::Add,
            &["\\Seen".to_string()],
            None,
        )
        .await
        .expect("store");
    let changed: Vec<u32> = r.updated.iter().map(|(u, _, _)| u.0).collect();
    assert_eq!(changed, (1..=25).map(|i| 2 * i).collect::<Vec<_>>());
    let st = store.mailbox_status(user, "INBOX").await.expect("status");
    assert_eq!(st.unseen, 25, "every second message seen");
    assert_eq!(r.highest_modseq, st.highest_modseq);

    // UNCHANGEDSINCE before those changes: the 25 are reported modified, the rest stored.
    let before = r
        .updated
        .iter()
        .map(|(_, m, _)| m.0)
        .min()
        .expect("changed")
        - 1;
    let r = store
        .store_flags(
            user,
            mbox,
            &all(),
            FlagOp::Add,
            &["\\Flagged".to_string()],
            Some(yubin_meta_api::ModSeq(before)),
        )
        .await
        .expect("store unchangedsince");
    assert_eq!(r.modified.len(), 25, "{:?}", r.modified);
    assert_eq!(r.updated.len(), 25);

    // Message 45 (in the third batch) holds nearly the most keywords a message may carry;
    // adding two more to every message must be refused before any batch is written.
    let max = LIMITS.max_keywords_per_message as usize;
    store
        .store_flags(
            user,
            mbox,
            &UidSet::from_ranges([(45, 45)]),
            FlagOp::Add,
            &keywords("near", 0..max - 1),
            None,
        )
        .await
        .expect("near the limit");
    let before = flags_of(store, user, mbox).await;
    let r = store
        .store_flags(
            user,
            mbox,
            &all(),
            FlagOp::Add,
            &keywords("two", 0..2),
            None,
        )
        .await;
    assert!(is_limit(&r), "message 45 would pass the limit: {r:?}");
    assert_eq!(
        flags_of(store, user, mbox).await,
        before,
        "no batch was written"
    );
}

/// The account's METADATA budget (names and values of the server's and every mailbox's
/// entries): the attack is many mailboxes each holding the per-mailbox entry count at the
/// largest value size. Growth past the budget is refused as a whole (`OverQuota`, IMAP
/// `[METADATA TOOMANY]`); shrinking, removing and deleting a mailbox give bytes back.
pub async fn metadata_budget<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-mdbudget").await;
    let budget = LIMITS.max_metadata_bytes_per_account as usize;
    let value = vec![b'v'; 10_000];
    let entry = |i: usize| format!("/private/comment{i}");
    let set = |mailbox: Option<&'static str>, names: Vec<String>, v: Option<Vec<u8>>| {
        let entries: Vec<(String, Option<Vec<u8>>)> =
            names.into_iter().map(|n| (n, v.clone())).collect();
        async move { store.set_metadata(user, mailbox, &entries, 128).await }
    };
    store.create_mailbox(user, "a", None).await.expect("create");
    store.create_mailbox(user, "b", None).await.expect("create");
    // 4 entries of ~10 KB on the server, 4 on "a": ~80 KB of a 100 KB budget.
    set(None, (0..4).map(entry).collect(), Some(value.clone()))
        .await
        .expect("server entries");
    set(Some("a"), (0..4).map(entry).collect(), Some(value.clone()))
        .await
        .expect("entries on a");
    // Three more on "b" would pass 100 KB: refused, and none of the three is written.
    let r = set(Some("b"), (0..3).map(entry).collect(), Some(value.clone())).await;
    assert!(
        matches!(r, Err(MetaError::OverQuota(_))),
        "over the budget: {r:?}"
    );
    let on_b = store
        .get_metadata(
            user,
            Some("b"),
            &["/private".to_string()],
            MetadataDepth::Infinity,
        )
        .await
        .expect("get");
    assert!(on_b.is_empty(), "a refused write leaves nothing: {on_b:?}");
    // What is left takes one more: the budget counts names and values, not entries.
    let room = budget - 8 * (value.len() + entry(0).len());
    let fits = room / (value.len() + entry(0).len());
    assert_eq!(fits, 1);
    set(
        Some("b"),
        (0..fits).map(entry).collect(),
        Some(value.clone()),
    )
    .await
    .expect("within the budget");
    // Replacing a value by a larger one is growth; by a smaller one is not.
    let r = set(None, vec![entry(0)], Some(vec![b'w'; 25_000])).await;
    assert!(
        matches!(r, Err(MetaError::OverQuota(_))),
        "growing a value: {r:?}"
    );
    set(None, vec![entry(0)], Some(vec![b'w'; 10]))
        .await
        .expect("shrinking a value");
    set(None, vec![entry(1)], None)
        .await
        .expect("removing an entry");
    // The two freed ~20 KB: one more 10 KB entry fits, a second does not.
    set(Some("b"), vec![entry(10)], Some(value.clone()))
        .await
        .expect("room after shrinking");
    let r = set(Some("b"), vec![entry(11), entry(12)], Some(value.clone())).await;
    assert!(
        matches!(r, Err(MetaError::OverQuota(_))),
        "still bounded: {r:?}"
    );
    // Deleting a mailbox gives its entries' bytes back.
    store.delete_mailbox(user, "a").await.expect("delete a");
    set(
        Some("b"),
        (11..14).map(entry).collect(),
        Some(value.clone()),
    )
    .await
    .expect("room after deleting a mailbox");
    // The budget is per account: another account starts with all of it.
    let other = new_user(store, "conf-mdbudget-other").await;
    let entries: Vec<(String, Option<Vec<u8>>)> =
        (0..9).map(|i| (entry(i), Some(value.clone()))).collect();
    store
        .set_metadata(other, None, &entries, 128)
        .await
        .expect("another account's budget is its own");
}

/// Header text of `len` pseudo-random letters and digits: hundreds of thousands of distinct
/// trigrams, like megabytes of encoded-word header text.
pub fn gram_flood(len: usize) -> String {
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(alphabet[(x % alphabet.len() as u64) as usize])
        })
        .collect()
}

/// A message with a flood of distinct trigrams stays searchable: text searches find it by its
/// text (at the start or the end of it), and do not find what it lacks, also after a COPY and
/// next to ordinary messages.
pub async fn unindexed_message_is_searched<S: MailStore + AccountStore>(store: &S) {
    use yubin_meta_api::{SearchKey, Uid};
    let user = new_user(store, "conf-unindexed").await;
    let mut big = msg(user, 1, &[]);
    big.index.headers.push((
        "X-Flood".into(),
        format!("needle-start {} needle-end", gram_flood(200_000)),
    ));
    let r = store
        .append(user, "INBOX", vec![big, msg(user, 2, &[])])
        .await
        .expect("append");
    let hdr = |v: &str| SearchKey::Header("X-Flood".into(), v.into());
    let text = |v: &str| SearchKey::Text(v.into());
    for (key, want) in [
        (hdr("needle-start"), vec![Uid(1)]),
        (hdr("NEEDLE-END"), vec![Uid(1)]),
        (text("needle-end"), vec![Uid(1)]),
        (text("not-in-any-message"), vec![]),
        (text("Nummer 2"), vec![Uid(2)]),
        (SearchKey::Body("message 1,".into()), vec![Uid(1)]),
    ] {
        let got = store.search(user, r.mailbox, &key).await.expect("search");
        assert_eq!(got, want, "{key:?}");
    }
    store
        .create_mailbox(user, "Copy", None)
        .await
        .expect("create");
    let c = store
        .copy_messages(user, r.mailbox, &all(), "Copy", false)
        .await
        .expect("copy");
    let got = store
        .search(user, c.destination, &text("needle-end"))
        .await
        .expect("search the copy");
    assert_eq!(got, vec![Uid(1)]);
    store
        .store_flags(
            user,
            c.destination,
            &all(),
            FlagOp::Add,
            &s(&["\\Deleted"]),
            None,
        )
        .await
        .expect("delete");
    store
        .expunge(user, c.destination, None)
        .await
        .expect("expunge");
    let got = store
        .search(user, c.destination, &text("needle-end"))
        .await
        .expect("search after expunge");
    assert!(got.is_empty());
    store
        .delete_mailbox(user, "Copy")
        .await
        .expect("delete mailbox");
}
