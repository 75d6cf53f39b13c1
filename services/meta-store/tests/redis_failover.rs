//! Failover safety against a real primary and replica: writes acknowledged only once a replica
//! has them (WAIT), and no UID handed out twice under one UIDVALIDITY when a failover promotes
//! a replica that missed writes.

use std::time::Duration;

use yubin_meta_api::{
    AccountStore, BlobKey, InternalDate, MailStore, MetaError, NewMessage, UserId,
};
use yubin_meta_store::testing::RedisReplicated;
use yubin_meta_store::{Durability, RedisStore};

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
