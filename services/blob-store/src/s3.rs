//! Blobs in an S3 bucket (AWS S3, or any S3 protocol server: MinIO, Ceph RGW, s3s-fs...).
//!
//! S3 acknowledges a PUT only once the object is stored durably, which is exactly the trait's
//! contract, so `put` is a single PutObject. Errors are classified by what the caller does: network
//! failures, timeouts, throttling and 5xx are `Unavailable` (retry later), a missing key is
//! `NotFound`, the rest (bad credentials, missing bucket) is configuration: `Other`.

use crate::{BlobError, BlobResult, BlobStore};
use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::meta::region::RegionProviderChain;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::Region;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use bytes::Bytes;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;
use tracing::Instrument;
use yubin_meta_api::BlobKey;

/// The region used when none is configured: every S3-compatible server accepts it.
const DEFAULT_REGION: &str = "us-east-1";

/// The S3 operations the store performs: the `operation` label of its metrics.
const OPERATIONS: [&str; 6] = [
    "PutObject",
    "GetObject",
    "HeadObject",
    "DeleteObject",
    "ListObjectsV2",
    "HeadBucket",
];

/// Keys per ListObjectsV2 page; S3's own maximum.
const DEFAULT_LIST_PAGE: i32 = 1000;

/// Blobs stored as objects of one bucket, keyed by the blob key itself.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    client: Client,
    bucket: String,
    list_page_size: i32,
}

impl S3BlobStore {
    /// A store over an already configured client.
    pub fn new(client: Client, bucket: String) -> S3BlobStore {
        // Error series exist from the start (at 0), so dashboards and alerts see them before
        // the first failure.
        for operation in OPERATIONS {
            metrics::counter!("yubin_s3_errors_total", "operation" => operation).increment(0);
        }
        S3BlobStore {
            client,
            bucket,
            list_page_size: DEFAULT_LIST_PAGE,
        }
    }

    /// Configures a client from the standard AWS environment: `AWS_ENDPOINT_URL_S3` (or
    /// `AWS_ENDPOINT_URL`) for a non-AWS server, `AWS_REGION` (default `us-east-1`), credentials
    /// from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` or the rest of the default chain.
    ///
    /// Path-style addressing (`http://host/bucket/key`) is on unless `AWS_S3_FORCE_PATH_STYLE` is
    /// `false`: self-hosted servers rarely have wildcard DNS for virtual-hosted buckets, and AWS
    /// still serves path-style requests.
    pub async fn from_env(bucket: String) -> BlobResult<S3BlobStore> {
        if bucket.is_empty() {
            return Err(BlobError::Other("no S3 bucket configured".into()));
        }
        let region = RegionProviderChain::default_provider().or_else(Region::new(DEFAULT_REGION));
        // Bounded waits so an unreachable store turns into `Unavailable` instead of a hang; the
        // SDK's standard retry policy (3 attempts with backoff) still applies within them.
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .read_timeout(Duration::from_secs(30))
            .operation_attempt_timeout(Duration::from_secs(60))
            .operation_timeout(Duration::from_secs(180))
            .build();
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .region(region)
            .timeout_config(timeouts)
            .load()
            .await;
        let path_style = std::env::var("AWS_S3_FORCE_PATH_STYLE")
            .map(|v| !v.trim().eq_ignore_ascii_case("false"))
            .unwrap_or(true);
        let mut conf = aws_sdk_s3::config::Builder::from(&shared).force_path_style(path_style);
        // The shared loader honours these too; setting them explicitly keeps the precedence
        // documented above independent of the SDK version.
        let endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
            .iter()
            .filter_map(|v| std::env::var(v).ok())
            .find(|v| !v.trim().is_empty());
        if let Some(url) = endpoint {
            conf = conf.endpoint_url(url.trim());
        }
        Ok(S3BlobStore::new(Client::from_conf(conf.build()), bucket))
    }

