//! Group commit on a real redb file: grouped writes end in the state of the same writes one by
//! one, a failing call leaves no trace while its neighbours commit, hints follow the commit, and
//! every acknowledged write survives the store being dropped and reopened.
//!
//! The calls of one group are made deterministic by pausing the writer (`Writer::pause`), queueing
//! the calls in order (each queues on its future's first poll), then letting it go.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use yubin_meta_api::{
    AccountStore, BlobKey, ChangeKind, FlagOp, InternalDate, MailStore, MailboxId, MetaError,
    ModSeq, NewMessage, QuotaLimits, Uid, UidSet, UserId,
};

use super::{EmbeddedStore, GroupCommit, db_err};
use crate::StoreLimits;

async fn open(dir: &tempfile::TempDir) -> EmbeddedStore {
    EmbeddedStore::open(dir.path().join("meta.redb"))
        .await
        .expect("open")
}

fn msg(user: UserId, n: u32) -> NewMessage {
    NewMessage {
        blob: BlobKey::for_content(user, &format!("{n:064x}")),
        size: 100 + u64::from(n),
        internal_date: InternalDate {
            unix_seconds: 1_700_000_000 + i64::from(n),
            tz_offset_minutes: 0,
        },
        flags: Vec::new(),
        summary: Bytes::from(format!("summary-{n}")),
        index: Default::default(),
    }
}

/// Polls a call once, which queues it for the writer (no call awaits before queueing).
fn queue<F: Future>(call: Pin<&mut F>) {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(call.poll(&mut cx).is_pending(), "the writer is paused");
}

fn all() -> UidSet {
    UidSet::from_ranges([(1, u32::MAX)])
}

fn uids(range: std::ops::RangeInclusive<u32>) -> Vec<Uid> {
    range.map(Uid).collect()
}

