//! The Redis backend: the distributed metadata store behind `yubin meta`.
//!
//! # Key layout
//!
//! Every key of user `<id>` starts with the hash tag `{u:<id>}`, so all of one user's keys live
//! in one Redis Cluster slot and every operation on them is one Lua script (atomic, one round
//! trip). Only account management and address lookup touch the global keys.
//!
//! | key | type | content |
//! |---|---|---|
//! | `users` | hash | lower-cased login name → user id (global) |
//! | `users:next_id` | string | last user id handed out (global counter) |
//! | `users:by_name` | sorted set | every login name, score 0: lexical order for paging (global) |
//! | `aliases` | hash | lower-cased address → user id (global) |
//! | `domains` | hash | lower-cased domain → the domain it is an alias of, or `""` (global) |
//! | `thr:{<kind>:<hash>}` | string | failed logins of one login name (`n`), name and client address (`p`) or client address (`a`), hashed; expires a failure window after the last one (meta's login throttling, shared by its replicas) |
//! | `{u:<id>}:user` | hash | `name`, `password_hash`, `disabled` |
//! | `{u:<id>}:gone` | string | tombstone of a deleted account: every per-user script refuses the id (kept; ids are never reused) |
//! | `{u:<id>}:quota` | hash | usage `storage` (bytes), `messages`; limits `storage_limit`, `message_limit` (`""` = none) |
//! | `{u:<id>}:aliases` | set | the addresses aliased to the account (dropped with it) |
//! | `{u:<id>}:seq` | hash | `mailbox` (last mailbox id), `uidvalidity` (last UIDVALIDITY) |
//! | `{u:<id>}:mailboxes` | hash | mailbox name → mailbox id |
//! | `{u:<id>}:subs` | set | subscribed names (they outlive mailboxes) |
//! | `{u:<id>}:mb:<m>` | hash | `name`, `uidvalidity`, `uidnext`, `highestmodseq`, `exists`, `unseen`, `deleted`, `size`, `specialuse`, `recent` (first UID not claimed as `\Recent`; absent = 1) |
//! | `{u:<id>}:uids:<m>` | sorted set | uid scored by uid: the UID set, sequence number = rank + 1 |
//! | `{u:<id>}:flags:<m>` | hash | uid → flags, space-separated |
//! | `{u:<id>}:msg:<m>` | hash | uid → `<unix-seconds> <tz-minutes> <size> <blob key>` |
//! | `{u:<id>}:sum:<m>` | hash | uid → summary bytes (ENVELOPE, BODYSTRUCTURE, offsets) |
//! | `{u:<id>}:idx:<m>` | hash | the full-text index's queue: uid → search text (JSON) or `@<m> <uid>` (a copy of an indexed message), for messages not yet in the index (see `crate::fulltext`) |
//! | `{u:<id>}:modseq:<m>` | sorted set | uid scored by its MODSEQ (CONDSTORE catch-up) |
//! | `{u:<id>}:expunged:<m>` | sorted set | expunged uid scored by the MODSEQ of its expunge (QRESYNC VANISHED, RFC 7162 §3.2.10), at most `max_expunge_log` entries; the mailbox's `vanished_floor` is the highest MODSEQ dropped from it |
//! | `{u:<id>}:unseen:<m>` | sorted set | uids without `\Seen` (first unseen in O(log n)) |
//! | `{u:<id>}:deleted:<m>` | sorted set | uids with `\Deleted` (EXPUNGE touches only those) |
//! | `{u:<id>}:kw:<m>` | hash | lower-cased keyword → keyword, every keyword ever used (FLAGS) |
//! | `{u:<id>}:ix` | hash | `gen`: the committed full-text index generation (the index itself is outside Redis) |
//! | `{u:<id>}:ixdel` | list | what the index must forget: `<m> <uid>` (expunged) or `<m> *` (deleted mailbox) |
//! | `{u:<id>}:ixlease` | string | the indexer working on the account (token; expires) |
//! | `{u:<id>}:g:<m>:<gram>`, `{u:<id>}:gl:<m>`, `{u:<id>}:ug:<m>` | set, hash, set | search postings of releases that kept the index in Redis; removed by the indexer (`index_migrate`) |
//! | `{u:<id>}:md:<m>` | hash | METADATA entry name → value (RFC 5464); `<m>` = 0 for the server entries |
//! | `{u:<id>}:mdbytes` | string | bytes of every `md:<m>` hash of the account (names and values), against `max_metadata_bytes_per_account` |
//!
//! Change hints are published on channel `ev:{u:<id>}` by the writing script itself, as
//! `<mailbox> <modseq> <kind> <published>` with kind `a` (appended), `f` (flags), `e` (expunged)
//! or `l` (mailbox list or subscriptions; mailbox 0 for subscriptions), or `r` (account revoked:
//! disabled, deleted or its password changed; mailbox and modseq 0) and the publish time in
//! microseconds since the epoch by Redis' clock (`TIME`), for the notification-lag metric.
//!
//! MODSEQs are stored as sorted-set scores (doubles), exact up to 2^53; UIDs are 32-bit.
//! Scripts receive `{u:<id>}:mailboxes` as their only declared key (it routes them to the
//! user's slot) and build the other key names from the prefix: all in the same slot. Redis
//! Cluster checks only declared keys against the node's slots; accessing undeclared keys is
//! outside the documented contract for scripts ("all keys must be passed in KEYS"), but works
//! in practice as long as they hash to the script's slot, which the shared `{u:<id>}` tag
//! guarantees. A per-user script never touches a global key: those are read and written by
//! single-key commands, or by scripts that declare exactly that one global key (`lua/global_*`).
//!
//! Operations spanning an account and a global key cannot be one atomic step on a cluster, so
//! they are ordered to be safe at every point: `create_user` writes the account's keys before
//! taking the name; `delete_user` disables the account first (no login, no delivery), then
//! frees the name and the aliases, then drops the account's keys — a crash midway leaves a
//! disabled account or unreachable keys under an id that is never reused, never a usable
//! half-deleted account.
//!
//! # Cluster
//!
//! [`RedisStore::connect_cluster`] runs the same code on a Redis Cluster connection. Change
//! hints are then sharded: scripts SPUBLISH to `ev:{u:<id>}`, which shares the user's hash tag
//! and so the script's slot (SPUBLISH inside a script is allowed for a channel of the script's
//! slot); the hub SSUBSCRIBEs on the node owning that slot. A plain PUBLISH would be broadcast
//! over the cluster bus to every node.

mod call;
mod durability;
mod failures;
mod hub;
mod observe;
mod rollback;
mod scan;
mod snapshot;
mod text;

pub use durability::Durability;
pub use rollback::RollbackSettings;

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, Script, Value};
use yubin_meta_api::{
    AccountStore, Alias, AppendResult, BlobKey, ChangeStream, Changes, CopyResult, Domain, FlagOp,
    IndexProjection, IndexedMessage, InternalDate, MailStore, MailboxId, MailboxInfo,
    MailboxSnapshot, MessageRecord, MetaError, MetaResult, MetadataDepth, MetadataEntry, ModSeq,
    NewMessage, QuotaLimits, QuotaUsage, SearchKey, SpecialUse, StoreResult, Uid, UidRange, UidSet,
    UidValidity, UserId, UserRecord, is_system_flag,
};

use crate::accounts::{self, AddressBook, normalize_address, normalize_domain};
use crate::embedded::normalize_login;
use crate::names::{self, INBOX};
use crate::search;
use crate::{StoreLimits, flags, metadata};
use call::Call;

const PRELUDE: &str = include_str!("lua/prelude.lua");

/// Every script, with the shared prelude prepended; loaded on first use (EVALSHA, falling back
/// to EVAL when the server does not know the script, e.g. after a restart).
struct Scripts {
    list: Script,
    status: Script,
    select: Script,
    create: Script,
    delete: Script,
    rename: Script,
    subscribe: Script,
    append: Script,
    fetch: Script,
    search: Script,
    search_texts: Script,
    store: Script,
    copy: Script,
    expunge: Script,
    changes: Script,
    user_create: Script,
    user_drop: Script,
    user_password: Script,
    user_disable: Script,
    user_alias: Script,
    quota: Script,
    quota_set: Script,
    claim_recent: Script,
    metadata_get: Script,
    metadata_set: Script,
    revalidate: Script,
    global_unname: Script,
    global_unalias: Script,
    global_domain_put: Script,
    global_domain_delete: Script,
    failure_add: Script,
    index_claim: Script,
    index_commit: Script,
    index_migrate: Script,
}

