//! QUOTA: limits enforced on append and copy, SETQUOTA, usage kept exact, also under concurrency.

use yubin_meta_api::{
    AccountStore, FlagOp, MailStore, MetaError, QuotaLimits, Uid, UidSet, UserId,
};

use super::{all, msg, new_user, s, uids};

fn limits(storage_bytes: Option<u64>, messages: Option<u64>) -> QuotaLimits {
    QuotaLimits {
        storage_bytes,
        messages,
    }
}

fn is_over_quota<T: std::fmt::Debug>(r: &Result<T, MetaError>) -> bool {
    matches!(r, Err(MetaError::OverQuota(_)))
}

/// Usage must equal what the mailboxes hold: the sum of their sizes and message counts.
async fn assert_usage_exact<S: MailStore + AccountStore>(store: &S, user: UserId, what: &str) {
    let q = store.quota(user).await.expect("quota");
    let boxes = store.list_mailboxes(user).await.expect("list");
    let bytes: u64 = boxes.iter().map(|b| b.size).sum();
    let messages: u64 = boxes.iter().map(|b| u64::from(b.exists)).sum();
    assert_eq!(
        (q.storage_bytes, q.messages),
        (bytes, messages),
        "{what}: usage equals the sum of the stored messages"
    );
}

/// `MailStore::set_account_quota` (an IMAP administrator's SETQUOTA) writes the same limits as
/// `AccountStore::set_quota`, enforced by the next append; an empty set removes them.
pub async fn set_account_quota<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-setquota").await;
    store
        .set_account_quota(user, limits(None, Some(1)))
        .await
        .expect("set_account_quota");
    assert_eq!(
        store.quota(user).await.expect("quota").limits,
        limits(None, Some(1))
    );
    store
        .append(user, "INBOX", vec![msg(user, 1, &[])])
        .await
        .expect("append within the limit");
    let over = store.append(user, "INBOX", vec![msg(user, 2, &[])]).await;
    assert!(is_over_quota(&over), "message limit refuses: {over:?}");
    store
        .set_account_quota(user, QuotaLimits::default())
        .await
        .expect("removing the limits");
    assert_eq!(
        store.quota(user).await.expect("quota").limits,
        QuotaLimits::default()
    );
    store
        .append(user, "INBOX", vec![msg(user, 2, &[])])
        .await
        .expect("append without limits");
    let unknown = store
        .set_account_quota(UserId(u64::MAX - 7), limits(Some(1), None))
        .await;
    assert!(
        matches!(unknown, Err(MetaError::NotFound(_))),
        "unknown account: {unknown:?}"
    );
}

