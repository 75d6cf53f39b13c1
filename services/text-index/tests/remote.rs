//! Publication through object storage: a writer on one node (directory A), a reader on another
//! (directory B), over the filesystem store and over a real S3 server; half-uploaded
//! generations, a writer killed before its manifest, garbage collection, account deletion,
//! conflicting writers and an outage.

mod common;

use std::sync::Arc;

use yubin_blob::{BlobStore, FaultyBlobStore, FsBlobStore};
use yubin_meta_api::{BlobKey, MailboxId, SearchIndex, SearchKey, Uid, UserId};
use yubin_text_index::{Generation, TextIndexError, TextIndexes, WriteBatch};

use common::config;

const USER: UserId = UserId(42);
const INBOX: MailboxId = MailboxId(1);

fn message(subject: &str, body: &str) -> SearchIndex {
    SearchIndex {
        headers: vec![("Subject".into(), subject.into())],
        sent_date: None,
        body_text: body.into(),
    }
}

fn add(uid: u32, subject: &str) -> WriteBatch {
    WriteBatch {
        add: vec![(INBOX, Uid(uid), message(subject, "some body text"))],
        ..WriteBatch::default()
    }
}

async fn subject_hits(ti: &TextIndexes, at_least: u64, needle: &str) -> (Vec<u32>, Generation) {
    let key = SearchKey::Header("Subject".into(), needle.into());
    let got = ti
        .search(USER, Generation(at_least), INBOX, &key)
        .await
        .expect("search");
    (got.hits[0].iter().collect(), got.indexed_through)
}

async fn keys(store: &dyn BlobStore, prefix: &str) -> Vec<String> {
    let mut k: Vec<String> = store
        .list(prefix)
        .await
        .expect("list")
        .into_iter()
        .map(|k| k.0)
        .collect();
    k.sort();
    k
}