/// A script: which publish command to use (`PUBLISH`, or `SPUBLISH` for sharded pub/sub on a
/// cluster), the store's limits, the prelude, then the body. The limits are part of the script
/// text rather than arguments so that every script sees them without a change to its ARGV
/// layout; stores with other limits load other scripts (another SHA).
fn script(publish: &str, limits: &StoreLimits, body: &str) -> Script {
    Script::new(&format!(
        "local PUBLISH_CMD = '{publish}'\n\
         local MAX_KEYWORDS_PER_MESSAGE = {}\n\
         local MAX_KEYWORDS_PER_MAILBOX = {}\n\
         local MAX_MAILBOXES = {}\n\
         local MAX_METADATA_BYTES = {}\n\
         local MAX_EXPUNGE_LOG = {}\n\
         {PRELUDE}\n{body}",
        limits.max_keywords_per_message,
        limits.max_keywords_per_mailbox,
        limits.max_mailboxes,
        limits.max_metadata_bytes_per_account,
        limits.max_expunge_log
    ))
}

impl Scripts {
    fn new(publish: &str, limits: &StoreLimits) -> Scripts {
        let script = |body| script(publish, limits, body);
        let scripts = Scripts {
            list: script(include_str!("lua/list.lua")),
            status: script(include_str!("lua/status.lua")),
            select: script(include_str!("lua/select.lua")),
            create: script(include_str!("lua/create.lua")),
            delete: script(include_str!("lua/delete.lua")),
            rename: script(include_str!("lua/rename.lua")),
            subscribe: script(include_str!("lua/subscribe.lua")),
            append: script(include_str!("lua/append.lua")),
            fetch: script(include_str!("lua/fetch.lua")),
            search: script(include_str!("lua/search.lua")),
            search_texts: script(include_str!("lua/search_texts.lua")),
            store: script(include_str!("lua/store.lua")),
            copy: script(include_str!("lua/copy.lua")),
            expunge: script(include_str!("lua/expunge.lua")),
            changes: script(include_str!("lua/changes.lua")),
            user_create: script(include_str!("lua/user_create.lua")),
            user_drop: script(include_str!("lua/user_drop.lua")),
            user_password: script(include_str!("lua/user_password.lua")),
            user_disable: script(include_str!("lua/user_disable.lua")),
            user_alias: script(include_str!("lua/user_alias.lua")),
            quota: script(include_str!("lua/quota.lua")),
            quota_set: script(include_str!("lua/quota_set.lua")),
            claim_recent: script(include_str!("lua/claim_recent.lua")),
            metadata_get: script(include_str!("lua/metadata_get.lua")),
            metadata_set: script(include_str!("lua/metadata_set.lua")),
            revalidate: script(include_str!("lua/revalidate.lua")),
            // Scripts on one global key: no user prefix, no prelude.
            global_unname: Script::new(include_str!("lua/global_unname.lua")),
            global_unalias: Script::new(include_str!("lua/global_unalias.lua")),
            global_domain_put: Script::new(include_str!("lua/global_domain_put.lua")),
            global_domain_delete: Script::new(include_str!("lua/global_domain_delete.lua")),
            failure_add: Script::new(include_str!("lua/failure_add.lua")),
            index_claim: script(include_str!("lua/index_claim.lua")),
            index_commit: script(include_str!("lua/index_commit.lua")),
            index_migrate: script(include_str!("lua/index_migrate.lua")),
        };
        scripts.name_for_observe();
        scripts
    }

    /// Names every script for the Redis metrics and spans (see `observe`). The destructuring
    /// is exhaustive so that a script added to [`Scripts`] cannot be left unnamed.
    fn name_for_observe(&self) {
        let Scripts {
            list,
            status,
            select,
            create,
            delete,
            rename,
            subscribe,
            append,
            fetch,
            search,
            search_texts,
            store,
            copy,
            expunge,
            changes,
            user_create,
            user_drop,
            user_password,
            user_disable,
            user_alias,
            quota,
            quota_set,
            claim_recent,
            metadata_get,
            metadata_set,
            revalidate,
            global_unname,
            global_unalias,
            global_domain_put,
            global_domain_delete,
            failure_add,
            index_claim,
            index_commit,
            index_migrate,
        } = self;
        for (name, script) in [
            ("list", list),
            ("status", status),
            ("select", select),
            ("create", create),
            ("delete", delete),
            ("rename", rename),
            ("subscribe", subscribe),
            ("append", append),
            ("fetch", fetch),
            ("search", search),
            ("search_texts", search_texts),
            ("store", store),
            ("copy", copy),
            ("expunge", expunge),
            ("changes", changes),
            ("user_create", user_create),
            ("user_drop", user_drop),
            ("user_password", user_password),
            ("user_disable", user_disable),
            ("user_alias", user_alias),
            ("quota", quota),
            ("quota_set", quota_set),
            ("claim_recent", claim_recent),
            ("metadata_get", metadata_get),
            ("metadata_set", metadata_set),
            ("revalidate", revalidate),
            ("global_unname", global_unname),
            ("global_unalias", global_unalias),
            ("global_domain_put", global_domain_put),
            ("global_domain_delete", global_domain_delete),
            ("failure_add", failure_add),
            ("index_claim", index_claim),
            ("index_commit", index_commit),
            ("index_migrate", index_migrate),
        ] {
            observe::register_script(script.get_hash(), name);
        }
    }
}

/// The command connection: one server, or a Redis Cluster. Every operation is written once
/// against [`ConnectionLike`]; the cluster connection routes each command by its first key
/// (scripts by their one declared key, `{u:<id>}:mailboxes`), follows `-MOVED`/`-ASK`
/// redirections and refreshes the slot map by itself.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        // Every command and script of the store passes here: time it, count failures, span it.
        let call = match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        };
        observe::observe(observe::operation(cmd), call)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let operation = cmd
            .cmd_iter()
            .next()
            .map_or("pipeline".into(), observe::operation);
        let call = match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        };
        observe::observe_pipeline(operation, call)
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The global keys (see the module documentation).
const USERS: &str = "users";
const USERS_BY_NAME: &str = "users:by_name";
const ALIASES: &str = "aliases";
const DOMAINS: &str = "domains";

/// How many per-user reads `list_users` keeps in flight at once.
const LIST_USERS_CONCURRENCY: usize = 64;

/// The Redis-backed store. Cheap to clone; clones share the connection and the pub/sub hub.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    scripts: Arc<Scripts>,
    hub: hub::Hub,
    /// The publish command the scripts use, kept to rebuild them with other limits.
    publish: &'static str,
    limits: StoreLimits,
    durability: Durability,
    /// The highest UIDNEXT / HIGHESTMODSEQ returned per mailbox (see `rollback`).
    high_water: rollback::HighWater,
    /// Held by every clone; the failover watch ends when the last one is dropped.
    alive: Arc<()>,
    /// SELECT snapshots of larger mailboxes carry no flags (see `snapshot`).
    snapshot_flags_max: usize,
    /// Bytes of queued search text one SEARCH script call reads at most (see `scan`).
    search_text_step_bytes: usize,
    /// The full-text index SEARCH answers text keys from, and its indexer's wake-up (see
    /// `crate::fulltext`); without it every message stays queued and is searched from its
    /// queued text.
    full_text: Option<crate::fulltext::FullText>,
}

