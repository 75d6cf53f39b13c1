//! Checks of a mailbox's history: a caller whose view is ahead of the store (a MODSEQ the
//! mailbox never handed out, as after Redis lost writes in a failover) makes the store move the
//! mailbox to a new UIDVALIDITY, so that no UID is ever reused under one UIDVALIDITY (RFC 3501
//! §2.3.1.1, RFC 7162 §3.2.5.1).

use yubin_meta_api::{AccountStore, FlagOp, MailStore, ModSeq, Uid, UidSet};

use super::{all, msg, new_user};

pub async fn modseq_ahead_moves_mailbox<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-ahead").await;
    store
        .append(user, "INBOX", (1..=2).map(|n| msg(user, n, &[])).collect())
        .await
        .expect("append");
    let before = store.mailbox_status(user, "INBOX").await.expect("status");
    let current = store
        .changes_since(user, before.id, before.highest_modseq)
        .await
        .expect("changes at HIGHESTMODSEQ");
    assert!(!current.mailbox_gone, "a view at HIGHESTMODSEQ is current");
    assert_eq!(
        store
            .mailbox_status(user, "INBOX")
            .await
            .expect("status")
            .uid_validity,
        before.uid_validity,
        "a current view moves nothing"
    );

    let ahead = store
        .changes_since(user, before.id, ModSeq(before.highest_modseq.0 + 5))
        .await
        .expect("changes ahead of HIGHESTMODSEQ");
    assert!(ahead.mailbox_gone, "a view from a lost history ends");
    let after = store.mailbox_status(user, "INBOX").await.expect("status");
    assert_eq!(after.id, before.id, "the same mailbox");
    assert!(
        after.uid_validity.0 > before.uid_validity.0,
        "moved to a new, larger UIDVALIDITY: {:?} -> {:?}",
        before.uid_validity,
        after.uid_validity
    );
    assert_eq!(after.exists, before.exists, "the messages stay");
    assert!(
        after.uid_next.0 >= before.uid_next.0,
        "UIDNEXT never goes back"
    );
    let kept = store
        .fetch(user, after.id, &all(), false)
        .await
        .expect("fetch");
    assert_eq!(kept.len(), 2);
    let next = store
        .append(user, "INBOX", vec![msg(user, 3, &[])])
        .await
        .expect("append after the move");
    assert_eq!(next.uid_validity, after.uid_validity);
    assert!(
        next.uids[0].0 >= before.uid_next.0,
        "no UID handed out again"
    );
}

/// Marks `uids` `\Deleted` and expunges them in one operation; returns the HIGHESTMODSEQ after.
async fn expunge_now<S: MailStore>(
    store: &S,
    user: yubin_meta_api::UserId,
    mbox: yubin_meta_api::MailboxId,
    uids: &[u32],
) -> ModSeq {
    let set = UidSet::from_uids(uids.iter().copied().map(Uid));
    store
        .store_flags(user, mbox, &set, FlagOp::Add, &["\\Deleted".into()], None)
        .await
        .expect("store \\Deleted");
    store
        .expunge(user, mbox, Some(&set))
        .await
        .expect("expunge");
    store
        .changes_since(user, mbox, ModSeq(0))
        .await
        .expect("changes")
        .highest_modseq
}

/// The expunge log keeps at most `max_expunge_log` entries ([`super::LIMITS`]: 16). A
/// `changes_since` from at or above the highest dropped MODSEQ is exact; one from below says so
/// (`log_trimmed`), and its `vanished` holds only UIDs that really were expunged.
pub async fn expunge_log_is_capped<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-explog").await;
    store
        .append(user, "INBOX", (1..=40).map(|n| msg(user, n, &[])).collect())
        .await
        .expect("append");
    let st0 = store.mailbox_status(user, "INBOX").await.expect("status");
    let mbox = st0.id;
    // Untrimmed: a few expunges are reported exactly.
    let mut after = Vec::new();
    for uid in 1..=5 {
        after.push(expunge_now(store, user, mbox, &[uid]).await);
    }
    let ch = store
        .changes_since(user, mbox, st0.highest_modseq)
        .await
        .expect("changes");
    assert!(!ch.log_trimmed, "nothing dropped yet");
    assert_eq!(ch.vanished, (1..=5).map(Uid).collect::<Vec<_>>());
    let ch = store
        .changes_since(user, mbox, after[2])
        .await
        .expect("changes");
    assert_eq!(ch.vanished, vec![Uid(4), Uid(5)]);

    // One EXPUNGE of 20 takes the log past 16: the oldest entries go.
    let big = expunge_now(store, user, mbox, &(6..=25).collect::<Vec<_>>()).await;
    let later_a = expunge_now(store, user, mbox, &[30]).await;
    expunge_now(store, user, mbox, &[31]).await;
    let from_start = store
        .changes_since(user, mbox, ModSeq(0))
        .await
        .expect("changes");
    assert!(
        from_start.vanished.len() <= 16,
        "the log is capped: {}",
        from_start.vanished.len()
    );
    for since in [st0.highest_modseq, after[4]] {
        let ch = store
            .changes_since(user, mbox, since)
            .await
            .expect("changes");
        assert!(ch.log_trimmed, "from before the dropped entries: not exact");
        assert!(
            ch.vanished
                .iter()
                .all(|u| (1..=31).contains(&u.0) && !(26..=29).contains(&u.0)),
            "only UIDs that were expunged: {:?}",
            ch.vanished
        );
    }
    // From the big EXPUNGE on, everything newer is still logged: exact.
    let ch = store.changes_since(user, mbox, big).await.expect("changes");
    assert!(!ch.log_trimmed, "from the floor on the log is complete");
    assert_eq!(ch.vanished, vec![Uid(30), Uid(31)]);
    let ch = store
        .changes_since(user, mbox, later_a)
        .await
        .expect("changes");
    assert!(!ch.log_trimmed);
    assert_eq!(ch.vanished, vec![Uid(31)]);
    let left = store.fetch(user, mbox, &all(), false).await.expect("fetch");
    assert_eq!(left.len(), 40 - 27);

    // A MOVE expunges from its source and trims the same way: 20 moved out at once drop every
    // older entry and 4 of their own, so the floor rises to the MOVE's MODSEQ.
    store
        .append(
            user,
            "INBOX",
            (41..=60).map(|n| msg(user, n, &[])).collect(),
        )
        .await
        .expect("append");
    store
        .create_mailbox(user, "Moved", None)
        .await
        .expect("create");
    store
        .copy_messages(user, mbox, &UidSet::from_ranges([(41, 60)]), "Moved", true)
        .await
        .expect("move");
    let moved = store
        .changes_since(user, mbox, ModSeq(0))
        .await
        .expect("changes");
    assert_eq!(moved.vanished.len(), 16, "capped after the MOVE too");
    assert!(moved.vanished.iter().all(|u| (41..=60).contains(&u.0)));
    let ch = store
        .changes_since(user, mbox, later_a)
        .await
        .expect("changes");
    assert!(ch.log_trimmed, "31 was dropped by the MOVE");
    let ch = store
        .changes_since(user, mbox, moved.highest_modseq)
        .await
        .expect("changes");
    assert!(!ch.log_trimmed && ch.vanished.is_empty());
}
