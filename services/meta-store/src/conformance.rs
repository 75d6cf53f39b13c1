//! The behaviour every [`MailStore`] + [`AccountStore`] must show, as one async suite.
//!
//! Run it against a backend with [`run_all`]; each check creates its own users (unique names),
//! so the suite can run repeatedly against the same persistent store and checks never see each
//! other's data. A failed check panics with a message naming it, like an `assert!` in a test.
//! The store must enforce [`LIMITS`] (`with_limits`), which the checks in [`limits`] reach.

mod divergences;
mod fulltext;
mod history;
mod limits;
mod revocation;
mod snapshot;

pub use divergences::copy_keeps_source_modseq;
pub use fulltext::index_lag_stays_exact;
pub use history::{expunge_log_is_capped, modseq_ahead_moves_mailbox};
pub use limits::{
    LIMITS, flag_merge_is_linear, gram_flood, keyword_limits, mailbox_limit, metadata_budget,
    store_in_batches, unindexed_message_is_searched,
};
pub use revocation::{deleted_account_refuses_writes, revocation_hints};
pub use snapshot::select_carries_flags;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use yubin_meta_api::{
    AccountStore, Alias, BlobKey, ChangeKind, Domain, FlagOp, IndexProjection, InternalDate,
    MailStore, MailboxId, MetaError, MetadataDepth, MetadataEntry, ModSeq, NewMessage, QuotaLimits,
    SearchIndex, SearchKey, SpecialUse, Uid, UidRange, UidSet, UserId,
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
            uid_validity_after_recreate, watch, isolation, concurrent_appends, concurrent_flags,
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

pub async fn users<S: MailStore + AccountStore>(store: &S) {
    let name = unique("Conf-Users");
    let rec = store
        .create_user(&name, "hash-1")
        .await
        .expect("create_user");
    assert_eq!(
        rec.name,
        name.to_lowercase(),
        "users: names are lower-cased"
    );
    assert_eq!(rec.password_hash, "hash-1");
    assert!(!rec.disabled);
    let dup = store.create_user(&name.to_uppercase(), "other").await;
    assert!(
        matches!(dup, Err(MetaError::AlreadyExists(_))),
        "users: duplicate name must be AlreadyExists, got {dup:?}"
    );
    let found = store.user_by_name(&name).await.expect("user_by_name");
    assert_eq!(found.as_ref(), Some(&rec), "users: lookup by name");
    let found = store
        .user_by_name(&name.to_uppercase())
        .await
        .expect("user_by_name");
    assert_eq!(
        found.as_ref().map(|u| u.id),
        Some(rec.id),
        "users: lookup ignores case"
    );
    assert_eq!(
        store.user_by_name(&unique("nobody")).await.expect("lookup"),
        None,
        "users: unknown name"
    );
    store
        .set_password_hash(rec.id, "hash-2")
        .await
        .expect("set_password_hash");
    let found = store
        .user_by_name(&name)
        .await
        .expect("lookup")
        .expect("exists");
    assert_eq!(
        found.password_hash, "hash-2",
        "users: password hash replaced"
    );
    let all = store.list_users().await.expect("list_users");
    assert!(
        all.iter().any(|u| u.id == rec.id && u.name == rec.name),
        "users: listed"
    );
    let other = store
        .create_user(&unique("conf-users"), "h")
        .await
        .expect("create");
    assert_ne!(other.id, rec.id, "users: distinct ids");
    let boxes = store.list_mailboxes(rec.id).await.expect("list");
    assert_eq!(boxes.len(), 1, "users: a new account has exactly INBOX");
    assert_eq!(boxes[0].name, "INBOX");
}

pub async fn inbox_exists<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-inbox").await;
    let boxes = store.list_mailboxes(user).await.expect("list");
    assert!(boxes.iter().any(|b| b.name == "INBOX"), "INBOX exists");
    let st = store.mailbox_status(user, "iNbOx").await.expect("status");
    assert_eq!(
        st.name, "INBOX",
        "INBOX is case-insensitive and spelled upper case"
    );
    assert_eq!((st.exists, st.unseen, st.deleted, st.size), (0, 0, 0, 0));
    assert_eq!(st.uid_next, Uid(1), "first UID is 1");
    let sel = store.select(user, "inbox").await.expect("select");
    assert_eq!(sel.info.id, st.id);
    assert!(sel.uids.is_empty() && sel.first_unseen.is_none());
    // An account that has never been used still has an INBOX (created on first use).
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let fresh = UserId((1 << 50) + nanos % (1 << 40));
    let st = store
        .mailbox_status(fresh, "INBOX")
        .await
        .expect("status of fresh user");
    assert_eq!(st.exists, 0);
    let r = store
        .append(fresh, "INBOX", vec![msg(fresh, 1, &[])])
        .await
        .expect("append");
    assert_eq!(r.uids, uids(&[1]));
}

pub async fn mailboxes<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-mbox").await;
    let work = store
        .create_mailbox(user, "Work", None)
        .await
        .expect("create Work");
    assert_eq!(work.name, "Work");
    assert_eq!(work.uid_next, Uid(1));
    assert_eq!(work.exists, 0);
    let proj = store
        .create_mailbox(user, "Work/Projects", Some(SpecialUse::Archive))
        .await
        .expect("create child");
    assert_eq!(
        proj.special_use,
        Some(SpecialUse::Archive),
        "special-use kept"
    );
    assert_ne!(proj.id, work.id);
    for dup in ["Work", "inbox", "INBOX", "Work/Projects/"] {
        let r = store.create_mailbox(user, dup, None).await;
        assert!(
            matches!(r, Err(MetaError::AlreadyExists(_))),
            "create {dup}: AlreadyExists, got {r:?}"
        );
    }
    for bad in ["", "a//b", "/a", "a*b", "a%"] {
        let r = store.create_mailbox(user, bad, None).await;
        assert!(
            matches!(r, Err(MetaError::Invalid(_))),
            "create {bad:?}: Invalid, got {r:?}"
        );
    }
    // RFC 3501 §6.3.3: superiors are created as needed.
    store
        .create_mailbox(user, "a/b/c", None)
        .await
        .expect("create a/b/c");
    store
        .create_mailbox(user, "Trash/", Some(SpecialUse::Trash))
        .await
        .expect("trailing /");
    let names: Vec<String> = store
        .list_mailboxes(user)
        .await
        .expect("list")
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(
        sorted(names),
        s(&[
            "INBOX",
            "Trash",
            "Work",
            "Work/Projects",
            "a",
            "a/b",
            "a/b/c"
        ]),
        "list after creates"
    );
    let trash = store.mailbox_status(user, "Trash").await.expect("status");
    assert_eq!(trash.special_use, Some(SpecialUse::Trash));

    // Rename keeps ids and UIDVALIDITY and carries inferiors along (RFC 3501 §6.3.5).
    store
        .append(user, "Work/Projects", vec![msg(user, 1, &[])])
        .await
        .expect("append");
    store
        .rename_mailbox(user, "Work", "Jobs/Old")
        .await
        .expect("rename");
    let boxes = store.list_mailboxes(user).await.expect("list");
    let by_name = |n: &str| boxes.iter().find(|b| b.name == n).cloned();
    assert!(
        by_name("Work").is_none() && by_name("Work/Projects").is_none(),
        "old names gone"
    );
    let jobs = by_name("Jobs/Old").expect("renamed");
    assert_eq!(
        (jobs.id, jobs.uid_validity),
        (work.id, work.uid_validity),
        "rename keeps id"
    );
    let jp = by_name("Jobs/Old/Projects").expect("inferior renamed");
    assert_eq!(
        (jp.id, jp.uid_validity, jp.exists),
        (proj.id, proj.uid_validity, 1)
    );
    assert!(
        by_name("Jobs").is_some(),
        "superior of the new name is created"
    );
    for (from, to, want) in [
        ("Nope", "X", "NotFound"),
        ("a", "Trash", "AlreadyExists"),
        ("a", "INBOX", "AlreadyExists"),
        ("a", "a/b/x", "Invalid"),
        ("a", "a", "Invalid"),
    ] {
        let r = store.rename_mailbox(user, from, to).await;
        let got = match &r {
            Err(MetaError::NotFound(_)) => "NotFound",
            Err(MetaError::AlreadyExists(_)) => "AlreadyExists",
            Err(MetaError::Invalid(_)) => "Invalid",
            _ => "other",
        };
        assert_eq!(got, want, "rename {from} -> {to}: {r:?}");
    }

    // Delete: INBOX never; a parent alone, its children stay (the simple rule).
    let r = store.delete_mailbox(user, "inbox").await;
    assert!(
        matches!(r, Err(MetaError::Invalid(_))),
        "delete INBOX: Invalid, got {r:?}"
    );
    let r = store.delete_mailbox(user, "Nope").await;
    assert!(
        matches!(r, Err(MetaError::NotFound(_))),
        "delete missing: NotFound, got {r:?}"
    );
    store
        .delete_mailbox(user, "Jobs/Old")
        .await
        .expect("delete parent");
    let names: Vec<String> = store
        .list_mailboxes(user)
        .await
        .expect("list")
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert!(!names.contains(&"Jobs/Old".to_string()), "deleted");
    assert!(
        names.contains(&"Jobs/Old/Projects".to_string()),
        "child survives delete"
    );
    let r = store.mailbox_status(user, "Jobs/Old").await;
    assert!(
        matches!(r, Err(MetaError::NotFound(_))),
        "status of deleted: {r:?}"
    );
    let r = store.fetch(user, work.id, &all(), false).await;
    assert!(
        matches!(r, Err(MetaError::NotFound(_))),
        "fetch of deleted id: {r:?}"
    );
}

pub async fn rename_inbox<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-inboxren").await;
    let msgs = (1..=3)
        .map(|n| msg(user, n, if n == 2 { &["\\Seen"] } else { &[] }))
        .collect();
    store.append(user, "INBOX", msgs).await.expect("append");
    store
        .create_mailbox(user, "INBOX/Child", None)
        .await
        .expect("child");
    let before = store.select(user, "INBOX").await.expect("select");
    store
        .rename_mailbox(user, "inbox", "Old Mail")
        .await
        .expect("rename INBOX");
    let inbox = store.select(user, "INBOX").await.expect("select INBOX");
    assert_eq!(
        inbox.info.id, before.info.id,
        "INBOX stays the same mailbox"
    );
    assert_eq!(inbox.info.uid_validity, before.info.uid_validity);
    assert!(inbox.uids.is_empty(), "INBOX is left empty");
    assert_eq!(
        (inbox.info.exists, inbox.info.unseen, inbox.info.size),
        (0, 0, 0)
    );
    assert_eq!(inbox.info.uid_next, Uid(4), "UIDs are never reused");
    let old = store.select(user, "Old Mail").await.expect("new mailbox");
    assert_ne!(old.info.id, before.info.id);
    assert_eq!(old.uids, uids(&[1, 2, 3]), "new mailbox gets new UIDs");
    assert_eq!((old.info.exists, old.info.unseen), (3, 2));
    let f = store
        .fetch(user, old.info.id, &all(), true)
        .await
        .expect("fetch");
    assert_eq!(f[1].flags, s(&["\\Seen"]), "flags move along");
    assert_eq!(
        f[2].summary.as_deref(),
        Some(&b"summary-3"[..]),
        "summaries move along"
    );
    let ch = store
        .changes_since(user, before.info.id, before.info.highest_modseq)
        .await
        .expect("changes");
    assert_eq!(
        ch.vanished,
        uids(&[1, 2, 3]),
        "INBOX watchers see the messages vanish"
    );
    let names: Vec<String> = store
        .list_mailboxes(user)
        .await
        .expect("list")
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert!(
        names.contains(&"INBOX/Child".to_string()),
        "INBOX's inferiors stay"
    );
}