/// Maps a Redis error to the caller's class: script verdicts to their `MetaError`, anything
/// about reaching the server to `Unavailable` (retryable), the rest to `Internal`.
pub(crate) fn redis_err(e: RedisError) -> MetaError {
    let detail = e.detail().unwrap_or_default().to_string();
    match e.code() {
        Some("YNOTFOUND") => return MetaError::NotFound(detail),
        Some("YEXISTS") => return MetaError::AlreadyExists(detail),
        Some("YINVALID") => return MetaError::Invalid(detail),
        Some("YOVERQUOTA") => return MetaError::OverQuota(detail),
        Some("YLIMIT") => return MetaError::Limit(detail),
        _ => {}
    }
    let unavailable = e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            ErrorKind::BusyLoadingError
                | ErrorKind::TryAgain
                | ErrorKind::ClusterDown
                | ErrorKind::MasterDown
                | ErrorKind::ReadOnly
                | ErrorKind::ClusterConnectionNotFound
        );
    if unavailable {
        MetaError::Unavailable(format!("redis: {e}"))
    } else {
        MetaError::Internal(format!("redis: {e}"))
    }
}

fn bad_reply(what: &str) -> MetaError {
    MetaError::Internal(format!("unexpected redis reply: {what}"))
}

fn v_bytes(v: Value) -> MetaResult<Vec<u8>> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        Value::Int(i) => Ok(i.to_string().into_bytes()),
        Value::Nil => Ok(Vec::new()),
        other => Err(bad_reply(&format!("{other:?} where a string was expected"))),
    }
}

fn v_string(v: Value) -> MetaResult<String> {
    String::from_utf8(v_bytes(v)?).map_err(|_| bad_reply("non-UTF-8 string"))
}

fn v_num<T: FromStr>(v: Value) -> MetaResult<T> {
    let s = v_string(v)?;
    s.parse()
        .map_err(|_| bad_reply(&format!("{s:?} where a number was expected")))
}

fn v_array(v: Value) -> MetaResult<Vec<Value>> {
    match v {
        Value::Array(a) | Value::Set(a) => Ok(a),
        Value::Nil => Ok(Vec::new()),
        other => Err(bad_reply(&format!("{other:?} where an array was expected"))),
    }
}

/// Takes the next value of a reply array.
fn next(it: &mut impl Iterator<Item = Value>) -> MetaResult<Value> {
    it.next().ok_or_else(|| bad_reply("reply too short"))
}

fn prefix(user: UserId) -> String {
    format!("{{u:{}}}:", user.0)
}

