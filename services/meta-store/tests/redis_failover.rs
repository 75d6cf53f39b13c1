//! Failover safety against a real primary and replica: writes acknowledged only once a replica
//! has them (WAIT), and no UID handed out twice under one UIDVALIDITY when a failover promotes
//! a replica that missed writes.

use std::time::Duration;

use yubin_meta_api::{
    AccountStore, BlobKey, InternalDate, MailStore, MetaError, NewMessage, UserId,
};
use yubin_meta_store::testing::{RedisReplicated, TcpProxy};
use yubin_meta_store::{Durability, RedisStore, RollbackSettings};

fn wait_one() -> Durability {
    Durability {
        wait_replicas: 1,
        waitaof: false,
        wait_timeout: Duration::from_millis(1000),
    }
}

fn message(user: UserId, n: u32) -> NewMessage {
    NewMessage {
        blob: BlobKey::for_content(user, &format!("{n:064x}")),
        size: 10,
        internal_date: InternalDate {
            unix_seconds: 1_700_000_000,
            tz_offset_minutes: 0,
        },
        flags: vec![],
        summary: bytes::Bytes::new(),
        index: Default::default(),
    }
}

/// With `wait_replicas = 1`, a write the replica did not acknowledge is not reported as done:
/// the caller gets a retryable `Unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_without_replica_acknowledgement_fails_as_unavailable() {
    let pair = RedisReplicated::spawn().expect("primary and replica");
    let url = format!("redis://127.0.0.1:{}/", pair.primary_port());
    let store = RedisStore::connect(&url)
        .await
        .expect("connect")
        .with_durability(wait_one());
    let user = store.create_user("waiter", "h").await.expect("user");
    store
        .append(user.id, "INBOX", vec![message(user.id, 1)])
        .await
        .expect("append acknowledged by the replica");
    pair.detach_replica().expect("detach");
    let err = store
        .append(user.id, "INBOX", vec![message(user.id, 2)])
        .await
        .expect_err("no replica acknowledges");
    assert!(matches!(err, MetaError::Unavailable(_)), "{err:?}");
    // Plain commands of account management wait too.
    let err = store
        .create_user("second", "h")
        .await
        .expect_err("no replica acknowledges");
    assert!(matches!(err, MetaError::Unavailable(_)), "{err:?}");
}