pub async fn subscriptions<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-subs").await;
    assert!(
        store
            .list_subscriptions(user)
            .await
            .expect("subs")
            .is_empty()
    );
    store
        .create_mailbox(user, "Foo", None)
        .await
        .expect("create");
    store
        .set_subscribed(user, "Foo", true)
        .await
        .expect("subscribe");
    store
        .set_subscribed(user, "Foo", true)
        .await
        .expect("subscribe twice");
    store
        .set_subscribed(user, "inbox", true)
        .await
        .expect("subscribe inbox");
    store
        .set_subscribed(user, "Ghost/Town", true)
        .await
        .expect("subscribe nonexistent");
    assert_eq!(
        sorted(store.list_subscriptions(user).await.expect("subs")),
        s(&["Foo", "Ghost/Town", "INBOX"])
    );
    store.delete_mailbox(user, "Foo").await.expect("delete");
    assert!(
        store
            .list_subscriptions(user)
            .await
            .expect("subs")
            .contains(&"Foo".to_string()),
        "subscriptions outlive mailboxes"
    );
    store
        .set_subscribed(user, "Foo", false)
        .await
        .expect("unsubscribe");
    store
        .set_subscribed(user, "Never", false)
        .await
        .expect("unsubscribe unknown");
    assert_eq!(
        sorted(store.list_subscriptions(user).await.expect("subs")),
        s(&["Ghost/Town", "INBOX"])
    );
}

pub async fn append_and_select<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-append").await;
    let st0 = store.mailbox_status(user, "INBOX").await.expect("status");
    let r1 = store
        .append(
            user,
            "INBOX",
            vec![
                msg(user, 1, &["\\Seen", "\\Recent"]),
                msg(user, 2, &["$Work"]),
            ],
        )
        .await
        .expect("append");
    assert_eq!(r1.uids, uids(&[1, 2]), "UIDs in the order given");
    assert_eq!(r1.uid_validity, st0.uid_validity);
    assert_eq!(r1.mailbox, st0.id);
    let st1 = store.mailbox_status(user, "INBOX").await.expect("status");
    assert!(
        st1.highest_modseq > st0.highest_modseq,
        "HIGHESTMODSEQ ascends"
    );
    assert_eq!(st1.uid_next, Uid(3));
    let mut last = st1.clone();
    for n in 3..=5 {
        let r = store
            .append(user, "INBOX", vec![msg(user, n, &["\\Deleted"])])
            .await
            .expect("append");
        assert_eq!(r.uids, uids(&[n]), "UIDs ascend");
        let st = store.mailbox_status(user, "INBOX").await.expect("status");
        assert!(
            st.highest_modseq > last.highest_modseq,
            "HIGHESTMODSEQ strictly ascends"
        );
        assert!(st.uid_next > last.uid_next, "UIDNEXT strictly ascends");
        last = st;
    }
    assert_eq!(last.exists, 5);
    assert_eq!(last.unseen, 4);
    assert_eq!(last.deleted, 3);
    assert_eq!(last.size, (1..=5).map(|n| 1000 + n).sum::<u64>());
    let sel = store.select(user, "INBOX").await.expect("select");
    assert_eq!(sel.uids, uids(&[1, 2, 3, 4, 5]));
    assert_eq!(sel.first_unseen, Some(Uid(2)));
    assert_eq!(sel.info, last);
    assert!(
        sel.keywords.contains(&"$Work".to_string()),
        "keywords in use"
    );
    assert!(
        !sel.keywords.iter().any(|k| k.starts_with('\\')),
        "keywords exclude system flags"
    );
    let f = store
        .fetch(user, sel.info.id, &UidSet::from_uids([Uid(1)]), false)
        .await
        .expect("fetch");
    assert_eq!(f[0].flags, s(&["\\Seen"]), "\\Recent is never stored");
    let r = store.append(user, "Missing", vec![msg(user, 9, &[])]).await;
    assert!(
        matches!(r, Err(MetaError::NotFound(_))),
        "append to missing: {r:?}"
    );
    let r = store
        .append(user, "INBOX", vec![msg(user, 9, &["bad flag"])])
        .await;
    assert!(
        matches!(r, Err(MetaError::Invalid(_))),
        "append with bad flag: {r:?}"
    );
    let after = store.mailbox_status(user, "INBOX").await.expect("status");
    assert_eq!(after, last, "failed appends change nothing");
    let batch: Vec<NewMessage> = (10..20).map(|n| msg(user, n, &[])).collect();
    let r = store
        .append(user, "INBOX", batch)
        .await
        .expect("batch append");
    assert_eq!(r.uids, uids(&[6, 7, 8, 9, 10, 11, 12, 13, 14, 15]));
}

pub async fn fetch<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-fetch").await;
    let r = store
        .append(
            user,
            "INBOX",
            (1..=5).map(|n| msg(user, n, &["\\Flagged"])).collect(),
        )
        .await
        .expect("append");
    let mbox = r.mailbox;
    let f = store
        .fetch(
            user,
            mbox,
            &UidSet::from_ranges([(2, 3), (5, 9), (100, u32::MAX)]),
            false,
        )
        .await
        .expect("fetch");
    assert_eq!(
        f.iter().map(|m| m.uid).collect::<Vec<_>>(),
        uids(&[2, 3, 5])
    );
    assert!(
        f.iter().all(|m| m.summary.is_none()),
        "no summary unless asked"
    );
    let m3 = &f[1];
    assert_eq!(m3.size, 1003);
    assert_eq!(m3.internal_date, date(3));
    assert_eq!(m3.blob, BlobKey::for_content(user, &format!("{:064x}", 3)));
    assert_eq!(m3.flags, s(&["\\Flagged"]));
    assert!(m3.modseq > ModSeq(0));
    let f = store
        .fetch(user, mbox, &all(), true)
        .await
        .expect("fetch all");
    assert_eq!(f.len(), 5);
    for m in &f {
        let want = format!("summary-{}", m.uid.0);
        assert_eq!(
            m.summary.as_deref(),
            Some(want.as_bytes()),
            "summary of {}",
            m.uid
        );
    }
    assert!(
        store
            .fetch(user, mbox, &UidSet::new(), true)
            .await
            .expect("empty")
            .is_empty()
    );
    let r = store.fetch(user, MailboxId(9_999_999), &all(), false).await;
    assert!(
        matches!(r, Err(MetaError::NotFound(_))),
        "fetch in missing mailbox: {r:?}"
    );
}

pub async fn store_flags<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-store").await;
    let r = store
        .append(user, "INBOX", (1..=4).map(|n| msg(user, n, &[])).collect())
        .await
        .expect("append");
    let mbox = r.mailbox;
    let one = |u: u32| UidSet::from_uids([Uid(u)]);
    let st0 = store.mailbox_status(user, "INBOX").await.expect("status");
    assert_eq!((st0.unseen, st0.deleted), (4, 0));

    let res = store
        .store_flags(
            user,
            mbox,
            &UidSet::from_ranges([(1, 2)]),
            FlagOp::Add,
            &s(&["\\seen", "$Todo"]),
            None,
        )
        .await
        .expect("add");
    assert_eq!(res.updated.len(), 2);
    assert_eq!(res.updated[0].0, Uid(1));
    assert_eq!(
        sorted(res.updated[0].2.clone()),
        s(&["$Todo", "\\Seen"]),
        "canonical spelling"
    );
    assert!(res.updated[0].1 > st0.highest_modseq, "new modseq");
    assert_eq!(res.highest_modseq, res.updated[0].1);
    assert!(res.modified.is_empty());
    let st = store.mailbox_status(user, "INBOX").await.expect("status");
    assert_eq!(
        (st.unseen, st.deleted),
        (2, 0),
        "unseen count after +\\Seen"
    );
    assert_eq!(st.highest_modseq, res.highest_modseq);

    // No real change: modseq kept, not listed, HIGHESTMODSEQ unchanged.
    let before = store
        .fetch(user, mbox, &one(1), false)
        .await
        .expect("fetch")[0]
        .clone();
    let res = store
        .store_flags(user, mbox, &one(1), FlagOp::Add, &s(&["\\Seen"]), None)
        .await
        .expect("noop add");
    assert!(res.updated.is_empty(), "unchanged messages are not listed");
    assert_eq!(res.highest_modseq, st.highest_modseq);
    let after = store
        .fetch(user, mbox, &one(1), false)
        .await
        .expect("fetch")[0]
        .clone();
    assert_eq!(
        after.modseq, before.modseq,
        "unchanged message keeps its modseq"
    );

    let res = store
        .store_flags(
            user,
            mbox,
            &UidSet::from_ranges([(1, 4)]),
            FlagOp::Add,
            &s(&["\\Deleted"]),
            None,
        )
        .await
        .expect("add deleted");
    assert_eq!(res.updated.len(), 4);
    let st = store.mailbox_status(user, "INBOX").await.expect("status");
    assert_eq!((st.unseen, st.deleted), (2, 4));

    let res = store
        .store_flags(
            user,
            mbox,
            &one(1),
            FlagOp::Remove,
            &s(&["\\Deleted", "$todo", "\\Answered"]),
            None,
        )
        .await
        .expect("remove");
    assert_eq!(
        res.updated,
        vec![(Uid(1), res.highest_modseq, s(&["\\Seen"]))]
    );
    let res = store
        .store_flags(
            user,
            mbox,
            &one(2),
            FlagOp::Replace,
            &s(&["\\Answered", "\\Recent"]),
            None,
        )
        .await
        .expect("replace");
    assert_eq!(
        res.updated,
        vec![(Uid(2), res.highest_modseq, s(&["\\Answered"]))]
    );
    let st = store.mailbox_status(user, "INBOX").await.expect("status");
    assert_eq!(
        (st.unseen, st.deleted),
        (3, 2),
        "counts after remove/replace"
    );
    let res = store
        .store_flags(
            user,
            mbox,
            &one(2),
            FlagOp::Replace,
            &s(&["\\answered"]),
            None,
        )
        .await
        .expect("same replace");
    assert!(
        res.updated.is_empty(),
        "replace with the same set changes nothing"
    );
    let r = store
        .store_flags(user, mbox, &one(2), FlagOp::Add, &s(&["(bad"]), None)
        .await;
    assert!(matches!(r, Err(MetaError::Invalid(_))), "bad flag: {r:?}");

    // UNCHANGEDSINCE (RFC 7162 §3.1.3).
    let cur = store.fetch(user, mbox, &all(), false).await.expect("fetch");
    let m2 = cur[1].modseq;
    let m3 = cur[2].modseq;
    assert!(m2 > m3);
    let res = store
        .store_flags(
            user,
            mbox,
            &UidSet::from_ranges([(2, 3)]),
            FlagOp::Add,
            &s(&["\\Flagged"]),
            Some(m3),
        )
        .await
        .expect("unchangedsince");
    assert_eq!(
        res.modified,
        uids(&[2]),
        "message changed after UNCHANGEDSINCE is reported"
    );
    assert_eq!(
        res.updated.iter().map(|u| u.0).collect::<Vec<_>>(),
        uids(&[3])
    );
    let f = store
        .fetch(user, mbox, &UidSet::from_ranges([(2, 3)]), false)
        .await
        .expect("fetch");
    assert!(
        !f[0].flags.contains(&"\\Flagged".to_string()),
        "modified message untouched"
    );
    assert!(f[1].flags.contains(&"\\Flagged".to_string()));
    let res = store
        .store_flags(
            user,
            mbox,
            &one(4),
            FlagOp::Add,
            &s(&["\\Flagged"]),
            Some(ModSeq(0)),
        )
        .await
        .expect("unchangedsince 0");
    assert_eq!(res.modified, uids(&[4]), "UNCHANGEDSINCE 0 always fails");
    let res = store
        .store_flags(
            user,
            mbox,
            &UidSet::from_ranges([(50, 60)]),
            FlagOp::Add,
            &s(&["\\Seen"]),
            None,
        )
        .await
        .expect("missing uids");
    assert!(
        res.updated.is_empty() && res.modified.is_empty(),
        "missing UIDs are ignored"
    );
    let r = store
        .store_flags(
            user,
            MailboxId(9_999_999),
            &all(),
            FlagOp::Add,
            &s(&["\\Seen"]),
            None,
        )
        .await;
    assert!(
        matches!(r, Err(MetaError::NotFound(_))),
        "missing mailbox: {r:?}"
    );
    let sel = store.select(user, "INBOX").await.expect("select");
    assert!(sel.keywords.contains(&"$Todo".to_string()));
    assert_eq!(sel.first_unseen, Some(Uid(2)));
}