fn anchor(user: UserId) -> String {
    format!("{{u:{}}}:mailboxes", user.0)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn encode_record(m: &NewMessage) -> String {
    format!(
        "{} {} {} {}",
        m.internal_date.unix_seconds,
        m.internal_date.tz_offset_minutes,
        m.size,
        m.blob.as_str()
    )
}

struct Record {
    date: InternalDate,
    size: u64,
    blob: BlobKey,
}

fn decode_record(s: &str) -> MetaResult<Record> {
    let mut parts = s.splitn(4, ' ');
    let mut field = || {
        parts
            .next()
            .ok_or_else(|| bad_reply("short message record"))
    };
    let unix_seconds = field()?.parse().map_err(|_| bad_reply("message date"))?;
    let tz_offset_minutes = field()?.parse().map_err(|_| bad_reply("message zone"))?;
    let size = field()?.parse().map_err(|_| bad_reply("message size"))?;
    let blob = BlobKey(field()?.to_string());
    Ok(Record {
        date: InternalDate {
            unix_seconds,
            tz_offset_minutes,
        },
        size,
        blob,
    })
}

fn split_flags(s: &str) -> Vec<String> {
    s.split_ascii_whitespace().map(str::to_string).collect()
}

/// `[id, name, uidvalidity, uidnext, highestmodseq, exists, unseen, deleted, size, specialuse,
/// recent]`
fn parse_info(v: Value) -> MetaResult<MailboxInfo> {
    let mut it = v_array(v)?.into_iter();
    Ok(MailboxInfo {
        id: MailboxId(v_num(next(&mut it)?)?),
        name: v_string(next(&mut it)?)?,
        uid_validity: UidValidity(v_num(next(&mut it)?)?),
        uid_next: Uid(v_num(next(&mut it)?)?),
        highest_modseq: ModSeq(v_num(next(&mut it)?)?),
        exists: v_num(next(&mut it)?)?,
        unseen: v_num(next(&mut it)?)?,
        deleted: v_num(next(&mut it)?)?,
        size: v_num(next(&mut it)?)?,
        special_use: SpecialUse::from_imap(&v_string(next(&mut it)?)?),
        recent: v_num(next(&mut it)?)?,
    })
}

/// One message of a flat `uid, flags, record, modseq[, extra]` reply.
struct Row {
    uid: Uid,
    flags: Vec<String>,
    record: Record,
    modseq: ModSeq,
    extra: Option<Vec<u8>>,
}

impl Row {
    fn into_record(self, summary: bool) -> MessageRecord {
        MessageRecord {
            uid: self.uid,
            modseq: self.modseq,
            flags: self.flags,
            internal_date: self.record.date,
            size: self.record.size,
            blob: self.record.blob,
            summary: if summary {
                Some(Bytes::from(self.extra.unwrap_or_default()))
            } else {
                None
            },
        }
    }
}

fn parse_rows(v: Value, with_extra: bool) -> MetaResult<Vec<Row>> {
    let mut it = v_array(v)?.into_iter();
    let mut out = Vec::new();
    while let Some(uid) = it.next() {
        let uid = Uid(v_num(uid)?);
        let flags = split_flags(&v_string(next(&mut it)?)?);
        let record = decode_record(&v_string(next(&mut it)?)?)?;
        let modseq = ModSeq(v_num(next(&mut it)?)?);
        let extra = if with_extra {
            Some(v_bytes(next(&mut it)?)?)
        } else {
            None
        };
        out.push(Row {
            uid,
            flags,
            record,
            modseq,
            extra,
        });
    }
    Ok(out)
}

fn parse_uids(v: Value) -> MetaResult<Vec<Uid>> {
    v_array(v)?.into_iter().map(|u| v_num(u).map(Uid)).collect()
}

/// Adds one store script reply `{ highestmodseq, { uid, modseq, flags ... }, { modified ... },
/// last }` to `result`; returns `last`, the UID to go on above (0: done).
fn parse_store_batch(reply: Value, result: &mut StoreResult) -> MetaResult<u32> {
    let mut it = v_array(reply)?.into_iter();
    result.highest_modseq = ModSeq(v_num(next(&mut it)?)?);
    let mut flat = v_array(next(&mut it)?)?.into_iter();
    while let Some(uid) = flat.next() {
        let uid = Uid(v_num(uid)?);
        let modseq = ModSeq(v_num(next(&mut flat)?)?);
        let flags = split_flags(&v_string(next(&mut flat)?)?);
        result.updated.push((uid, modseq, flags));
    }
    result.modified.extend(parse_uids(next(&mut it)?)?);
    v_num(next(&mut it)?)
}

/// The part of `set` above `last`: where a batched script goes on.
fn uids_above(set: &UidSet, last: u32) -> UidSet {
    UidSet::from_ranges(
        set.ranges()
            .iter()
            .filter(|&&(_, hi)| hi > last)
            .map(|&(lo, hi)| (lo.max(last + 1), hi)),
    )
}

fn push_ranges(inv: &mut Call<'_>, set: &UidSet) {
    for &(lo, hi) in set.ranges() {
        inv.arg(lo).arg(hi);
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db`, `rediss://…`, `redis+unix://…`). The command
    /// connection reconnects by itself; the pub/sub connection for [`MailStore::watch`] is
    /// managed by a background task.
    pub async fn connect(url: &str) -> MetaResult<RedisStore> {
        let client = redis::Client::open(url)
            .map_err(|e| MetaError::Invalid(format!("redis url {url:?}: {e}")))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(5))
            .set_response_timeout(Duration::from_secs(30))
            .set_number_of_retries(3)
            .set_max_delay(2_000);
        let conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(redis_err)?;
        Ok(RedisStore {
            conn: Conn::Single(conn),
            scripts: Arc::new(Scripts::new("PUBLISH", &StoreLimits::default())),
            publish: "PUBLISH",
            limits: StoreLimits::default(),
            durability: Durability::default(),
            high_water: rollback::HighWater::new(RollbackSettings::default().high_water_mailboxes),
            alive: Arc::new(()),
            snapshot_flags_max: snapshot::SNAPSHOT_FLAGS_MAX_MESSAGES,
            search_text_step_bytes: scan::SEARCH_TEXT_STEP_BYTES,
            full_text: None,
            hub: hub::Hub::start(client),
        })
    }

    /// Connects to a Redis Cluster through any of the seed `nodes` (`redis://host:port`); the
    /// rest of the topology is discovered with `CLUSTER SLOTS` and followed as it changes.
    ///
    /// Every user's keys share the hash tag `{u:<id>}` (one slot), so each operation is one
    /// single-slot command or script; the two global keys (`users`, `users:next_id`) are only
    /// ever touched by single-key commands. Change hints use sharded pub/sub (SPUBLISH /
    /// SSUBSCRIBE, Redis 7), so a hint travels only within the shard owning the user's slot.
    pub async fn connect_cluster(nodes: &[String]) -> MetaResult<RedisStore> {
        if nodes.is_empty() {
            return Err(MetaError::Invalid("no redis cluster nodes given".into()));
        }
        let cluster = ClusterClient::builder(nodes.iter().map(String::as_str))
            .connection_timeout(Duration::from_secs(5))
            .response_timeout(Duration::from_secs(30))
            .retries(3)
            .build()
            .map_err(|e| MetaError::Invalid(format!("redis cluster nodes {nodes:?}: {e}")))?;
        let conn = cluster.get_async_connection().await.map_err(redis_err)?;
        let seed = nodes[0]
            .as_str()
            .into_connection_info()
            .map_err(|e| MetaError::Invalid(format!("redis url {:?}: {e}", nodes[0])))?;
        Ok(RedisStore {
            conn: Conn::Cluster(conn.clone()),
            scripts: Arc::new(Scripts::new("SPUBLISH", &StoreLimits::default())),
            publish: "SPUBLISH",
            limits: StoreLimits::default(),
            durability: Durability::default(),
            high_water: rollback::HighWater::new(RollbackSettings::default().high_water_mailboxes),
            alive: Arc::new(()),
            snapshot_flags_max: snapshot::SNAPSHOT_FLAGS_MAX_MESSAGES,
            search_text_step_bytes: scan::SEARCH_TEXT_STEP_BYTES,
            full_text: None,
            hub: hub::Hub::start_sharded(conn, seed),
        })
    }

    /// The same store with rollback detection tuned by `settings`, and its failover watch
    /// started (see `rollback`). Without it the marks are kept with the default capacity but
    /// the server's identity is not watched.
    pub fn with_rollback(mut self, settings: RollbackSettings) -> RedisStore {
        self.high_water = rollback::HighWater::new(settings.high_water_mailboxes);
        self.watch_identity(settings.identity_check);
        self
    }

    /// The same store sending flags in SELECT snapshots only of mailboxes of at most `max`
    /// messages (default 20 000).
    pub fn with_snapshot_flags_max_messages(mut self, max: usize) -> RedisStore {
        self.snapshot_flags_max = max;
        self
    }

    /// The same store reading at most `bytes` of queued search text per script call when a
    /// SEARCH meets messages the indexer has not reached (default 1 MiB; always at least one
    /// message's text).
    pub fn with_search_text_step_bytes(mut self, bytes: usize) -> RedisStore {
        self.search_text_step_bytes = bytes;
        self
    }

    /// The same store enforcing `limits` instead of the defaults.
    pub fn with_limits(mut self, limits: StoreLimits) -> RedisStore {
        self.scripts = Arc::new(Scripts::new(self.publish, &limits));
        self.limits = limits;
        self
    }

    /// Round trip to the server, for the readiness probe (on a cluster, PING goes to every
    /// primary and succeeds only if all answer).
    pub async fn ping(&self) -> MetaResult<()> {
        let mut c = self.conn.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    /// Whether the server persists data (AOF on, or RDB snapshots configured), for meta's
    /// start-up warning. On a cluster CONFIG GET goes to one node: nodes of one deployment
    /// are expected to share their configuration.
    pub async fn persistence_enabled(&self) -> MetaResult<bool> {
        let mut c = self.conn.clone();
        let aof: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendonly")
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        let save: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("save")
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        let aof_on = aof.get(1).is_some_and(|v| v == "yes");
        let rdb_on = save.get(1).is_some_and(|v| !v.trim().is_empty());
        Ok(aof_on || rdb_on)
    }

    /// Refuses a server that may evict keys under memory pressure: an evicted mailbox or UID
    /// counter would silently lose mail or hand out UIDs again. Every `allkeys-*` policy evicts
    /// any key; `volatile-*` ones evict only keys with a TTL, and the store sets none, but a
    /// key given a TTL by hand would go, and a `volatile-*` policy with no candidate answers
    /// writes with OOM exactly like `noeviction`: so only `noeviction` is accepted.
    ///
    /// Read from `INFO memory` (managed services often disable `CONFIG`). `Ok(None)` when the
    /// server does not report the policy; on a cluster, every primary is asked.
    pub async fn eviction_policy(&self) -> MetaResult<Option<String>> {
        let mut c = self.conn.clone();
        let infos: Vec<String> = match &mut c {
            Conn::Single(s) => vec![
                redis::cmd("INFO")
                    .arg("memory")
                    .query_async(s)
                    .await
                    .map_err(redis_err)?,
            ],
            Conn::Cluster(cl) => {
                use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
                let v = cl
                    .route_command(
                        redis::cmd("INFO").arg("memory"),
                        RoutingInfo::MultiNode((
                            MultipleNodeRoutingInfo::AllMasters,
                            // No policy: one reply per node, keyed by its address.
                            None,
                        )),
                    )
                    .await
                    .map_err(redis_err)?;
                match v {
                    Value::Map(m) => m
                        .into_iter()
                        .map(|(_, v)| v_string(v))
                        .collect::<MetaResult<_>>()?,
                    Value::Array(a) => a.into_iter().map(v_string).collect::<MetaResult<_>>()?,
                    other => vec![v_string(other)?],
                }
            }
        };
        let mut policy = None;
        for info in infos {
            let found = info
                .lines()
                .find_map(|l| l.strip_prefix("maxmemory_policy:"))
                .map(|p| p.trim().to_string());
            match found {
                // The worst one decides: any node that evicts is refused.
                Some(p) if p != "noeviction" => return Ok(Some(p)),
                Some(p) => policy = Some(p),
                None => return Ok(None),
            }
        }
        Ok(policy)
    }

    /// `Err` unless the server's eviction policy is `noeviction` (see [`Self::eviction_policy`]);
    /// `assume_noeviction` accepts a server that does not report it.
    pub async fn check_eviction_policy(&self, assume_noeviction: bool) -> MetaResult<()> {
        match self.eviction_policy().await?.as_deref() {
            Some("noeviction") => Ok(()),
            Some(other) => Err(MetaError::Invalid(format!(
                "redis maxmemory-policy is {other}: it may evict mail metadata (mailboxes, UID \
                 counters) under memory pressure; set maxmemory-policy noeviction"
            ))),
            None if assume_noeviction => {
                tracing::warn!(
                    "redis does not report its maxmemory-policy; trusting \
                     redis_assume_noeviction that it is noeviction"
                );
                Ok(())
            }
            None => Err(MetaError::Invalid(
                "redis does not report its maxmemory-policy (INFO memory); make sure it is \
                 noeviction and set redis_assume_noeviction"
                    .into(),
            )),
        }
    }

    /// Runs a script that writes: acknowledged once the configured replicas have it (see
    /// `durability`).
    async fn invoke(&self, call: &Call<'_>) -> MetaResult<Value> {
        let cmd = call.evalsha();
        match self.send_write(&cmd).await {
            // The server does not know the script (first use, restart, failover): load it
            // (on a cluster, into every primary) and send the write again.
            Err(e) if e.kind() == ErrorKind::NoScriptError => {
                let mut c = self.conn.clone();
                call.script.load_async(&mut c).await.map_err(redis_err)?;
                self.send_write(&cmd).await.map_err(redis_err)?
            }
            other => other.map_err(redis_err)?,
        }
    }

    /// Runs a script that only reads (or writes nothing a client relies on): no WAIT.
    async fn invoke_read(&self, call: &Call<'_>) -> MetaResult<Value> {
        let cmd = call.evalsha();
        let mut c = self.conn.clone();
        match cmd.query_async(&mut c).await {
            Err(e) if e.kind() == ErrorKind::NoScriptError => {
                call.script.load_async(&mut c).await.map_err(redis_err)?;
                cmd.query_async(&mut c).await.map_err(redis_err)
            }
            other => other.map_err(redis_err),
        }
    }

    /// Sends one write command (see [`Self::send_write`]).
    async fn write(&self, cmd: &Cmd) -> MetaResult<Value> {
        self.send_write(cmd).await.map_err(redis_err)?
    }

    /// Sends one write command; with [`Durability`] on, in one pipeline with its WAIT (same
    /// connection; on a cluster, the node of the command's first key). The outer error is the
    /// command's (or the connection's), the inner one a WAIT that too few replicas answered.
    async fn send_write(&self, cmd: &Cmd) -> Result<MetaResult<Value>, RedisError> {
        let mut c = self.conn.clone();
        if !self.durability.enabled() {
            return cmd.query_async(&mut c).await.map(Ok);
        }
        let mut pipe = redis::pipe();
        pipe.add_command(cmd.clone())
            .add_command(self.durability.command());
        let mut replies = c.req_packed_commands(&pipe, 0, 2).await?.into_iter();
        let (Some(reply), Some(wait)) = (replies.next(), replies.next()) else {
            return Ok(Err(bad_reply("pipeline of a write and WAIT too short")));
        };
        let reply = reply.extract_error()?;
        let wait = wait.extract_error()?;
        Ok(self.durability.check(wait).map(|()| reply))
    }

    /// [`Self::write`] for a plain command, converting its reply.
    async fn write_as<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> MetaResult<T> {
        let v = self.write(cmd).await?;
        redis::from_redis_value(&v).map_err(redis_err)
    }

    /// The same store acknowledging writes only as `durability` requires.
    pub fn with_durability(mut self, durability: Durability) -> RedisStore {
        self.durability = durability;
        self
    }

    /// A script invocation for `user`: routed by the user's anchor key, prefix as ARGV[1].
    fn call<'a>(&self, script: &'a Script, user: UserId) -> Call<'a> {
        let mut inv = Call::new(script);
        inv.key(anchor(user)).arg(prefix(user));
        inv
    }

    async fn user_record(&self, id: u64) -> MetaResult<Option<UserRecord>> {
        let mut c = self.conn.clone();
        let v: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(format!("{{u:{id}}}:user"))
            .arg("name")
            .arg("password_hash")
            .arg("disabled")
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        Ok(user_from_fields(id, v))
    }
}

