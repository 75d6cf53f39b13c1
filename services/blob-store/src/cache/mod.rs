//! A front-end cache of message bodies in front of any [`BlobStore`] (issue 10 item 3).
//!
//! Keys are content addresses (`u/<user>/<sha256>`), so a cached body never goes stale: the
//! same key always names the same bytes, and the only change a key sees is its deletion. What
//! the cache saves is the round trip to the store: a client that downloads a message it just
//! received, or reads one message in pieces (BODYSTRUCTURE, then the text part, then an
//! attachment), or several devices of one user reading the same mail, cost one GET in all.
//! Dovecot Pro's object-storage backend keeps the same kind of local cache (`fs-cache`).
//!
//! Two tiers: memory (bounded by bytes; moka's TinyLFU admission keeps one large scan from
//! flushing the hot set) and optionally a local-disk directory (bounded by bytes; files are
//! checked against the SHA-256 in their key when read, so a torn or corrupted file is a miss,
//! never wrong mail). Bodies up to `object_max_bytes` are cached whole. A read of the first
//! [`HEADER_READ_BYTES`] of a body it does not hold (a header: header-field FETCHes over a
//! range are what clients do most) fetches and keeps just those leading bytes, so listing a
//! mailbox neither downloads every body nor fills the cache with bodies nobody opens; the first
//! read beyond them fetches the body whole (up to `object_max_bytes`) and replaces them. Reads
//! of larger bodies beyond what is kept go to the store.
//!
//! Every miss loads through one future per key (moka's coalescing), so a burst of sessions
//! opening the same new message makes one GET. Writes go to the store first (the store's
//! durability is the contract), then enter the cache.

mod disk;

use crate::{BlobError, BlobResult, BlobStore};
use async_trait::async_trait;
use bytes::Bytes;
use disk::DiskTier;
use moka::future::Cache;
use moka::notification::RemovalCause;
use moka::ops::compute::{CompResult, Op};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use yubin_meta_api::BlobKey;

/// How large the cache may grow and what it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyCacheConfig {
    /// Bytes of bodies kept in memory.
    pub memory_bytes: u64,
    /// Bodies up to this size are cached whole; of larger ones at most this many leading
    /// bytes (the header and what follows) are kept in memory.
    pub object_max_bytes: u64,
    /// The local-disk tier, if any.
    pub disk: Option<DiskTierConfig>,
}

/// A directory the cache may fill with up to `max_bytes` of bodies. Nothing else may live in
/// it: files the cache does not know are removed at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskTierConfig {
    pub dir: PathBuf,
    pub max_bytes: u64,
}

impl BodyCacheConfig {
    /// What a setting can be wrong about, for the role's `validate()`.
    pub fn validate(&self) -> Result<(), String> {
        if self.object_max_bytes == 0 {
            return Err("body cache: object_max_bytes must be at least 1".into());
        }
        if self.memory_bytes > 0 && self.object_max_bytes > self.memory_bytes {
            return Err("body cache: object_max_bytes must not exceed memory_bytes".into());
        }
        if self.memory_bytes == 0 && self.disk.is_some() {
            return Err("body cache: the disk tier needs a memory tier (memory_bytes > 0)".into());
        }
        if let Some(disk) = &self.disk
            && disk.max_bytes < self.object_max_bytes
        {
            return Err("body cache: disk max_bytes must be at least object_max_bytes".into());
        }
        Ok(())
    }
}

/// What the memory tier holds for a key: the whole body, or its first `object_max_bytes`.
#[derive(Clone)]
struct Cached {
    data: Bytes,
    complete: bool,
}

/// Why a load put nothing in the cache; shared by every caller that waited on it.
#[derive(Debug)]
enum NotCached {
    /// The store failed; each waiting caller gets the same error.
    Failed(BlobError),
    /// The whole body was read for a `get` but is too large to keep: here it is.
    TooLarge(Bytes),
}

/// Which read a load is for: whole-body reads fetch the whole body (so a large one costs one
/// GET, not a prefix and then the rest); range reads fetch this many leading bytes (at most
/// `object_max_bytes`), and the body whole when it is no longer than that.
#[derive(Debug, Clone, Copy)]
enum Want {
    Whole,
    Prefix(u64),
}

/// Leading bytes a header read fetches and keeps (at most `object_max_bytes`): a header and
/// then some. Real headers are a few KiB (long Received/DKIM chains included); a message no
/// longer than this is fetched whole by its first header read.
const HEADER_READ_BYTES: u64 = 16 * 1024;

