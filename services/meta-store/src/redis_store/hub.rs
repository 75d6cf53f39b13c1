//! The pub/sub side of [`super::RedisStore::watch`]: one shared subscriber connection per store.
//!
//! Watchers register per user; the first watcher of a user makes the background task
//! SUBSCRIBE to `ev:{u:<id>}`, the last one to leave makes it UNSUBSCRIBE. The task reconnects
//! with backoff when the connection fails (detected by the stream ending, a failed
//! (un)subscribe or an unanswered PING) and then sends every watched user a synthetic resync
//! hint, since hints published meanwhile are lost ("notifications are hints, MODSEQ is truth").
//!
//! On a Redis Cluster hints are sharded (SPUBLISH, Redis 7): a message on `ev:{u:<id>}` only
//! reaches subscribers connected to a node of the shard owning the channel's slot, so
//! [`run_sharded`] keeps one RESP3 connection per primary that has watched users, SSUBSCRIBEs
//! each user on the owner of its slot (looked up with `CLUSTER KEYSLOT` and `CLUSTER SLOTS`)
//! and re-resolves the owner whenever that connection fails or the server drops the
//! subscription (it sends `sunsubscribe` when a slot moves away, Redis docs "Sharded
//! Pub/Sub").

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use std::collections::HashSet;

use futures::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::{ConnectionAddr, ConnectionInfo, PushInfo, PushKind, Value};
use tokio::sync::{broadcast, mpsc, oneshot};
use yubin_meta_api::{ChangeEvent, ChangeKind, ChangeStream, MailboxId, ModSeq, UserId};

use crate::embedded::resync_hint;

/// How long `watch` waits for its SUBSCRIBE to be confirmed before returning anyway (the
/// subscription then happens on reconnect).
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const PING_EVERY: Duration = Duration::from_secs(15);
const PING_TIMEOUT: Duration = Duration::from_secs(5);
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Hints buffered per user; a watcher further behind gets one resync hint instead.
const PER_USER_CAPACITY: usize = 1024;

enum Cmd {
    Subscribe(UserId, oneshot::Sender<()>),
    Unsubscribe(UserId),
}

struct Watchers {
    count: usize,
    tx: broadcast::Sender<ChangeEvent>,
}

struct Shared {
    watchers: Mutex<HashMap<UserId, Watchers>>,
    cmds: mpsc::UnboundedSender<Cmd>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, Watchers>> {
        // A panic while holding the lock cannot leave the map inconsistent (every update is a
        // single insert/remove/increment), so a poisoned lock is still usable.
        self.watchers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn deliver(&self, ev: ChangeEvent) {
        if let Some(w) = self.lock().get(&ev.user) {
            // No live receiver is fine: hints are best effort.
            let _ = w.tx.send(ev);
        }
    }
}

#[derive(Clone)]
pub(super) struct Hub {
    shared: Arc<Shared>,
}

/// Held by each watcher's stream; dropping the stream leaves.
struct Membership {
    shared: Arc<Shared>,
    user: UserId,
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut map = self.shared.lock();
        if let Some(w) = map.get_mut(&self.user) {
            w.count -= 1;
            if w.count == 0 {
                map.remove(&self.user);
                let _ = self.shared.cmds.send(Cmd::Unsubscribe(self.user));
            }
        }
    }
}

fn channel(user: UserId) -> String {
    format!("ev:{{u:{}}}", user.0)
}

/// Parses `ev:{u:<id>}` + `<mailbox> <modseq> <kind> [<published unix micros>]` (see the key
/// layout in the parent module; the time is optional so hints of older scripts still parse).
fn parse_event(channel: &str, payload: &[u8]) -> Option<ChangeEvent> {
    let id = channel
        .strip_prefix("ev:{u:")?
        .strip_suffix('}')?
        .parse()
        .ok()?;
    let payload = std::str::from_utf8(payload).ok()?;
    let mut parts = payload.split(' ');
    let mailbox = parts.next()?.parse().ok()?;
    let modseq = parts.next()?.parse().ok()?;
    let kind = match parts.next()? {
        "a" => ChangeKind::Appended,
        "f" => ChangeKind::Flags,
        "e" => ChangeKind::Expunged,
        "r" => ChangeKind::AccountRevoked,
        _ => ChangeKind::MailboxList,
    };
    let published_unix_micros = parts.next().and_then(|t| t.parse().ok()).unwrap_or(0);
    Some(ChangeEvent {
        user: UserId(id),
        mailbox: MailboxId(mailbox),
        modseq: ModSeq(modseq),
        kind,
        published_unix_micros,
    })
}