fn user_from_fields(id: u64, v: Vec<Option<String>>) -> Option<UserRecord> {
    let mut it = v.into_iter();
    let name = it.next().flatten()?;
    let password_hash = it.next().flatten().unwrap_or_default();
    let disabled = it.next().flatten().is_some_and(|d| d == "1");
    Some(UserRecord {
        id: UserId(id),
        name,
        password_hash,
        disabled,
    })
}

/// The high-water view of a mailbox answer.
fn mark_of(info: &MailboxInfo) -> rollback::Mark {
    rollback::Mark {
        uid_validity: info.uid_validity,
        uid_next: info.uid_next,
        highest_modseq: info.highest_modseq,
    }
}

/// The store operations whose answers the high-water marks check (see `rollback`), as read
/// or written once.
impl RedisStore {
    async fn list_once(&self, user: UserId) -> MetaResult<Vec<MailboxInfo>> {
        let mut inv = self.call(&self.scripts.list, user);
        inv.arg(now_secs());
        let mut out = v_array(self.invoke_read(&inv).await?)?
            .into_iter()
            .map(parse_info)
            .collect::<MetaResult<Vec<_>>>()?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn status_once(&self, user: UserId, name: &str) -> MetaResult<MailboxInfo> {
        let mut inv = self.call(&self.scripts.status, user);
        inv.arg(now_secs()).arg(name);
        parse_info(self.invoke_read(&inv).await?)
    }

    async fn select_once(&self, user: UserId, name: &str) -> MetaResult<MailboxSnapshot> {
        let mut inv = self.call(&self.scripts.select, user);
        inv.arg(now_secs()).arg(name).arg(self.snapshot_flags_max);
        snapshot::parse_snapshot(self.invoke_read(&inv).await?, &self.limits)
    }

    async fn append_once(
        &self,
        user: UserId,
        mailbox: &str,
        messages: Vec<NewMessage>,
    ) -> MetaResult<AppendResult> {
        let name = names::checked(mailbox)?;
        // Checked here for the Lua script: the embedded store does the same, before writing.
        for m in &messages {
            m.check_owner(user)?;
        }
        let mut inv = self.call(&self.scripts.append, user);
        inv.arg(now_secs()).arg(&name).arg(messages.len());
        for m in &messages {
            let flags = flags::normalize(&m.flags)?;
            self.limits.check_given(&flags)?;
            let flags = flags.join(" ");
            let index = crate::fulltext::encode_queued(&m.index)?;
            inv.arg(flags)
                .arg(encode_record(m))
                .arg(&m.summary[..])
                .arg(index);
        }
        let mut it = v_array(self.invoke(&inv).await?)?.into_iter();
        let uid_validity = UidValidity(v_num(next(&mut it)?)?);
        let mailbox = MailboxId(v_num(next(&mut it)?)?);
        let uids = it.map(|u| v_num(u).map(Uid)).collect::<MetaResult<_>>()?;
        Ok(AppendResult {
            uid_validity,
            uids,
            mailbox,
        })
    }

    async fn copy_once(
        &self,
        user: UserId,
        source: MailboxId,
        uids: &UidSet,
        destination: &str,
        remove_source: bool,
    ) -> MetaResult<CopyResult> {
        let name = names::checked(destination)?;
        let mut inv = self.call(&self.scripts.copy, user);
        inv.arg(source.0)
            .arg(now_secs())
            .arg(&name)
            .arg(if remove_source { "1" } else { "0" });
        push_ranges(&mut inv, uids);
        let mut it = v_array(self.invoke(&inv).await?)?.into_iter();
        let uid_validity = UidValidity(v_num(next(&mut it)?)?);
        let destination = MailboxId(v_num(next(&mut it)?)?);
        let flat = parse_uids(next(&mut it)?)?;
        let mapping = flat.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        Ok(CopyResult {
            uid_validity,
            mapping,
            destination,
        })
    }
}

#[async_trait]
impl MailStore for RedisStore {
    async fn list_mailboxes(&self, user: UserId) -> MetaResult<Vec<MailboxInfo>> {
        let mut out = self.list_once(user).await?;
        let mut moved = false;
        for info in &out {
            moved |= self.guard(user, info.id, mark_of(info)).await?.is_some();
        }
        if moved {
            // Read again: the moved mailboxes now answer with their new UIDVALIDITY.
            out = self.list_once(user).await?;
        }
        Ok(out)
    }

    async fn list_subscriptions(&self, user: UserId) -> MetaResult<Vec<String>> {
        let mut c = self.conn.clone();
        let mut v: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{}subs", prefix(user)))
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        v.sort();
        Ok(v)
    }

    async fn set_subscribed(&self, user: UserId, name: &str, subscribed: bool) -> MetaResult<()> {
        let name = names::checked(name)?;
        let mut inv = self.call(&self.scripts.subscribe, user);
        inv.arg(&name).arg(if subscribed { "1" } else { "0" });
        self.invoke(&inv).await.map(|_| ())
    }

