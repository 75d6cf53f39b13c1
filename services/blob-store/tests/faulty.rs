//! FaultyBlobStore: failures injected on demand, as Unavailable, counted.

use bytes::Bytes;
use std::sync::Arc;
use yubin_blob::{BlobError, BlobStore, FaultyBlobStore, FsBlobStore, conformance};
use yubin_meta_api::{BlobKey, UserId};

fn store() -> (FaultyBlobStore<FsBlobStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = FaultyBlobStore::new(FsBlobStore::new(dir.path().to_path_buf()));
    (s, dir)
}

fn key(n: u64) -> BlobKey {
    BlobKey::for_content(UserId(5), &format!("{n:064x}"))
}

#[tokio::test]
async fn passes_conformance_when_healthy() {
    let (s, _dir) = store();
    conformance::run_all(&s).await;
    assert_eq!(s.policy().injected_failures(), 0);
    assert!(s.put_calls() > 30 && s.get_calls() > 10);
}

#[tokio::test]
async fn fails_the_next_puts_then_recovers() {
    let (s, _dir) = store();
    s.fail_next_puts(2);
    for _ in 0..2 {
        assert!(matches!(
            s.put(&key(1), Bytes::from_static(b"a")).await,
            Err(BlobError::Unavailable(_))
        ));
    }
    // The failed puts never reached the inner store.
    assert!(!s.inner().exists(&key(1)).await.expect("exists"));
    s.put(&key(1), Bytes::from_static(b"a"))
        .await
        .expect("third put");
    assert_eq!(s.put_calls(), 3);
    assert_eq!(s.policy().injected_failures(), 2);
    // Gets were not affected.
    assert_eq!(&s.get(&key(1)).await.expect("get")[..], b"a");
}

#[tokio::test]
async fn fails_the_next_gets_including_ranges() {
    let (s, _dir) = store();
    s.put(&key(2), Bytes::from_static(b"hello"))
        .await
        .expect("put");
    s.fail_next_gets(2);
    assert!(matches!(
        s.get(&key(2)).await,
        Err(BlobError::Unavailable(_))
    ));
    assert!(matches!(
        s.get_range(&key(2), 0..2).await,
        Err(BlobError::Unavailable(_))
    ));
    assert_eq!(&s.get_range(&key(2), 0..2).await.expect("range")[..], b"he");
    assert_eq!(s.get_calls(), 3);
}

#[tokio::test]
async fn fail_all_is_an_outage_until_cleared() {
    let (s, _dir) = store();
    let s: Arc<FaultyBlobStore<FsBlobStore>> = Arc::new(s);
    let policy = s.policy();
    let dyn_store: Arc<dyn BlobStore> = s.clone();
    policy.set_fail_all(true);
    assert!(matches!(
        dyn_store.put(&key(3), Bytes::from_static(b"x")).await,
        Err(BlobError::Unavailable(_))
    ));
    assert!(matches!(
        dyn_store.get(&key(3)).await,
        Err(BlobError::Unavailable(_))
    ));
    assert!(matches!(
        dyn_store.exists(&key(3)).await,
        Err(BlobError::Unavailable(_))
    ));
    assert!(matches!(
        dyn_store.list("u/").await,
        Err(BlobError::Unavailable(_))
    ));
    assert!(matches!(
        dyn_store.delete(&key(3)).await,
        Err(BlobError::Unavailable(_))
    ));
    policy.set_fail_all(false);
    dyn_store
        .put(&key(3), Bytes::from_static(b"x"))
        .await
        .expect("put after the outage");
    assert_eq!(policy.injected_failures(), 5);
    assert_eq!(policy.other_calls(), 3);

    s.fail_next_puts(5);
    policy.heal();
    dyn_store
        .put(&key(4), Bytes::from_static(b"y"))
        .await
        .expect("healed");
}

#[tokio::test]
async fn scheduled_failures_are_exact_under_concurrency() {
    let (s, _dir) = store();
    let s = Arc::new(s);
    s.fail_next_puts(3);
    let mut tasks = Vec::new();
    for i in 0..10 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.put(&key(100 + i), Bytes::from_static(b"z")).await
        }));
    }
    let mut failed = 0;
    for t in tasks {
        if t.await.expect("join").is_err() {
            failed += 1;
        }
    }
    assert_eq!(failed, 3);
    assert_eq!(s.put_calls(), 10);
}
