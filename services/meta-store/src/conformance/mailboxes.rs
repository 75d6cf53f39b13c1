//! Mailboxes: INBOX, CREATE / RENAME / DELETE and LIST, subscriptions, and UIDVALIDITY across
//! re-creation.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use yubin_meta_api::{AccountStore, MailStore, MetaError, SpecialUse, Uid, UserId};

use super::{all, msg, new_user, s, sorted, uids};

pub async fn inbox_exists<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-inbox").await;
    let boxes = store.list_mailboxes(user).await.expect("list");
    assert!(boxes.iter().any(|b| b.name == "INBOX"), "INBOX exists");
    let st = store.mailbox_status(user, "iNbOx").await.expect("status");
    assert_eq!(
        st.name, "INBOX",
        "INBOX is case-insensitive and spelled upper case"
    );
    assert_eq!((st.exists, st.unseen, st.deleted, st.size), (0, 0, 0, 0));
    assert_eq!(st.uid_next, Uid(1), "first UID is 1");
    let sel = store.select(user, "inbox").await.expect("select");
    assert_eq!(sel.info.id, st.id);
    assert!(sel.uids.is_empty() && sel.first_unseen.is_none());
    // An account that has never been used still has an INBOX (created on first use).
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let fresh = UserId((1 << 50) + nanos % (1 << 40));
    let st = store
        .mailbox_status(fresh, "INBOX")
        .await
        .expect("status of fresh user");
    assert_eq!(st.exists, 0);
    let r = store
        .append(fresh, "INBOX", vec![msg(fresh, 1, &[])])
        .await
        .expect("append");
    assert_eq!(r.uids, uids(&[1]));
}

pub async fn mailboxes<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-mbox").await;
    let work = store
        .create_mailbox(user, "Work", None)
        .await
        .expect("create Work");
    assert_eq!(work.name, "Work");
    assert_eq!(work.uid_next, Uid(1));
    assert_eq!(work.exists, 0);
    let proj = store
        .create_mailbox(user, "Work/Projects", Some(SpecialUse::Archive))
        .await
        .expect("create child");
    assert_eq!(
        proj.special_use,
        Some(SpecialUse::Archive),
        "special-use kept"
    );
    assert_ne!(proj.id, work.id);
    for dup in ["Work", "inbox", "INBOX", "Work/Projects/"] {
        let r = store.create_mailbox(user, dup, None).await;
        assert!(
            matches!(r, Err(MetaError::AlreadyExists(_))),
            "create {dup}: AlreadyExists, got {r:?}"
        );
    }
    for bad in ["", "a//b", "/a", "a*b", "a%"] {
        let r = store.create_mailbox(user, bad, None).await;
        assert!(
            matches!(r, Err(MetaError::Invalid(_))),
            "create {bad:?}: Invalid, got {r:?}"
        );
    }
    // RFC 3501 §6.3.3: superiors are created as needed.
    store
        .create_mailbox(user, "a/b/c", None)
        .await
        .expect("create a/b/c");
    store
        .create_mailbox(user, "Trash/", Some(SpecialUse::Trash))
        .await
        .expect("trailing /");
    let names: Vec<String> = store
        .list_mailboxes(user)
        .await
        .expect("list")
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(
        sorted(names),
        s(&[
            "INBOX",
            "Trash",
            "Work",
            "Work/Projects",
            "a",
            "a/b",
            "a/b/c"
        ]),
        "list after creates"
    );
    let trash = store.mailbox_status(user, "Trash").await.expect("status");
    assert_eq!(trash.special_use, Some(SpecialUse::Trash));

    // Rename keeps ids and UIDVALIDITY and carries inferiors along (RFC 3501 §6.3.5).
    store
        .append(user, "Work/Projects", vec![msg(user, 1, &[])])
        .await
        .expect("append");
    store
        .rename_mailbox(user, "Work", "Jobs/Old")
        .await
        .expect("rename");
    let boxes = store.list_mailboxes(user).await.expect("list");
    let by_name = |n: &str| boxes.iter().find(|b| b.name == n).cloned();
    assert!(
        by_name("Work").is_none() && by_name("Work/Projects").is_none(),
        "old names gone"
    );
    let jobs = by_name("Jobs/Old").expect("renamed");
    assert_eq!(
        (jobs.id, jobs.uid_validity),
        (work.id, work.uid_validity),
        "rename keeps id"
    );
    let jp = by_name("Jobs/Old/Projects").expect("inferior renamed");
    assert_eq!(
        (jp.id, jp.uid_validity, jp.exists),
        (proj.id, proj.uid_validity, 1)
    );
    assert!(
        by_name("Jobs").is_some(),
        "superior of the new name is created"
    );
    for (from, to, want) in [
        ("Nope", "X", "NotFound"),
        ("a", "Trash", "AlreadyExists"),
        ("a", "INBOX", "AlreadyExists"),
        ("a", "a/b/x", "Invalid"),
        ("a", "a", "Invalid"),
    ] {
        let r = store.rename_mailbox(user, from, to).await;
        let got = match &r {
            Err(MetaError::NotFound(_)) => "NotFound",
            Err(MetaError::AlreadyExists(_)) => "AlreadyExists",
            Err(MetaError::Invalid(_)) => "Invalid",
            _ => "other",
        };
        assert_eq!(got, want, "rename {from} -> {to}: {r:?}");
    }

    // Delete: INBOX never; a parent alone, its children stay (the simple rule).
    let r = store.delete_mailbox(user, "inbox").await;
    assert!(
        matches!(r, Err(MetaError::Invalid(_))),
        "delete INBOX: Invalid, got {r:?}"
    );
    let r = store.delete_mailbox(user, "Nope").await;
    assert!(
        matches!(r, Err(MetaError::NotFound(_))),
        "delete missing: NotFound, got {r:?}"
    );
    store
        .delete_mailbox(user, "Jobs/Old")
        .await
        .expect("delete parent");
    let names: Vec<String> = store
        .list_mailboxes(user)
        .await
        .expect("list")
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert!(!names.contains(&"Jobs/Old".to_string()), "deleted");
    assert!(
        names.contains(&"Jobs/Old/Projects".to_string()),
        "child survives delete"
    );
    let r = store.mailbox_status(user, "Jobs/Old").await;
    assert!(
        matches!(r, Err(MetaError::NotFound(_))),
        "status of deleted: {r:?}"
    );
    let r = store.fetch(user, work.id, &all(), false).await;
    assert!(
        matches!(r, Err(MetaError::NotFound(_))),
        "fetch of deleted id: {r:?}"
    );
}