/// A [`BlobStore`] that keeps bodies it read or wrote in memory and, optionally, on local disk.
pub struct CachedBlobStore {
    inner: Arc<dyn BlobStore>,
    memory: Cache<String, Cached>,
    /// Bytes the memory tier holds (the weigher's measure): added on insert, released by the
    /// eviction listener (which also sees replaced and removed entries). Signed: the listener
    /// may run for an entry before its insert is counted.
    held: Arc<AtomicI64>,
    disk: Option<Arc<DiskTier>>,
    object_max: u64,
}

impl CachedBlobStore {
    /// Wraps `inner`. With a disk tier, its directory is created if needed and the bodies
    /// already in it (from an earlier run) are taken over.
    pub fn new(inner: Arc<dyn BlobStore>, config: &BodyCacheConfig) -> BlobResult<Self> {
        config.validate().map_err(BlobError::Other)?;
        // Bytes held, kept here because moka updates its own weighted size in batches: the
        // gauge must be right on an idle node too.
        let held = Arc::new(AtomicI64::new(0));
        let released = held.clone();
        let memory = Cache::builder()
            .max_capacity(config.memory_bytes)
            .weigher(|key: &String, value: &Cached| weight(key, value))
            .eviction_listener(move |key: Arc<String>, value: Cached, cause| {
                released.fetch_sub(i64::from(weight(&key, &value)), Ordering::Relaxed);
                if cause == RemovalCause::Size {
                    metrics::counter!("yubin_body_cache_evictions_total", "tier" => "memory")
                        .increment(1);
                }
            })
            .build();
        let disk = match &config.disk {
            Some(d) => Some(Arc::new(
                DiskTier::open(&d.dir, d.max_bytes)
                    .map_err(|e| BlobError::Other(format!("body cache dir: {e}")))?,
            )),
            None => None,
        };
        for tier in ["memory", "disk"] {
            for result in ["hit", "miss"] {
                metrics::counter!("yubin_body_cache_lookups_total", "tier" => tier, "result" => result)
                    .increment(0);
            }
            metrics::counter!("yubin_body_cache_evictions_total", "tier" => tier).increment(0);
        }
        metrics::counter!("yubin_body_cache_bypassed_total").increment(0);
        let cache = CachedBlobStore {
            inner,
            memory,
            held,
            disk,
            object_max: config.object_max_bytes,
        };
        cache.publish_sizes();
        Ok(cache)
    }

