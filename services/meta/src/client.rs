//! `MailStore` and `Authenticator` over gRPC: what the IMAP front-end and LMTP use to reach a
//! remote `yubin meta`.

use crate::convert::{self, WireError, mailbox_info_from_pb, meta_from_status, records_from_pb};
use crate::pb::{self, meta_client::MetaClient};
use crate::server::{KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT, MAX_MESSAGE_BYTES, code_label};
use crate::service_auth::{CallCredentials, ServiceSecret};
use async_trait::async_trait;
use std::time::{Duration, Instant};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tracing::Instrument;
use yubin_meta_api::{
    AppendResult, Authenticator, ChangeEvent, ChangeStream, Changes, CopyResult, FlagOp,
    IndexProjection, IndexedMessage, MailStore, MailboxId, MailboxInfo, MailboxSnapshot,
    MessageRecord, MetaError, MetaResult, MetadataDepth, MetadataEntry, ModSeq, NewMessage,
    QuotaUsage, SearchKey, SpecialUse, StoreResult, Uid, UidRange, UidSet, UserId,
};

/// The channel with the interceptor every call goes through (bearer and trace context).
type TracedChannel = InterceptedService<Channel, CallCredentials>;

/// How long a unary call may take before it fails as `Unavailable`; Watch has no such limit.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of the `Meta` service. Cloning is cheap; clones share one HTTP/2 connection, which
/// is re-established on demand after it breaks.
#[derive(Clone)]
pub struct GrpcMetaClient {
    inner: MetaClient<TracedChannel>,
    call_timeout: Duration,
}

impl std::fmt::Debug for GrpcMetaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcMetaClient")
            .field("call_timeout", &self.call_timeout)
            .finish_non_exhaustive()
    }
}

/// Readiness must answer quickly even when meta hangs.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

