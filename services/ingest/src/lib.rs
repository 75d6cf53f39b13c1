//! One path for every message that enters the store, whatever brings it (IMAP APPEND,
//! MULTIAPPEND, CATENATE and REPLACE; LMTP delivery; imports): the body is hashed, stored in the
//! blob store under its content address and summarized (MIME structure, envelope, search text),
//! and the caller gets what `MailStore::append` needs to make it visible. Body first: the blob
//! is durable before any metadata can name it, so a crash leaves at worst an unreferenced body.
//!
//! Whatever the blob store does with a body it is given (the front-end's body cache keeps it)
//! happens here for every kind of arrival alike.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::path::Path;
use thiserror::Error;
use tokio::sync::Semaphore;
use yubin_blob::{BlobError, BlobStore};
use yubin_meta_api::{BlobKey, InternalDate, NewMessage, SearchIndex, UserId};
use yubin_mime::Summary;

/// Messages above this size are hashed and summarized off the async worker threads.
pub const INLINE_SUMMARY_LIMIT: usize = 256 * 1024;

/// Where the message's bytes are.
#[derive(Debug)]
pub enum Source<'a> {
    /// In memory (a buffered literal, an assembled CATENATE, an LMTP copy with trace fields).
    Memory(Bytes),
    /// Spooled to a local file as it arrived (a large APPEND literal), hashed on the way in.
    /// Uploaded from the file, so the connection never held it; read back once to summarize.
    Spooled {
        path: &'a Path,
        size: u64,
        sha256_hex: &'a str,
    },
}

/// A stored body and what metadata needs about it.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub blob: BlobKey,
    pub size: u64,
    pub summary: Summary,
    pub index: SearchIndex,
}

impl Ingested {
    /// The message as `MailStore::append` takes it.
    pub fn into_new_message(self, internal_date: InternalDate, flags: Vec<String>) -> NewMessage {
        NewMessage {
            blob: self.blob,
            size: self.size,
            internal_date,
            flags,
            summary: self.summary.to_bytes(),
            index: self.index,
        }
    }
}

/// Why a message was not stored; nothing names its body then.
#[derive(Debug, Error)]
pub enum IngestError {
    /// The blob store refused or could not be reached (retry later unless `NotFound`/`Other`).
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// This node could not read its own spool file or run the summary: a local fault.
    #[error("local error: {0}")]
    Local(String),
    /// The node is shutting down.
    #[error("shutting down")]
    ShuttingDown,
}

/// Stores `source` as a body of `user` and summarizes it. `file_slots` bounds how many spooled
/// messages are read back into memory at once on this node (the summary needs the whole
/// message: mail-parser works on a slice).
pub async fn ingest(
    blobs: &dyn BlobStore,
    user: UserId,
    source: Source<'_>,
    file_slots: &Semaphore,
) -> Result<Ingested, IngestError> {
    match source {
        Source::Memory(raw) => ingest_bytes(blobs, user, raw).await,
        Source::Spooled {
            path,
            size,
            sha256_hex,
        } => ingest_file(blobs, user, path, size, sha256_hex, file_slots).await,
    }
}

async fn ingest_bytes(
    blobs: &dyn BlobStore,
    user: UserId,
    raw: Bytes,
) -> Result<Ingested, IngestError> {
    let size = raw.len() as u64;
    let (digest, summary, index) = if raw.len() > INLINE_SUMMARY_LIMIT {
        let raw = raw.clone();
        tokio::task::spawn_blocking(move || digest_and_summary(&raw))
            .await
            .map_err(|e| IngestError::Local(format!("summary task failed: {e}")))?
    } else {
        digest_and_summary(&raw)
    };
    let blob = BlobKey::for_content(user, &digest);
    blobs.put(&blob, raw).await?;
    Ok(Ingested {
        blob,
        size,
        summary,
        index,
    })
}

async fn ingest_file(
    blobs: &dyn BlobStore,
    user: UserId,
    path: &Path,
    size: u64,
    sha256_hex: &str,
    file_slots: &Semaphore,
) -> Result<Ingested, IngestError> {
    let blob = BlobKey::for_content(user, sha256_hex);
    blobs.put_file(&blob, path, size).await?;
    let Ok(_permit) = file_slots.acquire().await else {
        return Err(IngestError::ShuttingDown);
    };
    let path = path.to_path_buf();
    let (summary, index) = tokio::task::spawn_blocking(move || {
        let raw = std::fs::read(&path)?;
        if raw.len() as u64 != size {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "spool file changed size",
            ));
        }
        Ok(yubin_mime::summarize(&raw))
    })
    .await
    .map_err(|e| IngestError::Local(format!("summary task failed: {e}")))?
    .map_err(|e| IngestError::Local(format!("reading the spool file: {e}")))?;
    Ok(Ingested {
        blob,
        size,
        summary,
        index,
    })
}

/// The content address and the summary of one message.
fn digest_and_summary(raw: &[u8]) -> (String, Summary, SearchIndex) {
    let digest = hex::encode(Sha256::digest(raw));
    let (summary, index) = yubin_mime::summarize(raw);
    (digest, summary, index)
}

#[cfg(test)]
mod tests;
