//! SEARCH: every key, deep search programs, the search index agreeing with the scan, and
//! `search_indexed`.

use yubin_meta_api::{
    AccountStore, FlagOp, IndexProjection, MailStore, MailboxId, MetaError, NewMessage,
    SearchIndex, SearchKey, Uid, UidSet,
};

use super::{assert_index_agrees, date, day, msg, new_user, s, text_msg, uids};

pub async fn search<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-search").await;
    let r = store
        .append(
            user,
            "INBOX",
            (1..=6)
                .map(|n| {
                    let f: &[&str] = match n {
                        1 => &["\\Seen"],
                        2 => &["\\Seen", "$Important"],
                        3 => &["\\Deleted"],
                        _ => &[],
                    };
                    msg(user, n, f)
                })
                .collect(),
        )
        .await
        .expect("append");
    let mbox = r.mailbox;
    let mut m6 = msg(user, 7, &[]);
    m6.index = SearchIndex {
        headers: vec![("X-Custom".into(), String::new())],
        sent_date: None,
        body_text: String::new(),
    };
    store
        .append(user, "INBOX", vec![m6])
        .await
        .expect("append 7");
    let res = store
        .store_flags(
            user,
            mbox,
            &UidSet::from_uids([Uid(6)]),
            FlagOp::Add,
            &s(&["\\Flagged"]),
            None,
        )
        .await
        .expect("flag");
    let flagged_modseq = res.highest_modseq;
    use SearchKey as K;
    let b = Box::new;
    let cases: Vec<(K, Vec<u32>)> = vec![
        (K::All, vec![1, 2, 3, 4, 5, 6, 7]),
        (
            K::Uids(UidSet::from_ranges([(2, 3), (7, u32::MAX)])),
            vec![2, 3, 7],
        ),
        (K::Flag("\\Seen".into()), vec![1, 2]),
        (K::Flag("$important".into()), vec![2]),
        (K::NoFlag("\\Seen".into()), vec![3, 4, 5, 6, 7]),
        (K::Flag("\\Deleted".into()), vec![3]),
        (K::Before(day(3)), vec![1, 2]),
        (K::On(day(3)), vec![3]),
        (K::Since(day(6)), vec![6, 7]),
        (K::SentBefore(day(2)), vec![1, 2]),
        (K::SentOn(day(2)), vec![3]),
        (K::SentSince(day(5)), vec![6]),
        (K::Larger(1005), vec![6, 7]),
        (K::Smaller(1002), vec![1]),
        (K::Header("subject".into(), "GRÜSSE".into()), vec![]),
        (
            K::Header("subject".into(), "grüße nummer 4".into()),
            vec![4],
        ),
        (K::Header("FROM".into(), "s5@EXAMPLE".into()), vec![5]),
        (K::Header("x-custom".into(), String::new()), vec![7]),
        (
            K::Header("Subject".into(), String::new()),
            vec![1, 2, 3, 4, 5, 6],
        ),
        (K::Body("STRASSE".into()), vec![]),
        (K::Body("straße".into()), vec![1, 2, 3, 4, 5, 6]),
        (K::Body("message 3,".into()), vec![3]),
        (K::Text("nummer 2".into()), vec![2]),
        (K::Text("message 6".into()), vec![6]),
        (K::Text("x-custom".into()), vec![7]),
        (K::ModSeqAtLeast(flagged_modseq), vec![6]),
        (K::Not(b(K::Flag("\\Seen".into()))), vec![3, 4, 5, 6, 7]),
        (K::Or(b(K::On(day(1))), b(K::Larger(1005))), vec![1, 6, 7]),
        (
            K::And(vec![K::NoFlag("\\Seen".into()), K::Smaller(1005)]),
            vec![3, 4],
        ),
        (K::And(vec![]), vec![1, 2, 3, 4, 5, 6, 7]),
    ];
    for (key, want) in cases {
        let got = store.search(user, mbox, &key).await.expect("search");
        assert_eq!(got, uids(&want), "search {key:?}");
    }
    let r = store.search(user, MailboxId(9_999_999), &K::All).await;
    assert!(
        matches!(r, Err(MetaError::NotFound(_))),
        "search missing mailbox: {r:?}"
    );
}