pub async fn copy_and_move<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-copy").await;
    let r = store
        .append(
            user,
            "INBOX",
            (1..=5)
                .map(|n| msg(user, n, if n % 2 == 0 { &["\\Seen"] } else { &[] }))
                .collect(),
        )
        .await
        .expect("append");
    let inbox = r.mailbox;
    let dst = store
        .create_mailbox(user, "Archive", None)
        .await
        .expect("create");
    store
        .append(user, "Archive", vec![msg(user, 99, &[])])
        .await
        .expect("append");
    let res = store
        .copy_messages(
            user,
            inbox,
            &UidSet::from_ranges([(2, 4), (40, 50)]),
            "Archive",
            false,
        )
        .await
        .expect("copy");
    assert_eq!(res.destination, dst.id);
    assert_eq!(res.uid_validity, dst.uid_validity);
    assert_eq!(
        res.mapping,
        vec![(Uid(2), Uid(2)), (Uid(3), Uid(3)), (Uid(4), Uid(4))]
    );
    let a = store.mailbox_status(user, "Archive").await.expect("status");
    assert_eq!((a.exists, a.unseen, a.uid_next), (4, 2, Uid(5)));
    let i = store.mailbox_status(user, "INBOX").await.expect("status");
    assert_eq!(i.exists, 5, "copy leaves the source");
    let f = store
        .fetch(user, dst.id, &UidSet::from_uids([Uid(2)]), true)
        .await
        .expect("fetch");
    assert_eq!(f[0].flags, s(&["\\Seen"]), "flags copied");
    assert_eq!(f[0].internal_date, date(2), "internal date kept");
    assert_eq!(
        f[0].blob,
        BlobKey::for_content(user, &format!("{:064x}", 2)),
        "same blob"
    );
    assert_eq!(f[0].summary.as_deref(), Some(&b"summary-2"[..]));

    let before = store.mailbox_status(user, "INBOX").await.expect("status");
    let res = store
        .copy_messages(user, inbox, &UidSet::from_ranges([(1, 2)]), "archive", true)
        .await;
    assert!(
        matches!(res, Err(MetaError::NotFound(_))),
        "names other than INBOX are case-sensitive"
    );
    let res = store
        .copy_messages(user, inbox, &UidSet::from_ranges([(1, 2)]), "Archive", true)
        .await
        .expect("move");
    assert_eq!(res.mapping, vec![(Uid(1), Uid(5)), (Uid(2), Uid(6))]);
    let i = store.mailbox_status(user, "INBOX").await.expect("status");
    assert_eq!((i.exists, i.unseen), (3, 2), "move removes the source");
    assert!(i.highest_modseq > before.highest_modseq);
    let a = store.mailbox_status(user, "Archive").await.expect("status");
    assert_eq!((a.exists, a.unseen), (6, 3));
    let ch = store
        .changes_since(user, inbox, before.highest_modseq)
        .await
        .expect("changes");
    assert_eq!(
        ch.vanished,
        uids(&[1, 2]),
        "moved UIDs are in the expunged log"
    );
    assert_eq!(ch.exists, 3);
    let r = store
        .copy_messages(user, inbox, &all(), "Nope", false)
        .await;
    assert!(
        matches!(r, Err(MetaError::NotFound(_))),
        "copy to missing: {r:?}"
    );
    let r = store
        .copy_messages(user, MailboxId(9_999_999), &all(), "Archive", false)
        .await;
    assert!(
        matches!(r, Err(MetaError::NotFound(_))),
        "copy from missing: {r:?}"
    );
    let res = store
        .copy_messages(
            user,
            inbox,
            &UidSet::from_ranges([(1, 2)]),
            "Archive",
            false,
        )
        .await
        .expect("copy of gone messages");
    assert!(res.mapping.is_empty());
}

pub async fn expunge<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-expunge").await;
    let r = store
        .append(
            user,
            "INBOX",
            (1..=6)
                .map(|n| msg(user, n, if n == 3 { &["\\Seen"] } else { &[] }))
                .collect(),
        )
        .await
        .expect("append");
    let mbox = r.mailbox;
    assert!(
        store
            .expunge(user, mbox, None)
            .await
            .expect("expunge")
            .is_empty()
    );
    store
        .store_flags(
            user,
            mbox,
            &UidSet::from_uids([Uid(2), Uid(3), Uid(5)]),
            FlagOp::Add,
            &s(&["\\Deleted"]),
            None,
        )
        .await
        .expect("flag");
    let restricted = store
        .expunge(user, mbox, Some(&UidSet::from_ranges([(1, 3)])))
        .await
        .expect("uid expunge");
    assert_eq!(restricted, uids(&[2, 3]), "UID EXPUNGE only within the set");
    let st = store.mailbox_status(user, "INBOX").await.expect("status");
    assert_eq!((st.exists, st.unseen, st.deleted), (4, 4, 1));
    let rest = store.expunge(user, mbox, None).await.expect("expunge");
    assert_eq!(rest, uids(&[5]));
    let sel = store.select(user, "INBOX").await.expect("select");
    assert_eq!(sel.uids, uids(&[1, 4, 6]));
    assert_eq!(
        (sel.info.exists, sel.info.deleted, sel.info.size),
        (3, 0, 1001 + 1004 + 1006)
    );
    let r = store
        .append(user, "INBOX", vec![msg(user, 7, &[])])
        .await
        .expect("append");
    assert_eq!(r.uids, uids(&[7]), "expunged UIDs are not reused");
}

pub async fn changes_since<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-changes").await;
    let st0 = store.mailbox_status(user, "INBOX").await.expect("status");
    let mbox = st0.id;
    let r = store
        .append(user, "INBOX", (1..=3).map(|n| msg(user, n, &[])).collect())
        .await
        .expect("append");
    assert_eq!(r.uids.len(), 3);
    let ch = store
        .changes_since(user, mbox, st0.highest_modseq)
        .await
        .expect("changes");
    assert_eq!(
        ch.changed.iter().map(|m| m.uid).collect::<Vec<_>>(),
        uids(&[1, 2, 3]),
        "appended"
    );
    assert!(ch.changed.iter().all(|m| m.summary.is_none()));
    assert!(ch.vanished.is_empty() && !ch.mailbox_gone);
    assert_eq!((ch.exists, ch.uid_next), (3, Uid(4)));
    let m1 = ch.highest_modseq;

    let nothing = store.changes_since(user, mbox, m1).await.expect("changes");
    assert!(
        nothing.changed.is_empty() && nothing.vanished.is_empty(),
        "nothing after HIGHESTMODSEQ"
    );
    assert_eq!(nothing.highest_modseq, m1);

    store
        .store_flags(
            user,
            mbox,
            &UidSet::from_uids([Uid(2)]),
            FlagOp::Add,
            &s(&["\\Deleted"]),
            None,
        )
        .await
        .expect("store");
    let ch = store.changes_since(user, mbox, m1).await.expect("changes");
    assert_eq!(ch.changed.len(), 1, "flag change");
    assert_eq!(ch.changed[0].uid, Uid(2));
    assert_eq!(ch.changed[0].flags, s(&["\\Deleted"]));
    assert!(ch.highest_modseq > m1);
    let m2 = ch.highest_modseq;

    store.expunge(user, mbox, None).await.expect("expunge");
    let ch = store.changes_since(user, mbox, m2).await.expect("changes");
    assert!(ch.changed.is_empty());
    assert_eq!(ch.vanished, uids(&[2]), "expunge");
    assert_eq!(ch.exists, 2);
    let m3 = ch.highest_modseq;
    assert!(m3 > m2);
    let ch = store.changes_since(user, mbox, m1).await.expect("changes");
    assert_eq!(ch.vanished, uids(&[2]), "expunged after the flag change");
    assert!(
        ch.changed.is_empty(),
        "an expunged message is not reported as changed"
    );

    store
        .create_mailbox(user, "Other", None)
        .await
        .expect("create");
    store
        .copy_messages(user, mbox, &UidSet::from_uids([Uid(1)]), "Other", true)
        .await
        .expect("move");
    let ch = store.changes_since(user, mbox, m3).await.expect("changes");
    assert_eq!(ch.vanished, uids(&[1]), "move");
    let other = store.mailbox_status(user, "Other").await.expect("status");
    let ch = store
        .changes_since(user, other.id, ModSeq(0))
        .await
        .expect("changes");
    assert_eq!(
        ch.changed.iter().map(|m| m.uid).collect::<Vec<_>>(),
        uids(&[1]),
        "moved in"
    );

    store.delete_mailbox(user, "Other").await.expect("delete");
    let ch = store
        .changes_since(user, other.id, ModSeq(0))
        .await
        .expect("changes");
    assert!(ch.mailbox_gone, "deleted mailbox is gone");
    let ch = store
        .changes_since(user, MailboxId(9_999_999), ModSeq(0))
        .await
        .expect("changes");
    assert!(ch.mailbox_gone, "unknown mailbox is gone");
}

