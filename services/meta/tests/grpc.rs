//! The gRPC wire: every RPC through `GrpcMetaClient` → `serve_grpc` → a store must give exactly
//! what calling the store directly gives, errors included; Watch streams deliver and end.

mod common;

use bytes::Bytes;
use common::{EchoStore, Running, embedded_store, new_message, serve, test_secret};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use yubin_meta::auth::{AuthConfig, PasswordAuthenticator, PasswordParams};
use yubin_meta::convert::meta_from_status;
use yubin_meta::pb;
use yubin_meta::{CallerCheck, GrpcMetaClient, ServiceSecret, serve_grpc};
use yubin_meta_api::*;

const WAIT: Duration = Duration::from_secs(10);

struct Harness {
    running: Running,
    /// The store behind the server.
    served: Arc<EchoStore>,
    /// An identical store called directly: the reference the wire must reproduce.
    local: EchoStore,
    alice: UserId,
    _accounts_dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let (dir, accounts) = embedded_store().await;
    let params = PasswordParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let alice = accounts
        .create_user("alice", &params.hash("wonderland").unwrap())
        .await
        .unwrap()
        .id;
    let auth = Arc::new(PasswordAuthenticator::with_config(
        accounts,
        AuthConfig::default(),
    ));
    let served = Arc::new(EchoStore::default());
    let running = serve(served.clone(), auth).await;
    Harness {
        running,
        served,
        local: EchoStore::default(),
        alice,
        _accounts_dir: dir,
    }
}

/// Calls the same method with the same arguments through the wire and directly; both the
/// results and the arguments the store saw must be identical.
macro_rules! same {
    ($h:expr, $method:ident ( $($arg:expr),* $(,)? )) => {{
        let remote = $h.running.client.$method($($arg),*).await;
        let local = $h.local.$method($($arg),*).await;
        assert_eq!(remote, local, "result of {}", stringify!($method));
        assert_eq!(
            $h.served.last_call(),
            $h.local.last_call(),
            "arguments of {}",
            stringify!($method)
        );
        remote
    }};
}

fn complex_key() -> SearchKey {
    SearchKey::And(vec![
        SearchKey::Uids(UidSet::from_ranges([(1, 10), (20, u32::MAX)])),
        SearchKey::Or(
            Box::new(SearchKey::Header("List-Id".into(), String::new())),
            Box::new(SearchKey::Not(Box::new(SearchKey::Flag("\\Seen".into())))),
        ),
        SearchKey::NoFlag("$Junk".into()),
        SearchKey::Since(-1),
        SearchKey::Before(20_000),
        SearchKey::On(19_999),
        SearchKey::SentSince(1),
        SearchKey::SentBefore(2),
        SearchKey::SentOn(3),
        SearchKey::Larger(0),
        SearchKey::Smaller(u64::MAX),
        SearchKey::Body("ボディ".into()),
        SearchKey::Text("x".into()),
        SearchKey::ModSeqAtLeast(ModSeq(5)),
        SearchKey::All,
        SearchKey::And(vec![]),
    ])
}