/// Search programs nested as deeply as the IMAP parser and meta's gRPC decoder allow (1000
/// levels; 500 by default) evaluate the same on every backend, for SEARCH and for the indexed
/// search SORT / THREAD use: the trees are walked recursively, so this is also the stack check.
pub async fn deep_search<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-deep-search").await;
    let r = store
        .append(
            user,
            "INBOX",
            (1..=3)
                .map(|n| msg(user, n, if n == 2 { &["\\Seen"] } else { &[] }))
                .collect(),
        )
        .await
        .expect("append");
    let mbox = r.mailbox;
    // OR $n0 (OR $n1 (… (OR $n498 \Seen))): 500 levels, true only for message 2.
    let mut ors = SearchKey::Flag("\\Seen".into());
    for i in 0..499 {
        ors = SearchKey::Or(Box::new(SearchKey::Flag(format!("$n{i}"))), Box::new(ors));
    }
    // An even number of NOTs around it changes nothing (998 levels in all); an odd one
    // negates (999).
    let mut nots = ors.clone();
    for _ in 0..498 {
        nots = SearchKey::Not(Box::new(nots));
    }
    let odd = SearchKey::Not(Box::new(nots.clone()));
    let uids = |v: Vec<Uid>| v.into_iter().map(|u| u.0).collect::<Vec<_>>();
    for (key, want) in [(&ors, vec![2]), (&nots, vec![2]), (&odd, vec![1, 3])] {
        let got = store.search(user, mbox, key).await.expect("deep search");
        assert_eq!(uids(got), want);
        let projection = IndexProjection {
            headers: vec![],
            body_chars: 0,
        };
        let got = store
            .search_indexed(user, mbox, key, &projection)
            .await
            .expect("deep indexed search");
        assert_eq!(got.iter().map(|m| m.uid.0).collect::<Vec<_>>(), want);
    }
}

pub async fn search_index_agrees_with_scan<S: MailStore + AccountStore>(store: &S) {
    use SearchKey as K;
    let user = new_user(store, "conf-search-index").await;
    let r = store
        .append(user, "INBOX", (1..=12).map(|n| text_msg(user, n)).collect())
        .await
        .expect("append");
    let inbox = r.mailbox;
    // Known answers first, so agreement below is not agreement on nothing.
    let subject = |s: &str| K::Header("Subject".into(), s.into());
    let cases = [
        (subject("alpha"), vec![3, 5, 8, 10]),
        (subject("KÖLN"), vec![1, 6, 11]),
        (subject("σίσυφος"), vec![2, 7, 12]),
        (K::Body("日本語".into()), vec![4, 9]),
        (K::Text("#12".into()), vec![12]),
        (K::Text("al".into()), vec![1, 3, 4, 5, 6, 8, 9, 10, 11]),
    ];
    for (key, want) in cases {
        let got = store.search(user, inbox, &key).await.expect("search");
        assert_eq!(got, uids(&want), "search {key:?}");
    }
    assert_index_agrees(store, user, inbox, "after append").await;

    let seen = UidSet::from_uids([Uid(1), Uid(3), Uid(4)]);
    store
        .store_flags(user, inbox, &seen, FlagOp::Add, &s(&["\\Seen"]), None)
        .await
        .expect("seen");
    let doomed = UidSet::from_uids([Uid(3), Uid(5), Uid(9)]);
    store
        .store_flags(user, inbox, &doomed, FlagOp::Add, &s(&["\\Deleted"]), None)
        .await
        .expect("deleted");
    assert_index_agrees(store, user, inbox, "after store").await;
    store.expunge(user, inbox, None).await.expect("expunge");
    assert_index_agrees(store, user, inbox, "after expunge").await;
    let got = store
        .search(user, inbox, &subject("alpha"))
        .await
        .expect("search");
    assert_eq!(got, uids(&[8, 10]), "expunged messages leave the postings");

    let other = store
        .create_mailbox(user, "Other", None)
        .await
        .expect("create")
        .id;
    store
        .copy_messages(user, inbox, &UidSet::from_ranges([(1, 8)]), "Other", false)
        .await
        .expect("copy");
    assert_index_agrees(store, user, inbox, "source after copy").await;
    assert_index_agrees(store, user, other, "destination of copy").await;
    store
        .copy_messages(user, other, &UidSet::from_ranges([(1, 3)]), "INBOX", true)
        .await
        .expect("move");
    assert_index_agrees(store, user, inbox, "destination of move").await;
    assert_index_agrees(store, user, other, "source after move").await;

    store
        .rename_mailbox(user, "Other", "Renamed")
        .await
        .expect("rename");
    assert_index_agrees(store, user, other, "after rename").await;
    // Renaming INBOX moves its messages into a new mailbox (RFC 3501 §6.3.5).
    store
        .rename_mailbox(user, "INBOX", "Old")
        .await
        .expect("rename inbox");
    let old = store.mailbox_status(user, "Old").await.expect("status").id;
    assert_index_agrees(store, user, old, "mailbox made by renaming INBOX").await;
    let inbox_now = store
        .mailbox_status(user, "INBOX")
        .await
        .expect("status")
        .id;
    assert_index_agrees(store, user, inbox_now, "INBOX after its rename").await;
    let got = store
        .search(user, inbox_now, &K::Text("alpha".into()))
        .await
        .expect("search");
    assert!(got.is_empty(), "renamed INBOX is empty: {got:?}");

    store.delete_mailbox(user, "Renamed").await.expect("delete");
    let again = store
        .create_mailbox(user, "Renamed", None)
        .await
        .expect("recreate")
        .id;
    store
        .append(user, "Renamed", vec![text_msg(user, 2)])
        .await
        .expect("append");
    assert_index_agrees(store, user, again, "recreated mailbox").await;
    let got = store
        .search(user, again, &K::Text("alpha".into()))
        .await
        .expect("search");
    assert!(
        got.is_empty(),
        "no postings survive a deleted mailbox: {got:?}"
    );
}