    /// Keys asked per ListObjectsV2 page (1..=1000); small pages exercise pagination in tests.
    pub fn with_list_page_size(mut self, n: i32) -> S3BlobStore {
        self.list_page_size = n.clamp(1, DEFAULT_LIST_PAGE);
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Checks that the bucket is reachable with the configured credentials (readiness probes).
    pub async fn ping(&self) -> BlobResult<()> {
        observed("HeadBucket", async move {
            match self.client.head_bucket().bucket(&self.bucket).send().await {
                Ok(_) => Ok(()),
                Err(e) => Err(match classify(&self.bucket, "HeadBucket", e) {
                    BlobError::NotFound(_) => {
                        BlobError::Other(format!("bucket {} does not exist", self.bucket))
                    }
                    other => other,
                }),
            }
        })
        .await
    }

    /// Creates the bucket if it does not exist (development and tests; production buckets are
    /// provisioned by infrastructure code).
    pub async fn ensure_bucket(&self) -> BlobResult<()> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => return Ok(()),
            Err(e) => match classify(&self.bucket, "HeadBucket", e) {
                BlobError::NotFound(_) => {}
                other => return Err(other),
            },
        }
        let mut req = self.client.create_bucket().bucket(&self.bucket);
        let region = self
            .client
            .config()
            .region()
            .map(|r| r.as_ref().to_string());
        if let Some(region) = region.filter(|r| r != DEFAULT_REGION) {
            // Outside us-east-1, S3 requires the location constraint to match the endpoint.
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => Ok(()),
            // Lost a race with another creator: the bucket exists, which is all we wanted.
            Err(e)
                if matches!(
                    e.code(),
                    Some("BucketAlreadyOwnedByYou") | Some("BucketAlreadyExists")
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(classify(&self.bucket, "CreateBucket", e)),
        }
    }
}

/// Runs one S3 operation under an `s3` span (a child of the command that needed it) and records
/// `yubin_s3_request_duration_seconds{operation}` and, when S3 failed,
/// `yubin_s3_errors_total{operation}`. A missing key is an answer, not a failure.
async fn observed<T>(
    operation: &'static str,
    call: impl std::future::Future<Output = BlobResult<T>>,
) -> BlobResult<T> {
    let span = tracing::info_span!(
        "s3",
        otel.name = %format_args!("S3.{operation}"),
        otel.kind = "client",
        rpc.system = "aws-api",
        rpc.service = "S3",
        rpc.method = operation,
    );
    async move {
        let started = std::time::Instant::now();
        let result = call.await;
        metrics::histogram!("yubin_s3_request_duration_seconds", "operation" => operation)
            .record(started.elapsed().as_secs_f64());
        if let Err(e) = &result
            && !matches!(e, BlobError::NotFound(_))
        {
            metrics::counter!("yubin_s3_errors_total", "operation" => operation).increment(1);
        }
        result
    }
    .instrument(span)
    .await
}

/// Maps an SDK error to the trait's classes (see the module documentation).
fn classify<E>(key: &str, op: &str, e: SdkError<E, HttpResponse>) -> BlobError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = format!("{op} {key}: {}", DisplayErrorContext(&e));
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            BlobError::Unavailable(message)
        }
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            match se.err().code() {
                Some("NoSuchBucket") => BlobError::Other(message),
                Some("NoSuchKey") | Some("NotFound") => BlobError::NotFound(key.to_string()),
                Some("SlowDown")
                | Some("ServiceUnavailable")
                | Some("InternalError")
                | Some("RequestTimeout") => BlobError::Unavailable(message),
                _ if status == 404 => BlobError::NotFound(key.to_string()),
                _ if status >= 500 || status == 429 || status == 408 => {
                    BlobError::Unavailable(message)
                }
                _ => BlobError::Other(message),
            }
        }
        _ => BlobError::Other(message),
    }
}

fn is_invalid_range<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    match e {
        SdkError::ServiceError(se) => {
            se.raw().status().as_u16() == 416 || se.err().code() == Some("InvalidRange")
        }
        _ => false,
    }
}

