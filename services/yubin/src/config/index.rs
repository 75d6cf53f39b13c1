//! The full-text index (`[index]`; flags in `cli::IndexArgs`): where meta and `yubin dev` keep
//! it on local disk, how much it may use, and the indexer that fills it from the store's queue
//! (`yubin_meta_store::fulltext`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use yubin_blob::BlobStore;
use yubin_meta_api::{BlobKey, MetaError, MetaResult, SearchIndex};
use yubin_meta_store::fulltext::{BodyText, FullText, IndexQueue, Indexer, IndexerSettings, Nudge};
use yubin_text_index::{TextIndexConfig, TextIndexes};

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSettings {
    /// The local directory (nothing else may live there).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    #[serde(default = "default_max_open_accounts")]
    pub max_open_accounts: usize,
    #[serde(default = "default_writer_memory_bytes")]
    pub writer_memory_bytes: usize,
    #[serde(default = "default_batch_messages")]
    pub batch_messages: usize,
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Milliseconds a nudged account waits before its queue is indexed, so a busy account's
    /// writes share one index generation (`IndexerSettings::delay`).
    #[serde(default = "default_delay_ms")]
    pub delay_ms: u64,
    /// Index every account once at start (the migration command; docs/operations.md).
    #[serde(default)]
    pub all_at_start: bool,
}

impl Default for IndexSettings {
    fn default() -> Self {
        IndexSettings {
            dir: None,
            max_open_accounts: default_max_open_accounts(),
            writer_memory_bytes: default_writer_memory_bytes(),
            batch_messages: default_batch_messages(),
            concurrency: default_concurrency(),
            delay_ms: default_delay_ms(),
            all_at_start: false,
        }
    }
}

/// Open indexes hold file handles and memory maps, not much memory.
fn default_max_open_accounts() -> usize {
    256
}
/// tantivy needs at least ~15 MB per writer thread; each writer has one.
fn default_writer_memory_bytes() -> usize {
    32 << 20
}
fn default_batch_messages() -> usize {
    IndexerSettings::default().batch_messages
}
fn default_concurrency() -> usize {
    IndexerSettings::default().concurrency
}
fn default_delay_ms() -> u64 {
    IndexerSettings::default().delay.as_millis() as u64
}

/// The running index of a role: kept for the role's lifetime (a temporary directory is removed
/// when it is dropped).
pub struct RunningIndex {
    pub full_text: FullText,
    indexes: Arc<TextIndexes>,
    settings: IndexerSettings,
    nudges: Option<tokio::sync::mpsc::UnboundedReceiver<yubin_meta_api::UserId>>,
    nudge: Nudge,
    all_at_start: bool,
    _temporary: Option<tempfile::TempDir>,
}

impl IndexSettings {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_open_accounts == 0 {
            anyhow::bail!("index: max_open_accounts must be at least 1");
        }
        if self.writer_memory_bytes < 15 << 20 {
            anyhow::bail!("index: writer_memory_bytes must be at least 15 MiB (tantivy's minimum)");
        }
        if !(1..=100_000).contains(&self.batch_messages) {
            anyhow::bail!("index: batch_messages must be between 1 and 100000");
        }
        if !(1..=64).contains(&self.concurrency) {
            anyhow::bail!("index: concurrency must be between 1 and 64");
        }
        if self.delay_ms > 60_000 {
            anyhow::bail!("index: delay_ms must be at most 60000");
        }
        Ok(())
    }

    /// Opens the index in the configured directory, else in `default_dir`, else in a fresh
    /// temporary directory; `remote` is where it is published (meta: the S3 bucket, so that
    /// every meta replica reads the same index), `None` for a one-process setup.
    pub fn open(
        &self,
        default_dir: Option<&Path>,
        remote: Option<Arc<dyn BlobStore>>,
    ) -> anyhow::Result<RunningIndex> {
        let (dir, temporary) = match (&self.dir, default_dir) {
            (Some(d), _) => (d.clone(), None),
            (None, Some(d)) => (d.to_path_buf(), None),
            (None, None) => {
                let t = tempfile::Builder::new()
                    .prefix("yubin-index-")
                    .tempdir()
                    .context("creating a temporary index directory")?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let indexes = Arc::new(
            TextIndexes::open(TextIndexConfig {
                dir: dir.clone(),
                remote,
                max_open_users: self.max_open_accounts,
                writer_memory_bytes: self.writer_memory_bytes,
            })
            .with_context(|| format!("opening the full-text index in {}", dir.display()))?,
        );
        let (nudge, nudges) = Nudge::channel();
        Ok(RunningIndex {
            full_text: FullText::new(indexes.clone(), nudge.clone()),
            indexes,
            settings: IndexerSettings {
                batch_messages: self.batch_messages,
                concurrency: self.concurrency,
                delay: std::time::Duration::from_millis(self.delay_ms),
                ..IndexerSettings::default()
            },
            nudges: Some(nudges),
            nudge,
            all_at_start: self.all_at_start,
            _temporary: temporary,
        })
    }
}

impl RunningIndex {
    /// Starts the indexer on `queue` (the store the full text was given to); `bodies` is where
    /// the messages' bodies are, to rebuild a text the queue no longer has.
    /// With `all_at_start`, a second indexer also goes through every account of `accounts`
    /// once (the migration; the lease keeps the two off the same account at once).
    pub fn start_indexer(
        &mut self,
        queue: Arc<dyn IndexQueue>,
        bodies: Arc<dyn BlobStore>,
        accounts: Arc<dyn yubin_meta_api::AccountStore>,
    ) {
        let Some(nudges) = self.nudges.take() else {
            return;
        };
        let bodies: Arc<dyn BodyText> = Arc::new(BodiesText(bodies));
        let indexer = |queue| {
            Indexer::new(queue, self.indexes.clone(), self.settings.clone())
                .with_bodies(bodies.clone())
        };
        if self.all_at_start {
            let sweep = indexer(queue.clone());
            tokio::spawn(async move {
                match sweep.index_all_accounts(accounts.as_ref()).await {
                    Ok(n) => tracing::info!(accounts = n, "full-text index: every account indexed"),
                    Err(e) => {
                        tracing::warn!(error = %e, "full-text index: indexing every account stopped")
                    }
                }
            });
        }
        indexer(queue).spawn(self.nudge.clone(), nudges);
    }
}

/// A message's search text computed from its body, as delivery did (`yubin_mime::summarize`).
struct BodiesText(Arc<dyn BlobStore>);

#[async_trait::async_trait]
impl BodyText for BodiesText {
    async fn search_text(&self, blob: &BlobKey) -> MetaResult<SearchIndex> {
        let raw = self
            .0
            .get(blob)
            .await
            .map_err(|e| MetaError::Unavailable(format!("reading {}: {e}", blob.as_str())))?;
        tokio::task::spawn_blocking(move || yubin_mime::summarize(&raw).1)
            .await
            .map_err(|e| MetaError::Internal(format!("summarizing: {e}")))
    }
}
