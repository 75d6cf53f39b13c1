//! The admin REST API (accounts, quotas, aliases, domains, mailboxes) and its client, used by
//! the `yubin user|alias|domain|mailbox …` CLI. GET `/v1/openapi.json` describes every route
//! (OpenAPI 3.0); the table below is the summary.
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | GET | `/v1/users?after=<name>&limit=<n>` | | 200 `{"users": [user], "next_after": name or null}` |
//! | POST | `/v1/users` | `{"name","password"}` | 201 `{"id","name"}`, 409 exists |
//! | GET | `/v1/users/{name}` | | 200 user |
//! | PATCH | `/v1/users/{name}` | `{"disabled": bool}` | 200 user |
//! | DELETE | `/v1/users/{name}` | | 200 `{"id","name","blobs_deleted"}`: metadata, then every body |
//! | PUT | `/v1/users/{name}/password` | `{"password"}` | 204 |
//! | PUT | `/v1/users/{name}/quota` | `{"storage_bytes","messages"}` (null = unlimited) | 200 usage |
//! | GET | `/v1/users/{name}/usage` | | 200 `{"limits": {...}, "storage_bytes", "messages"}` |
//! | GET, POST | `/v1/users/{name}/mailboxes` | POST `{"name","special_use"}` | 200 list / 201 mailbox |
//! | DELETE | `/v1/users/{name}/mailboxes/{mailbox}` | | 204 |
//! | GET | `/v1/aliases` | | 200 `[{"address","target"}]` |
//! | PUT, DELETE | `/v1/aliases/{address}` | PUT `{"target": user name}` | 200 alias / 204 |
//! | GET | `/v1/domains` | | 200 `[{"name","alias_of"}]` |
//! | PUT, DELETE | `/v1/domains/{domain}` | PUT `{"alias_of": domain or null}` | 200 domain / 204 |
//!
//! With a token configured every request but the OpenAPI document needs `Authorization: Bearer
//! <token>` (401 otherwise). Errors are `{"error": "..."}`: 400 bad input (malformed JSON, bad
//! names, bad query values), 401, 404 unknown user/alias/domain/mailbox or route, 405 method not
//! served on a route, 409 already exists, 415 body not JSON, 422 JSON of the wrong shape.
//! Passwords are hashed (Argon2id) before they reach the store and are never logged.

use crate::auth::{MAX_PASSWORD_BYTES, PasswordParams};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, put};
use axum::{Json, Router};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use yubin_blob::{BlobError, BlobStore};
use yubin_meta_api::{
    AccountStore, Alias, BlobKey, Domain, MailStore, MailboxInfo, MetaError, QuotaLimits,
    QuotaUsage, SpecialUse, UserId, UserRecord,
};

/// Longest account name.
pub const MAX_NAME_LEN: usize = 64;
/// Most accounts one page of `GET /v1/users` may ask for.
pub const MAX_PAGE_LIMIT: usize = 1000;
/// Accounts per page when the request names no limit.
pub const DEFAULT_PAGE_LIMIT: usize = 100;
/// Blob deletions in flight at once when an account is deleted.
const BLOB_DELETE_CONCURRENCY: usize = 16;

/// Whether `name` may name an account: 1–64 of lower-case ASCII letters, digits, `.`, `-`, `_`
/// and `@` (so that `user@example.org` works).
pub fn is_valid_user_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-@".contains(&b))
}

/// An account as the admin API shows it (never the hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub id: u64,
    pub name: String,
    pub disabled: bool,
}

impl From<UserRecord> for UserInfo {
    fn from(r: UserRecord) -> UserInfo {
        UserInfo {
            id: r.id.0,
            name: r.name,
            disabled: r.disabled,
        }
    }
}

/// The answer to creating an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedUser {
    pub id: u64,
    pub name: String,
}

/// One page of accounts, ordered by name; `next_after` is the cursor of the next page (`None`
/// on the last one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPage {
    pub users: Vec<UserInfo>,
    pub next_after: Option<String>,
}

/// The answer to deleting an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedUser {
    pub id: u64,
    pub name: String,
    /// Message bodies removed from the blob store.
    pub blobs_deleted: u64,
}

