//! SEARCH stays exact whatever the full-text indexer has done: every message is answered from
//! the index or from its queued text, and the two must agree (see `crate::fulltext`).

use std::future::Future;

use yubin_meta_api::{AccountStore, FlagOp, MailStore, SearchKey, Uid, UidSet, UserId};

use super::{assert_index_agrees, new_user, s, text_msg, uids};

/// Runs the same searches with the indexer behind (nothing indexed: `drain` not called), caught
/// up (`drain(user)` indexes everything queued), and between, across appends, copies of indexed
/// and of queued messages, a move, expunges, a deleted and recreated mailbox and a renamed INBOX.
/// Each time the answers must equal both the known answers and the scan of the stored texts.
pub async fn index_lag_stays_exact<S, D, F>(store: &S, drain: D)
where
    S: MailStore + AccountStore,
    D: Fn(UserId) -> F,
    F: Future<Output = ()>,
{
    use SearchKey as K;
    let user = new_user(store, "conf-index-lag").await;
    let subject = |v: &str| K::Header("Subject".into(), v.into());
    let inbox = store
        .append(user, "INBOX", (1..=12).map(|n| text_msg(user, n)).collect())
        .await
        .expect("append")
        .mailbox;
    let known = |when: &'static str| {
        let store = &store;
        async move {
            for (key, want) in [
                (subject("alpha"), vec![3, 5, 8, 10]),
                (subject("KÖLN"), vec![1, 6, 11]),
                (K::Body("日本語".into()), vec![4, 9]),
                (K::Text("#12".into()), vec![12]),
                (K::Text("al".into()), vec![1, 3, 4, 5, 6, 8, 9, 10, 11]),
            ] {
                let got = store.search(user, inbox, &key).await.expect("search");
                assert_eq!(got, uids(&want), "{when}: search {key:?}");
            }
        }
    };
    known("all queued").await;
    assert_index_agrees(store, user, inbox, "all queued").await;
    drain(user).await;
    known("all indexed").await;
    assert_index_agrees(store, user, inbox, "all indexed").await;

    // Copies of indexed messages are queued as references to their sources.
    let other = store
        .create_mailbox(user, "Other", None)
        .await
        .expect("create")
        .id;
    store
        .copy_messages(user, inbox, &UidSet::from_ranges([(1, 8)]), "Other", false)
        .await
        .expect("copy");
    assert_index_agrees(store, user, other, "copies queued").await;
    // New messages queued next to indexed ones, then a copy of a queued message.
    store
        .append(
            user,
            "INBOX",
            (13..=15).map(|n| text_msg(user, n)).collect(),
        )
        .await
        .expect("append more");
    store
        .copy_messages(
            user,
            inbox,
            &UidSet::from_ranges([(14, 14)]),
            "Other",
            false,
        )
        .await
        .expect("copy queued");
    assert_index_agrees(store, user, inbox, "indexed and queued").await;
    assert_index_agrees(store, user, other, "references and text queued").await;
    // A move: the destination references a source the same step forgets.
    store
        .copy_messages(user, other, &UidSet::from_ranges([(1, 3)]), "INBOX", true)
        .await
        .expect("move");
    assert_index_agrees(store, user, inbox, "moved in, queued").await;
    assert_index_agrees(store, user, other, "moved out, queued").await;
    drain(user).await;
    assert_index_agrees(store, user, inbox, "moved in, indexed").await;
    assert_index_agrees(store, user, other, "moved out, indexed").await;
    // A copy of a copy, both indexed: the chain resolves to the document.
    store
        .copy_messages(user, other, &UidSet::from_ranges([(4, 6)]), "INBOX", false)
        .await
        .expect("copy of copies");
    assert_index_agrees(store, user, inbox, "copy of copies queued").await;

    let doomed = UidSet::from_uids([Uid(3), Uid(5), Uid(13)]);
    store
        .store_flags(user, inbox, &doomed, FlagOp::Add, &s(&["\\Deleted"]), None)
        .await
        .expect("delete");
    store.expunge(user, inbox, None).await.expect("expunge");
    assert_index_agrees(store, user, inbox, "expunged, removal queued").await;
    drain(user).await;
    assert_index_agrees(store, user, inbox, "expunged, removal applied").await;
    let got = store
        .search(user, inbox, &subject("alpha"))
        .await
        .expect("search");
    assert!(
        !got.contains(&Uid(3)) && !got.contains(&Uid(5)),
        "expunged messages are not found: {got:?}"
    );

    store.delete_mailbox(user, "Other").await.expect("delete");
    drain(user).await;
    let again = store
        .create_mailbox(user, "Other", None)
        .await
        .expect("recreate")
        .id;
    store
        .append(user, "Other", vec![text_msg(user, 2)])
        .await
        .expect("append");
    assert_index_agrees(store, user, again, "recreated, queued").await;
    drain(user).await;
    assert_index_agrees(store, user, again, "recreated, indexed").await;
    let got = store
        .search(user, again, &K::Text("alpha".into()))
        .await
        .expect("search");
    assert!(got.is_empty(), "nothing of the deleted mailbox: {got:?}");

    // RFC 3501 §6.3.5: renaming INBOX moves its (indexed) messages to a new mailbox.
    store
        .rename_mailbox(user, "INBOX", "Old")
        .await
        .expect("rename inbox");
    let old = store.mailbox_status(user, "Old").await.expect("status").id;
    assert_index_agrees(store, user, old, "renamed INBOX, queued").await;
    drain(user).await;
    assert_index_agrees(store, user, old, "renamed INBOX, indexed").await;
}