pub async fn search<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-search").await;
    let r = store
        .append(
            user,
            "INBOX",
            (1..=6)
                .map(|n| {
                    let f: &[&str] = match n {
                        1 => &["\\Seen"],
                        2 => &["\\Seen", "$Important"],
                        3 => &["\\Deleted"],
                        _ => &[],
                    };
                    msg(user, n, f)
                })
                .collect(),
        )
        .await
        .expect("append");
    let mbox = r.mailbox;
    let mut m6 = msg(user, 7, &[]);
    m6.index = SearchIndex {
        headers: vec![("X-Custom".into(), String::new())],
        sent_date: None,
        body_text: String::new(),
    };
    store
        .append(user, "INBOX", vec![m6])
        .await
        .expect("append 7");
    let res = store
        .store_flags(
            user,
            mbox,
            &UidSet::from_uids([Uid(6)]),
            FlagOp::Add,
            &s(&["\\Flagged"]),
            None,
        )
        .await
        .expect("flag");
    let flagged_modseq = res.highest_modseq;
    use SearchKey as K;
    let b = Box::new;
    let cases: Vec<(K, Vec<u32>)> = vec![
        (K::All, vec![1, 2, 3, 4, 5, 6, 7]),
        (
            K::Uids(UidSet::from_ranges([(2, 3), (7, u32::MAX)])),
            vec![2, 3, 7],
        ),
        (K::Flag("\\Seen".into()), vec![1, 2]),
        (K::Flag("$important".into()), vec![2]),
        (K::NoFlag("\\Seen".into()), vec![3, 4, 5, 6, 7]),
        (K::Flag("\\Deleted".into()), vec![3]),
        (K::Before(day(3)), vec![1, 2]),
        (K::On(day(3)), vec![3]),
        (K::Since(day(6)), vec![6, 7]),
        (K::SentBefore(day(2)), vec![1, 2]),
        (K::SentOn(day(2)), vec![3]),
        (K::SentSince(day(5)), vec![6]),
        (K::Larger(1005), vec![6, 7]),
        (K::Smaller(1002), vec![1]),
        (K::Header("subject".into(), "GRÜSSE".into()), vec![]),
        (
            K::Header("subject".into(), "grüße nummer 4".into()),
            vec![4],
        ),
        (K::Header("FROM".into(), "s5@EXAMPLE".into()), vec![5]),
        (K::Header("x-custom".into(), String::new()), vec![7]),
        (
            K::Header("Subject".into(), String::new()),
            vec![1, 2, 3, 4, 5, 6],
        ),
        (K::Body("STRASSE".into()), vec![]),
        (K::Body("straße".into()), vec![1, 2, 3, 4, 5, 6]),
        (K::Body("message 3,".into()), vec![3]),
        (K::Text("nummer 2".into()), vec![2]),
        (K::Text("message 6".into()), vec![6]),
        (K::Text("x-custom".into()), vec![7]),
        (K::ModSeqAtLeast(flagged_modseq), vec![6]),
        (K::Not(b(K::Flag("\\Seen".into()))), vec![3, 4, 5, 6, 7]),
        (K::Or(b(K::On(day(1))), b(K::Larger(1005))), vec![1, 6, 7]),
        (
            K::And(vec![K::NoFlag("\\Seen".into()), K::Smaller(1005)]),
            vec![3, 4],
        ),
        (K::And(vec![]), vec![1, 2, 3, 4, 5, 6, 7]),
    ];
    for (key, want) in cases {
        let got = store.search(user, mbox, &key).await.expect("search");
        assert_eq!(got, uids(&want), "search {key:?}");
    }
    let r = store.search(user, MailboxId(9_999_999), &K::All).await;
    assert!(
        matches!(r, Err(MetaError::NotFound(_))),
        "search missing mailbox: {r:?}"
    );
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

/// Search programs nested as deeply as the IMAP parser and meta's gRPC decoder allow (1000
/// levels; 500 by default) evaluate the same on every backend, for SEARCH and for the indexed
/// search SORT / THREAD use: the trees are walked recursively, so this is also the stack check.
pub async fn deep_search<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-deep-search").await;
    let r = store
        .append(
            user,
            "INBOX",
            (1..=3)
                .map(|n| msg(user, n, if n == 2 { &["\\Seen"] } else { &[] }))
                .collect(),
        )
        .await
        .expect("append");
    let mbox = r.mailbox;
    // OR $n0 (OR $n1 (… (OR $n498 \Seen))): 500 levels, true only for message 2.
    let mut ors = SearchKey::Flag("\\Seen".into());
    for i in 0..499 {
        ors = SearchKey::Or(Box::new(SearchKey::Flag(format!("$n{i}"))), Box::new(ors));
    }
    // An even number of NOTs around it changes nothing (998 levels in all); an odd one
    // negates (999).
    let mut nots = ors.clone();
    for _ in 0..498 {
        nots = SearchKey::Not(Box::new(nots));
    }
    let odd = SearchKey::Not(Box::new(nots.clone()));
    let uids = |v: Vec<Uid>| v.into_iter().map(|u| u.0).collect::<Vec<_>>();
    for (key, want) in [(&ors, vec![2]), (&nots, vec![2]), (&odd, vec![1, 3])] {
        let got = store.search(user, mbox, key).await.expect("deep search");
        assert_eq!(uids(got), want);
        let projection = IndexProjection {
            headers: vec![],
            body_chars: 0,
        };
        let got = store
            .search_indexed(user, mbox, key, &projection)
            .await
            .expect("deep indexed search");
        assert_eq!(got.iter().map(|m| m.uid.0).collect::<Vec<_>>(), want);
    }
}

pub async fn search_index_agrees_with_scan<S: MailStore + AccountStore>(store: &S) {
    use SearchKey as K;
    let user = new_user(store, "conf-search-index").await;
    let r = store
        .append(user, "INBOX", (1..=12).map(|n| text_msg(user, n)).collect())
        .await
        .expect("append");
    let inbox = r.mailbox;
    // Known answers first, so agreement below is not agreement on nothing.
    let subject = |s: &str| K::Header("Subject".into(), s.into());
    let cases = [
        (subject("alpha"), vec![3, 5, 8, 10]),
        (subject("KÖLN"), vec![1, 6, 11]),
        (subject("σίσυφος"), vec![2, 7, 12]),
        (K::Body("日本語".into()), vec![4, 9]),
        (K::Text("#12".into()), vec![12]),
        (K::Text("al".into()), vec![1, 3, 4, 5, 6, 8, 9, 10, 11]),
    ];
    for (key, want) in cases {
        let got = store.search(user, inbox, &key).await.expect("search");
        assert_eq!(got, uids(&want), "search {key:?}");
    }
    assert_index_agrees(store, user, inbox, "after append").await;

    let seen = UidSet::from_uids([Uid(1), Uid(3), Uid(4)]);
    store
        .store_flags(user, inbox, &seen, FlagOp::Add, &s(&["\\Seen"]), None)
        .await
        .expect("seen");
    let doomed = UidSet::from_uids([Uid(3), Uid(5), Uid(9)]);
    store
        .store_flags(user, inbox, &doomed, FlagOp::Add, &s(&["\\Deleted"]), None)
        .await
        .expect("deleted");
    assert_index_agrees(store, user, inbox, "after store").await;
    store.expunge(user, inbox, None).await.expect("expunge");
    assert_index_agrees(store, user, inbox, "after expunge").await;
    let got = store
        .search(user, inbox, &subject("alpha"))
        .await
        .expect("search");
    assert_eq!(got, uids(&[8, 10]), "expunged messages leave the postings");

    let other = store
        .create_mailbox(user, "Other", None)
        .await
        .expect("create")
        .id;
    store
        .copy_messages(user, inbox, &UidSet::from_ranges([(1, 8)]), "Other", false)
        .await
        .expect("copy");
    assert_index_agrees(store, user, inbox, "source after copy").await;
    assert_index_agrees(store, user, other, "destination of copy").await;
    store
        .copy_messages(user, other, &UidSet::from_ranges([(1, 3)]), "INBOX", true)
        .await
        .expect("move");
    assert_index_agrees(store, user, inbox, "destination of move").await;
    assert_index_agrees(store, user, other, "source after move").await;

    store
        .rename_mailbox(user, "Other", "Renamed")
        .await
        .expect("rename");
    assert_index_agrees(store, user, other, "after rename").await;
    // Renaming INBOX moves its messages into a new mailbox (RFC 3501 §6.3.5).
    store
        .rename_mailbox(user, "INBOX", "Old")
        .await
        .expect("rename inbox");
    let old = store.mailbox_status(user, "Old").await.expect("status").id;
    assert_index_agrees(store, user, old, "mailbox made by renaming INBOX").await;
    let inbox_now = store
        .mailbox_status(user, "INBOX")
        .await
        .expect("status")
        .id;
    assert_index_agrees(store, user, inbox_now, "INBOX after its rename").await;
    let got = store
        .search(user, inbox_now, &K::Text("alpha".into()))
        .await
        .expect("search");
    assert!(got.is_empty(), "renamed INBOX is empty: {got:?}");

    store.delete_mailbox(user, "Renamed").await.expect("delete");
    let again = store
        .create_mailbox(user, "Renamed", None)
        .await
        .expect("recreate")
        .id;
    store
        .append(user, "Renamed", vec![text_msg(user, 2)])
        .await
        .expect("append");
    assert_index_agrees(store, user, again, "recreated mailbox").await;
    let got = store
        .search(user, again, &K::Text("alpha".into()))
        .await
        .expect("search");
    assert!(
        got.is_empty(),
        "no postings survive a deleted mailbox: {got:?}"
    );
}

/// `search_indexed`: the messages `search` finds, each with its size, date and exactly the
/// projected parts of its index (what SORT, THREAD and PREVIEW read in one round trip).
pub async fn search_indexed<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-search-indexed").await;
    let mut messages: Vec<NewMessage> = (1..=4)
        .map(|n| msg(user, n, if n == 2 { &["\\Seen"] } else { &[] }))
        .collect();
    messages[3].index = SearchIndex::default();
    let r = store.append(user, "INBOX", messages).await.expect("append");
    let mbox = r.mailbox;
    let projection = IndexProjection {
        headers: s(&["subject", "X-Absent"]),
        body_chars: 9,
    };
    let got = store
        .search_indexed(user, mbox, &SearchKey::NoFlag("\\Seen".into()), &projection)
        .await
        .expect("search_indexed");
    assert_eq!(
        got.iter().map(|m| m.uid).collect::<Vec<_>>(),
        uids(&[1, 3, 4]),
        "search_indexed matches like search"
    );
    let first = &got[0];
    assert_eq!((first.size, first.internal_date), (1001, date(1)));
    assert_eq!(
        first.index.headers,
        vec![("Subject".to_string(), "Grüße Nummer 1".to_string())],
        "only the asked-for header fields"
    );
    assert_eq!(first.index.sent_date, Some(date(0)));
    assert_eq!(
        first.index.body_text, "Body text",
        "body cut to 9 characters"
    );
    assert_eq!(
        got[2].index,
        SearchIndex::default(),
        "a message without an index"
    );
    let bare = store
        .search_indexed(
            user,
            mbox,
            &SearchKey::Uids(UidSet::from_uids([Uid(2)])),
            &IndexProjection::default(),
        )
        .await
        .expect("search_indexed without projection");
    assert_eq!(bare.len(), 1);
    assert!(bare[0].index.headers.is_empty() && bare[0].index.body_text.is_empty());
    assert_eq!(bare[0].index.sent_date, Some(date(1)));
    let text = store
        .search_indexed(
            user,
            mbox,
            &SearchKey::Body("message 3".into()),
            &projection,
        )
        .await
        .expect("search_indexed by body");
    assert_eq!(text.iter().map(|m| m.uid).collect::<Vec<_>>(), uids(&[3]));
    let r = store
        .search_indexed(user, MailboxId(9_999_999), &SearchKey::All, &projection)
        .await;
    assert!(
        matches!(r, Err(MetaError::NotFound(_))),
        "search_indexed missing mailbox: {r:?}"
    );
}

pub async fn uid_validity_after_recreate<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-uidvalidity").await;
    let mut seen = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for _ in 0..3 {
        let m = store
            .create_mailbox(user, "Temp", None)
            .await
            .expect("create");
        assert!(
            seen.insert(m.uid_validity.0),
            "UIDVALIDITY differs after delete+recreate"
        );
        assert!(ids.insert(m.id), "a recreated mailbox has a new id");
        assert_ne!(m.uid_validity.0, 0, "UIDVALIDITY is non-zero");
        store.delete_mailbox(user, "Temp").await.expect("delete");
    }
    let inbox = store.mailbox_status(user, "INBOX").await.expect("status");
    assert!(!seen.contains(&inbox.uid_validity.0));
}

