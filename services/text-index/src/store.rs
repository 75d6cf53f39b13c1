//! [`TextIndexes`]: the open users' indexes (least recently used ones closed), writes with their
//! publication, refreshes of readers, and account deletion.
//!
//! Per user, one async lock orders writes, refreshes and deletion; searches that the current
//! local generation already satisfies read a snapshot (a tantivy searcher) without taking it,
//! so a write that is uploading does not hold up searches.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use lru::LruCache;
use sha2::{Digest, Sha256};
use tantivy::Searcher;
use yubin_blob::BlobStore;
use yubin_meta_api::{IndexProjection, MailboxId, SearchIndex, SearchKey, Uid, UserId};

use crate::doc::Fields;
use crate::local::{CommitState, LocalIndex, META_FILE, io_error};
use crate::remote::{self, FileEntry, Manifest};
use crate::{
    Generation, LeafHits, TextIndexConfig, TextIndexError, WriteBatch, WriteOutcome, query,
    text_leaves,
};

/// What searches read without the user's lock: a searcher over a generation that is published
/// (or, without a remote, committed).
#[derive(Clone)]
struct Snapshot {
    searcher: Searcher,
    fields: Fields,
    generation: u64,
}

#[derive(Default)]
struct Slot {
    local: tokio::sync::Mutex<Option<LocalState>>,
    snapshot: Mutex<Option<Snapshot>>,
}

struct LocalState {
    index: LocalIndex,
    /// The local commit is a published generation (always true without a remote). False for
    /// a copy opened from disk until checked against its manifest, and for a commit whose
    /// publication failed.
    published: bool,
}

/// Every user's text index on this node.
pub struct TextIndexes {
    dir: PathBuf,
    remote: Option<Arc<dyn BlobStore>>,
    writer_memory_bytes: usize,
    open: Mutex<LruCache<UserId, Arc<Slot>>>,
}

fn join_error(e: tokio::task::JoinError) -> TextIndexError {
    TextIndexError::Other(format!("text index task: {e}"))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TextIndexError> + Send + 'static,
) -> Result<T, TextIndexError> {
    tokio::task::spawn_blocking(f).await.map_err(join_error)?
}

fn digest(base: Generation, batch: &WriteBatch) -> Result<String, TextIndexError> {
    let mut h = Sha256::new();
    h.update(base.0.to_be_bytes());
    h.update(serde_json::to_vec(batch).map_err(|e| TextIndexError::Other(e.to_string()))?);
    Ok(hex::encode(h.finalize()))
}

impl TextIndexes {
    pub fn open(config: TextIndexConfig) -> Result<TextIndexes, TextIndexError> {
        config.validate()?;
        std::fs::create_dir_all(&config.dir).map_err(io_error)?;
        let cap = NonZeroUsize::new(config.max_open_users).unwrap_or(NonZeroUsize::MIN);
        Ok(TextIndexes {
            dir: config.dir,
            remote: config.remote,
            writer_memory_bytes: config.writer_memory_bytes,
            open: Mutex::new(LruCache::new(cap)),
        })
    }

    fn user_dir(&self, user: UserId) -> PathBuf {
        self.dir.join(user.0.to_string())
    }

