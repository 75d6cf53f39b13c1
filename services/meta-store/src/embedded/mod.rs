//! The embedded backend: one redb database file, for `yubin dev` (a single process).
//!
//! Every [`MailStore`]/[`AccountStore`] call behaves as one redb transaction: each write is
//! atomic and durable when it returns (redb commits with fsync), and the database survives a
//! process restart. Reads run in their own read transactions; writes go to one writer thread
//! that lets concurrent calls share a transaction and its fsync (group commit, [`GroupCommit`],
//! `writer`) without changing what each call does. Change hints go out on an in-process
//! broadcast channel after the commit.
//!
//! The code is split by what it does: `tables` (table definitions, row types, encoding, the
//! reads both transaction kinds share), `txn` (every table open in one write or read
//! transaction, and how the store runs one), `writer` (the group commit), then one file per area of the `MailStore` calls
//! (`mailboxes`, `messages`, `searching`, `changes`) and `accounts` (`AccountStore`,
//! `AddressBook`).
//!
//! Tables (keys are tuples so one user's rows are contiguous and one mailbox's messages are
//! ordered by UID):
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | `"next_user_id"` | last user id handed out |
//! | `users` | user | account record (JSON) |
//! | `user_names` | lower-cased login | user |
//! | `user_seq` | user | mailbox id and UIDVALIDITY counters (JSON) |
//! | `mailboxes` | (user, mailbox) | mailbox state (JSON) |
//! | `mailbox_names` | (user, name) | mailbox |
//! | `subscriptions` | (user, name) | – |
//! | `messages` | (user, mailbox, uid) | flags, modseq, date, size, blob (JSON) |
//! | `summaries` | (user, mailbox, uid) | summary bytes |
//! | `search_index` | (user, mailbox, uid) | the full-text index's queue: search text (JSON) or copy reference of a message not yet indexed (see `crate::fulltext`) |
//! | `by_modseq` | (user, mailbox, modseq, uid) | – (CONDSTORE/QRESYNC catch-up) |
//! | `expunged` | (user, mailbox, modseq, uid) | – (QRESYNC VANISHED, RFC 7162 §3.2.10) |
//! | `unseen` / `deleted` | (user, mailbox, uid) | – (first unseen, EXPUNGE candidates) |
//! | `index_generation` | user | the committed full-text index generation |
//! | `index_removals` | (user, sequence) | what the index must forget: `<m> <uid>` or `<m> *` |
//! | `index_lease` | user | the indexer working on the account: `<token> <expiry ms>` |
//! | `quotas` | user | limits and exact usage (JSON `QuotaUsage`) |
//! | `aliases` | lower-cased address | target user |
//! | `user_aliases` | (user, address) | – (the aliases to drop with the account) |
//! | `domains` | lower-cased domain | the domain it is an alias of, or `""` |
//! | `metadata` | (user, mailbox or 0 for the server, entry) | METADATA value (RFC 5464) |
//! | `metadata_bytes` | user | bytes of the account's `metadata` rows (entry names and values), against `max_metadata_bytes_per_account` |

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::Database;
use tokio::sync::broadcast;
use yubin_meta_api::{
    AppendResult, ChangeEvent, ChangeStream, Changes, CopyResult, FlagOp, IndexProjection,
    IndexedMessage, MailStore, MailboxId, MailboxInfo, MailboxSnapshot, MessageRecord, MetaError,
    MetaResult, MetadataDepth, MetadataEntry, ModSeq, NewMessage, QuotaLimits, QuotaUsage,
    SearchKey, SpecialUse, StoreResult, Uid, UidRange, UidSet, UserId,
};

use crate::StoreLimits;

mod accounts;
mod changes;
mod fulltext;
mod mailboxes;
mod messages;
mod searching;
mod tables;
#[cfg(test)]
mod tests;
mod txn;
mod writer;

pub(crate) use accounts::normalize_login;
pub(crate) use changes::resync_hint;
use tables::db_err;
use txn::W;
pub use writer::GroupCommit;
use writer::Writer;

