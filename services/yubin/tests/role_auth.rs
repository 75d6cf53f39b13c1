//! Authentication between roles (issue 9 item 3), against the real binary: meta's gRPC port
//! answers only callers holding the installation's secret, and the roles that speak gRPC do not
//! start without one unless `--grpc-insecure` says so.

mod common;

use common::{YubinProcess, grpc_secret_file, http_get, start_meta, yubin_bin};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use yubin_meta::pb;
use yubin_meta_store::testing::RedisServer;

/// Runs `yubin <args>` without any grpc secret in the environment and returns its exit status
/// and stderr; it must end on its own (a role that started would run until killed).
fn run_without_secret(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(yubin_bin())
        .args(args)
        .env_remove("YUBIN_GRPC_SECRET_FILE")
        .env_remove("YUBIN_GRPC_INSECURE")
        .env_remove("YUBIN_ADMIN_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn yubin");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("yubin {args:?} started without a grpc secret");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    (status, stderr)
}

#[test]
fn roles_that_speak_grpc_refuse_to_start_without_a_secret() {
    // Nothing listens on these; the roles must stop before trying.
    let meta_url = "http://127.0.0.1:9";
    for args in [
        &[
            "meta",
            "--redis-url",
            "redis://127.0.0.1:9",
            "--grpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ][..],
        &[
            "imap",
            "--meta-url",
            meta_url,
            "--imap-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ],
        &[
            "lmtp",
            "--meta-url",
            meta_url,
            "--lmtp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ],
        &[
            "dev",
            "--data-dir",
            "unused",
            "--grpc-listen",
            "127.0.0.1:0",
            "--imap-listen",
            "127.0.0.1:0",
        ],
    ] {
        let (status, stderr) = run_without_secret(args);
        assert!(!status.success(), "yubin {args:?} exited successfully");
        assert!(
            stderr.contains("--grpc-secret-file"),
            "yubin {args:?} names the missing setting: {stderr}"
        );
    }
}

/// A generated gRPC client with whatever `authorization` value a test gives (or none).
async fn raw_client(
    addr: std::net::SocketAddr,
) -> pb::meta_client::MetaClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("url")
        .connect()
        .await
        .expect("connect");
    pb::meta_client::MetaClient::new(channel)
}

fn lookup(bearer: Option<&str>) -> tonic::Request<pb::LookupUserRequest> {
    let mut request = tonic::Request::new(pb::LookupUserRequest {
        name: "alice".into(),
    });
    if let Some(value) = bearer {
        request
            .metadata_mut()
            .insert("authorization", value.parse().expect("header value"));
    }
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_refuses_grpc_calls_without_the_installation_secret() {
    let redis = RedisServer::spawn().expect("redis-server");
    let meta = start_meta(&redis.url(), "127.0.0.1:0", &[], &[]);
    let grpc = meta.addr("grpc");
    let secret = std::fs::read_to_string(grpc_secret_file()).expect("secret");
    let secret = secret.trim();
    let mut raw = raw_client(grpc).await;

    for bearer in [
        None,
        Some("Bearer not-the-secret-0123456789abcdef0123456789"),
        Some(&*format!("Bearer {secret}x")),
    ] {
        let status = raw.lookup_user(lookup(bearer)).await.unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::Unauthenticated,
            "bearer {bearer:?}: {status:?}"
        );
    }
    let watch = raw
        .watch(pb::WatchRequest { user_id: 1 })
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(watch.code(), tonic::Code::Unauthenticated);

    let answered = raw
        .lookup_user(lookup(Some(&format!("Bearer {secret}"))))
        .await
        .expect("the installation's secret is accepted");
    assert_eq!(answered.into_inner().user_id, None, "no such user yet");

    // A front-end holding another secret never turns ready: its readiness probe goes through
    // meta, and meta refuses it.
    let dir = tempfile::tempdir().expect("tempdir");
    let wrong = dir.path().join("wrong-secret");
    std::fs::write(&wrong, "a-different-secret-0123456789abcdef0123\n").expect("write");
    let meta_url = format!("http://{grpc}");
    let node = YubinProcess::start(
        &[
            "imap",
            "--meta-url",
            &meta_url,
            "--imap-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ],
        &[("YUBIN_GRPC_SECRET_FILE", wrong.to_str().expect("utf-8"))],
        &["imap", "http"],
    );
    let (status, body) = http_get(node.addr("http"), "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("meta"), "{body}");
}

/// The attack issue 9 item 3 describes: a caller that can reach meta appends a message to its
/// own account whose body key lies under another account's prefix, then FETCHes that account's
/// body through an ordinary front-end. Meta refuses the key and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_pointing_at_another_accounts_body_is_refused() {
    use yubin_loadtest::client::Imap;
    use yubin_meta_api::{Authenticator, MailStore, MetaError, NewMessage, UidSet};

    let stack = common::stack::Stack::start().await;
    stack.add_user("alice", "pw-a");
    stack.add_user("mallory", "pw-m");
    let mut alice = Imap::login(stack.imap(0), "alice", "pw-a").await;
    assert!(
        alice
            .append("INBOX", "", &common::sample_message(1))
            .await
            .is_ok()
    );

    // A client holding the installation's secret, as a compromised front-end would.
    let secret = yubin_meta::ServiceSecret::from_file(grpc_secret_file()).expect("secret");
    let meta =
        yubin_meta::GrpcMetaClient::connect(&format!("http://{}", stack.grpc()), Some(&secret))
            .await
            .expect("client");
    let alice_id = meta.lookup("alice").await.expect("lookup").expect("alice");
    let mallory_id = meta
        .lookup("mallory")
        .await
        .expect("lookup")
        .expect("mallory");
    let inbox = meta
        .mailbox_status(alice_id, "INBOX")
        .await
        .expect("status");
    let stolen = meta
        .fetch(alice_id, inbox.id, &UidSet::from_ranges([(1, 1)]), false)
        .await
        .expect("fetch")
        .remove(0);

    let forged = NewMessage {
        blob: stolen.blob.clone(),
        size: stolen.size,
        internal_date: stolen.internal_date,
        flags: Vec::new(),
        summary: Default::default(),
        index: Default::default(),
    };
    let refused = meta.append(mallory_id, "INBOX", vec![forged]).await;
    assert!(
        matches!(refused, Err(MetaError::Invalid(_))),
        "a foreign body key is refused: {refused:?}"
    );

    let mut mallory = Imap::login(stack.imap(1), "mallory", "pw-m").await;
    let r = mallory.ok("SELECT INBOX").await;
    assert!(
        r.find("* 0 EXISTS").is_some(),
        "nothing was stored that could FETCH alice's body: {r:?}"
    );
}
