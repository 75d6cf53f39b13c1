//! One user's index on local disk: opening it, applying a write batch as one tantivy commit,
//! and keeping only the files the current commit references. Everything here blocks; callers
//! run it on `spawn_blocking`.
//!
//! The generation a local copy holds travels inside tantivy's own commit, as the commit payload
//! ([`CommitState`]), so the index content and its generation can never disagree after a crash.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tantivy::directory::MmapDirectory;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, Term};
use yubin_meta_api::{MailboxId, SearchIndex, Uid};

use crate::doc::{Fields, Part, documents, register_tokenizers};
use crate::query::load;
use crate::{TextIndexError, WriteBatch};

/// What a commit is: the generation it makes, the digest of the write that made it (to tell a
/// retry of the same write from someone else's), and the copies whose source was missing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommitState {
    pub generation: u64,
    pub digest: String,
    pub unresolved: Vec<(MailboxId, Uid)>,
}

/// The file tantivy keeps its commit in.
pub(crate) const META_FILE: &str = "meta.json";
/// Prefix of files being downloaded; never a tantivy file name.
pub(crate) const PARTIAL_PREFIX: &str = ".part-";

pub(crate) struct LocalIndex {
    pub dir: PathBuf,
    pub index: Index,
    pub reader: IndexReader,
    pub fields: Fields,
    pub state: CommitState,
}

impl LocalIndex {
    /// Opens the index in `dir`, creating an empty one (generation 0) if there is none.
    pub fn open(dir: &Path) -> Result<LocalIndex, TextIndexError> {
        LocalIndex::open_or_create_with(dir, || Fields::schema().0)
    }

    /// [`LocalIndex::open`], creating a missing index with `schema()`.
    fn open_or_create_with(
        dir: &Path,
        schema: impl FnOnce() -> tantivy::schema::Schema,
    ) -> Result<LocalIndex, TextIndexError> {
        fs::create_dir_all(dir).map_err(io_error)?;
        let directory =
            MmapDirectory::open(dir).map_err(|e| TextIndexError::Other(e.to_string()))?;
        let index = if dir.join(META_FILE).exists() {
            Index::open(directory)?
        } else {
            Index::create(directory, schema(), Default::default())?
        };
        register_tokenizers(&index);
        let fields = Fields::from_schema(&index.schema())?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let state = commit_state(&index)?;
        Ok(LocalIndex {
            dir: dir.to_path_buf(),
            index,
            reader,
            fields,
            state,
        })
    }

