//! The metadata store's conformance suite run THROUGH the wire: embedded store → gRPC server →
//! `GrpcMetaClient`. Passing it shows that gRPC preserves every behaviour the front-ends rely on.

mod common;

use async_trait::async_trait;
use futures::StreamExt;
use std::sync::Arc;
use yubin_meta::admin::{AdminBackend, AdminClient, admin_router};
use yubin_meta::auth::{PasswordAuthenticator, PasswordParams};
use yubin_meta::{GrpcMetaClient, pb};
use yubin_meta_api::*;
use yubin_meta_store::EmbeddedStore;

/// Mail operations over gRPC, accounts straight from the store (accounts are managed through
/// the admin API, not the gRPC contract).
struct ViaGrpc {
    mail: GrpcMetaClient,
    accounts: Arc<EmbeddedStore>,
}

#[async_trait]
impl MailStore for ViaGrpc {
    async fn list_mailboxes(&self, user: UserId) -> MetaResult<Vec<MailboxInfo>> {
        self.mail.list_mailboxes(user).await
    }
    async fn list_subscriptions(&self, user: UserId) -> MetaResult<Vec<String>> {
        self.mail.list_subscriptions(user).await
    }
    async fn set_subscribed(&self, user: UserId, name: &str, subscribed: bool) -> MetaResult<()> {
        self.mail.set_subscribed(user, name, subscribed).await
    }
    async fn create_mailbox(
        &self,
        user: UserId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> MetaResult<MailboxInfo> {
        self.mail.create_mailbox(user, name, special_use).await
    }
    async fn delete_mailbox(&self, user: UserId, name: &str) -> MetaResult<()> {
        self.mail.delete_mailbox(user, name).await
    }
    async fn rename_mailbox(&self, user: UserId, from: &str, to: &str) -> MetaResult<()> {
        self.mail.rename_mailbox(user, from, to).await
    }
    async fn mailbox_status(&self, user: UserId, name: &str) -> MetaResult<MailboxInfo> {
        self.mail.mailbox_status(user, name).await
    }
    async fn select(&self, user: UserId, name: &str) -> MetaResult<MailboxSnapshot> {
        self.mail.select(user, name).await
    }
    async fn append(
        &self,
        user: UserId,
        mailbox: &str,
        messages: Vec<NewMessage>,
    ) -> MetaResult<AppendResult> {
        self.mail.append(user, mailbox, messages).await
    }
    async fn fetch(
        &self,
        user: UserId,
        mailbox: MailboxId,
        uids: &UidSet,
        with_summary: bool,
    ) -> MetaResult<Vec<MessageRecord>> {
        self.mail.fetch(user, mailbox, uids, with_summary).await
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
        self.mail
            .store_flags(user, mailbox, uids, op, flags, unchanged_since)
            .await
    }
    async fn copy_messages(
        &self,
        user: UserId,
        source: MailboxId,
        uids: &UidSet,
        destination: &str,
        remove_source: bool,
    ) -> MetaResult<CopyResult> {
        self.mail
            .copy_messages(user, source, uids, destination, remove_source)
            .await
    }
    async fn expunge(
        &self,
        user: UserId,
        mailbox: MailboxId,
        uids: Option<&UidSet>,
    ) -> MetaResult<Vec<Uid>> {
        self.mail.expunge(user, mailbox, uids).await
    }
    async fn search(
        &self,
        user: UserId,
        mailbox: MailboxId,
        key: &SearchKey,
    ) -> MetaResult<Vec<Uid>> {
        self.mail.search(user, mailbox, key).await
    }
    async fn search_indexed(
        &self,
        user: UserId,
        mailbox: MailboxId,
        key: &SearchKey,
        projection: &IndexProjection,
    ) -> MetaResult<Vec<IndexedMessage>> {
        self.mail
            .search_indexed(user, mailbox, key, projection)
            .await
    }
    async fn changes_since(
        &self,
        user: UserId,
        mailbox: MailboxId,
        since: ModSeq,
    ) -> MetaResult<Changes> {
        self.mail.changes_since(user, mailbox, since).await
    }
    async fn watch(&self, user: UserId) -> MetaResult<ChangeStream> {
        self.mail.watch(user).await
    }
    async fn quota(&self, user: UserId) -> MetaResult<QuotaUsage> {
        self.mail.quota(user).await
    }
    async fn set_account_quota(&self, user: UserId, limits: QuotaLimits) -> MetaResult<()> {
        self.mail.set_account_quota(user, limits).await
    }
    async fn claim_recent(
        &self,
        user: UserId,
        mailbox: MailboxId,
        up_to: Uid,
    ) -> MetaResult<UidRange> {
        self.mail.claim_recent(user, mailbox, up_to).await
    }
    async fn get_metadata(
        &self,
        user: UserId,
        mailbox: Option<&str>,
        entries: &[String],
        depth: MetadataDepth,
    ) -> MetaResult<Vec<MetadataEntry>> {
        self.mail.get_metadata(user, mailbox, entries, depth).await
    }
    async fn set_metadata(
        &self,
        user: UserId,
        mailbox: Option<&str>,
        entries: &[(String, Option<Vec<u8>>)],
        max_entries: u32,
    ) -> MetaResult<()> {
        self.mail
            .set_metadata(user, mailbox, entries, max_entries)
            .await
    }
}

#[async_trait]
impl AccountStore for ViaGrpc {
    async fn create_user(&self, name: &str, password_hash: &str) -> MetaResult<UserRecord> {
        self.accounts.create_user(name, password_hash).await
    }
    async fn user_by_name(&self, name: &str) -> MetaResult<Option<UserRecord>> {
        self.accounts.user_by_name(name).await
    }
    async fn set_password_hash(&self, user: UserId, password_hash: &str) -> MetaResult<()> {
        self.accounts.set_password_hash(user, password_hash).await
    }
    async fn list_users(&self) -> MetaResult<Vec<UserRecord>> {
        self.accounts.list_users().await
    }
    async fn list_users_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> MetaResult<Vec<UserRecord>> {
        self.accounts.list_users_page(after, limit).await
    }
    async fn user_by_id(&self, user: UserId) -> MetaResult<Option<UserRecord>> {
        self.accounts.user_by_id(user).await
    }
    async fn set_disabled(&self, user: UserId, disabled: bool) -> MetaResult<()> {
        self.accounts.set_disabled(user, disabled).await
    }
    async fn delete_user(&self, user: UserId) -> MetaResult<()> {
        self.accounts.delete_user(user).await
    }
    async fn set_quota(&self, user: UserId, limits: QuotaLimits) -> MetaResult<()> {
        self.accounts.set_quota(user, limits).await
    }
    async fn put_alias(&self, alias: &Alias) -> MetaResult<()> {
        self.accounts.put_alias(alias).await
    }
    async fn delete_alias(&self, address: &str) -> MetaResult<()> {
        self.accounts.delete_alias(address).await
    }
    async fn list_aliases(&self) -> MetaResult<Vec<Alias>> {
        self.accounts.list_aliases().await
    }
    async fn put_domain(&self, domain: &Domain) -> MetaResult<()> {
        self.accounts.put_domain(domain).await
    }
    async fn delete_domain(&self, name: &str) -> MetaResult<()> {
        self.accounts.delete_domain(name).await
    }
    async fn list_domains(&self) -> MetaResult<Vec<Domain>> {
        self.accounts.list_domains().await
    }
    /// Through meta's `LookupUser` RPC, which answers with the authenticator's `lookup`, which
    /// is the store's `resolve_address`: the whole LMTP recipient path.
    async fn resolve_address(&self, address: &str) -> MetaResult<Option<UserId>> {
        self.mail.lookup(address).await
    }
}

async fn embedded() -> (tempfile::TempDir, Arc<EmbeddedStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path().join("meta.redb"))
        .await
        .unwrap()
        .with_limits(yubin_meta_store::conformance::LIMITS);
    (dir, Arc::new(store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_through_grpc() {
    let (_dir, store) = embedded().await;
    let auth = Arc::new(PasswordAuthenticator::new(store.clone()));
    let running = common::serve(store.clone(), auth).await;
    let via = ViaGrpc {
        mail: running.client.clone(),
        accounts: store,
    };
    yubin_meta_store::conformance::run_all(&via).await;
    running.shutdown.cancel();
    running.task.await.unwrap().unwrap();
}

/// The whole account path: admin API creates the user in the store, the front-end logs in over
/// gRPC, appends, and another session's Watch sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_login_append_watch_end_to_end() {
    let (_dir, store) = embedded().await;
    let params = PasswordParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let blobs_dir = tempfile::tempdir().unwrap();
    let backend = AdminBackend {
        accounts: store.clone(),
        mail: store.clone(),
        blobs: Arc::new(yubin_blob::FsBlobStore::new(blobs_dir.path().to_path_buf())),
    };
    let router = admin_router(backend, Some("t".into()), params);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let admin = AdminClient::new(&format!("http://{admin_addr}"), Some("t".into()));
    let created = admin.create_user("demo", "demo").await.unwrap();

    let auth = Arc::new(PasswordAuthenticator::new(store.clone()));
    let running = common::serve(store.clone(), auth).await;
    let client = &running.client;
    let user = client.authenticate("DEMO", "demo", None).await.unwrap();
    assert_eq!(user.0, created.id);
    assert_eq!(client.lookup("demo").await.unwrap(), Some(user));
    assert_eq!(
        client.authenticate("demo", "wrong", None).await,
        Err(MetaError::AuthenticationFailed)
    );

    let mut watch = client.watch(user).await.unwrap();
    let appended = client
        .append(user, "INBOX", vec![common::new_message_for(user, 1)])
        .await
        .unwrap();
    let event = tokio::time::timeout(std::time::Duration::from_secs(10), watch.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.user, user);
    assert_eq!(event.mailbox, appended.mailbox);
    assert_eq!(event.kind, ChangeKind::Appended);

    let records = client
        .fetch(
            user,
            appended.mailbox,
            &UidSet::from_uids(appended.uids.clone()),
            true,
        )
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].summary, Some(common::new_message(1).summary));

    // Errors from the real store keep their variant across the wire.
    assert!(matches!(
        client.select(user, "No/Such/Box").await,
        Err(MetaError::NotFound(_))
    ));
    assert!(matches!(
        client.create_mailbox(user, "INBOX", None).await,
        Err(MetaError::AlreadyExists(_))
    ));
    assert!(matches!(
        client.delete_mailbox(user, "INBOX").await,
        Err(MetaError::Invalid(_))
    ));

    // A raw request without a user id never reaches the store.
    let mut raw = common::authorized_raw_client(running.addr).await;
    let status = raw
        .list_mailboxes(pb::ListMailboxesRequest { user_id: 0 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
}