#[tokio::test]
async fn every_rpc_round_trips_unchanged() {
    let h = harness().await;
    let u = UserId(7);
    let set = UidSet::from_ranges([(1, 3), (7, 7), (4_000_000_000, 4_000_000_002)]);

    same!(h, list_mailboxes(u)).unwrap();
    same!(h, list_subscriptions(u)).unwrap();
    same!(h, set_subscribed(u, "Gone/but subscribed", true)).unwrap();
    same!(h, set_subscribed(u, "", false)).unwrap();
    same!(h, create_mailbox(u, "Sent Items", Some(SpecialUse::Sent))).unwrap();
    same!(h, create_mailbox(u, "Plain", None)).unwrap();
    same!(h, delete_mailbox(u, "Plain")).unwrap();
    same!(h, rename_mailbox(u, "a/b", "c/ü")).unwrap();
    same!(h, mailbox_status(u, "Archive")).unwrap();
    let snapshot = same!(h, select(u, "INBOX")).unwrap();
    assert_eq!(snapshot.first_unseen, Some(Uid(5)));
    assert!(snapshot.flags.covers(snapshot.uids.len()), "{snapshot:?}");
    let appended = same!(h, append(u, "INBOX", vec![new_message(0), new_message(1)])).unwrap();
    assert_eq!(appended.uids, [Uid(10), Uid(11)]);
    same!(h, append(u, "INBOX", vec![])).unwrap();
    let fetched = same!(h, fetch(u, MailboxId(3), &set, true)).unwrap();
    assert_eq!(fetched[0].summary, Some(Bytes::from_static(b"\x01summary")));
    let fetched = same!(h, fetch(u, MailboxId(3), &set, false)).unwrap();
    assert_eq!(fetched[0].summary, None);
    same!(h, fetch(u, MailboxId(3), &UidSet::new(), false)).unwrap();
    for op in [FlagOp::Add, FlagOp::Remove, FlagOp::Replace] {
        let flags = vec!["\\Seen".to_string(), "$Label1".to_string()];
        same!(h, store_flags(u, MailboxId(3), &set, op, &flags, None)).unwrap();
        same!(
            h,
            store_flags(u, MailboxId(3), &set, op, &[], Some(ModSeq(0)))
        )
        .unwrap();
        same!(
            h,
            store_flags(u, MailboxId(3), &set, op, &flags, Some(ModSeq(u64::MAX)))
        )
        .unwrap();
    }
    same!(h, copy_messages(u, MailboxId(3), &set, "Trash", false)).unwrap();
    same!(h, copy_messages(u, MailboxId(3), &set, "Trash", true)).unwrap();
    same!(h, expunge(u, MailboxId(3), None)).unwrap();
    same!(h, expunge(u, MailboxId(3), Some(&set))).unwrap();
    // An empty UID EXPUNGE set is not the same as no set.
    same!(h, expunge(u, MailboxId(3), Some(&UidSet::new()))).unwrap();
    same!(h, search(u, MailboxId(3), &complex_key())).unwrap();
    same!(h, search(u, MailboxId(3), &SearchKey::All)).unwrap();
    let projection = IndexProjection {
        headers: vec!["Subject".into(), "references".into()],
        body_chars: 256,
    };
    let indexed = same!(
        h,
        search_indexed(u, MailboxId(3), &complex_key(), &projection)
    )
    .unwrap();
    assert_eq!(indexed[0].index.body_text, "256");
    same!(
        h,
        search_indexed(
            u,
            MailboxId(3),
            &SearchKey::All,
            &IndexProjection::default()
        )
    )
    .unwrap();
    let changes = same!(h, changes_since(u, MailboxId(3), ModSeq(41))).unwrap();
    assert!(changes.mailbox_gone);
    let quota = same!(h, quota(u)).unwrap();
    assert_eq!(quota.limits.storage_bytes, Some(u64::MAX), "limits survive");
    assert_eq!(quota.limits.messages, None, "unlimited stays unlimited");
    for limits in [
        QuotaLimits {
            storage_bytes: Some(u64::MAX),
            messages: None,
        },
        QuotaLimits {
            storage_bytes: None,
            messages: Some(0),
        },
    ] {
        same!(h, set_account_quota(u, limits)).unwrap();
    }
    // The recorded call carries the bound: it crosses the wire unchanged.
    let recent = same!(h, claim_recent(u, MailboxId(u64::MAX), Uid(u32::MAX - 1))).unwrap();
    assert_eq!((recent.from, recent.to), (Uid(7), Uid(u32::MAX)));

    // Every call above reached the store exactly once.
    assert_eq!(
        h.served.calls.lock().unwrap().len(),
        h.local.calls.lock().unwrap().len()
    );
}