pub async fn rename_inbox<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-inboxren").await;
    let msgs = (1..=3)
        .map(|n| msg(user, n, if n == 2 { &["\\Seen"] } else { &[] }))
        .collect();
    store.append(user, "INBOX", msgs).await.expect("append");
    store
        .create_mailbox(user, "INBOX/Child", None)
        .await
        .expect("child");
    let before = store.select(user, "INBOX").await.expect("select");
    store
        .rename_mailbox(user, "inbox", "Old Mail")
        .await
        .expect("rename INBOX");
    let inbox = store.select(user, "INBOX").await.expect("select INBOX");
    assert_eq!(
        inbox.info.id, before.info.id,
        "INBOX stays the same mailbox"
    );
    assert_eq!(inbox.info.uid_validity, before.info.uid_validity);
    assert!(inbox.uids.is_empty(), "INBOX is left empty");
    assert_eq!(
        (inbox.info.exists, inbox.info.unseen, inbox.info.size),
        (0, 0, 0)
    );
    assert_eq!(inbox.info.uid_next, Uid(4), "UIDs are never reused");
    let old = store.select(user, "Old Mail").await.expect("new mailbox");
    assert_ne!(old.info.id, before.info.id);
    assert_eq!(old.uids, uids(&[1, 2, 3]), "new mailbox gets new UIDs");
    assert_eq!((old.info.exists, old.info.unseen), (3, 2));
    let f = store
        .fetch(user, old.info.id, &all(), true)
        .await
        .expect("fetch");
    assert_eq!(f[1].flags, s(&["\\Seen"]), "flags move along");
    assert_eq!(
        f[2].summary.as_deref(),
        Some(&b"summary-3"[..]),
        "summaries move along"
    );
    let ch = store
        .changes_since(user, before.info.id, before.info.highest_modseq)
        .await
        .expect("changes");
    assert_eq!(
        ch.vanished,
        uids(&[1, 2, 3]),
        "INBOX watchers see the messages vanish"
    );
    let names: Vec<String> = store
        .list_mailboxes(user)
        .await
        .expect("list")
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert!(
        names.contains(&"INBOX/Child".to_string()),
        "INBOX's inferiors stay"
    );
}

pub async fn subscriptions<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-subs").await;
    assert!(
        store
            .list_subscriptions(user)
            .await
            .expect("subs")
            .is_empty()
    );
    store
        .create_mailbox(user, "Foo", None)
        .await
        .expect("create");
    store
        .set_subscribed(user, "Foo", true)
        .await
        .expect("subscribe");
    store
        .set_subscribed(user, "Foo", true)
        .await
        .expect("subscribe twice");
    store
        .set_subscribed(user, "inbox", true)
        .await
        .expect("subscribe inbox");
    store
        .set_subscribed(user, "Ghost/Town", true)
        .await
        .expect("subscribe nonexistent");
    assert_eq!(
        sorted(store.list_subscriptions(user).await.expect("subs")),
        s(&["Foo", "Ghost/Town", "INBOX"])
    );
    store.delete_mailbox(user, "Foo").await.expect("delete");
    assert!(
        store
            .list_subscriptions(user)
            .await
            .expect("subs")
            .contains(&"Foo".to_string()),
        "subscriptions outlive mailboxes"
    );
    store
        .set_subscribed(user, "Foo", false)
        .await
        .expect("unsubscribe");
    store
        .set_subscribed(user, "Never", false)
        .await
        .expect("unsubscribe unknown");
    assert_eq!(
        sorted(store.list_subscriptions(user).await.expect("subs")),
        s(&["Ghost/Town", "INBOX"])
    );
}

pub async fn uid_validity_after_recreate<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-uidvalidity").await;
    let mut seen = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for _ in 0..3 {
        let m = store
            .create_mailbox(user, "Temp", None)
            .await
            .expect("create");
        assert!(
            seen.insert(m.uid_validity.0),
            "UIDVALIDITY differs after delete+recreate"
        );
        assert!(ids.insert(m.id), "a recreated mailbox has a new id");
        assert_ne!(m.uid_validity.0, 0, "UIDVALIDITY is non-zero");
        store.delete_mailbox(user, "Temp").await.expect("delete");
    }
    let inbox = store.mailbox_status(user, "INBOX").await.expect("status");
    assert!(!seen.contains(&inbox.uid_validity.0));
}
