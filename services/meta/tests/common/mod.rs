//! Test doubles and a harness that serves the gRPC API on a free loopback port.
#![allow(dead_code)]

use async_trait::async_trait;
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_util::sync::CancellationToken;
use yubin_meta::{CallerCheck, GrpcMetaClient, ServeError, ServiceSecret, serve_grpc};
use yubin_meta_api::*;

/// A real embedded store in a temporary directory (kept alive by the returned guard), for the
/// accounts the authenticator and the admin API work on.
pub async fn embedded_store() -> (tempfile::TempDir, Arc<yubin_meta_store::EmbeddedStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = yubin_meta_store::EmbeddedStore::open(dir.path().join("meta.redb"))
        .await
        .unwrap();
    (dir, Arc::new(store))
}

/// A `MailStore` that records the arguments of every call, answers with fixed values that use
/// every field, and fails every call with `fail_with` when set: what the wire must carry
/// unchanged in both directions.
pub struct EchoStore {
    pub calls: Mutex<Vec<String>>,
    pub fail_with: Mutex<Option<MetaError>>,
    pub events: broadcast::Sender<ChangeEvent>,
}

impl Default for EchoStore {
    fn default() -> EchoStore {
        EchoStore {
            calls: Mutex::new(Vec::new()),
            fail_with: Mutex::new(None),
            events: broadcast::channel(64).0,
        }
    }
}

