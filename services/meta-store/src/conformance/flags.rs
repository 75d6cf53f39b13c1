//! Flags: STORE with its modseqs and UNCHANGEDSINCE (CONDSTORE), concurrent stores, and claiming
//! `\Recent`.

use std::collections::BTreeSet;

use yubin_meta_api::{
    AccountStore, FlagOp, MailStore, MailboxId, MetaError, ModSeq, SearchKey, Uid, UidRange, UidSet,
};

use super::{all, msg, new_user, s, sorted, uids};

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
