//! Message bodies, content-addressed per user (`u/<user-id>/<sha256>`), behind a narrow trait.
//! The contract: `put` returns only once the bytes are durable; the same key always holds the
//! same bytes, so writing it twice is harmless.

use async_trait::async_trait;
use bytes::Bytes;
use std::ops::Range;
use std::path::Path;
use thiserror::Error;
use yubin_meta_api::BlobKey;

/// Errors classified by what the caller does.
#[derive(Debug, Error)]
pub enum BlobError {
    /// No blob under that key: metadata points at a missing body (a bug or lost data).
    #[error("blob {0} not found")]
    NotFound(String),
    /// The store cannot be reached or timed out: retry later, answer `NO [UNAVAILABLE]` / 451.
    #[error("blob store unavailable: {0}")]
    Unavailable(String),
    /// Anything else (bad configuration, corrupted response).
    #[error("blob store error: {0}")]
    Other(String),
}

pub type BlobResult<T> = Result<T, BlobError>;

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `data` under `key`; returns once it is durable.
    async fn put(&self, key: &BlobKey, data: Bytes) -> BlobResult<()>;
    /// Stores the `size` bytes of the file at `path` under `key`, streaming them from disk
    /// rather than holding them in memory (large APPENDs are spooled to a file first); returns
    /// once they are durable. The file is left in place. A file whose length is not `size`
    /// (changed under us) is refused with [`BlobError::Other`] and nothing is stored.
    async fn put_file(&self, key: &BlobKey, path: &Path, size: u64) -> BlobResult<()>;
    /// The whole blob.
    async fn get(&self, key: &BlobKey) -> BlobResult<Bytes>;
    /// Bytes `range` of the blob (clamped to its length).
    async fn get_range(&self, key: &BlobKey, range: Range<u64>) -> BlobResult<Bytes>;
    async fn exists(&self, key: &BlobKey) -> BlobResult<bool>;
    /// Removes the blob; removing a missing blob is not an error.
    async fn delete(&self, key: &BlobKey) -> BlobResult<()>;
    /// Every key starting with `prefix`.
    async fn list(&self, prefix: &str) -> BlobResult<Vec<BlobKey>>;
}

mod cache;
pub mod conformance;
mod faulty;
mod fs;
mod s3;
#[cfg(feature = "test-server")]
pub mod test_server;

pub use cache::{BodyCacheConfig, CachedBlobStore, DiskTierConfig};
pub use faulty::{FaultPolicy, FaultyBlobStore};
pub use fs::FsBlobStore;
pub use s3::S3BlobStore;