/// The failover of issue 9: the replica misses the last writes (some acknowledged without WAIT,
/// one refused by WAIT), the primary dies, the replica takes over behind the same address. No
/// UID is ever reported twice under one UIDVALIDITY, and every write acknowledged with WAIT on
/// is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_a_replica_that_missed_writes_never_reuses_a_uid() {
    let mut pair = RedisReplicated::spawn().expect("primary and replica");
    let proxy = TcpProxy::start(pair.primary_port()).expect("proxy");
    let store = RedisStore::connect(&proxy.url())
        .await
        .expect("connect")
        .with_durability(wait_one())
        .with_rollback(RollbackSettings {
            high_water_mailboxes: 1000,
            // Failover detection is exercised by its own test.
            identity_check: Duration::ZERO,
        });
    // The same meta process acknowledging writes without WAIT (shares the marks).
    let lax = store.clone().with_durability(Durability::default());
    let user = store.create_user("failover", "h").await.expect("user");
    // (uidvalidity, uid) -> message number, for every UID a caller was told about.
    let mut told = std::collections::HashMap::new();
    let mut note = |v: u32, uids: &[u32], first: u32| {
        for (i, uid) in uids.iter().enumerate() {
            let n = first + i as u32;
            if let Some(old) = told.insert((v, *uid), n) {
                panic!("UID {uid} under UIDVALIDITY {v} reported for message {old} and {n}");
            }
        }
    };
    let mut durable = Vec::new();
    for n in 1..=3 {
        let r = store
            .append(user.id, "INBOX", vec![message(user.id, n)])
            .await
            .expect("acknowledged with WAIT");
        note(r.uid_validity.0, &uids(&r.uids), n);
        durable.push(n);
    }
    pair.detach_replica().expect("detach");
    // Acknowledged without WAIT: lost by the failover.
    for n in 4..=5 {
        let r = lax
            .append(user.id, "INBOX", vec![message(user.id, n)])
            .await
            .expect("acknowledged without WAIT");
        note(r.uid_validity.0, &uids(&r.uids), n);
    }
    // Not acknowledged: the replica never confirms it.
    store
        .append(user.id, "INBOX", vec![message(user.id, 6)])
        .await
        .expect_err("WAIT refuses");
    let before = store
        .mailbox_status(user.id, "INBOX")
        .await
        .expect("status");

    pair.kill_primary();
    proxy.switch(pair.replica.port());

    // The promoted replica has no replica of its own, so WAIT could not be satisfied: the
    // writes after the failover go without it. The first calls may meet the cut connection;
    // the store reconnects by itself.
    let mut after = None;
    for _ in 0..50 {
        match lax
            .append(user.id, "INBOX", vec![message(user.id, 7)])
            .await
        {
            Ok(r) => {
                after = Some(r);
                break;
            }
            Err(MetaError::Unavailable(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("append after failover: {e:?}"),
        }
    }
    let r = after.expect("append after the failover");
    assert_ne!(
        r.uid_validity, before.uid_validity,
        "the replica would hand out UID {:?} again: the mailbox moved to a new UIDVALIDITY",
        r.uids
    );
    note(r.uid_validity.0, &uids(&r.uids), 7);
    for n in 8..=9 {
        let r = lax
            .append(user.id, "INBOX", vec![message(user.id, n)])
            .await
            .expect("append");
        note(r.uid_validity.0, &uids(&r.uids), n);
    }
    let snap = store.select(user.id, "INBOX").await.expect("select");
    assert_eq!(snap.info.uid_validity, r.uid_validity);
    let records = store
        .fetch(
            user.id,
            snap.info.id,
            &yubin_meta_api::UidSet::from_uids(snap.uids.clone()),
            false,
        )
        .await
        .expect("fetch");
    let blobs: Vec<BlobKey> = records.iter().map(|m| m.blob.clone()).collect();
    for n in durable {
        assert!(
            blobs.contains(&message(user.id, n).blob),
            "message {n}, acknowledged with WAIT, survived the failover"
        );
    }
    // A status read through the marks agrees and stays on the new UIDVALIDITY.
    let st = store
        .mailbox_status(user.id, "INBOX")
        .await
        .expect("status");
    assert_eq!(st.uid_validity, r.uid_validity);
}

/// After a failover the watch of the server's identity checks every known mailbox without
/// waiting for it to be used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_is_noticed_without_traffic() {
    let mut pair = RedisReplicated::spawn().expect("primary and replica");
    let proxy = TcpProxy::start(pair.primary_port()).expect("proxy");
    let store = RedisStore::connect(&proxy.url())
        .await
        .expect("connect")
        .with_rollback(RollbackSettings {
            high_water_mailboxes: 1000,
            identity_check: Duration::from_millis(100),
        });
    let user = store.create_user("watched", "h").await.expect("user");
    let first = store
        .append(user.id, "INBOX", vec![message(user.id, 1)])
        .await
        .expect("append");
    // Give the replica the first message (waiting until it has the mailbox: replication may
    // lag on a busy machine), then let it miss the second.
    let replica =
        redis::Client::open(format!("redis://127.0.0.1:{}/", pair.replica.port())).expect("client");
    let mut rc = replica
        .get_multiplexed_async_connection()
        .await
        .expect("replica");
    let mailbox_key = format!("{{u:{}}}:mb:{}", user.id.0, first.mailbox.0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v: Option<u32> = redis::cmd("HGET")
            .arg(&mailbox_key)
            .arg("uidnext")
            .query_async(&mut rc)
            .await
            .expect("hget");
        if v == Some(2) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replica got the first message"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pair.detach_replica().expect("detach");
    store
        .append(user.id, "INBOX", vec![message(user.id, 2)])
        .await
        .expect("append");
    tokio::time::sleep(Duration::from_millis(300)).await;
    pair.kill_primary();
    proxy.switch(pair.replica.port());
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{}/", pair.replica.port())).expect("client");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("replica");
    let key = format!("{{u:{}}}:mb:{}", user.id.0, first.mailbox.0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v: u32 = redis::cmd("HGET")
            .arg(&key)
            .arg("uidvalidity")
            .query_async(&mut c)
            .await
            .expect("hget");
        if v != first.uid_validity.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the watch moved the mailbox to a new UIDVALIDITY"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn uids(u: &[yubin_meta_api::Uid]) -> Vec<u32> {
    u.iter().map(|u| u.0).collect()
}
