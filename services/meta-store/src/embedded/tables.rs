//! The tables, their row types and encoding, and the reads both transaction kinds share.

use bytes::Bytes;
use redb::{ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use yubin_meta_api::{
    BlobKey, InternalDate, MailboxId, MailboxInfo, MessageRecord, MetaError, MetaResult, ModSeq,
    QuotaUsage, SpecialUse, Uid, UidSet, UidValidity, is_system_flag,
};

use crate::{StoreLimits, flags};

pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const USERS: TableDefinition<u64, &[u8]> = TableDefinition::new("users");
pub(super) const USER_NAMES: TableDefinition<&str, u64> = TableDefinition::new("user_names");
pub(super) const USER_SEQ: TableDefinition<u64, &[u8]> = TableDefinition::new("user_seq");
pub(super) const MAILBOXES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("mailboxes");
pub(super) const MAILBOX_NAMES: TableDefinition<(u64, &str), u64> =
    TableDefinition::new("mailbox_names");
pub(super) const SUBSCRIPTIONS: TableDefinition<(u64, &str), u8> =
    TableDefinition::new("subscriptions");
pub(super) const MESSAGES: TableDefinition<(u64, u64, u32), &[u8]> =
    TableDefinition::new("messages");
pub(super) const SUMMARIES: TableDefinition<(u64, u64, u32), &[u8]> =
    TableDefinition::new("summaries");
/// The full-text index's queue (see `crate::fulltext`): per message not yet in the index, its
/// search text (JSON) or a copy reference (`@<mailbox> <uid>`); rows leave once a committed
/// index generation holds them.
pub(super) const SEARCH_INDEX: TableDefinition<(u64, u64, u32), &[u8]> =
    TableDefinition::new("search_index");
/// Per user, the committed full-text index generation.
pub(super) const INDEX_GENERATION: TableDefinition<u64, u64> =
    TableDefinition::new("index_generation");
/// Per user and sequence number, what the index must forget: `<m> <uid>` or `<m> *`.
pub(super) const INDEX_REMOVALS: TableDefinition<(u64, u64), &str> =
    TableDefinition::new("index_removals");
/// Per user and source (`<m> <uid>`, and `<m> *` per mailbox), the queued copy references to
/// it: a removal waits until none is left (the copies are indexed from the source first).
pub(super) const INDEX_REFS: TableDefinition<(u64, &str), u64> = TableDefinition::new("index_refs");
/// Per user, the indexer holding the account's queue: `<token> <expiry, unix ms>`.
pub(super) const INDEX_LEASE: TableDefinition<u64, &str> = TableDefinition::new("index_lease");
pub(super) const BY_MODSEQ: TableDefinition<(u64, u64, u64, u32), u8> =
    TableDefinition::new("by_modseq");
pub(super) const EXPUNGED: TableDefinition<(u64, u64, u64, u32), u8> =
    TableDefinition::new("expunged");
pub(super) const UNSEEN: TableDefinition<(u64, u64, u32), u8> = TableDefinition::new("unseen");
pub(super) const DELETED: TableDefinition<(u64, u64, u32), u8> = TableDefinition::new("deleted");
/// The per-message trigram Bloom filters of releases that kept the search index in this
/// database; dropped when a database is opened (every message's text is still queued, so the
/// full-text index is built from it).
pub(super) const LEGACY_SEARCH_BLOOM: TableDefinition<(u64, u64, u32), &[u8]> =
    TableDefinition::new("search_bloom");
/// The `META` marker of those filters, removed with them.
pub(super) const LEGACY_SEARCH_BLOOM_READY: &str = "search_bloom_ready";
pub(super) const QUOTAS: TableDefinition<u64, &[u8]> = TableDefinition::new("quotas");
pub(super) const ALIASES: TableDefinition<&str, u64> = TableDefinition::new("aliases");
pub(super) const USER_ALIASES: TableDefinition<(u64, &str), u8> =
    TableDefinition::new("user_aliases");
pub(super) const DOMAINS: TableDefinition<&str, &str> = TableDefinition::new("domains");
/// METADATA entries (RFC 5464) by mailbox id, so they follow RENAME and a re-created mailbox
/// (a new id: ids are never reused) starts empty. Mailbox 0 holds the server entries.
/// Tombstones of deleted accounts (ids are never reused): every write for such an id is refused,
/// so a session or a delivery that resolved the id before the deletion cannot recreate data.
pub(super) const DELETED_USERS: TableDefinition<u64, u8> = TableDefinition::new("deleted_users");
pub(super) const METADATA: TableDefinition<(u64, u64, &str), &[u8]> =
    TableDefinition::new("metadata");
/// Per account, the bytes (entry names and values) of its `metadata` rows, so that a SETMETADATA
/// checks the account's budget without reading every mailbox's entries.
pub(super) const METADATA_BYTES: TableDefinition<u64, u64> = TableDefinition::new("metadata_bytes");

pub(super) fn db_err(e: impl Into<redb::Error>) -> MetaError {
    match e.into() {
        e @ (redb::Error::Io(_) | redb::Error::DatabaseAlreadyOpen) => {
            MetaError::Unavailable(format!("embedded store: {e}"))
        }
        e => MetaError::Internal(format!("embedded store: {e}")),
    }
}

pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> MetaResult<T> {
    serde_json::from_slice(bytes).map_err(|e| MetaError::Internal(format!("corrupt record: {e}")))
}

pub(super) fn encode<T: Serialize>(value: &T) -> MetaResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| MetaError::Internal(format!("encoding record: {e}")))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct UserRow {
    pub(super) name: String,
    pub(super) password_hash: String,
    pub(super) disabled: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct UserSeq {
    pub(super) last_mailbox: u64,
    pub(super) last_uid_validity: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct MboxRow {
    pub(super) name: String,
    pub(super) uid_validity: u32,
    pub(super) uid_next: u32,
    pub(super) highest_modseq: u64,
    pub(super) exists: u32,
    pub(super) unseen: u32,
    pub(super) deleted: u32,
    pub(super) size: u64,
    pub(super) special_use: Option<SpecialUse>,
    /// Keywords ever used in the mailbox (the FLAGS response may list unused ones).
    pub(super) keywords: Vec<String>,
    /// The first UID not yet claimed as `\Recent` by a session (`MailStore::claim_recent`).
    #[serde(default = "first_uid")]
    pub(super) recent_from: u32,
    /// Entries of this mailbox in the expunge log (counted from when the count was added).
    #[serde(default)]
    pub(super) expunge_log: u64,
    /// The highest MODSEQ dropped from the expunge log (`StoreLimits::max_expunge_log`): a
    /// `changes_since` from below it may miss UIDs.
    #[serde(default)]
    pub(super) vanished_floor: u64,
}

pub(super) fn first_uid() -> u32 {
    1
}

impl MboxRow {
    /// The mailbox's status; `recent` is the count of existing messages at or above
    /// `recent_from` ([`count_unclaimed`]).
    pub(super) fn info(&self, id: u64, recent: u32) -> MailboxInfo {
        MailboxInfo {
            id: MailboxId(id),
            name: self.name.clone(),
            uid_validity: UidValidity(self.uid_validity),
            uid_next: Uid(self.uid_next),
            highest_modseq: ModSeq(self.highest_modseq),
            exists: self.exists,
            unseen: self.unseen,
            deleted: self.deleted,
            size: self.size,
            special_use: self.special_use,
            recent,
        }
    }

    /// The MODSEQ for the write in progress: one per operation, above every earlier one
    /// (RFC 7162 §3.1.1). A mailbox's MODSEQ starts at 1 so that 0 can mean "nothing yet".
    pub(super) fn bump_modseq(&mut self) -> u64 {
        self.highest_modseq += 1;
        self.highest_modseq
    }

    pub(super) fn take_uid(&mut self) -> MetaResult<u32> {
        let uid = self.uid_next;
        self.uid_next = uid
            .checked_add(1)
            .ok_or_else(|| MetaError::Invalid(format!("mailbox {} has no UIDs left", self.name)))?;
        Ok(uid)
    }

    pub(super) fn note_keywords(&mut self, flags: &[String]) {
        if flags.iter().all(|f| is_system_flag(f)) {
            return;
        }
        let mut known = flags::lower_set(&self.keywords);
        for f in flags {
            if !is_system_flag(f) && known.insert(f.to_ascii_lowercase()) {
                self.keywords.push(f.clone());
            }
        }
    }

    /// Refuses (before anything is written) when the keywords of `flag_lists` would take the
    /// mailbox past its distinct-keyword limit; only growth is refused, so a mailbox above a
    /// lowered limit keeps working with the keywords it knows.
    pub(super) fn check_keyword_room<'a>(
        &self,
        limits: &StoreLimits,
        flag_lists: impl IntoIterator<Item = &'a [String]>,
    ) -> MetaResult<()> {
        let known = flags::lower_set(&self.keywords);
        let mut new = std::collections::HashSet::new();
        for list in flag_lists {
            for f in list.iter().filter(|f| !is_system_flag(f)) {
                let lower = f.to_ascii_lowercase();
                if !known.contains(&lower) {
                    new.insert(lower);
                }
            }
        }
        if !new.is_empty()
            && self.keywords.len() + new.len() > limits.max_keywords_per_mailbox as usize
        {
            return Err(limits.too_many_per_mailbox());
        }
        Ok(())
    }

    /// Adds (`sign` = 1) or removes (`sign` = -1) a message's share of the counts.
    pub(super) fn count(&mut self, msg: &MsgRow, add: bool) {
        let seen = flags::contains(&msg.flags, "\\Seen");
        let deleted = flags::contains(&msg.flags, "\\Deleted");
        if add {
            self.exists += 1;
            self.size += msg.size;
            self.unseen += u32::from(!seen);
            self.deleted += u32::from(deleted);
        } else {
            self.exists = self.exists.saturating_sub(1);
            self.size = self.size.saturating_sub(msg.size);
            self.unseen = self.unseen.saturating_sub(u32::from(!seen));
            self.deleted = self.deleted.saturating_sub(u32::from(deleted));
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct MsgRow {
    pub(super) modseq: u64,
    pub(super) flags: Vec<String>,
    pub(super) date: InternalDate,
    pub(super) size: u64,
    pub(super) blob: BlobKey,
}

impl MsgRow {
    pub(super) fn record(&self, uid: u32, summary: Option<Bytes>) -> MessageRecord {
        MessageRecord {
            uid: Uid(uid),
            modseq: ModSeq(self.modseq),
            flags: self.flags.clone(),
            internal_date: self.date,
            size: self.size,
            blob: self.blob.clone(),
            summary,
        }
    }
}

pub(super) type BytesTable = &'static [u8];

pub(super) fn read_mbox(
    t: &impl ReadableTable<(u64, u64), BytesTable>,
    u: u64,
    m: u64,
) -> MetaResult<Option<MboxRow>> {
    match t.get((u, m)).map_err(db_err)? {
        Some(g) => decode(g.value()).map(Some),
        None => Ok(None),
    }
}

pub(super) fn read_mbox_id(
    t: &impl ReadableTable<(u64, &'static str), u64>,
    u: u64,
    name: &str,
) -> MetaResult<Option<u64>> {
    Ok(t.get((u, name)).map_err(db_err)?.map(|g| g.value()))
}

pub(super) fn read_msg(
    t: &impl ReadableTable<(u64, u64, u32), BytesTable>,
    u: u64,
    m: u64,
    uid: u32,
) -> MetaResult<Option<MsgRow>> {
    match t.get((u, m, uid)).map_err(db_err)? {
        Some(g) => decode(g.value()).map(Some),
        None => Ok(None),
    }
}

/// Messages of the mailbox with a UID of at least `from` (the `\Recent` mark): those no
/// session has claimed. Walks only that tail of the mailbox.
pub(super) fn count_unclaimed(
    t: &impl ReadableTable<(u64, u64, u32), BytesTable>,
    u: u64,
    m: u64,
    from: u32,
) -> MetaResult<u32> {
    let mut n: u32 = 0;
    for item in t.range((u, m, from)..=(u, m, u32::MAX)).map_err(db_err)? {
        item.map_err(db_err)?;
        n = n.saturating_add(1);
    }
    Ok(n)
}

pub(super) fn read_bytes(
    t: &impl ReadableTable<(u64, u64, u32), BytesTable>,
    u: u64,
    m: u64,
    uid: u32,
) -> MetaResult<Option<Vec<u8>>> {
    Ok(t.get((u, m, uid))
        .map_err(db_err)?
        .map(|g| g.value().to_vec()))
}

/// The existing messages of `set`, ascending by UID. Walks the set's ranges in the table, never
/// the set's members, so `1:4294967295` costs what the mailbox holds.
pub(super) fn read_msgs_in(
    t: &impl ReadableTable<(u64, u64, u32), BytesTable>,
    u: u64,
    m: u64,
    set: Option<&UidSet>,
) -> MetaResult<Vec<(u32, MsgRow)>> {
    let all = [(0, u32::MAX)];
    let ranges = set.map_or(&all[..], |s| s.ranges());
    let mut out = Vec::new();
    for &(lo, hi) in ranges {
        for item in t.range((u, m, lo)..=(u, m, hi)).map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            out.push((k.value().2, decode(v.value())?));
        }
    }
    Ok(out)
}

/// The account's usage: the stored counters, or for an account made before quotas were kept,
/// the sum of its mailboxes' counts (which are exact).
pub(super) fn read_usage(
    quotas: &impl ReadableTable<u64, BytesTable>,
    mailboxes: &impl ReadableTable<(u64, u64), BytesTable>,
    u: u64,
) -> MetaResult<QuotaUsage> {
    if let Some(g) = quotas.get(u).map_err(db_err)? {
        return decode(g.value());
    }
    let mut usage = QuotaUsage::default();
    for item in mailboxes.range((u, 0)..=(u, u64::MAX)).map_err(db_err)? {
        let (_, v) = item.map_err(db_err)?;
        let row: MboxRow = decode(v.value())?;
        usage.storage_bytes += row.size;
        usage.messages += u64::from(row.exists);
    }
    Ok(usage)
}

pub(super) fn read_uid_keys(
    t: &impl ReadableTable<(u64, u64, u32), u8>,
    u: u64,
    m: u64,
) -> MetaResult<Vec<u32>> {
    let mut out = Vec::new();
    for item in t.range((u, m, 0)..=(u, m, u32::MAX)).map_err(db_err)? {
        out.push(item.map_err(db_err)?.0.value().2);
    }
    Ok(out)
}

/// UIDs logged in a (user, mailbox, modseq, uid) table with modseq above `since`.
pub(super) fn read_modseq_log(
    t: &impl ReadableTable<(u64, u64, u64, u32), u8>,
    u: u64,
    m: u64,
    since: u64,
) -> MetaResult<Vec<u32>> {
    let mut out = Vec::new();
    if since == u64::MAX {
        return Ok(out);
    }
    for item in t
        .range((u, m, since + 1, 0)..=(u, m, u64::MAX, u32::MAX))
        .map_err(db_err)?
    {
        out.push(item.map_err(db_err)?.0.value().3);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}