    /// Settles the cache's bookkeeping and publishes its sizes every second from now on, for as
    /// long as `cache` is alive (moka applies evictions and size changes in batches, so without
    /// this an idle node's gauges would lag). Call once from within a Tokio runtime.
    pub fn keep_gauges_current(cache: &Arc<CachedBlobStore>) {
        let weak = Arc::downgrade(cache);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(cache) = weak.upgrade() else {
                    return;
                };
                cache.settle_bookkeeping().await;
                cache.publish_sizes();
            }
        });
    }

    async fn settle_bookkeeping(&self) {
        self.memory.run_pending_tasks().await;
        if let Some(disk) = &self.disk {
            disk.settle_index();
        }
    }

    /// The entry for `key`, loaded once however many callers ask at the same time.
    async fn lookup(&self, key: &BlobKey, want: Want) -> Result<Cached, Arc<NotCached>> {
        let entry = self
            .memory
            .entry_by_ref(key.as_str())
            .or_try_insert_with(self.load(key, want))
            .await?;
        let result = if entry.is_fresh() {
            self.held.fetch_add(
                i64::from(weight(key.as_str(), entry.value())),
                Ordering::Relaxed,
            );
            "miss"
        } else {
            "hit"
        };
        metrics::counter!("yubin_body_cache_lookups_total", "tier" => "memory", "result" => result)
            .increment(1);
        self.publish_sizes();
        Ok(entry.into_value())
    }

    /// A memory miss: the disk tier, then the store.
    async fn load(&self, key: &BlobKey, want: Want) -> Result<Cached, NotCached> {
        if let Some(disk) = &self.disk {
            if let Some(data) = disk.read(key).await {
                metrics::counter!("yubin_body_cache_lookups_total", "tier" => "disk", "result" => "hit")
                    .increment(1);
                return Ok(Cached {
                    data,
                    complete: true,
                });
            }
            metrics::counter!("yubin_body_cache_lookups_total", "tier" => "disk", "result" => "miss")
                .increment(1);
        }
        let data = match want {
            Want::Whole => self.inner.get(key).await,
            // One byte more than is kept tells whether the body is longer than that.
            Want::Prefix(n) => self.inner.get_range(key, 0..n.saturating_add(1)).await,
        }
        .map_err(NotCached::Failed)?;
        let kept = match want {
            Want::Whole => self.object_max,
            Want::Prefix(n) => n.min(self.object_max),
        };
        if data.len() as u64 <= kept {
            if let Some(disk) = &self.disk {
                disk.store(key, data.clone());
            }
            return Ok(Cached {
                data,
                complete: true,
            });
        }
        match want {
            Want::Whole => Err(NotCached::TooLarge(data)),
            Want::Prefix(_) => Ok(Cached {
                data: data.slice(..kept as usize),
                complete: false,
            }),
        }
    }

    /// A read that needs more of a body than the leading bytes held for it (`want`: the whole
    /// body, or up to `object_max_bytes` of it): the body is loaded again and replaces them.
    /// Upgrades of one key run one at a time, so a burst of readers of one message whose header
    /// is held makes one more GET, not one each.
    async fn upgrade(&self, key: &BlobKey, want: Want) -> Result<Cached, Arc<NotCached>> {
        let result = self
            .memory
            .entry_by_ref(key.as_str())
            .and_try_compute_with(|held| async move {
                if let Some(held) = held
                    && held.value().complete
                {
                    return Ok(Op::Nop);
                }
                metrics::counter!("yubin_body_cache_lookups_total", "tier" => "memory", "result" => "miss")
                    .increment(1);
                self.load(key, want).await.map(Op::Put)
            })
            .await
            .map_err(Arc::new)?;
        match result {
            CompResult::Inserted(entry) | CompResult::ReplacedWith(entry) => {
                self.held.fetch_add(
                    i64::from(weight(key.as_str(), entry.value())),
                    Ordering::Relaxed,
                );
                self.publish_sizes();
                Ok(entry.into_value())
            }
            CompResult::Unchanged(entry) => Ok(entry.into_value()),
            // Nothing was held and the closure never removes: a delete raced this read.
            CompResult::StillNone(_) | CompResult::Removed(_) => Err(Arc::new(NotCached::Failed(
                BlobError::NotFound(key.as_str().to_string()),
            ))),
        }
    }

    /// Keeps a body this node just wrote (APPEND, delivery): the next read of it is a hit.
    async fn keep(&self, key: &BlobKey, data: Bytes) {
        if data.len() as u64 > self.object_max {
            return;
        }
        if let Some(disk) = &self.disk {
            disk.store(key, data.clone());
        }
        let entry = Cached {
            data,
            complete: true,
        };
        self.held
            .fetch_add(i64::from(weight(key.as_str(), &entry)), Ordering::Relaxed);
        self.memory.insert(key.as_str().to_string(), entry).await;
        self.publish_sizes();
    }

    fn publish_sizes(&self) {
        metrics::gauge!("yubin_body_cache_bytes", "tier" => "memory")
            .set(self.held.load(Ordering::Relaxed).max(0) as f64);
        if let Some(disk) = &self.disk {
            metrics::gauge!("yubin_body_cache_bytes", "tier" => "disk").set(disk.bytes() as f64);
        }
    }

    /// Settles pending bookkeeping (eviction, sizes) now rather than on later calls: for tests
    /// and for reading exact sizes.
    pub async fn settle(&self) {
        if let Some(disk) = &self.disk {
            disk.wait_for_writes().await;
        }
        self.settle_bookkeeping().await;
    }

    /// Bytes held in memory.
    pub fn memory_bytes(&self) -> u64 {
        self.memory.weighted_size()
    }

    /// Bytes held on disk (0 without a disk tier).
    pub fn disk_bytes(&self) -> u64 {
        self.disk.as_ref().map_or(0, |d| d.bytes())
    }
}

/// What an entry weighs: its bytes plus what it costs beside them.
fn weight(key: &str, value: &Cached) -> u32 {
    u32::try_from(value.data.len() + key.len() + 96).unwrap_or(u32::MAX)
}

/// A whole-body read that put nothing in the cache: the body, when it was read but is too large
/// to keep, or the store's error.
fn too_large_or_failed(e: &NotCached) -> BlobResult<Bytes> {
    match e {
        NotCached::TooLarge(data) => {
            metrics::counter!("yubin_body_cache_bypassed_total").increment(1);
            Ok(data.clone())
        }
        other => Err(shared(other)),
    }
}

fn shared(e: &NotCached) -> BlobError {
    match e {
        NotCached::Failed(BlobError::NotFound(k)) => BlobError::NotFound(k.clone()),
        NotCached::Failed(BlobError::Unavailable(m)) => BlobError::Unavailable(m.clone()),
        NotCached::Failed(BlobError::Other(m)) => BlobError::Other(m.clone()),
        NotCached::TooLarge(_) => BlobError::Other("body too large for the cache".into()),
    }
}