pub async fn quota_limits<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-quota").await;
    let q = store.quota(user).await.expect("quota");
    assert_eq!(
        q.limits,
        QuotaLimits::default(),
        "a new account is unlimited"
    );
    assert_eq!((q.storage_bytes, q.messages), (0, 0), "and uses nothing");

    // Sizes are 1000 + n: messages 1 and 2 use 2003 bytes.
    store
        .set_quota(user, limits(Some(3000), None))
        .await
        .expect("set_quota");
    let r = store
        .append(user, "INBOX", vec![msg(user, 1, &[]), msg(user, 2, &[])])
        .await
        .expect("append within the limit");
    let q = store.quota(user).await.expect("quota");
    assert_eq!(q.limits, limits(Some(3000), None), "limits are kept");
    assert_eq!((q.storage_bytes, q.messages), (2003, 2));
    let over = store.append(user, "INBOX", vec![msg(user, 3, &[])]).await;
    assert!(is_over_quota(&over), "storage limit refuses: {over:?}");
    let st = store.mailbox_status(user, "INBOX").await.expect("status");
    assert_eq!(
        (st.exists, st.uid_next, st.size),
        (2, Uid(3), 2003),
        "a refused append writes nothing"
    );
    // Exactly reaching a limit is allowed (997 = 3000 - 2003).
    let mut exact = msg(user, 3, &[]);
    exact.size = 997;
    store
        .append(user, "INBOX", vec![exact])
        .await
        .expect("an append reaching the limit exactly");
    assert_eq!(store.quota(user).await.expect("quota").storage_bytes, 3000);

    // Message limit; a multi-append that does not fit entirely is refused entirely.
    store
        .set_quota(user, limits(None, Some(4)))
        .await
        .expect("set_quota");
    let over = store
        .append(user, "INBOX", vec![msg(user, 4, &[]), msg(user, 5, &[])])
        .await;
    assert!(is_over_quota(&over), "message limit refuses: {over:?}");
    assert_eq!(
        store.quota(user).await.expect("quota").messages,
        3,
        "nothing of a refused multi-append is stored"
    );
    store
        .append(user, "INBOX", vec![msg(user, 4, &[])])
        .await
        .expect("the last message that fits");

    // COPY adds to the usage and is refused at the limit; MOVE within the account is not.
    store
        .create_mailbox(user, "Archive", None)
        .await
        .expect("create");
    let over = store
        .copy_messages(user, r.mailbox, &all(), "Archive", false)
        .await;
    assert!(is_over_quota(&over), "copy over the limit: {over:?}");
    let arch = store.mailbox_status(user, "Archive").await.expect("status");
    assert_eq!(arch.exists, 0, "a refused copy writes nothing");
    let moved = store
        .copy_messages(
            user,
            r.mailbox,
            &UidSet::from_uids(uids(&[1])),
            "Archive",
            true,
        )
        .await
        .expect("a move at the limit");
    assert_eq!(moved.mapping.len(), 1);
    let q = store.quota(user).await.expect("quota");
    assert_eq!(q.messages, 4, "a move does not change the usage");
    store
        .set_quota(user, limits(Some(1_000_000), Some(5)))
        .await
        .expect("set_quota");
    store
        .copy_messages(user, arch.id, &all(), "INBOX", false)
        .await
        .expect("a copy within the raised limit");
    assert_eq!(store.quota(user).await.expect("quota").messages, 5);
    // Lowering a limit below the usage is allowed; it only refuses further growth.
    store
        .set_quota(user, limits(Some(10), Some(1)))
        .await
        .expect("set_quota below usage");
    let over = store.append(user, "INBOX", vec![msg(user, 9, &[])]).await;
    assert!(is_over_quota(&over), "{over:?}");
    store
        .set_quota(user, QuotaLimits::default())
        .await
        .expect("unlimited again");
    store
        .append(user, "INBOX", vec![msg(user, 9, &[])])
        .await
        .expect("unlimited append");
    assert_usage_exact(store, user, "quota limits").await;

    let nobody = UserId(u64::MAX - 7);
    assert!(
        matches!(store.quota(nobody).await, Err(MetaError::NotFound(_))),
        "quota of an unknown account"
    );
    assert!(
        matches!(
            store.set_quota(nobody, QuotaLimits::default()).await,
            Err(MetaError::NotFound(_))
        ),
        "set_quota of an unknown account"
    );
}

