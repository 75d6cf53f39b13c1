//! The admin REST API over HTTP, driven by `AdminClient` and by raw requests.

mod common;

use common::MemAccounts;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use yubin_meta::admin::{AdminClient, AdminClientError, admin_router};
use yubin_meta::auth::{PasswordAuthenticator, PasswordParams};
use yubin_meta_api::{AccountStore, Authenticator, MetaError};

const TOKEN: &str = "s3cret-token";
const FAST: PasswordParams = PasswordParams {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

struct Api {
    base: String,
    accounts: Arc<MemAccounts>,
    http: reqwest::Client,
}

async fn start(token: Option<&str>) -> Api {
    let accounts = Arc::new(MemAccounts::default());
    let router = admin_router(accounts.clone(), token.map(str::to_string), FAST);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    Api {
        base: format!("http://{addr}"),
        accounts,
        http: reqwest::Client::new(),
    }
}

async fn error_of(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    let message = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {status}: {body}"))
        .to_string();
    assert!(!message.is_empty());
    (status, message)
}

#[tokio::test]
async fn user_lifecycle_through_the_client() {
    let api = start(Some(TOKEN)).await;
    let client = AdminClient::new(&api.base, Some(TOKEN.into()));

    let created = client.create_user("alice", "old password").await.unwrap();
    assert_eq!(created.name, "alice");
    let bob = client.create_user("bob@example.org", "pw").await.unwrap();
    assert_ne!(bob.id, created.id);

    let users = client.list_users().await.unwrap();
    assert_eq!(users.len(), 2);
    assert!(users.iter().all(|u| !u.disabled));
    assert_eq!(users[0].name, "alice");
    assert_eq!(users[0].id, created.id);

    let alice = client.get_user("alice").await.unwrap().unwrap();
    assert_eq!(alice.id, created.id);
    assert_eq!(client.get_user("ALICE").await.unwrap(), Some(alice));
    assert_eq!(client.get_user("nobody").await.unwrap(), None);

    // The stored hash is an Argon2id PHC string, never the password.
    let record = api.accounts.user_by_name("alice").await.unwrap().unwrap();
    assert!(record.password_hash.starts_with("$argon2id$"));
    assert!(!record.password_hash.contains("old password"));

    let auth = PasswordAuthenticator::new(api.accounts.clone());
    assert_eq!(
        auth.authenticate("alice", "old password")
            .await
            .map(|u| u.0),
        Ok(created.id)
    );
    client.set_password("alice", "new password").await.unwrap();
    assert_eq!(
        auth.authenticate("alice", "old password").await,
        Err(MetaError::AuthenticationFailed)
    );
    assert_eq!(
        auth.authenticate("alice", "new password")
            .await
            .map(|u| u.0),
        Ok(created.id)
    );

    match client.create_user("alice", "again").await {
        Err(AdminClientError::Api {
            status: 409,
            message,
        }) => {
            assert!(message.contains("alice"), "{message}")
        }
        other => panic!("expected 409, got {other:?}"),
    }
    match client.set_password("nobody", "pw").await {
        Err(AdminClientError::Api { status: 404, .. }) => {}
        other => panic!("expected 404, got {other:?}"),
    }
    match client.create_user("Bad Name", "pw").await {
        Err(AdminClientError::Api { status: 400, .. }) => {}
        other => panic!("expected 400, got {other:?}"),
    }
}

#[tokio::test]
async fn raw_http_shapes() {
    let api = start(Some(TOKEN)).await;
    let response = api
        .http
        .post(format!("{}/v1/users", api.base))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "demo", "password": "demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["name"], "demo");
    assert!(body["id"].is_u64());

    let body: Value = api
        .http
        .get(format!("{}/v1/users", api.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body,
        json!([{"id": body[0]["id"], "name": "demo", "disabled": false}])
    );

    let response = api
        .http
        .put(format!("{}/v1/users/demo/password", api.base))
        .bearer_auth(TOKEN)
        .json(&json!({"password": "new"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let response = api
        .http
        .get(format!("{}/v1/users/ghost", api.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(response).await.0, StatusCode::NOT_FOUND);

    let response = api
        .http
        .get(format!("{}/v2/nothing", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(response).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn token_is_required_and_checked() {
    let api = start(Some(TOKEN)).await;
    let url = format!("{}/v1/users", api.base);

    let missing = api.http.get(&url).send().await.unwrap();
    assert_eq!(missing.headers().get("www-authenticate").unwrap(), "Bearer");
    assert_eq!(error_of(missing).await.0, StatusCode::UNAUTHORIZED);

    for header in [
        "Bearer wrong",
        "Bearer s3cret-toke",
        "Bearer s3cret-token-and-more",
        "Basic czNjcmV0LXRva2Vu",
        "s3cret-token",
        "Bearer",
    ] {
        let response = api
            .http
            .get(&url)
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_of(response).await.0,
            StatusCode::UNAUTHORIZED,
            "{header}"
        );
    }

    // Writes are refused before anything happens.
    let response = api
        .http
        .post(&url)
        .bearer_auth("wrong")
        .json(&json!({"name": "eve", "password": "pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(api.accounts.list_users().await.unwrap().is_empty());

    // The scheme is case-insensitive (RFC 7235).
    let response = api
        .http
        .get(&url)
        .header("authorization", format!("bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let client = AdminClient::new(&api.base, Some("wrong".into()));
    assert!(matches!(
        client.list_users().await,
        Err(AdminClientError::Api { status: 401, .. })
    ));
    let client = AdminClient::new(&api.base, None);
    assert!(matches!(
        client.create_user("eve", "pw").await,
        Err(AdminClientError::Api { status: 401, .. })
    ));
}

#[tokio::test]
async fn no_token_means_open() {
    let api = start(None).await;
    let client = AdminClient::new(&api.base, None);
    client.create_user("demo", "demo").await.unwrap();
    assert_eq!(client.list_users().await.unwrap().len(), 1);
    // An empty token is no token.
    let api = start(Some("")).await;
    let client = AdminClient::new(&api.base, None);
    client.create_user("demo", "demo").await.unwrap();
}

#[tokio::test]
async fn bad_input_is_400_with_json_error() {
    let api = start(Some(TOKEN)).await;
    let url = format!("{}/v1/users", api.base);
    let post = |body: reqwest::Body, content_type: &'static str| {
        api.http
            .post(&url)
            .bearer_auth(TOKEN)
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    let too_long = "a".repeat(65);
    for name in ["", "Alice", "a b", "a/b", "ünï", too_long.as_str(), "a:b"] {
        let body = json!({"name": name, "password": "pw"}).to_string();
        let response = post(body.into(), "application/json").await.unwrap();
        let (status, message) = error_of(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name:?}");
        assert!(message.contains("name"), "{message}");
    }
    let ok = "a".repeat(64);
    let body = json!({"name": ok, "password": "pw"}).to_string();
    let response = post(body.into(), "application/json").await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);

    for (body, content_type) in [
        ("{not json", "application/json"),
        (r#"{"name": "x"}"#, "application/json"),
        (r#"{"name": 5, "password": "pw"}"#, "application/json"),
        ("", "application/json"),
        (r#"{"name": "x", "password": "pw"}"#, "text/plain"),
        (r#"{"name": "x", "password": ""}"#, "application/json"),
    ] {
        let response = post(body.into(), content_type).await.unwrap();
        assert_eq!(
            error_of(response).await.0,
            StatusCode::BAD_REQUEST,
            "{body} as {content_type}"
        );
    }

    let response = api
        .http
        .put(format!("{url}/{ok}/password"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(r#"{"pass": "x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(response).await.0, StatusCode::BAD_REQUEST);

    let long_password = "p".repeat(yubin_meta::auth::MAX_PASSWORD_BYTES + 1);
    let client = AdminClient::new(&api.base, Some(TOKEN.into()));
    assert!(matches!(
        client.set_password(&ok, &long_password).await,
        Err(AdminClientError::Api { status: 400, .. })
    ));

    // Nothing but the one valid user was created.
    assert_eq!(api.accounts.list_users().await.unwrap().len(), 1);
}

#[tokio::test]
async fn client_reports_unreachable_api() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let client = AdminClient::new(&format!("http://{addr}"), None);
    assert!(matches!(
        client.list_users().await,
        Err(AdminClientError::Http(_))
    ));
}