/// `search_indexed`: the messages `search` finds, each with its size, date and exactly the
/// projected parts of its index (what SORT, THREAD and PREVIEW read in one round trip).
pub async fn search_indexed<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-search-indexed").await;
    let mut messages: Vec<NewMessage> = (1..=4)
        .map(|n| msg(user, n, if n == 2 { &["\\Seen"] } else { &[] }))
        .collect();
    messages[3].index = SearchIndex::default();
    let r = store.append(user, "INBOX", messages).await.expect("append");
    let mbox = r.mailbox;
    let projection = IndexProjection {
        headers: s(&["subject", "X-Absent"]),
        body_chars: 9,
    };
    let got = store
        .search_indexed(user, mbox, &SearchKey::NoFlag("\\Seen".into()), &projection)
        .await
        .expect("search_indexed");
    assert_eq!(
        got.iter().map(|m| m.uid).collect::<Vec<_>>(),
        uids(&[1, 3, 4]),
        "search_indexed matches like search"
    );
    let first = &got[0];
    assert_eq!((first.size, first.internal_date), (1001, date(1)));
    assert_eq!(
        first.index.headers,
        vec![("Subject".to_string(), "Grüße Nummer 1".to_string())],
        "only the asked-for header fields"
    );
    assert_eq!(first.index.sent_date, Some(date(0)));
    assert_eq!(
        first.index.body_text, "Body text",
        "body cut to 9 characters"
    );
    assert_eq!(
        got[2].index,
        SearchIndex::default(),
        "a message without an index"
    );
    let bare = store
        .search_indexed(
            user,
            mbox,
            &SearchKey::Uids(UidSet::from_uids([Uid(2)])),
            &IndexProjection::default(),
        )
        .await
        .expect("search_indexed without projection");
    assert_eq!(bare.len(), 1);
    assert!(bare[0].index.headers.is_empty() && bare[0].index.body_text.is_empty());
    assert_eq!(bare[0].index.sent_date, Some(date(1)));
    let text = store
        .search_indexed(
            user,
            mbox,
            &SearchKey::Body("message 3".into()),
            &projection,
        )
        .await
        .expect("search_indexed by body");
    assert_eq!(text.iter().map(|m| m.uid).collect::<Vec<_>>(), uids(&[3]));
    let r = store
        .search_indexed(user, MailboxId(9_999_999), &SearchKey::All, &projection)
        .await;
    assert!(
        matches!(r, Err(MetaError::NotFound(_))),
        "search_indexed missing mailbox: {r:?}"
    );
}