/// The whole life of a user's index between two nodes over `remote`.
async fn two_nodes(remote: Arc<dyn BlobStore>) {
    let root = tempfile::tempdir().expect("temp dir");
    let writer = TextIndexes::open(config(root.path().join("a"), Some(remote.clone()))).expect("a");
    let reader = TextIndexes::open(config(root.path().join("b"), Some(remote.clone()))).expect("b");

    // Nothing published yet: the empty index.
    assert_eq!(
        subject_hits(&reader, 0, "alpha").await,
        (vec![], Generation(0))
    );

    let g1 = writer
        .write(USER, Generation(0), Generation(1), add(1, "alpha"))
        .await
        .expect("write 1");
    assert_eq!(g1.generation, Generation(1));
    assert_eq!(
        subject_hits(&reader, 1, "alpha").await,
        (vec![1], Generation(1))
    );
    let g2 = writer
        .write(USER, Generation(1), Generation(2), add(2, "alpha beta"))
        .await
        .expect("write 2");
    assert_eq!(
        subject_hits(&reader, 2, "alpha").await,
        (vec![1, 2], Generation(2))
    );
    // A reader already there answers without looking again.
    assert_eq!(
        subject_hits(&reader, 1, "beta").await,
        (vec![2], Generation(2))
    );

    // Idempotent retry of the last write: same outcome, nothing new published.
    let again = writer
        .write(USER, Generation(1), Generation(2), add(2, "alpha beta"))
        .await
        .expect("retry");
    assert_eq!(again, g2);
    // Another write on the same base: the lease was broken.
    match writer
        .write(USER, Generation(1), Generation(2), add(3, "gamma"))
        .await
    {
        Err(TextIndexError::Conflict(Generation(2))) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    // A third node without the writer's local copy conflicts too.
    let other_root = tempfile::tempdir().expect("temp dir");
    let other = TextIndexes::open(config(
        other_root.path().to_path_buf(),
        Some(remote.clone()),
    ))
    .expect("c");
    assert!(matches!(
        other
            .write(USER, Generation(1), Generation(2), add(3, "gamma"))
            .await,
        Err(TextIndexError::Conflict(_))
    ));
    // And it can continue from generation 2, having never seen it locally.
    let g3 = other
        .write(USER, Generation(2), Generation(3), add(3, "gamma"))
        .await
        .expect("write 3 elsewhere");
    assert_eq!(g3.generation, Generation(3));
    assert_eq!(
        subject_hits(&reader, 3, "gamma").await,
        (vec![3], Generation(3))
    );

    // The writer's local copy is behind: it catches up from the remote before writing.
    let g4 = writer
        .write(
            USER,
            Generation(3),
            Generation(4),
            WriteBatch {
                remove: vec![(INBOX, Uid(1))],
                add_copies: vec![((INBOX, Uid(2)), (MailboxId(2), Uid(1)))],
                ..WriteBatch::default()
            },
        )
        .await
        .expect("write 4");
    assert_eq!(g4.generation, Generation(4));
    assert!(g4.unresolved_copies.is_empty());
    assert_eq!(
        subject_hits(&reader, 4, "alpha").await,
        (vec![2], Generation(4))
    );
    let copied = reader
        .documents(USER, Generation(4), MailboxId(2), &[Uid(1)], None)
        .await
        .expect("documents");
    assert_eq!(
        copied,
        vec![(Uid(1), message("alpha beta", "some body text"))]
    );

    // Garbage collection: only the newest two generations' manifests and files remain, and
    // every remaining file is one of theirs.
    let manifests = keys(remote.as_ref(), &format!("ix/{}/gen/", USER.0)).await;
    assert_eq!(
        manifests,
        vec![
            format!("ix/{}/gen/{:020}", USER.0, 3),
            format!("ix/{}/gen/{:020}", USER.0, 4)
        ]
    );
    let mut referenced = std::collections::BTreeSet::new();
    for m in &manifests {
        let bytes = remote.get(&BlobKey(m.clone())).await.expect("manifest");
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        for f in v["files"].as_array().expect("files") {
            referenced.insert(format!(
                "ix/{}/f/{}-{}",
                USER.0,
                f["name"].as_str().expect("name"),
                f["sha256"].as_str().expect("sha")
            ));
        }
    }
    let files: std::collections::BTreeSet<String> =
        keys(remote.as_ref(), &format!("ix/{}/f/", USER.0))
            .await
            .into_iter()
            .collect();
    assert_eq!(files, referenced, "exactly the referenced files remain");

    // Account deletion removes every object and the local copy.
    writer.drop_user(USER).await.expect("drop");
    assert!(
        keys(remote.as_ref(), &format!("ix/{}/", USER.0))
            .await
            .is_empty()
    );
    assert!(!root.path().join("a").join(USER.0.to_string()).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_over_the_filesystem_store() {
    let store = tempfile::tempdir().expect("temp dir");
    two_nodes(Arc::new(FsBlobStore::new(store.path().to_path_buf()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_over_s3() {
    let root = tempfile::tempdir().expect("temp dir");
    let server = yubin_blob::test_server::spawn_s3s_fs(root.path())
        .await
        .expect("s3 server");
    let store = server.blob_store("ix-test");
    store.ensure_bucket().await.expect("bucket");
    two_nodes(Arc::new(store)).await;
}

/// A writer killed after uploading its files but before the manifest: readers keep the previous
/// generation, and a retry of the write publishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_published_generation_keeps_the_previous_one() {
    let store_dir = tempfile::tempdir().expect("temp dir");
    let fs = FsBlobStore::new(store_dir.path().to_path_buf());
    let faulty = Arc::new(FaultyBlobStore::new(fs));
    let policy = faulty.policy();
    let remote: Arc<dyn BlobStore> = faulty.clone();
    let root = tempfile::tempdir().expect("temp dir");
    let writer = TextIndexes::open(config(root.path().join("a"), Some(remote.clone()))).expect("a");
    let reader = TextIndexes::open(config(root.path().join("b"), Some(remote.clone()))).expect("b");
    writer
        .write(USER, Generation(0), Generation(1), add(1, "alpha"))
        .await
        .expect("write 1");

    // Every file of generation 2 uploads, then the manifest's put fails: the writer dies there.
    let batch = add(2, "alpha two");
    let manifest = BlobKey(format!("ix/{}/gen/{:020}", USER.0, 2));
    let failing = Arc::new(ManifestFails {
        inner: remote.clone(),
        manifest: manifest.clone(),
    });
    let killed = TextIndexes::open(config(root.path().join("a"), Some(failing))).expect("killed");
    drop(writer);
    let err = killed
        .write(USER, Generation(1), Generation(2), batch.clone())
        .await;
    assert!(
        matches!(err, Err(TextIndexError::Unavailable(_))),
        "{err:?}"
    );
    assert!(!faulty.inner().exists(&manifest).await.expect("exists"));
    assert!(
        !keys(faulty.inner(), &format!("ix/{}/f/", USER.0))
            .await
            .is_empty(),
        "files were uploaded"
    );
    drop(killed);

    // The reader asked for generation 2 gets generation 1's answers, and says so.
    assert_eq!(
        subject_hits(&reader, 2, "alpha").await,
        (vec![1], Generation(1))
    );

    // The retry (a new process on the same directory) publishes.
    let writer =
        TextIndexes::open(config(root.path().join("a"), Some(remote.clone()))).expect("a again");
    let out = writer
        .write(USER, Generation(1), Generation(2), batch)
        .await
        .expect("retry");
    assert_eq!(out.generation, Generation(2));
    assert_eq!(
        subject_hits(&reader, 2, "alpha").await,
        (vec![1, 2], Generation(2))
    );

    // An outage: searches that need the remote and writes fail as unavailable, no panic; a
    // reader already at the generation asked for still answers.
    policy.set_fail_all(true);
    let fresh_root = tempfile::tempdir().expect("temp dir");
    let fresh = TextIndexes::open(config(
        fresh_root.path().to_path_buf(),
        Some(remote.clone()),
    ))
    .expect("fresh");
    let key = SearchKey::Body("body".into());
    assert!(matches!(
        fresh.search(USER, Generation(2), INBOX, &key).await,
        Err(TextIndexError::Unavailable(_))
    ));
    assert!(matches!(
        writer
            .write(USER, Generation(2), Generation(3), add(3, "x"))
            .await,
        Err(TextIndexError::Unavailable(_))
    ));
    assert_eq!(
        subject_hits(&reader, 2, "two").await,
        (vec![2], Generation(2))
    );
    policy.heal();
    let out = writer
        .write(USER, Generation(2), Generation(3), add(3, "x"))
        .await
        .expect("after the outage");
    assert_eq!(out.generation, Generation(3));
}

/// Passes everything through except the put of one manifest, which fails as an outage would.
struct ManifestFails {
    inner: Arc<dyn BlobStore>,
    manifest: BlobKey,
}

#[async_trait::async_trait]
impl BlobStore for ManifestFails {
    async fn put(&self, key: &BlobKey, data: bytes::Bytes) -> yubin_blob::BlobResult<()> {
        if *key == self.manifest {
            return Err(yubin_blob::BlobError::Unavailable("killed".into()));
        }
        self.inner.put(key, data).await
    }
    async fn put_file(
        &self,
        key: &BlobKey,
        path: &std::path::Path,
        size: u64,
    ) -> yubin_blob::BlobResult<()> {
        self.inner.put_file(key, path, size).await
    }
    async fn get(&self, key: &BlobKey) -> yubin_blob::BlobResult<bytes::Bytes> {
        self.inner.get(key).await
    }
    async fn get_range(
        &self,
        key: &BlobKey,
        range: std::ops::Range<u64>,
    ) -> yubin_blob::BlobResult<bytes::Bytes> {
        self.inner.get_range(key, range).await
    }
    async fn exists(&self, key: &BlobKey) -> yubin_blob::BlobResult<bool> {
        self.inner.exists(key).await
    }
    async fn delete(&self, key: &BlobKey) -> yubin_blob::BlobResult<()> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> yubin_blob::BlobResult<Vec<BlobKey>> {
        self.inner.list(prefix).await
    }
}

/// A downloaded file whose bytes differ from the manifest's checksum is refused as corrupt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_files_are_refused() {
    let store_dir = tempfile::tempdir().expect("temp dir");
    let remote: Arc<dyn BlobStore> = Arc::new(FsBlobStore::new(store_dir.path().to_path_buf()));
    let root = tempfile::tempdir().expect("temp dir");
    let writer = TextIndexes::open(config(root.path().join("a"), Some(remote.clone()))).expect("a");
    writer
        .write(USER, Generation(0), Generation(1), add(1, "alpha"))
        .await
        .expect("write");
    let files = keys(remote.as_ref(), &format!("ix/{}/f/", USER.0)).await;
    let victim = BlobKey(files[0].clone());
    let mut bytes = remote.get(&victim).await.expect("get").to_vec();
    bytes[0] ^= 0xFF;
    remote.delete(&victim).await.expect("delete");
    remote.put(&victim, bytes.into()).await.expect("put");
    let reader = TextIndexes::open(config(root.path().join("b"), Some(remote))).expect("b");
    let got = reader
        .search(USER, Generation(1), INBOX, &SearchKey::Body("body".into()))
        .await;
    assert!(matches!(got, Err(TextIndexError::Corrupt(_))), "{got:?}");
}