pub async fn watch<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-watch").await;
    let other = new_user(store, "conf-watch-other").await;
    let mut stream = store.watch(user).await.expect("watch");
    let mut other_stream = store.watch(other).await.expect("watch other");
    // Subscriptions on a remote bus may take a moment to become active; keep appending until
    // a hint arrives (hints are best effort, but a healthy store delivers them).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let inbox = store
        .mailbox_status(user, "INBOX")
        .await
        .expect("status")
        .id;
    let mut n = 0;
    let ev = loop {
        n += 1;
        store
            .append(user, "INBOX", vec![msg(user, n, &[])])
            .await
            .expect("append");
        match tokio::time::timeout(Duration::from_millis(500), stream.next()).await {
            Ok(Some(ev)) if ev.kind == ChangeKind::Appended => break ev,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("watch: stream ended"),
            Err(_) if tokio::time::Instant::now() < deadline => continue,
            Err(_) => panic!("watch: no event for an append within 10 s"),
        }
    };
    assert_eq!(ev.user, user);
    assert_eq!(ev.mailbox, inbox);
    assert!(ev.modseq > ModSeq(0));
    let r = tokio::time::timeout(Duration::from_millis(200), other_stream.next()).await;
    if let Ok(Some(ev)) = r {
        assert_eq!(ev.user, other, "watch: another user's events never leak");
    }
}

pub async fn isolation<S: MailStore + AccountStore>(store: &S) {
    let a = new_user(store, "conf-iso-a").await;
    let b = new_user(store, "conf-iso-b").await;
    store
        .create_mailbox(a, "Secret", None)
        .await
        .expect("create");
    let ra = store
        .append(a, "INBOX", vec![msg(a, 1, &["\\Seen"]), msg(a, 2, &[])])
        .await
        .expect("append a");
    let b_inbox = store.mailbox_status(b, "INBOX").await.expect("status b");
    let names: Vec<String> = store
        .list_mailboxes(b)
        .await
        .expect("list b")
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, s(&["INBOX"]), "B sees none of A's mailboxes");
    assert_eq!(b_inbox.exists, 0, "B's INBOX is B's");
    let r = store.mailbox_status(b, "Secret").await;
    assert!(matches!(r, Err(MetaError::NotFound(_))));
    // Mailbox ids are per user and may well coincide; B asking for A's id reaches B's own
    // mailbox or nothing, never A's messages.
    match store.fetch(b, ra.mailbox, &all(), true).await {
        Ok(v) => assert!(v.is_empty(), "B fetches none of A's messages"),
        Err(e) => assert!(matches!(e, MetaError::NotFound(_)), "{e:?}"),
    }
    match store.search(b, ra.mailbox, &SearchKey::All).await {
        Ok(v) => assert!(v.is_empty(), "B searches none of A's messages"),
        Err(e) => assert!(matches!(e, MetaError::NotFound(_)), "{e:?}"),
    }
    match store
        .store_flags(b, ra.mailbox, &all(), FlagOp::Add, &s(&["\\Deleted"]), None)
        .await
    {
        Ok(r) => assert!(r.updated.is_empty()),
        Err(e) => assert!(matches!(e, MetaError::NotFound(_)), "{e:?}"),
    }
    let _ = store.expunge(b, ra.mailbox, None).await;
    let _ = store
        .copy_messages(b, ra.mailbox, &all(), "INBOX", true)
        .await;
    let ch = store
        .changes_since(b, ra.mailbox, ModSeq(0))
        .await
        .expect("changes");
    assert!(ch.changed.is_empty(), "B sees no changes of A");
    let st = store.mailbox_status(a, "INBOX").await.expect("status a");
    assert_eq!(
        (st.exists, st.unseen, st.deleted),
        (2, 1, 0),
        "A's mail is untouched by B"
    );
    let b_sel = store.select(b, "INBOX").await.expect("select b");
    assert!(b_sel.uids.is_empty());
}

/// A message may only point at a body of its own account (`u/<user-id>/<sha256-hex>`): with
/// another account's key, B could APPEND a message that FETCHes A's body. Refused as `Invalid`
/// with nothing stored, the whole batch included.
pub async fn foreign_blob_keys<S: MailStore + AccountStore>(store: &S) {
    let a = new_user(store, "conf-blob-a").await;
    let b = new_user(store, "conf-blob-b").await;
    store
        .append(a, "INBOX", vec![msg(a, 1, &[])])
        .await
        .expect("append a");
    let before = store.mailbox_status(b, "INBOX").await.expect("status b");
    let usage = store.quota(b).await.expect("quota b");
    let with_blob = |blob: BlobKey| NewMessage {
        blob,
        ..msg(b, 2, &[])
    };
    let a_key = msg(a, 1, &[]).blob;
    let digest = format!("{:064x}", 1);
    for forged in [
        a_key.clone(),
        BlobKey(format!("u/{}/../{}/{digest}", b.0, a.0)),
        BlobKey(format!("u/{}/{}", b.0, &digest[..63])),
        BlobKey(format!("u/{}/{}", b.0, "Z".repeat(64))),
    ] {
        for batch in [
            vec![with_blob(forged.clone())],
            vec![msg(b, 3, &[]), with_blob(forged.clone())],
        ] {
            let r = store.append(b, "INBOX", batch).await;
            assert!(matches!(r, Err(MetaError::Invalid(_))), "{forged}: {r:?}");
        }
    }
    let after = store.mailbox_status(b, "INBOX").await.expect("status b");
    assert_eq!(
        (after.exists, after.uid_next, after.highest_modseq),
        (before.exists, before.uid_next, before.highest_modseq),
        "nothing stored"
    );
    assert_eq!(
        store.quota(b).await.expect("quota b"),
        usage,
        "nothing charged"
    );
    // B's own content keys still go in.
    store
        .append(b, "INBOX", vec![msg(b, 2, &[])])
        .await
        .expect("own key");
}

pub async fn concurrent_appends<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-conc-append").await;
    let tasks = (0..8u32).map(|t| async move {
        let mut got = Vec::with_capacity(50);
        for i in 0..50u32 {
            let r = store
                .append(user, "INBOX", vec![msg(user, t * 1000 + i, &[])])
                .await
                .expect("concurrent append");
            got.push(r.uids[0]);
        }
        got
    });
    let results = futures::future::join_all(tasks).await;
    let mut all_uids = BTreeSet::new();
    for got in &results {
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "each task sees ascending UIDs"
        );
        for u in got {
            assert!(all_uids.insert(*u), "UID {u} handed out twice");
        }
    }
    assert_eq!(all_uids.len(), 400);
    let sel = store.select(user, "INBOX").await.expect("select");
    assert_eq!(sel.info.exists, 400);
    assert_eq!(sel.info.unseen, 400);
    assert_eq!(sel.uids.len(), 400);
    assert!(
        sel.uids.windows(2).all(|w| w[0] < w[1]),
        "UIDs strictly ascend"
    );
    assert_eq!(sel.uids.iter().copied().collect::<BTreeSet<_>>(), all_uids);
    assert_eq!(sel.info.uid_next, Uid(401));
}

pub async fn concurrent_flags<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-conc-flags").await;
    let r = store
        .append(
            user,
            "INBOX",
            (1..=100).map(|n| msg(user, n, &[])).collect(),
        )
        .await
        .expect("append");
    let mbox = r.mailbox;
    let tasks = (0..8u32).map(|t| async move {
        let mut modseqs = Vec::new();
        for round in 0..10u32 {
            let lo = (t * 7 + round * 13) % 100 + 1;
            let set = UidSet::from_ranges([(lo, (lo + 30).min(100))]);
            let (op, flags) = match (t + round) % 4 {
                0 => (FlagOp::Add, s(&["\\Seen"])),
                1 => (FlagOp::Remove, s(&["\\Seen", "\\Deleted"])),
                2 => (FlagOp::Add, s(&["\\Deleted", "$K"])),
                _ => (FlagOp::Replace, s(&["\\Seen", "\\Deleted"])),
            };
            let res = store
                .store_flags(user, mbox, &set, op, &flags, None)
                .await
                .expect("concurrent store");
            modseqs.extend(res.updated.iter().map(|u| u.1));
        }
        modseqs
    });
    let all_modseqs: Vec<Vec<ModSeq>> = futures::future::join_all(tasks).await;
    for m in &all_modseqs {
        assert!(
            m.windows(2).all(|w| w[0] <= w[1]),
            "one caller's modseqs never go back"
        );
    }
    let msgs = store.fetch(user, mbox, &all(), false).await.expect("fetch");
    let unseen = msgs
        .iter()
        .filter(|m| !m.flags.contains(&"\\Seen".to_string()))
        .count();
    let deleted = msgs
        .iter()
        .filter(|m| m.flags.contains(&"\\Deleted".to_string()))
        .count();
    let st = store.mailbox_status(user, "INBOX").await.expect("status");
    assert_eq!(st.unseen as usize, unseen, "unseen count stays exact");
    assert_eq!(st.deleted as usize, deleted, "deleted count stays exact");
    let max = msgs.iter().map(|m| m.modseq).max().unwrap_or_default();
    assert_eq!(
        st.highest_modseq, max,
        "HIGHESTMODSEQ is the largest message modseq"
    );
    let by_search = store
        .search(user, mbox, &SearchKey::NoFlag("\\Seen".into()))
        .await
        .expect("search");
    assert_eq!(by_search.len(), unseen);
}

fn limits(storage_bytes: Option<u64>, messages: Option<u64>) -> QuotaLimits {
    QuotaLimits {
        storage_bytes,
        messages,
    }
}

fn is_over_quota<T: std::fmt::Debug>(r: &Result<T, MetaError>) -> bool {
    matches!(r, Err(MetaError::OverQuota(_)))
}

/// Usage must equal what the mailboxes hold: the sum of their sizes and message counts.
async fn assert_usage_exact<S: MailStore + AccountStore>(store: &S, user: UserId, what: &str) {
    let q = store.quota(user).await.expect("quota");
    let boxes = store.list_mailboxes(user).await.expect("list");
    let bytes: u64 = boxes.iter().map(|b| b.size).sum();
    let messages: u64 = boxes.iter().map(|b| u64::from(b.exists)).sum();
    assert_eq!(
        (q.storage_bytes, q.messages),
        (bytes, messages),
        "{what}: usage equals the sum of the stored messages"
    );
}

/// `MailStore::set_account_quota` (an IMAP administrator's SETQUOTA) writes the same limits as
/// `AccountStore::set_quota`, enforced by the next append; an empty set removes them.
pub async fn set_account_quota<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-setquota").await;
    store
        .set_account_quota(user, limits(None, Some(1)))
        .await
        .expect("set_account_quota");
    assert_eq!(
        store.quota(user).await.expect("quota").limits,
        limits(None, Some(1))
    );
    store
        .append(user, "INBOX", vec![msg(user, 1, &[])])
        .await
        .expect("append within the limit");
    let over = store.append(user, "INBOX", vec![msg(user, 2, &[])]).await;
    assert!(is_over_quota(&over), "message limit refuses: {over:?}");
    store
        .set_account_quota(user, QuotaLimits::default())
        .await
        .expect("removing the limits");
    assert_eq!(
        store.quota(user).await.expect("quota").limits,
        QuotaLimits::default()
    );
    store
        .append(user, "INBOX", vec![msg(user, 2, &[])])
        .await
        .expect("append without limits");
    let unknown = store
        .set_account_quota(UserId(u64::MAX - 7), limits(Some(1), None))
        .await;
    assert!(
        matches!(unknown, Err(MetaError::NotFound(_))),
        "unknown account: {unknown:?}"
    );
}