async fn subscriptions(store: &EmbeddedStore, user: UserId) -> Vec<String> {
    store.list_subscriptions(user).await.expect("subscriptions")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_failing_before_writing_drop_out_of_a_group_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir).await;
    let alice = store.create_user("alice", "h").await.expect("alice").id;
    let gone = store.create_user("gone", "h").await.expect("gone").id;
    store
        .set_quota(
            alice,
            QuotaLimits {
                storage_bytes: None,
                messages: Some(2),
            },
        )
        .await
        .expect("quota");
    let inbox = store.select(gone, "INBOX").await.expect("select").info.id;
    store.delete_user(gone).await.expect("delete");
    let before = store.writer.commits();

    let (every, seen) = (all(), ["\\Seen".to_string()]);
    let pause = store.writer.pause();
    let mut good1 = pin!(store.append(alice, "INBOX", vec![msg(alice, 1)]));
    let mut over_quota = pin!(store.append(alice, "INBOX", vec![msg(alice, 2), msg(alice, 3)]));
    let mut deleted_account =
        pin!(store.store_flags(gone, inbox, &every, FlagOp::Add, &seen, None));
    let mut good2 = pin!(store.append(alice, "INBOX", vec![msg(alice, 4)]));
    queue(good1.as_mut());
    queue(over_quota.as_mut());
    queue(deleted_account.as_mut());
    queue(good2.as_mut());
    drop(pause);

    assert_eq!(good1.await.expect("first append").uids, uids(1..=1));
    assert!(matches!(over_quota.await, Err(MetaError::OverQuota(_))));
    assert!(matches!(deleted_account.await, Err(MetaError::NotFound(_))));
    assert_eq!(good2.await.expect("second append").uids, uids(2..=2));
    assert_eq!(
        store.writer.commits() - before,
        1,
        "the four calls share one commit"
    );

    let inbox = store.select(alice, "INBOX").await.expect("select").info.id;
    let records = store
        .fetch(alice, inbox, &all(), false)
        .await
        .expect("fetch");
    let blobs: Vec<_> = records.iter().map(|r| r.blob.clone()).collect();
    assert_eq!(blobs, vec![msg(alice, 1).blob, msg(alice, 4).blob]);
    assert_eq!(store.quota(alice).await.expect("usage").messages, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_wrote_then_failed_or_panicked_leaves_no_trace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir).await.with_limits(StoreLimits {
        max_keywords_per_message: 2,
        ..StoreLimits::default()
    });
    let alice = store.create_user("alice", "h").await.expect("alice").id;
    let mut watch = store.watch(alice).await.expect("watch");
    // Message 1 has room for one more keyword, message 2 none: a STORE of one keyword on both
    // changes message 1, then fails on message 2 (RFC 5530 LIMIT), inside its transaction.
    let mut full = msg(alice, 2);
    full.flags = vec!["$a".into(), "$b".into()];
    let mut one = msg(alice, 1);
    one.flags = vec!["$a".into()];
    let seeded = store
        .append(alice, "INBOX", vec![one, full])
        .await
        .expect("seed");
    let inbox = seeded.mailbox;
    assert_eq!(
        watch.next().await.map(|e| e.kind),
        Some(ChangeKind::Appended)
    );
    let before = store.writer.commits();

    let (every, keyword) = (all(), ["$c".to_string()]);
    let pause = store.writer.pause();
    let mut good1 = pin!(store.append(alice, "INBOX", vec![msg(alice, 3)]));
    let mut store_fails =
        pin!(store.store_flags(alice, inbox, &every, FlagOp::Add, &keyword, None));
    let u = alice.0;
    let mut panics = pin!(store.write(move |w| -> Result<(), MetaError> {
        w.subscriptions.insert((u, "Ghost"), 0).map_err(db_err)?;
        w.emit(u, 0, 0, ChangeKind::MailboxList);
        panic!("a bug in a write closure");
    }));
    let mut good2 = pin!(store.set_subscribed(alice, "Kept", true));
    let mut fails_after_writing = pin!(store.write(move |w| -> Result<(), MetaError> {
        w.subscriptions.insert((u, "Ghost2"), 0).map_err(db_err)?;
        w.emit(u, 0, 0, ChangeKind::MailboxList);
        Err(MetaError::Invalid("refused after writing".into()))
    }));
    let mut good3 = pin!(store.append(alice, "INBOX", vec![msg(alice, 4)]));
    queue(good1.as_mut());
    queue(store_fails.as_mut());
    queue(panics.as_mut());
    queue(good2.as_mut());
    queue(fails_after_writing.as_mut());
    queue(good3.as_mut());
    drop(pause);

    assert_eq!(good1.await.expect("append 3").uids, uids(3..=3));
    assert!(matches!(store_fails.await, Err(MetaError::Limit(_))));
    assert!(matches!(panics.await, Err(MetaError::Internal(e)) if e.contains("panicked")));
    good2.await.expect("subscribe");
    assert!(matches!(
        fails_after_writing.await,
        Err(MetaError::Invalid(_))
    ));
    assert_eq!(good3.await.expect("append 4").uids, uids(4..=4));
    // Each spoiled transaction was dropped and the calls before it committed alone:
    // [append 3], [subscribe], [append 4].
    assert_eq!(store.writer.commits() - before, 3);

    let records = store
        .fetch(alice, inbox, &all(), false)
        .await
        .expect("fetch");
    let flags: Vec<_> = records.iter().map(|r| r.flags.clone()).collect();
    assert_eq!(
        flags,
        vec![
            vec!["$a".to_string()],
            vec!["$a".to_string(), "$b".to_string()],
            vec![],
            vec![]
        ],
        "the failed STORE changed nothing"
    );
    assert_eq!(subscriptions(&store, alice).await, vec!["Kept".to_string()]);
    // Only the committed calls' hints were published: two APPENDs and the subscription.
    let mut kinds = Vec::new();
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(200), watch.next()).await {
        kinds.push(ev.kind);
    }
    assert_eq!(
        kinds,
        vec![
            ChangeKind::Appended,
            ChangeKind::MailboxList,
            ChangeKind::Appended
        ]
    );
    // The writer is still there.
    store
        .set_subscribed(alice, "After", true)
        .await
        .expect("a write after the panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hints_are_published_after_the_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir).await;
    let alice = store.create_user("alice", "h").await.expect("alice").id;
    let inbox = store.select(alice, "INBOX").await.expect("select").info.id;
    let mut watch = store.watch(alice).await.expect("watch");
    let writer = tokio::spawn({
        let store = store.clone();
        async move {
            for n in 1..=30 {
                store
                    .append(alice, "INBOX", vec![msg(alice, n)])
                    .await
                    .expect("append");
            }
        }
    });
    // Every hint names a MODSEQ that a read transaction opened on receiving it already sees.
    for _ in 1..=30 {
        let ev = watch.next().await.expect("hint");
        let seen = store
            .mailbox_status(alice, "INBOX")
            .await
            .expect("status")
            .highest_modseq;
        assert_eq!(ev.mailbox, inbox);
        assert!(
            seen >= ev.modseq,
            "hint for {:?} published before its commit (read sees {seen:?})",
            ev.modseq
        );
    }
    writer.await.expect("writer task");
}