impl GrpcMetaClient {
    /// A client of the meta service at `url` (e.g. `http://meta:50051`). The connection is made
    /// on first use and re-made after failures, so meta need not be up yet; only a malformed URL
    /// fails here (`Invalid`). Every call carries `secret` as its bearer (see
    /// [`crate::service_auth`]); `None` only reaches a meta started with `--grpc-insecure`.
    pub async fn connect(
        url: &str,
        secret: Option<&ServiceSecret>,
    ) -> Result<GrpcMetaClient, MetaError> {
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| MetaError::Invalid(format!("bad meta url {url:?}: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .tcp_keepalive(Some(KEEPALIVE_INTERVAL))
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            // Watch streams sit idle for long stretches; pinging them is what detects a dead
            // meta node so the front-end can re-watch elsewhere.
            .keep_alive_while_idle(true)
            .http2_adaptive_window(true);
        Ok(GrpcMetaClient::from_channel(
            endpoint.connect_lazy(),
            secret,
        ))
    }

    /// A client over an existing channel (custom TLS, load balancing, tests).
    pub fn from_channel(channel: Channel, secret: Option<&ServiceSecret>) -> GrpcMetaClient {
        let inner = MetaClient::with_interceptor(channel, CallCredentials::new(secret))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        GrpcMetaClient {
            inner,
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    /// One round trip through meta to its store (a lookup of a name no account can have), for
    /// the front-end's readiness probe: it fails when meta or Redis cannot be reached.
    pub async fn ping(&self) -> MetaResult<()> {
        let mut probe = self.clone();
        probe.call_timeout = PING_TIMEOUT;
        Authenticator::lookup(&probe, "").await.map(|_| ())
    }

    /// Sets the per-call timeout of unary calls.
    pub fn with_call_timeout(mut self, timeout: Duration) -> GrpcMetaClient {
        self.call_timeout = timeout;
        self
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.call_timeout);
        request
    }

    fn client(&self) -> MetaClient<TracedChannel> {
        self.inner.clone()
    }
}

/// Runs one RPC, records its latency and outcome, and maps its status to a `MetaError`.
async fn call<T>(
    method: &'static str,
    rpc: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> MetaResult<T> {
    let start = Instant::now();
    // The interceptor runs inside this span, so meta's side of the call becomes its child.
    let result = rpc.instrument(crate::trace::client_span(method)).await;
    let code = match &result {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    };
    metrics::histogram!("yubin_grpc_client_duration_seconds", "method" => method)
        .record(start.elapsed().as_secs_f64());
    metrics::counter!(
        "yubin_grpc_client_requests_total",
        "method" => method,
        "code" => code_label(code)
    )
    .increment(1);
    result
        .map(tonic::Response::into_inner)
        .map_err(|status| meta_from_status(&status))
}

#[async_trait]
impl MailStore for GrpcMetaClient {
    async fn list_mailboxes(&self, user: UserId) -> MetaResult<Vec<MailboxInfo>> {
        let req = self.request(pb::ListMailboxesRequest { user_id: user.0 });
        let resp = call("list_mailboxes", self.client().list_mailboxes(req)).await?;
        resp.mailboxes
            .into_iter()
            .map(|m| MailboxInfo::try_from(m).map_err(MetaError::from))
            .collect()
    }

    async fn list_subscriptions(&self, user: UserId) -> MetaResult<Vec<String>> {
        let req = self.request(pb::ListSubscriptionsRequest { user_id: user.0 });
        Ok(
            call("list_subscriptions", self.client().list_subscriptions(req))
                .await?
                .names,
        )
    }

    async fn set_subscribed(&self, user: UserId, name: &str, subscribed: bool) -> MetaResult<()> {
        let req = self.request(pb::SetSubscribedRequest {
            user_id: user.0,
            name: name.to_string(),
            subscribed,
        });
        call("set_subscribed", self.client().set_subscribed(req)).await?;
        Ok(())
    }

    async fn create_mailbox(
        &self,
        user: UserId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> MetaResult<MailboxInfo> {
        let req = self.request(pb::CreateMailboxRequest {
            user_id: user.0,
            name: name.to_string(),
            special_use: convert::special_use_to_pb(special_use),
        });
        let resp = call("create_mailbox", self.client().create_mailbox(req)).await?;
        Ok(mailbox_info_from_pb(resp.mailbox)?)
    }

    async fn delete_mailbox(&self, user: UserId, name: &str) -> MetaResult<()> {
        let req = self.request(pb::DeleteMailboxRequest {
            user_id: user.0,
            name: name.to_string(),
        });
        call("delete_mailbox", self.client().delete_mailbox(req)).await?;
        Ok(())
    }

    async fn rename_mailbox(&self, user: UserId, from: &str, to: &str) -> MetaResult<()> {
        let req = self.request(pb::RenameMailboxRequest {
            user_id: user.0,
            from: from.to_string(),
            to: to.to_string(),
        });
        call("rename_mailbox", self.client().rename_mailbox(req)).await?;
        Ok(())
    }

    async fn mailbox_status(&self, user: UserId, name: &str) -> MetaResult<MailboxInfo> {
        let req = self.request(pb::MailboxStatusRequest {
            user_id: user.0,
            name: name.to_string(),
        });
        let resp = call("mailbox_status", self.client().mailbox_status(req)).await?;
        Ok(mailbox_info_from_pb(resp.mailbox)?)
    }

    async fn select(&self, user: UserId, name: &str) -> MetaResult<MailboxSnapshot> {
        let req = self.request(pb::SelectRequest {
            user_id: user.0,
            name: name.to_string(),
        });
        let resp = call("select", self.client().select(req)).await?;
        let snapshot = resp
            .snapshot
            .ok_or_else(|| WireError("missing snapshot".into()))?;
        Ok(MailboxSnapshot::try_from(snapshot)?)
    }

    async fn append(
        &self,
        user: UserId,
        mailbox: &str,
        messages: Vec<NewMessage>,
    ) -> MetaResult<AppendResult> {
        let req = self.request(pb::AppendRequest {
            user_id: user.0,
            mailbox: mailbox.to_string(),
            messages: messages.into_iter().map(Into::into).collect(),
        });
        Ok(call("append", self.client().append(req)).await?.into())
    }

    async fn fetch(
        &self,
        user: UserId,
        mailbox: MailboxId,
        uids: &UidSet,
        with_summary: bool,
    ) -> MetaResult<Vec<MessageRecord>> {
        let req = self.request(pb::FetchRequest {
            user_id: user.0,
            mailbox_id: mailbox.0,
            uids: Some(uids.into()),
            with_summary,
        });
        let resp = call("fetch", self.client().fetch(req)).await?;
        Ok(records_from_pb(resp.messages)?)
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
        let req = self.request(pb::StoreFlagsRequest {
            user_id: user.0,
            mailbox_id: mailbox.0,
            uids: Some(uids.into()),
            op: convert::flag_op_to_pb(op),
            flags: flags.to_vec(),
            unchanged_since: unchanged_since.map(|m| m.0),
        });
        Ok(call("store_flags", self.client().store_flags(req))
            .await?
            .into())
    }

    async fn copy_messages(
        &self,
        user: UserId,
        source: MailboxId,
        uids: &UidSet,
        destination: &str,
        remove_source: bool,
    ) -> MetaResult<CopyResult> {
        let req = self.request(pb::CopyMessagesRequest {
            user_id: user.0,
            source_mailbox_id: source.0,
            uids: Some(uids.into()),
            destination: destination.to_string(),
            remove_source,
        });
        Ok(call("copy_messages", self.client().copy_messages(req))
            .await?
            .into())
    }

    async fn expunge(
        &self,
        user: UserId,
        mailbox: MailboxId,
        uids: Option<&UidSet>,
    ) -> MetaResult<Vec<Uid>> {
        let req = self.request(pb::ExpungeRequest {
            user_id: user.0,
            mailbox_id: mailbox.0,
            uids: uids.map(Into::into),
        });
        Ok(convert::uids_from_pb(
            call("expunge", self.client().expunge(req)).await?.uids,
        ))
    }

    async fn search(
        &self,
        user: UserId,
        mailbox: MailboxId,
        key: &SearchKey,
    ) -> MetaResult<Vec<Uid>> {
        let req = self.request(pb::SearchRequest {
            user_id: user.0,
            mailbox_id: mailbox.0,
            key: None,
            program: Some(crate::search_program::to_program(key)),
        });
        Ok(convert::uids_from_pb(
            call("search", self.client().search(req)).await?.uids,
        ))
    }

    async fn search_indexed(
        &self,
        user: UserId,
        mailbox: MailboxId,
        key: &SearchKey,
        projection: &IndexProjection,
    ) -> MetaResult<Vec<IndexedMessage>> {
        let req = self.request(pb::SearchIndexedRequest {
            user_id: user.0,
            mailbox_id: mailbox.0,
            key: None,
            program: Some(crate::search_program::to_program(key)),
            headers: projection.headers.clone(),
            body_chars: projection.body_chars,
        });
        call("search_indexed", self.client().search_indexed(req))
            .await?
            .messages
            .into_iter()
            .map(|m| IndexedMessage::try_from(m).map_err(MetaError::from))
            .collect()
    }

    async fn changes_since(
        &self,
        user: UserId,
        mailbox: MailboxId,
        since: ModSeq,
    ) -> MetaResult<Changes> {
        let req = self.request(pb::ChangesSinceRequest {
            user_id: user.0,
            mailbox_id: mailbox.0,
            since: since.0,
        });
        let resp = call("changes_since", self.client().changes_since(req)).await?;
        Ok(Changes::try_from(resp)?)
    }

    async fn quota(&self, user: UserId) -> MetaResult<QuotaUsage> {
        let req = self.request(pb::GetQuotaRequest { user_id: user.0 });
        Ok(call("get_quota", self.client().get_quota(req))
            .await?
            .into())
    }

    async fn set_account_quota(
        &self,
        user: UserId,
        limits: yubin_meta_api::QuotaLimits,
    ) -> MetaResult<()> {
        let req = self.request(pb::SetQuotaRequest {
            user_id: user.0,
            storage_limit_bytes: limits.storage_bytes,
            message_limit: limits.messages,
        });
        call("set_quota", self.client().set_quota(req)).await?;
        Ok(())
    }

    async fn claim_recent(
        &self,
        user: UserId,
        mailbox: MailboxId,
        up_to: Uid,
    ) -> MetaResult<UidRange> {
        let req = self.request(pb::ClaimRecentRequest {
            user_id: user.0,
            mailbox_id: mailbox.0,
            up_to_uid: up_to.0,
        });
        let resp = call("claim_recent", self.client().claim_recent(req)).await?;
        Ok(UidRange {
            from: Uid(resp.from_uid),
            to: Uid(resp.to_uid),
        })
    }

    async fn get_metadata(
        &self,
        user: UserId,
        mailbox: Option<&str>,
        entries: &[String],
        depth: MetadataDepth,
    ) -> MetaResult<Vec<MetadataEntry>> {
        let req = self.request(pb::GetMetadataRequest {
            user_id: user.0,
            mailbox: mailbox.map(str::to_string),
            entries: entries.to_vec(),
            depth: convert::metadata_depth_to_pb(depth),
        });
        let resp = call("get_metadata", self.client().get_metadata(req)).await?;
        Ok(resp
            .entries
            .into_iter()
            .map(|e| MetadataEntry {
                name: e.name,
                value: e.value.to_vec(),
            })
            .collect())
    }

    async fn set_metadata(
        &self,
        user: UserId,
        mailbox: Option<&str>,
        entries: &[(String, Option<Vec<u8>>)],
        max_entries: u32,
    ) -> MetaResult<()> {
        let req = self.request(pb::SetMetadataRequest {
            user_id: user.0,
            mailbox: mailbox.map(str::to_string),
            entries: entries
                .iter()
                .map(|(name, value)| pb::MetadataUpdate {
                    name: name.clone(),
                    value: value.as_deref().map(bytes::Bytes::copy_from_slice),
                })
                .collect(),
            max_entries,
        });
        call("set_metadata", self.client().set_metadata(req)).await?;
        Ok(())
    }

    async fn watch(&self, user: UserId) -> MetaResult<ChangeStream> {
        // No timeout: the stream lives as long as the session watches. The call returns once
        // meta has subscribed, so every change made after it is hinted.
        let req = tonic::Request::new(pb::WatchRequest { user_id: user.0 });
        let stream = call("watch", self.client().watch(req)).await?;
        let events = futures::stream::unfold(stream, |mut stream| async move {
            loop {
                match stream.message().await {
                    Ok(Some(event)) => match ChangeEvent::try_from(event) {
                        Ok(event) => return Some((event, stream)),
                        // A hint that cannot be read is a lost hint; MODSEQ catch-up covers it.
                        Err(err) => tracing::warn!(error = %err, "dropping malformed change event"),
                    },
                    Ok(None) => return None,
                    Err(status) => {
                        tracing::debug!(status = %status, "watch stream broke");
                        return None;
                    }
                }
            }
        });
        Ok(Box::pin(events))
    }
}

#[async_trait]
impl Authenticator for GrpcMetaClient {
    async fn authenticate(
        &self,
        name: &str,
        password: &str,
        client: Option<std::net::IpAddr>,
    ) -> MetaResult<UserId> {
        let req = self.request(pb::AuthenticateRequest {
            name: name.to_string(),
            password: password.to_string(),
            client_address: client.map(|ip| ip.to_string()).unwrap_or_default(),
        });
        let resp = call("authenticate", self.client().authenticate(req)).await?;
        Ok(convert::user_id(resp.user_id)?)
    }

    async fn authenticate_bearer(
        &self,
        token: &str,
        authzid: Option<&str>,
        client: Option<std::net::IpAddr>,
    ) -> MetaResult<UserId> {
        let req = self.request(pb::AuthenticateBearerRequest {
            token: token.to_string(),
            authzid: authzid.map(str::to_string),
            client_address: client.map(|ip| ip.to_string()).unwrap_or_default(),
        });
        let resp = call(
            "authenticate_bearer",
            self.client().authenticate_bearer(req),
        )
        .await?;
        Ok(convert::user_id(resp.user_id)?)
    }

    async fn accepts_bearer_tokens(&self) -> MetaResult<bool> {
        let req = self.request(pb::AuthMechanismsRequest {});
        let resp = call("auth_mechanisms", self.client().auth_mechanisms(req)).await?;
        Ok(resp.bearer_tokens)
    }

    async fn lookup(&self, name: &str) -> MetaResult<Option<UserId>> {
        let req = self.request(pb::LookupUserRequest {
            name: name.to_string(),
        });
        let resp = call("lookup_user", self.client().lookup_user(req)).await?;
        resp.user_id
            .map(|id| convert::user_id(id).map_err(MetaError::from))
            .transpose()
    }
}