pub async fn quota_limits<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-quota").await;
    let q = store.quota(user).await.expect("quota");
    assert_eq!(
        q.limits,
        QuotaLimits::default(),
        "a new account is unlimited"
    );
    assert_eq!((q.storage_bytes, q.messages), (0, 0), "and uses nothing");

    // Sizes are 1000 + n: messages 1 and 2 use 2003 bytes.
    store
        .set_quota(user, limits(Some(3000), None))
        .await
        .expect("set_quota");
    let r = store
        .append(user, "INBOX", vec![msg(user, 1, &[]), msg(user, 2, &[])])
        .await
        .expect("append within the limit");
    let q = store.quota(user).await.expect("quota");
    assert_eq!(q.limits, limits(Some(3000), None), "limits are kept");
    assert_eq!((q.storage_bytes, q.messages), (2003, 2));
    let over = store.append(user, "INBOX", vec![msg(user, 3, &[])]).await;
    assert!(is_over_quota(&over), "storage limit refuses: {over:?}");
    let st = store.mailbox_status(user, "INBOX").await.expect("status");
    assert_eq!(
        (st.exists, st.uid_next, st.size),
        (2, Uid(3), 2003),
        "a refused append writes nothing"
    );
    // Exactly reaching a limit is allowed (997 = 3000 - 2003).
    let mut exact = msg(user, 3, &[]);
    exact.size = 997;
    store
        .append(user, "INBOX", vec![exact])
        .await
        .expect("an append reaching the limit exactly");
    assert_eq!(store.quota(user).await.expect("quota").storage_bytes, 3000);

    // Message limit; a multi-append that does not fit entirely is refused entirely.
    store
        .set_quota(user, limits(None, Some(4)))
        .await
        .expect("set_quota");
    let over = store
        .append(user, "INBOX", vec![msg(user, 4, &[]), msg(user, 5, &[])])
        .await;
    assert!(is_over_quota(&over), "message limit refuses: {over:?}");
    assert_eq!(
        store.quota(user).await.expect("quota").messages,
        3,
        "nothing of a refused multi-append is stored"
    );
    store
        .append(user, "INBOX", vec![msg(user, 4, &[])])
        .await
        .expect("the last message that fits");

    // COPY adds to the usage and is refused at the limit; MOVE within the account is not.
    store
        .create_mailbox(user, "Archive", None)
        .await
        .expect("create");
    let over = store
        .copy_messages(user, r.mailbox, &all(), "Archive", false)
        .await;
    assert!(is_over_quota(&over), "copy over the limit: {over:?}");
    let arch = store.mailbox_status(user, "Archive").await.expect("status");
    assert_eq!(arch.exists, 0, "a refused copy writes nothing");
    let moved = store
        .copy_messages(
            user,
            r.mailbox,
            &UidSet::from_uids(uids(&[1])),
            "Archive",
            true,
        )
        .await
        .expect("a move at the limit");
    assert_eq!(moved.mapping.len(), 1);
    let q = store.quota(user).await.expect("quota");
    assert_eq!(q.messages, 4, "a move does not change the usage");
    store
        .set_quota(user, limits(Some(1_000_000), Some(5)))
        .await
        .expect("set_quota");
    store
        .copy_messages(user, arch.id, &all(), "INBOX", false)
        .await
        .expect("a copy within the raised limit");
    assert_eq!(store.quota(user).await.expect("quota").messages, 5);
    // Lowering a limit below the usage is allowed; it only refuses further growth.
    store
        .set_quota(user, limits(Some(10), Some(1)))
        .await
        .expect("set_quota below usage");
    let over = store.append(user, "INBOX", vec![msg(user, 9, &[])]).await;
    assert!(is_over_quota(&over), "{over:?}");
    store
        .set_quota(user, QuotaLimits::default())
        .await
        .expect("unlimited again");
    store
        .append(user, "INBOX", vec![msg(user, 9, &[])])
        .await
        .expect("unlimited append");
    assert_usage_exact(store, user, "quota limits").await;

    let nobody = UserId(u64::MAX - 7);
    assert!(
        matches!(store.quota(nobody).await, Err(MetaError::NotFound(_))),
        "quota of an unknown account"
    );
    assert!(
        matches!(
            store.set_quota(nobody, QuotaLimits::default()).await,
            Err(MetaError::NotFound(_))
        ),
        "set_quota of an unknown account"
    );
}

pub async fn quota_usage_is_exact<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-usage").await;
    let a = store
        .append(user, "INBOX", (1..=6).map(|n| msg(user, n, &[])).collect())
        .await
        .expect("append");
    assert_usage_exact(store, user, "after append").await;
    store
        .create_mailbox(user, "Work", None)
        .await
        .expect("create");
    store
        .copy_messages(
            user,
            a.mailbox,
            &UidSet::from_uids(uids(&[1, 2])),
            "Work",
            false,
        )
        .await
        .expect("copy");
    assert_usage_exact(store, user, "after copy").await;
    assert_eq!(store.quota(user).await.expect("quota").messages, 8);
    store
        .copy_messages(
            user,
            a.mailbox,
            &UidSet::from_uids(uids(&[3])),
            "Work",
            true,
        )
        .await
        .expect("move");
    assert_usage_exact(store, user, "after move").await;
    assert_eq!(store.quota(user).await.expect("quota").messages, 8);
    store
        .store_flags(
            user,
            a.mailbox,
            &UidSet::from_uids(uids(&[4, 5])),
            FlagOp::Add,
            &s(&["\\Deleted"]),
            None,
        )
        .await
        .expect("store");
    let gone = store.expunge(user, a.mailbox, None).await.expect("expunge");
    assert_eq!(gone, uids(&[4, 5]));
    assert_usage_exact(store, user, "after expunge").await;
    assert_eq!(store.quota(user).await.expect("quota").messages, 6);
    store
        .rename_mailbox(user, "INBOX", "Old")
        .await
        .expect("rename INBOX");
    assert_usage_exact(store, user, "after renaming INBOX").await;
    store.delete_mailbox(user, "Work").await.expect("delete");
    assert_usage_exact(store, user, "after delete_mailbox").await;
    let q = store.quota(user).await.expect("quota");
    assert_eq!(q.messages, 3, "only Old's messages remain");
    assert_eq!(
        q.storage_bytes,
        1001 + 1002 + 1006,
        "INBOX kept messages 1, 2 and 6"
    );
}

pub async fn concurrent_appends_respect_quota<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-quota-conc").await;
    store
        .set_quota(user, limits(None, Some(25)))
        .await
        .expect("set_quota");
    let tasks = (0..8u32).map(|t| async move {
        let (mut stored, mut refused) = (0u64, 0u64);
        for i in 0..10u32 {
            match store
                .append(user, "INBOX", vec![msg(user, t * 100 + i, &[])])
                .await
            {
                Ok(_) => stored += 1,
                Err(MetaError::OverQuota(_)) => refused += 1,
                Err(e) => panic!("concurrent append near the limit: {e:?}"),
            }
        }
        (stored, refused)
    });
    let results = futures::future::join_all(tasks).await;
    let stored: u64 = results.iter().map(|r| r.0).sum();
    let refused: u64 = results.iter().map(|r| r.1).sum();
    assert_eq!(stored, 25, "exactly the limit is stored, never more");
    assert_eq!(refused, 80 - 25);
    assert_usage_exact(store, user, "message limit under concurrency").await;

    // A storage limit under concurrent appends and copies.
    let other = new_user(store, "conf-quota-conc2").await;
    store
        .set_quota(other, limits(Some(20_500), None))
        .await
        .expect("set_quota");
    store
        .create_mailbox(other, "Copies", None)
        .await
        .expect("create");
    let first = store
        .append(other, "INBOX", vec![msg(other, 1, &[])])
        .await
        .expect("first append");
    let tasks = (0..8u32).map(|t| async move {
        for i in 0..6u32 {
            let r = if i % 2 == 0 {
                store
                    .append(other, "INBOX", vec![msg(other, t * 100 + i, &[])])
                    .await
                    .map(|_| ())
            } else {
                store
                    .copy_messages(
                        other,
                        first.mailbox,
                        &UidSet::from_uids(uids(&[1])),
                        "Copies",
                        false,
                    )
                    .await
                    .map(|_| ())
            };
            match r {
                Ok(()) | Err(MetaError::OverQuota(_)) => {}
                Err(e) => panic!("concurrent write near the limit: {e:?}"),
            }
        }
    });
    futures::future::join_all(tasks).await;
    let q = store.quota(other).await.expect("quota");
    assert!(
        q.storage_bytes <= 20_500,
        "the storage limit is never exceeded: {}",
        q.storage_bytes
    );
    assert!(
        q.storage_bytes > 20_500 - 1200,
        "the account filled up to the limit: {}",
        q.storage_bytes
    );
    assert_usage_exact(store, other, "storage limit under concurrency").await;
}

/// A bound no UIDNEXT reaches: claims everything unclaimed.
const UNBOUNDED: Uid = Uid(u32::MAX);

pub async fn claim_recent<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-recent").await;
    let sel = store.select(user, "INBOX").await.expect("select");
    let mbox = sel.info.id;
    let first = store
        .claim_recent(user, mbox, UNBOUNDED)
        .await
        .expect("claim");
    assert!(
        first.is_empty(),
        "an empty mailbox has nothing recent: {first:?}"
    );
    store
        .append(user, "INBOX", (1..=3).map(|n| msg(user, n, &[])).collect())
        .await
        .expect("append");
    // Unclaimed messages are what STATUS RECENT counts, in every view of the mailbox.
    let status = store.mailbox_status(user, "INBOX").await.expect("status");
    assert_eq!(status.recent, 3, "three unclaimed messages");
    let listed = store.list_mailboxes(user).await.expect("list");
    assert_eq!(
        listed.iter().find(|m| m.id == mbox).map(|m| m.recent),
        Some(3)
    );
    // A session that announces UIDs 1 and 2 only claims exactly those.
    let got = store.claim_recent(user, mbox, Uid(3)).await.expect("claim");
    assert_eq!(
        got,
        UidRange {
            from: Uid(1),
            to: Uid(3)
        },
        "the claim stops at its bound"
    );
    let status = store.mailbox_status(user, "INBOX").await.expect("status");
    assert_eq!(status.recent, 1, "UID 3 is still unclaimed");
    assert!(got.contains(Uid(2)) && !got.contains(Uid(3)));
    let below = store.claim_recent(user, mbox, Uid(2)).await.expect("claim");
    assert_eq!(
        below,
        UidRange {
            from: Uid(3),
            to: Uid(3)
        },
        "a bound below the mark claims nothing and leaves the mark"
    );
    let capped = store
        .claim_recent(user, mbox, Uid(1000))
        .await
        .expect("claim");
    assert_eq!(
        capped,
        UidRange {
            from: Uid(3),
            to: Uid(4)
        },
        "a bound above UIDNEXT is capped at UIDNEXT"
    );
    let status = store.mailbox_status(user, "INBOX").await.expect("status");
    assert_eq!(status.recent, 0, "claimed messages are no longer counted");
    let again = store
        .claim_recent(user, mbox, UNBOUNDED)
        .await
        .expect("claim");
    assert!(again.is_empty(), "and to no one else: {again:?}");
    assert_eq!(again.from, Uid(4));
    store
        .append(user, "INBOX", vec![msg(user, 4, &[])])
        .await
        .expect("append");
    let sel = store.select(user, "INBOX").await.expect("select");
    assert_eq!(sel.info.recent, 1, "one unclaimed message at select");
    // The earlier capped claim did not reserve UIDs beyond UIDNEXT: UID 4 is still free.
    let next = store
        .claim_recent(user, mbox, UNBOUNDED)
        .await
        .expect("claim");
    assert_eq!(
        next,
        UidRange {
            from: Uid(4),
            to: Uid(5)
        }
    );
    let zero = store.claim_recent(user, mbox, Uid(0)).await.expect("claim");
    assert!(zero.is_empty(), "bound 0 claims nothing: {zero:?}");
    assert!(
        matches!(
            store
                .claim_recent(user, MailboxId(u64::MAX - 3), UNBOUNDED)
                .await,
            Err(MetaError::NotFound(_))
        ),
        "claim on an unknown mailbox"
    );
}