impl Hub {
    pub(super) fn start(client: redis::Client) -> Hub {
        let (cmds, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            watchers: Mutex::new(HashMap::new()),
            cmds,
        });
        tokio::spawn(run(client, Arc::downgrade(&shared), rx));
        Hub { shared }
    }

    /// The hub of a cluster store: sharded pub/sub (see the module docs). `seed` supplies the
    /// credentials, database and TLS settings for the per-node connections.
    pub(super) fn start_sharded(cluster: ClusterConnection, seed: ConnectionInfo) -> Hub {
        let (cmds, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            watchers: Mutex::new(HashMap::new()),
            cmds,
        });
        tokio::spawn(run_sharded(cluster, seed, Arc::downgrade(&shared), rx));
        Hub { shared }
    }

    pub(super) async fn watch(&self, user: UserId) -> ChangeStream {
        let (rx, ack) = {
            let mut map = self.shared.lock();
            match map.get_mut(&user) {
                Some(w) => {
                    w.count += 1;
                    (w.tx.subscribe(), None)
                }
                None => {
                    let (tx, rx) = broadcast::channel(PER_USER_CAPACITY);
                    map.insert(user, Watchers { count: 1, tx });
                    let (ack_tx, ack_rx) = oneshot::channel();
                    let _ = self.shared.cmds.send(Cmd::Subscribe(user, ack_tx));
                    (rx, Some(ack_rx))
                }
            }
        };
        let membership = Membership {
            shared: self.shared.clone(),
            user,
        };
        if let Some(ack) = ack {
            // Returning after the SUBSCRIBE is confirmed makes "from now on" hold for hints
            // published after `watch` returns; if Redis is down, the task subscribes later.
            let _ = tokio::time::timeout(SUBSCRIBE_WAIT, ack).await;
        }
        futures::stream::unfold((rx, membership), |(mut rx, m)| async move {
            match rx.recv().await {
                Ok(ev) => Some((ev, (rx, m))),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let hint = resync_hint(m.user);
                    Some((hint, (rx, m)))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
        .boxed()
    }
}

/// Sleeps for `delay` while answering commands (acks are dropped: the subscription happens
/// on reconnect). Returns `true` when the store is gone.
async fn pause(rx: &mut mpsc::UnboundedReceiver<Cmd>, delay: Duration) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut sleep => return false,
            cmd = rx.recv() => if cmd.is_none() { return true },
        }
    }
}

