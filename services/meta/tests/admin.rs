//! The admin REST API over HTTP on the real embedded store and filesystem blob store, driven by
//! `AdminClient` and by raw requests.

mod common;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use yubin_blob::{BlobStore, FsBlobStore};
use yubin_meta::admin::{AdminBackend, AdminClient, AdminClientError, admin_router, admin_routes};
use yubin_meta::auth::{PasswordAuthenticator, PasswordParams};
use yubin_meta_api::{
    AccountStore, Authenticator, BlobKey, MailStore, MetaError, QuotaLimits, UserId,
};
use yubin_meta_store::EmbeddedStore;

const TOKEN: &str = "s3cret-token";
const FAST: PasswordParams = PasswordParams {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

struct Api {
    base: String,
    store: Arc<EmbeddedStore>,
    blobs: Arc<FsBlobStore>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Api {
    fn client(&self) -> AdminClient {
        AdminClient::new(&self.base, Some(TOKEN.into()))
    }

    async fn request(&self, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// Sends `body` as raw bytes with a content type, for malformed input.
    async fn raw(
        &self,
        method: Method,
        path: &str,
        body: &str,
        content_type: &str,
    ) -> reqwest::Response {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }
}

async fn start(token: Option<&str>) -> Api {
    let (dir, store) = common::embedded_store().await;
    let blobs = Arc::new(FsBlobStore::new(dir.path().join("blobs")));
    let backend = AdminBackend {
        accounts: store.clone(),
        mail: store.clone(),
        blobs: blobs.clone(),
    };
    let router = admin_router(backend, token.map(str::to_string), FAST);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    Api {
        base: format!("http://{addr}"),
        store,
        blobs,
        http: reqwest::Client::new(),
        _dir: dir,
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

fn status_of<T: std::fmt::Debug>(r: Result<T, AdminClientError>) -> u16 {
    match r {
        Err(AdminClientError::Api { status, .. }) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn user_lifecycle_through_the_client() {
    let api = start(Some(TOKEN)).await;
    let client = api.client();

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
    let record = api.store.user_by_name("alice").await.unwrap().unwrap();
    assert!(record.password_hash.starts_with("$argon2id$"));
    assert!(!record.password_hash.contains("old password"));

    let auth = PasswordAuthenticator::new(api.store.clone());
    assert_eq!(
        auth.authenticate("alice", "old password", None)
            .await
            .map(|u| u.0),
        Ok(created.id)
    );
    client.set_password("alice", "new password").await.unwrap();
    assert_eq!(
        auth.authenticate("alice", "old password", None).await,
        Err(MetaError::AuthenticationFailed)
    );
    assert_eq!(
        auth.authenticate("alice", "new password", None)
            .await
            .map(|u| u.0),
        Ok(created.id)
    );

    // Disabled: no login, no delivery, data kept; enabled again: both work.
    let disabled = client.set_disabled("alice", true).await.unwrap();
    assert!(disabled.disabled);
    assert!(client.get_user("alice").await.unwrap().unwrap().disabled);
    assert_eq!(
        auth.authenticate("alice", "new password", None).await,
        Err(MetaError::AuthenticationFailed)
    );
    assert_eq!(auth.lookup("alice").await, Ok(None));
    assert!(!client.set_disabled("alice", false).await.unwrap().disabled);
    assert_eq!(auth.lookup("alice").await, Ok(Some(UserId(created.id))));

    assert_eq!(status_of(client.create_user("alice", "x").await), 409);
    assert_eq!(status_of(client.set_password("nobody", "pw").await), 404);
    assert_eq!(status_of(client.set_disabled("nobody", true).await), 404);
    assert_eq!(status_of(client.delete_user("nobody").await), 404);
    assert_eq!(status_of(client.usage("nobody").await), 404);
    assert_eq!(status_of(client.list_mailboxes("nobody").await), 404);
    assert_eq!(status_of(client.create_user("Bad Name", "pw").await), 400);
}

#[tokio::test]
async fn paging_walks_every_account_once() {
    let api = start(Some(TOKEN)).await;
    let client = api.client();
    let mut names: Vec<String> = (0..7).map(|i| format!("user{}", 7 - i)).collect();
    for n in &names {
        client.create_user(n, "pw").await.unwrap();
    }
    names.sort();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = client.list_users_page(after.as_deref(), 3).await.unwrap();
        pages += 1;
        assert!(page.users.len() <= 3);
        seen.extend(page.users.iter().map(|u| u.name.clone()));
        match page.next_after {
            Some(next) => {
                assert_eq!(Some(&next), seen.last(), "the cursor is the last name");
                after = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(seen, names, "every account once, in name order");
    assert_eq!(pages, 3, "7 accounts in pages of 3");
    // A page that ends exactly at the last account says so.
    let page = client.list_users_page(Some("user3"), 4).await.unwrap();
    assert_eq!(page.users.len(), 4);
    assert_eq!(page.next_after, None);
    let body: Value = api
        .request(Method::GET, "/v1/users?after=user6", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["users"].as_array().unwrap().len(), 1);
    assert_eq!(body["next_after"], Value::Null);
    assert_eq!(client.list_users().await.unwrap().len(), 7);
}

#[tokio::test]
async fn raw_http_shapes() {
    let api = start(Some(TOKEN)).await;
    let response = api
        .request(
            Method::POST,
            "/v1/users",
            Some(json!({"name": "demo", "password": "demo"})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["name"], "demo");
    assert!(body["id"].is_u64());
    let id = body["id"].clone();

    let body: Value = api
        .request(Method::GET, "/v1/users", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body,
        json!({"users": [{"id": id, "name": "demo", "disabled": false}], "next_after": null})
    );

    let response = api
        .request(
            Method::PUT,
            "/v1/users/demo/password",
            Some(json!({"password": "new"})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let body: Value = api
        .request(
            Method::PUT,
            "/v1/users/demo/quota",
            Some(json!({"storage_bytes": 1000, "messages": null})),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body,
        json!({"limits": {"storage_bytes": 1000, "messages": null}, "storage_bytes": 0, "messages": 0})
    );

    let response = api
        .request(
            Method::POST,
            "/v1/users/demo/mailboxes",
            Some(json!({"name": "Sent", "special_use": "\\Sent"})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["name"], "Sent");
    assert_eq!(body["special_use"], "\\Sent");
    assert_eq!(body["messages"], 0);

    let response = api.request(Method::GET, "/v1/users/ghost", None).await;
    assert_eq!(error_of(response).await.0, StatusCode::NOT_FOUND);
    let response = api.request(Method::GET, "/v2/nothing", None).await;
    assert_eq!(error_of(response).await.0, StatusCode::NOT_FOUND);
    let response = api.request(Method::POST, "/v1/users/demo", None).await;
    assert_eq!(error_of(response).await.0, StatusCode::METHOD_NOT_ALLOWED);
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

    // Writes are refused before anything happens, on every kind of route.
    let response = api
        .http
        .post(&url)
        .bearer_auth("wrong")
        .json(&json!({"name": "eve", "password": "pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(api.store.list_users().await.unwrap().is_empty());
    for (method, path) in [
        (Method::PUT, "/v1/domains/example.org"),
        (Method::DELETE, "/v1/users/eve"),
        (Method::PUT, "/v1/aliases/a@example.org"),
        (Method::GET, "/v1/users/eve/mailboxes"),
    ] {
        let response = api
            .http
            .request(method.clone(), format!("{}{path}", api.base))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
    }
    assert!(api.store.list_domains().await.unwrap().is_empty());

    // The scheme is case-insensitive (RFC 7235).
    let response = api
        .http
        .get(&url)
        .header("authorization", format!("bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // The API description is public: it holds no account data.
    let response = api
        .http
        .get(format!("{}/v1/openapi.json", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let client = AdminClient::new(&api.base, Some("wrong".into()));
    assert_eq!(status_of(client.list_users().await), 401);
    let client = AdminClient::new(&api.base, None);
    assert_eq!(status_of(client.create_user("eve", "pw").await), 401);
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

/// DNS rebinding: a page in a browser on this machine re-points its own name at 127.0.0.1 and
/// sends same-origin requests, `Host: <its name>`. Without a token only requests to an IP
/// literal or localhost are answered; with one, the token decides.
#[tokio::test]
async fn without_a_token_only_local_hosts_are_answered() {
    let api = start(None).await;
    let get = |host: &'static str| {
        api.http
            .get(format!("{}/v1/users", api.base))
            .header("host", host)
            .send()
    };
    let (status, message) = error_of(get("rebind.attacker.example").await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(message.contains("localhost"), "{message}");
    assert_eq!(
        get("rebind.attacker.example:8080").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    for host in ["localhost:8080", "127.0.0.1", "[::1]:80"] {
        assert_eq!(get(host).await.unwrap().status(), StatusCode::OK, "{host}");
    }
    // With a token the host does not matter; the token does.
    let api = start(Some(TOKEN)).await;
    let r = api
        .http
        .get(format!("{}/v1/users", api.base))
        .header("host", "meta.example:8080")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx() {
    let api = start(Some(TOKEN)).await;
    let too_long = "a".repeat(65);
    for name in ["", "Alice", "a b", "a/b", "ünï", too_long.as_str(), "a:b"] {
        let body = json!({"name": name, "password": "pw"}).to_string();
        let response = api
            .raw(Method::POST, "/v1/users", &body, "application/json")
            .await;
        let (status, message) = error_of(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name:?}");
        assert!(message.contains("name"), "{message}");
    }
    let ok = "a".repeat(64);
    let body = json!({"name": ok, "password": "pw"}).to_string();
    let response = api
        .raw(Method::POST, "/v1/users", &body, "application/json")
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let dup = api
        .raw(Method::POST, "/v1/users", &body, "application/json")
        .await;
    assert_eq!(error_of(dup).await.0, StatusCode::CONFLICT);

    for (body, content_type, expected) in [
        ("{not json", "application/json", StatusCode::BAD_REQUEST),
        ("", "application/json", StatusCode::BAD_REQUEST),
        (
            r#"{"name": "x"}"#,
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            r#"{"name": 5, "password": "pw"}"#,
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            r#"{"name": "x", "password": "pw", "admin": true}"#,
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            r#"{"name": "x", "password": "pw"}"#,
            "text/plain",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            r#"{"name": "x", "password": ""}"#,
            "application/json",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let response = api.raw(Method::POST, "/v1/users", body, content_type).await;
        assert_eq!(
            error_of(response).await.0,
            expected,
            "{body} as {content_type}"
        );
    }

    let user = format!("/v1/users/{ok}");
    for (method, path, body, expected) in [
        (
            Method::PUT,
            format!("{user}/password"),
            r#"{"pass": "x"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::PATCH,
            user.clone(),
            r#"{"disabled": "yes"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::PATCH,
            user.clone(),
            r#"{}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::PUT,
            format!("{user}/quota"),
            r#"{"storage_bytes": -1}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::PUT,
            format!("{user}/quota"),
            r#"{"messages": "10"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::PUT,
            format!("{user}/quota"),
            r#"{"storage_bytes": 18446744073709551616}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            format!("{user}/mailboxes"),
            r#"{"name": "a//b"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            format!("{user}/mailboxes"),
            r#"{"name": "X", "special_use": "\\Bogus"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            format!("{user}/mailboxes"),
            r#"{"name": "INBOX"}"#,
            StatusCode::CONFLICT,
        ),
        (
            Method::POST,
            "/v1/users/ghost/mailboxes".into(),
            r#"{"name": "X"}"#,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::PUT,
            "/v1/aliases/not-an-address".into(),
            &format!(r#"{{"target": "{ok}"}}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            "/v1/aliases/a@example.org".into(),
            r#"{"target": "ghost"}"#,
            StatusCode::NOT_FOUND,
        ),
        (
            Method::PUT,
            format!("/v1/aliases/{ok}"),
            &format!(r#"{{"target": "{ok}"}}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            "/v1/domains/bad..domain".into(),
            "{}",
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            "/v1/domains/b.example".into(),
            r#"{"alias_of": "nowhere.example"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            "/v1/domains/b.example".into(),
            r#"{"alias_of": 7}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let response = api
            .raw(method.clone(), &path, body, "application/json")
            .await;
        assert_eq!(
            error_of(response).await.0,
            expected,
            "{method} {path} {body}"
        );
    }

    for (method, path, expected) in [
        (
            Method::DELETE,
            format!("{user}/mailboxes/INBOX"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::DELETE,
            format!("{user}/mailboxes/No/Such"),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::DELETE,
            "/v1/users/ghost".into(),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/v1/users/ghost/usage".into(),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::DELETE,
            "/v1/aliases/nobody@example.org".into(),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::DELETE,
            "/v1/domains/nowhere.example".into(),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let response = api.request(method.clone(), &path, None).await;
        assert_eq!(error_of(response).await.0, expected, "{method} {path}");
    }

    // Absurd paging values.
    for query in [
        "limit=0",
        "limit=1001",
        "limit=-1",
        "limit=abc",
        "limit=1e3",
        "limit=99999999999999999999999999",
        "limit=",
        "colour=blue",
    ] {
        let response = api
            .request(Method::GET, &format!("/v1/users?{query}"), None)
            .await;
        let (status, message) = error_of(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(!message.is_empty());
    }
    let response = api.request(Method::GET, "/v1/users?limit=1000", None).await;
    assert_eq!(response.status(), StatusCode::OK);

    let long_password = "p".repeat(yubin_meta::auth::MAX_PASSWORD_BYTES + 1);
    assert_eq!(
        status_of(api.client().set_password(&ok, &long_password).await),
        400
    );

    // Nothing but the one valid user was created.
    assert_eq!(api.store.list_users().await.unwrap().len(), 1);
    assert!(api.store.list_aliases().await.unwrap().is_empty());
    assert!(api.store.list_domains().await.unwrap().is_empty());
}

#[tokio::test]
async fn quota_usage_mailboxes_aliases_and_domains() {
    let api = start(Some(TOKEN)).await;
    let client = api.client();
    let carol = client.create_user("carol", "pw").await.unwrap();
    let user = UserId(carol.id);

    let usage = client.usage("carol").await.unwrap();
    assert_eq!(usage.limits, QuotaLimits::default());
    let usage = client
        .set_quota(
            "carol",
            QuotaLimits {
                storage_bytes: Some(250),
                messages: Some(10),
            },
        )
        .await
        .unwrap();
    assert_eq!(usage.limits.storage_bytes, Some(250));
    api.store
        .append(
            user,
            "INBOX",
            vec![
                common::new_message_for(user, 1),
                common::new_message_for(user, 2),
            ],
        )
        .await
        .unwrap();
    let usage = client.usage("CAROL").await.unwrap();
    assert_eq!((usage.storage_bytes, usage.messages), (101 + 102, 2));
    // The limit set through the API is what the store enforces.
    assert!(matches!(
        api.store
            .append(user, "INBOX", vec![common::new_message_for(user, 3)])
            .await,
        Err(MetaError::OverQuota(_))
    ));

    let made = client
        .create_mailbox("carol", "Projects/2026", None)
        .await
        .unwrap();
    assert_eq!(made.name, "Projects/2026");
    client
        .create_mailbox("carol", "Bin", Some("\\Trash"))
        .await
        .unwrap();
    let names: Vec<String> = client
        .list_mailboxes("carol")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["Bin", "INBOX", "Projects", "Projects/2026"]);
    let inbox = client
        .list_mailboxes("carol")
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.name == "INBOX")
        .unwrap();
    assert_eq!((inbox.messages, inbox.size), (2, 203));
    // A `/` in a mailbox name travels encoded (the client) or raw (any HTTP tool).
    client
        .delete_mailbox("carol", "Projects/2026")
        .await
        .unwrap();
    let response = api
        .request(Method::DELETE, "/v1/users/carol/mailboxes/Projects", None)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    client.create_mailbox("carol", "A/B", None).await.unwrap();
    let response = api
        .request(Method::DELETE, "/v1/users/carol/mailboxes/A/B", None)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let names: Vec<String> = client
        .list_mailboxes("carol")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["A", "Bin", "INBOX"]);
    assert_eq!(
        status_of(client.create_mailbox("carol", "Bin", None).await),
        409
    );

    // Domains and aliases, and what address resolution (LMTP's lookup) makes of them.
    let auth = PasswordAuthenticator::new(api.store.clone());
    client.put_domain("Example.ORG", None).await.unwrap();
    let alias_domain = client
        .put_domain("example.net", Some("example.org"))
        .await
        .unwrap();
    assert_eq!(alias_domain.alias_of.as_deref(), Some("example.org"));
    let domains = client.list_domains().await.unwrap();
    assert_eq!(domains.len(), 2);
    assert_eq!(domains[0].name, "example.net");
    assert_eq!(domains[1].name, "example.org");
    assert_eq!(auth.lookup("carol@example.net").await, Ok(Some(user)));
    assert_eq!(auth.lookup("carol@elsewhere.example").await, Ok(None));
    let alias = client
        .put_alias("Sales@Example.org", "carol")
        .await
        .unwrap();
    assert_eq!(alias.address, "sales@example.org");
    assert_eq!(alias.target, "carol");
    assert_eq!(auth.lookup("sales@example.net").await, Ok(Some(user)));
    let aliases = client.list_aliases().await.unwrap();
    assert_eq!(aliases.len(), 1);
    assert_eq!(aliases[0].target, "carol");
    assert_eq!(
        status_of(client.delete_domain("example.org").await),
        400,
        "an alias domain still points at it"
    );
    client.delete_alias("sales@example.org").await.unwrap();
    assert_eq!(auth.lookup("sales@example.org").await, Ok(None));
    client.delete_domain("example.net").await.unwrap();
    client.delete_domain("example.org").await.unwrap();
    assert!(client.list_domains().await.unwrap().is_empty());
    assert_eq!(
        status_of(client.delete_alias("sales@example.org").await),
        404
    );
}

#[tokio::test]
async fn deleting_a_user_removes_metadata_then_every_body() {
    let api = start(Some(TOKEN)).await;
    let client = api.client();
    let dave = UserId(client.create_user("dave", "pw").await.unwrap().id);
    let erin = UserId(client.create_user("erin", "pw").await.unwrap().id);
    // Bodies first, then the metadata pointing at them (the APPEND order).
    for (user, n) in [(dave, 1u8), (dave, 2), (erin, 3)] {
        let mut m = common::new_message(n);
        m.blob = BlobKey::for_content(user, &format!("{n:064x}"));
        api.blobs
            .put(&m.blob, bytes::Bytes::from(vec![n; 100 + usize::from(n)]))
            .await
            .unwrap();
        api.store.append(user, "INBOX", vec![m]).await.unwrap();
    }
    client.put_alias("dave@example.org", "dave").await.unwrap();
    client.create_mailbox("dave", "Keep", None).await.unwrap();

    let deleted = client.delete_user("DAVE").await.unwrap();
    assert_eq!((deleted.id, deleted.name.as_str()), (dave.0, "dave"));
    assert_eq!(deleted.blobs_deleted, 2);
    assert!(
        api.blobs
            .list(&BlobKey::user_prefix(dave))
            .await
            .unwrap()
            .is_empty(),
        "every body of the account is gone"
    );
    assert_eq!(
        api.blobs
            .list(&BlobKey::user_prefix(erin))
            .await
            .unwrap()
            .len(),
        1,
        "other accounts' bodies stay"
    );
    assert_eq!(client.get_user("dave").await.unwrap(), None);
    assert!(client.list_aliases().await.unwrap().is_empty());
    let auth = PasswordAuthenticator::new(api.store.clone());
    assert_eq!(
        auth.authenticate("dave", "pw", None).await,
        Err(MetaError::AuthenticationFailed)
    );
    assert_eq!(auth.lookup("dave@example.org").await, Ok(None));
    assert_eq!(api.store.user_by_id(dave).await.unwrap(), None);
    assert_eq!(status_of(client.delete_user("dave").await), 404);
    // The name can be used again, by a new, empty account.
    let again = client.create_user("dave", "pw2").await.unwrap();
    assert_ne!(again.id, dave.0);
    let boxes = client.list_mailboxes("dave").await.unwrap();
    assert_eq!(boxes.len(), 1);
    assert_eq!(boxes[0].messages, 0);
}

/// The OpenAPI document lists exactly the routes the router serves, and the router refuses
/// every method a route does not list with 405 (so the table behind both is complete).
#[tokio::test]
async fn openapi_describes_every_route() {
    let api = start(Some(TOKEN)).await;
    let doc: Value = api
        .http
        .get(format!("{}/v1/openapi.json", api.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let methods = ["get", "post", "put", "patch", "delete"];
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (key, op) in item.as_object().unwrap() {
            assert!(
                methods.contains(&key.as_str()),
                "{path}: unexpected key {key}"
            );
            assert!(op["responses"].is_object(), "{key} {path} has responses");
            documented.insert((key.to_uppercase(), path.clone()));
        }
    }
    let served: BTreeSet<(String, String)> = admin_routes()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p))
        .collect();
    assert_eq!(documented, served, "documented routes == served routes");
    // Every schema reference resolves.
    let text = doc.to_string();
    for part in text.split("#/components/schemas/").skip(1) {
        let name: String = part.chars().take_while(|c| c.is_alphanumeric()).collect();
        assert!(
            doc["components"]["schemas"][&name].is_object(),
            "schema {name}"
        );
    }

    // Each served path answers; each method it does not list is 405.
    let paths: BTreeSet<&String> = served.iter().map(|(_, p)| p).collect();
    for path in paths {
        let concrete = path
            .replace("{name}", "nobody")
            .replace("{mailbox}", "Some/Box")
            .replace("{address}", "a@example.org")
            .replace("{domain}", "example.org");
        for m in methods {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let listed = served.contains(&(method.to_string(), path.clone()));
            let response = api.request(method.clone(), &concrete, None).await;
            if listed {
                assert_ne!(
                    response.status(),
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is served"
                );
            } else {
                assert_eq!(
                    response.status(),
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is not served"
                );
            }
        }
    }
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
