//! The conformance suite and persistence checks against the embedded (redb) store.

use yubin_meta_api::{AccountStore, MailStore, UidSet};
use yubin_meta_store::{EmbeddedStore, conformance};

async fn store() -> (tempfile::TempDir, EmbeddedStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("data/meta.redb"))
        .await
        .expect("open")
        .with_limits(conformance::LIMITS);
    (dir, store)
}

yubin_meta_store::conformance_tests!(store);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_twice_on_one_store() {
    let (_dir, store) = store().await;
    conformance::run_all(&store).await;
    conformance::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("meta.redb");
    let (user, mbox, validity) = {
        let store = EmbeddedStore::open(&path).await.expect("open");
        let user = store.create_user("Persist", "hash").await.expect("user");
        store
            .create_mailbox(user.id, "Kept", None)
            .await
            .expect("create");
        let r = store
            .append(
                user.id,
                "Kept",
                vec![yubin_meta_api::NewMessage {
                    blob: yubin_meta_api::BlobKey::for_content(user.id, &"ab".repeat(32)),
                    size: 42,
                    internal_date: yubin_meta_api::InternalDate {
                        unix_seconds: 1,
                        tz_offset_minutes: 0,
                    },
                    flags: vec!["\\Seen".into()],
                    summary: bytes::Bytes::from_static(b"sum"),
                    index: Default::default(),
                }],
            )
            .await
            .expect("append");
        (user.id, r.mailbox, r.uid_validity)
    };
    let store = EmbeddedStore::open(&path).await.expect("reopen");
    let rec = store
        .user_by_name("persist")
        .await
        .expect("lookup")
        .expect("user kept");
    assert_eq!(rec.id, user);
    let st = store.mailbox_status(user, "Kept").await.expect("status");
    assert_eq!(
        (st.id, st.uid_validity, st.exists, st.unseen),
        (mbox, validity, 1, 0)
    );
    let f = store
        .fetch(user, mbox, &UidSet::from_ranges([(1, u32::MAX)]), true)
        .await
        .expect("fetch");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].summary.as_deref(), Some(&b"sum"[..]));
    let other = store.create_user("second", "h").await.expect("user");
    assert_ne!(other.id, user, "user ids are not reused after reopen");
}

#[tokio::test]
async fn second_open_is_unavailable() {
    let (dir, _store) = store().await;
    let again = EmbeddedStore::open(dir.path().join("data/meta.redb")).await;
    assert!(
        matches!(again, Err(yubin_meta_api::MetaError::Unavailable(_))),
        "a database held by another store cannot be opened twice"
    );
}
