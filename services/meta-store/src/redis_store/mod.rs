//! The Redis backend: the distributed metadata store behind `yubin meta`.
//!
//! # Key layout
//!
//! Every key of user `<id>` starts with the hash tag `{u:<id>}`, so all of one user's keys live
//! in one Redis Cluster slot and every operation on them is one Lua script (atomic, one round
//! trip). Only account creation and lookup by name touch the two global keys.
//!
//! | key | type | content |
//! |---|---|---|
//! | `users` | hash | lower-cased login name → user id (global) |
//! | `users:next_id` | string | last user id handed out (global counter) |
//! | `{u:<id>}:user` | hash | `name`, `password_hash`, `disabled` |
//! | `{u:<id>}:seq` | hash | `mailbox` (last mailbox id), `uidvalidity` (last UIDVALIDITY) |
//! | `{u:<id>}:mailboxes` | hash | mailbox name → mailbox id |
//! | `{u:<id>}:subs` | set | subscribed names (they outlive mailboxes) |
//! | `{u:<id>}:mb:<m>` | hash | `name`, `uidvalidity`, `uidnext`, `highestmodseq`, `exists`, `unseen`, `deleted`, `size`, `specialuse` |
//! | `{u:<id>}:uids:<m>` | sorted set | uid scored by uid: the UID set, sequence number = rank + 1 |
//! | `{u:<id>}:flags:<m>` | hash | uid → flags, space-separated |
//! | `{u:<id>}:msg:<m>` | hash | uid → `<unix-seconds> <tz-minutes> <size> <blob key>` |
//! | `{u:<id>}:sum:<m>` | hash | uid → summary bytes (ENVELOPE, BODYSTRUCTURE, offsets) |
//! | `{u:<id>}:idx:<m>` | hash | uid → search index (JSON) |
//! | `{u:<id>}:modseq:<m>` | sorted set | uid scored by its MODSEQ (CONDSTORE catch-up) |
//! | `{u:<id>}:expunged:<m>` | sorted set | expunged uid scored by the MODSEQ of its expunge (QRESYNC VANISHED, RFC 7162 §3.2.10) |
//! | `{u:<id>}:unseen:<m>` | sorted set | uids without `\Seen` (first unseen in O(log n)) |
//! | `{u:<id>}:deleted:<m>` | sorted set | uids with `\Deleted` (EXPUNGE touches only those) |
//! | `{u:<id>}:kw:<m>` | hash | lower-cased keyword → keyword, every keyword ever used (FLAGS) |
//!
//! Change hints are published on channel `ev:{u:<id>}` by the writing script itself, as
//! `<mailbox> <modseq> <kind>` with kind `a` (appended), `f` (flags), `e` (expunged) or `l`
//! (mailbox list or subscriptions; mailbox 0 for subscriptions).
//!
//! MODSEQs are stored as sorted-set scores (doubles), exact up to 2^53; UIDs are 32-bit.
//! Scripts receive `{u:<id>}:mailboxes` as their only declared key (it routes them to the
//! user's slot) and build the other key names from the prefix: all in the same slot. Redis
//! Cluster checks only declared keys against the node's slots; accessing undeclared keys is
//! outside the documented contract for scripts ("all keys must be passed in KEYS"), but works
//! in practice as long as they hash to the script's slot, which the shared `{u:<id>}` tag
//! guarantees. On a cluster a script never touches a global key (`users`, `users:next_id`):
//! those are read and written by single-key commands outside scripts.
//!
//! # Cluster
//!
//! [`RedisStore::connect_cluster`] runs the same code on a Redis Cluster connection. Change
//! hints are then sharded: scripts SPUBLISH to `ev:{u:<id>}`, which shares the user's hash tag
//! and so the script's slot (SPUBLISH inside a script is allowed for a channel of the script's
//! slot); the hub SSUBSCRIBEs on the node owning that slot. A plain PUBLISH would be broadcast
//! over the cluster bus to every node.

