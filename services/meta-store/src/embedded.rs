//! The embedded backend: one redb database file, for `yubin dev` (a single process).
//!
//! Every [`MailStore`]/[`AccountStore`] call is exactly one redb transaction, so each write is
//! atomic and durable when it returns (redb commits with fsync), and the database survives a
//! process restart. Change hints go out on an in-process broadcast channel after the commit.
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
//! | `summaries` / `search_index` | (user, mailbox, uid) | summary bytes / index (JSON) |
//! | `by_modseq` | (user, mailbox, modseq, uid) | – (CONDSTORE/QRESYNC catch-up) |
//! | `expunged` | (user, mailbox, modseq, uid) | – (QRESYNC VANISHED, RFC 7162 §3.2.10) |
//! | `unseen` / `deleted` | (user, mailbox, uid) | – (first unseen, EXPUNGE candidates) |
//! | `search_bloom` | (user, mailbox, uid) | Bloom filter of the message's search trigrams ([`search::posted_bloom`]; empty for a message with too many, which every text search then verifies) |
//! | `quotas` | user | limits and exact usage (JSON `QuotaUsage`) |
//! | `aliases` | lower-cased address | target user |
//! | `user_aliases` | (user, address) | – (the aliases to drop with the account) |
//! | `domains` | lower-cased domain | the domain it is an alias of, or `""` |
//! | `metadata` | (user, mailbox or 0 for the server, entry) | METADATA value (RFC 5464) |
//! | `metadata_bytes` | user | bytes of the account's `metadata` rows (entry names and values), against `max_metadata_bytes_per_account` |

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableTable, Table, TableDefinition,
    WriteTransaction,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use yubin_meta_api::{
    AccountStore, Alias, AppendResult, BlobKey, ChangeEvent, ChangeKind, ChangeStream, Changes,
    CopyResult, Domain, FlagOp, IndexProjection, IndexedMessage, InternalDate, MailStore,
    MailboxId, MailboxInfo, MailboxSnapshot, MessageRecord, MetaError, MetaResult, MetadataDepth,
    MetadataEntry, ModSeq, NewMessage, QuotaLimits, QuotaUsage, SearchIndex, SearchKey,
    SnapshotFlagsBuilder, SpecialUse, StoreResult, Uid, UidRange, UidSet, UidValidity, UserId,
    UserRecord, is_system_flag,
};

use crate::accounts::{
    self, AddressBook, check_domain, check_quota, normalize_address, normalize_domain,
};
use crate::names::{self, INBOX};
use crate::search::{self, Candidate, Gram, Posting};
use crate::{StoreLimits, flags, metadata, next_uid_validity};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const USERS: TableDefinition<u64, &[u8]> = TableDefinition::new("users");
const USER_NAMES: TableDefinition<&str, u64> = TableDefinition::new("user_names");
const USER_SEQ: TableDefinition<u64, &[u8]> = TableDefinition::new("user_seq");
const MAILBOXES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("mailboxes");
const MAILBOX_NAMES: TableDefinition<(u64, &str), u64> = TableDefinition::new("mailbox_names");
const SUBSCRIPTIONS: TableDefinition<(u64, &str), u8> = TableDefinition::new("subscriptions");
const MESSAGES: TableDefinition<(u64, u64, u32), &[u8]> = TableDefinition::new("messages");
const SUMMARIES: TableDefinition<(u64, u64, u32), &[u8]> = TableDefinition::new("summaries");
const SEARCH_INDEX: TableDefinition<(u64, u64, u32), &[u8]> = TableDefinition::new("search_index");
const BY_MODSEQ: TableDefinition<(u64, u64, u64, u32), u8> = TableDefinition::new("by_modseq");
const EXPUNGED: TableDefinition<(u64, u64, u64, u32), u8> = TableDefinition::new("expunged");
const UNSEEN: TableDefinition<(u64, u64, u32), u8> = TableDefinition::new("unseen");
const DELETED: TableDefinition<(u64, u64, u32), u8> = TableDefinition::new("deleted");
/// Per message, a Bloom filter of the trigrams of its decoded headers and body text, so
/// SUBJECT/BODY/TEXT/HEADER search decodes and checks only the messages that can match. One
/// row per message, next to its other rows: per-trigram postings were measured to cost an
/// APPEND a B-tree leaf rewrite per trigram (redb copies every page a commit touches), about
/// 11 KiB of database per small message and several times the commit time.
const SEARCH_BLOOM: TableDefinition<(u64, u64, u32), &[u8]> = TableDefinition::new("search_bloom");
/// `META` key set once every stored message has its `search_bloom` row (a database made before
/// the filters existed gets them built when opened).
const SEARCH_BLOOM_READY: &str = "search_bloom_ready";
const QUOTAS: TableDefinition<u64, &[u8]> = TableDefinition::new("quotas");
const ALIASES: TableDefinition<&str, u64> = TableDefinition::new("aliases");
const USER_ALIASES: TableDefinition<(u64, &str), u8> = TableDefinition::new("user_aliases");
const DOMAINS: TableDefinition<&str, &str> = TableDefinition::new("domains");
/// METADATA entries (RFC 5464) by mailbox id, so they follow RENAME and a re-created mailbox
/// (a new id: ids are never reused) starts empty. Mailbox 0 holds the server entries.
/// Tombstones of deleted accounts (ids are never reused): every write for such an id is refused,
/// so a session or a delivery that resolved the id before the deletion cannot recreate data.
const DELETED_USERS: TableDefinition<u64, u8> = TableDefinition::new("deleted_users");
const METADATA: TableDefinition<(u64, u64, &str), &[u8]> = TableDefinition::new("metadata");
/// Per account, the bytes (entry names and values) of its `metadata` rows, so that a SETMETADATA
/// checks the account's budget without reading every mailbox's entries.
const METADATA_BYTES: TableDefinition<u64, u64> = TableDefinition::new("metadata_bytes");

/// Capacity of the in-process hint channel; a watcher that falls this far behind gets one
/// synthetic "resync" hint instead of the lost ones.
const EVENT_CAPACITY: usize = 4096;

/// The redb-backed store. Cheap to clone; clones share the database and the hint channel.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    events: broadcast::Sender<ChangeEvent>,
    limits: StoreLimits,
}

