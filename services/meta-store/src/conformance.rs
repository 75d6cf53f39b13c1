//! The behaviour every [`MailStore`] + [`AccountStore`] must show, as one async suite.
//!
//! Run it against a backend with [`run_all`]; each check creates its own users (unique names),
//! so the suite can run repeatedly against the same persistent store and checks never see each
//! other's data. A failed check panics with a message naming it, like an `assert!` in a test.
//! The store must enforce [`LIMITS`] (`with_limits`), which the checks in [`limits`] reach.

mod accounts;
mod changes;
mod divergences;
mod flags;
mod fulltext;
mod history;
mod isolation;
mod limits;
mod mailboxes;
mod messages;
mod metadata;
mod quota;
mod revocation;
mod search;
mod snapshot;

pub use accounts::{
    aliases, delete_user, disable_user, domains_and_address_resolution, users, users_paging,
};
pub use changes::{changes_since, watch};
pub use divergences::copy_keeps_source_modseq;
pub use flags::{claim_recent, concurrent_claim_recent, concurrent_flags, store_flags};
pub use fulltext::index_lag_stays_exact;
pub use history::{expunge_log_is_capped, modseq_ahead_moves_mailbox};
pub use isolation::{foreign_blob_keys, isolation};
pub use limits::{
    LIMITS, flag_merge_is_linear, gram_flood, keyword_limits, mailbox_limit, metadata_budget,
    store_in_batches, unindexed_message_is_searched,
};
pub use mailboxes::{
    inbox_exists, mailboxes, rename_inbox, subscriptions, uid_validity_after_recreate,
};
pub use messages::{append_and_select, concurrent_appends, copy_and_move, expunge, fetch};
pub use metadata::metadata;
pub use quota::{
    concurrent_appends_respect_quota, quota_limits, quota_usage_is_exact, set_account_quota,
};
pub use revocation::{deleted_account_refuses_writes, revocation_hints};
pub use search::{deep_search, search, search_index_agrees_with_scan, search_indexed};
pub use snapshot::select_carries_flags;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use yubin_meta_api::{
    AccountStore, BlobKey, InternalDate, MailStore, MailboxId, NewMessage, SearchIndex, SearchKey,
    Uid, UidSet, UserId,
};

/// One `#[tokio::test]` per conformance check, each on a fresh store from `$setup`, an async fn
/// returning `(guard, store)` (the guard keeps the backing server or directory alive). Every
/// backend's test file invokes this once, so a new check is listed here only.
#[macro_export]
macro_rules! conformance_tests {
    ($setup:ident) => {
        $crate::conformance_tests!(@each $setup;
            users, inbox_exists, mailboxes, rename_inbox, subscriptions, append_and_select, fetch,
            store_flags, copy_and_move, expunge, changes_since, search, search_index_agrees_with_scan,
            search_indexed, deep_search,
            uid_validity_after_recreate, watch, isolation, foreign_blob_keys, concurrent_appends, concurrent_flags,
            quota_limits, set_account_quota, quota_usage_is_exact, concurrent_appends_respect_quota, claim_recent,
            concurrent_claim_recent, users_paging, disable_user, delete_user, aliases,
            domains_and_address_resolution, metadata, keyword_limits, flag_merge_is_linear,
            mailbox_limit, metadata_budget, store_in_batches, unindexed_message_is_searched,
            copy_keeps_source_modseq, modseq_ahead_moves_mailbox, expunge_log_is_capped,
            revocation_hints, deleted_account_refuses_writes, select_carries_flags);
    };
    (@each $setup:ident; $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let (_guard, store) = $setup().await;
            $crate::conformance::$name(&store).await;
        }
    )*};
}

