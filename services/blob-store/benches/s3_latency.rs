//! Latency of single S3 requests against the s3s-fs test server, through `S3BlobStore` (the AWS
//! SDK) and, for comparison, through a minimal HTTP/1.1 client that signs its requests itself
//! (SigV4) and does nothing else: no SDK interceptors, no checksums, no retries, no pool.
//!
//! Run with `cargo bench -p yubin-blob --bench s3_latency` (release profile). Each row is one
//! request kind through one client, timed request by request, one at a time:
//!
//! - `S3BlobStore`: the store the front-ends use, `observed()` wrapper and metrics included;
//! - `SDK client`: the same SDK client called directly, without the wrapper;
//! - `raw, kept-alive`: one TCP connection reused for every request, as the SDK's pool does;
//! - `raw, new connection`: a fresh connection per request, as one `curl` call does.
//!
//! The two raw rows separate the server's per-request cost from the cost of reusing a
//! connection: a gap between them that the SDK rows share points at the server's socket, not at
//! the SDK.

use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use yubin_blob::BlobStore;
use yubin_blob::test_server::{TEST_ACCESS_KEY, TEST_REGION, TEST_SECRET_KEY, spawn_s3s_fs};
use yubin_meta_api::BlobKey;

const BUCKET: &str = "bench";
/// A typical small message body.
const SMALL: usize = 3 * 1024;
/// A message with an attachment.
const LARGE: usize = 1024 * 1024;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = spawn_s3s_fs(dir.path()).await.expect("s3s-fs");
    let store = server.blob_store(BUCKET);
    store.ensure_bucket().await.expect("bucket");
    let sdk = server.client();
    let addr: SocketAddr = server
        .endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("endpoint address");

    println!(
        "{:<6} {:<7} {:<20} {:>5} {:>10} {:>10} {:>10} {:>10}",
        "op", "size", "client", "n", "mean", "p50", "p90", "max"
    );
    for (label, size, iterations) in [("3 KB", SMALL, 200), ("1 MB", LARGE, 30)] {
        let body = Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        let key = BlobKey(format!("get-{size}"));
        store.put(&key, body.clone()).await.expect("seed object");

        for client in Client::ALL {
            let mut raw = RawClient::new(addr, client == Client::RawNewConnection);
            let samples = time(iterations, async |i| match client {
                Client::Store => {
                    let got = store.get(&key).await.expect("get");
                    assert_eq!(got.len(), size);
                }
                Client::Sdk => {
                    let resp = sdk
                        .get_object()
                        .bucket(BUCKET)
                        .key(&key.0)
                        .send()
                        .await
                        .expect("get");
                    let got = resp.body.collect().await.expect("body").into_bytes();
                    assert_eq!(got.len(), size);
                }
                Client::RawKeptAlive | Client::RawNewConnection => {
                    let (status, got) = raw.request("GET", &key.0, &[]).await;
                    assert_eq!((status, got.len()), (200, size), "raw GET #{i}");
                }
            })
            .await;
            report("GET", label, client.name(), &samples);
        }

        for client in Client::ALL {
            let mut raw = RawClient::new(addr, client == Client::RawNewConnection);
            let samples = time(iterations, async |i| {
                let key = format!("put-{size}-{}-{i}", client.name().replace([' ', ','], ""));
                match client {
                    Client::Store => {
                        store.put(&BlobKey(key), body.clone()).await.expect("put");
                    }
                    Client::Sdk => {
                        sdk.put_object()
                            .bucket(BUCKET)
                            .key(&key)
                            .body(body.clone().into())
                            .send()
                            .await
                            .expect("put");
                    }
                    Client::RawKeptAlive | Client::RawNewConnection => {
                        let (status, _) = raw.request("PUT", &key, &body).await;
                        assert_eq!(status, 200, "raw PUT #{i}");
                    }
                }
            })
            .await;
            report("PUT", label, client.name(), &samples);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Client {
    Store,
    Sdk,
    RawKeptAlive,
    RawNewConnection,
}

impl Client {
    const ALL: [Client; 4] = [
        Client::Store,
        Client::Sdk,
        Client::RawKeptAlive,
        Client::RawNewConnection,
    ];

    fn name(self) -> &'static str {
        match self {
            Client::Store => "S3BlobStore",
            Client::Sdk => "SDK client",
            Client::RawKeptAlive => "raw, kept-alive",
            Client::RawNewConnection => "raw, new connection",
        }
    }
}

/// Runs `request` a few times to warm up (connections, pools, page cache), then `iterations`
/// times, one after the other, and returns each one's duration, sorted.
async fn time(iterations: usize, mut request: impl AsyncFnMut(usize)) -> Vec<Duration> {
    for i in 0..5 {
        request(usize::MAX - i).await;
    }
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let started = Instant::now();
        request(i).await;
        samples.push(started.elapsed());
    }
    samples.sort_unstable();
    samples
}