async fn run(client: redis::Client, shared: Weak<Shared>, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let mut backoff = MIN_BACKOFF;
    let mut connected_before = false;
    loop {
        let pubsub = match tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await {
            Ok(Ok(p)) => p,
            _ => {
                if pause(&mut rx, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let users: Vec<UserId> = match shared.upgrade() {
            Some(s) => s.lock().keys().copied().collect(),
            None => return,
        };
        if !users.is_empty() {
            let channels: Vec<String> = users.iter().copied().map(channel).collect();
            if sink.subscribe(channels).await.is_err() {
                if pause(&mut rx, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        }
        backoff = MIN_BACKOFF;
        if connected_before {
            // Hints published while we were away are lost: make every watcher resync.
            if let Some(s) = shared.upgrade() {
                for u in &users {
                    s.deliver(resync_hint(*u));
                }
            }
        }
        connected_before = true;
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    None => return,
                    Some(Cmd::Subscribe(user, ack)) => {
                        if sink.subscribe(channel(user)).await.is_err() {
                            break;
                        }
                        let _ = ack.send(());
                    }
                    Some(Cmd::Unsubscribe(user)) => {
                        // A new watcher may have arrived since; its Subscribe came after.
                        let still = shared
                            .upgrade()
                            .is_some_and(|s| s.lock().contains_key(&user));
                        if !still && sink.unsubscribe(channel(user)).await.is_err() {
                            break;
                        }
                    }
                },
                msg = stream.next() => match msg {
                    None => break,
                    Some(msg) => {
                        if let (Some(ev), Some(s)) = (
                            parse_event(msg.get_channel_name(), msg.get_payload_bytes()),
                            shared.upgrade(),
                        ) {
                            s.deliver(ev);
                        }
                    }
                },
                _ = ping.tick() => {
                    let pong = tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        break;
                    }
                }
            }
        }
    }
}

/// A node address as `CLUSTER SLOTS` reports it.
type Node = (String, u16);

/// The sharded subscriber's state: which user is subscribed where, and who still needs to be.
struct Sharded {
    cluster: ClusterConnection,
    seed: ConnectionInfo,
    shared: Weak<Shared>,
    /// Pushes of every node connection, tagged with the node.
    pushes: mpsc::UnboundedSender<(Node, PushInfo)>,
    /// Slot of each watched user's channel (a key's slot never changes).
    slots: HashMap<UserId, u16>,
    /// `(first, last, owner)` slot ranges; empty when unknown or stale.
    ranges: Vec<(u16, u16, Node)>,
    nodes: HashMap<Node, MultiplexedConnection>,
    /// Users subscribed, and on which node.
    placed: HashMap<UserId, Node>,
    /// Users watched but not (or no longer) subscribed.
    pending: HashSet<UserId>,
    /// Users whose hints may have been lost: they get a resync hint once subscribed again.
    resync: HashSet<UserId>,
    acks: HashMap<UserId, Vec<oneshot::Sender<()>>>,
}

impl Sharded {
    fn watched(&self, user: UserId) -> bool {
        self.shared
            .upgrade()
            .is_some_and(|s| s.lock().contains_key(&user))
    }

    async fn refresh_ranges(&mut self) -> redis::RedisResult<()> {
        let v: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut self.cluster)
            .await?;
        self.ranges = parse_slots(v);
        Ok(())
    }

    async fn owner(&mut self, user: UserId) -> redis::RedisResult<Option<Node>> {
        let slot = match self.slots.get(&user) {
            Some(s) => *s,
            None => {
                let s: u16 = redis::cmd("CLUSTER")
                    .arg("KEYSLOT")
                    .arg(channel(user))
                    .query_async(&mut self.cluster)
                    .await?;
                self.slots.insert(user, s);
                s
            }
        };
        if self.ranges.is_empty() {
            self.refresh_ranges().await?;
        }
        Ok(self
            .ranges
            .iter()
            .find(|(lo, hi, _)| (*lo..=*hi).contains(&slot))
            .map(|(_, _, n)| n.clone()))
    }

    async fn connection(&mut self, node: &Node) -> redis::RedisResult<MultiplexedConnection> {
        if let Some(c) = self.nodes.get(node) {
            return Ok(c.clone());
        }
        let mut info = self.seed.clone();
        // CLUSTER SLOTS reports "" or "?" as the endpoint when a node does not know how it is
        // reached (Redis docs, CLUSTER SHARDS / cluster-preferred-endpoint-type); the seed's
        // host is the best guess then.
        let host = match (&node.0[..], &info.addr) {
            ("" | "?", ConnectionAddr::Tcp(h, _) | ConnectionAddr::TcpTls { host: h, .. }) => {
                h.clone()
            }
            _ => node.0.clone(),
        };
        info.addr = match info.addr {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host,
                port: node.1,
                insecure,
                tls_params,
            },
            _ => ConnectionAddr::Tcp(host, node.1),
        };
        // Push messages (smessage, sunsubscribe) need RESP3 on a shared connection.
        info.redis.protocol = redis::ProtocolVersion::RESP3;
        let client = redis::Client::open(info)?;
        let tx = self.pushes.clone();
        let tag = node.clone();
        let sender = move |p: PushInfo| tx.send((tag.clone(), p)).map_err(|_| ());
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(PING_TIMEOUT)
            .set_push_sender(sender);
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        self.nodes.insert(node.clone(), conn.clone());
        Ok(conn)
    }

    /// Subscribes every pending user on the owner of its slot; returns whether all succeeded.
    async fn settle(&mut self) -> bool {
        let users: Vec<UserId> = self.pending.iter().copied().collect();
        let mut all = true;
        for user in users {
            if !self.watched(user) {
                self.pending.remove(&user);
                self.acks.remove(&user);
                continue;
            }
            // Bounded so an unreachable node cannot stall the task (and every other watcher).
            let r = tokio::time::timeout(CONNECT_TIMEOUT, self.subscribe(user)).await;
            match r {
                Ok(Ok(node)) => {
                    self.pending.remove(&user);
                    self.placed.insert(user, node);
                    for ack in self.acks.remove(&user).unwrap_or_default() {
                        let _ = ack.send(());
                    }
                    if self.resync.remove(&user)
                        && let Some(s) = self.shared.upgrade()
                    {
                        s.deliver(resync_hint(user));
                    }
                }
                Ok(Err(_)) | Err(_) => {
                    all = false;
                    // The slot may have moved or the node died: look the topology up again.
                    self.ranges.clear();
                    self.resync.insert(user);
                }
            }
        }
        all
    }

    async fn subscribe(&mut self, user: UserId) -> redis::RedisResult<Node> {
        let node = self.owner(user).await?.ok_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::ClusterDown, "slot not served"))
        })?;
        let mut conn = self.connection(&node).await?;
        let r = redis::cmd("SSUBSCRIBE")
            .arg(channel(user))
            .exec_async(&mut conn)
            .await;
        if let Err(e) = r {
            self.lose(&node);
            return Err(e);
        }
        Ok(node)
    }

    async fn unsubscribe(&mut self, user: UserId) {
        self.pending.remove(&user);
        self.resync.remove(&user);
        self.slots.remove(&user);
        if let Some(node) = self.placed.remove(&user)
            && let Some(mut conn) = self.nodes.get(&node).cloned()
        {
            let r = redis::cmd("SUNSUBSCRIBE")
                .arg(channel(user))
                .exec_async(&mut conn)
                .await;
            if r.is_err() {
                self.lose(&node);
            }
        }
    }

    /// Forgets a node's connection: its users must subscribe again (and resync).
    fn lose(&mut self, node: &Node) {
        self.nodes.remove(node);
        let moved: Vec<UserId> = self
            .placed
            .iter()
            .filter(|(_, n)| *n == node)
            .map(|(u, _)| *u)
            .collect();
        for u in moved {
            self.placed.remove(&u);
            self.pending.insert(u);
            self.resync.insert(u);
        }
        self.ranges.clear();
    }

    fn on_push(&mut self, node: Node, push: PushInfo) {
        match push.kind {
            PushKind::SMessage => {
                let mut it = push.data.into_iter();
                if let (Some(Value::BulkString(ch)), Some(Value::BulkString(payload))) =
                    (it.next(), it.next())
                    && let (Some(ev), Some(s)) = (
                        std::str::from_utf8(&ch)
                            .ok()
                            .and_then(|ch| parse_event(ch, &payload)),
                        self.shared.upgrade(),
                    )
                {
                    s.deliver(ev);
                }
            }
            PushKind::Disconnection => self.lose(&node),
            PushKind::SUnsubscribe => {
                // Unasked-for when the slot left this node; the channel name says whose.
                if let Some(Value::BulkString(ch)) = push.data.first()
                    && let Some(user) = std::str::from_utf8(ch)
                        .ok()
                        .and_then(|ch| parse_event(ch, b"0 0 l"))
                        .map(|ev| ev.user)
                    && self.placed.get(&user) == Some(&node)
                    && self.watched(user)
                {
                    self.placed.remove(&user);
                    self.pending.insert(user);
                    self.resync.insert(user);
                    self.ranges.clear();
                }
            }
            _ => {}
        }
    }
}

