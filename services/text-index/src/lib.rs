//! The full-text index of IMAP SEARCH (RFC 3501 §6.4.4, RFC 9051 §6.4.4): one tantivy index per
//! user on local disk, published to object storage as immutable files plus a manifest per
//! generation, so any node can answer a user's text searches from the newest generation.
//!
//! The metadata store (not this crate) records each user's current published [`Generation`];
//! the single writer of a user (a lease the caller holds) calls [`TextIndexes::write`] with
//! that generation as the base and records the one returned. Readers pass the generation they
//! know as `at_least` and get the generation they were answered from back
//! ([`LeafHits::indexed_through`]); the caller checks messages indexed after it by itself.
//!
//! Answers are exact: for every indexed message, a UID is in a leaf's hits iff
//! [`leaf_matches`] holds for that leaf and the message's [`SearchIndex`] (see `query` for
//! how).

mod doc;
mod local;
mod query;
mod remote;
mod semantics;
mod store;

use std::path::PathBuf;
use std::sync::Arc;

use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use yubin_meta_api::{MailboxId, SearchIndex, Uid};

pub use query::MAX_NEEDLE_CHARS;
pub use semantics::{day_number, is_text_leaf, leaf_matches, text_leaves};
pub use store::TextIndexes;

/// A published state of a user's index; 0 is the empty index. Each write makes the next one.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Generation(pub u64);

/// Errors classified by what the caller does.
#[derive(Debug, Error)]
pub enum TextIndexError {
    /// The object store cannot be reached: retry later, answer `NO [UNAVAILABLE]`.
    #[error("text index unavailable: {0}")]
    Unavailable(String),
    /// Stored data is damaged or missing (a checksum mismatch, a generation the metadata names
    /// that no longer exists): rebuild the user's index from generation 0.
    #[error("text index corrupt: {0}")]
    Corrupt(String),
    /// The generation a write would make was already made by a different write: the caller's
    /// single-writer lease was broken. Re-read the current generation before writing again.
    #[error("text index generation {0:?} was already published by another write")]
    Conflict(Generation),
    #[error("text index error: {0}")]
    Other(String),
}

impl From<tantivy::TantivyError> for TextIndexError {
    fn from(e: tantivy::TantivyError) -> TextIndexError {
        use tantivy::TantivyError as T;
        match e {
            T::DataCorruption(c) => TextIndexError::Corrupt(format!("{c:?}")),
            T::OpenReadError(e) => TextIndexError::Corrupt(e.to_string()),
            T::SchemaError(e) => TextIndexError::Corrupt(e),
            other => TextIndexError::Other(other.to_string()),
        }
    }
}

/// Where and how the indexes live.
pub struct TextIndexConfig {
    /// Local directory holding one sub-directory per user.
    pub dir: PathBuf,
    /// Where generations are published; `None` keeps the index on local disk only (one node).
    pub remote: Option<Arc<dyn yubin_blob::BlobStore>>,
    /// How many users' indexes stay open at once (least recently used ones are closed).
    pub max_open_users: usize,
    /// Memory of one write's indexing buffer; tantivy needs at least 15 MB.
    pub writer_memory_bytes: usize,
}

/// Tantivy's smallest indexing buffer per thread.
pub const MIN_WRITER_MEMORY_BYTES: usize = 15_000_000;

impl TextIndexConfig {
    pub fn validate(&self) -> Result<(), TextIndexError> {
        if self.max_open_users == 0 {
            return Err(TextIndexError::Other(
                "max_open_users must be at least 1".into(),
            ));
        }
        if self.writer_memory_bytes < MIN_WRITER_MEMORY_BYTES {
            return Err(TextIndexError::Other(format!(
                "writer_memory_bytes must be at least {MIN_WRITER_MEMORY_BYTES}"
            )));
        }
        Ok(())
    }
}

/// The settings of [`TextIndexConfig`] that come from configuration (the caller adds the
/// directory and the object store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TextIndexSettings {
    pub max_open_users: usize,
    pub writer_memory_bytes: usize,
}

impl Default for TextIndexSettings {
    fn default() -> TextIndexSettings {
        TextIndexSettings {
            max_open_users: 256,
            writer_memory_bytes: 20_000_000,
        }
    }
}

impl TextIndexSettings {
    pub fn config(
        &self,
        dir: PathBuf,
        remote: Option<Arc<dyn yubin_blob::BlobStore>>,
    ) -> TextIndexConfig {
        TextIndexConfig {
            dir,
            remote,
            max_open_users: self.max_open_users,
            writer_memory_bytes: self.writer_memory_bytes,
        }
    }
}

/// One write of a user's index. Applied in this order: mailboxes removed, messages removed,
/// then messages added (adding an indexed key replaces it) and copies made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteBatch {
    pub add: Vec<(MailboxId, Uid, SearchIndex)>,
    pub remove: Vec<(MailboxId, Uid)>,
    pub remove_mailboxes: Vec<MailboxId>,
    /// `(source, destination)`: index the destination with the source's stored index (COPY and
    /// MOVE of indexed messages). A source is looked up in this batch's `add`, then in the
    /// base generation, before anything is removed.
    pub add_copies: Vec<((MailboxId, Uid), (MailboxId, Uid))>,
}

/// What a write made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The new generation: base + 1.
    pub generation: Generation,
    /// Destinations of `add_copies` whose source is not indexed: the caller indexes them from
    /// the message body.
    pub unresolved_copies: Vec<(MailboxId, Uid)>,
}

/// The answer of [`TextIndexes::search`].
#[derive(Debug, Clone, PartialEq)]
pub struct LeafHits {
    /// Per leaf of [`text_leaves`], in that order: the UIDs of the mailbox's indexed messages
    /// that satisfy it.
    pub hits: Vec<RoaringBitmap>,
    /// The generation the answer comes from: at least the one asked for unless that one is not
    /// (fully) published; messages indexed after it are not in any hits.
    pub indexed_through: Generation,
}
