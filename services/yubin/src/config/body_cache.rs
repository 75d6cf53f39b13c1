//! The front-end body cache (`[body_cache]`; flags in `cli::BodyCacheArgs`): bodies read from or
//! written to the blob store kept in memory and optionally on local disk
//! (`yubin_blob::CachedBlobStore`).

use std::path::PathBuf;
use std::sync::Arc;
use yubin_blob::{BlobStore, BodyCacheConfig, CachedBlobStore, DiskTierConfig};

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyCacheSettings {
    /// Bytes of bodies kept in memory; 0 turns the cache off.
    #[serde(default = "default_memory_bytes")]
    pub memory_bytes: u64,
    /// Bodies up to this size are cached whole; of larger ones only this many leading bytes.
    #[serde(default = "default_object_max_bytes")]
    pub object_max_bytes: u64,
    /// A directory for the local-disk tier (nothing else may live there).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Bytes of bodies the disk tier keeps.
    #[serde(default = "default_disk_bytes")]
    pub disk_bytes: u64,
}

impl Default for BodyCacheSettings {
    fn default() -> Self {
        BodyCacheSettings {
            memory_bytes: default_memory_bytes(),
            object_max_bytes: default_object_max_bytes(),
            dir: None,
            disk_bytes: default_disk_bytes(),
        }
    }
}

/// 256 MiB: about 5 000 typical (50 KB) messages per front-end.
fn default_memory_bytes() -> u64 {
    256 << 20
}
/// 1 MiB: most mail is smaller; a header read of a larger message fetches at most this much.
fn default_object_max_bytes() -> u64 {
    1 << 20
}
/// 10 GiB of local disk when a directory is given.
fn default_disk_bytes() -> u64 {
    10 << 30
}

impl BodyCacheSettings {
    fn config(&self) -> Option<BodyCacheConfig> {
        (self.memory_bytes > 0).then(|| BodyCacheConfig {
            memory_bytes: self.memory_bytes,
            object_max_bytes: self.object_max_bytes,
            disk: self.dir.as_ref().map(|dir| DiskTierConfig {
                dir: dir.clone(),
                max_bytes: self.disk_bytes,
            }),
        })
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.memory_bytes == 0 && self.dir.is_some() {
            anyhow::bail!(
                "body_cache: a dir needs memory_bytes > 0 (the disk tier sits behind memory)"
            );
        }
        match self.config() {
            Some(c) => c.validate().map_err(anyhow::Error::msg),
            None => Ok(()),
        }
    }

    /// `store` behind the cache, or as it is when the cache is off.
    pub fn wrap(&self, store: Arc<dyn BlobStore>) -> anyhow::Result<Arc<dyn BlobStore>> {
        Ok(match self.config() {
            Some(c) => {
                let cache = Arc::new(CachedBlobStore::new(store, &c)?);
                CachedBlobStore::keep_gauges_current(&cache);
                cache
            }
            None => store,
        })
    }
}
