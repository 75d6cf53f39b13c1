//! A user's index in object storage: immutable files and one manifest per generation.
//!
//! - `ix/<user>/f/<tantivy file name>-<sha256>`: the files, named by content too, so a name
//!   tantivy could reuse with other bytes (a delete bitset of another writer's lineage) never
//!   overwrites an object a published generation references;
//! - `ix/<user>/gen/<generation, 20 digits>`: the manifest ([`Manifest`]): tantivy's `meta.json`
//!   and the files with their lengths and checksums. Written last, so a generation exists only
//!   once all its files do: a reader that finds no manifest keeps the previous generation.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use yubin_blob::{BlobError, BlobStore};
use yubin_meta_api::{BlobKey, UserId};

use crate::TextIndexError;
use crate::local::PARTIAL_PREFIX;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileEntry {
    pub name: String,
    pub len: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    pub generation: u64,
    /// The digest of the write that made the generation (also in `meta_json`'s payload).
    pub digest: String,
    /// Tantivy's `meta.json` of the generation.
    pub meta_json: String,
    pub files: Vec<FileEntry>,
}

pub(crate) fn user_prefix(user: UserId) -> String {
    format!("ix/{}/", user.0)
}

fn manifest_prefix(user: UserId) -> String {
    format!("ix/{}/gen/", user.0)
}

pub(crate) fn manifest_key(user: UserId, generation: u64) -> BlobKey {
    BlobKey(format!("{}{generation:020}", manifest_prefix(user)))
}

pub(crate) fn file_key(user: UserId, file: &FileEntry) -> BlobKey {
    BlobKey(format!("ix/{}/f/{}-{}", user.0, file.name, file.sha256))
}

pub(crate) fn blob_error(e: BlobError) -> TextIndexError {
    match e {
        BlobError::Unavailable(m) => TextIndexError::Unavailable(m),
        BlobError::NotFound(m) => {
            TextIndexError::Corrupt(format!("text index object {m} is missing"))
        }
        BlobError::Other(m) => TextIndexError::Other(m),
    }
}

/// The manifest of `generation`, or `None` if it was never (completely) published or was
/// collected.
pub(crate) async fn get_manifest(
    store: &dyn BlobStore,
    user: UserId,
    generation: u64,
) -> Result<Option<Manifest>, TextIndexError> {
    match store.get(&manifest_key(user, generation)).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| TextIndexError::Corrupt(format!("manifest {generation}: {e}"))),
        Err(BlobError::NotFound(_)) => Ok(None),
        Err(e) => Err(blob_error(e)),
    }
}

/// The published generations of `user`, ascending.
pub(crate) async fn generations(
    store: &dyn BlobStore,
    user: UserId,
) -> Result<Vec<u64>, TextIndexError> {
    let prefix = manifest_prefix(user);
    let mut out: Vec<u64> = store
        .list(&prefix)
        .await
        .map_err(blob_error)?
        .iter()
        .filter_map(|k| k.0.strip_prefix(&prefix)?.parse().ok())
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// The newest published manifest at or after `at_least`, else the newest published one (the
/// one asked for may be half-uploaded), else `None` (nothing published: the empty index).
pub(crate) async fn best_manifest(
    store: &dyn BlobStore,
    user: UserId,
    at_least: u64,
) -> Result<Option<Manifest>, TextIndexError> {
    if at_least > 0
        && let Some(m) = get_manifest(store, user, at_least).await?
    {
        return Ok(Some(m));
    }
    for generation in generations(store, user).await?.into_iter().rev() {
        if let Some(m) = get_manifest(store, user, generation).await? {
            return Ok(Some(m));
        }
    }
    Ok(None)
}

/// SHA-256 and length of a local file (blocking).
pub(crate) fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, hex::encode(hasher.finalize())))
}

/// Downloads `file` into `dir`, checks its length and checksum, then renames it into place.
pub(crate) async fn download(
    store: &dyn BlobStore,
    user: UserId,
    dir: &Path,
    file: &FileEntry,
) -> Result<(), TextIndexError> {
    let bytes = store.get(&file_key(user, file)).await.map_err(blob_error)?;
    let digest = hex::encode(Sha256::digest(&bytes));
    if bytes.len() as u64 != file.len || digest != file.sha256 {
        return Err(TextIndexError::Corrupt(format!(
            "text index file {} of user {user}: {} bytes with sha256 {digest}, the manifest says {} bytes with {}",
            file.name,
            bytes.len(),
            file.len,
            file.sha256
        )));
    }
    let partial = dir.join(format!("{PARTIAL_PREFIX}{}", file.name));
    let target = dir.join(&file.name);
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        std::fs::write(&partial, &bytes)?;
        std::fs::File::open(&partial)?.sync_all()?;
        std::fs::rename(&partial, &target)
    })
    .await
    .map_err(|e| TextIndexError::Other(e.to_string()))?
    .map_err(crate::local::io_error)
}

/// Deletes every object of `user` that neither the generations `keep` (the committed one and
/// the one just published) nor the newest two reference: older manifests, their files, and
/// orphans of writes whose commit failed. Runs after a publish, by the user's single writer.
pub(crate) async fn collect_garbage(
    store: &dyn BlobStore,
    user: UserId,
    keep: &[u64],
) -> Result<(), TextIndexError> {
    // Also the newest two: should a broken lease ever let two writers overlap, the generation
    // the store committed is one of them or of `keep`.
    let generations = generations(store, user).await?;
    let newest = generations.iter().rev().take(2).copied();
    let mut live = std::collections::HashSet::new();
    for g in keep.iter().copied().chain(newest) {
        let key = manifest_key(user, g);
        match get_manifest(store, user, g).await? {
            Some(m) => {
                live.extend(m.files.iter().map(|f| file_key(user, f).0));
                live.insert(key.0);
            }
            // Collected under us: nothing to keep for it (only one writer collects).
            None => continue,
        }
    }
    if live.is_empty() {
        return Ok(());
    }
    for key in store.list(&user_prefix(user)).await.map_err(blob_error)? {
        if !live.contains(&key.0) {
            store.delete(&key).await.map_err(blob_error)?;
        }
    }
    Ok(())
}
