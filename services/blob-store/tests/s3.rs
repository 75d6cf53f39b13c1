//! S3BlobStore against a real S3 protocol server (s3s-fs on 127.0.0.1, SigV4 auth).

use bytes::Bytes;
use std::process::Command;
use yubin_blob::test_server::{TestS3Server, spawn_s3s_fs};
use yubin_blob::{BlobError, BlobStore, S3BlobStore, conformance};
use yubin_meta_api::{BlobKey, UserId};

async fn server() -> (TestS3Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = spawn_s3s_fs(dir.path()).await.expect("s3s-fs");
    (server, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_s3() {
    let (server, _dir) = server().await;
    // Pages of 7 keys: listing 30 keys takes 5 requests, so pagination is exercised.
    let store = server.blob_store("conformance").with_list_page_size(7);
    store.ensure_bucket().await.expect("create bucket");
    store
        .ensure_bucket()
        .await
        .expect("ensure_bucket is idempotent");
    store.ping().await.expect("ping");
    conformance::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_paginates_with_page_size_one() {
    let (server, _dir) = server().await;
    let store = server.blob_store("pages").with_list_page_size(1);
    store.ensure_bucket().await.expect("bucket");
    let mut keys: Vec<BlobKey> = (0..5)
        .map(|i| BlobKey::for_content(UserId(3), &format!("{i:064x}")))
        .collect();
    for k in &keys {
        store.put(k, Bytes::from_static(b"x")).await.expect("put");
    }
    keys.sort();
    assert_eq!(store.list("u/3/").await.expect("list"), keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_classified() {
    let (server, _dir) = server().await;
    let key = BlobKey::for_content(UserId(1), &"ef".repeat(32));

    // A bucket that does not exist is a configuration problem, not a missing blob.
    let no_bucket = server.blob_store("no-such-bucket");
    assert!(
        matches!(no_bucket.ping().await, Err(BlobError::Other(_))),
        "ping of a missing bucket"
    );

    // Wrong credentials: refused, and not retryable.
    let mut bad = server.blob_store("x");
    {
        let creds =
            aws_sdk_s3::config::Credentials::new("wrong", "credentials", None, None, "test");
        let conf = server
            .client()
            .config()
            .to_builder()
            .credentials_provider(creds)
            .build();
        bad = S3BlobStore::new(
            aws_sdk_s3::Client::from_conf(conf),
            bad.bucket().to_string(),
        );
    }
    assert!(
        matches!(bad.get(&key).await, Err(BlobError::Other(_))),
        "bad credentials"
    );

    // Nothing listening: the store is unavailable.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let conf = server
        .client()
        .config()
        .to_builder()
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .build();
    let down = S3BlobStore::new(aws_sdk_s3::Client::from_conf(conf), "x".into());
    for r in [
        down.get(&key).await.map(|_| ()),
        down.put(&key, Bytes::from_static(b"x")).await,
        down.exists(&key).await.map(|_| ()),
        down.list("u/").await.map(|_| ()),
    ] {
        assert!(matches!(r, Err(BlobError::Unavailable(_))), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_env_reads_the_standard_variables() {
    let (server, _dir) = server().await;
    server
        .blob_store("from-env")
        .ensure_bucket()
        .await
        .expect("bucket");
    // Environment variables are process-wide (and setting them is unsafe in Rust 2024), so the
    // env-configured client runs in a child process: this same test binary, running only the
    // ignored test below.
    let exe = std::env::current_exe().expect("test binary");
    let endpoint = server.endpoint.clone();
    let (access, secret) = (server.access_key.clone(), server.secret_key.clone());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(exe)
            .args(["--exact", "from_env_child", "--ignored", "--nocapture"])
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_REGION")
            .env("AWS_ENDPOINT_URL_S3", endpoint)
            .env("AWS_ACCESS_KEY_ID", access)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("YUBIN_TEST_FROM_ENV", "1")
            // Captured, so the child's own test summary does not mix with this binary's.
            .output()
    })
    .await
    .expect("join")
    .expect("run child");
    assert!(
        output.status.success(),
        "child test failed: {}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The child really ran the test (and did not skip it for lack of the marker variable).
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("1 passed"),
        "child ran no test"
    );
}

/// Runs only inside `from_env_reads_the_standard_variables`.
#[tokio::test]
#[ignore = "child process of from_env_reads_the_standard_variables"]
async fn from_env_child() {
    if std::env::var("YUBIN_TEST_FROM_ENV").is_err() {
        return;
    }
    let store = S3BlobStore::from_env("from-env".into())
        .await
        .expect("from_env");
    // Region defaults to us-east-1 when AWS_REGION is unset.
    assert_eq!(
        store.client().config().region().map(|r| r.as_ref()),
        Some("us-east-1")
    );
    store.ping().await.expect("ping");
    let key = BlobKey::for_content(UserId(9), &"01".repeat(32));
    store
        .put(&key, Bytes::from_static(b"via env"))
        .await
        .expect("put");
    assert_eq!(&store.get(&key).await.expect("get")[..], b"via env");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stops_on_drop() {
    let (server, _dir) = server().await;
    let store = server.blob_store("gone");
    store.ensure_bucket().await.expect("bucket");
    drop(server);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let key = BlobKey::for_content(UserId(1), &"02".repeat(32));
    assert!(matches!(
        store.put(&key, Bytes::from_static(b"x")).await,
        Err(BlobError::Unavailable(_))
    ));
}
