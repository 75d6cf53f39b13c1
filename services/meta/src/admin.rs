//! The admin REST API (accounts) and its client, used by the `yubin user …` CLI.
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | POST | `/v1/users` | `{"name","password"}` | 201 `{"id","name"}`, 409 exists, 400 bad input |
//! | GET | `/v1/users` | | 200 `[{"id","name","disabled"}]` |
//! | GET | `/v1/users/{name}` | | 200 `{"id","name","disabled"}`, 404 |
//! | PUT | `/v1/users/{name}/password` | `{"password"}` | 204, 404 |
//!
//! With a token configured every request needs `Authorization: Bearer <token>` (401 otherwise).
//! Errors are `{"error": "..."}`.

use crate::auth::{MAX_PASSWORD_BYTES, PasswordParams};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use yubin_meta_api::{AccountStore, MetaError, UserRecord};

/// Longest account name.
pub const MAX_NAME_LEN: usize = 64;

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

#[derive(Debug, Serialize, Deserialize)]
struct CreateUserBody {
    name: String,
    password: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct PasswordBody {
    password: String,
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
    fn from(rejection: JsonRejection) -> ApiError {
        ApiError::bad_request(rejection.body_text())
    }
}

#[derive(Clone)]
struct AdminState {
    accounts: Arc<dyn AccountStore>,
    /// SHA-256 of the token: comparing fixed-length digests in constant time hides the token's
    /// length as well as its content.
    token_digest: Option<[u8; 32]>,
    params: PasswordParams,
}

/// The admin API over `accounts`. With `token`, every request must carry it as a bearer token;
/// an empty token counts as none. New passwords are hashed with `params`.
pub fn admin_router(
    accounts: Arc<dyn AccountStore>,
    token: Option<String>,
    params: PasswordParams,
) -> Router {
    let token = token.filter(|t| !t.is_empty());
    if token.is_none() {
        tracing::warn!("admin api has no token: anyone who can reach it can manage accounts");
    }
    let state = AdminState {
        accounts,
        token_digest: token.map(|t| Sha256::digest(t.as_bytes()).into()),
        params,
    };
    Router::new()
        .route("/v1/users", get(list_users).post(create_user))
        .route("/v1/users/{name}", get(get_user))
        .route("/v1/users/{name}/password", put(set_password))
        .fallback(not_found)
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
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
    ApiError(StatusCode::NOT_FOUND, "no such endpoint".into())
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
    let record = state.accounts.create_user(&body.name, &hash).await?;
    tracing::info!(user = %record.name, id = record.id.0, "user created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            id: record.id.0,
            name: record.name,
        }),
    ))
}

async fn list_users(State(state): State<AdminState>) -> Result<Json<Vec<UserInfo>>, ApiError> {
    let users = state.accounts.list_users().await?;
    Ok(Json(users.into_iter().map(UserInfo::from).collect()))
}

async fn find(state: &AdminState, name: &str) -> Result<UserRecord, ApiError> {
    // Logins are case-insensitive, so lookups are too.
    let name = name.to_lowercase();
    state
        .accounts
        .user_by_name(&name)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("user {name} does not exist")))
}

async fn get_user(
    State(state): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Json<UserInfo>, ApiError> {
    Ok(Json(find(&state, &name).await?.into()))
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
    state.accounts.set_password_hash(record.id, &hash).await?;
    tracing::info!(user = %record.name, "password changed");
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

    /// `base/v1/users/<segments>`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<reqwest::Url, AdminClientError> {
        let bad = || AdminClientError::BadUrl(self.base.clone());
        let mut url = reqwest::Url::parse(&self.base).map_err(|_| bad())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad());
        }
        url.path_segments_mut()
            .map_err(|_| bad())?
            .pop_if_empty()
            .extend(["v1", "users"])
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
        let request = self.http.post(self.url(&[])?).json(&body);
        Ok(self.send(request).await?.json().await?)
    }

    pub async fn set_password(&self, name: &str, password: &str) -> Result<(), AdminClientError> {
        let body = PasswordBody {
            password: password.to_string(),
        };
        let request = self.http.put(self.url(&[name, "password"])?).json(&body);
        self.send(request).await?;
        Ok(())
    }

    pub async fn list_users(&self) -> Result<Vec<UserInfo>, AdminClientError> {
        let request = self.http.get(self.url(&[])?);
        Ok(self.send(request).await?.json().await?)
    }

    /// The account named `name`, or `None` when there is none.
    pub async fn get_user(&self, name: &str) -> Result<Option<UserInfo>, AdminClientError> {
        let request = self.http.get(self.url(&[name])?);
        match self.send(request).await {
            Ok(response) => Ok(Some(response.json().await?)),
            Err(AdminClientError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
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
            c.url(&["a b", "password"]).unwrap().as_str(),
            "http://127.0.0.1:8080/v1/users/a%20b/password"
        );
        let c = AdminClient::new("http://h/admin/", None);
        assert_eq!(c.url(&[]).unwrap().as_str(), "http://h/admin/v1/users");
        for bad in ["not a url", "mailto:a@b", "127.0.0.1:8080"] {
            let c = AdminClient::new(bad, None);
            assert!(
                matches!(c.url(&[]), Err(AdminClientError::BadUrl(_))),
                "{bad}"
            );
        }
    }
}
