//! The Redis store's STORE works in bounded batches: a flag change over many messages with the
//! most and longest keywords the limits allow is split into script calls that each work through
//! at most ~64 KiB of flag text, so no single call holds Redis for long (issue 9: another
//! tenant's Redis latency). Counted with `INFO commandstats`, not timed.

use yubin_meta_api::{AccountStore, BlobKey, FlagOp, InternalDate, MailStore, NewMessage, UidSet};
use yubin_meta_store::RedisStore;
use yubin_meta_store::testing::RedisServer;

async fn evalsha_calls(c: &mut redis::aio::MultiplexedConnection) -> (u64, f64) {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(c)
        .await
        .expect("INFO");
    let line = info
        .lines()
        .find(|l| l.starts_with("cmdstat_evalsha:"))
        .expect("evalsha stats");
    let field = |name: &str| {
        line.split([':', ','])
            .find_map(|kv| kv.strip_prefix(name))
            .expect("field")
            .to_string()
    };
    (
        field("calls=").parse().expect("calls"),
        field("usec_per_call=").parse().expect("usec"),
    )
}

#[tokio::test]
async fn a_store_with_the_longest_keywords_runs_in_small_batches() {
    let redis = RedisServer::spawn().expect("redis-server");
    let store = RedisStore::connect(&redis.url()).await.expect("connect");
    let user = store.create_user("batches", "h").await.expect("user").id;
    let messages = (1..=100u32)
        .map(|n| NewMessage {
            blob: BlobKey::for_content(user, &format!("{n:064x}")),
            size: 1000,
            internal_date: InternalDate {
                unix_seconds: 1_700_000_000,
                tz_offset_minutes: 0,
            },
            flags: vec![],
            summary: bytes::Bytes::from_static(b"summary"),
            index: Default::default(),
        })
        .collect();
    let mailbox = store
        .append(user, "INBOX", messages)
        .await
        .expect("append")
        .mailbox;
    // The most keywords a message may carry, each as long as a keyword may be.
    let limits = yubin_meta_store::StoreLimits::default();
    let longest: Vec<String> = (0..limits.max_keywords_per_message)
        .map(|i| {
            format!(
                "k{i:03}{}",
                "x".repeat(limits.max_keyword_bytes as usize - 4)
            )
        })
        .collect();
    let all = UidSet::from_ranges([(1, u32::MAX)]);
    let client = redis::Client::open(redis.url()).expect("client");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let (before, _) = evalsha_calls(&mut c).await;
    let r = store
        .store_flags(user, mailbox, &all, FlagOp::Add, &longest, None)
        .await
        .expect("store");
    assert_eq!(r.updated.len(), 100, "every message changed");
    assert!(r.updated.iter().all(|(_, _, f)| f.len() == longest.len()));
    let (after_add, _) = evalsha_calls(&mut c).await;
    let r = store
        .store_flags(user, mailbox, &all, FlagOp::Remove, &longest, None)
        .await
        .expect("store");
    assert_eq!(r.updated.len(), 100);
    assert!(r.updated.iter().all(|(_, _, f)| f.is_empty()));
    let (after_remove, usec_per_call) = evalsha_calls(&mut c).await;
    // 64 keywords of 128 bytes are ~8 KiB of flag text per message: 8 messages per batch.
    let (adds, removes) = (after_add - before, after_remove - after_add);
    println!("add: {adds} calls, remove: {removes} calls, {usec_per_call} µs per call");
    assert!(adds >= 100 / 8, "the add ran in batches: {adds} calls");
    assert!(
        removes >= 100 / 8,
        "the remove ran in batches: {removes} calls"
    );
}