/// Runs every check in turn.
pub async fn run_all<S: MailStore + AccountStore>(store: &S) {
    users(store).await;
    inbox_exists(store).await;
    mailboxes(store).await;
    rename_inbox(store).await;
    subscriptions(store).await;
    append_and_select(store).await;
    fetch(store).await;
    store_flags(store).await;
    copy_and_move(store).await;
    expunge(store).await;
    changes_since(store).await;
    search(store).await;
    search_indexed(store).await;
    search_index_agrees_with_scan(store).await;
    deep_search(store).await;
    uid_validity_after_recreate(store).await;
    watch(store).await;
    isolation(store).await;
    foreign_blob_keys(store).await;
    concurrent_appends(store).await;
    concurrent_flags(store).await;
    quota_limits(store).await;
    set_account_quota(store).await;
    quota_usage_is_exact(store).await;
    concurrent_appends_respect_quota(store).await;
    claim_recent(store).await;
    concurrent_claim_recent(store).await;
    users_paging(store).await;
    disable_user(store).await;
    delete_user(store).await;
    aliases(store).await;
    domains_and_address_resolution(store).await;
    metadata(store).await;
    keyword_limits(store).await;
    flag_merge_is_linear(store).await;
    mailbox_limit(store).await;
    metadata_budget(store).await;
    store_in_batches(store).await;
    unindexed_message_is_searched(store).await;
    copy_keeps_source_modseq(store).await;
    modseq_ahead_moves_mailbox(store).await;
    expunge_log_is_capped(store).await;
    revocation_hints(store).await;
    deleted_account_refuses_writes(store).await;
    select_carries_flags(store).await;
}

/// A login name no earlier run used.
fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{nanos:x}-{}", N.fetch_add(1, Ordering::Relaxed))
}