    fn slot(&self, user: UserId) -> Arc<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get_or_insert(user, || Arc::new(Slot::default()))
            .clone()
    }

    /// Opens the local copy into `state` if it is not open yet.
    async fn ensure_open(
        &self,
        user: UserId,
        state: &mut Option<LocalState>,
    ) -> Result<(), TextIndexError> {
        if state.is_none() {
            let dir = self.user_dir(user);
            let index = blocking(move || LocalIndex::open(&dir)).await?;
            *state = Some(LocalState {
                published: self.remote.is_none(),
                index,
            });
        }
        Ok(())
    }

    fn publish_snapshot(slot: &Slot, state: &LocalState) {
        let snapshot = state.published.then(|| Snapshot {
            searcher: state.index.searcher(),
            fields: state.index.fields,
            generation: state.index.state.generation,
        });
        *slot.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = snapshot;
    }

    /// Makes the local copy exactly `manifest`'s generation (the empty index for `None`):
    /// downloads the files it lacks, writes the manifest's `meta.json`, removes the rest and
    /// reopens the index.
    async fn sync_to(
        &self,
        user: UserId,
        state: &mut Option<LocalState>,
        manifest: Option<&Manifest>,
    ) -> Result<(), TextIndexError> {
        let remote = self.remote.as_ref().ok_or_else(|| {
            TextIndexError::Other("no object store to refresh the text index from".into())
        })?;
        let dir = self.user_dir(user);
        // Close the index first: reopening gives tantivy a fresh file cache, and a stale
        // mapping of a replaced file cannot survive.
        *state = None;
        let wanted = manifest.map(|m| m.files.clone()).unwrap_or_default();
        let check_dir = dir.clone();
        let missing: Vec<FileEntry> = blocking(move || {
            std::fs::create_dir_all(&check_dir).map_err(io_error)?;
            let mut missing = Vec::new();
            for f in wanted {
                let path = check_dir.join(&f.name);
                let have = match std::fs::metadata(&path) {
                    // Segment files have random names; only delete bitsets (`<segment>.<opstamp>.del`)
                    // can share a name with different bytes, and they are small: hash those.
                    Ok(m) if m.len() == f.len && !f.name.ends_with(".del") => true,
                    Ok(m) if m.len() == f.len => remote::hash_file(&path)
                        .map(|(_, sha)| sha == f.sha256)
                        .unwrap_or(false),
                    _ => false,
                };
                if !have {
                    missing.push(f);
                }
            }
            Ok(missing)
        })
        .await?;
        for f in &missing {
            remote::download(remote.as_ref(), user, &dir, f).await?;
        }
        let meta = manifest.map(|m| m.meta_json.clone());
        let index = blocking(move || {
            match meta {
                Some(meta) => {
                    let partial = dir.join(format!("{}{META_FILE}", crate::local::PARTIAL_PREFIX));
                    std::fs::write(&partial, meta).map_err(io_error)?;
                    std::fs::rename(&partial, dir.join(META_FILE)).map_err(io_error)?;
                }
                None => match std::fs::remove_file(dir.join(META_FILE)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(io_error(e));
                    }
                    _ => {}
                },
            }
            let index = LocalIndex::open(&dir)?;
            index.remove_dead_files()?;
            Ok(index)
        })
        .await?;
        if let Some(m) = manifest
            && (index.state.generation != m.generation || index.state.digest != m.digest)
        {
            return Err(TextIndexError::Corrupt(format!(
                "manifest {} of user {user} does not match its meta.json",
                m.generation
            )));
        }
        *state = Some(LocalState {
            index,
            published: true,
        });
        Ok(())
    }

    /// Brings a reader's local copy to the newest published generation at or after
    /// `at_least` (or the newest there is, if that one is not published); keeps a published
    /// local copy that is already there.
    async fn refresh(
        &self,
        user: UserId,
        state: &mut Option<LocalState>,
        at_least: Generation,
    ) -> Result<(), TextIndexError> {
        let Some(remote) = self.remote.clone() else {
            return self.ensure_open(user, state).await;
        };
        // A reader can race the writer's collection of old generations: a manifest read just
        // before its files are deleted. Start over from the newest one then.
        let mut attempts = 0;
        loop {
            attempts += 1;
            self.ensure_open(user, state).await?;
            let s = state.as_mut().expect("opened above");
            let local_gen = s.index.state.generation;
            if s.published && local_gen >= at_least.0 {
                return Ok(());
            }
            let target = remote::best_manifest(remote.as_ref(), user, at_least.0).await?;
            let target_gen = target.as_ref().map_or(0, |m| m.generation);
            if s.published && local_gen >= target_gen {
                return Ok(());
            }
            if let Some(m) = &target {
                if m.generation == local_gen && m.digest == s.index.state.digest {
                    s.published = true;
                    return Ok(());
                }
            } else if local_gen == 0 {
                // Nothing published and nothing local: the empty index.
                s.published = true;
                return Ok(());
            }
            match self.sync_to(user, state, target.as_ref()).await {
                Err(TextIndexError::Corrupt(_)) if attempts < 3 => continue,
                other => return other,
            }
        }
    }

    /// Applies `batch` to generation `base` of `user`'s index and publishes generation `next`
    /// (above `base`). Retrying the same write returns the same outcome; a different write
    /// already published as `next` gives [`TextIndexError::Conflict`].
    ///
    /// The caller's store records which generation is committed; a write whose commit failed
    /// leaves an orphan generation, so callers pick a `next` no other write uses (e.g. above
    /// both `base` and the clock in microseconds) rather than `base + 1`.
    pub async fn write(
        &self,
        user: UserId,
        base: Generation,
        next: Generation,
        batch: WriteBatch,
    ) -> Result<WriteOutcome, TextIndexError> {
        if next <= base {
            return Err(TextIndexError::Other(format!(
                "generation {} does not follow {}",
                next.0, base.0
            )));
        }
        let slot = self.slot(user);
        let mut guard = slot.local.lock().await;
        let state = &mut *guard;
        let digest = digest(base, &batch)?;
        let next = next.0;
        self.ensure_open(user, state).await?;

        let base_manifest = match &self.remote {
            Some(remote) => {
                if let Some(done) = remote::get_manifest(remote.as_ref(), user, next).await? {
                    if done.digest != digest {
                        return Err(TextIndexError::Conflict(Generation(next)));
                    }
                    self.sync_to(user, state, Some(&done)).await?;
                    let s = state.as_ref().expect("synced");
                    Self::publish_snapshot(&slot, s);
                    return Ok(outcome(&s.index.state));
                }
                let m = if base.0 == 0 {
                    None
                } else {
                    Some(
                        remote::get_manifest(remote.as_ref(), user, base.0)
                            .await?
                            .ok_or_else(|| {
                                TextIndexError::Corrupt(format!(
                                    "generation {} of user {user}'s text index is not published",
                                    base.0
                                ))
                            })?,
                    )
                };
                let local = &state.as_ref().expect("opened").index.state;
                let at_base = match &m {
                    None => local.generation == 0,
                    Some(m) => local.generation == m.generation && local.digest == m.digest,
                };
                if !at_base {
                    self.sync_to(user, state, m.as_ref()).await?;
                }
                m
            }
            None => {
                let local = state.as_ref().expect("opened").index.state.clone();
                if local.generation == next && local.digest == digest {
                    return Ok(outcome(&local));
                }
                if base.0 == 0 && local.generation != 0 {
                    // A rebuild from nothing.
                    let dir = self.user_dir(user);
                    *state = None;
                    blocking(move || {
                        match std::fs::remove_dir_all(&dir) {
                            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                                return Err(io_error(e));
                            }
                            _ => {}
                        }
                        Ok(())
                    })
                    .await?;
                    self.ensure_open(user, state).await?;
                } else if local.generation > base.0 {
                    // A write of this process whose commit in the store failed: its adds are
                    // redone by this one and its removals were due, so it is built on (a local
                    // index cannot go back to an earlier commit).
                    tracing::debug!(
                        user = user.0,
                        local = local.generation,
                        base = base.0,
                        "building on an uncommitted local generation"
                    );
                } else if local.generation < base.0 {
                    return Err(TextIndexError::Corrupt(format!(
                        "the local text index of user {user} is at generation {}, behind {}",
                        local.generation, base.0
                    )));
                }
                None
            }
        };

        // Apply on a blocking thread; the state moves there and back.
        let mut local = state.take().expect("opened");
        local.published = self.remote.is_none();
        let memory = self.writer_memory_bytes;
        let (local, applied) = blocking(move || {
            let r = local.index.apply(&batch, next, digest, memory);
            Ok((local, r))
        })
        .await?;
        *state = Some(local);
        applied?;
        let s = state.as_mut().expect("applied");
        if let Some(remote) = self.remote.clone() {
            self.publish(remote.as_ref(), user, s, base_manifest.as_ref())
                .await?;
            s.published = true;
            // Collection is housekeeping: a failure leaves garbage for the next write.
            // The committed generation (`base`) stays until the store names the new one.
            if let Err(e) = remote::collect_garbage(remote.as_ref(), user, &[base.0, next]).await {
                tracing::warn!(user = user.0, error = %e, "text index garbage collection failed");
            }
        }
        Self::publish_snapshot(&slot, s);
        Ok(outcome(&s.index.state))
    }

    /// Uploads the files of the local commit that `base` does not have, then its manifest.
    async fn publish(
        &self,
        remote: &dyn BlobStore,
        user: UserId,
        s: &LocalState,
        base: Option<&Manifest>,
    ) -> Result<(), TextIndexError> {
        let dir = s.index.dir.clone();
        let names = s.index.live_files()?;
        let known: Vec<FileEntry> = base.map(|m| m.files.clone()).unwrap_or_default();
        let hash_dir = dir.clone();
        let files: Vec<(FileEntry, bool)> = blocking(move || {
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                // Files of the base generation are immutable: their entries carry over.
                if let Some(f) = known.iter().find(|f| f.name == name) {
                    let len = std::fs::metadata(hash_dir.join(&name))
                        .map_err(io_error)?
                        .len();
                    if len == f.len {
                        out.push((f.clone(), false));
                        continue;
                    }
                }
                let (len, sha256) = remote::hash_file(&hash_dir.join(&name)).map_err(io_error)?;
                out.push((FileEntry { name, len, sha256 }, true));
            }
            Ok(out)
        })
        .await?;
        for (f, new) in &files {
            if *new {
                remote
                    .put_file(&remote::file_key(user, f), &dir.join(&f.name), f.len)
                    .await
                    .map_err(remote::blob_error)?;
            }
        }
        let meta_path = dir.join(META_FILE);
        let meta_json =
            blocking(move || std::fs::read_to_string(meta_path).map_err(io_error)).await?;
        let manifest = Manifest {
            generation: s.index.state.generation,
            digest: s.index.state.digest.clone(),
            meta_json,
            files: files.into_iter().map(|(f, _)| f).collect(),
        };
        let key = remote::manifest_key(user, manifest.generation);
        // The object store has no create-if-absent here: the lease makes this check enough,
        // and it still catches a writer whose lease ran out long ago.
        if let Some(other) = remote::get_manifest(remote, user, manifest.generation).await? {
            if other.digest != manifest.digest {
                return Err(TextIndexError::Conflict(Generation(manifest.generation)));
            }
            return Ok(());
        }
        let body =
            serde_json::to_vec(&manifest).map_err(|e| TextIndexError::Other(e.to_string()))?;
        remote
            .put(&key, body.into())
            .await
            .map_err(remote::blob_error)
    }

    /// A searcher at `at_least` or newer (or the newest published generation if that one is
    /// not published).
    async fn snapshot(
        &self,
        user: UserId,
        at_least: Generation,
    ) -> Result<Snapshot, TextIndexError> {
        let slot = self.slot(user);
        if let Some(s) = slot
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|s| s.generation >= at_least.0)
        {
            return Ok(s.clone());
        }
        let mut guard = slot.local.lock().await;
        self.refresh(user, &mut guard, at_least).await?;
        let s = guard.as_ref().expect("refreshed");
        Self::publish_snapshot(&slot, s);
        Ok(Snapshot {
            searcher: s.index.searcher(),
            fields: s.index.fields,
            generation: s.index.state.generation,
        })
    }

    /// For each leaf of [`text_leaves`]`(key)`, the UIDs of `mailbox` whose indexed message
    /// satisfies it, from generation `at_least` or newer (see [`LeafHits::indexed_through`]).
    pub async fn search(
        &self,
        user: UserId,
        at_least: Generation,
        mailbox: MailboxId,
        key: &SearchKey,
    ) -> Result<LeafHits, TextIndexError> {
        let snap = self.snapshot(user, at_least).await?;
        let leaves: Vec<SearchKey> = text_leaves(key).into_iter().cloned().collect();
        let generation = snap.generation;
        let hits = blocking(move || {
            leaves
                .iter()
                .map(|leaf| {
                    query::leaf_hits(&snap.searcher, &snap.fields, mailbox, leaf)
                        .map_err(TextIndexError::from)
                })
                .collect()
        })
        .await?;
        Ok(LeafHits {
            hits,
            indexed_through: Generation(generation),
        })
    }

    /// The stored index of those of `uids` in `mailbox` that are indexed, in the order asked,
    /// whole or projected (see [`SearchIndex::project`]; a projection without body text reads
    /// no body).
    pub async fn documents(
        &self,
        user: UserId,
        at_least: Generation,
        mailbox: MailboxId,
        uids: &[Uid],
        projection: Option<&IndexProjection>,
    ) -> Result<Vec<(Uid, SearchIndex)>, TextIndexError> {
        let snap = self.snapshot(user, at_least).await?;
        let uids = uids.to_vec();
        let projection = projection.cloned();
        blocking(move || {
            query::load(
                &snap.searcher,
                &snap.fields,
                mailbox,
                &uids,
                projection.as_ref(),
            )
            .map_err(TextIndexError::from)
        })
        .await
    }

    /// Removes `user`'s index everywhere: the local copy and every remote object (account
    /// deletion).
    pub async fn drop_user(&self, user: UserId) -> Result<(), TextIndexError> {
        let slot = self.slot(user);
        let mut guard = slot.local.lock().await;
        *guard = None;
        *slot.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let dir = self.user_dir(user);
        blocking(move || match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(e)),
            _ => Ok(()),
        })
        .await?;
        if let Some(remote) = &self.remote {
            // Manifests first, so a concurrent reader never sees a generation whose files are
            // gone; then everything else.
            let prefix = remote::user_prefix(user);
            let mut keys = remote.list(&prefix).await.map_err(remote::blob_error)?;
            keys.sort_by_key(|k| !k.0.contains("/gen/"));
            for k in keys {
                remote.delete(&k).await.map_err(remote::blob_error)?;
            }
        }
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop(&user);
        Ok(())
    }
}

fn outcome(state: &CommitState) -> WriteOutcome {
    WriteOutcome {
        generation: Generation(state.generation),
        unresolved_copies: state.unresolved.clone(),
    }
}