/// Capacity of the in-process hint channel; a watcher that falls this far behind gets one
/// synthetic "resync" hint instead of the lost ones.
const EVENT_CAPACITY: usize = 4096;

/// Drops the trigram filters of a release that kept the search index in the database: the
/// messages' texts are all still queued, so the full-text index is built from them.
fn drop_legacy_search_filters(txn: &redb::WriteTransaction) -> MetaResult<()> {
    txn.delete_table(tables::LEGACY_SEARCH_BLOOM)
        .map_err(db_err)?;
    let mut meta = txn.open_table(tables::META).map_err(db_err)?;
    meta.remove(tables::LEGACY_SEARCH_BLOOM_READY)
        .map_err(db_err)?;
    Ok(())
}

/// The redb-backed store. Cheap to clone; clones share the database and the hint channel.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    events: broadcast::Sender<ChangeEvent>,
    limits: StoreLimits,
    /// The one thread that applies writes, grouped into shared transactions.
    writer: Arc<Writer>,
    /// The full-text index SEARCH answers text keys from, and its indexer's wake-up (see
    /// `crate::fulltext`); without it every message stays queued and is searched from its
    /// queued text.
    full_text: Option<crate::fulltext::FullText>,
}

impl EmbeddedStore {
    /// Opens (or creates) the database file at `path`. The file may be opened by one process at
    /// a time; a second open fails with `Unavailable`.
    pub async fn open(path: impl AsRef<Path>) -> MetaResult<EmbeddedStore> {
        let path = path.as_ref().to_path_buf();
        let db = tokio::task::spawn_blocking(move || -> MetaResult<Database> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    MetaError::Unavailable(format!("creating {}: {e}", dir.display()))
                })?;
            }
            let db = Database::create(&path).map_err(db_err)?;
            // Create every table up front so read transactions never meet a missing one.
            let txn = db.begin_write().map_err(db_err)?;
            drop_legacy_search_filters(&txn)?;
            W::open(&txn)?;
            txn.commit().map_err(db_err)?;
            Ok(db)
        })
        .await
        .map_err(|e| MetaError::Internal(format!("embedded store task: {e}")))??;
        let db = Arc::new(db);
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let writer = Arc::new(Writer::start(db.clone(), events.clone())?);
        Ok(EmbeddedStore {
            db,
            events,
            limits: StoreLimits::default(),
            writer,
            full_text: None,
        })
    }

    /// The same store enforcing `limits` instead of the defaults.
    pub fn with_limits(mut self, limits: StoreLimits) -> EmbeddedStore {
        self.limits = limits;
        self
    }

    /// The same store grouping concurrent writes into shared transactions within `settings`
    /// ([`GroupCommit::OFF`]: one transaction per write). Clones share the writer, so this
    /// applies to all of them, from the next transaction on.
    pub fn with_group_commit(self, settings: GroupCommit) -> EmbeddedStore {
        self.writer.configure(settings);
        self
    }
}

#[async_trait]
impl MailStore for EmbeddedStore {
    async fn list_mailboxes(&self, user: UserId) -> MetaResult<Vec<MailboxInfo>> {
        mailboxes::list_mailboxes(self, user).await
    }

    async fn list_subscriptions(&self, user: UserId) -> MetaResult<Vec<String>> {
        mailboxes::list_subscriptions(self, user).await
    }

    async fn set_subscribed(&self, user: UserId, name: &str, subscribed: bool) -> MetaResult<()> {
        mailboxes::set_subscribed(self, user, name, subscribed).await
    }

