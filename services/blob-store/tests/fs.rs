//! FsBlobStore: the conformance suite plus file-level properties (temporary files, key checks).

use bytes::Bytes;
use yubin_blob::{BlobError, BlobStore, FsBlobStore, conformance};
use yubin_meta_api::{BlobKey, UserId};

#[tokio::test]
async fn conformance_on_fs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsBlobStore::new(dir.path().join("blobs"));
    conformance::run_all(&store).await;
}

#[tokio::test]
async fn files_live_at_their_key_and_no_temporary_file_remains() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsBlobStore::new(dir.path().to_path_buf());
    let key = BlobKey::for_content(UserId(7), &"ab".repeat(32));
    store
        .put(&key, Bytes::from_static(b"hello"))
        .await
        .expect("put");
    let path = dir.path().join("u").join("7").join("ab".repeat(32));
    assert_eq!(std::fs::read(&path).expect("file"), b"hello");
    let names: Vec<String> = std::fs::read_dir(dir.path().join("u/7"))
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["ab".repeat(32)]);

    // A leftover temporary file (a crash between write and rename) is never listed.
    std::fs::write(dir.path().join("u/7/.tmp-leftover-1-2"), b"partial").expect("write");
    assert_eq!(store.list("u/7/").await.expect("list"), vec![key.clone()]);
    assert_eq!(store.list("").await.expect("list all"), vec![key]);
}

#[tokio::test]
async fn escaping_keys_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsBlobStore::new(dir.path().join("root"));
    for bad in ["../outside", "/abs/path", "u/1/../../x", "u//1"] {
        let key = BlobKey(bad.to_string());
        assert!(
            matches!(
                store.put(&key, Bytes::from_static(b"x")).await,
                Err(BlobError::Other(_))
            ),
            "put {bad:?}"
        );
        assert!(matches!(store.get(&key).await, Err(BlobError::Other(_))));
    }
    assert!(matches!(store.list("../").await, Err(BlobError::Other(_))));
    assert!(!dir.path().join("outside").exists());
}

#[tokio::test]
async fn concurrent_puts_of_the_same_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = std::sync::Arc::new(FsBlobStore::new(dir.path().to_path_buf()));
    let key = BlobKey::for_content(UserId(1), &"cd".repeat(32));
    let data = Bytes::from(vec![42u8; 100_000]);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, key, data) = (store.clone(), key.clone(), data.clone());
        tasks.push(tokio::spawn(async move { store.put(&key, data).await }));
    }
    for t in tasks {
        t.await.expect("join").expect("put");
    }
    assert_eq!(store.get(&key).await.expect("get"), data);
    assert_eq!(store.list("u/1/").await.expect("list"), vec![key]);
}