fn db_err(e: impl Into<redb::Error>) -> MetaError {
    match e.into() {
        e @ (redb::Error::Io(_) | redb::Error::DatabaseAlreadyOpen) => {
            MetaError::Unavailable(format!("embedded store: {e}"))
        }
        e => MetaError::Internal(format!("embedded store: {e}")),
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> MetaResult<T> {
    serde_json::from_slice(bytes).map_err(|e| MetaError::Internal(format!("corrupt record: {e}")))
}

fn encode<T: Serialize>(value: &T) -> MetaResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| MetaError::Internal(format!("encoding record: {e}")))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserRow {
    name: String,
    password_hash: String,
    disabled: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct UserSeq {
    last_mailbox: u64,
    last_uid_validity: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MboxRow {
    name: String,
    uid_validity: u32,
    uid_next: u32,
    highest_modseq: u64,
    exists: u32,
    unseen: u32,
    deleted: u32,
    size: u64,
    special_use: Option<SpecialUse>,
    /// Keywords ever used in the mailbox (the FLAGS response may list unused ones).
    keywords: Vec<String>,
    /// The first UID not yet claimed as `\Recent` by a session (`MailStore::claim_recent`).
    #[serde(default = "first_uid")]
    recent_from: u32,
    /// Entries of this mailbox in the expunge log (counted from when the count was added).
    #[serde(default)]
    expunge_log: u64,
    /// The highest MODSEQ dropped from the expunge log (`StoreLimits::max_expunge_log`): a
    /// `changes_since` from below it may miss UIDs.
    #[serde(default)]
    vanished_floor: u64,
}

fn first_uid() -> u32 {
    1
}

impl MboxRow {
    /// The mailbox's status; `recent` is the count of existing messages at or above
    /// `recent_from` ([`count_unclaimed`]).
    fn info(&self, id: u64, recent: u32) -> MailboxInfo {
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
    fn bump_modseq(&mut self) -> u64 {
        self.highest_modseq += 1;
        self.highest_modseq
    }

    fn take_uid(&mut self) -> MetaResult<u32> {
        let uid = self.uid_next;
        self.uid_next = uid
            .checked_add(1)
            .ok_or_else(|| MetaError::Invalid(format!("mailbox {} has no UIDs left", self.name)))?;
        Ok(uid)
    }

    fn note_keywords(&mut self, flags: &[String]) {
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
    fn check_keyword_room<'a>(
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
    fn count(&mut self, msg: &MsgRow, add: bool) {
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
struct MsgRow {
    modseq: u64,
    flags: Vec<String>,
    date: InternalDate,
    size: u64,
    blob: BlobKey,
}

impl MsgRow {
    fn record(&self, uid: u32, summary: Option<Bytes>) -> MessageRecord {
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

type BytesTable = &'static [u8];

fn read_mbox(
    t: &impl ReadableTable<(u64, u64), BytesTable>,
    u: u64,
    m: u64,
) -> MetaResult<Option<MboxRow>> {
    match t.get((u, m)).map_err(db_err)? {
        Some(g) => decode(g.value()).map(Some),
        None => Ok(None),
    }
}

fn read_mbox_id(
    t: &impl ReadableTable<(u64, &'static str), u64>,
    u: u64,
    name: &str,
) -> MetaResult<Option<u64>> {
    Ok(t.get((u, name)).map_err(db_err)?.map(|g| g.value()))
}

fn read_msg(
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
fn count_unclaimed(
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

fn read_bytes(
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
fn read_msgs_in(
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
fn read_usage(
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

/// The Bloom filter of a stored (JSON) search index ([`search::posted_bloom`]).
fn stored_bloom(index: &[u8]) -> MetaResult<Vec<u8>> {
    if index.is_empty() {
        return Ok(search::gram_bloom(&BTreeSet::new()));
    }
    Ok(search::posted_bloom(&decode::<SearchIndex>(index)?))
}

/// The UIDs of a mailbox whose filter may hold every trigram of `grams`, ascending (a
/// superset of the messages that hold them all: candidates to verify). A message without a
/// filter row is always a candidate.
fn read_bloom_matches(
    t: &impl ReadableTable<(u64, u64, u32), BytesTable>,
    u: u64,
    m: u64,
    grams: &BTreeSet<Gram>,
) -> MetaResult<Vec<u32>> {
    let mut out = Vec::new();
    for item in t.range((u, m, 0)..=(u, m, u32::MAX)).map_err(db_err)? {
        let (k, v) = item.map_err(db_err)?;
        if search::bloom_may_contain(v.value(), grams) {
            out.push(k.value().2);
        }
    }
    Ok(out)
}

/// Builds the trigram filter of every stored message once, for a database written before they
/// existed; later opens find the `META` marker and skip the walk.
fn build_search_blooms(w: &mut W<'_>) -> MetaResult<()> {
    if w.meta.get(SEARCH_BLOOM_READY).map_err(db_err)?.is_some() {
        return Ok(());
    }
    let mut rows = Vec::new();
    for item in w.search_index.iter().map_err(db_err)? {
        let (k, v) = item.map_err(db_err)?;
        rows.push((k.value(), stored_bloom(v.value())?));
    }
    for (key, bloom) in rows {
        w.search_bloom
            .insert(key, bloom.as_slice())
            .map_err(db_err)?;
    }
    w.meta.insert(SEARCH_BLOOM_READY, 1).map_err(db_err)?;
    Ok(())
}

fn read_uid_keys(
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
fn read_modseq_log(
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

/// Every table, open in one write transaction.
struct W<'t> {
    meta: Table<'t, &'static str, u64>,
    users: Table<'t, u64, BytesTable>,
    user_names: Table<'t, &'static str, u64>,
    user_seq: Table<'t, u64, BytesTable>,
    mailboxes: Table<'t, (u64, u64), BytesTable>,
    mailbox_names: Table<'t, (u64, &'static str), u64>,
    subscriptions: Table<'t, (u64, &'static str), u8>,
    messages: Table<'t, (u64, u64, u32), BytesTable>,
    summaries: Table<'t, (u64, u64, u32), BytesTable>,
    search_index: Table<'t, (u64, u64, u32), BytesTable>,
    by_modseq: Table<'t, (u64, u64, u64, u32), u8>,
    expunged: Table<'t, (u64, u64, u64, u32), u8>,
    unseen: Table<'t, (u64, u64, u32), u8>,
    deleted: Table<'t, (u64, u64, u32), u8>,
    search_bloom: Table<'t, (u64, u64, u32), BytesTable>,
    quotas: Table<'t, u64, BytesTable>,
    aliases: Table<'t, &'static str, u64>,
    user_aliases: Table<'t, (u64, &'static str), u8>,
    domains: Table<'t, &'static str, &'static str>,
    metadata: Table<'t, (u64, u64, &'static str), BytesTable>,
    metadata_bytes: Table<'t, u64, u64>,
    deleted_users: Table<'t, u64, u8>,
    /// Hints to publish once the transaction has committed.
    events: Vec<ChangeEvent>,
}

impl<'t> W<'t> {
    fn open(txn: &'t WriteTransaction) -> MetaResult<W<'t>> {
        Ok(W {
            meta: txn.open_table(META).map_err(db_err)?,
            users: txn.open_table(USERS).map_err(db_err)?,
            user_names: txn.open_table(USER_NAMES).map_err(db_err)?,
            user_seq: txn.open_table(USER_SEQ).map_err(db_err)?,
            mailboxes: txn.open_table(MAILBOXES).map_err(db_err)?,
            mailbox_names: txn.open_table(MAILBOX_NAMES).map_err(db_err)?,
            subscriptions: txn.open_table(SUBSCRIPTIONS).map_err(db_err)?,
            messages: txn.open_table(MESSAGES).map_err(db_err)?,
            summaries: txn.open_table(SUMMARIES).map_err(db_err)?,
            search_index: txn.open_table(SEARCH_INDEX).map_err(db_err)?,
            by_modseq: txn.open_table(BY_MODSEQ).map_err(db_err)?,
            expunged: txn.open_table(EXPUNGED).map_err(db_err)?,
            unseen: txn.open_table(UNSEEN).map_err(db_err)?,
            deleted: txn.open_table(DELETED).map_err(db_err)?,
            search_bloom: txn.open_table(SEARCH_BLOOM).map_err(db_err)?,
            quotas: txn.open_table(QUOTAS).map_err(db_err)?,
            aliases: txn.open_table(ALIASES).map_err(db_err)?,
            user_aliases: txn.open_table(USER_ALIASES).map_err(db_err)?,
            domains: txn.open_table(DOMAINS).map_err(db_err)?,
            metadata: txn.open_table(METADATA).map_err(db_err)?,
            metadata_bytes: txn.open_table(METADATA_BYTES).map_err(db_err)?,
            deleted_users: txn.open_table(DELETED_USERS).map_err(db_err)?,
            events: Vec::new(),
        })
    }

    fn emit(&mut self, u: u64, m: u64, modseq: u64, kind: ChangeKind) {
        self.events.push(ChangeEvent {
            user: UserId(u),
            mailbox: MailboxId(m),
            modseq: ModSeq(modseq),
            kind,
            // Stamped when sent, after the commit.
            published_unix_micros: 0,
        });
    }

    /// Moves mailbox `m` to a new UIDVALIDITY, above its own and the user's last one (RFC 3501
    /// §2.3.1.1); its messages stay. See `changes_since`.
    fn revalidate(&mut self, u: u64, m: u64, row: &mut MboxRow) -> MetaResult<()> {
        let mut seq: UserSeq = match self.user_seq.get(u).map_err(db_err)? {
            Some(g) => decode(g.value())?,
            None => UserSeq::default(),
        };
        seq.last_uid_validity = next_uid_validity(seq.last_uid_validity.max(row.uid_validity)).0;
        self.user_seq
            .insert(u, encode(&seq)?.as_slice())
            .map_err(db_err)?;
        row.uid_validity = seq.last_uid_validity;
        self.put_mbox(u, m, row)?;
        self.emit(u, m, row.highest_modseq, ChangeKind::MailboxList);
        Ok(())
    }

    fn mbox(&self, u: u64, m: u64) -> MetaResult<MboxRow> {
        read_mbox(&self.mailboxes, u, m)?.ok_or_else(|| MetaError::NotFound(format!("mailbox {m}")))
    }

    fn put_mbox(&mut self, u: u64, m: u64, row: &MboxRow) -> MetaResult<()> {
        self.mailboxes
            .insert((u, m), encode(row)?.as_slice())
            .map_err(db_err)?;
        Ok(())
    }

    /// The id of the mailbox called `name` (normalized), creating INBOX on first use.
    fn id_by_name(&mut self, u: u64, name: &str) -> MetaResult<Option<u64>> {
        if let Some(id) = read_mbox_id(&self.mailbox_names, u, name)? {
            return Ok(Some(id));
        }
        if name == INBOX {
            return self.create_mbox(u, INBOX, None).map(|(id, _)| Some(id));
        }
        Ok(None)
    }

    fn id_by_name_req(&mut self, u: u64, name: &str) -> MetaResult<u64> {
        self.id_by_name(u, name)?
            .ok_or_else(|| MetaError::NotFound(format!("mailbox {name}")))
    }

    /// Creates a mailbox under a name known to be free.
    fn create_mbox(
        &mut self,
        u: u64,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> MetaResult<(u64, MboxRow)> {
        let mut seq: UserSeq = match self.user_seq.get(u).map_err(db_err)? {
            Some(g) => decode(g.value())?,
            None => UserSeq::default(),
        };
        seq.last_mailbox += 1;
        seq.last_uid_validity = next_uid_validity(seq.last_uid_validity).0;
        self.user_seq
            .insert(u, encode(&seq)?.as_slice())
            .map_err(db_err)?;
        let id = seq.last_mailbox;
        let row = MboxRow {
            name: name.to_string(),
            uid_validity: seq.last_uid_validity,
            uid_next: 1,
            highest_modseq: 1,
            exists: 0,
            unseen: 0,
            deleted: 0,
            size: 0,
            special_use,
            keywords: Vec::new(),
            recent_from: first_uid(),
            expunge_log: 0,
            vanished_floor: 0,
        };
        self.put_mbox(u, id, &row)?;
        self.mailbox_names.insert((u, name), id).map_err(db_err)?;
        self.emit(u, id, row.highest_modseq, ChangeKind::MailboxList);
        Ok((id, row))
    }

    /// Refuses (before anything is written) when creating `name`'s missing superiors plus
    /// `extra` mailboxes would take the account past `limits.max_mailboxes`.
    fn check_mailbox_room(
        &self,
        limits: &StoreLimits,
        u: u64,
        name: &str,
        extra: usize,
    ) -> MetaResult<()> {
        let mut added = extra;
        for sup in names::superiors(name) {
            if read_mbox_id(&self.mailbox_names, u, &sup)?.is_none() {
                added += 1;
            }
        }
        if added == 0 {
            return Ok(());
        }
        let mut have = 0usize;
        for item in self
            .mailboxes
            .range((u, 0)..=(u, u64::MAX))
            .map_err(db_err)?
        {
            item.map_err(db_err)?;
            have += 1;
        }
        if have + added > limits.max_mailboxes as usize {
            return Err(limits.too_many_mailboxes());
        }
        Ok(())
    }

    /// Creates the missing superiors of `name` (RFC 3501 §6.3.3/§6.3.5: the server SHOULD).
    fn create_superiors(&mut self, u: u64, name: &str) -> MetaResult<()> {
        for sup in names::superiors(name) {
            if self.id_by_name(u, &sup)?.is_none() {
                self.create_mbox(u, &sup, None)?;
            }
        }
        Ok(())
    }

    fn usage(&self, u: u64) -> MetaResult<QuotaUsage> {
        read_usage(&self.quotas, &self.mailboxes, u)
    }

    fn put_usage(&mut self, u: u64, usage: &QuotaUsage) -> MetaResult<()> {
        self.quotas
            .insert(u, encode(usage)?.as_slice())
            .map_err(db_err)?;
        Ok(())
    }

    /// Adds messages to the account's usage, refusing with `OverQuota` (and writing nothing)
    /// when a limit would be exceeded. Called before the messages are written, inside the same
    /// transaction, so concurrent writers can never overshoot a limit together.
    fn charge(&mut self, u: u64, bytes: u64, messages: u64) -> MetaResult<()> {
        let mut usage = self.usage(u)?;
        check_quota(&usage, bytes, messages)?;
        usage.storage_bytes += bytes;
        usage.messages += messages;
        self.put_usage(u, &usage)
    }

    /// Takes removed messages off the account's usage. Must run before the mailbox rows
    /// change: for an account without stored counters the usage is computed from them.
    fn credit(&mut self, u: u64, bytes: u64, messages: u64) -> MetaResult<()> {
        let mut usage = self.usage(u)?;
        usage.storage_bytes = usage.storage_bytes.saturating_sub(bytes);
        usage.messages = usage.messages.saturating_sub(messages);
        self.put_usage(u, &usage)
    }

    fn user_row(&self, u: u64) -> MetaResult<UserRow> {
        match self.users.get(u).map_err(db_err)? {
            Some(g) => decode(g.value()),
            None => Err(MetaError::NotFound(format!("user {u}"))),
        }
    }

    fn put_user_row(&mut self, u: u64, row: &UserRow) -> MetaResult<()> {
        self.users
            .insert(u, encode(row)?.as_slice())
            .map_err(db_err)?;
        Ok(())
    }

    fn insert_msg(
        &mut self,
        u: u64,
        m: u64,
        row: &mut MboxRow,
        uid: u32,
        msg: &MsgRow,
        (summary, index, bloom): (&[u8], &[u8], &[u8]),
    ) -> MetaResult<()> {
        self.messages
            .insert((u, m, uid), encode(msg)?.as_slice())
            .map_err(db_err)?;
        self.summaries
            .insert((u, m, uid), summary)
            .map_err(db_err)?;
        self.search_index
            .insert((u, m, uid), index)
            .map_err(db_err)?;
        self.search_bloom
            .insert((u, m, uid), bloom)
            .map_err(db_err)?;
        self.index_flags(u, m, uid, msg, true)?;
        row.count(msg, true);
        row.note_keywords(&msg.flags);
        Ok(())
    }

    /// Adds or removes the secondary index entries of one message.
    fn index_flags(&mut self, u: u64, m: u64, uid: u32, msg: &MsgRow, add: bool) -> MetaResult<()> {
        let seen = flags::contains(&msg.flags, "\\Seen");
        let deleted = flags::contains(&msg.flags, "\\Deleted");
        if add {
            self.by_modseq
                .insert((u, m, msg.modseq, uid), 0)
                .map_err(db_err)?;
            if !seen {
                self.unseen.insert((u, m, uid), 0).map_err(db_err)?;
            }
            if deleted {
                self.deleted.insert((u, m, uid), 0).map_err(db_err)?;
            }
        } else {
            self.by_modseq
                .remove((u, m, msg.modseq, uid))
                .map_err(db_err)?;
            self.unseen.remove((u, m, uid)).map_err(db_err)?;
            self.deleted.remove((u, m, uid)).map_err(db_err)?;
        }
        Ok(())
    }

    /// Removes a message and logs its UID as expunged at `modseq` (RFC 7162 §3.2.10); the
    /// write then calls [`W::trim_expunged`] once.
    fn expunge_msg(
        &mut self,
        u: u64,
        m: u64,
        row: &mut MboxRow,
        uid: u32,
        msg: &MsgRow,
        modseq: u64,
    ) -> MetaResult<()> {
        self.messages.remove((u, m, uid)).map_err(db_err)?;
        self.summaries.remove((u, m, uid)).map_err(db_err)?;
        self.search_index.remove((u, m, uid)).map_err(db_err)?;
        self.search_bloom.remove((u, m, uid)).map_err(db_err)?;
        self.index_flags(u, m, uid, msg, false)?;
        self.expunged
            .insert((u, m, modseq, uid), 0)
            .map_err(db_err)?;
        row.expunge_log += 1;
        row.count(msg, false);
        Ok(())
    }

    /// Keeps mailbox `m`'s expunge log to `max_log` entries: the oldest go, and the floor below
    /// which QRESYNC answers are no longer exact rises to the highest MODSEQ dropped (as
    /// `trim_expunged` in the Redis prelude). Drops at most what the write added beyond the cap
    /// (plus any excess of a lowered cap), each an O(log n) removal.
    fn trim_expunged(&mut self, u: u64, m: u64, row: &mut MboxRow, max_log: u32) -> MetaResult<()> {
        while row.expunge_log > u64::from(max_log) {
            let oldest = self
                .expunged
                .range((u, m, 0, 0)..=(u, m, u64::MAX, u32::MAX))
                .map_err(db_err)?
                .next()
                .transpose()
                .map_err(db_err)?
                .map(|(k, _)| k.value());
            let Some(key) = oldest else {
                row.expunge_log = 0;
                break;
            };
            self.expunged.remove(key).map_err(db_err)?;
            row.vanished_floor = row.vanished_floor.max(key.2);
            row.expunge_log -= 1;
        }
        Ok(())
    }

    fn set_flags(
        &mut self,
        u: u64,
        m: u64,
        row: &mut MboxRow,
        uid: u32,
        old: &MsgRow,
        new: &MsgRow,
    ) -> MetaResult<()> {
        self.index_flags(u, m, uid, old, false)?;
        row.count(old, false);
        self.messages
            .insert((u, m, uid), encode(new)?.as_slice())
            .map_err(db_err)?;
        self.index_flags(u, m, uid, new, true)?;
        row.count(new, true);
        row.note_keywords(&new.flags);
        Ok(())
    }

    /// Removes every row of a mailbox (its messages, logs and name).
    fn drop_mailbox(&mut self, u: u64, m: u64, name: &str) -> MetaResult<()> {
        let r = (u, m, 0)..=(u, m, u32::MAX);
        self.messages
            .retain_in(r.clone(), |_, _| false)
            .map_err(db_err)?;
        self.summaries
            .retain_in(r.clone(), |_, _| false)
            .map_err(db_err)?;
        self.search_index
            .retain_in(r.clone(), |_, _| false)
            .map_err(db_err)?;
        self.unseen
            .retain_in(r.clone(), |_, _| false)
            .map_err(db_err)?;
        self.search_bloom
            .retain_in(r.clone(), |_, _| false)
            .map_err(db_err)?;
        self.deleted.retain_in(r, |_, _| false).map_err(db_err)?;
        let r4 = (u, m, 0, 0)..=(u, m, u64::MAX, u32::MAX);
        self.by_modseq
            .retain_in(r4.clone(), |_, _| false)
            .map_err(db_err)?;
        self.expunged.retain_in(r4, |_, _| false).map_err(db_err)?;
        self.forget_metadata(u, m)?;
        self.mailboxes.remove((u, m)).map_err(db_err)?;
        self.mailbox_names.remove((u, name)).map_err(db_err)?;
        Ok(())
    }

    /// Removes the METADATA entries of mailbox `m` (0: the server's) and takes their bytes off
    /// the account's total.
    fn forget_metadata(&mut self, u: u64, m: u64) -> MetaResult<()> {
        let mut bytes = 0u64;
        self.metadata
            .retain_in::<(u64, u64, &str), _>((u, m, "")..(u, m + 1, ""), |(_, _, name), value| {
                bytes += (name.len() + value.len()) as u64;
                false
            })
            .map_err(db_err)?;
        let held = self.metadata_bytes_of(u)?;
        self.set_metadata_bytes(u, held.saturating_sub(bytes))
    }

    fn metadata_bytes_of(&self, u: u64) -> MetaResult<u64> {
        Ok(self
            .metadata_bytes
            .get(u)
            .map_err(db_err)?
            .map_or(0, |v| v.value()))
    }

    fn set_metadata_bytes(&mut self, u: u64, bytes: u64) -> MetaResult<()> {
        if bytes == 0 {
            self.metadata_bytes.remove(u).map_err(db_err)?;
        } else {
            self.metadata_bytes.insert(u, bytes).map_err(db_err)?;
        }
        Ok(())
    }

    /// Copies (or moves) the existing messages of `set` from `src` to `dst`, with new UIDs in
    /// ascending source order, keeping flags and internal dates (RFC 3501 §6.4.7).
    fn transfer(
        &mut self,
        u: u64,
        src: u64,
        set: Option<&UidSet>,
        dst: u64,
        remove_source: bool,
        limits: &StoreLimits,
    ) -> MetaResult<(u32, Vec<(Uid, Uid)>)> {
        let mut srow = self.mbox(u, src)?;
        let mut drow = if src == dst {
            None
        } else {
            Some(self.mbox(u, dst)?)
        };
        let msgs = read_msgs_in(&self.messages, u, src, set)?;
        let validity = drow.as_ref().map_or(srow.uid_validity, |d| d.uid_validity);
        if msgs.is_empty() {
            return Ok((validity, Vec::new()));
        }
        if let Some(d) = &drow {
            d.check_keyword_room(limits, msgs.iter().map(|(_, m)| m.flags.as_slice()))?;
        }
        if !remove_source {
            // A copy adds to the account's usage; a move within it changes nothing.
            let bytes = msgs.iter().map(|(_, m)| m.size).sum();
            self.charge(u, bytes, msgs.len() as u64)?;
        }
        // A copy leaves every source message as it was, so the source's HIGHESTMODSEQ stays
        // (RFC 7162 §3.1.4: it is the highest MODSEQ of the mailbox's messages); only a move
        // expunges there and needs a new one.
        let smodseq = if remove_source || drow.is_none() {
            srow.bump_modseq()
        } else {
            srow.highest_modseq
        };
        let dmodseq = match drow.as_mut() {
            Some(d) => d.bump_modseq(),
            None => smodseq,
        };
        let mut mapping = Vec::with_capacity(msgs.len());
        for (uid, msg) in msgs {
            let summary = read_bytes(&self.summaries, u, src, uid)?.unwrap_or_default();
            let index = read_bytes(&self.search_index, u, src, uid)?.unwrap_or_default();
            if remove_source {
                self.expunge_msg(u, src, &mut srow, uid, &msg, smodseq)?;
            }
            let d = match drow.as_mut() {
                Some(d) => d,
                None => &mut srow,
            };
            let new_uid = d.take_uid()?;
            let copy = MsgRow {
                modseq: dmodseq,
                ..msg
            };
            let bloom = match read_bytes(&self.search_bloom, u, src, uid)? {
                Some(b) => b,
                None => stored_bloom(&index)?,
            };
            self.insert_msg(u, dst, d, new_uid, &copy, (&summary, &index, &bloom))?;
            mapping.push((Uid(uid), Uid(new_uid)));
        }
        if remove_source {
            self.trim_expunged(u, src, &mut srow, limits.max_expunge_log)?;
        }
        self.put_mbox(u, src, &srow)?;
        if let Some(d) = &drow {
            self.put_mbox(u, dst, d)?;
        }
        self.emit(u, dst, dmodseq, ChangeKind::Appended);
        if remove_source {
            self.emit(u, src, smodseq, ChangeKind::Expunged);
        }
        Ok((validity, mapping))
    }
}

/// Every table, open in one read transaction.
struct R {
    users: ReadOnlyTable<u64, BytesTable>,
    user_names: ReadOnlyTable<&'static str, u64>,
    mailboxes: ReadOnlyTable<(u64, u64), BytesTable>,
    mailbox_names: ReadOnlyTable<(u64, &'static str), u64>,
    subscriptions: ReadOnlyTable<(u64, &'static str), u8>,
    messages: ReadOnlyTable<(u64, u64, u32), BytesTable>,
    summaries: ReadOnlyTable<(u64, u64, u32), BytesTable>,
    search_index: ReadOnlyTable<(u64, u64, u32), BytesTable>,
    by_modseq: ReadOnlyTable<(u64, u64, u64, u32), u8>,
    expunged: ReadOnlyTable<(u64, u64, u64, u32), u8>,
    unseen: ReadOnlyTable<(u64, u64, u32), u8>,
    deleted: ReadOnlyTable<(u64, u64, u32), u8>,
    search_bloom: ReadOnlyTable<(u64, u64, u32), BytesTable>,
    quotas: ReadOnlyTable<u64, BytesTable>,
    aliases: ReadOnlyTable<&'static str, u64>,
    domains: ReadOnlyTable<&'static str, &'static str>,
    metadata: ReadOnlyTable<(u64, u64, &'static str), BytesTable>,
}

impl R {
    fn open(txn: &ReadTransaction) -> MetaResult<R> {
        Ok(R {
            users: txn.open_table(USERS).map_err(db_err)?,
            user_names: txn.open_table(USER_NAMES).map_err(db_err)?,
            mailboxes: txn.open_table(MAILBOXES).map_err(db_err)?,
            mailbox_names: txn.open_table(MAILBOX_NAMES).map_err(db_err)?,
            subscriptions: txn.open_table(SUBSCRIPTIONS).map_err(db_err)?,
            messages: txn.open_table(MESSAGES).map_err(db_err)?,
            summaries: txn.open_table(SUMMARIES).map_err(db_err)?,
            search_index: txn.open_table(SEARCH_INDEX).map_err(db_err)?,
            by_modseq: txn.open_table(BY_MODSEQ).map_err(db_err)?,
            expunged: txn.open_table(EXPUNGED).map_err(db_err)?,
            unseen: txn.open_table(UNSEEN).map_err(db_err)?,
            deleted: txn.open_table(DELETED).map_err(db_err)?,
            search_bloom: txn.open_table(SEARCH_BLOOM).map_err(db_err)?,
            quotas: txn.open_table(QUOTAS).map_err(db_err)?,
            aliases: txn.open_table(ALIASES).map_err(db_err)?,
            domains: txn.open_table(DOMAINS).map_err(db_err)?,
            metadata: txn.open_table(METADATA).map_err(db_err)?,
        })
    }

    fn mbox(&self, u: u64, m: u64) -> MetaResult<MboxRow> {
        read_mbox(&self.mailboxes, u, m)?.ok_or_else(|| MetaError::NotFound(format!("mailbox {m}")))
    }

    fn id_by_name(&self, u: u64, name: &str) -> MetaResult<u64> {
        read_mbox_id(&self.mailbox_names, u, name)?
            .ok_or_else(|| MetaError::NotFound(format!("mailbox {name}")))
    }

    fn user(&self, id: u64) -> MetaResult<Option<UserRecord>> {
        match self.users.get(id).map_err(db_err)? {
            Some(g) => {
                let row: UserRow = decode(g.value())?;
                Ok(Some(UserRecord {
                    id: UserId(id),
                    name: row.name,
                    password_hash: row.password_hash,
                    disabled: row.disabled,
                }))
            }
            None => Ok(None),
        }
    }
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
            build_search_blooms(&mut W::open(&txn)?)?;
            txn.commit().map_err(db_err)?;
            Ok(db)
        })
        .await
        .map_err(|e| MetaError::Internal(format!("embedded store task: {e}")))??;
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Ok(EmbeddedStore {
            db: Arc::new(db),
            events,
            limits: StoreLimits::default(),
        })
    }

    /// The same store enforcing `limits` instead of the defaults.
    pub fn with_limits(mut self, limits: StoreLimits) -> EmbeddedStore {
        self.limits = limits;
        self
    }

    /// Runs `f` in one write transaction on a blocking thread; commits when it returns `Ok`
    /// (dropping the transaction on `Err` aborts it) and then publishes its hints.
    async fn write<T, F>(&self, f: F) -> MetaResult<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&mut W<'t>) -> MetaResult<T> + Send + 'static,
    {
        let db = self.db.clone();
        let (value, events) = tokio::task::spawn_blocking(move || {
            let txn = db.begin_write().map_err(db_err)?;
            let (value, events) = {
                let mut w = W::open(&txn)?;
                let value = f(&mut w)?;
                (value, std::mem::take(&mut w.events))
            };
            txn.commit().map_err(db_err)?;
            Ok::<_, MetaError>((value, events))
        })
        .await
        .map_err(|e| MetaError::Internal(format!("embedded store task: {e}")))??;
        let published_unix_micros = yubin_meta_api::unix_micros_now();
        for ev in events {
            // No receiver is not an error: hints are best effort.
            let _ = self.events.send(ChangeEvent {
                published_unix_micros,
                ..ev
            });
        }
        Ok(value)
    }

    /// [`Self::write`] for a write to `user`'s mail: refused when the account was deleted.
    async fn write_user<T, F>(&self, user: UserId, f: F) -> MetaResult<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&mut W<'t>) -> MetaResult<T> + Send + 'static,
    {
        self.write(move |w| {
            if w.deleted_users.get(user.0).map_err(db_err)?.is_some() {
                return Err(MetaError::NotFound("account (deleted)".into()));
            }
            f(w)
        })
        .await
    }

    /// Runs `f` in one read transaction (a consistent snapshot) on a blocking thread.
    async fn read<T, F>(&self, f: F) -> MetaResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&R) -> MetaResult<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(db_err)?;
            f(&R::open(&txn)?)
        })
        .await
        .map_err(|e| MetaError::Internal(format!("embedded store task: {e}")))?
    }

    /// Makes sure INBOX exists ("created on first use") before a read that lists or opens it.
    async fn ensure_inbox(&self, user: UserId) -> MetaResult<()> {
        let u = user.0;
        let exists = self
            .read(move |r| Ok(read_mbox_id(&r.mailbox_names, u, INBOX)?.is_some()))
            .await?;
        if !exists {
            self.write_user(user, move |w| w.id_by_name(u, INBOX).map(|_| ()))
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl MailStore for EmbeddedStore {
    async fn list_mailboxes(&self, user: UserId) -> MetaResult<Vec<MailboxInfo>> {
        self.ensure_inbox(user).await?;
        let u = user.0;
        self.read(move |r| {
            let mut out = Vec::new();
            for item in r.mailboxes.range((u, 0)..=(u, u64::MAX)).map_err(db_err)? {
                let (k, v) = item.map_err(db_err)?;
                let row: MboxRow = decode(v.value())?;
                let id = k.value().1;
                let recent = count_unclaimed(&r.messages, u, id, row.recent_from)?;
                out.push(row.info(id, recent));
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await
    }

    async fn list_subscriptions(&self, user: UserId) -> MetaResult<Vec<String>> {
        let u = user.0;
        self.read(move |r| {
            let mut out = Vec::new();
            for item in r.subscriptions.range((u, "")..).map_err(db_err)? {
                let (k, _) = item.map_err(db_err)?;
                let (ku, name) = k.value();
                if ku != u {
                    break;
                }
                out.push(name.to_string());
            }
            Ok(out)
        })
        .await
    }

    async fn set_subscribed(&self, user: UserId, name: &str, subscribed: bool) -> MetaResult<()> {
        let name = names::checked(name)?;
        let u = user.0;
        self.write_user(user, move |w| {
            let changed = if subscribed {
                w.subscriptions
                    .insert((u, name.as_str()), 0)
                    .map_err(db_err)?
                    .is_none()
            } else {
                w.subscriptions
                    .remove((u, name.as_str()))
                    .map_err(db_err)?
                    .is_some()
            };
            if changed {
                w.emit(u, 0, 0, ChangeKind::MailboxList);
            }
            Ok(())
        })
        .await
    }

    async fn create_mailbox(
        &self,
        user: UserId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> MetaResult<MailboxInfo> {
        let name = names::for_create(name)?;
        let (u, limits) = (user.0, self.limits);
        self.write_user(user, move |w| {
            if w.id_by_name(u, &name)?.is_some() {
                return Err(MetaError::AlreadyExists(format!("mailbox {name}")));
            }
            w.check_mailbox_room(&limits, u, &name, 1)?;
            w.create_superiors(u, &name)?;
            let (id, row) = w.create_mbox(u, &name, special_use)?;
            // A new mailbox holds no message, so none is unclaimed.
            Ok(row.info(id, 0))
        })
        .await
    }

    async fn delete_mailbox(&self, user: UserId, name: &str) -> MetaResult<()> {
        let name = names::checked(name)?;
        if name == INBOX {
            return Err(MetaError::Invalid("INBOX cannot be deleted".into()));
        }
        let u = user.0;
        self.write_user(user, move |w| {
            let id = w.id_by_name_req(u, &name)?;
            let row = w.mbox(u, id)?;
            w.credit(u, row.size, u64::from(row.exists))?;
            w.drop_mailbox(u, id, &name)?;
            w.emit(u, id, row.highest_modseq, ChangeKind::MailboxList);
            Ok(())
        })
        .await
    }

    async fn rename_mailbox(&self, user: UserId, from: &str, to: &str) -> MetaResult<()> {
        let from = names::checked(from)?;
        let to = names::checked(to)?;
        if to == from || names::is_inferior(&to, &from) {
            return Err(MetaError::Invalid(format!(
                "cannot rename {from} to {to}: a mailbox cannot become its own inferior"
            )));
        }
        let (u, limits) = (user.0, self.limits);
        self.write_user(user, move |w| {
            let src = w.id_by_name_req(u, &from)?;
            if w.id_by_name(u, &to)?.is_some() {
                return Err(MetaError::AlreadyExists(format!("mailbox {to}")));
            }
            if from == INBOX {
                // RFC 3501 §6.3.5: renaming INBOX moves its messages to a new mailbox and
                // leaves INBOX empty; INBOX's inferiors stay where they are.
                w.check_mailbox_room(&limits, u, &to, 1)?;
                w.create_superiors(u, &to)?;
                let (dst, _) = w.create_mbox(u, &to, None)?;
                w.transfer(u, src, None, dst, true, &limits)?;
                return Ok(());
            }
            // The moved mailboxes keep their number; only missing superiors of `to` are new.
            w.check_mailbox_room(&limits, u, &to, 0)?;
            let mut moving: Vec<(String, u64)> = Vec::new();
            for item in w.mailbox_names.range((u, "")..).map_err(db_err)? {
                let (k, v) = item.map_err(db_err)?;
                let (ku, name) = k.value();
                if ku != u {
                    break;
                }
                if name == from || names::is_inferior(name, &from) {
                    moving.push((name.to_string(), v.value()));
                }
            }
            for (name, _) in &moving {
                let target = names::renamed(name, &from, &to);
                if read_mbox_id(&w.mailbox_names, u, &target)?.is_some() {
                    return Err(MetaError::AlreadyExists(format!("mailbox {target}")));
                }
            }
            for (name, id) in &moving {
                let target = names::renamed(name, &from, &to);
                w.mailbox_names.remove((u, name.as_str())).map_err(db_err)?;
                w.mailbox_names
                    .insert((u, target.as_str()), *id)
                    .map_err(db_err)?;
                let mut row = w.mbox(u, *id)?;
                row.name = target;
                w.put_mbox(u, *id, &row)?;
                w.emit(u, *id, row.highest_modseq, ChangeKind::MailboxList);
            }
            w.create_superiors(u, &to)?;
            Ok(())
        })
        .await
    }

    async fn mailbox_status(&self, user: UserId, name: &str) -> MetaResult<MailboxInfo> {
        let name = names::checked(name)?;
        if name == INBOX {
            self.ensure_inbox(user).await?;
        }
        let u = user.0;
        self.read(move |r| {
            let id = r.id_by_name(u, &name)?;
            let row = r.mbox(u, id)?;
            let recent = count_unclaimed(&r.messages, u, id, row.recent_from)?;
            Ok(row.info(id, recent))
        })
        .await
    }

    async fn select(&self, user: UserId, name: &str) -> MetaResult<MailboxSnapshot> {
        let name = names::checked(name)?;
        if name == INBOX {
            self.ensure_inbox(user).await?;
        }
        let (u, limits) = (user.0, self.limits);
        self.read(move |r| {
            let id = r.id_by_name(u, &name)?;
            let row = r.mbox(u, id)?;
            // Each message's flags and MODSEQ come from the same read transaction as the UIDs
            // and the mailbox row, so they are the state at the row's HIGHESTMODSEQ.
            let mut uids = Vec::with_capacity(row.exists as usize);
            let mut flags = SnapshotFlagsBuilder::default();
            for item in r
                .messages
                .range((u, id, 0)..=(u, id, u32::MAX))
                .map_err(db_err)?
            {
                let (k, v) = item.map_err(db_err)?;
                let msg: MsgRow = decode(v.value())?;
                uids.push(Uid(k.value().2));
                flags.push(ModSeq(msg.modseq), &msg.flags);
            }
            let first_unseen = r
                .unseen
                .range((u, id, 0)..=(u, id, u32::MAX))
                .map_err(db_err)?
                .next()
                .transpose()
                .map_err(db_err)?
                .map(|(k, _)| Uid(k.value().2));
            let recent = count_unclaimed(&r.messages, u, id, row.recent_from)?;
            Ok(MailboxSnapshot {
                info: row.info(id, recent),
                uids,
                first_unseen,
                keywords_full: limits.keywords_full(row.keywords.len()),
                keywords: row.keywords,
                flags: flags.finish(),
            })
        })
        .await
    }

    async fn append(
        &self,
        user: UserId,
        mailbox: &str,
        messages: Vec<NewMessage>,
    ) -> MetaResult<AppendResult> {
        let name = names::checked(mailbox)?;
        let mut prepared = Vec::with_capacity(messages.len());
        for m in messages {
            m.check_owner(user)?;
            let flags = flags::normalize(&m.flags)?;
            self.limits.check_given(&flags)?;
            let index = encode(&m.index)?;
            // Computed before the write transaction, which is the store's one serial section.
            let bloom = search::posted_bloom(&m.index);
            prepared.push((m, flags, index, bloom));
        }
        let (u, limits) = (user.0, self.limits);
        self.write_user(user, move |w| {
            let id = w.id_by_name_req(u, &name)?;
            let mut row = w.mbox(u, id)?;
            let mut uids = Vec::with_capacity(prepared.len());
            if !prepared.is_empty() {
                row.check_keyword_room(&limits, prepared.iter().map(|(_, f, _, _)| f.as_slice()))?;
                let bytes = prepared.iter().map(|(m, _, _, _)| m.size).sum();
                w.charge(u, bytes, prepared.len() as u64)?;
                let modseq = row.bump_modseq();
                for (m, flags, index, bloom) in &prepared {
                    let uid = row.take_uid()?;
                    let msg = MsgRow {
                        modseq,
                        flags: flags.clone(),
                        date: m.internal_date,
                        size: m.size,
                        blob: m.blob.clone(),
                    };
                    w.insert_msg(u, id, &mut row, uid, &msg, (&m.summary, index, bloom))?;
                    uids.push(Uid(uid));
                }
                w.put_mbox(u, id, &row)?;
                w.emit(u, id, modseq, ChangeKind::Appended);
            }
            Ok(AppendResult {
                uid_validity: UidValidity(row.uid_validity),
                uids,
                mailbox: MailboxId(id),
            })
        })
        .await
    }

    async fn fetch(
        &self,
        user: UserId,
        mailbox: MailboxId,
        uids: &UidSet,
        with_summary: bool,
    ) -> MetaResult<Vec<MessageRecord>> {
        let (u, m, set) = (user.0, mailbox.0, uids.clone());
        self.read(move |r| {
            r.mbox(u, m)?;
            let msgs = read_msgs_in(&r.messages, u, m, Some(&set))?;
            let mut out = Vec::with_capacity(msgs.len());
            for (uid, msg) in msgs {
                let summary = if with_summary {
                    Some(Bytes::from(
                        read_bytes(&r.summaries, u, m, uid)?.unwrap_or_default(),
                    ))
                } else {
                    None
                };
                out.push(msg.record(uid, summary));
            }
            Ok(out)
        })
        .await
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
        let given = flags::normalize(flags)?;
        if op != FlagOp::Remove {
            // Refused before the write transaction: this is the cheap, common rejection.
            self.limits.check_given(&given)?;
        }
        let (u, m, set, limits) = (user.0, mailbox.0, uids.clone(), self.limits);
        self.write_user(user, move |w| {
            let mut row = w.mbox(u, m)?;
            if op != FlagOp::Remove {
                // Every message the STORE changes ends up with all of `given` (RFC 3501
                // §6.4.6), so these are the keywords the mailbox would learn.
                row.check_keyword_room(&limits, [given.as_slice()])?;
            }
            let max_per_message = limits.max_keywords_per_message as usize;
            let msgs = read_msgs_in(&w.messages, u, m, Some(&set))?;
            let mut updated = Vec::new();
            let mut modified = Vec::new();
            let mut modseq = None;
            for (uid, msg) in msgs {
                // RFC 7162 §3.1.3: a message changed after UNCHANGEDSINCE fails the condition.
                if unchanged_since.is_some_and(|us| msg.modseq > us.0) {
                    modified.push(Uid(uid));
                    continue;
                }
                let Some(next) = flags::apply(&msg.flags, op, &given) else {
                    continue;
                };
                let keywords = flags::keyword_count(&next);
                if keywords > max_per_message && keywords > flags::keyword_count(&msg.flags) {
                    // Dropping the transaction undoes the messages already changed.
                    return Err(limits.too_many_per_message());
                }
                let ms = *modseq.get_or_insert_with(|| row.bump_modseq());
                let new = MsgRow {
                    modseq: ms,
                    flags: next,
                    ..msg.clone()
                };
                w.set_flags(u, m, &mut row, uid, &msg, &new)?;
                updated.push((Uid(uid), ModSeq(ms), new.flags));
            }
            if let Some(ms) = modseq {
                w.put_mbox(u, m, &row)?;
                w.emit(u, m, ms, ChangeKind::Flags);
            }
            Ok(StoreResult {
                updated,
                modified,
                highest_modseq: ModSeq(row.highest_modseq),
            })
        })
        .await
    }

    async fn copy_messages(
        &self,
        user: UserId,
        source: MailboxId,
        uids: &UidSet,
        destination: &str,
        remove_source: bool,
    ) -> MetaResult<CopyResult> {
        let name = names::checked(destination)?;
        let (u, src, set, limits) = (user.0, source.0, uids.clone(), self.limits);
        self.write_user(user, move |w| {
            w.mbox(u, src)?;
            let dst = w.id_by_name_req(u, &name)?;
            let (validity, mapping) =
                w.transfer(u, src, Some(&set), dst, remove_source, &limits)?;
            Ok(CopyResult {
                uid_validity: UidValidity(validity),
                mapping,
                destination: MailboxId(dst),
            })
        })
        .await
    }

    async fn expunge(
        &self,
        user: UserId,
        mailbox: MailboxId,
        uids: Option<&UidSet>,
    ) -> MetaResult<Vec<Uid>> {
        let (u, m, set, max_log) = (
            user.0,
            mailbox.0,
            uids.cloned(),
            self.limits.max_expunge_log,
        );
        self.write_user(user, move |w| {
            let mut row = w.mbox(u, m)?;
            let doomed: Vec<u32> = read_uid_keys(&w.deleted, u, m)?
                .into_iter()
                .filter(|uid| set.as_ref().is_none_or(|s| s.contains(Uid(*uid))))
                .collect();
            if doomed.is_empty() {
                return Ok(Vec::new());
            }
            let mut doomed_msgs = Vec::with_capacity(doomed.len());
            for &uid in &doomed {
                if let Some(msg) = read_msg(&w.messages, u, m, uid)? {
                    doomed_msgs.push((uid, msg));
                }
            }
            let bytes = doomed_msgs.iter().map(|(_, msg)| msg.size).sum();
            w.credit(u, bytes, doomed_msgs.len() as u64)?;
            let modseq = row.bump_modseq();
            for (uid, msg) in &doomed_msgs {
                w.expunge_msg(u, m, &mut row, *uid, msg, modseq)?;
            }
            w.trim_expunged(u, m, &mut row, max_log)?;
            w.put_mbox(u, m, &row)?;
            w.emit(u, m, modseq, ChangeKind::Expunged);
            Ok(doomed.into_iter().map(Uid).collect())
        })
        .await
    }

    async fn search(
        &self,
        user: UserId,
        mailbox: MailboxId,
        key: &SearchKey,
    ) -> MetaResult<Vec<Uid>> {
        let (u, m, key) = (user.0, mailbox.0, key.clone());
        self.read(move |r| {
            r.mbox(u, m)?;
            // The two flags with their own index are answered by it alone (SEARCH UNSEEN /
            // DELETED), without reading any message.
            match &key {
                SearchKey::NoFlag(f) if f.eq_ignore_ascii_case("\\Seen") => {
                    return Ok(read_uid_keys(&r.unseen, u, m)?
                        .into_iter()
                        .map(Uid)
                        .collect());
                }
                SearchKey::Flag(f) if f.eq_ignore_ascii_case("\\Deleted") => {
                    return Ok(read_uid_keys(&r.deleted, u, m)?
                        .into_iter()
                        .map(Uid)
                        .collect());
                }
                _ => {}
            }
            let with_index = search::needs_index(&key);
            // Trigrams every match holds narrow by the filters in one pass; otherwise the key's
            // own plan (flag postings, OR of needles) is followed.
            let narrowed = match search::required_grams(&key) {
                Some(grams) => Some(read_bloom_matches(&r.search_bloom, u, m, &grams)?),
                None => search::candidates(&key, &mut |p| match p {
                    Posting::Gram(g) => {
                        read_bloom_matches(&r.search_bloom, u, m, &BTreeSet::from([g]))
                    }
                    Posting::Unseen => read_uid_keys(&r.unseen, u, m),
                    Posting::Deleted => read_uid_keys(&r.deleted, u, m),
                })?,
            };
            let msgs = match narrowed {
                None => read_msgs_in(&r.messages, u, m, None)?,
                Some(uids) => {
                    let mut msgs = Vec::with_capacity(uids.len());
                    for uid in uids {
                        if let Some(msg) = read_msg(&r.messages, u, m, uid)? {
                            msgs.push((uid, msg));
                        }
                    }
                    msgs
                }
            };
            let mut out = Vec::new();
            for (uid, msg) in msgs {
                let index: Option<SearchIndex> = if with_index {
                    match read_bytes(&r.search_index, u, m, uid)? {
                        Some(b) => Some(decode(&b)?),
                        None => Some(SearchIndex::default()),
                    }
                } else {
                    None
                };
                let c = Candidate {
                    uid: Uid(uid),
                    modseq: ModSeq(msg.modseq),
                    flags: &msg.flags,
                    internal_date: msg.date,
                    size: msg.size,
                    index: index.as_ref(),
                };
                if search::matches(&key, &c) {
                    out.push(Uid(uid));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn search_indexed(
        &self,
        user: UserId,
        mailbox: MailboxId,
        key: &SearchKey,
        projection: &IndexProjection,
    ) -> MetaResult<Vec<IndexedMessage>> {
        let (u, m, key, projection) = (user.0, mailbox.0, key.clone(), projection.clone());
        self.read(move |r| {
            r.mbox(u, m)?;
            let mut out = Vec::new();
            for (uid, msg) in read_msgs_in(&r.messages, u, m, None)? {
                let index: SearchIndex = match read_bytes(&r.search_index, u, m, uid)? {
                    Some(b) => decode(&b)?,
                    None => SearchIndex::default(),
                };
                let c = Candidate {
                    uid: Uid(uid),
                    modseq: ModSeq(msg.modseq),
                    flags: &msg.flags,
                    internal_date: msg.date,
                    size: msg.size,
                    index: Some(&index),
                };
                if search::matches(&key, &c) {
                    out.push(IndexedMessage {
                        uid: Uid(uid),
                        size: msg.size,
                        internal_date: msg.date,
                        index: index.project(&projection),
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn changes_since(
        &self,
        user: UserId,
        mailbox: MailboxId,
        since: ModSeq,
    ) -> MetaResult<Changes> {
        let (u, m) = (user.0, mailbox.0);
        let changes = self
            .read(move |r| {
                let Some(row) = read_mbox(&r.mailboxes, u, m)? else {
                    return Ok(Some(gone_changes()));
                };
                if since.0 > row.highest_modseq {
                    // Ahead of the mailbox: handled below, in a write.
                    return Ok(None);
                }
                // Entries above the floor were never dropped: exact from there on.
                let log_trimmed = since.0 < row.vanished_floor;
                let mut changed = Vec::new();
                for uid in read_modseq_log(&r.by_modseq, u, m, since.0)? {
                    if let Some(msg) = read_msg(&r.messages, u, m, uid)? {
                        changed.push(msg.record(uid, None));
                    }
                }
                Ok(Some(Changes {
                    highest_modseq: ModSeq(row.highest_modseq),
                    uid_next: Uid(row.uid_next),
                    exists: row.exists,
                    changed,
                    vanished: read_modseq_log(&r.expunged, u, m, since.0)?
                        .into_iter()
                        .map(Uid)
                        .collect(),
                    mailbox_gone: false,
                    log_trimmed,
                }))
            })
            .await?;
        if let Some(changes) = changes {
            return Ok(changes);
        }
        // A MODSEQ above HIGHESTMODSEQ was never handed out by this mailbox: the caller's view
        // is of another history (a restored database, or a client's made-up value). As in
        // the Redis store: a new UIDVALIDITY, and the view ends.
        self.write(move |w| {
            let mut row = w.mbox(u, m)?;
            if since.0 > row.highest_modseq {
                w.revalidate(u, m, &mut row)?;
            }
            Ok(())
        })
        .await?;
        Ok(gone_changes())
    }

    async fn watch(&self, user: UserId) -> MetaResult<ChangeStream> {
        let rx = self.events.subscribe();
        let stream = futures::stream::unfold(rx, move |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(ev) if ev.user == user => return Some((ev, rx)),
                    Ok(_) => continue,
                    // Hints were dropped: tell the consumer to resync (it calls
                    // changes_since, the truth).
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        return Some((resync_hint(user), rx));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Ok(stream.boxed())
    }

    async fn set_account_quota(&self, user: UserId, limits: QuotaLimits) -> MetaResult<()> {
        AccountStore::set_quota(self, user, limits).await
    }

    async fn quota(&self, user: UserId) -> MetaResult<QuotaUsage> {
        let u = user.0;
        self.read(move |r| {
            if r.users.get(u).map_err(db_err)?.is_none() {
                return Err(MetaError::NotFound(format!("user {user}")));
            }
            read_usage(&r.quotas, &r.mailboxes, u)
        })
        .await
    }

    async fn get_metadata(
        &self,
        user: UserId,
        mailbox: Option<&str>,
        entries: &[String],
        depth: MetadataDepth,
    ) -> MetaResult<Vec<MetadataEntry>> {
        metadata::check_names(entries.iter().map(String::as_str))?;
        let name = mailbox.map(names::checked).transpose()?;
        let entries = entries.to_vec();
        let u = user.0;
        self.read(move |r| {
            let m = match &name {
                Some(name) => r.id_by_name(u, name)?,
                None => 0,
            };
            let mut out = BTreeMap::new();
            for requested in &entries {
                // Every descendant `requested/...` sorts below `requested0` ('0' follows '/').
                let end = format!("{requested}0");
                for item in r
                    .metadata
                    .range::<(u64, u64, &str)>((u, m, requested.as_str())..(u, m, end.as_str()))
                    .map_err(db_err)?
                {
                    let (k, v) = item.map_err(db_err)?;
                    let entry = k.value().2;
                    if depth.selects(requested, entry) {
                        out.insert(entry.to_string(), v.value().to_vec());
                    }
                }
            }
            Ok(out
                .into_iter()
                .map(|(name, value)| MetadataEntry { name, value })
                .collect())
        })
        .await
    }

    async fn set_metadata(
        &self,
        user: UserId,
        mailbox: Option<&str>,
        entries: &[(String, Option<Vec<u8>>)],
        max_entries: u32,
    ) -> MetaResult<()> {
        metadata::check_names(entries.iter().map(|(n, _)| n.as_str()))?;
        let name = mailbox.map(names::checked).transpose()?;
        let entries = entries.to_vec();
        let (u, limits) = (user.0, self.limits);
        self.write_user(user, move |w| {
            let m = match &name {
                Some(name) => w.id_by_name_req(u, name)?,
                None => 0,
            };
            let mut added = false;
            // Bytes (name and value) written minus bytes removed, for the account's budget.
            let mut delta: i64 = 0;
            for (entry, value) in &entries {
                let old = match value {
                    Some(v) => w
                        .metadata
                        .insert((u, m, entry.as_str()), v.as_slice())
                        .map_err(db_err)?
                        .map(|old| old.value().len()),
                    None => w
                        .metadata
                        .remove((u, m, entry.as_str()))
                        .map_err(db_err)?
                        .map(|old| old.value().len()),
                };
                added |= value.is_some() && old.is_none();
                let now = value.as_ref().map_or(0, |v| entry.len() + v.len());
                delta += now as i64 - old.map_or(0, |o| entry.len() + o) as i64;
            }
            // Only growth is refused: with a lowered limit, removing entries still works.
            // Returning an error drops the transaction: nothing was written.
            if added {
                let mut count = 0u64;
                for item in w
                    .metadata
                    .range::<(u64, u64, &str)>((u, m, "")..(u, m + 1, ""))
                    .map_err(db_err)?
                {
                    item.map_err(db_err)?;
                    count += 1;
                }
                if count > u64::from(max_entries) {
                    return Err(metadata::too_many(max_entries));
                }
            }
            let held = w.metadata_bytes_of(u)?;
            let now = held.saturating_add_signed(delta);
            if delta > 0 && now > limits.max_metadata_bytes_per_account {
                return Err(limits.too_much_metadata());
            }
            w.set_metadata_bytes(u, now)
        })
        .await
    }

    async fn claim_recent(
        &self,
        user: UserId,
        mailbox: MailboxId,
        up_to: Uid,
    ) -> MetaResult<UidRange> {
        let (u, m) = (user.0, mailbox.0);
        // Most claims find nothing new (every SELECT asks): a read answers those, so they do
        // not queue behind other writes for a commit that changes nothing. A claim that races
        // a concurrent one is then ordered before it, which is all the mark promises.
        let nothing_new = self
            .read(move |r| {
                let row = r.mbox(u, m)?;
                let to = row.recent_from.max(up_to.0.min(row.uid_next));
                Ok((to == row.recent_from).then_some(row.recent_from))
            })
            .await?;
        if let Some(mark) = nothing_new {
            return Ok(UidRange {
                from: Uid(mark),
                to: Uid(mark),
            });
        }
        self.write_user(user, move |w| {
            let mut row = w.mbox(u, m)?;
            // The mark never moves back (a UID is claimed once) nor past UIDNEXT (a UID not
            // assigned yet belongs to whoever announces it first).
            let from = row.recent_from;
            let to = from.max(up_to.0.min(row.uid_next));
            if to != from {
                row.recent_from = to;
                w.put_mbox(u, m, &row)?;
            }
            Ok(UidRange {
                from: Uid(from),
                to: Uid(to),
            })
        })
        .await
    }
}

/// The answer of `changes_since` when the caller's view of a mailbox has ended.
fn gone_changes() -> Changes {
    Changes {
        highest_modseq: ModSeq(0),
        uid_next: Uid(0),
        exists: 0,
        changed: Vec::new(),
        vanished: Vec::new(),
        mailbox_gone: true,
        log_trimmed: false,
    }
}

/// The hint sent when hints may have been lost: mailbox 0 (no mailbox has it), modseq 0, kind
/// `MailboxList`, which makes a consumer re-read its mailbox list and selected mailbox.
pub(crate) fn resync_hint(user: UserId) -> ChangeEvent {
    ChangeEvent {
        user,
        mailbox: MailboxId(0),
        modseq: ModSeq(0),
        kind: ChangeKind::MailboxList,
        published_unix_micros: 0,
    }
}

#[async_trait]
impl AccountStore for EmbeddedStore {
    async fn create_user(&self, name: &str, password_hash: &str) -> MetaResult<UserRecord> {
        let name = normalize_login(name)?;
        let hash = password_hash.to_string();
        self.write(move |w| {
            if w.user_names.get(name.as_str()).map_err(db_err)?.is_some() {
                return Err(MetaError::AlreadyExists(format!("user {name}")));
            }
            let id = w
                .meta
                .get("next_user_id")
                .map_err(db_err)?
                .map_or(0, |g| g.value())
                + 1;
            w.meta.insert("next_user_id", id).map_err(db_err)?;
            let row = UserRow {
                name: name.clone(),
                password_hash: hash.clone(),
                disabled: false,
            };
            w.users
                .insert(id, encode(&row)?.as_slice())
                .map_err(db_err)?;
            w.user_names.insert(name.as_str(), id).map_err(db_err)?;
            w.put_usage(id, &QuotaUsage::default())?;
            w.id_by_name(id, INBOX)?;
            Ok(UserRecord {
                id: UserId(id),
                name,
                password_hash: hash,
                disabled: false,
            })
        })
        .await
    }

    async fn user_by_name(&self, name: &str) -> MetaResult<Option<UserRecord>> {
        let name = yubin_meta_api::normalize_login_name(name);
        self.read(
            move |r| match r.user_names.get(name.as_str()).map_err(db_err)? {
                Some(g) => r.user(g.value()),
                None => Ok(None),
            },
        )
        .await
    }

    async fn set_password_hash(&self, user: UserId, password_hash: &str) -> MetaResult<()> {
        let hash = password_hash.to_string();
        self.write(move |w| {
            let mut row: UserRow = match w.users.get(user.0).map_err(db_err)? {
                Some(g) => decode(g.value())?,
                None => return Err(MetaError::NotFound(format!("user {user}"))),
            };
            row.password_hash = hash;
            w.users
                .insert(user.0, encode(&row)?.as_slice())
                .map_err(db_err)?;
            // Sessions opened with the old password end on every node.
            w.emit(user.0, 0, 0, ChangeKind::AccountRevoked);
            Ok(())
        })
        .await
    }

    async fn list_users(&self) -> MetaResult<Vec<UserRecord>> {
        self.read(|r| {
            let mut out = Vec::new();
            for item in r.users.iter().map_err(db_err)? {
                let (k, _) = item.map_err(db_err)?;
                if let Some(u) = r.user(k.value())? {
                    out.push(u);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn list_users_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> MetaResult<Vec<UserRecord>> {
        let after = after.map(str::to_lowercase);
        self.read(move |r| {
            let start = match &after {
                Some(a) => Bound::Excluded(a.as_str()),
                None => Bound::Unbounded,
            };
            let mut out = Vec::new();
            for item in r
                .user_names
                .range::<&str>((start, Bound::Unbounded))
                .map_err(db_err)?
                .take(limit)
            {
                let (_, id) = item.map_err(db_err)?;
                if let Some(u) = r.user(id.value())? {
                    out.push(u);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn user_by_id(&self, user: UserId) -> MetaResult<Option<UserRecord>> {
        self.read(move |r| r.user(user.0)).await
    }

    async fn set_disabled(&self, user: UserId, disabled: bool) -> MetaResult<()> {
        self.write(move |w| {
            let mut row = w.user_row(user.0)?;
            row.disabled = disabled;
            if disabled {
                // A disabled account's sessions end on every node.
                w.emit(user.0, 0, 0, ChangeKind::AccountRevoked);
            }
            w.put_user_row(user.0, &row)
        })
        .await
    }

    async fn delete_user(&self, user: UserId) -> MetaResult<()> {
        let u = user.0;
        // One write transaction: the account is either entirely there or entirely gone.
        self.write(move |w| {
            let row = w.user_row(u)?;
            let mut boxes = Vec::new();
            for item in w
                .mailbox_names
                .range::<(u64, &str)>((u, "")..(u + 1, ""))
                .map_err(db_err)?
            {
                let (k, v) = item.map_err(db_err)?;
                boxes.push((k.value().1.to_string(), v.value()));
            }
            for (name, id) in &boxes {
                let highest = w.mbox(u, *id)?.highest_modseq;
                w.drop_mailbox(u, *id, name)?;
                // Sessions still open on the account learn their mailboxes are gone.
                w.emit(u, *id, highest, ChangeKind::MailboxList);
            }
            let mut addresses = Vec::new();
            for item in w
                .user_aliases
                .range::<(u64, &str)>((u, "")..(u + 1, ""))
                .map_err(db_err)?
            {
                addresses.push(item.map_err(db_err)?.0.value().1.to_string());
            }
            for a in &addresses {
                w.aliases.remove(a.as_str()).map_err(db_err)?;
                w.user_aliases.remove((u, a.as_str())).map_err(db_err)?;
            }
            w.subscriptions
                .retain_in::<(u64, &str), _>((u, "")..(u + 1, ""), |_, _| false)
                .map_err(db_err)?;
            // The account's server entries (its mailboxes' went with them above).
            w.forget_metadata(u, 0)?;
            w.metadata_bytes.remove(u).map_err(db_err)?;
            w.user_names.remove(row.name.as_str()).map_err(db_err)?;
            w.users.remove(u).map_err(db_err)?;
            w.user_seq.remove(u).map_err(db_err)?;
            w.quotas.remove(u).map_err(db_err)?;
            w.deleted_users.insert(u, 1).map_err(db_err)?;
            w.emit(u, 0, 0, ChangeKind::AccountRevoked);
            Ok(())
        })
        .await
    }

    async fn set_quota(&self, user: UserId, limits: QuotaLimits) -> MetaResult<()> {
        let u = user.0;
        self.write(move |w| {
            w.user_row(u)?;
            let mut usage = w.usage(u)?;
            usage.limits = limits;
            w.put_usage(u, &usage)
        })
        .await
    }

    async fn put_alias(&self, alias: &Alias) -> MetaResult<()> {
        let address = normalize_address(&alias.address)?;
        let target = alias.target.0;
        self.write(move |w| {
            w.user_row(target)?;
            if w.user_names
                .get(address.as_str())
                .map_err(db_err)?
                .is_some()
            {
                return Err(MetaError::AlreadyExists(format!("account {address}")));
            }
            let previous = w
                .aliases
                .insert(address.as_str(), target)
                .map_err(db_err)?
                .map(|g| g.value());
            if let Some(old) = previous.filter(|old| *old != target) {
                w.user_aliases
                    .remove((old, address.as_str()))
                    .map_err(db_err)?;
            }
            w.user_aliases
                .insert((target, address.as_str()), 0)
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn delete_alias(&self, address: &str) -> MetaResult<()> {
        let address = address.trim().to_lowercase();
        self.write(move |w| {
            let target = w
                .aliases
                .remove(address.as_str())
                .map_err(db_err)?
                .map(|g| g.value())
                .ok_or_else(|| MetaError::NotFound(format!("alias {address}")))?;
            w.user_aliases
                .remove((target, address.as_str()))
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn list_aliases(&self) -> MetaResult<Vec<Alias>> {
        self.read(|r| {
            let mut out = Vec::new();
            for item in r.aliases.iter().map_err(db_err)? {
                let (k, v) = item.map_err(db_err)?;
                out.push(Alias {
                    address: k.value().to_string(),
                    target: UserId(v.value()),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn put_domain(&self, domain: &Domain) -> MetaResult<()> {
        let name = normalize_domain(&domain.name)?;
        let alias_of = domain
            .alias_of
            .as_deref()
            .map(normalize_domain)
            .transpose()?;
        self.write(move |w| {
            let mut all = Vec::new();
            for item in w.domains.iter().map_err(db_err)? {
                let (k, v) = item.map_err(db_err)?;
                all.push((k.value().to_string(), v.value().to_string()));
            }
            check_domain(&all, &name, alias_of.as_deref())?;
            w.domains
                .insert(name.as_str(), alias_of.as_deref().unwrap_or(""))
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn delete_domain(&self, name: &str) -> MetaResult<()> {
        let name = name.trim().to_ascii_lowercase();
        self.write(move |w| {
            let mut aliased_by = None;
            for item in w.domains.iter().map_err(db_err)? {
                let (k, v) = item.map_err(db_err)?;
                if v.value() == name {
                    aliased_by = Some(k.value().to_string());
                }
            }
            if let Some(alias) = aliased_by {
                return Err(MetaError::Invalid(format!(
                    "domain {name} is the target of alias domain {alias}; delete that first"
                )));
            }
            if w.domains.remove(name.as_str()).map_err(db_err)?.is_none() {
                return Err(MetaError::NotFound(format!("domain {name}")));
            }
            Ok(())
        })
        .await
    }

    async fn list_domains(&self) -> MetaResult<Vec<Domain>> {
        self.read(|r| {
            let mut out = Vec::new();
            for item in r.domains.iter().map_err(db_err)? {
                let (k, v) = item.map_err(db_err)?;
                out.push(Domain {
                    name: k.value().to_string(),
                    alias_of: Some(v.value().to_string()).filter(|a| !a.is_empty()),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn resolve_address(&self, address: &str) -> MetaResult<Option<UserId>> {
        accounts::resolve(self, address).await
    }
}

#[async_trait]
impl AddressBook for EmbeddedStore {
    async fn account(&self, name: &str) -> MetaResult<Option<(UserId, bool)>> {
        let name = name.to_string();
        self.read(
            move |r| match r.user_names.get(name.as_str()).map_err(db_err)? {
                Some(g) => Ok(r.user(g.value())?.map(|u| (u.id, u.disabled))),
                None => Ok(None),
            },
        )
        .await
    }

    async fn alias(&self, address: &str) -> MetaResult<Option<(UserId, bool)>> {
        let address = address.to_string();
        self.read(
            move |r| match r.aliases.get(address.as_str()).map_err(db_err)? {
                // An alias whose account vanished resolves to nothing, like a disabled one.
                Some(g) => Ok(Some(
                    r.user(g.value())?
                        .map_or((UserId(g.value()), true), |u| (u.id, u.disabled)),
                )),
                None => Ok(None),
            },
        )
        .await
    }

    async fn domain(&self, name: &str) -> MetaResult<Option<Option<String>>> {
        let name = name.to_string();
        self.read(move |r| {
            Ok(r.domains
                .get(name.as_str())
                .map_err(db_err)?
                .map(|g| Some(g.value().to_string()).filter(|a| !a.is_empty())))
        })
        .await
    }

    async fn has_domains(&self) -> MetaResult<bool> {
        self.read(|r| Ok(r.domains.first().map_err(db_err)?.is_some()))
            .await
    }
}

/// Login names are case-insensitive and stored lower-cased (see `UserRecord::name`).
pub(crate) fn normalize_login(name: &str) -> MetaResult<String> {
    let n = yubin_meta_api::normalize_login_name(name);
    if n.is_empty() || n.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(MetaError::Invalid(format!("invalid user name {name:?}")));
    }
    Ok(n)
}