/// Bytes `range` of `data`, clamped like [`BlobStore::get_range`].
fn clamped(data: &Bytes, range: &Range<u64>) -> Bytes {
    let len = data.len() as u64;
    let end = range.end.min(len);
    let start = range.start.min(end);
    data.slice(start as usize..end as usize)
}

#[async_trait]
impl BlobStore for CachedBlobStore {
    async fn put(&self, key: &BlobKey, data: Bytes) -> BlobResult<()> {
        self.inner.put(key, data.clone()).await?;
        self.keep(key, data).await;
        Ok(())
    }

    async fn put_file(&self, key: &BlobKey, path: &Path, size: u64) -> BlobResult<()> {
        self.inner.put_file(key, path, size).await?;
        if size <= self.object_max {
            // Spooled bodies are large (over the front-end's buffered-literal limit), so this is
            // rare; the file is local, so reading it back is cheap.
            let path = path.to_path_buf();
            if let Ok(Ok(data)) = tokio::task::spawn_blocking(move || std::fs::read(path)).await
                && data.len() as u64 == size
            {
                self.keep(key, Bytes::from(data)).await;
            }
        }
        Ok(())
    }

    async fn get(&self, key: &BlobKey) -> BlobResult<Bytes> {
        match self.lookup(key, Want::Whole).await {
            Ok(entry) if entry.complete => Ok(entry.data),
            // All that is ever kept of a body over the size cap: read it from the store, in
            // parallel with other readers (an upgrade would only serialize them).
            Ok(entry) if entry.data.len() as u64 >= self.object_max => {
                metrics::counter!("yubin_body_cache_bypassed_total").increment(1);
                self.inner.get(key).await
            }
            // Only a header's leading bytes are held: the body is read whole, kept if it fits.
            Ok(_) => match self.upgrade(key, Want::Whole).await {
                Ok(entry) if entry.complete => Ok(entry.data),
                Ok(_) => self.inner.get(key).await,
                Err(e) => too_large_or_failed(&e),
            },
            Err(e) => too_large_or_failed(&e),
        }
    }

    async fn get_range(&self, key: &BlobKey, range: Range<u64>) -> BlobResult<Bytes> {
        let held = self.memory.get(key.as_str()).await;
        if let Some(c) = &held
            && (c.complete || range.end <= c.data.len() as u64)
        {
            metrics::counter!("yubin_body_cache_lookups_total", "tier" => "memory", "result" => "hit")
                .increment(1);
            return Ok(clamped(&c.data, &range));
        }
        // Beyond what is kept of any body, and not held whole: the store serves it.
        if range.end > self.object_max {
            metrics::counter!("yubin_body_cache_bypassed_total").increment(1);
            return self.inner.get_range(key, range).await;
        }
        let header_read = HEADER_READ_BYTES.min(self.object_max);
        let loaded = if held.is_some() {
            self.upgrade(key, Want::Prefix(self.object_max)).await
        } else if range.start == 0 && range.end <= header_read {
            self.lookup(key, Want::Prefix(header_read)).await
        } else {
            self.lookup(key, Want::Prefix(self.object_max)).await
        };
        match loaded {
            Ok(entry) if entry.complete || range.end <= entry.data.len() as u64 => {
                Ok(clamped(&entry.data, &range))
            }
            // Another read loaded fewer leading bytes at the same moment.
            Ok(_) => {
                metrics::counter!("yubin_body_cache_bypassed_total").increment(1);
                self.inner.get_range(key, range).await
            }
            Err(e) => match e.as_ref() {
                NotCached::TooLarge(data) => Ok(clamped(data, &range)),
                other => Err(shared(other)),
            },
        }
    }

    async fn exists(&self, key: &BlobKey) -> BlobResult<bool> {
        if self.memory.contains_key(key.as_str()) {
            return Ok(true);
        }
        self.inner.exists(key).await
    }

    async fn delete(&self, key: &BlobKey) -> BlobResult<()> {
        // Out of the cache first: a read racing the delete then finds the store's answer.
        self.memory.invalidate(key.as_str()).await;
        if let Some(disk) = &self.disk {
            disk.remove(key);
        }
        self.inner.delete(key).await
    }

    async fn list(&self, prefix: &str) -> BlobResult<Vec<BlobKey>> {
        self.inner.list(prefix).await
    }
}

#[cfg(test)]
mod tests;