    async fn create_mailbox(
        &self,
        user: UserId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> MetaResult<MailboxInfo> {
        let name = names::for_create(name)?;
        let mut inv = self.call(&self.scripts.create, user);
        inv.arg(now_secs())
            .arg(&name)
            .arg(special_use.map_or("", SpecialUse::as_imap));
        parse_info(self.invoke(&inv).await?)
    }

    async fn delete_mailbox(&self, user: UserId, name: &str) -> MetaResult<()> {
        let name = names::checked(name)?;
        if name == INBOX {
            return Err(MetaError::Invalid("INBOX cannot be deleted".into()));
        }
        let mut inv = self.call(&self.scripts.delete, user);
        inv.arg(&name);
        self.invoke(&inv).await?;
        self.nudge_indexer(user);
        Ok(())
    }

    async fn rename_mailbox(&self, user: UserId, from: &str, to: &str) -> MetaResult<()> {
        let from = names::checked(from)?;
        let to = names::checked(to)?;
        if to == from || names::is_inferior(&to, &from) {
            return Err(MetaError::Invalid(format!(
                "cannot rename {from} to {to}: a mailbox cannot become its own inferior"
            )));
        }
        let mut inv = self.call(&self.scripts.rename, user);
        inv.arg(now_secs()).arg(&from).arg(&to);
        self.invoke(&inv).await.map(|_| ())
    }

    async fn mailbox_status(&self, user: UserId, name: &str) -> MetaResult<MailboxInfo> {
        let name = names::checked(name)?;
        let info = self.status_once(user, &name).await?;
        if self.guard(user, info.id, mark_of(&info)).await?.is_some() {
            return self.status_once(user, &name).await;
        }
        Ok(info)
    }

    async fn select(&self, user: UserId, name: &str) -> MetaResult<MailboxSnapshot> {
        let name = names::checked(name)?;
        let snapshot = self.select_once(user, &name).await?;
        let info = &snapshot.info;
        if self.guard(user, info.id, mark_of(info)).await?.is_some() {
            return self.select_once(user, &name).await;
        }
        Ok(snapshot)
    }

    async fn append(
        &self,
        user: UserId,
        mailbox: &str,
        messages: Vec<NewMessage>,
    ) -> MetaResult<AppendResult> {
        let mut result = self.append_once(user, mailbox, messages).await?;
        self.nudge_indexer(user);
        result.uid_validity = self
            .validity_after_write(
                user,
                result.mailbox,
                result.uid_validity,
                result.uids.last(),
            )
            .await?;
        Ok(result)
    }

    async fn copy_messages(
        &self,
        user: UserId,
        source: MailboxId,
        uids: &UidSet,
        destination: &str,
        remove_source: bool,
    ) -> MetaResult<CopyResult> {
        let mut result = self
            .copy_once(user, source, uids, destination, remove_source)
            .await?;
        self.nudge_indexer(user);
        let last = result.mapping.last().map(|(_, to)| to);
        result.uid_validity = self
            .validity_after_write(user, result.destination, result.uid_validity, last)
            .await?;
        Ok(result)
    }

    async fn fetch(
        &self,
        user: UserId,
        mailbox: MailboxId,
        uids: &UidSet,
        with_summary: bool,
    ) -> MetaResult<Vec<MessageRecord>> {
        let mut inv = self.call(&self.scripts.fetch, user);
        inv.arg(mailbox.0).arg(if with_summary { "1" } else { "0" });
        push_ranges(&mut inv, uids);
        Ok(parse_rows(self.invoke_read(&inv).await?, with_summary)?
            .into_iter()
            .map(|r| r.into_record(with_summary))
            .collect())
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
            // Refused before the script runs: this is the cheap, common rejection.
            self.limits.check_given(&given)?;
        }
        let op = match op {
            FlagOp::Add => "add",
            FlagOp::Remove => "remove",
            FlagOp::Replace => "replace",
        };
        let batch = |rest: &UidSet, mode: &str| {
            let mut inv = self.call(&self.scripts.store, user);
            inv.arg(mailbox.0)
                .arg(op)
                .arg(unchanged_since.map_or(String::new(), |m| m.0.to_string()))
                .arg(self.limits.redis_batch_messages)
                .arg(mode)
                .arg(given.len());
            for f in &given {
                inv.arg(f);
            }
            push_ranges(&mut inv, rest);
            inv
        };
        // The script handles a batch of messages per call, so that a STORE over a huge
        // mailbox never holds Redis (which cannot stop a script that has written) for long.
        // A STORE that can add keywords is checked batch by batch before any write: the
        // keyword limits refuse it as a whole (RFC 5530 [LIMIT]) rather than after some
        // batches were written. Its first call writes when the whole set fits in one batch
        // (the common case costs one call) and only checks otherwise. Only a concurrent change
        // between the check and the write can still make a later batch refuse, which leaves
        // the earlier ones stored; RFC 3501 §6.4.6 does not make STORE atomic across messages.
        let mut result = StoreResult {
            updated: Vec::new(),
            modified: Vec::new(),
            highest_modseq: ModSeq(0),
        };
        if op != "remove" && given.iter().any(|f| !is_system_flag(f)) {
            let last = parse_store_batch(self.invoke(&batch(uids, "2")).await?, &mut result)?;
            if last == 0 {
                return Ok(result);
            }
            let mut rest = uids_above(uids, last);
            loop {
                let mut checked = StoreResult {
                    updated: Vec::new(),
                    modified: Vec::new(),
                    highest_modseq: ModSeq(0),
                };
                // Mode 1 only checks the limits and writes nothing: no WAIT.
                let reply = self.invoke_read(&batch(&rest, "1")).await?;
                match parse_store_batch(reply, &mut checked)? {
                    0 => break,
                    last => rest = uids_above(&rest, last),
                }
            }
        }
        let mut rest = uids.clone();
        loop {
            match parse_store_batch(self.invoke(&batch(&rest, "0")).await?, &mut result)? {
                0 => return Ok(result),
                last => rest = uids_above(&rest, last),
            }
        }
    }

    async fn expunge(
        &self,
        user: UserId,
        mailbox: MailboxId,
        uids: Option<&UidSet>,
    ) -> MetaResult<Vec<Uid>> {
        let mut inv = self.call(&self.scripts.expunge, user);
        inv.arg(mailbox.0)
            .arg(if uids.is_some() { "1" } else { "0" });
        if let Some(set) = uids {
            push_ranges(&mut inv, set);
        }
        let expunged = parse_uids(self.invoke(&inv).await?)?;
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
        // The two flags with their own index answer without a scan (SEARCH UNSEEN / DELETED).
        let indexed = match key {
            SearchKey::NoFlag(f) if f.eq_ignore_ascii_case("\\Seen") => Some("unseen"),
            SearchKey::Flag(f) if f.eq_ignore_ascii_case("\\Deleted") => Some("deleted"),
            _ => None,
        };
        if let Some(mode) = indexed {
            return self.search_index_mode(user, mailbox, mode).await;
        }
        Ok(self
            .scan_matching(user, mailbox, key, search::needs(key))
            .await?
            .0
            .into_iter()
            .map(|m| m.uid)
            .collect())
    }

    async fn search_indexed(
        &self,
        user: UserId,
        mailbox: MailboxId,
        key: &SearchKey,
        projection: &IndexProjection,
    ) -> MetaResult<Vec<IndexedMessage>> {
        self.search_projected(user, mailbox, key, projection).await
    }

    async fn changes_since(
        &self,
        user: UserId,
        mailbox: MailboxId,
        since: ModSeq,
    ) -> MetaResult<Changes> {
        let mut inv = self.call(&self.scripts.changes, user);
        inv.arg(mailbox.0).arg(since.0).arg(now_secs());
        let mut it = v_array(self.invoke_read(&inv).await?)?.into_iter();
        if v_num::<u8>(next(&mut it)?)? == 0 {
            return Ok(Changes {
                highest_modseq: ModSeq(0),
                uid_next: Uid(0),
                exists: 0,
                changed: Vec::new(),
                vanished: Vec::new(),
                mailbox_gone: true,
                log_trimmed: false,
            });
        }
        let highest_modseq = ModSeq(v_num(next(&mut it)?)?);
        let uid_next = Uid(v_num(next(&mut it)?)?);
        let exists = v_num(next(&mut it)?)?;
        let mut changed: Vec<MessageRecord> = parse_rows(next(&mut it)?, false)?
            .into_iter()
            .map(|r| r.into_record(false))
            .collect();
        changed.sort_by_key(|m| m.uid);
        let mut vanished = parse_uids(next(&mut it)?)?;
        vanished.sort_unstable();
        let log_trimmed = v_num::<u8>(next(&mut it)?)? == 1;
        Ok(Changes {
            highest_modseq,
            uid_next,
            exists,
            changed,
            vanished,
            mailbox_gone: false,
            log_trimmed,
        })
    }

