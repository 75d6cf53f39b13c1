//! Shared set-up of the integration tests.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use tempfile::TempDir;
use yubin_blob::BlobStore;
use yubin_text_index::{TextIndexConfig, TextIndexes};

/// Tantivy's smallest writer buffer, so tests stay light.
pub const WRITER_MEMORY: usize = 15_000_000;

pub fn config(dir: PathBuf, remote: Option<Arc<dyn BlobStore>>) -> TextIndexConfig {
    TextIndexConfig {
        dir,
        remote,
        max_open_users: 4,
        writer_memory_bytes: WRITER_MEMORY,
    }
}

/// Indexes on local disk only, in a fresh directory (kept alive by the returned guard).
pub fn local_indexes() -> (TempDir, TextIndexes) {
    let dir = tempfile::tempdir().expect("temp dir");
    let ti = TextIndexes::open(config(dir.path().join("ix"), None)).expect("open");
    (dir, ti)
}