mod hub;

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ErrorKind, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, Script,
    ScriptInvocation, Value,
};
use yubin_meta_api::{
    AccountStore, AppendResult, BlobKey, ChangeStream, Changes, CopyResult, FlagOp, InternalDate,
    MailStore, MailboxId, MailboxInfo, MailboxSnapshot, MessageRecord, MetaError, MetaResult,
    ModSeq, NewMessage, SearchIndex, SearchKey, SpecialUse, StoreResult, Uid, UidSet, UidValidity,
    UserId, UserRecord,
};

use crate::embedded::normalize_login;
use crate::flags;
use crate::names::{self, INBOX};
use crate::search::{self, Candidate};

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
    store: Script,
    copy: Script,
    expunge: Script,
    changes: Script,
    user_create: Script,
    user_drop: Script,
    user_password: Script,
}

/// A script: which publish command to use (`PUBLISH`, or `SPUBLISH` for sharded pub/sub on a
/// cluster), the prelude, then the body.
fn script(publish: &str, body: &str) -> Script {
    Script::new(&format!(
        "local PUBLISH_CMD = '{publish}'\n{PRELUDE}\n{body}"
    ))
}

impl Scripts {
    fn new(publish: &str) -> Scripts {
        let script = |body| script(publish, body);
        Scripts {
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
            store: script(include_str!("lua/store.lua")),
            copy: script(include_str!("lua/copy.lua")),
            expunge: script(include_str!("lua/expunge.lua")),
            changes: script(include_str!("lua/changes.lua")),
            user_create: script(include_str!("lua/user_create.lua")),
            user_drop: script(include_str!("lua/user_drop.lua")),
            user_password: script(include_str!("lua/user_password.lua")),
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
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// How many per-user reads `list_users` keeps in flight at once.
const LIST_USERS_CONCURRENCY: usize = 64;

/// The Redis-backed store. Cheap to clone; clones share the connection and the pub/sub hub.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    scripts: Arc<Scripts>,
    hub: hub::Hub,
}

/// Maps a Redis error to the caller's class: script verdicts to their `MetaError`, anything
/// about reaching the server to `Unavailable` (retryable), the rest to `Internal`.
pub(crate) fn redis_err(e: RedisError) -> MetaError {
    let detail = e.detail().unwrap_or_default().to_string();
    match e.code() {
        Some("YNOTFOUND") => return MetaError::NotFound(detail),
        Some("YEXISTS") => return MetaError::AlreadyExists(detail),
        Some("YINVALID") => return MetaError::Invalid(detail),
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

/// `[id, name, uidvalidity, uidnext, highestmodseq, exists, unseen, deleted, size, specialuse]`
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

fn push_ranges(inv: &mut ScriptInvocation<'_>, set: &UidSet) {
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
            scripts: Arc::new(Scripts::new("PUBLISH")),
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
            scripts: Arc::new(Scripts::new("SPUBLISH")),
            hub: hub::Hub::start_sharded(conn, seed),
        })
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

    async fn invoke(&self, inv: &ScriptInvocation<'_>) -> MetaResult<Value> {
        let mut c = self.conn.clone();
        inv.invoke_async(&mut c).await.map_err(redis_err)
    }

    /// A script invocation for `user`: routed by the user's anchor key, prefix as ARGV[1].
    fn call<'a>(&self, script: &'a Script, user: UserId) -> ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
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

#[async_trait]
impl MailStore for RedisStore {
    async fn list_mailboxes(&self, user: UserId) -> MetaResult<Vec<MailboxInfo>> {
        let mut inv = self.call(&self.scripts.list, user);
        inv.arg(now_secs());
        let mut out = v_array(self.invoke(&inv).await?)?
            .into_iter()
            .map(parse_info)
            .collect::<MetaResult<Vec<_>>>()?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
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
        self.invoke(&inv).await.map(|_| ())
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
        let mut inv = self.call(&self.scripts.status, user);
        inv.arg(now_secs()).arg(&name);
        parse_info(self.invoke(&inv).await?)
    }

    async fn select(&self, user: UserId, name: &str) -> MetaResult<MailboxSnapshot> {
        let name = names::checked(name)?;
        let mut inv = self.call(&self.scripts.select, user);
        inv.arg(now_secs()).arg(&name);
        let mut it = v_array(self.invoke(&inv).await?)?.into_iter();
        let info = parse_info(next(&mut it)?)?;
        let uids = parse_uids(next(&mut it)?)?;
        let first_unseen = match next(&mut it)? {
            Value::Nil => None,
            v => Some(Uid(v_num(v)?)),
        };
        let mut keywords = v_array(next(&mut it)?)?
            .into_iter()
            .map(v_string)
            .collect::<MetaResult<Vec<_>>>()?;
        keywords.sort();
        Ok(MailboxSnapshot {
            info,
            uids,
            first_unseen,
            keywords,
        })
    }

    async fn append(
        &self,
        user: UserId,
        mailbox: &str,
        messages: Vec<NewMessage>,
    ) -> MetaResult<AppendResult> {
        let name = names::checked(mailbox)?;
        let mut inv = self.call(&self.scripts.append, user);
        inv.arg(now_secs()).arg(&name).arg(messages.len());
        for m in &messages {
            let flags = flags::normalize(&m.flags)?.join(" ");
            let index = serde_json::to_vec(&m.index)
                .map_err(|e| MetaError::Internal(format!("encoding search index: {e}")))?;
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
        Ok(parse_rows(self.invoke(&inv).await?, with_summary)?
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
        let mut inv = self.call(&self.scripts.store, user);
        inv.arg(mailbox.0)
            .arg(match op {
                FlagOp::Add => "add",
                FlagOp::Remove => "remove",
                FlagOp::Replace => "replace",
            })
            .arg(unchanged_since.map_or(String::new(), |m| m.0.to_string()))
            .arg(given.len());
        for f in &given {
            inv.arg(f);
        }
        push_ranges(&mut inv, uids);
        let mut it = v_array(self.invoke(&inv).await?)?.into_iter();
        let highest_modseq = ModSeq(v_num(next(&mut it)?)?);
        let mut updated = Vec::new();
        let mut flat = v_array(next(&mut it)?)?.into_iter();
        while let Some(uid) = flat.next() {
            let uid = Uid(v_num(uid)?);
            let modseq = ModSeq(v_num(next(&mut flat)?)?);
            let flags = split_flags(&v_string(next(&mut flat)?)?);
            updated.push((uid, modseq, flags));
        }
        let modified = parse_uids(next(&mut it)?)?;
        Ok(StoreResult {
            updated,
            modified,
            highest_modseq,
        })
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
        parse_uids(self.invoke(&inv).await?)
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
        let need = search::needs(key);
        let bit = |b: bool| if b { "1" } else { "0" };
        let mut inv = self.call(&self.scripts.search, user);
        inv.arg(mailbox.0)
            .arg(indexed.unwrap_or("scan"))
            .arg(bit(need.flags))
            .arg(bit(need.record))
            .arg(bit(need.modseq))
            .arg(bit(need.index));
        let mut cols = v_array(self.invoke(&inv).await?)?.into_iter();
        let uids = parse_uids(next(&mut cols)?)?;
        if indexed.is_some() {
            return Ok(uids);
        }
        // Each column is absent (nil) or has one entry per UID.
        let mut column = |name: &str| -> MetaResult<Option<Vec<Value>>> {
            match cols.next() {
                None | Some(Value::Nil) => Ok(None),
                Some(v) => {
                    let c = v_array(v)?;
                    if c.len() == uids.len() {
                        Ok(Some(c))
                    } else {
                        Err(bad_reply(&format!(
                            "search column {name} has the wrong length"
                        )))
                    }
                }
            }
        };
        let flags = column("flags")?;
        let records = column("records")?;
        let modseqs = column("modseqs")?;
        let indexes = column("indexes")?;
        let (mut flags, mut records, mut modseqs, mut indexes) = (
            flags.map(Vec::into_iter),
            records.map(Vec::into_iter),
            modseqs.map(Vec::into_iter),
            indexes.map(Vec::into_iter),
        );
        let no_date = InternalDate {
            unix_seconds: 0,
            tz_offset_minutes: 0,
        };
        let mut out = Vec::new();
        for uid in uids {
            let flags = match flags.as_mut() {
                Some(it) => split_flags(&v_string(next(it)?)?),
                None => Vec::new(),
            };
            let (internal_date, size) = match records.as_mut() {
                Some(it) => {
                    let r = decode_record(&v_string(next(it)?)?)?;
                    (r.date, r.size)
                }
                None => (no_date, 0),
            };
            let modseq = match modseqs.as_mut() {
                Some(it) => ModSeq(v_num(next(it)?)?),
                None => ModSeq(0),
            };
            let index: Option<SearchIndex> = match indexes.as_mut() {
                Some(it) => {
                    let b = v_bytes(next(it)?)?;
                    if b.is_empty() {
                        Some(SearchIndex::default())
                    } else {
                        Some(serde_json::from_slice(&b).map_err(|e| {
                            MetaError::Internal(format!("corrupt search index of {uid}: {e}"))
                        })?)
                    }
                }
                None => None,
            };
            let c = Candidate {
                uid,
                modseq,
                flags: &flags,
                internal_date,
                size,
                index: index.as_ref(),
            };
            if search::matches(key, &c) {
                out.push(uid);
            }
        }
        Ok(out)
    }

    async fn changes_since(
        &self,
        user: UserId,
        mailbox: MailboxId,
        since: ModSeq,
    ) -> MetaResult<Changes> {
        let mut inv = self.call(&self.scripts.changes, user);
        inv.arg(mailbox.0).arg(since.0);
        let mut it = v_array(self.invoke(&inv).await?)?.into_iter();
        if v_num::<u8>(next(&mut it)?)? == 0 {
            return Ok(Changes {
                highest_modseq: ModSeq(0),
                uid_next: Uid(0),
                exists: 0,
                changed: Vec::new(),
                vanished: Vec::new(),
                mailbox_gone: true,
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
        Ok(Changes {
            highest_modseq,
            uid_next,
            exists,
            changed,
            vanished,
            mailbox_gone: false,
        })
    }

    async fn watch(&self, user: UserId) -> MetaResult<ChangeStream> {
        Ok(self.hub.watch(user).await)
    }
}

#[async_trait]
impl AccountStore for RedisStore {
    async fn create_user(&self, name: &str, password_hash: &str) -> MetaResult<UserRecord> {
        let name = normalize_login(name)?;
        let mut c = self.conn.clone();
        let taken: Option<u64> = redis::cmd("HGET")
            .arg("users")
            .arg(&name)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        if taken.is_some() {
            return Err(MetaError::AlreadyExists(format!("user {name}")));
        }
        let id: u64 = redis::cmd("INCR")
            .arg("users:next_id")
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        let user = UserId(id);
        // The account's own keys first, then the name: a crash in between leaves unreachable
        // keys under an unused id, never a name pointing at nothing.
        let mut inv = self.call(&self.scripts.user_create, user);
        inv.arg(now_secs()).arg(&name).arg(password_hash);
        self.invoke(&inv).await?;
        let won: bool = redis::cmd("HSETNX")
            .arg("users")
            .arg(&name)
            .arg(id)
            .query_async(&mut c)
            .await
            .map_err(redis_err)?;
        if !won {
            let inv = self.call(&self.scripts.user_drop, user);
            self.invoke(&inv).await?;
            return Err(MetaError::AlreadyExists(format!("user {name}")));
        }
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
            .arg("users")
            .arg(name.trim().to_lowercase())
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
            .arg("users")
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
}
