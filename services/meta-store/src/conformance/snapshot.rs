//! What SELECT hands a session besides the UIDs: every message's flags and MODSEQ, which the
//! session answers flag reads from afterwards, so they must be exactly what `fetch` returns.

use yubin_meta_api::{AccountStore, FlagOp, MailStore, MailboxSnapshot, ModSeq, UidSet, UserId};

use super::{all, msg, new_user, s};

/// Selects `name` and checks that its snapshot's flags and MODSEQs are, message by message,
/// those `fetch` returns (spelling and order of the flags included) and none is above the
/// snapshot's HIGHESTMODSEQ. Nothing writes meanwhile, so both reads see the same state.
async fn snapshot_agrees_with_fetch<S: MailStore>(
    store: &S,
    user: UserId,
    name: &str,
) -> MailboxSnapshot {
    let snap = store.select(user, name).await.expect("select");
    assert!(
        snap.flags.covers(snap.uids.len()),
        "select {name}: one flag list and MODSEQ per message: {:?}",
        snap.flags
    );
    let records = store
        .fetch(user, snap.info.id, &all(), false)
        .await
        .expect("fetch");
    assert_eq!(
        records.iter().map(|r| r.uid).collect::<Vec<_>>(),
        snap.uids,
        "select {name}: the same messages"
    );
    for (i, r) in records.iter().enumerate() {
        assert_eq!(
            snap.flags.get(i),
            Some((r.modseq, r.flags.as_slice())),
            "select {name}: message {} as fetch returns it",
            r.uid
        );
        assert!(r.modseq <= snap.info.highest_modseq, "{name}: {r:?}");
    }
    snap
}

pub async fn select_carries_flags<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-select-flags").await;
    let empty = snapshot_agrees_with_fetch(store, user, "INBOX").await;
    assert_eq!(empty.flags, Default::default(), "an empty mailbox has none");

    let flag_sets: [&[&str]; 6] = [
        &[],
        &["\\Seen"],
        &["$Work", "\\Flagged", "\\Seen"],
        &["\\Seen", "$Work", "\\Flagged"],
        &["\\Answered", "\\Draft", "$label1"],
        &["\\Deleted"],
    ];
    // Past one CHUNK (1 000) of the Redis scripts' bulk reads, so the snapshot's reads of the
    // flags and MODSEQs go in several commands; appended in a few calls, so MODSEQs differ.
    let n: u32 = 1_100;
    let mut mbox = None;
    for batch in (1..=n).collect::<Vec<_>>().chunks(400) {
        let r = store
            .append(
                user,
                "INBOX",
                batch
                    .iter()
                    .map(|&k| msg(user, k, flag_sets[k as usize % flag_sets.len()]))
                    .collect(),
            )
            .await
            .expect("append");
        mbox = Some(r.mailbox);
    }
    let mbox = mbox.expect("appended");
    let snap = snapshot_agrees_with_fetch(store, user, "INBOX").await;
    assert_eq!(snap.uids.len(), n as usize);
    assert!(
        snap.flags.lists.len() <= flag_sets.len(),
        "each distinct list is sent once: {:?}",
        snap.flags.lists
    );

    // Flag changes of every kind, keywords in other spellings, then expunges.
    let set = |r: &[(u32, u32)]| UidSet::from_ranges(r.iter().copied());
    let stores: [(UidSet, FlagOp, &[&str]); 5] = [
        (set(&[(1, 40)]), FlagOp::Add, &["\\Seen", "$WORK"]),
        (
            set(&[(20, 60), (1_050, 1_100)]),
            FlagOp::Remove,
            &["\\seen"],
        ),
        (
            set(&[(7, 7), (999, 1_002)]),
            FlagOp::Replace,
            &["$Later", "\\Answered"],
        ),
        (set(&[(30, 35)]), FlagOp::Replace, &[]),
        (set(&[(100, 130)]), FlagOp::Add, &["\\Deleted", "$label1"]),
    ];
    for (uids, op, flags) in &stores {
        store
            .store_flags(user, mbox, uids, *op, &s(flags), None)
            .await
            .expect("store");
    }
    let before_expunge = snapshot_agrees_with_fetch(store, user, "INBOX").await;
    let expunged = store.expunge(user, mbox, None).await.expect("expunge");
    assert!(!expunged.is_empty());
    let after = snapshot_agrees_with_fetch(store, user, "INBOX").await;
    assert_eq!(after.uids.len() + expunged.len(), before_expunge.uids.len());
    assert!(after.info.highest_modseq > before_expunge.info.highest_modseq);

    // Copied and moved messages keep their flags and get the target's MODSEQ.
    store
        .create_mailbox(user, "Archive", None)
        .await
        .expect("create");
    store
        .copy_messages(user, mbox, &set(&[(1, 50)]), "Archive", false)
        .await
        .expect("copy");
    store
        .copy_messages(user, mbox, &set(&[(900, 1_000)]), "Archive", true)
        .await
        .expect("move");
    let archive = snapshot_agrees_with_fetch(store, user, "Archive").await;
    assert!(archive.flags.modseqs.iter().all(|m| *m > ModSeq(0)));
    snapshot_agrees_with_fetch(store, user, "INBOX").await;
}
