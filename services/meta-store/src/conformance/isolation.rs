//! Accounts never reach each other's mail: not through another account's mailbox ids, nor
//! through its blob keys.

use yubin_meta_api::{
    AccountStore, BlobKey, FlagOp, MailStore, MetaError, ModSeq, NewMessage, SearchKey,
};

use super::{all, msg, new_user, s};

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
