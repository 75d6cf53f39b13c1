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

mod account_store;
mod call;
mod durability;
mod failures;
mod hub;
mod mail;
mod observe;
mod rollback;
mod scan;
mod scripts;
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
use scripts::Scripts;

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
