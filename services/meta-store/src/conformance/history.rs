//! Checks of a mailbox's history: a caller whose view is ahead of the store (a MODSEQ the
//! mailbox never handed out, as after Redis lost writes in a failover) makes the store move the
//! mailbox to a new UIDVALIDITY, so that no UID is ever reused under one UIDVALIDITY (RFC 3501
//! §2.3.1.1, RFC 7162 §3.2.5.1).

use yubin_meta_api::{AccountStore, MailStore, ModSeq};

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