pub async fn quota_usage_is_exact<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-usage").await;
    let a = store
        .append(user, "INBOX", (1..=6).map(|n| msg(user, n, &[])).collect())
        .await
        .expect("append");
    assert_usage_exact(store, user, "after append").await;
    store
        .create_mailbox(user, "Work", None)
        .await
        .expect("create");
    store
        .copy_messages(
            user,
            a.mailbox,
            &UidSet::from_uids(uids(&[1, 2])),
            "Work",
            false,
        )
        .await
        .expect("copy");
    assert_usage_exact(store, user, "after copy").await;
    assert_eq!(store.quota(user).await.expect("quota").messages, 8);
    store
        .copy_messages(
            user,
            a.mailbox,
            &UidSet::from_uids(uids(&[3])),
            "Work",
            true,
        )
        .await
        .expect("move");
    assert_usage_exact(store, user, "after move").await;
    assert_eq!(store.quota(user).await.expect("quota").messages, 8);
    store
        .store_flags(
            user,
            a.mailbox,
            &UidSet::from_uids(uids(&[4, 5])),
            FlagOp::Add,
            &s(&["\\Deleted"]),
            None,
        )
        .await
        .expect("store");
    let gone = store.expunge(user, a.mailbox, None).await.expect("expunge");
    assert_eq!(gone, uids(&[4, 5]));
    assert_usage_exact(store, user, "after expunge").await;
    assert_eq!(store.quota(user).await.expect("quota").messages, 6);
    store
        .rename_mailbox(user, "INBOX", "Old")
        .await
        .expect("rename INBOX");
    assert_usage_exact(store, user, "after renaming INBOX").await;
    store.delete_mailbox(user, "Work").await.expect("delete");
    assert_usage_exact(store, user, "after delete_mailbox").await;
    let q = store.quota(user).await.expect("quota");
    assert_eq!(q.messages, 3, "only Old's messages remain");
    assert_eq!(
        q.storage_bytes,
        1001 + 1002 + 1006,
        "INBOX kept messages 1, 2 and 6"
    );
}

pub async fn concurrent_appends_respect_quota<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-quota-conc").await;
    store
        .set_quota(user, limits(None, Some(25)))
        .await
        .expect("set_quota");
    let tasks = (0..8u32).map(|t| async move {
        let (mut stored, mut refused) = (0u64, 0u64);
        for i in 0..10u32 {
            match store
                .append(user, "INBOX", vec![msg(user, t * 100 + i, &[])])
                .await
            {
                Ok(_) => stored += 1,
                Err(MetaError::OverQuota(_)) => refused += 1,
                Err(e) => panic!("concurrent append near the limit: {e:?}"),
            }
        }
        (stored, refused)
    });
    let results = futures::future::join_all(tasks).await;
    let stored: u64 = results.iter().map(|r| r.0).sum();
    let refused: u64 = results.iter().map(|r| r.1).sum();
    assert_eq!(stored, 25, "exactly the limit is stored, never more");
    assert_eq!(refused, 80 - 25);
    assert_usage_exact(store, user, "message limit under concurrency").await;

    // A storage limit under concurrent appends and copies.
    let other = new_user(store, "conf-quota-conc2").await;
    store
        .set_quota(other, limits(Some(20_500), None))
        .await
        .expect("set_quota");
    store
        .create_mailbox(other, "Copies", None)
        .await
        .expect("create");
    let first = store
        .append(other, "INBOX", vec![msg(other, 1, &[])])
        .await
        .expect("first append");
    let tasks = (0..8u32).map(|t| async move {
        for i in 0..6u32 {
            let r = if i % 2 == 0 {
                store
                    .append(other, "INBOX", vec![msg(other, t * 100 + i, &[])])
                    .await
                    .map(|_| ())
            } else {
                store
                    .copy_messages(
                        other,
                        first.mailbox,
                        &UidSet::from_uids(uids(&[1])),
                        "Copies",
                        false,
                    )
                    .await
                    .map(|_| ())
            };
            match r {
                Ok(()) | Err(MetaError::OverQuota(_)) => {}
                Err(e) => panic!("concurrent write near the limit: {e:?}"),
            }
        }
    });
    futures::future::join_all(tasks).await;
    let q = store.quota(other).await.expect("quota");
    assert!(
        q.storage_bytes <= 20_500,
        "the storage limit is never exceeded: {}",
        q.storage_bytes
    );
    assert!(
        q.storage_bytes > 20_500 - 1200,
        "the account filled up to the limit: {}",
        q.storage_bytes
    );
    assert_usage_exact(store, other, "storage limit under concurrency").await;
}