async fn new_user<S: AccountStore>(store: &S, prefix: &str) -> UserId {
    store
        .create_user(
            &unique(prefix),
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
        )
        .await
        .expect("create_user")
        .id
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// 2024-03-01T12:00:00Z plus `days`, given in zone +02:00.
fn date(days: i64) -> InternalDate {
    InternalDate {
        unix_seconds: 1_709_294_400 + days * 86_400,
        tz_offset_minutes: 120,
    }
}

/// The day number of `date(days)` in its own zone.
fn day(days: i64) -> i32 {
    crate::search::day_number(date(days))
}

/// A message whose every attribute derives from `n`.
fn msg(user: UserId, n: u32, flags: &[&str]) -> NewMessage {
    NewMessage {
        blob: BlobKey::for_content(user, &format!("{n:064x}")),
        size: 1000 + u64::from(n),
        internal_date: date(i64::from(n)),
        flags: s(flags),
        summary: Bytes::from(format!("summary-{n}")),
        index: SearchIndex {
            headers: vec![
                ("From".into(), format!("Sender {n} <s{n}@example.org>")),
                ("Subject".into(), format!("Grüße Nummer {n}")),
            ],
            sent_date: Some(date(i64::from(n) - 1)),
            body_text: format!("Body text of message {n}, Straße"),
        },
    }
}

fn all() -> UidSet {
    UidSet::from_ranges([(1, u32::MAX)])
}

fn uids(v: &[u32]) -> Vec<Uid> {
    v.iter().copied().map(Uid).collect()
}

/// A message for the search-index checks: `n` picks one of a few texts with mixed case, accents,
/// Greek, Japanese and encoded-word-like text, so trigram postings meet non-ASCII lower-casing.
fn text_msg(user: UserId, n: u32) -> NewMessage {
    const SUBJECTS: [&str; 5] = [
        "Quarterly report ALPHA",
        "Grüße aus Köln",
        "ΣΊΣΥΦΟΣ and the stone",
        "Re: alpha beta",
        "日本語のテキスト",
    ];
    const BODIES: [&str; 5] = [
        "The numbers are in the Straße sheet.",
        "Ünïcödé body with ALPHA inside",
        "",
        "beta gamma delta",
        "本文は日本語です。 alpha",
    ];
    let i = (n as usize) % SUBJECTS.len();
    let mut m = msg(user, n, &[]);
    m.index = SearchIndex {
        headers: vec![
            ("From".into(), format!("Sender {n} <s{n}@example.org>")),
            ("To".into(), format!("Bob{} <bob@example.com>", n % 2)),
            (
                "Cc".into(),
                if n.is_multiple_of(3) {
                    "Carol <carol@example.net>".into()
                } else {
                    String::new()
                },
            ),
            ("Bcc".into(), format!("dave{}@example.com", n % 4)),
            ("Subject".into(), SUBJECTS[i].into()),
        ],
        sent_date: None,
        body_text: format!("{} #{n}", BODIES[i]),
    };
    m
}

/// The keys whose answers the index must not change: long and short needles, every string key,
/// flag keys with postings, and combinations of them.
fn index_keys() -> Vec<SearchKey> {
    use SearchKey as K;
    let b = Box::new;
    let mut keys = Vec::new();
    for needle in [
        "alpha",
        "ALPHA",
        "pha be",
        "köln",
        "KÖLN",
        "grüße",
        "日本語",
        "本語",
        "σίσυφος",
        "ΣΊΣΥΦΟΣ",
        "straße",
        "report",
        "al",
        "",
        "#1",
        "#12",
        "no such text",
        "example.org",
    ] {
        keys.push(K::Header("Subject".into(), needle.into()));
        keys.push(K::Body(needle.into()));
        keys.push(K::Text(needle.into()));
    }
    keys.extend([
        K::Header("From".into(), "s3@example".into()),
        K::Header("To".into(), "bob1".into()),
        K::Header("Cc".into(), "carol".into()),
        K::Header("Bcc".into(), "DAVE2".into()),
        K::Text("subject: re: alpha".into()),
        K::Text("from: sender 4".into()),
        K::NoFlag("\\Seen".into()),
        K::Flag("\\Deleted".into()),
        K::Or(
            b(K::Header("Subject".into(), "alpha".into())),
            b(K::Body("日本語".into())),
        ),
        K::Or(b(K::Body("gamma".into())), b(K::Flag("\\Seen".into()))),
        K::And(vec![K::Text("alpha".into()), K::NoFlag("\\Seen".into())]),
        K::And(vec![K::Text("alpha".into()), K::Text("köln".into())]),
        K::Not(b(K::Text("alpha".into()))),
    ]);
    keys
}

/// What `key` matches in the mailbox, computed by evaluating every message as the scan does:
/// the reference the indexed search must agree with.
async fn scan_answer<S: MailStore>(
    store: &S,
    user: UserId,
    mbox: MailboxId,
    key: &SearchKey,
) -> Vec<Uid> {
    let projection = yubin_meta_api::IndexProjection {
        headers: s(&["From", "To", "Cc", "Bcc", "Subject"]),
        body_chars: u32::MAX,
    };
    let indexed = store
        .search_indexed(user, mbox, &SearchKey::All, &projection)
        .await
        .expect("search_indexed");
    let records = store.fetch(user, mbox, &all(), false).await.expect("fetch");
    assert_eq!(indexed.len(), records.len(), "one index per message");
    indexed
        .iter()
        .zip(&records)
        .filter(|(ix, rec)| {
            assert_eq!(ix.uid, rec.uid);
            crate::search::matches(
                key,
                &crate::search::Candidate {
                    uid: rec.uid,
                    modseq: rec.modseq,
                    flags: &rec.flags,
                    internal_date: rec.internal_date,
                    size: rec.size,
                    index: Some(&ix.index),
                    text: None,
                },
            )
        })
        .map(|(_, rec)| rec.uid)
        .collect()
}

async fn assert_index_agrees<S: MailStore>(store: &S, user: UserId, mbox: MailboxId, when: &str) {
    for key in index_keys() {
        let got = store.search(user, mbox, &key).await.expect("search");
        let want = scan_answer(store, user, mbox, &key).await;
        assert_eq!(got, want, "{when}: search {key:?}");
    }
}
