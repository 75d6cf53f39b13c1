//! The body cache's local-disk tier: one file per body, `<dir>/<user-id>/<sha256>`, an index in
//! memory bounded by bytes (moka, least recently/frequently used evicted first; evicting an
//! entry removes its file).
//!
//! Only whole bodies under content-addressed keys (`u/<user-id>/<64 hex>`) are kept, so every
//! file can be checked when read: a file whose SHA-256 is not the one in its name (torn by a
//! crash, damaged on disk, replaced behind our back) is removed and read as a miss. Files are
//! written to `<dir>/tmp` and renamed into place, so a reader never sees a half-written one.
//! Writes happen in the background, at most [`MAX_PENDING_WRITES`] at once; a body that comes
//! while they are busy is simply not written (the cache is an optimization).

use bytes::Bytes;
use moka::notification::RemovalCause;
use moka::sync::Cache;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Semaphore;
use yubin_meta_api::BlobKey;

/// Background file writes at once.
const MAX_PENDING_WRITES: usize = 16;

pub(super) struct DiskTier {
    dir: PathBuf,
    /// Key → file size. Evicting or invalidating an entry removes its file.
    index: Cache<String, u64>,
    writes: Arc<Semaphore>,
    /// Names temporary files apart, so two writes of one body never share one.
    next_tmp: AtomicU64,
}

/// The file of `key` under `dir`, if `key` is content-addressed; and the digest to check.
fn file_of(dir: &Path, key: &str) -> Option<(PathBuf, String)> {
    let rest = key.strip_prefix("u/")?;
    let (user, digest) = rest.split_once('/')?;
    let user_ok = !user.is_empty() && user.bytes().all(|b| b.is_ascii_digit());
    let digest_ok = digest.len() == 64
        && digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (user_ok && digest_ok).then(|| (dir.join(user).join(digest), digest.to_string()))
}

impl DiskTier {
    /// Opens (or creates) the tier in `dir` and takes over the bodies an earlier run left, up
    /// to `max_bytes`; anything else in the directory is removed.
    pub(super) fn open(dir: &Path, max_bytes: u64) -> std::io::Result<DiskTier> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        let root = dir.to_path_buf();
        let index = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key: &String, size: &u64| u32::try_from(*size).unwrap_or(u32::MAX))
            .eviction_listener(move |key: Arc<String>, _size, cause| {
                // A replaced entry keeps its file (the same bytes were written again).
                if cause == RemovalCause::Replaced {
                    return;
                }
                if cause == RemovalCause::Size {
                    metrics::counter!("yubin_body_cache_evictions_total", "tier" => "disk")
                        .increment(1);
                }
                if let Some((path, _)) = file_of(&root, &key) {
                    let _ = std::fs::remove_file(path);
                }
            })
            .build();
        let tier = DiskTier {
            dir: dir.to_path_buf(),
            index,
            writes: Arc::new(Semaphore::new(MAX_PENDING_WRITES)),
            next_tmp: AtomicU64::new(0),
        };
        tier.adopt()?;
        Ok(tier)
    }

    /// Indexes the files an earlier run left; removes whatever is not a body file.
    fn adopt(&self) -> std::io::Result<()> {
        for user in std::fs::read_dir(&self.dir)? {
            let user = user?;
            let name = user.file_name();
            let Some(user_id) = name.to_str() else {
                continue;
            };
            if user_id == "tmp" {
                continue;
            }
            if !user.file_type()?.is_dir() || !user_id.bytes().all(|b| b.is_ascii_digit()) {
                let _ = std::fs::remove_file(user.path());
                continue;
            }
            for body in std::fs::read_dir(user.path())? {
                let body = body?;
                let key = format!("u/{user_id}/{}", body.file_name().to_string_lossy());
                let meta = body.metadata()?;
                if meta.is_file() && file_of(&self.dir, &key).is_some() {
                    self.index.insert(key, meta.len());
                } else {
                    let _ = std::fs::remove_file(body.path());
                }
            }
        }
        self.index.run_pending_tasks();
        Ok(())
    }

    /// The whole body of `key` if this tier has it and it checks out.
    pub(super) async fn read(&self, key: &BlobKey) -> Option<Bytes> {
        self.index.get(key.as_str())?;
        let (path, digest) = file_of(&self.dir, key.as_str())?;
        let read = tokio::task::spawn_blocking(move || {
            // Missing: evicted between the index lookup and here, or removed from outside.
            let data = std::fs::read(&path).ok()?;
            Some((hex::encode(Sha256::digest(&data)) == digest).then_some(data))
        })
        .await
        .ok()
        .flatten();
        match read {
            Some(Some(data)) => Some(Bytes::from(data)),
            Some(None) => {
                metrics::counter!("yubin_body_cache_damaged_total").increment(1);
                tracing::warn!(key = key.as_str(), "body cache file damaged; dropped");
                self.index.invalidate(key.as_str());
                None
            }
            None => {
                self.index.invalidate(key.as_str());
                None
            }
        }
    }

    /// Writes `data` as the body of `key` in the background, unless it is there already or
    /// the writer is busy.
    pub(super) fn store(&self, key: &BlobKey, data: Bytes) {
        let Some((path, _)) = file_of(&self.dir, key.as_str()) else {
            return;
        };
        if self.index.contains_key(key.as_str()) {
            return;
        }
        let Ok(permit) = self.writes.clone().try_acquire_owned() else {
            metrics::counter!("yubin_body_cache_disk_writes_skipped_total").increment(1);
            return;
        };
        let tmp = self.dir.join("tmp").join(format!(
            "{}.{}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("body"),
            self.next_tmp.fetch_add(1, Ordering::Relaxed)
        ));
        let index = self.index.clone();
        let key = key.as_str().to_string();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let size = data.len() as u64;
            let written = (|| {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&tmp, &data)?;
                std::fs::rename(&tmp, &path)
            })();
            match written {
                Ok(()) => index.insert(key, size),
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    tracing::warn!(error = %e, "writing a body cache file failed");
                }
            }
        });
    }

    /// Drops `key` (its file goes with it).
    pub(super) fn remove(&self, key: &BlobKey) {
        self.index.invalidate(key.as_str());
    }

    /// Bytes of bodies on disk, as far as the index knows.
    pub(super) fn bytes(&self) -> u64 {
        self.index.weighted_size()
    }

    /// Applies the index's pending evictions and size changes.
    pub(super) fn settle_index(&self) {
        self.index.run_pending_tasks();
    }

    /// Waits for the background writes under way to finish.
    pub(super) async fn wait_for_writes(&self) {
        let all = u32::try_from(MAX_PENDING_WRITES).unwrap_or(u32::MAX);
        if let Ok(permits) = self.writes.acquire_many(all).await {
            drop(permits);
        }
    }
}