fn report(op: &str, size: &str, client: &str, sorted: &[Duration]) {
    let n = sorted.len();
    let mean = sorted.iter().sum::<Duration>() / n as u32;
    let q = |x: f64| sorted[((n - 1) as f64 * x).round() as usize];
    println!(
        "{op:<6} {size:<7} {client:<20} {n:>5} {:>10} {:>10} {:>10} {:>10}",
        ms(mean),
        ms(q(0.5)),
        ms(q(0.9)),
        ms(sorted[n - 1])
    );
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// HTTP/1.1 with path-style S3 requests signed with SigV4, nothing more. Its socket has
/// TCP_NODELAY set, like the SDK's and curl's.
struct RawClient {
    addr: SocketAddr,
    new_connection_per_request: bool,
    connection: Option<BufReader<TcpStream>>,
}

impl RawClient {
    fn new(addr: SocketAddr, new_connection_per_request: bool) -> RawClient {
        RawClient {
            addr,
            new_connection_per_request,
            connection: None,
        }
    }

    /// Sends one request and reads its whole answer: (status, body).
    async fn request(&mut self, method: &str, key: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let path = format!("/{BUCKET}/{key}");
        let host = self.addr.to_string();
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        for (name, value) in sigv4_headers(method, &path, &host, body) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("content-length: {}\r\n", body.len()));
        if self.new_connection_per_request {
            head.push_str("connection: close\r\n");
        }
        head.push_str("\r\n");

        if self.connection.is_none() || self.new_connection_per_request {
            let tcp = TcpStream::connect(self.addr).await.expect("connect");
            tcp.set_nodelay(true).expect("nodelay");
            self.connection = Some(BufReader::new(tcp));
        }
        let conn = self.connection.as_mut().expect("connected");
        // One write for head and body, so the client side never waits on its own Nagle.
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        conn.get_mut().write_all(&request).await.expect("send");

        let mut status_line = String::new();
        conn.read_line(&mut status_line).await.expect("status line");
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut length = None;
        let mut chunked = false;
        loop {
            let mut line = String::new();
            conn.read_line(&mut line).await.expect("header");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("header line");
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.trim().parse::<usize>().expect("content-length"));
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.trim().eq_ignore_ascii_case("chunked");
            }
        }
        let mut answer = Vec::new();
        if chunked {
            loop {
                let mut size_line = String::new();
                conn.read_line(&mut size_line).await.expect("chunk size");
                let size = usize::from_str_radix(size_line.trim_end(), 16).expect("chunk size");
                let mut chunk = vec![0; size + 2];
                conn.read_exact(&mut chunk).await.expect("chunk");
                answer.extend_from_slice(&chunk[..size]);
                if size == 0 {
                    break;
                }
            }
        } else {
            answer.resize(length.unwrap_or(0), 0);
            conn.read_exact(&mut answer).await.expect("body");
        }
        if self.new_connection_per_request {
            self.connection = None;
        }
        (status, answer)
    }
}

/// The headers that sign a request with AWS Signature Version 4 (header-based, the payload
/// hashed): `host`, `x-amz-date`, `x-amz-content-sha256` and `authorization`.
fn sigv4_headers(method: &str, path: &str, host: &str, body: &[u8]) -> Vec<(String, String)> {
    let now = chrono::Utc::now();
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let day = now.format("%Y%m%d").to_string();
    let payload_hash = hex::encode(Sha256::digest(body));
    // Keys here are plain ASCII without reserved characters: the path is its own URI encoding.
    let signed_headers = "host;x-amz-content-sha256;x-amz-date";
    let canonical_request = format!(
        "{method}\n{path}\n\nhost:{host}\nx-amz-content-sha256:{payload_hash}\n\
         x-amz-date:{amz_date}\n\n{signed_headers}\n{payload_hash}"
    );
    let scope = format!("{day}/{TEST_REGION}/s3/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac_sha256(format!("AWS4{TEST_SECRET_KEY}").as_bytes(), day.as_bytes());
    for part in [TEST_REGION, "s3", "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac_sha256(&key, string_to_sign.as_bytes()));
    vec![
        ("host".into(), host.into()),
        ("x-amz-date".into(), amz_date),
        ("x-amz-content-sha256".into(), payload_hash),
        (
            "authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential={TEST_ACCESS_KEY}/{scope}, \
                 SignedHeaders={signed_headers}, Signature={signature}"
            ),
        ),
    ]
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}
