//! Checks of account revocation: disabling, deleting or re-passwording an account publishes
//! [`ChangeKind::AccountRevoked`] on its change stream (front-ends end its sessions), and a
//! deleted account's id refuses every write, so a session or a delivery that resolved the id
//! before the deletion cannot recreate its data.

use std::time::Duration;

use futures::StreamExt;
use yubin_meta_api::{
    AccountStore, ChangeKind, ChangeStream, FlagOp, MailStore, MetaError, QuotaLimits, Uid,
};

use super::{all, msg, new_user};

/// Waits up to `wait` for an `AccountRevoked` hint; other hints are skipped.
async fn revoked_within(stream: &mut ChangeStream, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(ev)) if ev.kind == ChangeKind::AccountRevoked => return true,
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return false,
        }
    }
}

pub async fn revocation_hints<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-revoke").await;
    let mut stream = store.watch(user).await.expect("watch");
    // A remote bus may take a moment to deliver to a new subscription: repeat the (idempotent)
    // password change until its hint arrives.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        store
            .set_password_hash(user, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$bmV3")
            .await
            .expect("set_password_hash");
        if revoked_within(&mut stream, Duration::from_millis(500)).await {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a password change publishes AccountRevoked"
        );
    }
    let wait = Duration::from_secs(5);
    store.set_disabled(user, true).await.expect("disable");
    assert!(
        revoked_within(&mut stream, wait).await,
        "disabling publishes AccountRevoked"
    );
    store.set_disabled(user, false).await.expect("enable");
    store.delete_user(user).await.expect("delete_user");
    assert!(
        revoked_within(&mut stream, wait).await,
        "deleting publishes AccountRevoked"
    );
}

fn gone<T: std::fmt::Debug>(what: &str, r: Result<T, MetaError>) {
    assert!(
        matches!(r, Err(MetaError::NotFound(_))),
        "{what} on a deleted account is refused: {r:?}"
    );
}

pub async fn deleted_account_refuses_writes<S: MailStore + AccountStore>(store: &S) {
    let user = new_user(store, "conf-tombstone").await;
    // What a session holds from before the deletion: mailbox ids and UIDs.
    let inbox = store
        .append(user, "INBOX", vec![msg(user, 1, &[])])
        .await
        .expect("append")
        .mailbox;
    let work = store
        .create_mailbox(user, "Work", None)
        .await
        .expect("create")
        .id;
    store.delete_user(user).await.expect("delete_user");

    gone(
        "APPEND",
        store.append(user, "INBOX", vec![msg(user, 2, &[])]).await,
    );
    gone("CREATE", store.create_mailbox(user, "Again", None).await);
    gone("RENAME", store.rename_mailbox(user, "Work", "Play").await);
    gone("DELETE", store.delete_mailbox(user, "Work").await);
    gone("SUBSCRIBE", store.set_subscribed(user, "Work", true).await);
    let flags = vec!["\\Seen".to_string()];
    gone(
        "STORE",
        store
            .store_flags(user, inbox, &all(), FlagOp::Add, &flags, None)
            .await,
    );
    gone(
        "COPY",
        store
            .copy_messages(user, inbox, &all(), "Work", false)
            .await,
    );
    gone(
        "MOVE",
        store.copy_messages(user, work, &all(), "INBOX", true).await,
    );
    gone("EXPUNGE", store.expunge(user, inbox, None).await);
    gone(
        "claim_recent",
        store.claim_recent(user, inbox, Uid(10)).await,
    );
    let entry = vec![("/private/comment".to_string(), Some(b"x".to_vec()))];
    gone(
        "SETMETADATA",
        store.set_metadata(user, None, &entry, 100).await,
    );
    gone(
        "SETMETADATA on a mailbox",
        store.set_metadata(user, Some("INBOX"), &entry, 100).await,
    );
    let limits = QuotaLimits {
        storage_bytes: Some(1),
        messages: None,
    };
    gone("SETQUOTA", store.set_account_quota(user, limits).await);
    // Reads that create INBOX on first use must not bring the account back either.
    gone("LIST", store.list_mailboxes(user).await);
    gone("SELECT", store.select(user, "INBOX").await);
    gone("STATUS", store.mailbox_status(user, "INBOX").await);
    // A user created afterwards is unaffected.
    let other = new_user(store, "conf-tombstone-next").await;
    store
        .append(other, "INBOX", vec![msg(other, 1, &[])])
        .await
        .expect("another account still writes");
}