async fn collect(key: &str, body: ByteStream) -> BlobResult<Bytes> {
    body.collect()
        .await
        .map(|b| b.into_bytes())
        // The connection broke mid-body: transient.
        .map_err(|e| BlobError::Unavailable(format!("reading {key}: {e}")))
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(&self, key: &BlobKey, data: Bytes) -> BlobResult<()> {
        observed("PutObject", async move {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key.as_str())
                .content_length(data.len() as i64)
                .body(ByteStream::from(data))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(key.as_str(), "PutObject", e))
        })
        .await
    }

    async fn put_file(&self, key: &BlobKey, path: &Path, size: u64) -> BlobResult<()> {
        observed("PutObject", async move {
            // One PutObject streamed from the file (S3 takes up to 5 GiB that way, far above any
            // APPENDLIMIT), so the body never sits in memory. The length is checked up front because
            // the request announces it.
            check_file_len(key.as_str(), path, size).await?;
            let length = i64::try_from(size)
                .map_err(|_| BlobError::Other(format!("{}: file too large", key.as_str())))?;
            let body = ByteStream::read_from()
                .path(path)
                .length(aws_sdk_s3::primitives::Length::Exact(size))
                .build()
                .await
                .map_err(|e| {
                    BlobError::Other(format!("{}: reading {}: {e}", key.as_str(), path.display()))
                })?;
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key.as_str())
                .content_length(length)
                .body(body)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(key.as_str(), "PutObject", e))
        })
        .await
    }

    async fn get(&self, key: &BlobKey) -> BlobResult<Bytes> {
        observed("GetObject", async move {
            let resp = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key.as_str())
                .send()
                .await
                .map_err(|e| classify(key.as_str(), "GetObject", e))?;
            collect(key.as_str(), resp.body).await
        })
        .await
    }

    async fn get_range(&self, key: &BlobKey, range: Range<u64>) -> BlobResult<Bytes> {
        observed("GetObject", async move {
            // Positions beyond i64::MAX cannot exist (S3 objects are far smaller) and some servers
            // reject them in a Range header.
            const MAX_POS: u64 = i64::MAX as u64;
            if range.start >= range.end || range.start >= MAX_POS {
                // Nothing to read, but a missing blob must still be reported as such.
                return if self.exists(key).await? {
                    Ok(Bytes::new())
                } else {
                    Err(BlobError::NotFound(key.as_str().to_string()))
                };
            }
            // RFC 9110 §14.1.2: the last position is inclusive, and servers clamp it to the length;
            // an end past any possible length is sent as an open range.
            let last = range.end - 1;
            let header = if last >= MAX_POS {
                format!("bytes={}-", range.start)
            } else {
                format!("bytes={}-{last}", range.start)
            };
            let resp = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key.as_str())
                .range(header)
                .send()
                .await;
            match resp {
                Ok(resp) => collect(key.as_str(), resp.body).await,
                // 416: the range starts at or past the end; clamped, that is the empty slice.
                Err(e) if is_invalid_range(&e) => Ok(Bytes::new()),
                Err(e) => Err(classify(key.as_str(), "GetObject", e)),
            }
        })
        .await
    }

    async fn exists(&self, key: &BlobKey) -> BlobResult<bool> {
        observed("HeadObject", async move {
            match self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(key.as_str())
                .send()
                .await
            {
                Ok(_) => Ok(true),
                Err(e) => match classify(key.as_str(), "HeadObject", e) {
                    BlobError::NotFound(_) => Ok(false),
                    other => Err(other),
                },
            }
        })
        .await
    }

    async fn delete(&self, key: &BlobKey) -> BlobResult<()> {
        observed("DeleteObject", async move {
            match self
                .client
                .delete_object()
                .bucket(&self.bucket)
                .key(key.as_str())
                .send()
                .await
            {
                Ok(_) => Ok(()),
                // S3 answers 204 for a missing key; some compatible servers say NoSuchKey instead.
                Err(e) => match classify(key.as_str(), "DeleteObject", e) {
                    BlobError::NotFound(_) => Ok(()),
                    other => Err(other),
                },
            }
        })
        .await
    }

    async fn list(&self, prefix: &str) -> BlobResult<Vec<BlobKey>> {
        observed("ListObjectsV2", async move {
            let mut keys = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let resp = self
                    .client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(prefix)
                    .max_keys(self.list_page_size)
                    .set_continuation_token(token.take())
                    .send()
                    .await
                    .map_err(|e| classify(prefix, "ListObjectsV2", e))?;
                keys.extend(
                    resp.contents()
                        .iter()
                        .filter_map(|o| o.key())
                        .map(|k| BlobKey(k.to_string())),
                );
                match (resp.is_truncated(), resp.next_continuation_token()) {
                    (Some(true), Some(next)) if !next.is_empty() => token = Some(next.to_string()),
                    _ => break,
                }
            }
            keys.sort();
            keys.dedup();
            Ok(keys)
        })
        .await
    }
}

/// Refuses a file whose length is not the announced `size`.
async fn check_file_len(key: &str, path: &Path, size: u64) -> BlobResult<()> {
    let len = tokio::fs::metadata(path)
        .await
        .map_err(|e| BlobError::Other(format!("{key}: reading {}: {e}", path.display())))?
        .len();
    if len != size {
        return Err(BlobError::Other(format!(
            "{key}: file holds {len} bytes, expected {size}"
        )));
    }
    Ok(())
}