/// A search nested far deeper than prost's recursion limit (100 message levels, which ~50
/// nested ORs used to reach) crosses the wire unchanged, as a flat program.
#[tokio::test]
async fn deeply_nested_searches_cross_the_wire() {
    let h = harness().await;
    let u = UserId(7);
    let mut deep = SearchKey::Flag("\\Seen".into());
    for i in 0..500 {
        deep = if i % 3 == 0 {
            SearchKey::Not(Box::new(deep))
        } else {
            SearchKey::Or(Box::new(SearchKey::Text(format!("t{i}"))), Box::new(deep))
        };
    }
    let deep = SearchKey::And(vec![deep, SearchKey::All]);
    same!(h, search(u, MailboxId(3), &deep)).unwrap();
    let projection = IndexProjection {
        headers: vec!["Subject".into()],
        body_chars: 10,
    };
    same!(h, search_indexed(u, MailboxId(3), &deep, &projection)).unwrap();
}

#[tokio::test]
async fn authentication_round_trips() {
    let h = harness().await;
    let client = &h.running.client;
    assert_eq!(
        client.authenticate("alice", "wonderland", None).await,
        Ok(h.alice)
    );
    assert_eq!(
        client.authenticate("Alice", "wonderland", None).await,
        Ok(h.alice)
    );
    assert_eq!(
        client.authenticate("alice", "wrong", None).await,
        Err(MetaError::AuthenticationFailed)
    );
    assert_eq!(
        client.authenticate("nobody", "x", None).await,
        Err(MetaError::AuthenticationFailed)
    );
    assert_eq!(client.lookup("ALICE").await, Ok(Some(h.alice)));
    assert_eq!(client.lookup("nobody").await, Ok(None));
}

#[tokio::test]
async fn every_error_variant_survives_the_wire() {
    let h = harness().await;
    let u = UserId(7);
    let errors = [
        MetaError::NotFound("mailbox Nope".into()),
        MetaError::AlreadyExists("mailbox Dup".into()),
        MetaError::Invalid("cannot delete INBOX".into()),
        MetaError::OverQuota("mailbox full".into()),
        MetaError::AuthenticationFailed,
        MetaError::Unavailable("redis is down".into()),
        MetaError::Internal("corrupt record ✗".into()),
        MetaError::NotFound(String::new()),
    ];
    for err in errors {
        *h.served.fail_with.lock().unwrap() = Some(err.clone());
        let c = &h.running.client;
        assert_eq!(c.select(u, "x").await, Err(err.clone()));
        assert_eq!(c.delete_mailbox(u, "x").await, Err(err.clone()));
        assert_eq!(
            c.store_flags(u, MailboxId(1), &UidSet::new(), FlagOp::Add, &[], None)
                .await,
            Err(err.clone())
        );
        assert_eq!(c.quota(u).await, Err(err.clone()), "quota");
        assert_eq!(
            c.set_account_quota(u, QuotaLimits::default()).await,
            Err(err.clone()),
            "set_account_quota"
        );
        assert_eq!(
            c.claim_recent(u, MailboxId(1), Uid(2)).await,
            Err(err.clone()),
            "claim_recent"
        );
        assert_eq!(
            c.watch(u).await.map(|_| ()).err(),
            Some(err.clone()),
            "watch"
        );
    }
}