impl EchoStore {
    fn record(&self, call: String) -> MetaResult<()> {
        self.calls.lock().unwrap().push(call);
        match self.fail_with.lock().unwrap().clone() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    pub fn last_call(&self) -> String {
        self.calls
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

pub fn mailbox_info() -> MailboxInfo {
    MailboxInfo {
        id: MailboxId(u64::MAX - 1),
        name: "Archive/2024/日本語".into(),
        uid_validity: UidValidity(u32::MAX),
        uid_next: Uid(4_000_000_000),
        highest_modseq: ModSeq(u64::MAX),
        exists: 3,
        unseen: 2,
        deleted: 1,
        size: 1 << 40,
        special_use: Some(SpecialUse::Archive),
        recent: u32::MAX,
    }
}

pub fn record(uid: u32, summary: Option<Bytes>) -> MessageRecord {
    MessageRecord {
        uid: Uid(uid),
        modseq: ModSeq(u64::from(uid) + 100),
        flags: vec!["\\Seen".into(), "$Forwarded".into()],
        internal_date: InternalDate {
            unix_seconds: -86_400,
            tz_offset_minutes: -330,
        },
        size: 12_345,
        blob: BlobKey(format!("u/7/{uid:064x}")),
        summary,
    }
}

/// [`new_message`] with its body under `user`'s prefix (meta refuses any other key).
pub fn new_message_for(user: UserId, n: u8) -> NewMessage {
    NewMessage {
        blob: BlobKey::for_content(user, &format!("{n:064x}")),
        ..new_message(n)
    }
}

pub fn new_message(n: u8) -> NewMessage {
    NewMessage {
        blob: BlobKey(format!("u/7/{n:064x}")),
        size: 100 + u64::from(n),
        internal_date: InternalDate {
            unix_seconds: 1_700_000_000,
            tz_offset_minutes: 540,
        },
        flags: vec!["\\Draft".into()],
        summary: Bytes::from(vec![n, 0, 255]),
        index: SearchIndex {
            headers: vec![
                ("Subject".into(), "=?utf-8?q?not decoded?= 件名".into()),
                ("X-Empty".into(), String::new()),
            ],
            sent_date: if n.is_multiple_of(2) {
                Some(InternalDate {
                    unix_seconds: 1,
                    tz_offset_minutes: -60,
                })
            } else {
                None
            },
            body_text: "body text".into(),
        },
    }
}

#[async_trait]
impl MailStore for EchoStore {
    async fn list_mailboxes(&self, user: UserId) -> MetaResult<Vec<MailboxInfo>> {
        self.record(format!("list_mailboxes {user:?}"))?;
        let mut inbox = mailbox_info();
        inbox.name = "INBOX".into();
        inbox.special_use = None;
        Ok(vec![inbox, mailbox_info()])
    }

    async fn list_subscriptions(&self, user: UserId) -> MetaResult<Vec<String>> {
        self.record(format!("list_subscriptions {user:?}"))?;
        Ok(vec!["INBOX".into(), "Gone/but subscribed".into()])
    }

    async fn set_subscribed(&self, user: UserId, name: &str, subscribed: bool) -> MetaResult<()> {
        self.record(format!("set_subscribed {user:?} {name:?} {subscribed}"))
    }

    async fn create_mailbox(
        &self,
        user: UserId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> MetaResult<MailboxInfo> {
        self.record(format!("create_mailbox {user:?} {name:?} {special_use:?}"))?;
        Ok(MailboxInfo {
            name: name.to_string(),
            special_use,
            ..mailbox_info()
        })
    }

    async fn delete_mailbox(&self, user: UserId, name: &str) -> MetaResult<()> {
        self.record(format!("delete_mailbox {user:?} {name:?}"))
    }

    async fn rename_mailbox(&self, user: UserId, from: &str, to: &str) -> MetaResult<()> {
        self.record(format!("rename_mailbox {user:?} {from:?} {to:?}"))
    }

    async fn mailbox_status(&self, user: UserId, name: &str) -> MetaResult<MailboxInfo> {
        self.record(format!("mailbox_status {user:?} {name:?}"))?;
        Ok(mailbox_info())
    }

    async fn select(&self, user: UserId, name: &str) -> MetaResult<MailboxSnapshot> {
        self.record(format!("select {user:?} {name:?}"))?;
        Ok(MailboxSnapshot {
            info: mailbox_info(),
            uids: vec![Uid(1), Uid(5), Uid(u32::MAX)],
            first_unseen: Some(Uid(5)),
            keywords: vec!["$Junk".into(), "Work".into()],
            keywords_full: true,
            flags: SnapshotFlags {
                lists: vec![vec![], vec!["\\Seen".into(), "$Junk".into()]],
                list_of: vec![1, 0, 1],
                modseqs: vec![ModSeq(4), ModSeq(9), ModSeq(u64::MAX)],
            },
        })
    }

    async fn append(
        &self,
        user: UserId,
        mailbox: &str,
        messages: Vec<NewMessage>,
    ) -> MetaResult<AppendResult> {
        self.record(format!("append {user:?} {mailbox:?} {messages:?}"))?;
        Ok(AppendResult {
            uid_validity: UidValidity(77),
            uids: (0..messages.len() as u32).map(|i| Uid(10 + i)).collect(),
            mailbox: MailboxId(3),
        })
    }

    async fn fetch(
        &self,
        user: UserId,
        mailbox: MailboxId,
        uids: &UidSet,
        with_summary: bool,
    ) -> MetaResult<Vec<MessageRecord>> {
        self.record(format!(
            "fetch {user:?} {mailbox:?} {uids:?} {with_summary}"
        ))?;
        let summary = with_summary.then(|| Bytes::from_static(b"\x01summary"));
        Ok(uids.iter().map(|u| record(u.0, summary.clone())).collect())
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
        self.record(format!(
            "store_flags {user:?} {mailbox:?} {uids:?} {op:?} {flags:?} {unchanged_since:?}"
        ))?;
        Ok(StoreResult {
            updated: vec![
                (Uid(1), ModSeq(9), vec!["\\Seen".into()]),
                (Uid(2), ModSeq(10), vec![]),
            ],
            modified: vec![Uid(3)],
            highest_modseq: ModSeq(10),
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
        self.record(format!(
            "copy_messages {user:?} {source:?} {uids:?} {destination:?} {remove_source}"
        ))?;
        Ok(CopyResult {
            uid_validity: UidValidity(5),
            mapping: vec![(Uid(1), Uid(100)), (Uid(4), Uid(101))],
            destination: MailboxId(9),
        })
    }

    async fn expunge(
        &self,
        user: UserId,
        mailbox: MailboxId,
        uids: Option<&UidSet>,
    ) -> MetaResult<Vec<Uid>> {
        self.record(format!("expunge {user:?} {mailbox:?} {uids:?}"))?;
        Ok(vec![Uid(2), Uid(3)])
    }

    async fn search(
        &self,
        user: UserId,
        mailbox: MailboxId,
        key: &SearchKey,
    ) -> MetaResult<Vec<Uid>> {
        self.record(format!("search {user:?} {mailbox:?} {key:?}"))?;
        Ok(vec![Uid(1), Uid(u32::MAX)])
    }
    async fn search_indexed(
        &self,
        user: UserId,
        mailbox: MailboxId,
        key: &SearchKey,
        projection: &IndexProjection,
    ) -> MetaResult<Vec<IndexedMessage>> {
        self.record(format!(
            "search_indexed {user:?} {mailbox:?} {key:?} {projection:?}"
        ))?;
        Ok(vec![IndexedMessage {
            uid: Uid(u32::MAX),
            size: u64::MAX,
            internal_date: InternalDate {
                unix_seconds: -1,
                tz_offset_minutes: -720,
            },
            index: SearchIndex {
                headers: vec![("Subject".into(), "Grüße".into())],
                sent_date: None,
                body_text: projection.body_chars.to_string(),
            },
        }])
    }

    async fn changes_since(
        &self,
        user: UserId,
        mailbox: MailboxId,
        since: ModSeq,
    ) -> MetaResult<Changes> {
        self.record(format!("changes_since {user:?} {mailbox:?} {since:?}"))?;
        Ok(Changes {
            highest_modseq: ModSeq(since.0 + 5),
            uid_next: Uid(8),
            exists: 4,
            changed: vec![record(6, None), record(7, None)],
            vanished: vec![Uid(2), Uid(4)],
            mailbox_gone: true,
            log_trimmed: false,
        })
    }

    async fn quota(&self, user: UserId) -> MetaResult<QuotaUsage> {
        self.record(format!("quota {user:?}"))?;
        Ok(QuotaUsage {
            limits: QuotaLimits {
                storage_bytes: Some(u64::MAX),
                messages: None,
            },
            storage_bytes: 1 << 40,
            messages: u64::from(u32::MAX) + 1,
        })
    }

    async fn set_account_quota(&self, user: UserId, limits: QuotaLimits) -> MetaResult<()> {
        self.record(format!("set_account_quota {user:?} {limits:?}"))
    }

    async fn claim_recent(
        &self,
        user: UserId,
        mailbox: MailboxId,
        up_to: Uid,
    ) -> MetaResult<UidRange> {
        self.record(format!("claim_recent {user:?} {mailbox:?} {up_to:?}"))?;
        Ok(UidRange {
            from: Uid(7),
            to: Uid(u32::MAX),
        })
    }

    async fn get_metadata(
        &self,
        user: UserId,
        mailbox: Option<&str>,
        entries: &[String],
        depth: MetadataDepth,
    ) -> MetaResult<Vec<MetadataEntry>> {
        self.record(format!(
            "get_metadata {user:?} {mailbox:?} {entries:?} {depth:?}"
        ))?;
        Ok(vec![MetadataEntry {
            name: "/shared/comment".into(),
            value: b"\x00binary".to_vec(),
        }])
    }

    async fn set_metadata(
        &self,
        user: UserId,
        mailbox: Option<&str>,
        entries: &[(String, Option<Vec<u8>>)],
        max_entries: u32,
    ) -> MetaResult<()> {
        self.record(format!(
            "set_metadata {user:?} {mailbox:?} {entries:?} {max_entries}"
        ))
    }

    async fn watch(&self, user: UserId) -> MetaResult<ChangeStream> {
        self.record(format!("watch {user:?}"))?;
        let events = BroadcastStream::new(self.events.subscribe())
            .filter_map(|e| e.ok())
            .filter(move |e| e.user == user);
        Ok(Box::pin(events))
    }
}

/// A running gRPC server on a free loopback port.
pub struct Running {
    pub addr: SocketAddr,
    pub client: GrpcMetaClient,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<Result<(), ServeError>>,
}

/// The secret the test servers demand and the test clients present.
pub const TEST_SECRET: &str = "test-secret-0123456789abcdef0123456789";

pub fn test_secret() -> ServiceSecret {
    ServiceSecret::parse(TEST_SECRET).unwrap()
}

/// A generated client with the bearer of [`TEST_SECRET`], for requests `GrpcMetaClient` would
/// never send.
pub async fn authorized_raw_client(
    addr: SocketAddr,
) -> yubin_meta::pb::meta_client::MetaClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        yubin_meta::CallCredentials,
    >,
> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    yubin_meta::pb::meta_client::MetaClient::with_interceptor(
        channel,
        yubin_meta::CallCredentials::new(Some(&test_secret())),
    )
}

/// Serves on a free port, demanding [`TEST_SECRET`] as every call's bearer; the client has it.
pub async fn serve(mail: Arc<dyn MailStore>, auth: Arc<dyn Authenticator>) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let callers = CallerCheck::bearer(&test_secret());
    let task = tokio::spawn(serve_grpc(listener, mail, auth, callers, shutdown.clone()));
    let client = GrpcMetaClient::connect(&format!("http://{addr}"), Some(&test_secret()))
        .await
        .unwrap();
    Running {
        addr,
        client,
        shutdown,
        task,
    }
}