    pub fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }

    /// The files the current commit references, relative to the directory (without
    /// `meta.json`), that exist.
    pub fn live_files(&self) -> Result<Vec<String>, TextIndexError> {
        let meta = self.index.load_metas()?;
        let mut out: Vec<String> = meta
            .list_segment_files()
            .into_iter()
            .filter_map(|p| p.to_str().map(str::to_string))
            .filter(|name| self.dir.join(name).exists())
            .collect();
        out.sort();
        Ok(out)
    }

    /// Removes files the current commit does not reference (leftovers of merges, of downloads,
    /// of another generation), keeping tantivy's own bookkeeping and lock files.
    pub fn remove_dead_files(&self) -> Result<(), TextIndexError> {
        let live: HashSet<String> = self.live_files()?.into_iter().collect();
        for entry in fs::read_dir(&self.dir).map_err(io_error)? {
            let entry = entry.map_err(io_error)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let keep = live.contains(&name)
                || name == META_FILE
                || (name.starts_with('.') && !name.starts_with(PARTIAL_PREFIX));
            if !keep {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// Applies `batch` as one commit of generation `generation`. Copies are resolved first
    /// (against the adds of the same batch, then the current index), because the batch may also
    /// remove their sources (MOVE).
    pub fn apply(
        &mut self,
        batch: &WriteBatch,
        generation: u64,
        digest: String,
        writer_memory_bytes: usize,
    ) -> Result<(), TextIndexError> {
        let f = self.fields;
        let searcher = self.reader.searcher();
        let added: BTreeMap<(MailboxId, Uid), &SearchIndex> =
            batch.add.iter().map(|(m, u, ix)| ((*m, *u), ix)).collect();
        let mut copies: Vec<(MailboxId, Uid, SearchIndex)> = Vec::new();
        let mut unresolved = Vec::new();
        for &((sm, su), (dm, du)) in &batch.add_copies {
            if let Some(ix) = added.get(&(sm, su)) {
                copies.push((dm, du, (*ix).clone()));
            } else if let Some((_, ix)) = load(&searcher, &f, sm, &[su], None)?.pop() {
                copies.push((dm, du, ix));
            } else {
                unresolved.push((dm, du));
            }
        }

        let mut writer: IndexWriter = self.index.writer_with_num_threads(1, writer_memory_bytes)?;
        let result = (|| -> Result<(), TextIndexError> {
            for m in &batch.remove_mailboxes {
                writer.delete_term(Term::from_field_u64(f.mbox, m.0));
            }
            let replaced = batch
                .remove
                .iter()
                .copied()
                .chain(batch.add.iter().map(|(m, u, _)| (*m, *u)))
                .chain(copies.iter().map(|(m, u, _)| (*m, *u)));
            for (m, u) in replaced {
                writer.delete_term(f.key_term(m, u, Part::Head));
                writer.delete_term(f.key_term(m, u, Part::Body));
            }
            // A key added twice in one batch: the last one wins, as two batches would.
            let mut docs: BTreeMap<(MailboxId, Uid), &SearchIndex> = BTreeMap::new();
            for (m, u, ix) in batch.add.iter().chain(copies.iter()) {
                docs.insert((*m, *u), ix);
            }
            let mut bodies = Vec::with_capacity(docs.len());
            for ((m, u), ix) in docs {
                let (head, body) = documents(&f, m, u, ix);
                writer.add_document(head)?;
                bodies.push(body);
            }
            for body in bodies {
                writer.add_document(body)?;
            }
            let state = CommitState {
                generation,
                digest,
                unresolved,
            };
            let payload =
                serde_json::to_string(&state).map_err(|e| TextIndexError::Other(e.to_string()))?;
            let mut prepared = writer.prepare_commit()?;
            prepared.set_payload(&payload);
            prepared.commit()?;
            Ok(())
        })();
        if result.is_err() {
            let _ = writer.rollback();
        }
        // Merges started by the commit finish here, so the published file set is final.
        writer.wait_merging_threads()?;
        result?;
        self.reader.reload()?;
        self.state = commit_state(&self.index)?;
        self.remove_dead_files()?;
        Ok(())
    }
}

/// The commit state recorded in the index's last commit; generation 0 for a new index.
pub(crate) fn commit_state(index: &Index) -> Result<CommitState, TextIndexError> {
    match index.load_metas()?.payload {
        None => Ok(CommitState::default()),
        Some(p) => serde_json::from_str(&p)
            .map_err(|e| TextIndexError::Corrupt(format!("commit payload: {e}"))),
    }
}

pub(crate) fn io_error(e: std::io::Error) -> TextIndexError {
    TextIndexError::Other(format!("local text index: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::leaf_hits;
    use yubin_meta_api::SearchKey;

    fn message(n: u32) -> SearchIndex {
        let long_name = format!("X-{}", "Long".repeat(20));
        SearchIndex {
            headers: vec![
                ("Subject".into(), format!("Grüße aus Köln, Nummer {n}")),
                ("From".into(), "ΟΔΟΣ <odos@example.com>".into()),
                ("X-Empty".into(), String::new()),
                (long_name, format!("İstanbul {n} 日本語")),
            ],
            sent_date: None,
            body_text: format!("Hello wörld, message {n}: STRASSE straße 😀 ab"),
        }
    }

    /// An index made before the gram tokenizer existed (its schema names `raw`) takes its terms
    /// pre-tokenized and answers every needle as an index made now does.
    #[test]
    fn an_index_from_before_the_tokenizer_answers_as_a_new_one() {
        let (old_dir, new_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut old = LocalIndex::open_or_create_with(old_dir.path(), || {
            Fields::schema_tokenized_by("raw", "raw").0
        })
        .unwrap();
        let mut new = LocalIndex::open(new_dir.path()).unwrap();
        assert!(!old.fields.tokenized_by_index && new.fields.tokenized_by_index);
        let m = MailboxId(1);
        let batch = WriteBatch {
            add: (1..=3).map(|n| (m, Uid(n), message(n))).collect(),
            ..WriteBatch::default()
        };
        old.apply(&batch, 1, "a".into(), 15_000_000).unwrap();
        new.apply(&batch, 1, "a".into(), 15_000_000).unwrap();
        // Reopened, the old index keeps its schema and its way of taking terms.
        drop(old);
        let old = LocalIndex::open(old_dir.path()).unwrap();
        assert!(!old.fields.tokenized_by_index);

        let long_name = message(1).headers[3].0.clone();
        let mut keys = Vec::new();
        for needle in [
            "grüße",
            "GRÜSSE",
            "köln, n",
            "mer 2",
            "ο",
            "οδος",
            "odos@",
            "i̇stanbul",
            "本語",
            "hello w",
            "straße",
            "strasse",
            "😀 ab",
            "ab",
            "b",
            "e 3",
            "",
        ] {
            keys.push(SearchKey::Header("Subject".into(), needle.into()));
            keys.push(SearchKey::Header("from".into(), needle.into()));
            keys.push(SearchKey::Header(long_name.clone(), needle.into()));
            keys.push(SearchKey::Header("X-Empty".into(), needle.into()));
            keys.push(SearchKey::Text(needle.into()));
            keys.push(SearchKey::Body(needle.into()));
        }
        keys.push(SearchKey::Text("subject: grüße".into()));
        keys.push(SearchKey::Text("x-empty:".into()));
        let mut some_hit = 0;
        for key in &keys {
            let a = leaf_hits(&old.searcher(), &old.fields, m, key).unwrap();
            let b = leaf_hits(&new.searcher(), &new.fields, m, key).unwrap();
            assert_eq!(a, b, "{key:?}");
            some_hit += usize::from(!b.is_empty());
        }
        // Not vacuous: a good share of the keys match something.
        assert!(
            some_hit >= keys.len() / 3,
            "{some_hit} of {} keys hit",
            keys.len()
        );
    }
}
