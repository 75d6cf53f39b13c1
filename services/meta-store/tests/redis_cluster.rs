//! The conformance suite and pub/sub behaviour against a real 3-node Redis Cluster.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use yubin_meta_api::{
    AccountStore, BlobKey, ChangeKind, InternalDate, MailStore, MailboxId, NewMessage, UserId,
};
use yubin_meta_store::testing::RedisCluster;
use yubin_meta_store::{RedisStore, conformance};

async fn store() -> (RedisCluster, RedisStore) {
    let cluster = RedisCluster::spawn().expect("spawn redis cluster");
    let store = RedisStore::connect_cluster(&cluster.urls())
        .await
        .expect("connect to cluster")
        .with_limits(conformance::LIMITS);
    (cluster, store)
}

yubin_meta_store::conformance_tests!(store);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_twice_on_one_cluster() {
    let (_cluster, store) = store().await;
    conformance::run_all(&store).await;
    conformance::run_all(&store).await;
}

fn message(user: UserId, n: u32) -> NewMessage {
    NewMessage {
        blob: BlobKey::for_content(user, &format!("{n:064x}")),
        size: 10,
        internal_date: InternalDate {
            unix_seconds: 1_700_000_000,
            tz_offset_minutes: 0,
        },
        flags: Vec::new(),
        summary: bytes::Bytes::from_static(b"summary"),
        index: Default::default(),
    }
}

/// Creates users until their keys live on at least two different nodes; returns them with the
/// port of the node owning each one's slot.
async fn users_on_two_nodes(cluster: &RedisCluster, store: &RedisStore) -> Vec<(UserId, u16)> {
    let mut users = Vec::new();
    let mut owners = HashSet::new();
    for n in 0..20 {
        let user = store
            .create_user(&format!("spread{n}"), "h")
            .await
            .expect("user");
        let owner = cluster
            .owner_of(&format!("{{u:{}}}:mailboxes", user.id.0))
            .expect("owner");
        owners.insert(owner);
        users.push((user.id, owner));
        if owners.len() >= 2 && users.len() >= 3 {
            break;
        }
    }
    assert!(owners.len() >= 2, "users spread over at least two nodes");
    users
}

/// Users on different nodes each keep working, list_users sees all of them (no cross-slot
/// batching), and each user's hints arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_on_different_nodes_work_and_get_hints() {
    let (cluster, store) = store().await;
    store.ping().await.expect("every primary answers PING");
    assert!(
        !store.persistence_enabled().await.expect("config get"),
        "the test cluster keeps nothing"
    );
    // INFO memory goes to every primary; all report noeviction.
    store
        .check_eviction_policy(false)
        .await
        .expect("noeviction on every primary");
    let users = users_on_two_nodes(&cluster, &store).await;
    let listed = store.list_users().await.expect("list users");
    assert_eq!(listed.len(), users.len());
    for (user, owner) in &users {
        let mut hints = store.watch(*user).await.expect("watch");
        let r = store
            .append(*user, "INBOX", vec![message(*user, 1)])
            .await
            .expect("append");
        let ev = tokio::time::timeout(Duration::from_secs(5), hints.next())
            .await
            .expect("hint in time")
            .expect("hint");
        assert_eq!(
            (ev.user, ev.mailbox, ev.kind),
            (*user, r.mailbox, ChangeKind::Appended),
            "hint for the user on node {owner}"
        );
        let st = store.mailbox_status(*user, "INBOX").await.expect("status");
        assert_eq!(st.exists, 1);
    }
}

async fn connection(port: u16) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connection")
}

/// Sharded subscribers of the user's channel on the node at `port` (PUBSUB SHARDNUMSUB counts
/// only that node's clients).
async fn shard_subscribers(port: u16, user: UserId) -> i64 {
    let v: (String, i64) = redis::cmd("PUBSUB")
        .arg("SHARDNUMSUB")
        .arg(format!("ev:{{u:{}}}", user.0))
        .query_async(&mut connection(port).await)
        .await
        .expect("shardnumsub");
    v.1
}

/// One SSUBSCRIBE per watched user on the owning node; the last dropped stream unsubscribes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_watcher_unsubscribes() {
    let (cluster, store) = store().await;
    let user = store.create_user("leaver", "h").await.expect("user");
    let owner = cluster
        .owner_of(&format!("ev:{{u:{}}}", user.id.0))
        .expect("owner");
    let w1 = store.watch(user.id).await.expect("watch");
    let w2 = store.watch(user.id).await.expect("watch");
    assert_eq!(shard_subscribers(owner, user.id).await, 1);
    drop(w1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(shard_subscribers(owner, user.id).await, 1, "one left");
    drop(w2);
    let mut n = 1;
    for _ in 0..50 {
        n = shard_subscribers(owner, user.id).await;
        if n == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(n, 0, "unsubscribed after the last watcher left");
}

async fn kill_pubsub_clients(port: u16) -> i64 {
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut connection(port).await)
        .await
        .expect("client kill")
}

/// Losing the pub/sub connection yields the resync hint, and hints flow again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resyncs_after_pubsub_connection_loss() {
    let (cluster, store) = store().await;
    let user = store.create_user("watcher", "h").await.expect("user");
    let mut hints = store.watch(user.id).await.expect("watch");
    let owner = cluster
        .owner_of(&format!("ev:{{u:{}}}", user.id.0))
        .expect("owner");
    assert_eq!(shard_subscribers(owner, user.id).await, 1);
    assert_eq!(
        kill_pubsub_clients(owner).await,
        1,
        "the subscriber connection sits on the node owning the channel's slot"
    );
    let ev = tokio::time::timeout(Duration::from_secs(10), hints.next())
        .await
        .expect("resync hint in time")
        .expect("stream alive");
    assert_eq!(
        (ev.user, ev.mailbox),
        (user.id, MailboxId(0)),
        "synthetic resync hint"
    );
    let mut got = None;
    for n in 0..50 {
        store
            .append(user.id, "INBOX", vec![message(user.id, n)])
            .await
            .expect("append");
        if let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(200), hints.next()).await
            && ev.kind == ChangeKind::Appended
        {
            got = Some(ev);
            break;
        }
    }
    assert!(got.is_some(), "hints flow after the reconnect");
}
