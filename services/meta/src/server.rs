//! The gRPC face of the metadata service: every `MailStore` and `Authenticator` method as one
//! RPC, plus the server-streaming `Watch`.

use crate::convert::{self, WireError, status_from_meta, uid_set_from_pb, user_id};
use crate::pb::{self, meta_server::MetaServer};
use crate::service_auth::CallerCheck;
use futures::{Stream, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status};
use yubin_meta_api::{Authenticator, MailStore, NewMessage, UidSet};

/// The largest message either side of the metadata contract accepts. Tonic's default of 4 MiB is
/// too small for a FETCH of a six-digit mailbox or a SELECT's UID list; this still bounds what a
/// broken peer can make the process buffer.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// How often an idle HTTP/2 connection is pinged, so that a peer that vanished behind a NAT or a
/// dead node is noticed and its Watch streams are dropped.
pub(crate) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
pub(crate) const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Concurrent calls on one connection. A front-end multiplexes every session onto one HTTP/2
/// connection, and each user with an idle session holds a Watch stream open, so hyper's default
/// of 200 would make calls queue behind idle streams.
const MAX_CONCURRENT_STREAMS: u32 = 65_536;

/// Errors of [`serve_grpc`].
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("grpc server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The `Meta` gRPC service over a mail store and an authenticator.
#[derive(Clone)]
pub struct MetaGrpc {
    mail: Arc<dyn MailStore>,
    auth: Arc<dyn Authenticator>,
    /// Ends every Watch stream; without it a graceful shutdown would wait for them forever.
    streams_stop: CancellationToken,
}

impl MetaGrpc {
    pub fn new(mail: Arc<dyn MailStore>, auth: Arc<dyn Authenticator>) -> MetaGrpc {
        MetaGrpc {
            mail,
            auth,
            streams_stop: CancellationToken::new(),
        }
    }

    /// Ends Watch streams when `token` is cancelled.
    pub fn with_shutdown(mut self, token: CancellationToken) -> MetaGrpc {
        self.streams_stop = token;
        self
    }

    /// The tonic service, with the message size limits of the contract.
    pub fn into_service(self) -> MetaServer<MetaGrpc> {
        MetaServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

/// Serves the `Meta` service on `listener` until `shutdown` is cancelled, then ends the Watch
/// streams, lets in-flight calls finish and returns. Every call must first pass `callers`
/// (the installation's bearer, see [`crate::service_auth`]).
pub async fn serve_grpc(
    listener: tokio::net::TcpListener,
    mail: Arc<dyn MailStore>,
    auth: Arc<dyn Authenticator>,
    callers: CallerCheck,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let service = tonic::service::interceptor::InterceptedService::new(
        MetaGrpc::new(mail, auth)
            .with_shutdown(shutdown.clone())
            .into_service(),
        callers,
    );
    let incoming = tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(KEEPALIVE_INTERVAL));
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(Some(MAX_CONCURRENT_STREAMS))
        // Large FETCH answers should not be paced by the 64 KiB default flow-control window.
        .http2_adaptive_window(Some(true))
        // One span per RPC, the child of the caller's span (trace context in the metadata).
        .trace_fn(crate::trace::server_span)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await?;
    Ok(())
}

/// A store answer as the RPC's answer; store bugs are logged here, where the request is known.
fn answer<T>(result: yubin_meta_api::MetaResult<T>) -> Result<T, Status> {
    result.map_err(|err| {
        if matches!(err, yubin_meta_api::MetaError::Internal(_)) {
            tracing::error!(error = %err, "metadata store failed");
        }
        status_from_meta(err)
    })
}

/// The client address an authentication request carries: empty is unknown, anything else must
/// be an IP address (meta throttles on it, so garbage must not silently disable that).
///
/// Meta takes the address as given: only callers that passed the [`CallerCheck`] — Yubin's own
/// front-ends and LMTP nodes, holding the installation's secret — reach this point, so a stranger
/// cannot spread its guesses over made-up addresses to dodge the per-address throttle.
fn client_address(raw: &str) -> Result<Option<std::net::IpAddr>, Status> {
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse().map(Some).map_err(|_| {
        status_from_meta(yubin_meta_api::MetaError::Invalid(format!(
            "client_address {raw:?} is not an IP address"
        )))
    })
}

/// Records the latency and outcome of one RPC.
async fn observed<T>(
    method: &'static str,
    call: impl Future<Output = Result<Response<T>, Status>>,
) -> Result<Response<T>, Status> {
    let start = Instant::now();
    let result = call.await;
    let code = match &result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    };
    metrics::histogram!("yubin_grpc_server_duration_seconds", "method" => method)
        .record(start.elapsed().as_secs_f64());
    metrics::counter!(
        "yubin_grpc_server_requests_total",
        "method" => method,
        "code" => code_label(code)
    )
    .increment(1);
    result
}

/// The gRPC status code as a metric label (the canonical upper-snake names).
pub(crate) fn code_label(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Counts open Watch streams (`yubin_grpc_watch_streams`) for as long as it lives in one.
struct OpenWatch;

impl OpenWatch {
    fn new() -> OpenWatch {
        metrics::gauge!("yubin_grpc_watch_streams").increment(1.0);
        OpenWatch
    }
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        metrics::gauge!("yubin_grpc_watch_streams").decrement(1.0);
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::ChangeEvent, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl pb::meta_server::Meta for MetaGrpc {
    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        observed("authenticate", async move {
            let req = request.into_inner();
            let client = client_address(&req.client_address)?;
            let user = answer(
                self.auth
                    .authenticate(&req.name, &req.password, client)
                    .await,
            )?;
            Ok(Response::new(pb::AuthenticateResponse { user_id: user.0 }))
        })
        .await
    }

    async fn authenticate_bearer(
        &self,
        request: Request<pb::AuthenticateBearerRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        observed("authenticate_bearer", async move {
            let req = request.into_inner();
            let client = client_address(&req.client_address)?;
            let user = answer(
                self.auth
                    .authenticate_bearer(&req.token, req.authzid.as_deref(), client)
                    .await,
            )?;
            Ok(Response::new(pb::AuthenticateResponse { user_id: user.0 }))
        })
        .await
    }

    async fn auth_mechanisms(
        &self,
        _request: Request<pb::AuthMechanismsRequest>,
    ) -> Result<Response<pb::AuthMechanismsResponse>, Status> {
        observed("auth_mechanisms", async move {
            let bearer_tokens = answer(self.auth.accepts_bearer_tokens().await)?;
            Ok(Response::new(pb::AuthMechanismsResponse { bearer_tokens }))
        })
        .await
    }

    async fn lookup_user(
        &self,
        request: Request<pb::LookupUserRequest>,
    ) -> Result<Response<pb::LookupUserResponse>, Status> {
        observed("lookup_user", async move {
            let req = request.into_inner();
            let user = answer(self.auth.lookup(&req.name).await)?;
            Ok(Response::new(pb::LookupUserResponse {
                user_id: user.map(|u| u.0),
            }))
        })
        .await
    }

    async fn list_mailboxes(
        &self,
        request: Request<pb::ListMailboxesRequest>,
    ) -> Result<Response<pb::ListMailboxesResponse>, Status> {
        observed("list_mailboxes", async move {
            let req = request.into_inner();
            let boxes = answer(self.mail.list_mailboxes(user_id(req.user_id)?).await)?;
            Ok(Response::new(pb::ListMailboxesResponse {
                mailboxes: boxes.into_iter().map(Into::into).collect(),
            }))
        })
        .await
    }

    async fn list_subscriptions(
        &self,
        request: Request<pb::ListSubscriptionsRequest>,
    ) -> Result<Response<pb::ListSubscriptionsResponse>, Status> {
        observed("list_subscriptions", async move {
            let req = request.into_inner();
            let names = answer(self.mail.list_subscriptions(user_id(req.user_id)?).await)?;
            Ok(Response::new(pb::ListSubscriptionsResponse { names }))
        })
        .await
    }

    async fn set_subscribed(
        &self,
        request: Request<pb::SetSubscribedRequest>,
    ) -> Result<Response<pb::SetSubscribedResponse>, Status> {
        observed("set_subscribed", async move {
            let req = request.into_inner();
            let user = user_id(req.user_id)?;
            answer(
                self.mail
                    .set_subscribed(user, &req.name, req.subscribed)
                    .await,
            )?;
            Ok(Response::new(pb::SetSubscribedResponse {}))
        })
        .await
    }

    async fn create_mailbox(
        &self,
        request: Request<pb::CreateMailboxRequest>,
    ) -> Result<Response<pb::CreateMailboxResponse>, Status> {
        observed("create_mailbox", async move {
            let req = request.into_inner();
            let user = user_id(req.user_id)?;
            let special_use = convert::special_use_from_pb(req.special_use)?;
            let info = answer(self.mail.create_mailbox(user, &req.name, special_use).await)?;
            Ok(Response::new(pb::CreateMailboxResponse {
                mailbox: Some(info.into()),
            }))
        })
        .await
    }

    async fn delete_mailbox(
        &self,
        request: Request<pb::DeleteMailboxRequest>,
    ) -> Result<Response<pb::DeleteMailboxResponse>, Status> {
        observed("delete_mailbox", async move {
            let req = request.into_inner();
            answer(
                self.mail
                    .delete_mailbox(user_id(req.user_id)?, &req.name)
                    .await,
            )?;
            Ok(Response::new(pb::DeleteMailboxResponse {}))
        })
        .await
    }

    async fn rename_mailbox(
        &self,
        request: Request<pb::RenameMailboxRequest>,
    ) -> Result<Response<pb::RenameMailboxResponse>, Status> {
        observed("rename_mailbox", async move {
            let req = request.into_inner();
            answer(
                self.mail
                    .rename_mailbox(user_id(req.user_id)?, &req.from, &req.to)
                    .await,
            )?;
            Ok(Response::new(pb::RenameMailboxResponse {}))
        })
        .await
    }

    async fn mailbox_status(
        &self,
        request: Request<pb::MailboxStatusRequest>,
    ) -> Result<Response<pb::MailboxStatusResponse>, Status> {
        observed("mailbox_status", async move {
            let req = request.into_inner();
            let info = answer(
                self.mail
                    .mailbox_status(user_id(req.user_id)?, &req.name)
                    .await,
            )?;
            Ok(Response::new(pb::MailboxStatusResponse {
                mailbox: Some(info.into()),
            }))
        })
        .await
    }

    async fn select(
        &self,
        request: Request<pb::SelectRequest>,
    ) -> Result<Response<pb::SelectResponse>, Status> {
        observed("select", async move {
            let req = request.into_inner();
            let snapshot = answer(self.mail.select(user_id(req.user_id)?, &req.name).await)?;
            Ok(Response::new(pb::SelectResponse {
                snapshot: Some(snapshot.into()),
            }))
        })
        .await
    }

    async fn append(
        &self,
        request: Request<pb::AppendRequest>,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        observed("append", async move {
            let req = request.into_inner();
            let user = user_id(req.user_id)?;
            let messages = req
                .messages
                .into_iter()
                .map(NewMessage::try_from)
                .collect::<Result<Vec<_>, WireError>>()?;
            // Whatever store is behind: a caller names the user and the body keys, and a key
            // under another account's prefix would let that account's bodies be FETCHed.
            for m in &messages {
                answer(m.check_owner(user))?;
            }
            let result = answer(self.mail.append(user, &req.mailbox, messages).await)?;
            Ok(Response::new(result.into()))
        })
        .await
    }

    async fn fetch(
        &self,
        request: Request<pb::FetchRequest>,
    ) -> Result<Response<pb::FetchResponse>, Status> {
        observed("fetch", async move {
            let req = request.into_inner();
            let user = user_id(req.user_id)?;
            let uids = uid_set_from_pb(req.uids, "uids")?;
            let records = answer(
                self.mail
                    .fetch(
                        user,
                        yubin_meta_api::MailboxId(req.mailbox_id),
                        &uids,
                        req.with_summary,
                    )
                    .await,
            )?;
            Ok(Response::new(pb::FetchResponse {
                messages: records.into_iter().map(Into::into).collect(),
            }))
        })
        .await
    }

    async fn store_flags(
        &self,
        request: Request<pb::StoreFlagsRequest>,
    ) -> Result<Response<pb::StoreFlagsResponse>, Status> {
        observed("store_flags", async move {
            let req = request.into_inner();
            let user = user_id(req.user_id)?;
            let uids = uid_set_from_pb(req.uids, "uids")?;
            let op = convert::flag_op_from_pb(req.op)?;
            let result = answer(
                self.mail
                    .store_flags(
                        user,
                        yubin_meta_api::MailboxId(req.mailbox_id),
                        &uids,
                        op,
                        &req.flags,
                        req.unchanged_since.map(yubin_meta_api::ModSeq),
                    )
                    .await,
            )?;
            Ok(Response::new(result.into()))
        })
        .await
    }

    async fn copy_messages(
        &self,
        request: Request<pb::CopyMessagesRequest>,
    ) -> Result<Response<pb::CopyMessagesResponse>, Status> {
        observed("copy_messages", async move {
            let req = request.into_inner();
            let user = user_id(req.user_id)?;
            let uids = uid_set_from_pb(req.uids, "uids")?;
            let result = answer(
                self.mail
                    .copy_messages(
                        user,
                        yubin_meta_api::MailboxId(req.source_mailbox_id),
                        &uids,
                        &req.destination,
                        req.remove_source,
                    )
                    .await,
            )?;
            Ok(Response::new(result.into()))
        })
        .await
    }

    async fn expunge(
        &self,
        request: Request<pb::ExpungeRequest>,
    ) -> Result<Response<pb::ExpungeResponse>, Status> {
        observed("expunge", async move {
            let req = request.into_inner();
            let user = user_id(req.user_id)?;
            let uids: Option<UidSet> = req.uids.map(Into::into);
            let expunged = answer(
                self.mail
                    .expunge(
                        user,
                        yubin_meta_api::MailboxId(req.mailbox_id),
                        uids.as_ref(),
                    )
                    .await,
            )?;
            Ok(Response::new(pb::ExpungeResponse {
                uids: convert::uids_to_pb(&expunged),
            }))
        })
        .await
    }

    async fn search(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        observed("search", async move {
            let req = request.into_inner();
            let user = user_id(req.user_id)?;
            let key = crate::search_program::request_key(req.program, req.key)?;
            let uids = answer(
                self.mail
                    .search(user, yubin_meta_api::MailboxId(req.mailbox_id), &key)
                    .await,
            )?;
            Ok(Response::new(pb::SearchResponse {
                uids: convert::uids_to_pb(&uids),
            }))
        })
        .await
    }

    async fn search_indexed(
        &self,
        request: Request<pb::SearchIndexedRequest>,
    ) -> Result<Response<pb::SearchIndexedResponse>, Status> {
        observed("search_indexed", async move {
            let req = request.into_inner();
            let user = user_id(req.user_id)?;
            let key = crate::search_program::request_key(req.program, req.key)?;
            let projection = yubin_meta_api::IndexProjection {
                headers: req.headers,
                body_chars: req.body_chars,
            };
            let messages = answer(
                self.mail
                    .search_indexed(
                        user,
                        yubin_meta_api::MailboxId(req.mailbox_id),
                        &key,
                        &projection,
                    )
                    .await,
            )?;
            Ok(Response::new(pb::SearchIndexedResponse {
                messages: messages.into_iter().map(Into::into).collect(),
            }))
        })
        .await
    }

    async fn changes_since(
        &self,
        request: Request<pb::ChangesSinceRequest>,
    ) -> Result<Response<pb::ChangesSinceResponse>, Status> {
        observed("changes_since", async move {
            let req = request.into_inner();
            let user = user_id(req.user_id)?;
            let changes = answer(
                self.mail
                    .changes_since(
                        user,
                        yubin_meta_api::MailboxId(req.mailbox_id),
                        yubin_meta_api::ModSeq(req.since),
                    )
                    .await,
            )?;
            Ok(Response::new(changes.into()))
        })
        .await
    }

    async fn get_quota(
        &self,
        request: Request<pb::GetQuotaRequest>,
    ) -> Result<Response<pb::GetQuotaResponse>, Status> {
        observed("get_quota", async move {
            let user = user_id(request.into_inner().user_id)?;
            let usage = answer(self.mail.quota(user).await)?;
            Ok(Response::new(usage.into()))
        })
        .await
    }

    async fn set_quota(
        &self,
        request: Request<pb::SetQuotaRequest>,
    ) -> Result<Response<pb::SetQuotaResponse>, Status> {
        observed("set_quota", async move {
            let req = request.into_inner();
            let user = user_id(req.user_id)?;
            let limits = yubin_meta_api::QuotaLimits {
                storage_bytes: req.storage_limit_bytes,
                messages: req.message_limit,
            };
            answer(self.mail.set_account_quota(user, limits).await)?;
            Ok(Response::new(pb::SetQuotaResponse {}))
        })
        .await
    }

    async fn claim_recent(
        &self,
        request: Request<pb::ClaimRecentRequest>,
    ) -> Result<Response<pb::ClaimRecentResponse>, Status> {
        observed("claim_recent", async move {
            let req = request.into_inner();
            let user = user_id(req.user_id)?;
            let range = answer(
                self.mail
                    .claim_recent(
                        user,
                        yubin_meta_api::MailboxId(req.mailbox_id),
                        yubin_meta_api::Uid(req.up_to_uid),
                    )
                    .await,
            )?;
            Ok(Response::new(pb::ClaimRecentResponse {
                from_uid: range.from.0,
                to_uid: range.to.0,
            }))
        })
        .await
    }

    async fn get_metadata(
        &self,
        request: Request<pb::GetMetadataRequest>,
    ) -> Result<Response<pb::GetMetadataResponse>, Status> {
        observed("get_metadata", async move {
            let req = request.into_inner();
            let user = user_id(req.user_id)?;
            let depth = convert::metadata_depth_from_pb(req.depth)?;
            let entries = answer(
                self.mail
                    .get_metadata(user, req.mailbox.as_deref(), &req.entries, depth)
                    .await,
            )?;
            Ok(Response::new(pb::GetMetadataResponse {
                entries: entries
                    .into_iter()
                    .map(|e| pb::MetadataEntry {
                        name: e.name,
                        value: e.value.into(),
                    })
                    .collect(),
            }))
        })
        .await
    }

    async fn set_metadata(
        &self,
        request: Request<pb::SetMetadataRequest>,
    ) -> Result<Response<pb::SetMetadataResponse>, Status> {
        observed("set_metadata", async move {
            let req = request.into_inner();
            let user = user_id(req.user_id)?;
            let entries: Vec<(String, Option<Vec<u8>>)> = req
                .entries
                .into_iter()
                .map(|e| (e.name, e.value.map(|v| v.to_vec())))
                .collect();
            answer(
                self.mail
                    .set_metadata(user, req.mailbox.as_deref(), &entries, req.max_entries)
                    .await,
            )?;
            Ok(Response::new(pb::SetMetadataResponse {}))
        })
        .await
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        observed("watch", async move {
            let user = user_id(request.into_inner().user_id)?;
            // Subscribe before answering: once the client has the response headers, no change it
            // makes afterwards can be missed by this stream.
            let events = answer(self.mail.watch(user).await)?;
            let stop = self.streams_stop.clone().cancelled_owned();
            let open = OpenWatch::new();
            let stream = events
                // A store bug must never leak another account's hints.
                .filter(move |e| std::future::ready(e.user == user))
                .map(move |e| {
                    let _open = &open;
                    Ok(pb::ChangeEvent::from(e))
                })
                .take_until(stop);
            // Dropping the response stream (client gone, connection reset) drops the store's
            // subscription with it.
            let stream: WatchStream = Box::pin(stream);
            Ok(Response::new(stream))
        })
        .await
    }
}