    async fn watch(&self, user: UserId) -> MetaResult<ChangeStream> {
        Ok(self.hub.watch(user).await)
    }

    async fn set_account_quota(&self, user: UserId, limits: QuotaLimits) -> MetaResult<()> {
        AccountStore::set_quota(self, user, limits).await
    }

    async fn quota(&self, user: UserId) -> MetaResult<QuotaUsage> {
        let inv = self.call(&self.scripts.quota, user);
        let mut it = v_array(self.invoke_read(&inv).await?)?.into_iter();
        let storage_bytes = v_num(next(&mut it)?)?;
        let messages = v_num(next(&mut it)?)?;
        let limit = |v: Value| -> MetaResult<Option<u64>> {
            let s = v_string(v)?;
            if s.is_empty() {
                Ok(None)
            } else {
                s.parse()
                    .map(Some)
                    .map_err(|_| bad_reply(&format!("quota limit {s:?}")))
            }
        };
        let limits = QuotaLimits {
            storage_bytes: limit(next(&mut it)?)?,
            messages: limit(next(&mut it)?)?,
        };
        Ok(QuotaUsage {
            limits,
            storage_bytes,
            messages,
        })
    }

    async fn claim_recent(
        &self,
        user: UserId,
        mailbox: MailboxId,
        up_to: Uid,
    ) -> MetaResult<UidRange> {
        let mut inv = self.call(&self.scripts.claim_recent, user);
        inv.arg(mailbox.0).arg(up_to.0);
        let mut it = v_array(self.invoke_read(&inv).await?)?.into_iter();
        Ok(UidRange {
            from: Uid(v_num(next(&mut it)?)?),
            to: Uid(v_num(next(&mut it)?)?),
        })
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
        let mut inv = self.call(&self.scripts.metadata_get, user);
        inv.arg(name.as_deref().unwrap_or(""));
        if depth == MetadataDepth::Zero {
            inv.arg("0");
            for e in entries {
                inv.arg(e);
            }
        } else {
            inv.arg("all");
        }
        let mut out = std::collections::BTreeMap::new();
        let mut it = v_array(self.invoke_read(&inv).await?)?.into_iter();
        while let Some(entry) = it.next() {
            let entry = v_string(entry)?;
            let value = v_bytes(next(&mut it)?)?;
            if entries.iter().any(|r| depth.selects(r, &entry)) {
                out.insert(entry, value);
            }
        }
        Ok(out
            .into_iter()
            .map(|(name, value)| MetadataEntry { name, value })
            .collect())
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
        let mut inv = self.call(&self.scripts.metadata_set, user);
        inv.arg(name.as_deref().unwrap_or("")).arg(max_entries);
        for (entry, value) in entries {
            match value {
                Some(v) => inv.arg(entry).arg("1").arg(v.as_slice()),
                None => inv.arg(entry).arg("0").arg(""),
            };
        }
        self.invoke(&inv).await.map(|_| ())
    }
}

#[async_trait]
impl AccountStore for RedisStore {
    async fn create_user(&self, name: &str, password_hash: &str) -> MetaResult<UserRecord> {
        let name = normalize_login(name)?;
        let mut c = self.conn.clone();
        let taken: Option<u64> = redis::cmd("HGET")
            .arg(USERS)
            .arg(&name)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        if taken.is_some() {
            return Err(MetaError::AlreadyExists(format!("user {name}")));
        }
        let id: u64 = self
            .write_as(redis::cmd("INCR").arg("users:next_id"))
            .await?;
        let user = UserId(id);
        // The account's own keys first, then the name: a crash in between leaves unreachable
        // keys under an unused id, never a name pointing at nothing.
        let mut inv = self.call(&self.scripts.user_create, user);
        inv.arg(now_secs()).arg(&name).arg(password_hash);
        self.invoke(&inv).await?;
        let won: bool = self
            .write_as(redis::cmd("HSETNX").arg(USERS).arg(&name).arg(id))
            .await?;
        if !won {
            let inv = self.call(&self.scripts.user_drop, user);
            self.invoke(&inv).await?;
            return Err(MetaError::AlreadyExists(format!("user {name}")));
        }
        let _: i64 = self
            .write_as(redis::cmd("ZADD").arg(USERS_BY_NAME).arg(0).arg(&name))
            .await?;
        Ok(UserRecord {
            id: user,
            name,
            password_hash: password_hash.to_string(),
            disabled: false,
        })
    }

    async fn user_by_name(&self, name: &str) -> MetaResult<Option<UserRecord>> {
        let mut c = self.conn.clone();
        let id: Option<u64> = redis::cmd("HGET")
            .arg(USERS)
            .arg(yubin_meta_api::normalize_login_name(name))
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        match id {
            Some(id) => self.user_record(id).await,
            None => Ok(None),
        }
    }

    async fn set_password_hash(&self, user: UserId, password_hash: &str) -> MetaResult<()> {
        let mut inv = self.call(&self.scripts.user_password, user);
        inv.arg(password_hash);
        self.invoke(&inv).await.map(|_| ())
    }

    async fn list_users(&self) -> MetaResult<Vec<UserRecord>> {
        let mut c = self.conn.clone();
        let index: Vec<(String, u64)> = redis::cmd("HGETALL")
            .arg(USERS)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        // One HMGET per user, many in flight: on a cluster the users' keys lie in different
        // slots, and a pipeline (or any multi-key command) across slots is refused, so no
        // batching by more than one user at a time.
        let ids: Vec<u64> = index.iter().map(|(_, id)| *id).collect();
        let conn = self.conn.clone();
        let fields: Vec<Vec<Option<String>>> = futures::stream::iter(ids)
            .map(|id| {
                let mut c = conn.clone();
                async move {
                    redis::cmd("HMGET")
                        .arg(format!("{{u:{id}}}:user"))
                        .arg("name")
                        .arg("password_hash")
                        .arg("disabled")
                        .query_async::<Vec<Option<String>>>(&mut c)
                        .await
                        .map_err(redis_err)
                }
            })
            .buffered(LIST_USERS_CONCURRENCY)
            .try_collect()
            .await?;
        let mut out: Vec<UserRecord> = index
            .iter()
            .zip(fields)
            .filter_map(|((_, id), f)| user_from_fields(*id, f))
            .collect();
        out.sort_by_key(|u| u.id);
        Ok(out)
    }