pub async fn concurrent_claim_recent<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-recent-conc").await;
    let mbox = store.select(user, "INBOX").await.expect("select").info.id;
    let appender = async {
        for batch in 0..20u32 {
            store
                .append(
                    user,
                    "INBOX",
                    (0..5).map(|i| msg(user, batch * 10 + i, &[])).collect(),
                )
                .await
                .expect("append");
        }
    };
    // Claimers bound their claims like sessions do (by what they have seen, which lags behind
    // UIDNEXT), some below the mark, some beyond UIDNEXT.
    let claimers = (0..6u32).map(|c| async move {
        let mut got = Vec::new();
        for round in 0..15u32 {
            let seen = store
                .mailbox_status(user, "INBOX")
                .await
                .expect("status")
                .uid_next
                .0;
            let up_to = match (c + round) % 4 {
                0 => UNBOUNDED,
                1 => Uid(seen.saturating_sub(3)),
                2 => Uid(seen + 7),
                _ => Uid(seen),
            };
            let r = store.claim_recent(user, mbox, up_to).await.expect("claim");
            assert!(
                r.is_empty() || r.to <= up_to,
                "claim {r:?} went past its bound {up_to:?}"
            );
            if !r.is_empty() {
                got.push(r);
            }
        }
        got
    });
    let (_, claimed) = futures::join!(appender, futures::future::join_all(claimers));
    let mut ranges: Vec<UidRange> = claimed.into_iter().flatten().collect();
    ranges.push(
        store
            .claim_recent(user, mbox, UNBOUNDED)
            .await
            .expect("final claim"),
    );
    let mut seen = BTreeSet::new();
    for r in &ranges {
        for uid in r.from.0..r.to.0 {
            assert!(seen.insert(uid), "UID {uid} was recent to two claimers");
        }
    }
    assert_eq!(
        seen,
        (1..=100).collect::<BTreeSet<u32>>(),
        "every UID was recent to exactly one claimer"
    );
}

pub async fn users_paging<S: MailStore + AccountStore>(store: &S) {
    let base = unique("conf-page");
    let mut made = Vec::new();
    for suffix in ["c", "a", "e", "b", "d"] {
        let rec = store
            .create_user(&format!("{base}-{suffix}"), "h")
            .await
            .expect("create_user");
        made.push(rec);
    }
    made.sort_by(|a, b| a.name.cmp(&b.name));
    let mut listed = Vec::new();
    let mut after = base.clone();
    loop {
        let page = store
            .list_users_page(Some(&after), 2)
            .await
            .expect("list_users_page");
        assert!(page.len() <= 2, "a page holds at most the limit");
        assert!(
            page.windows(2).all(|w| w[0].name < w[1].name),
            "a page is ordered by name"
        );
        let mine: Vec<_> = page
            .iter()
            .filter(|u| u.name.starts_with(&base))
            .cloned()
            .collect();
        let done = mine.len() < page.len() || page.len() < 2;
        listed.extend(mine);
        match page.last() {
            Some(last) if !done => after = last.name.clone(),
            _ => break,
        }
    }
    assert_eq!(
        listed, made,
        "paging lists every account once, in name order"
    );
    let upper = store
        .list_users_page(Some(&made[1].name.to_uppercase()), 1)
        .await
        .expect("page");
    assert_eq!(
        upper.first().map(|u| &u.name),
        Some(&made[2].name),
        "the cursor ignores case"
    );
    assert!(
        store
            .list_users_page(Some(&base), 0)
            .await
            .expect("page")
            .is_empty()
    );
    let first = store.list_users_page(None, 1).await.expect("first page");
    assert_eq!(first.len(), 1, "paging from the start");
    let by_id = store.user_by_id(made[0].id).await.expect("user_by_id");
    assert_eq!(by_id.as_ref(), Some(&made[0]), "user_by_id");
    assert_eq!(
        store
            .user_by_id(UserId(u64::MAX - 5))
            .await
            .expect("user_by_id"),
        None
    );
}

pub async fn disable_user<S: MailStore + AccountStore>(store: &S) {
    let name = unique("conf-disable");
    let rec = store.create_user(&name, "h").await.expect("create_user");
    assert_eq!(
        store.resolve_address(&name).await.expect("resolve"),
        Some(rec.id)
    );
    store.set_disabled(rec.id, true).await.expect("disable");
    let found = store
        .user_by_name(&name)
        .await
        .expect("lookup")
        .expect("kept");
    assert!(found.disabled, "disabled is stored");
    assert_eq!(
        store.resolve_address(&name).await.expect("resolve"),
        None,
        "a disabled account receives no mail"
    );
    store
        .append(rec.id, "INBOX", vec![msg(rec.id, 1, &[])])
        .await
        .expect("its data stays usable by the store");
    store.set_disabled(rec.id, false).await.expect("enable");
    assert!(
        !store
            .user_by_id(rec.id)
            .await
            .expect("lookup")
            .expect("kept")
            .disabled
    );
    assert_eq!(
        store.resolve_address(&name).await.expect("resolve"),
        Some(rec.id)
    );
    assert_eq!(
        store
            .mailbox_status(rec.id, "INBOX")
            .await
            .expect("status")
            .exists,
        1,
        "disabling keeps the mail"
    );
    assert!(matches!(
        store.set_disabled(UserId(u64::MAX - 9), true).await,
        Err(MetaError::NotFound(_))
    ));
}

pub async fn delete_user<S: MailStore + AccountStore>(store: &S) {
    let name = unique("conf-delete");
    let rec = store.create_user(&name, "h").await.expect("create_user");
    let bystander = new_user(store, "conf-delete-keep").await;
    let user = rec.id;
    store
        .create_mailbox(user, "Projects/2026", None)
        .await
        .expect("create");
    store
        .append(user, "INBOX", vec![msg(user, 1, &[]), msg(user, 2, &[])])
        .await
        .expect("append");
    store
        .append(user, "Projects/2026", vec![msg(user, 3, &[])])
        .await
        .expect("append");
    store
        .append(bystander, "INBOX", vec![msg(bystander, 1, &[])])
        .await
        .expect("append");
    store
        .set_subscribed(user, "Projects", true)
        .await
        .expect("subscribe");
    let address = format!("{}@alias.example", unique("conf-del-alias"));
    store
        .put_alias(&Alias {
            address: address.clone(),
            target: user,
        })
        .await
        .expect("put_alias");
    let kept_alias = format!("{}@alias.example", unique("conf-del-kept"));
    store
        .put_alias(&Alias {
            address: kept_alias.clone(),
            target: bystander,
        })
        .await
        .expect("put_alias");

    store.delete_user(user).await.expect("delete_user");
    assert_eq!(store.user_by_name(&name).await.expect("lookup"), None);
    assert_eq!(store.user_by_id(user).await.expect("lookup"), None);
    assert_eq!(store.resolve_address(&name).await.expect("resolve"), None);
    assert_eq!(
        store.resolve_address(&address).await.expect("resolve"),
        None
    );
    let aliases = store.list_aliases().await.expect("list_aliases");
    assert!(
        !aliases
            .iter()
            .any(|a| a.address == address || a.target == user),
        "the account's aliases are gone"
    );
    assert!(
        aliases.iter().any(|a| a.address == kept_alias),
        "other accounts' aliases stay"
    );
    assert!(
        !store
            .list_users()
            .await
            .expect("list")
            .iter()
            .any(|u| u.id == user)
    );
    let page = store
        .list_users_page(Some(&name[..name.len() - 1]), 10)
        .await
        .expect("page");
    assert!(!page.iter().any(|u| u.id == user), "paging skips it");
    assert!(
        matches!(store.quota(user).await, Err(MetaError::NotFound(_))),
        "no quota record remains"
    );
    assert!(matches!(
        store.delete_user(user).await,
        Err(MetaError::NotFound(_))
    ));

    // The name is free again, for a brand-new account.
    let again = store.create_user(&name, "h2").await.expect("recreate");
    assert_ne!(again.id, user, "ids are never reused");
    let boxes = store.list_mailboxes(again.id).await.expect("list");
    assert_eq!(boxes.len(), 1, "the new account starts with INBOX only");
    assert_eq!((boxes[0].name.as_str(), boxes[0].exists), ("INBOX", 0));
    assert!(
        store
            .list_subscriptions(again.id)
            .await
            .expect("subs")
            .is_empty()
    );
    let q = store.quota(again.id).await.expect("quota");
    assert_eq!((q.storage_bytes, q.messages), (0, 0));
    assert_eq!(
        store
            .mailbox_status(bystander, "INBOX")
            .await
            .expect("status")
            .exists,
        1,
        "other accounts are untouched"
    );
}

pub async fn aliases<S: MailStore + AccountStore>(store: &S) {
    let alice = store
        .create_user(&unique("conf-alias-a"), "h")
        .await
        .expect("create");
    let bob = new_user(store, "conf-alias-b").await;
    let address = format!("{}@Example.ORG", unique("Sales"));
    let lower = address.to_lowercase();
    store
        .put_alias(&Alias {
            address: address.clone(),
            target: alice.id,
        })
        .await
        .expect("put_alias");
    let listed = store.list_aliases().await.expect("list");
    assert!(
        listed.contains(&Alias {
            address: lower.clone(),
            target: alice.id
        }),
        "aliases are stored lower-cased"
    );
    assert_eq!(
        store.resolve_address(&address).await.expect("resolve"),
        Some(alice.id)
    );
    // PUT again re-points the alias.
    store
        .put_alias(&Alias {
            address: lower.clone(),
            target: bob,
        })
        .await
        .expect("re-point");
    assert_eq!(
        store.resolve_address(&lower).await.expect("resolve"),
        Some(bob)
    );
    let listed = store.list_aliases().await.expect("list");
    assert_eq!(
        listed.iter().filter(|a| a.address == lower).count(),
        1,
        "one entry per address"
    );
    // Deleting alice must not take bob's alias with it.
    store.delete_user(alice.id).await.expect("delete alice");
    assert_eq!(
        store.resolve_address(&lower).await.expect("resolve"),
        Some(bob),
        "a re-pointed alias no longer belongs to its old target"
    );

    let nobody = UserId(u64::MAX - 11);
    assert!(matches!(
        store
            .put_alias(&Alias {
                address: format!("{}@example.org", unique("x")),
                target: nobody,
            })
            .await,
        Err(MetaError::NotFound(_))
    ));
    for bad in [
        "no-at-sign",
        "@example.org",
        "a b@example.org",
        "x@exa..mple",
    ] {
        assert!(
            matches!(
                store
                    .put_alias(&Alias {
                        address: bad.into(),
                        target: bob,
                    })
                    .await,
                Err(MetaError::Invalid(_))
            ),
            "invalid alias address {bad:?}"
        );
    }
    let account = store
        .create_user(&format!("{}@example.org", unique("taken")), "h")
        .await
        .expect("create");
    assert!(
        matches!(
            store
                .put_alias(&Alias {
                    address: account.name.clone(),
                    target: bob,
                })
                .await,
            Err(MetaError::AlreadyExists(_))
        ),
        "an alias cannot shadow an account name"
    );
    store.delete_alias(&address).await.expect("delete_alias");
    assert_eq!(store.resolve_address(&lower).await.expect("resolve"), None);
    assert!(matches!(
        store.delete_alias(&lower).await,
        Err(MetaError::NotFound(_))
    ));
}

