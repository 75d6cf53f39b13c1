//! The conformance suite and failure behaviour against a real `redis-server`.

use std::time::Duration;

use futures::StreamExt;
use yubin_meta_api::{
    AccountStore, BlobKey, ChangeKind, InternalDate, MailStore, MailboxId, MetaError, NewMessage,
    UidSet,
};
use yubin_meta_store::testing::RedisServer;
use yubin_meta_store::{RedisStore, conformance};

async fn store() -> (RedisServer, RedisStore) {
    let server = RedisServer::spawn().expect("spawn redis-server");
    let store = RedisStore::connect(&server.url())
        .await
        .expect("connect")
        .with_limits(conformance::LIMITS);
    (server, store)
}

yubin_meta_store::conformance_tests!(store);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_twice_on_one_server() {
    let (_server, store) = store().await;
    conformance::run_all(&store).await;
    conformance::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_server_share_state_and_hints() {
    let (server, a) = store().await;
    let b = RedisStore::connect(&server.url()).await.expect("connect b");
    let user = a.create_user("shared", "h").await.expect("user");
    let mut hints = b.watch(user.id).await.expect("watch");
    let r = a
        .append(user.id, "INBOX", vec![message(user.id, 1)])
        .await
        .expect("append via a");
    let ev = tokio::time::timeout(Duration::from_secs(5), hints.next())
        .await
        .expect("hint in time")
        .expect("hint");
    assert_eq!(
        (ev.user, ev.mailbox, ev.kind),
        (user.id, r.mailbox, ChangeKind::Appended)
    );
    let st = b
        .mailbox_status(user.id, "INBOX")
        .await
        .expect("status via b");
    assert_eq!(st.exists, 1);
}

fn message(user: yubin_meta_api::UserId, n: u32) -> NewMessage {
    NewMessage {
        blob: BlobKey::for_content(user, &format!("{n:064x}")),
        size: 10,
        internal_date: InternalDate {
            unix_seconds: 1_700_000_000,
            tz_offset_minutes: -300,
        },
        flags: vec!["$Label".into()],
        summary: bytes::Bytes::from(vec![0u8, 255, 1, 2]),
        index: Default::default(),
    }
}

/// With AOF on, everything acknowledged survives a crash (SIGKILL) of redis-server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_redis_restart_with_aof() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = RedisServer::spawn_persistent(dir.path()).expect("spawn");
    let store = RedisStore::connect(&server.url()).await.expect("connect");
    assert!(
        store.persistence_enabled().await.expect("config"),
        "AOF is on"
    );
    let user = store.create_user("durable", "hash").await.expect("user");
    store
        .create_mailbox(user.id, "Keep", None)
        .await
        .expect("create");
    let r = store
        .append(
            user.id,
            "Keep",
            vec![message(user.id, 1), message(user.id, 2)],
        )
        .await
        .expect("append");
    let before = store.select(user.id, "Keep").await.expect("select");

    let server = server.restart().expect("restart");
    // The connection notices the restart on first use; callers retry `Unavailable`.
    let mut after = None;
    for _ in 0..50 {
        match store.select(user.id, "Keep").await {
            Ok(s) => {
                after = Some(s);
                break;
            }
            Err(e) => {
                assert!(
                    e.is_retryable(),
                    "only retryable errors during a restart: {e:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let after = after.expect("store usable after restart");
    assert_eq!(after, before, "mailbox state survives");
    let f = store
        .fetch(
            user.id,
            r.mailbox,
            &UidSet::from_ranges([(1, u32::MAX)]),
            true,
        )
        .await
        .expect("fetch");
    assert_eq!(f.len(), 2);
    assert_eq!(
        f[0].summary.as_deref(),
        Some(&[0u8, 255, 1, 2][..]),
        "binary summary"
    );
    assert_eq!(f[0].internal_date.tz_offset_minutes, -300);
    let rec = store.user_by_name("durable").await.expect("lookup");
    assert_eq!(rec.map(|u| u.id), Some(user.id));
    let r2 = store
        .append(user.id, "Keep", vec![message(user.id, 3)])
        .await
        .expect("append after restart");
    assert_eq!(r2.uids[0].0, 3, "UIDs continue");
    drop(server);
}

/// A pub/sub reconnect produces a resync hint, and hints flow again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resyncs_after_pubsub_reconnect() {
    let server = RedisServer::spawn_with_aof().expect("spawn");
    let store = RedisStore::connect(&server.url()).await.expect("connect");
    let user = store.create_user("watcher", "h").await.expect("user");
    let mut hints = store.watch(user.id).await.expect("watch");
    let _server = server.restart().expect("restart");
    let ev = tokio::time::timeout(Duration::from_secs(10), hints.next())
        .await
        .expect("resync hint in time")
        .expect("stream alive");
    assert_eq!(
        (ev.user, ev.mailbox),
        (user.id, MailboxId(0)),
        "synthetic resync hint"
    );
    // After the reconnect, real hints arrive again.
    let mut got = None;
    for n in 0..50 {
        let _ = store
            .append(user.id, "INBOX", vec![message(user.id, n)])
            .await;
        if let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(200), hints.next()).await
            && ev.kind == ChangeKind::Appended
        {
            got = Some(ev);
            break;
        }
    }
    assert!(got.is_some(), "hints flow after the reconnect");
}

/// A store whose Redis is gone reports `Unavailable` (retryable), it does not hang or panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_is_unavailable() {
    let (server, store) = store().await;
    let user = store.create_user("gone", "h").await.expect("user");
    drop(server);
    let r = tokio::time::timeout(Duration::from_secs(60), store.list_mailboxes(user.id))
        .await
        .expect("answers in time");
    assert!(matches!(r, Err(MetaError::Unavailable(_))), "{r:?}");
    let r = RedisStore::connect("redis://127.0.0.1:1/").await;
    assert!(
        matches!(r, Err(MetaError::Unavailable(_))),
        "connect to nothing"
    );
}

async fn subscribers(url: &str, user: yubin_meta_api::UserId) -> i64 {
    let client = redis::Client::open(url).expect("client");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let v: (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(format!("ev:{{u:{}}}", user.0))
        .query_async(&mut c)
        .await
        .expect("numsub");
    v.1
}

/// One SUBSCRIBE per watched user however many watchers; the last dropped stream unsubscribes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_watcher_unsubscribes() {
    let (server, store) = store().await;
    let user = store.create_user("leaver", "h").await.expect("user");
    let w1 = store.watch(user.id).await.expect("watch");
    let w2 = store.watch(user.id).await.expect("watch");
    assert_eq!(subscribers(&server.url(), user.id).await, 1);
    drop(w1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        subscribers(&server.url(), user.id).await,
        1,
        "one watcher left"
    );
    drop(w2);
    let mut n = 1;
    for _ in 0..50 {
        n = subscribers(&server.url(), user.id).await;
        if n == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(n, 0, "unsubscribed after the last watcher left");
}

/// Rough timings on a 3 000-message mailbox (debug build); run with `--ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn timings_3000_messages() {
    use std::time::Instant;
    use yubin_meta_api::{FlagOp, SearchIndex, SearchKey};
    let (_server, store) = store().await;
    let user = store.create_user("timing", "h").await.expect("user");
    let started = Instant::now();
    for n in 0..500u32 {
        store
            .append(user.id, "INBOX", vec![message(user.id, n)])
            .await
            .expect("append");
    }
    let rate = 500.0 / started.elapsed().as_secs_f64();
    for chunk in 0..25u32 {
        let batch = (0..100u32)
            .map(|i| {
                let mut m = message(user.id, 1000 + chunk * 100 + i);
                m.summary = bytes::Bytes::from(vec![b'x'; 1500]);
                m.index = SearchIndex {
                    headers: vec![("Subject".into(), format!("subject {i}"))],
                    sent_date: None,
                    body_text: "lorem ipsum ".repeat(100),
                };
                m
            })
            .collect();
        store.append(user.id, "INBOX", batch).await.expect("batch");
    }
    let time = |label: &str, t: Instant| {
        println!("{label:<40} {:>8.2} ms", t.elapsed().as_secs_f64() * 1e3)
    };
    println!("sequential appends: {rate:.0}/s");
    let t = Instant::now();
    let sel = store.select(user.id, "INBOX").await.expect("select");
    time("select", t);
    let all = UidSet::from_ranges([(1, u32::MAX)]);
    let t = Instant::now();
    store
        .fetch(user.id, sel.info.id, &all, false)
        .await
        .expect("fetch");
    time("fetch 1:* (flags)", t);
    let t = Instant::now();
    store
        .fetch(user.id, sel.info.id, &all, true)
        .await
        .expect("fetch");
    time("fetch 1:* (with summary)", t);
    let t = Instant::now();
    store
        .store_flags(
            user.id,
            sel.info.id,
            &all,
            FlagOp::Add,
            &["\\Seen".into()],
            None,
        )
        .await
        .expect("store");
    time("store 1:* +FLAGS", t);
    let t = Instant::now();
    store
        .search(user.id, sel.info.id, &SearchKey::NoFlag("\\Seen".into()))
        .await
        .expect("search");
    time("search UNSEEN", t);
    let t = Instant::now();
    store
        .search(
            user.id,
            sel.info.id,
            &SearchKey::Header("Subject".into(), "subject 7".into()),
        )
        .await
        .expect("search");
    time("search SUBJECT", t);
    let t = Instant::now();
    store
        .search(user.id, sel.info.id, &SearchKey::Text("ipsum lorem".into()))
        .await
        .expect("search");
    time("search TEXT", t);
}

async fn dbsize(url: &str) -> i64 {
    let client = redis::Client::open(url).expect("client");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    redis::cmd("DBSIZE")
        .query_async(&mut c)
        .await
        .expect("DBSIZE")
}

/// A message with megabytes of distinct header text once added one posting set (one Redis key)
/// per trigram, about a million keys per delivery and again per COPY; over
/// `MAX_GRAMS_PER_MESSAGE` it now adds a handful of keys, and SEARCH still finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_with_too_many_trigrams_adds_few_keys() {
    let (server, store) = store().await;
    let user = store
        .create_user("flood", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")
        .await
        .expect("user")
        .id;
    store.select(user, "INBOX").await.expect("select");
    let before = dbsize(&server.url()).await;
    let mut m = message(user, 1);
    m.index.headers = vec![(
        "Subject".into(),
        format!("{} tail-marker", conformance::gram_flood(2_000_000)),
    )];
    let r = store.append(user, "INBOX", vec![m]).await.expect("append");
    store
        .copy_messages(
            user,
            r.mailbox,
            &UidSet::from_ranges([(1, 1)]),
            "INBOX",
            false,
        )
        .await
        .expect("copy");
    let added = dbsize(&server.url()).await - before;
    assert!(added < 20, "{added} keys for two messages");
    let found = store
        .search(
            user,
            r.mailbox,
            &yubin_meta_api::SearchKey::Header("subject".into(), "TAIL-MARKER".into()),
        )
        .await
        .expect("search");
    assert_eq!(found.len(), 2);
}

/// An evicting `maxmemory-policy` is refused: evicted mailbox or UID-counter keys would lose
/// mail and hand out UIDs again. `volatile-*` is refused too (a hand-set TTL would evict).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicting_maxmemory_policy_is_refused() {
    let (server, store) = store().await;
    store
        .check_eviction_policy(false)
        .await
        .expect("the default noeviction is accepted");
    let client = redis::Client::open(server.url()).expect("client");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    for policy in ["allkeys-lru", "volatile-ttl", "allkeys-random"] {
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory-policy")
            .arg(policy)
            .query_async(&mut c)
            .await
            .expect("config set");
        let err = store
            .check_eviction_policy(true)
            .await
            .expect_err("evicting policy refused, whatever is assumed");
        assert!(
            matches!(&err, MetaError::Invalid(m) if m.contains(policy)),
            "{err:?}"
        );
    }
}

/// A SELECT snapshot carries flags only up to a mailbox size (one script holds its shard, and
/// reading every message's flags costs about 1 µs of Redis time per message); above it the
/// flags are left for the session to read when it needs them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_of_large_mailboxes_carry_no_flags() {
    let (_server, store) = store().await;
    let store = store.with_snapshot_flags_max_messages(3);
    let user = store.create_user("big", "h").await.expect("user");
    let first = (1..=3).map(|n| message(user.id, n)).collect();
    store.append(user.id, "INBOX", first).await.expect("append");
    let snapshot = store.select(user.id, "INBOX").await.expect("select");
    assert!(snapshot.flags.covers(3), "{:?}", snapshot.flags);
    assert_eq!(
        snapshot.flags.get(2).map(|(_, f)| f.to_vec()),
        Some(vec!["$Label".to_string()])
    );
    store
        .append(user.id, "INBOX", vec![message(user.id, 4)])
        .await
        .expect("append");
    let snapshot = store.select(user.id, "INBOX").await.expect("select");
    assert_eq!(snapshot.uids.len(), 4);
    assert_eq!(
        snapshot.flags,
        Default::default(),
        "over the limit: no flags"
    );
}
