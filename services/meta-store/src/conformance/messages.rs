//! Messages in a mailbox: APPEND and SELECT, FETCH, COPY / MOVE and EXPUNGE, also concurrent
//! appends.

use std::collections::BTreeSet;

use yubin_meta_api::{
    AccountStore, BlobKey, FlagOp, MailStore, MailboxId, MetaError, ModSeq, NewMessage, Uid, UidSet,
};

use super::{all, date, msg, new_user, s, uids};

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