/// One acknowledged write of the concurrent run, with what it answered.
#[derive(Debug, Clone)]
enum Op {
    Append {
        n: u32,
        uid: Uid,
    },
    Store {
        uid: Uid,
        op: FlagOp,
        flag: &'static str,
        updated: Vec<(Uid, ModSeq, Vec<String>)>,
    },
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_end_as_the_same_writes_one_by_one() {
    const USERS: u32 = 4;
    const CLIENTS: u32 = 4;
    const ROUNDS: u32 = 12;
    const BOXES: [&str; 2] = ["INBOX", "Work"];
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir).await;
    let mut users = Vec::new();
    for i in 0..USERS {
        let u = store
            .create_user(&format!("user{i}"), "h")
            .await
            .expect("user")
            .id;
        store.create_mailbox(u, "Work", None).await.expect("Work");
        users.push(u);
    }
    let before = store.writer.commits();

    let mut tasks = Vec::new();
    for &user in &users {
        for (b, name) in BOXES.into_iter().enumerate() {
            for c in 0..CLIENTS {
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    let mut log = Vec::new();
                    let mut mailbox = None;
                    for r in 0..ROUNDS {
                        let n = ((b as u32 * CLIENTS + c) * ROUNDS + r) * 10 + 1;
                        let a = store
                            .append(user, name, vec![msg(user, n)])
                            .await
                            .expect("append");
                        let uid = a.uids[0];
                        let m = *mailbox.get_or_insert(a.mailbox);
                        log.push((m, Op::Append { n, uid }));
                        // Its own new message, then the mailbox's first one, which every
                        // client of the mailbox flips: the order of those matters.
                        let shared = if (c + r) % 2 == 0 {
                            FlagOp::Add
                        } else {
                            FlagOp::Remove
                        };
                        for (target, op, flag) in
                            [(uid, FlagOp::Add, "\\Seen"), (Uid(1), shared, "\\Flagged")]
                        {
                            let s = store
                                .store_flags(
                                    user,
                                    m,
                                    &UidSet::from_uids([target]),
                                    op,
                                    &[flag.to_string()],
                                    None,
                                )
                                .await
                                .expect("store");
                            log.push((
                                m,
                                Op::Store {
                                    uid: target,
                                    op,
                                    flag,
                                    updated: s.updated,
                                },
                            ));
                        }
                    }
                    (user, name, log)
                }));
            }
        }
    }
    let mut per_mailbox: BTreeMap<(UserId, MailboxId), Vec<Op>> = BTreeMap::new();
    let mut names: BTreeMap<(UserId, MailboxId), &str> = BTreeMap::new();
    for t in tasks {
        let (user, name, log) = t.await.expect("task");
        // One client's writes ascend in UID and MODSEQ.
        let mut last_uid = Uid(0);
        let mut last_modseq = ModSeq(0);
        for (m, op) in &log {
            match op {
                Op::Append { uid, .. } => {
                    assert!(*uid > last_uid, "UIDs ascend");
                    last_uid = *uid;
                }
                Op::Store { updated, .. } => {
                    for (_, ms, _) in updated {
                        assert!(*ms > last_modseq, "MODSEQs ascend");
                        last_modseq = *ms;
                    }
                }
            }
            per_mailbox.entry((user, *m)).or_default().push(op.clone());
            names.insert((user, *m), name);
        }
    }
    let writes = per_mailbox.values().map(Vec::len).sum::<usize>() as u64;
    let commits = store.writer.commits() - before;
    assert!(
        commits < writes / 2,
        "{writes} concurrent writes took {commits} commits: not grouped"
    );

    // Put each mailbox's writes in the order they were applied: a STORE that changed a message
    // carries its MODSEQ; the APPENDs, in UID order, took the MODSEQs left over.
    let mut ordered: BTreeMap<(UserId, MailboxId), Vec<Op>> = BTreeMap::new();
    for (&(user, m), ops) in &per_mailbox {
        let info = store.fetch(user, m, &all(), false).await.expect("fetch");
        let highest = store
            .mailbox_status(user, names[&(user, m)])
            .await
            .expect("status")
            .highest_modseq;
        assert_eq!(info.len() as u32, CLIENTS * ROUNDS, "no lost APPEND");
        assert_eq!(
            info.iter().map(|r| r.uid).collect::<Vec<_>>(),
            uids(1..=CLIENTS * ROUNDS)
        );
        let mut by_modseq: BTreeMap<ModSeq, Op> = BTreeMap::new();
        let mut appends: Vec<&Op> = Vec::new();
        for op in ops {
            match op {
                Op::Append { .. } => appends.push(op),
                Op::Store { updated, .. } if !updated.is_empty() => {
                    assert!(
                        by_modseq.insert(updated[0].1, op.clone()).is_none(),
                        "two writes with one MODSEQ"
                    );
                }
                // A STORE that changed nothing took no MODSEQ and left no state.
                Op::Store { .. } => {}
            }
        }
        appends.sort_by_key(|op| match op {
            Op::Append { uid, .. } => *uid,
            Op::Store { .. } => unreachable!(),
        });
        let first = highest.0 + 1 - (by_modseq.len() + appends.len()) as u64;
        let free: Vec<ModSeq> = (first..=highest.0)
            .map(ModSeq)
            .filter(|ms| !by_modseq.contains_key(ms))
            .collect();
        assert_eq!(free.len(), appends.len(), "every write took its own MODSEQ");
        for (ms, op) in free.into_iter().zip(appends) {
            by_modseq.insert(ms, op.clone());
        }
        ordered.insert((user, m), by_modseq.into_values().collect());
    }

    // The same writes, one by one, one transaction each, on a fresh store.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let serial = open(&dir2).await.with_group_commit(GroupCommit::OFF);
    for i in 0..USERS {
        let u = serial
            .create_user(&format!("user{i}"), "h")
            .await
            .expect("user")
            .id;
        assert_eq!(u, users[i as usize]);
        serial.create_mailbox(u, "Work", None).await.expect("Work");
    }
    for (&(user, m), ops) in &ordered {
        let name = names[&(user, m)];
        for op in ops {
            match op {
                Op::Append { n, uid } => {
                    let a = serial
                        .append(user, name, vec![msg(user, *n)])
                        .await
                        .expect("append");
                    assert_eq!((a.mailbox, a.uids.clone()), (m, vec![*uid]));
                }
                Op::Store {
                    uid,
                    op,
                    flag,
                    updated,
                } => {
                    let s = serial
                        .store_flags(
                            user,
                            m,
                            &UidSet::from_uids([*uid]),
                            *op,
                            &[flag.to_string()],
                            None,
                        )
                        .await
                        .expect("store");
                    assert_eq!(&s.updated, updated, "the same STORE answer");
                }
            }
        }
        let grouped = store.fetch(user, m, &all(), true).await.expect("fetch");
        let one_by_one = serial.fetch(user, m, &all(), true).await.expect("fetch");
        assert_eq!(grouped, one_by_one, "mailbox {m:?} of {user:?}");
        let mut a = store.mailbox_status(user, name).await.expect("status");
        let b = serial.mailbox_status(user, name).await.expect("status");
        // UIDVALIDITY comes from the clock; everything else must match.
        a.uid_validity = b.uid_validity;
        assert_eq!(a, b);
    }
    for &u in &users {
        assert_eq!(
            store.quota(u).await.expect("quota"),
            serial.quota(u).await.expect("quota")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_drop_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir).await;
    let alice = store.create_user("alice", "h").await.expect("alice").id;
    let bob = store.create_user("bob", "h").await.expect("bob").id;
    let mut tasks = Vec::new();
    for i in 0..64u32 {
        let store = store.clone();
        let user = if i % 2 == 0 { alice } else { bob };
        tasks.push(tokio::spawn(async move {
            let a = store
                .append(user, "INBOX", vec![msg(user, i)])
                .await
                .expect("append");
            (user, a.mailbox, a.uids[0], msg(user, i).blob)
        }));
    }
    let mut acked: BTreeSet<(UserId, Uid, String)> = BTreeSet::new();
    let mut inboxes = BTreeMap::new();
    for t in tasks {
        let (user, mailbox, uid, blob) = t.await.expect("task");
        inboxes.insert(user, mailbox);
        acked.insert((user, uid, blob.as_str().to_string()));
    }
    drop(store);
    // No pause: dropping the last clone waited for the writer, which closed the file.
    let store = open(&dir).await;
    let mut found = BTreeSet::new();
    for (&user, &inbox) in &inboxes {
        for r in store
            .fetch(user, inbox, &all(), false)
            .await
            .expect("fetch")
        {
            found.insert((user, r.uid, r.blob.as_str().to_string()));
        }
    }
    assert_eq!(found, acked);
}