    async fn list_users_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> MetaResult<Vec<UserRecord>> {
        let mut c = self.conn.clone();
        self.index_names().await?;
        let mut cursor = after.map(str::to_lowercase);
        let mut out = Vec::with_capacity(limit.min(1024));
        // A name of a deleted account may linger in the index for a moment (the name is freed
        // before the index entry): such entries are skipped, so a page may need more reads.
        while out.len() < limit {
            let want = limit - out.len();
            let start = cursor.as_ref().map_or("-".to_string(), |a| format!("({a}"));
            let names: Vec<String> = redis::cmd("ZRANGEBYLEX")
                .arg(USERS_BY_NAME)
                .arg(&start)
                .arg("+")
                .arg("LIMIT")
                .arg(0)
                .arg(want)
                .query_async(&mut c)
                .await
                .map_err(redis_err)?;
            let exhausted = names.len() < want;
            let conn = self.conn.clone();
            let records: Vec<Option<UserRecord>> = futures::stream::iter(names.clone())
                .map(|name| {
                    let store = self.clone();
                    let mut c = conn.clone();
                    async move {
                        let id: Option<u64> = redis::cmd("HGET")
                            .arg(USERS)
                            .arg(&name)
                            .query_async(&mut c)
                            .await
                            .map_err(redis_err)?;
                        match id {
                            Some(id) => store.user_record(id).await,
                            None => Ok(None),
                        }
                    }
                })
                .buffered(LIST_USERS_CONCURRENCY)
                .try_collect()
                .await?;
            out.extend(records.into_iter().flatten());
            match names.last() {
                Some(last) if !exhausted => cursor = Some(last.clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn user_by_id(&self, user: UserId) -> MetaResult<Option<UserRecord>> {
        self.user_record(user.0).await
    }

    async fn set_disabled(&self, user: UserId, disabled: bool) -> MetaResult<()> {
        let mut inv = self.call(&self.scripts.user_disable, user);
        inv.arg(if disabled { "1" } else { "0" });
        self.invoke(&inv).await.map(|_| ())
    }

    async fn delete_user(&self, user: UserId) -> MetaResult<()> {
        // Ordered so that every intermediate state is safe (see the module documentation).
        let mut inv = self.call(&self.scripts.user_disable, user);
        inv.arg("1");
        let name = v_string(self.invoke(&inv).await?)?;
        let mut unname = Call::new(&self.scripts.global_unname);
        unname.key(USERS).arg(&name).arg(user.0);
        self.invoke(&unname).await?;
        let mut c = self.conn.clone();
        let _: i64 = self
            .write_as(redis::cmd("ZREM").arg(USERS_BY_NAME).arg(&name))
            .await?;
        let addresses: Vec<String> = redis::cmd("SMEMBERS")
            .arg(format!("{}aliases", prefix(user)))
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        if !addresses.is_empty() {
            let mut unalias = Call::new(&self.scripts.global_unalias);
            unalias.key(ALIASES).arg(user.0);
            for a in &addresses {
                unalias.arg(a);
            }
            self.invoke(&unalias).await?;
        }
        let drop = self.call(&self.scripts.user_drop, user);
        self.invoke(&drop).await?;
        // The account's index goes with it: locally and its published files.
        if let Some(ft) = &self.full_text {
            ft.indexes
                .drop_user(user)
                .await
                .map_err(crate::fulltext::index_err)?;
        }
        Ok(())
    }

    async fn set_quota(&self, user: UserId, limits: QuotaLimits) -> MetaResult<()> {
        let limit = |l: Option<u64>| l.map_or(String::new(), |v| v.to_string());
        let mut inv = self.call(&self.scripts.quota_set, user);
        inv.arg(limit(limits.storage_bytes))
            .arg(limit(limits.messages));
        self.invoke(&inv).await.map(|_| ())
    }

    async fn put_alias(&self, alias: &Alias) -> MetaResult<()> {
        let address = normalize_address(&alias.address)?;
        let mut c = self.conn.clone();
        let account: Option<u64> = redis::cmd("HGET")
            .arg(USERS)
            .arg(&address)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        if account.is_some() {
            return Err(MetaError::AlreadyExists(format!("account {address}")));
        }
        // The account's reverse entry first (it fails when the account does not exist), then
        // the global entry resolution reads.
        let mut inv = self.call(&self.scripts.user_alias, alias.target);
        inv.arg(&address).arg("1");
        self.invoke(&inv).await?;
        let previous: Option<u64> = redis::cmd("HGET")
            .arg(ALIASES)
            .arg(&address)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        let _: i64 = self
            .write_as(
                redis::cmd("HSET")
                    .arg(ALIASES)
                    .arg(&address)
                    .arg(alias.target.0),
            )
            .await?;
        if let Some(old) = previous.filter(|old| *old != alias.target.0) {
            let mut inv = self.call(&self.scripts.user_alias, UserId(old));
            inv.arg(&address).arg("0");
            self.invoke(&inv).await?;
        }
        Ok(())
    }

    async fn delete_alias(&self, address: &str) -> MetaResult<()> {
        let address = address.trim().to_lowercase();
        let mut c = self.conn.clone();
        let target: Option<u64> = redis::cmd("HGET")
            .arg(ALIASES)
            .arg(&address)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        let Some(target) = target else {
            return Err(MetaError::NotFound(format!("alias {address}")));
        };
        let mut unalias = Call::new(&self.scripts.global_unalias);
        unalias.key(ALIASES).arg(target).arg(&address);
        self.invoke(&unalias).await?;
        let mut inv = self.call(&self.scripts.user_alias, UserId(target));
        inv.arg(&address).arg("0");
        self.invoke(&inv).await.map(|_| ())
    }

    async fn list_aliases(&self) -> MetaResult<Vec<Alias>> {
        let mut c = self.conn.clone();
        let all: Vec<(String, u64)> = redis::cmd("HGETALL")
            .arg(ALIASES)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        let mut out: Vec<Alias> = all
            .into_iter()
            .map(|(address, id)| Alias {
                address,
                target: UserId(id),
            })
            .collect();
        out.sort_by(|a, b| a.address.cmp(&b.address));
        Ok(out)
    }

    async fn put_domain(&self, domain: &Domain) -> MetaResult<()> {
        let name = normalize_domain(&domain.name)?;
        let alias_of = domain
            .alias_of
            .as_deref()
            .map(normalize_domain)
            .transpose()?;
        let mut inv = Call::new(&self.scripts.global_domain_put);
        inv.key(DOMAINS)
            .arg(&name)
            .arg(alias_of.as_deref().unwrap_or(""));
        self.invoke(&inv).await.map(|_| ())
    }

    async fn delete_domain(&self, name: &str) -> MetaResult<()> {
        let mut inv = Call::new(&self.scripts.global_domain_delete);
        inv.key(DOMAINS).arg(name.trim().to_ascii_lowercase());
        self.invoke(&inv).await.map(|_| ())
    }

    async fn list_domains(&self) -> MetaResult<Vec<Domain>> {
        let mut c = self.conn.clone();
        let all: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(DOMAINS)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        let mut out: Vec<Domain> = all
            .into_iter()
            .map(|(name, alias_of)| Domain {
                name,
                alias_of: Some(alias_of).filter(|a| !a.is_empty()),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn resolve_address(&self, address: &str) -> MetaResult<Option<UserId>> {
        accounts::resolve(self, address).await
    }
}

impl RedisStore {
    /// Fills the paging index `users:by_name` from `users` when it holds fewer names (an
    /// installation from before the index, or a crash between taking a name and indexing it).
    async fn index_names(&self) -> MetaResult<()> {
        let mut c = self.conn.clone();
        let indexed: u64 = redis::cmd("ZCARD")
            .arg(USERS_BY_NAME)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        let named: u64 = redis::cmd("HLEN")
            .arg(USERS)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        if indexed >= named {
            return Ok(());
        }
        let names: Vec<String> = redis::cmd("HKEYS")
            .arg(USERS)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        for chunk in names.chunks(1000) {
            let mut cmd = redis::cmd("ZADD");
            cmd.arg(USERS_BY_NAME);
            for n in chunk {
                cmd.arg(0).arg(n);
            }
            let _: i64 = self.write_as(&cmd).await?;
        }
        Ok(())
    }

    /// The account `id` as (id, disabled), if it exists.
    async fn account_state(&self, id: u64) -> MetaResult<Option<(UserId, bool)>> {
        Ok(self.user_record(id).await?.map(|u| (u.id, u.disabled)))
    }
}

#[async_trait]
impl AddressBook for RedisStore {
    async fn account(&self, name: &str) -> MetaResult<Option<(UserId, bool)>> {
        let mut c = self.conn.clone();
        let id: Option<u64> = redis::cmd("HGET")
            .arg(USERS)
            .arg(name)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        match id {
            Some(id) => self.account_state(id).await,
            None => Ok(None),
        }
    }

    async fn alias(&self, address: &str) -> MetaResult<Option<(UserId, bool)>> {
        let mut c = self.conn.clone();
        let id: Option<u64> = redis::cmd("HGET")
            .arg(ALIASES)
            .arg(address)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        match id {
            // An alias whose account vanished resolves to nothing, like a disabled one.
            Some(id) => Ok(Some(
                self.account_state(id).await?.unwrap_or((UserId(id), true)),
            )),
            None => Ok(None),
        }
    }

    async fn domain(&self, name: &str) -> MetaResult<Option<Option<String>>> {
        let mut c = self.conn.clone();
        let v: Option<String> = redis::cmd("HGET")
            .arg(DOMAINS)
            .arg(name)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        Ok(v.map(|a| Some(a).filter(|a| !a.is_empty())))
    }

    async fn has_domains(&self) -> MetaResult<bool> {
        let mut c = self.conn.clone();
        let n: u64 = redis::cmd("HLEN")
            .arg(DOMAINS)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        Ok(n > 0)
    }
}
