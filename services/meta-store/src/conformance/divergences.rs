//! Checks for behaviour the engines once disagreed on, each found by the randomized store
//! differential test (`tests/differential.rs`) and pinned here so that both engines keep the
//! answer the trait contract asks for.

use yubin_meta_api::{AccountStore, MailStore, UidSet};

use super::{msg, new_user};

/// A COPY leaves the source mailbox's messages as they were, so its HIGHESTMODSEQ stays (RFC 7162
/// §3.1.4: the highest MODSEQ of the mailbox's messages) and a client's CONDSTORE resync of the
/// source finds nothing to do; only a MOVE, which expunges there, gives the source a new MODSEQ.
/// The embedded store used to bump the source on every copy.
pub async fn copy_keeps_source_modseq<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-copy-modseq").await;
    let r = store
        .append(user, "INBOX", (1..=3).map(|n| msg(user, n, &[])).collect())
        .await
        .expect("append");
    store
        .create_mailbox(user, "Archive", None)
        .await
        .expect("create");
    let before = store.mailbox_status(user, "INBOX").await.expect("status");
    let copied = store
        .copy_messages(
            user,
            r.mailbox,
            &UidSet::from_ranges([(1, 2)]),
            "Archive",
            false,
        )
        .await
        .expect("copy");
    assert_eq!(copied.mapping.len(), 2);
    let after = store.mailbox_status(user, "INBOX").await.expect("status");
    assert_eq!(
        after.highest_modseq, before.highest_modseq,
        "a copy does not change the source's HIGHESTMODSEQ"
    );
    let changes = store
        .changes_since(user, r.mailbox, before.highest_modseq)
        .await
        .expect("changes");
    assert!(changes.changed.is_empty() && changes.vanished.is_empty());

    // Into the same mailbox the copies are new messages there: one new MODSEQ.
    store
        .copy_messages(
            user,
            r.mailbox,
            &UidSet::from_ranges([(3, 3)]),
            "INBOX",
            false,
        )
        .await
        .expect("copy into itself");
    let same = store.mailbox_status(user, "INBOX").await.expect("status");
    assert_eq!(same.highest_modseq.0, before.highest_modseq.0 + 1);

    store
        .copy_messages(
            user,
            r.mailbox,
            &UidSet::from_ranges([(1, 1)]),
            "Archive",
            true,
        )
        .await
        .expect("move");
    let moved = store.mailbox_status(user, "INBOX").await.expect("status");
    assert_eq!(
        moved.highest_modseq.0,
        same.highest_modseq.0 + 1,
        "a move expunges in the source: one new MODSEQ"
    );
}
