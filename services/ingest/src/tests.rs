use super::*;
use yubin_blob::{FaultyBlobStore, FsBlobStore};

const MESSAGE: &[u8] = b"From: a@example.org\r\nTo: b@example.com\r\nSubject: hello\r\n\
Content-Type: text/plain\r\n\r\nbody text\r\n";

fn store() -> (tempfile::TempDir, FaultyBlobStore<FsBlobStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FaultyBlobStore::new(FsBlobStore::new(dir.path().to_path_buf()));
    (dir, store)
}

fn large_message() -> Vec<u8> {
    let mut raw = MESSAGE.to_vec();
    while raw.len() <= INLINE_SUMMARY_LIMIT {
        raw.extend_from_slice(b"a line of text that makes the message large enough\r\n");
    }
    raw
}

#[tokio::test]
async fn a_message_in_memory_is_stored_under_its_hash_and_summarized() {
    let (_dir, blobs) = store();
    let slots = Semaphore::new(1);
    for raw in [MESSAGE.to_vec(), large_message()] {
        let got = ingest(
            &blobs,
            UserId(3),
            Source::Memory(Bytes::from(raw.clone())),
            &slots,
        )
        .await
        .expect("ingest");
        let digest = hex::encode(Sha256::digest(&raw));
        assert_eq!(got.blob, BlobKey::for_content(UserId(3), &digest));
        assert_eq!(got.size, raw.len() as u64);
        assert_eq!(blobs.get(&got.blob).await.expect("stored"), raw);
        let (summary, index) = yubin_mime::summarize(&raw);
        assert_eq!(got.summary.to_bytes(), summary.to_bytes());
        assert_eq!(got.index, index);
    }
}

#[tokio::test]
async fn a_spooled_message_is_uploaded_from_its_file() {
    let (_dir, blobs) = store();
    let raw = large_message();
    let spool = tempfile::NamedTempFile::new().expect("spool");
    std::fs::write(spool.path(), &raw).expect("write");
    let digest = hex::encode(Sha256::digest(&raw));
    let source = Source::Spooled {
        path: spool.path(),
        size: raw.len() as u64,
        sha256_hex: &digest,
    };
    let got = ingest(&blobs, UserId(3), source, &Semaphore::new(1))
        .await
        .expect("ingest");
    assert_eq!(blobs.get(&got.blob).await.expect("stored"), raw);
    assert_eq!(
        got.summary.to_bytes(),
        yubin_mime::summarize(&raw).0.to_bytes()
    );
    assert!(spool.path().exists(), "the caller owns the spool file");
}

#[tokio::test]
async fn a_blob_store_failure_stores_nothing() {
    let (_dir, blobs) = store();
    blobs.fail_next_puts(1);
    let err = ingest(
        &blobs,
        UserId(3),
        Source::Memory(Bytes::from_static(MESSAGE)),
        &Semaphore::new(1),
    )
    .await
    .expect_err("put fails");
    assert!(matches!(err, IngestError::Blob(BlobError::Unavailable(_))));
    assert!(blobs.list("u/3/").await.expect("list").is_empty());
}

#[tokio::test]
async fn a_spool_file_that_changed_is_a_local_error() {
    let (_dir, blobs) = store();
    let spool = tempfile::NamedTempFile::new().expect("spool");
    std::fs::write(spool.path(), MESSAGE).expect("write");
    let digest = hex::encode(Sha256::digest(MESSAGE));
    let source = Source::Spooled {
        path: spool.path(),
        size: MESSAGE.len() as u64 + 1,
        sha256_hex: &digest,
    };
    let err = ingest(&blobs, UserId(3), source, &Semaphore::new(1))
        .await
        .expect_err("size mismatch");
    assert!(matches!(err, IngestError::Blob(_) | IngestError::Local(_)));
}

#[tokio::test]
async fn a_closed_slot_pool_is_shutting_down() {
    let (_dir, blobs) = store();
    let spool = tempfile::NamedTempFile::new().expect("spool");
    std::fs::write(spool.path(), MESSAGE).expect("write");
    let digest = hex::encode(Sha256::digest(MESSAGE));
    let slots = Semaphore::new(1);
    slots.close();
    let source = Source::Spooled {
        path: spool.path(),
        size: MESSAGE.len() as u64,
        sha256_hex: &digest,
    };
    let err = ingest(&blobs, UserId(3), source, &slots)
        .await
        .expect_err("closed");
    assert!(matches!(err, IngestError::ShuttingDown));
}