/// `CLUSTER SLOTS`: `[[first, last, [host, port, id, ...], replicas...], ...]`.
fn parse_slots(v: Value) -> Vec<(u16, u16, Node)> {
    let Value::Array(ranges) = v else {
        return Vec::new();
    };
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let int = |v: &Value| match v {
        Value::Int(i) => u16::try_from(*i).ok(),
        _ => None,
    };
    ranges
        .iter()
        .filter_map(|r| {
            let Value::Array(r) = r else { return None };
            let first = int(r.first()?)?;
            let last = int(r.get(1)?)?;
            let Value::Array(primary) = r.get(2)? else {
                return None;
            };
            let host = text(primary.first()?)?;
            let port = int(primary.get(1)?)?;
            Some((first, last, (host, port)))
        })
        .collect()
}

async fn run_sharded(
    cluster: ClusterConnection,
    seed: ConnectionInfo,
    shared: Weak<Shared>,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
) {
    let (pushes, mut push_rx) = mpsc::unbounded_channel();
    let mut st = Sharded {
        cluster,
        seed,
        shared,
        pushes,
        slots: HashMap::new(),
        ranges: Vec::new(),
        nodes: HashMap::new(),
        placed: HashMap::new(),
        pending: HashSet::new(),
        resync: HashSet::new(),
        acks: HashMap::new(),
    };
    let mut backoff = MIN_BACKOFF;
    let retry = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(retry);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                None => return,
                Some(Cmd::Subscribe(user, ack)) => {
                    st.pending.insert(user);
                    st.acks.entry(user).or_default().push(ack);
                    if !st.settle().await {
                        retry.as_mut().reset(tokio::time::Instant::now() + backoff);
                    }
                }
                Some(Cmd::Unsubscribe(user)) => {
                    // A new watcher may have arrived since; its Subscribe came after.
                    if !st.watched(user) {
                        st.unsubscribe(user).await;
                    }
                }
            },
            Some((node, push)) = push_rx.recv() => {
                st.on_push(node, push);
                if !st.pending.is_empty() {
                    retry.as_mut().reset(tokio::time::Instant::now() + backoff);
                }
            }
            () = &mut retry, if !st.pending.is_empty() => {
                if st.settle().await {
                    backoff = MIN_BACKOFF;
                } else {
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    retry.as_mut().reset(tokio::time::Instant::now() + backoff);
                }
            }
            _ = ping.tick() => {
                // A connection that died without a FIN shows only as an unanswered PING.
                let nodes: Vec<(Node, MultiplexedConnection)> =
                    st.nodes.iter().map(|(n, c)| (n.clone(), c.clone())).collect();
                for (node, mut conn) in nodes {
                    let pong = redis::cmd("PING").query_async::<Value>(&mut conn).await;
                    if pong.is_err() {
                        st.lose(&node);
                    }
                }
                if !st.pending.is_empty() {
                    retry.as_mut().reset(tokio::time::Instant::now() + backoff);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events() {
        let ev = parse_event("ev:{u:42}", b"7 19 a").expect("event");
        assert_eq!(ev.user, UserId(42));
        assert_eq!(ev.mailbox, MailboxId(7));
        assert_eq!(ev.modseq, ModSeq(19));
        assert_eq!(ev.kind, ChangeKind::Appended);
        assert_eq!(
            ev.published_unix_micros, 0,
            "hints without a time still parse"
        );
        let timed = parse_event("ev:{u:42}", b"7 19 f 1700000000123456").expect("event");
        assert_eq!(timed.kind, ChangeKind::Flags);
        assert_eq!(timed.published_unix_micros, 1_700_000_000_123_456);
        assert!(parse_event("other", b"1 2 a").is_none());
        assert!(parse_event("ev:{u:1}", b"x").is_none());
        assert_eq!(channel(UserId(5)), "ev:{u:5}");
    }

    #[test]
    fn parses_cluster_slots() {
        let node = |host: &str, port: i64| {
            Value::Array(vec![
                Value::BulkString(host.as_bytes().to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let v = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("10.0.0.1", 7000),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(16383),
                node("10.0.0.2", 7001),
                node("10.0.0.3", 7002),
            ]),
            Value::Nil,
        ]);
        assert_eq!(
            parse_slots(v),
            vec![
                (0, 5460, ("10.0.0.1".to_string(), 7000)),
                (5461, 16383, ("10.0.0.2".to_string(), 7001)),
            ]
        );
        assert!(parse_slots(Value::Nil).is_empty());
    }
}