/// A mailbox as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxView {
    pub name: String,
    pub id: u64,
    pub messages: u32,
    pub unseen: u32,
    pub size: u64,
    pub uid_validity: u32,
    pub uid_next: u32,
    /// `\Sent`, `\Trash`, … (RFC 6154).
    pub special_use: Option<String>,
}

impl From<MailboxInfo> for MailboxView {
    fn from(m: MailboxInfo) -> MailboxView {
        MailboxView {
            name: m.name,
            id: m.id.0,
            messages: m.exists,
            unseen: m.unseen,
            size: m.size,
            uid_validity: m.uid_validity.0,
            uid_next: m.uid_next.0,
            special_use: m.special_use.map(|s| s.as_imap().to_string()),
        }
    }
}

/// An alias as the admin API shows it: the target by account name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasView {
    pub address: String,
    pub target: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUserBody {
    name: String,
    password: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchUserBody {
    disabled: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaBody {
    #[serde(default)]
    storage_bytes: Option<u64>,
    #[serde(default)]
    messages: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateMailboxBody {
    name: String,
    #[serde(default)]
    special_use: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasBody {
    target: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainBody {
    #[serde(default)]
    alias_of: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    after: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ErrorBody {
    error: String,
}

/// An error answer: status plus `{"error": message}`.
struct ApiError(StatusCode, String);

impl ApiError {
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, message.into())
    }

    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError(StatusCode::NOT_FOUND, message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(ErrorBody { error: self.1 })).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<MetaError> for ApiError {
    fn from(err: MetaError) -> ApiError {
        let status = match &err {
            MetaError::NotFound(_) => StatusCode::NOT_FOUND,
            MetaError::AlreadyExists(_) => StatusCode::CONFLICT,
            MetaError::Invalid(_) => StatusCode::BAD_REQUEST,
            MetaError::OverQuota(_) => StatusCode::INSUFFICIENT_STORAGE,
            MetaError::Limit(_) => StatusCode::CONFLICT,
            MetaError::AuthenticationFailed => StatusCode::UNAUTHORIZED,
            MetaError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            MetaError::Internal(_) => {
                tracing::error!(error = %err, "admin request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError(status, err.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    /// Malformed JSON is 400, JSON of the wrong shape 422, a body that is not JSON 415.
    fn from(rejection: JsonRejection) -> ApiError {
        let status = match &rejection {
            JsonRejection::JsonDataError(_) => StatusCode::UNPROCESSABLE_ENTITY,
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError(status, rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::bad_request(rejection.body_text())
    }
}

/// What the admin API works on: accounts, their mail (mailboxes, quota usage) and the blob
/// store holding their message bodies (deleted with the account).
#[derive(Clone)]
pub struct AdminBackend {
    pub accounts: Arc<dyn AccountStore>,
    pub mail: Arc<dyn MailStore>,
    pub blobs: Arc<dyn BlobStore>,
}

#[derive(Clone)]
struct AdminState {
    backend: AdminBackend,
    /// SHA-256 of the token: comparing fixed-length digests in constant time hides the token's
    /// length as well as its content.
    token_digest: Option<[u8; 32]>,
    params: PasswordParams,
}

/// The router under construction and the (method, path) of every route added to it, so the
/// OpenAPI document can be checked against what is really served.
struct Routes {
    router: Router<AdminState>,
    table: Vec<(Method, &'static str)>,
}

impl Routes {
    fn add(
        mut self,
        path: &'static str,
        handlers: MethodRouter<AdminState>,
        methods: &[Method],
    ) -> Routes {
        self.table.extend(methods.iter().map(|m| (m.clone(), path)));
        self.router = self.router.route(path, handlers);
        self
    }
}

/// Every route that needs the token. The only way routes get into the router.
fn token_routes() -> Routes {
    let routes = Routes {
        router: Router::new(),
        table: Vec::new(),
    };
    routes
        .add(
            "/v1/users",
            get(list_users).post(create_user),
            &[Method::GET, Method::POST],
        )
        .add(
            "/v1/users/{name}",
            get(get_user).patch(patch_user).delete(delete_user),
            &[Method::GET, Method::PATCH, Method::DELETE],
        )
        .add(
            "/v1/users/{name}/password",
            put(set_password),
            &[Method::PUT],
        )
        .add("/v1/users/{name}/quota", put(set_quota), &[Method::PUT])
        .add("/v1/users/{name}/usage", get(get_usage), &[Method::GET])
        .add(
            "/v1/users/{name}/mailboxes",
            get(list_mailboxes).post(create_mailbox),
            &[Method::GET, Method::POST],
        )
        .add(
            "/v1/users/{name}/mailboxes/{*mailbox}",
            delete(delete_mailbox),
            &[Method::DELETE],
        )
        .add("/v1/aliases", get(list_aliases), &[Method::GET])
        .add(
            "/v1/aliases/{address}",
            put(put_alias).delete(delete_alias),
            &[Method::PUT, Method::DELETE],
        )
        .add("/v1/domains", get(list_domains), &[Method::GET])
        .add(
            "/v1/domains/{domain}",
            put(put_domain).delete(delete_domain),
            &[Method::PUT, Method::DELETE],
        )
}

const OPENAPI_PATH: &str = "/v1/openapi.json";

/// Every (method, path) the admin router serves, paths in OpenAPI spelling (`{mailbox}` for the
/// catch-all that takes mailbox names with `/`).
pub fn admin_routes() -> Vec<(Method, String)> {
    let mut out: Vec<(Method, String)> = token_routes()
        .table
        .into_iter()
        .map(|(m, p)| (m, p.replace("{*", "{")))
        .collect();
    out.push((Method::GET, OPENAPI_PATH.to_string()));
    out
}

/// The admin API over `backend`. With `token`, every request (but the OpenAPI document) must
/// carry it as a bearer token; an empty token counts as none. New passwords are hashed with
/// `params`.
pub fn admin_router(
    backend: AdminBackend,
    token: Option<String>,
    params: PasswordParams,
) -> Router {
    let token = token.filter(|t| !t.is_empty());
    if token.is_none() {
        tracing::warn!("admin api has no token: anyone who can reach it can manage accounts");
    }
    let state = AdminState {
        backend,
        token_digest: token.map(|t| Sha256::digest(t.as_bytes()).into()),
        params,
    };
    let guarded = token_routes()
        .router
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let without_token = state.token_digest.is_none();
    let router = Router::new()
        .route(OPENAPI_PATH, get(openapi))
        .merge(guarded)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    if without_token {
        router.layer(middleware::from_fn(crate::admin_host::require_local_host))
    } else {
        router
    }
}

async fn require_token(
    State(state): State<AdminState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.token_digest else {
        return next.run(request).await;
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let ok = presented.is_some_and(|token| {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        bool::from(digest.ct_eq(&expected))
    });
    if ok {
        next.run(request).await
    } else {
        ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token".into(),
        )
        .into_response()
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint".into(),
    )
}

async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}

fn check_password(password: &str) -> Result<(), ApiError> {
    if password.is_empty() {
        return Err(ApiError::bad_request("password must not be empty"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::bad_request(format!(
            "password must be at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Argon2 on a blocking thread: hashing takes tens of milliseconds of CPU by design.
async fn hash(params: PasswordParams, password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || params.hash(&password))
        .await
        .map_err(|e| MetaError::Internal(format!("hashing task failed: {e}")))?
        .map_err(|e| ApiError::from(MetaError::from(e)))
}

async fn create_user(
    State(state): State<AdminState>,
    body: Result<Json<CreateUserBody>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    let Json(body) = body?;
    if !is_valid_user_name(&body.name) {
        return Err(ApiError::bad_request(format!(
            "invalid user name {:?}: use 1-{MAX_NAME_LEN} of a-z 0-9 . - _ @",
            body.name
        )));
    }
    check_password(&body.password)?;
    let hash = hash(state.params, body.password).await?;
    let record = state
        .backend
        .accounts
        .create_user(&body.name, &hash)
        .await?;
    tracing::info!(user = %record.name, id = record.id.0, "user created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            id: record.id.0,
            name: record.name,
        }),
    ))
}

async fn list_users(
    State(state): State<AdminState>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<UserPage>, ApiError> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
    if !(1..=MAX_PAGE_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE_LIMIT}"
        )));
    }
    // One more than asked tells whether another page follows.
    let mut users = state
        .backend
        .accounts
        .list_users_page(query.after.as_deref(), limit + 1)
        .await?;
    let more = users.len() > limit;
    users.truncate(limit);
    let next_after = if more {
        users.last().map(|u| u.name.clone())
    } else {
        None
    };
    Ok(Json(UserPage {
        users: users.into_iter().map(UserInfo::from).collect(),
        next_after,
    }))
}

async fn find(state: &AdminState, name: &str) -> Result<UserRecord, ApiError> {
    // Logins are case-insensitive, so lookups are too.
    let name = name.to_lowercase();
    state
        .backend
        .accounts
        .user_by_name(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {name} does not exist")))
}

async fn get_user(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<UserInfo>, ApiError> {
    Ok(Json(find(&state, &name).await?.into()))
}

async fn patch_user(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    body: Result<Json<PatchUserBody>, JsonRejection>,
) -> Result<Json<UserInfo>, ApiError> {
    let Json(body) = body?;
    let mut record = find(&state, &name).await?;
    state
        .backend
        .accounts
        .set_disabled(record.id, body.disabled)
        .await?;
    record.disabled = body.disabled;
    tracing::info!(user = %record.name, disabled = body.disabled, "user updated");
    Ok(Json(record.into()))
}

async fn delete_user(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<DeletedUser>, ApiError> {
    let record = find(&state, &name).await?;
    // Metadata first: once it is gone nothing points at the bodies, so deleting them can never
    // leave a message without its body (ARCHITECTURE.md, "body first, metadata second").
    state.backend.accounts.delete_user(record.id).await?;
    tracing::info!(user = %record.name, id = record.id.0, "user deleted");
    let blobs_deleted = delete_blobs(state.backend.blobs.as_ref(), record.id)
        .await
        .map_err(|e| {
            tracing::error!(user = %record.name, error = %e, "deleting the bodies of a deleted user failed");
            let status = match e {
                BlobError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            ApiError(
                status,
                format!(
                    "user {} was deleted, but removing its message bodies failed ({e}); \
                     they are unreferenced and can be removed under {}",
                    record.name,
                    BlobKey::user_prefix(record.id)
                ),
            )
        })?;
    Ok(Json(DeletedUser {
        id: record.id.0,
        name: record.name,
        blobs_deleted,
    }))
}

/// Removes every blob under the account's prefix; the number removed.
async fn delete_blobs(blobs: &dyn BlobStore, user: UserId) -> Result<u64, BlobError> {
    let keys = blobs.list(&BlobKey::user_prefix(user)).await?;
    let count = keys.len() as u64;
    futures::stream::iter(keys)
        .map(|key| async move { blobs.delete(&key).await })
        .buffer_unordered(BLOB_DELETE_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(count)
}

async fn set_password(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    body: Result<Json<PasswordBody>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(body) = body?;
    check_password(&body.password)?;
    let record = find(&state, &name).await?;
    let hash = hash(state.params, body.password).await?;
    state
        .backend
        .accounts
        .set_password_hash(record.id, &hash)
        .await?;
    tracing::info!(user = %record.name, "password changed");
    Ok(StatusCode::NO_CONTENT)
}

async fn set_quota(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    body: Result<Json<QuotaBody>, JsonRejection>,
) -> Result<Json<QuotaUsage>, ApiError> {
    let Json(body) = body?;
    let record = find(&state, &name).await?;
    let limits = QuotaLimits {
        storage_bytes: body.storage_bytes,
        messages: body.messages,
    };
    state.backend.accounts.set_quota(record.id, limits).await?;
    tracing::info!(user = %record.name, storage_bytes = ?limits.storage_bytes, messages = ?limits.messages, "quota set");
    Ok(Json(state.backend.mail.quota(record.id).await?))
}

async fn get_usage(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<QuotaUsage>, ApiError> {
    let record = find(&state, &name).await?;
    Ok(Json(state.backend.mail.quota(record.id).await?))
}

async fn list_mailboxes(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<MailboxView>>, ApiError> {
    let record = find(&state, &name).await?;
    let boxes = state.backend.mail.list_mailboxes(record.id).await?;
    Ok(Json(boxes.into_iter().map(MailboxView::from).collect()))
}

async fn create_mailbox(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    body: Result<Json<CreateMailboxBody>, JsonRejection>,
) -> Result<(StatusCode, Json<MailboxView>), ApiError> {
    let Json(body) = body?;
    let special_use = match body.special_use.as_deref() {
        None | Some("") => None,
        Some(s) => Some(SpecialUse::from_imap(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown special use {s:?}: use \\All, \\Archive, \\Drafts, \\Flagged, \\Junk, \\Sent or \\Trash"
            ))
        })?),
    };
    let record = find(&state, &name).await?;
    let info = state
        .backend
        .mail
        .create_mailbox(record.id, &body.name, special_use)
        .await?;
    tracing::info!(user = %record.name, mailbox = %info.name, "mailbox created");
    Ok((StatusCode::CREATED, Json(info.into())))
}

async fn delete_mailbox(
    State(state): State<AdminState>,
    Path((name, mailbox)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let record = find(&state, &name).await?;
    // The bodies stay: with content addressing another message may share one; unreferenced
    // bodies are the blob collector's business.
    state
        .backend
        .mail
        .delete_mailbox(record.id, &mailbox)
        .await?;
    tracing::info!(user = %record.name, %mailbox, "mailbox deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn list_aliases(State(state): State<AdminState>) -> Result<Json<Vec<AliasView>>, ApiError> {
    let aliases = state.backend.accounts.list_aliases().await?;
    let mut out = Vec::with_capacity(aliases.len());
    for a in aliases {
        // An alias whose account is gone (a delete raced its creation) shows the bare id.
        let target = match state.backend.accounts.user_by_id(a.target).await? {
            Some(u) => u.name,
            None => format!("#{}", a.target.0),
        };
        out.push(AliasView {
            address: a.address,
            target,
        });
    }
    Ok(Json(out))
}

async fn put_alias(
    State(state): State<AdminState>,
    Path(address): Path<String>,
    body: Result<Json<AliasBody>, JsonRejection>,
) -> Result<Json<AliasView>, ApiError> {
    let Json(body) = body?;
    let target = find(&state, &body.target).await?;
    let alias = Alias {
        address,
        target: target.id,
    };
    state.backend.accounts.put_alias(&alias).await?;
    let address = alias.address.trim().to_lowercase();
    tracing::info!(%address, user = %target.name, "alias set");
    Ok(Json(AliasView {
        address,
        target: target.name,
    }))
}

async fn delete_alias(
    State(state): State<AdminState>,
    Path(address): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.backend.accounts.delete_alias(&address).await?;
    tracing::info!(%address, "alias deleted");
    Ok(StatusCode::NO_CONTENT)
}

async fn list_domains(State(state): State<AdminState>) -> Result<Json<Vec<Domain>>, ApiError> {
    Ok(Json(state.backend.accounts.list_domains().await?))
}

async fn put_domain(
    State(state): State<AdminState>,
    Path(name): Path<String>,
    body: Result<Json<DomainBody>, JsonRejection>,
) -> Result<Json<Domain>, ApiError> {
    let Json(body) = body?;
    let domain = Domain {
        name,
        alias_of: body.alias_of.filter(|a| !a.is_empty()),
    };
    state.backend.accounts.put_domain(&domain).await?;
    let domain = Domain {
        name: domain.name.trim().to_ascii_lowercase(),
        alias_of: domain.alias_of.map(|a| a.trim().to_ascii_lowercase()),
    };
    tracing::info!(domain = %domain.name, alias_of = ?domain.alias_of, "domain set");
    Ok(Json(domain))
}

async fn delete_domain(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.backend.accounts.delete_domain(&name).await?;
    tracing::info!(domain = %name, "domain deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Errors of [`AdminClient`].
#[derive(Debug, thiserror::Error)]
pub enum AdminClientError {
    #[error("bad admin url {0:?}")]
    BadUrl(String),
    #[error("cannot reach the admin api: {0}")]
    Http(#[from] reqwest::Error),
    /// The API answered with an error status; `message` is its `error` field.
    #[error("{message} (http {status})")]
    Api { status: u16, message: String },
}

/// A client of the admin API.
#[derive(Debug, Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl AdminClient {
    /// A client of the admin API at `base_url` (e.g. `http://127.0.0.1:8080`), sending `token`
    /// as bearer token when given (an empty token counts as none). A malformed URL is reported
    /// by the first request, as [`AdminClientError::BadUrl`].
    pub fn new(base_url: &str, token: Option<String>) -> AdminClient {
        AdminClient {
            http: reqwest::Client::new(),
            base: base_url.to_string(),
            token: token.filter(|t| !t.is_empty()),
        }
    }

    /// `base/v1/<segments>`, each segment percent-encoded (a `/` inside a mailbox name too).
    fn url(&self, segments: &[&str]) -> Result<reqwest::Url, AdminClientError> {
        let bad = || AdminClientError::BadUrl(self.base.clone());
        let mut url = reqwest::Url::parse(&self.base).map_err(|_| bad())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad());
        }
        url.path_segments_mut()
            .map_err(|_| bad())?
            .pop_if_empty()
            .push("v1")
            .extend(segments);
        Ok(url)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, AdminClientError> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.error)
            .unwrap_or(text);
        Err(AdminClientError::Api {
            status: status.as_u16(),
            message,
        })
    }

    pub async fn create_user(
        &self,
        name: &str,
        password: &str,
    ) -> Result<CreatedUser, AdminClientError> {
        let body = CreateUserBody {
            name: name.to_string(),
            password: password.to_string(),
        };
        let request = self.http.post(self.url(&["users"])?).json(&body);
        Ok(self.send(request).await?.json().await?)
    }

    pub async fn set_password(&self, name: &str, password: &str) -> Result<(), AdminClientError> {
        let body = PasswordBody {
            password: password.to_string(),
        };
        let request = self
            .http
            .put(self.url(&["users", name, "password"])?)
            .json(&body);
        self.send(request).await?;
        Ok(())
    }

    /// One page of accounts ordered by name, after `after`.
    pub async fn list_users_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<UserPage, AdminClientError> {
        let mut url = self.url(&["users"])?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(after) = after {
                query.append_pair("after", after);
            }
            query.append_pair("limit", &limit.to_string());
        }
        Ok(self.send(self.http.get(url)).await?.json().await?)
    }

    /// Every account, page by page.
    pub async fn list_users(&self) -> Result<Vec<UserInfo>, AdminClientError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .list_users_page(after.as_deref(), MAX_PAGE_LIMIT)
                .await?;
            out.extend(page.users);
            match page.next_after {
                Some(next) => after = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// The account named `name`, or `None` when there is none.
    pub async fn get_user(&self, name: &str) -> Result<Option<UserInfo>, AdminClientError> {
        let request = self.http.get(self.url(&["users", name])?);
        match self.send(request).await {
            Ok(response) => Ok(Some(response.json().await?)),
            Err(AdminClientError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Disables (no login, no delivery; data kept) or enables an account.
    pub async fn set_disabled(
        &self,
        name: &str,
        disabled: bool,
    ) -> Result<UserInfo, AdminClientError> {
        let request = self
            .http
            .patch(self.url(&["users", name])?)
            .json(&PatchUserBody { disabled });
        Ok(self.send(request).await?.json().await?)
    }

    /// Deletes an account with all its mail and message bodies.
    pub async fn delete_user(&self, name: &str) -> Result<DeletedUser, AdminClientError> {
        let request = self.http.delete(self.url(&["users", name])?);
        Ok(self.send(request).await?.json().await?)
    }

    pub async fn set_quota(
        &self,
        name: &str,
        limits: QuotaLimits,
    ) -> Result<QuotaUsage, AdminClientError> {
        let body = QuotaBody {
            storage_bytes: limits.storage_bytes,
            messages: limits.messages,
        };
        let request = self
            .http
            .put(self.url(&["users", name, "quota"])?)
            .json(&body);
        Ok(self.send(request).await?.json().await?)
    }

    pub async fn usage(&self, name: &str) -> Result<QuotaUsage, AdminClientError> {
        let request = self.http.get(self.url(&["users", name, "usage"])?);
        Ok(self.send(request).await?.json().await?)
    }

    pub async fn list_mailboxes(&self, user: &str) -> Result<Vec<MailboxView>, AdminClientError> {
        let request = self.http.get(self.url(&["users", user, "mailboxes"])?);
        Ok(self.send(request).await?.json().await?)
    }

    pub async fn create_mailbox(
        &self,
        user: &str,
        name: &str,
        special_use: Option<&str>,
    ) -> Result<MailboxView, AdminClientError> {
        let body = CreateMailboxBody {
            name: name.to_string(),
            special_use: special_use.map(str::to_string),
        };
        let request = self
            .http
            .post(self.url(&["users", user, "mailboxes"])?)
            .json(&body);
        Ok(self.send(request).await?.json().await?)
    }

    pub async fn delete_mailbox(&self, user: &str, name: &str) -> Result<(), AdminClientError> {
        let request = self
            .http
            .delete(self.url(&["users", user, "mailboxes", name])?);
        self.send(request).await?;
        Ok(())
    }

    pub async fn list_aliases(&self) -> Result<Vec<AliasView>, AdminClientError> {
        let request = self.http.get(self.url(&["aliases"])?);
        Ok(self.send(request).await?.json().await?)
    }

    /// Makes mail for `address` go to the account `target`.
    pub async fn put_alias(
        &self,
        address: &str,
        target: &str,
    ) -> Result<AliasView, AdminClientError> {
        let body = AliasBody {
            target: target.to_string(),
        };
        let request = self.http.put(self.url(&["aliases", address])?).json(&body);
        Ok(self.send(request).await?.json().await?)
    }

    pub async fn delete_alias(&self, address: &str) -> Result<(), AdminClientError> {
        let request = self.http.delete(self.url(&["aliases", address])?);
        self.send(request).await?;
        Ok(())
    }

    pub async fn list_domains(&self) -> Result<Vec<Domain>, AdminClientError> {
        let request = self.http.get(self.url(&["domains"])?);
        Ok(self.send(request).await?.json().await?)
    }

    /// Adds a domain of the installation, or with `alias_of` an alias domain.
    pub async fn put_domain(
        &self,
        name: &str,
        alias_of: Option<&str>,
    ) -> Result<Domain, AdminClientError> {
        let body = DomainBody {
            alias_of: alias_of.map(str::to_string),
        };
        let request = self.http.put(self.url(&["domains", name])?).json(&body);
        Ok(self.send(request).await?.json().await?)
    }

    pub async fn delete_domain(&self, name: &str) -> Result<(), AdminClientError> {
        let request = self.http.delete(self.url(&["domains", name])?);
        self.send(request).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        for ok in [
            "a",
            "demo",
            "user@example.org",
            "a.b-c_d",
            "0",
            &"x".repeat(64),
        ] {
            assert!(is_valid_user_name(ok), "{ok}");
        }
        for bad in ["", "Demo", "a b", "a/b", "ü", "a:b", &"x".repeat(65), "a\n"] {
            assert!(!is_valid_user_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn client_urls_are_encoded() {
        let c = AdminClient::new("http://127.0.0.1:8080", None);
        assert_eq!(
            c.url(&["users", "a b", "password"]).unwrap().as_str(),
            "http://127.0.0.1:8080/v1/users/a%20b/password"
        );
        assert_eq!(
            c.url(&["users", "bob", "mailboxes", "Projects/2026"])
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080/v1/users/bob/mailboxes/Projects%2F2026"
        );
        let c = AdminClient::new("http://h/admin/", None);
        assert_eq!(
            c.url(&["users"]).unwrap().as_str(),
            "http://h/admin/v1/users"
        );
        for bad in ["not a url", "mailto:a@b", "127.0.0.1:8080"] {
            let c = AdminClient::new(bad, None);
            assert!(
                matches!(c.url(&["users"]), Err(AdminClientError::BadUrl(_))),
                "{bad}"
            );
        }
    }
}