#[tokio::test]
async fn malformed_requests_are_invalid_argument() {
    let h = harness().await;
    let mut raw = common::authorized_raw_client(h.running.addr).await;
    let invalid = |status: tonic::Status| {
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(matches!(meta_from_status(&status), MetaError::Invalid(_)));
    };

    // An unset user id must not silently name an account.
    invalid(
        raw.list_mailboxes(pb::ListMailboxesRequest { user_id: 0 })
            .await
            .unwrap_err(),
    );
    invalid(
        raw.watch(pb::WatchRequest { user_id: 0 })
            .await
            .map(|_| ())
            .unwrap_err(),
    );
    invalid(
        raw.store_flags(pb::StoreFlagsRequest {
            user_id: 7,
            mailbox_id: 1,
            uids: Some(pb::UidSet::default()),
            op: pb::FlagOp::Unspecified as i32,
            ..Default::default()
        })
        .await
        .unwrap_err(),
    );
    invalid(
        raw.fetch(pb::FetchRequest {
            user_id: 7,
            mailbox_id: 1,
            uids: None,
            with_summary: false,
        })
        .await
        .unwrap_err(),
    );
    invalid(
        raw.search(pb::SearchRequest {
            user_id: 7,
            mailbox_id: 1,
            key: Some(pb::SearchKey { key: None }),
            program: None,
        })
        .await
        .unwrap_err(),
    );
    invalid(
        raw.create_mailbox(pb::CreateMailboxRequest {
            user_id: 7,
            name: "x".into(),
            special_use: 42,
        })
        .await
        .unwrap_err(),
    );
    invalid(
        raw.append(pb::AppendRequest {
            user_id: 7,
            mailbox: "INBOX".into(),
            messages: vec![pb::NewMessage {
                blob: "u/7/x".into(),
                internal_date: None,
                ..Default::default()
            }],
        })
        .await
        .unwrap_err(),
    );
    // None of them reached the store.
    assert!(h.served.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn watch_delivers_events_of_the_user() {
    let h = harness().await;
    let mut stream = h.running.client.watch(UserId(7)).await.unwrap();
    let mine = ChangeEvent {
        user: UserId(7),
        mailbox: MailboxId(3),
        modseq: ModSeq(12),
        kind: ChangeKind::Appended,
        published_unix_micros: 1_700_000_000_123_456,
    };
    let theirs = ChangeEvent {
        user: UserId(8),
        ..mine
    };
    // The call returns once the server has subscribed: nothing sent from now on is missed.
    h.served.events.send(theirs).unwrap();
    for kind in [
        ChangeKind::Appended,
        ChangeKind::Flags,
        ChangeKind::Expunged,
        ChangeKind::MailboxList,
        ChangeKind::AccountRevoked,
    ] {
        h.served.events.send(ChangeEvent { kind, ..mine }).unwrap();
    }
    for kind in [
        ChangeKind::Appended,
        ChangeKind::Flags,
        ChangeKind::Expunged,
        ChangeKind::MailboxList,
        ChangeKind::AccountRevoked,
    ] {
        let got = tokio::time::timeout(WAIT, stream.next()).await.unwrap();
        assert_eq!(got, Some(ChangeEvent { kind, ..mine }));
    }
    // The "resync everything" hint (mailbox 0, modseq 0) crosses the wire unchanged.
    let resync = ChangeEvent {
        user: UserId(7),
        mailbox: MailboxId(0),
        modseq: ModSeq(0),
        kind: ChangeKind::MailboxList,
        published_unix_micros: 0,
    };
    h.served.events.send(resync).unwrap();
    let got = tokio::time::timeout(WAIT, stream.next()).await.unwrap();
    assert_eq!(got, Some(resync));
}

async fn wait_for(mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn watch_subscription_ends_when_the_client_goes_away() {
    let h = harness().await;
    let stream = h.running.client.watch(UserId(7)).await.unwrap();
    assert_eq!(h.served.events.receiver_count(), 1);
    drop(stream);
    wait_for(|| h.served.events.receiver_count() == 0).await;
}

#[tokio::test]
async fn watch_ends_and_server_returns_on_shutdown() {
    let h = harness().await;
    let mut stream = h.running.client.watch(UserId(7)).await.unwrap();
    h.running.shutdown.cancel();
    let end = tokio::time::timeout(WAIT, stream.next()).await.unwrap();
    assert_eq!(end, None);
    let served = tokio::time::timeout(WAIT, h.running.task).await.unwrap();
    assert!(served.unwrap().is_ok());
    assert_eq!(h.served.events.receiver_count(), 0);
    // Meta is gone: calls fail as retryable.
    let err = h
        .running
        .client
        .list_mailboxes(UserId(7))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn client_waits_for_meta_and_reconnects() {
    // A free port with nothing behind it yet.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let client = GrpcMetaClient::connect(&format!("http://{addr}"), Some(&test_secret()))
        .await
        .unwrap();
    let err = client.list_subscriptions(UserId(7)).await.unwrap_err();
    assert!(matches!(err, MetaError::Unavailable(_)), "{err:?}");
    assert!(matches!(
        client.watch(UserId(7)).await.map(|_| ()),
        Err(MetaError::Unavailable(_))
    ));

    // Meta comes up on that address, goes down and comes back: the same client follows.
    for _ in 0..2 {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let store = Arc::new(EchoStore::default());
        let (_accounts_dir, accounts) = embedded_store().await;
        let auth = Arc::new(PasswordAuthenticator::new(accounts));
        let shutdown = tokio_util::sync::CancellationToken::new();
        let callers = CallerCheck::bearer(&test_secret());
        let task = tokio::spawn(serve_grpc(listener, store, auth, callers, shutdown.clone()));
        let mut result = client.list_subscriptions(UserId(7)).await;
        for _ in 0..50 {
            if result.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            result = client.list_subscriptions(UserId(7)).await;
        }
        assert_eq!(
            result.unwrap(),
            ["INBOX".to_string(), "Gone/but subscribed".to_string()]
        );
        shutdown.cancel();
        tokio::time::timeout(WAIT, task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn bad_url_is_invalid() {
    assert!(matches!(
        GrpcMetaClient::connect("not a url at all", None).await,
        Err(MetaError::Invalid(_))
    ));
}

#[tokio::test]
async fn large_responses_pass() {
    // A FETCH of a big mailbox is far above tonic's default 4 MiB message limit.
    let h = harness().await;
    let set = UidSet::from_ranges([(1, 60_000)]);
    let records = h
        .running
        .client
        .fetch(UserId(7), MailboxId(1), &set, true)
        .await
        .unwrap();
    assert_eq!(records.len(), 60_000);
    assert_eq!(records[59_999].uid, Uid(60_000));
}

#[tokio::test]
async fn many_open_watches_do_not_block_calls() {
    // One front-end connection carries every session; idle Watch streams must not use up the
    // connection's stream limit.
    let h = harness().await;
    let mut streams = Vec::new();
    for i in 0..300 {
        let watch = h.running.client.watch(UserId(1 + i % 7));
        streams.push(tokio::time::timeout(WAIT, watch).await.unwrap().unwrap());
    }
    let names = tokio::time::timeout(WAIT, h.running.client.list_subscriptions(UserId(7)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(names.len(), 2);
    assert_eq!(h.served.events.receiver_count(), 300);
}

/// Issue 9 item 3: meta's gRPC port answers only callers holding the installation's secret.
/// Before the bearer check, any pod that could connect read every mailbox with a raw client.
#[tokio::test]
async fn calls_without_the_installation_secret_are_refused() {
    let h = harness().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", h.running.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = pb::meta_client::MetaClient::new(channel);
    let with_bearer = |value: &str| {
        let mut request = tonic::Request::new(pb::ListMailboxesRequest { user_id: h.alice.0 });
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
        request
    };

    // No bearer, a wrong one, the right one under another scheme: all refused.
    let refused = [
        raw.list_mailboxes(pb::ListMailboxesRequest { user_id: h.alice.0 })
            .await,
        raw.list_mailboxes(with_bearer("Bearer test-secret-0123456789abcdef012345678X"))
            .await,
        raw.list_mailboxes(with_bearer(&format!("Basic {}", common::TEST_SECRET)))
            .await,
    ];
    for result in refused {
        assert_eq!(
            result.unwrap_err().code(),
            tonic::Code::Unauthenticated,
            "refused before any RPC runs"
        );
    }
    // Login attempts with a forged client address (the throttle's key) and Watch are refused too.
    let login = raw
        .authenticate(pb::AuthenticateRequest {
            name: "alice".into(),
            password: "guess".into(),
            client_address: "192.0.2.1".into(),
        })
        .await;
    assert_eq!(login.unwrap_err().code(), tonic::Code::Unauthenticated);
    let watch = raw
        .watch(pb::WatchRequest { user_id: h.alice.0 })
        .await
        .map(|_| ());
    assert_eq!(watch.unwrap_err().code(), tonic::Code::Unauthenticated);
    assert!(
        h.served.calls.lock().unwrap().is_empty(),
        "the store saw none of the refused calls"
    );

    // The right bearer is served.
    let served = raw
        .list_mailboxes(with_bearer(&format!("Bearer {}", common::TEST_SECRET)))
        .await;
    assert!(served.is_ok(), "{served:?}");

    // A node configured with another secret learns that it is misconfigured, not that a user
    // failed to log in.
    let wrong = ServiceSecret::parse("another-secret-0123456789abcdef0123456").unwrap();
    let misconfigured =
        GrpcMetaClient::connect(&format!("http://{}", h.running.addr), Some(&wrong))
            .await
            .unwrap();
    let err = misconfigured.list_mailboxes(h.alice).await.unwrap_err();
    assert!(matches!(err, MetaError::Internal(_)), "{err:?}");
    let err = misconfigured
        .authenticate("alice", "wonderland", None)
        .await
        .unwrap_err();
    assert!(matches!(err, MetaError::Internal(_)), "{err:?}");
}

/// `MailboxSnapshot` as meta sent it before snapshots carried flags (fields 1–5).
#[derive(Clone, PartialEq, prost::Message)]
struct SnapshotBeforeFlags {
    #[prost(message, optional, tag = "1")]
    info: Option<pb::MailboxInfo>,
    #[prost(uint32, repeated, tag = "2")]
    uids: Vec<u32>,
    #[prost(uint32, optional, tag = "3")]
    first_unseen: Option<u32>,
    #[prost(string, repeated, tag = "4")]
    keywords: Vec<String>,
    #[prost(bool, tag = "5")]
    keywords_full: bool,
}

/// A snapshot's flags survive the wire, and peers from before they existed keep working both
/// ways: an older meta's snapshot reads as flags unknown, an older front-end skips the new
/// fields and reads the rest as before.
#[test]
fn snapshot_flags_cross_the_wire_and_old_peers_interoperate() {
    use prost::Message;
    let snapshot = MailboxSnapshot {
        info: MailboxInfo {
            id: MailboxId(3),
            name: "INBOX".into(),
            uid_validity: UidValidity(9),
            uid_next: Uid(8),
            highest_modseq: ModSeq(12),
            exists: 3,
            unseen: 1,
            deleted: 0,
            size: 300,
            special_use: None,
            recent: 0,
        },
        uids: vec![Uid(2), Uid(5), Uid(7)],
        first_unseen: Some(Uid(5)),
        keywords: vec!["$Work".into()],
        keywords_full: false,
        flags: SnapshotFlags {
            lists: vec![vec!["\\Seen".into(), "$Work".into()], vec![]],
            list_of: vec![0, 1, 0],
            modseqs: vec![ModSeq(4), ModSeq(12), ModSeq(u64::MAX)],
        },
    };
    let wire = pb::MailboxSnapshot::from(snapshot.clone()).encode_to_vec();
    let back = MailboxSnapshot::try_from(pb::MailboxSnapshot::decode(&wire[..]).unwrap()).unwrap();
    assert_eq!(back, snapshot);
    assert_eq!(back.flags.get(1), Some((ModSeq(12), &[][..])));

    let old = SnapshotBeforeFlags::decode(&wire[..]).expect("an old front-end decodes it");
    assert_eq!(old.uids, [2, 5, 7]);
    assert_eq!((old.first_unseen, old.keywords_full), (Some(5), false));

    let from_old_meta = pb::MailboxSnapshot::decode(&old.encode_to_vec()[..]).unwrap();
    let read = MailboxSnapshot::try_from(from_old_meta).unwrap();
    assert_eq!(read.flags, SnapshotFlags::default());
    assert!(!read.flags.covers(read.uids.len()), "flags unknown");
    assert_eq!(
        MailboxSnapshot {
            flags: SnapshotFlags::default(),
            ..snapshot
        },
        read
    );
}