    async fn create_mailbox(
        &self,
        user: UserId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> MetaResult<MailboxInfo> {
        mailboxes::create_mailbox(self, user, name, special_use).await
    }

    async fn delete_mailbox(&self, user: UserId, name: &str) -> MetaResult<()> {
        mailboxes::delete_mailbox(self, user, name).await?;
        self.nudge_indexer(user);
        Ok(())
    }

    async fn rename_mailbox(&self, user: UserId, from: &str, to: &str) -> MetaResult<()> {
        mailboxes::rename_mailbox(self, user, from, to).await
    }

    async fn mailbox_status(&self, user: UserId, name: &str) -> MetaResult<MailboxInfo> {
        mailboxes::mailbox_status(self, user, name).await
    }

    async fn select(&self, user: UserId, name: &str) -> MetaResult<MailboxSnapshot> {
        changes::select(self, user, name).await
    }

    async fn append(
        &self,
        user: UserId,
        mailbox: &str,
        messages: Vec<NewMessage>,
    ) -> MetaResult<AppendResult> {
        let appended = messages::append(self, user, mailbox, messages).await?;
        self.nudge_indexer(user);
        Ok(appended)
    }

    async fn fetch(
        &self,
        user: UserId,
        mailbox: MailboxId,
        uids: &UidSet,
        with_summary: bool,
    ) -> MetaResult<Vec<MessageRecord>> {
        messages::fetch(self, user, mailbox, uids, with_summary).await
    }

    async fn store_flags(
        &self,
        user: UserId,
        mailbox: MailboxId,
        uids: &UidSet,
        op: FlagOp,
        flags: &[String],
        unchanged_since: Option<ModSeq>,
    ) -> MetaResult<StoreResult> {
        messages::store_flags(self, user, mailbox, uids, op, flags, unchanged_since).await
    }

    async fn copy_messages(
        &self,
        user: UserId,
        source: MailboxId,
        uids: &UidSet,
        destination: &str,
        remove_source: bool,
    ) -> MetaResult<CopyResult> {
        let copied =
            messages::copy_messages(self, user, source, uids, destination, remove_source).await?;
        self.nudge_indexer(user);
        Ok(copied)
    }

    async fn expunge(
        &self,
        user: UserId,
        mailbox: MailboxId,
        uids: Option<&UidSet>,
    ) -> MetaResult<Vec<Uid>> {
        let expunged = messages::expunge(self, user, mailbox, uids).await?;
        if !expunged.is_empty() {
            self.nudge_indexer(user);
        }
        Ok(expunged)
    }

    async fn search(
        &self,
        user: UserId,
        mailbox: MailboxId,
        key: &SearchKey,
    ) -> MetaResult<Vec<Uid>> {
        searching::search(self, user, mailbox, key).await
    }

    async fn search_indexed(
        &self,
        user: UserId,
        mailbox: MailboxId,
        key: &SearchKey,
        projection: &IndexProjection,
    ) -> MetaResult<Vec<IndexedMessage>> {
        searching::search_indexed(self, user, mailbox, key, projection).await
    }

    async fn changes_since(
        &self,
        user: UserId,
        mailbox: MailboxId,
        since: ModSeq,
    ) -> MetaResult<Changes> {
        changes::changes_since(self, user, mailbox, since).await
    }

    async fn watch(&self, user: UserId) -> MetaResult<ChangeStream> {
        changes::watch(self, user).await
    }

    async fn set_account_quota(&self, user: UserId, limits: QuotaLimits) -> MetaResult<()> {
        mailboxes::set_account_quota(self, user, limits).await
    }

    async fn quota(&self, user: UserId) -> MetaResult<QuotaUsage> {
        mailboxes::quota(self, user).await
    }

    async fn get_metadata(
        &self,
        user: UserId,
        mailbox: Option<&str>,
        entries: &[String],
        depth: MetadataDepth,
    ) -> MetaResult<Vec<MetadataEntry>> {
        mailboxes::get_metadata(self, user, mailbox, entries, depth).await
    }

    async fn set_metadata(
        &self,
        user: UserId,
        mailbox: Option<&str>,
        entries: &[(String, Option<Vec<u8>>)],
        max_entries: u32,
    ) -> MetaResult<()> {
        mailboxes::set_metadata(self, user, mailbox, entries, max_entries).await
    }

    async fn claim_recent(
        &self,
        user: UserId,
        mailbox: MailboxId,
        up_to: Uid,
    ) -> MetaResult<UidRange> {
        messages::claim_recent(self, user, mailbox, up_to).await
    }
}