/// Domains are installation-wide: this check removes every domain it adds, and tests the
/// "no domains configured" rule when the store starts without any (as every suite run does).
pub async fn domains_and_address_resolution<S: MailStore + AccountStore>(store: &S) {
    let local = unique("conf-res");
    let user = store.create_user(&local, "h").await.expect("create").id;
    let other = new_user(store, "conf-res-other").await;
    let d1 = format!("{}.example", unique("conf-d1"));
    let d2 = format!("{}.example", unique("conf-d2"));
    let d3 = format!("{}.example", unique("conf-d3"));
    let foreign = format!("{}.example", unique("conf-foreign"));
    let resolve = |a: String| async move { store.resolve_address(&a).await.expect("resolve") };

    if store.list_domains().await.expect("list").is_empty() {
        assert_eq!(
            resolve(format!("{local}@{foreign}")).await,
            Some(user),
            "with no domains configured the local part names the account"
        );
    }
    assert_eq!(
        resolve(local.to_uppercase()).await,
        Some(user),
        "case-insensitive"
    );
    assert_eq!(resolve(unique("nobody")).await, None);

    store
        .put_domain(&Domain {
            name: d1.to_uppercase(),
            alias_of: None,
        })
        .await
        .expect("put_domain");
    store
        .put_domain(&Domain {
            name: d2.clone(),
            alias_of: Some(d1.clone()),
        })
        .await
        .expect("put alias domain");
    let listed = store.list_domains().await.expect("list");
    assert!(listed.contains(&Domain {
        name: d1.clone(),
        alias_of: None
    }));
    assert!(listed.contains(&Domain {
        name: d2.clone(),
        alias_of: Some(d1.clone())
    }));

    assert_eq!(
        resolve(format!("{local}@{}", d1.to_uppercase())).await,
        Some(user),
        "local part at an own domain"
    );
    assert_eq!(
        resolve(format!("{local}@{d2}")).await,
        Some(user),
        "an alias domain rewrites to its target"
    );
    assert_eq!(
        resolve(format!("{local}@{foreign}")).await,
        None,
        "with domains configured, other domains are not ours"
    );
    // An account whose name is a full address; and an alias, also through the alias domain.
    let full = store
        .create_user(&format!("{}@{d1}", unique("full")), "h")
        .await
        .expect("create");
    assert_eq!(resolve(full.name.to_uppercase()).await, Some(full.id));
    let full_local = full.name.split('@').next().expect("local").to_string();
    assert_eq!(
        resolve(format!("{full_local}@{d2}")).await,
        Some(full.id),
        "an alias domain reaches a full-address account"
    );
    let info = format!("{}@{d1}", unique("info"));
    store
        .put_alias(&Alias {
            address: info.clone(),
            target: other,
        })
        .await
        .expect("alias");
    assert_eq!(resolve(info.clone()).await, Some(other));
    let info_local = info.split('@').next().expect("local").to_string();
    assert_eq!(
        resolve(format!("{info_local}@{d2}")).await,
        Some(other),
        "an alias domain reaches an alias"
    );
    store.set_disabled(user, true).await.expect("disable");
    assert_eq!(
        resolve(format!("{local}@{d1}")).await,
        None,
        "a disabled account resolves to nothing"
    );
    store.set_disabled(user, false).await.expect("enable");

    // No chains, no dangling targets, no self-aliases.
    let refused = [
        Domain {
            name: d3.clone(),
            alias_of: Some(d2.clone()),
        },
        Domain {
            name: d1.clone(),
            alias_of: Some(d3.clone()),
        },
        Domain {
            name: d3.clone(),
            alias_of: Some(d3.clone()),
        },
        Domain {
            name: "bad..domain".into(),
            alias_of: None,
        },
    ];
    for d in &refused {
        assert!(
            matches!(store.put_domain(d).await, Err(MetaError::Invalid(_))),
            "domain {d:?} must be refused"
        );
    }
    store
        .put_domain(&Domain {
            name: d3.clone(),
            alias_of: None,
        })
        .await
        .expect("d3");
    assert!(
        matches!(
            store
                .put_domain(&Domain {
                    name: d1.clone(),
                    alias_of: Some(d3.clone()),
                })
                .await,
            Err(MetaError::Invalid(_))
        ),
        "a domain other domains alias cannot become an alias"
    );
    assert!(
        matches!(store.delete_domain(&d1).await, Err(MetaError::Invalid(_))),
        "the target of an alias domain cannot be deleted first"
    );
    store.delete_domain(&d2).await.expect("delete alias domain");
    store
        .delete_domain(&d1.to_uppercase())
        .await
        .expect("delete d1");
    store.delete_domain(&d3).await.expect("delete d3");
    assert!(matches!(
        store.delete_domain(&d1).await,
        Err(MetaError::NotFound(_))
    ));
    store.delete_alias(&info).await.expect("cleanup alias");
    let listed = store.list_domains().await.expect("list");
    assert!(
        !listed
            .iter()
            .any(|d| d.name == d1 || d.name == d2 || d.name == d3)
    );
}

fn entries(v: &[(&str, &[u8])]) -> Vec<MetadataEntry> {
    v.iter()
        .map(|(name, value)| MetadataEntry {
            name: name.to_string(),
            value: value.to_vec(),
        })
        .collect()
}

fn set(name: &str, value: &[u8]) -> (String, Option<Vec<u8>>) {
    (name.to_string(), Some(value.to_vec()))
}

/// METADATA (RFC 5464): server and mailbox entries, DEPTH, removal, the entry limit, and
/// entries following their mailbox through RENAME and DELETE.
pub async fn metadata<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-metadata").await;
    let other = new_user(store, "conf-metadata-other").await;
    let get = |mailbox: Option<&'static str>, names: &[&str], depth| {
        let names = s(names);
        async move {
            store
                .get_metadata(user, mailbox, &names, depth)
                .await
                .expect("get_metadata")
        }
    };
    // Server entries; values are binary (literal8, RFC 5464 §5).
    store
        .set_metadata(
            user,
            None,
            &[
                set("/private/comment", b"server note"),
                set("/shared/vendor/x/a", b"\x00\xffbin"),
                set("/shared/vendor/x/a/deep", b"deep"),
                set("/shared/vendor/xy", b"sibling"),
            ],
            10,
        )
        .await
        .expect("set server entries");
    assert_eq!(
        get(
            None,
            &["/private/comment", "/shared/missing"],
            MetadataDepth::Zero
        )
        .await,
        entries(&[("/private/comment", b"server note")]),
        "depth 0 returns the existing requested entries only"
    );
    assert_eq!(
        get(None, &["/shared/vendor/x"], MetadataDepth::One).await,
        entries(&[("/shared/vendor/x/a", b"\x00\xffbin")]),
        "depth 1: children, not grandchildren, not a sibling sharing the prefix"
    );
    assert_eq!(
        get(None, &["/shared"], MetadataDepth::Infinity).await,
        entries(&[
            ("/shared/vendor/x/a", b"\x00\xffbin"),
            ("/shared/vendor/x/a/deep", b"deep"),
            ("/shared/vendor/xy", b"sibling"),
        ]),
        "depth infinity: every descendant, by name"
    );
    assert!(
        store
            .get_metadata(other, None, &s(&["/private/comment"]), MetadataDepth::Zero)
            .await
            .expect("get other")
            .is_empty(),
        "another account sees none of them"
    );
    // Mailbox entries are separate from server entries.
    store
        .set_metadata(
            user,
            Some("INBOX"),
            &[set("/private/comment", b"inbox")],
            10,
        )
        .await
        .expect("set inbox");
    assert_eq!(
        get(Some("inbox"), &["/private/comment"], MetadataDepth::Zero).await,
        entries(&[("/private/comment", b"inbox")]),
        "INBOX is case-insensitive"
    );
    assert_eq!(
        get(None, &["/private/comment"], MetadataDepth::Zero).await,
        entries(&[("/private/comment", b"server note")])
    );
    // NIL removes; replacing a value does not add an entry.
    store
        .set_metadata(
            user,
            None,
            &[
                ("/shared/vendor/xy".to_string(), None),
                set("/private/comment", b"changed"),
                ("/private/never-set".to_string(), None),
            ],
            10,
        )
        .await
        .expect("remove and replace");
    assert_eq!(
        get(
            None,
            &["/shared/vendor/xy", "/private/comment"],
            MetadataDepth::Zero
        )
        .await,
        entries(&[("/private/comment", b"changed")])
    );
    // The limit: three server entries now; a write that would make five is refused entirely.
    let refused = store
        .set_metadata(
            user,
            None,
            &[set("/private/n1", b"1"), set("/private/n2", b"2")],
            4,
        )
        .await;
    assert!(
        matches!(refused, Err(MetaError::OverQuota(_))),
        "too many entries: {refused:?}"
    );
    assert!(
        get(None, &["/private/n1"], MetadataDepth::Zero)
            .await
            .is_empty(),
        "a refused write writes nothing"
    );
    store
        .set_metadata(user, None, &[set("/private/n1", b"1")], 4)
        .await
        .expect("up to the limit");
    store
        .set_metadata(user, None, &[set("/private/n1", b"one")], 4)
        .await
        .expect("replacing at the limit");
    store
        .set_metadata(user, None, &[("/private/n1".to_string(), None)], 1)
        .await
        .expect("removal works under a lowered limit");
    // Bad names and unknown mailboxes.
    assert!(matches!(
        store
            .set_metadata(user, None, &[set("/other/x", b"x")], 10)
            .await,
        Err(MetaError::Invalid(_))
    ));
    assert!(matches!(
        store
            .get_metadata(user, Some("Nope"), &s(&["/private/x"]), MetadataDepth::Zero)
            .await,
        Err(MetaError::NotFound(_))
    ));
    assert!(matches!(
        store
            .set_metadata(user, Some("Nope"), &[set("/private/x", b"x")], 10)
            .await,
        Err(MetaError::NotFound(_))
    ));
    // Entries follow RENAME, go with DELETE, and a re-created mailbox starts empty.
    store
        .create_mailbox(user, "Box", None)
        .await
        .expect("create");
    store
        .set_metadata(user, Some("Box"), &[set("/shared/comment", b"box")], 10)
        .await
        .expect("set box");
    store
        .rename_mailbox(user, "Box", "Moved")
        .await
        .expect("rename");
    assert_eq!(
        get(Some("Moved"), &["/shared/comment"], MetadataDepth::Zero).await,
        entries(&[("/shared/comment", b"box")]),
        "entries follow RENAME"
    );
    store.delete_mailbox(user, "Moved").await.expect("delete");
    store
        .create_mailbox(user, "Moved", None)
        .await
        .expect("recreate");
    assert!(
        get(Some("Moved"), &["/shared"], MetadataDepth::Infinity)
            .await
            .is_empty(),
        "a re-created mailbox starts without entries"
    );
    store
        .set_metadata(user, Some("Moved"), &[set("/shared/comment", b"new")], 1)
        .await
        .expect("the deleted mailbox's entries do not count against the new one");
    // Deleting the account drops its entries (no error, nothing left to read by it).
    store.delete_user(user).await.expect("delete user");
}
