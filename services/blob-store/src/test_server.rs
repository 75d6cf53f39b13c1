//! A real S3 protocol server for integration tests: s3s-fs (objects as files under a directory)
//! served over HTTP on 127.0.0.1 with SigV4 authentication, so tests exercise the same SDK code
//! path as production, request signing included.

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use std::path::Path;
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// Fixed test credentials; the server accepts only these.
pub const TEST_ACCESS_KEY: &str = "yubin-test-access-key";
pub const TEST_SECRET_KEY: &str = "yubin-test-secret-key-not-a-secret";
pub const TEST_REGION: &str = "us-east-1";

#[derive(Debug, Error)]
pub enum TestServerError {
    #[error("test S3 server I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("s3s-fs: {0}")]
    Backend(String),
}

/// A running s3s-fs server; it stops when dropped. Buckets are directories under the root given
/// to [`spawn_s3s_fs`] (create one with `S3BlobStore::ensure_bucket` or `create_dir_all`).
#[derive(Debug)]
pub struct TestS3Server {
    /// `http://127.0.0.1:<port>`: the value for `AWS_ENDPOINT_URL_S3`.
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl TestS3Server {
    /// An SDK client configured for this server (path-style, fixed credentials, no retries
    /// beyond the SDK default).
    pub fn client(&self) -> aws_sdk_s3::Client {
        let creds = aws_sdk_s3::config::Credentials::new(
            &self.access_key,
            &self.secret_key,
            None,
            None,
            "yubin-test-server",
        );
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(self.region.clone()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(creds)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// An [`S3BlobStore`](crate::S3BlobStore) on `bucket` of this server (the bucket must exist
    /// or be created with `ensure_bucket`).
    pub fn blob_store(&self, bucket: &str) -> crate::S3BlobStore {
        crate::S3BlobStore::new(self.client(), bucket.to_string())
    }
}

impl Drop for TestS3Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // Abort too, so the listener and the connections go away even if the loop is not polled
        // again (a runtime that is shutting down).
        self.task.abort();
    }
}

/// Starts s3s-fs over `root` on an ephemeral port of 127.0.0.1. Must be called within a Tokio
/// runtime, which keeps serving it until the returned handle is dropped.
pub async fn spawn_s3s_fs(root: &Path) -> Result<TestS3Server, TestServerError> {
    let fs =
        s3s_fs::FileSystem::new(root).map_err(|e| TestServerError::Backend(format!("{e:?}")))?;
    let service = {
        let mut b = S3ServiceBuilder::new(fs);
        b.set_auth(SimpleAuth::from_single(TEST_ACCESS_KEY, TEST_SECRET_KEY));
        b.build()
    };
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let (tx, mut rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let http = ConnBuilder::new(TokioExecutor::new());
        // Connections live in this set, owned by the accept loop: when the loop ends or is
        // aborted the set is dropped and every open connection is cut too, so a dropped server
        // really is unreachable (clients' pooled keep-alive connections included).
        let mut connections = JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            let socket = tokio::select! {
                _ = &mut rx => break,
                accepted = accept_without_nagle(&listener) => match accepted {
                    Ok(socket) => socket,
                    // Transient accept failures (EMFILE...): keep serving.
                    Err(_) => continue,
                },
            };
            let conn = http
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            connections.spawn(async move {
                let _ = conn.await;
            });
        }
    });
    Ok(TestS3Server {
        endpoint: format!("http://{addr}"),
        access_key: TEST_ACCESS_KEY.to_string(),
        secret_key: TEST_SECRET_KEY.to_string(),
        region: TEST_REGION.to_string(),
        shutdown: Some(tx),
        task,
    })
}

/// The next connection, with Nagle's algorithm off. hyper writes a GetObject answer in several
/// writes (the head, then the streamed body); with Nagle on (RFC 896, RFC 1122 §4.2.3.4) the
/// body waits until the head is acknowledged, and a client on a kept-alive connection delays
/// that ACK (RFC 1122 §4.2.3.2; Linux waits up to 40 ms): a quarter of the small GETs and nearly
/// every 1 MB GET took 40 ms more (docs/performance.md, "S3 request latency"). Setting it is
/// best effort: a socket without it is still served correctly.
async fn accept_without_nagle(listener: &TcpListener) -> std::io::Result<TcpStream> {
    let (socket, _) = listener.accept().await?;
    let _ = socket.set_nodelay(true);
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The s3s-fs server's side of a connection has TCP_NODELAY; without it, GETs on kept-alive
    /// connections waited for delayed ACKs (the `s3_latency` benchmark shows the difference).
    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (client, accepted) =
            tokio::join!(TcpStream::connect(addr), accept_without_nagle(&listener));
        let client = client.expect("connect");
        let accepted = accepted.expect("accept");
        assert_eq!(accepted.peer_addr().ok(), client.local_addr().ok());
        assert!(accepted.nodelay().expect("TCP_NODELAY"), "Nagle still on");
    }
}
