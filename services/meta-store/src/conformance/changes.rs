//! Changes since a MODSEQ (the CONDSTORE / QRESYNC resync) and the change hints of `watch`.

use std::time::Duration;

use futures::StreamExt;
use yubin_meta_api::{AccountStore, ChangeKind, FlagOp, MailStore, MailboxId, ModSeq, Uid, UidSet};

use super::{msg, new_user, s, uids};

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
