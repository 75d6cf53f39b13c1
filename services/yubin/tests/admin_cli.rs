//! The admin CLI (`yubin user|alias|domain|mailbox …`) end to end against `yubin dev`: every
//! subcommand through the real admin API, checked with a real IMAP client and by looking at the
//! blob store on disk.

mod common;

use common::{YubinProcess, sample_message, start_dev, start_meta, yubin_bin};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use yubin_blob::BlobStore;
use yubin_blob::test_server::spawn_s3s_fs;
use yubin_loadtest::client::Imap;
use yubin_meta_store::testing::RedisServer;

struct Outcome {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `yubin <args>` against the admin API at `admin`, feeding `stdin`.
fn yubin_admin(admin: SocketAddr, args: &[&str], stdin: &str) -> Outcome {
    let mut child = Command::new(yubin_bin())
        .args(args)
        .arg("--admin")
        .arg(format!("http://{admin}"))
        .env_remove("YUBIN_ADMIN_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run yubin");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    Outcome {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a command that must succeed; its standard output.
fn ok(admin: SocketAddr, args: &[&str]) -> String {
    let out = yubin_admin(admin, args, "");
    assert!(out.ok, "yubin {args:?} failed: {}", out.stderr);
    out.stdout
}

/// Runs a command that must fail; its standard error.
fn fails(admin: SocketAddr, args: &[&str]) -> String {
    let out = yubin_admin(admin, args, "");
    assert!(
        !out.ok,
        "yubin {args:?} should fail, printed {}",
        out.stdout
    );
    out.stderr
}

fn files_under(dir: &Path) -> usize {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(Result::ok).count(),
        Err(_) => 0,
    }
}

async fn login_fails(imap: SocketAddr, user: &str, password: &str) -> bool {
    let r = Imap::connect(imap)
        .await
        .run(&format!("LOGIN {user} {password}"))
        .await;
    r.status.starts_with("NO")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_subcommand_end_to_end() {
    let data = tempfile::tempdir().expect("tempdir");
    let dev = start_dev(data.path());
    let (http, imap) = (dev.addr("http"), dev.addr("imap"));

    // Accounts.
    let out = ok(http, &["user", "add", "frank", "--password", "pw1"]);
    assert!(out.contains("created user frank"), "{out}");
    let out = yubin_admin(
        http,
        &["user", "add", "grace", "--password-stdin"],
        "from stdin\n",
    );
    assert!(out.ok, "{}", out.stderr);
    let list = ok(http, &["user", "list"]);
    let names: Vec<&str> = list
        .lines()
        .map(|l| l.split('\t').nth(1).expect("name column"))
        .collect();
    assert_eq!(names, ["demo", "frank", "grace"], "{list}");
    let frank_id: u64 = list
        .lines()
        .find(|l| l.contains("\tfrank\t"))
        .and_then(|l| l.split('\t').next())
        .and_then(|id| id.parse().ok())
        .expect("frank's id");
    Imap::login(imap, "grace", "\"from stdin\"").await;
    let show = ok(http, &["user", "show", "frank"]);
    assert!(show.contains("state\tenabled"), "{show}");
    assert!(show.contains("storage\t0 of unlimited bytes"), "{show}");
    assert!(show.contains("mailboxes\t1"), "{show}");
    let err = fails(http, &["user", "add", "frank", "--password", "x"]);
    assert!(err.contains("409"), "{err}");
    let err = fails(http, &["user", "show", "nobody"]);
    assert!(err.contains("nobody"), "{err}");

    // Domains and aliases.
    assert!(ok(http, &["domain", "add", "example.org"]).contains("example.org"));
    let out = ok(
        http,
        &["domain", "add", "example.net", "--alias-of", "example.org"],
    );
    assert!(out.contains("alias of example.org"), "{out}");
    let domains = ok(http, &["domain", "list"]);
    assert_eq!(domains, "example.net\texample.org\nexample.org\t-\n");
    let err = fails(http, &["domain", "delete", "example.org"]);
    assert!(err.contains("alias domain"), "{err}");
    ok(http, &["alias", "add", "Sales@example.org", "frank"]);
    assert_eq!(ok(http, &["alias", "list"]), "sales@example.org\tfrank\n");
    let err = fails(http, &["alias", "add", "x@example.org", "nobody"]);
    assert!(err.contains("404"), "{err}");

    // Mailboxes.
    ok(http, &["mailbox", "create", "frank", "Projects/2026"]);
    ok(
        http,
        &[
            "mailbox",
            "create",
            "frank",
            "Bin",
            "--special-use",
            "\\Trash",
        ],
    );
    let boxes = ok(http, &["mailbox", "list", "frank"]);
    let box_names: Vec<&str> = boxes
        .lines()
        .map(|l| l.split('\t').next().expect("name"))
        .collect();
    assert_eq!(box_names, ["Bin", "INBOX", "Projects", "Projects/2026"]);
    assert!(boxes.contains("Bin\t0\t0\t0\t\\Trash"), "{boxes}");
    ok(http, &["mailbox", "delete", "frank", "Projects/2026"]);
    assert!(!ok(http, &["mailbox", "list", "frank"]).contains("Projects/2026"));
    let err = fails(http, &["mailbox", "delete", "frank", "INBOX"]);
    assert!(err.contains("INBOX"), "{err}");

    // Quota: two messages fit, the third is refused by IMAP APPEND.
    let out = ok(http, &["user", "quota", "frank", "--messages", "2"]);
    assert_eq!(out, "storage\t0\tunlimited\nmessages\t0\t2\n");
    let mut frank = Imap::login(imap, "frank", "pw1").await;
    for n in 1..=2 {
        let r = frank.append("INBOX", "", &sample_message(n)).await;
        assert!(r.is_ok(), "{r:?}");
    }
    let r = frank.append("INBOX", "", &sample_message(3)).await;
    assert!(r.status.starts_with("NO"), "over quota: {r:?}");
    assert!(r.status.contains("OVERQUOTA"), "{r:?}");
    let out = ok(http, &["user", "quota", "frank", "--storage", "1M"]);
    assert!(out.starts_with("storage\t"), "{out}");
    assert!(out.contains("\t1048576\n"), "{out}");
    assert!(
        out.ends_with("messages\t2\t2\n"),
        "the message limit stays: {out}"
    );
    let out = ok(http, &["user", "quota", "frank", "--messages", "unlimited"]);
    assert!(out.ends_with("messages\t2\tunlimited\n"), "{out}");
    let r = frank.append("INBOX", "", &sample_message(3)).await;
    assert!(r.is_ok(), "{r:?}");
    frank.run("LOGOUT").await;
    let err = fails(http, &["user", "quota", "frank", "--storage", "lots"]);
    assert!(err.contains("lots"), "{err}");

    // Disable, enable, new password.
    ok(http, &["user", "disable", "frank"]);
    assert!(ok(http, &["user", "list"]).contains("frank\tdisabled"));
    assert!(
        login_fails(imap, "frank", "pw1").await,
        "disabled: no login"
    );
    ok(http, &["user", "enable", "frank"]);
    Imap::login(imap, "frank", "pw1").await;
    ok(http, &["user", "passwd", "frank", "--password", "pw2"]);
    assert!(login_fails(imap, "frank", "pw1").await);
    Imap::login(imap, "frank", "pw2").await;

    // Delete: the metadata and then every body on disk.
    let frank_blobs = data.path().join("blobs").join(format!("u/{frank_id}"));
    assert_eq!(files_under(&frank_blobs), 3, "three bodies stored");
    let err = fails(http, &["user", "delete", "frank"]);
    assert!(err.contains("--yes"), "{err}");
    let out = ok(http, &["user", "delete", "frank", "--yes"]);
    assert!(out.contains("and 3 message bodies"), "{out}");
    assert_eq!(files_under(&frank_blobs), 0, "frank's bodies are gone");
    assert!(login_fails(imap, "frank", "pw2").await);
    assert!(!ok(http, &["user", "list"]).contains("frank"));
    assert_eq!(
        ok(http, &["alias", "list"]),
        "",
        "frank's alias went with him"
    );
    let err = fails(http, &["user", "delete", "frank", "--yes"]);
    assert!(err.contains("404"), "{err}");

    // Cleanup through the CLI too.
    ok(http, &["domain", "delete", "example.net"]);
    ok(http, &["domain", "delete", "example.org"]);
    assert_eq!(ok(http, &["domain", "list"]), "");
}

/// The distributed setup: `yubin meta` on Redis deletes an account's bodies from S3 (s3s-fs),
/// and the quota set through the CLI is enforced by the Redis scripts on an IMAP APPEND.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_quota_and_delete_through_s3() {
    const BUCKET: &str = "yubin-admin-test";
    let redis = RedisServer::spawn().expect("redis-server");
    let s3_dir = tempfile::tempdir().expect("tempdir");
    // s3s-fs keeps each bucket as a directory under its root.
    std::fs::create_dir_all(s3_dir.path().join(BUCKET)).expect("bucket dir");
    let s3 = spawn_s3s_fs(s3_dir.path()).await.expect("s3s-fs");
    let s3_env = [
        ("AWS_ENDPOINT_URL_S3", s3.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", s3.access_key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", s3.secret_key.as_str()),
        ("AWS_REGION", "us-east-1"),
    ];
    let meta = start_meta(
        &redis.url(),
        "127.0.0.1:0",
        &["--s3-bucket", BUCKET],
        &s3_env,
    );
    let meta_url = format!("http://{}", meta.addr("grpc"));
    let node = YubinProcess::start(
        &[
            "imap",
            "--meta-url",
            &meta_url,
            "--s3-bucket",
            BUCKET,
            "--imap-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--allow-plaintext-auth",
            "true",
        ],
        &s3_env,
        &["imap", "http"],
    );
    let (http, imap) = (meta.addr("http"), node.addr("imap"));

    ok(http, &["user", "add", "heidi", "--password", "pw"]);
    ok(http, &["user", "add", "ivan", "--password", "pw"]);
    ok(http, &["user", "quota", "heidi", "--messages", "2"]);
    let list = ok(http, &["user", "list"]);
    let id_of = |name: &str| -> u64 {
        list.lines()
            .find(|l| l.split('\t').nth(1) == Some(name))
            .and_then(|l| l.split('\t').next())
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {list}"))
    };
    let (heidi, ivan) = (id_of("heidi"), id_of("ivan"));

    let mut h = Imap::login(imap, "heidi", "pw").await;
    for n in 1..=2 {
        assert!(h.append("INBOX", "", &sample_message(n)).await.is_ok());
    }
    let r = h.append("INBOX", "", &sample_message(3)).await;
    assert!(r.status.contains("OVERQUOTA"), "{r:?}");
    h.run("LOGOUT").await;
    let mut i = Imap::login(imap, "ivan", "pw").await;
    assert!(i.append("INBOX", "", &sample_message(9)).await.is_ok());
    i.run("LOGOUT").await;
    let quota = ok(http, &["user", "quota", "heidi"]);
    assert!(quota.ends_with("messages\t2\t2\n"), "{quota}");

    let blobs = s3.blob_store(BUCKET);
    let heidi_prefix = format!("u/{heidi}/");
    // The refused APPEND had already stored its body (body first, metadata second): an
    // unreferenced body that deleting the account removes with the others.
    assert_eq!(blobs.list(&heidi_prefix).await.expect("list").len(), 3);
    let out = ok(http, &["user", "delete", "heidi", "--yes"]);
    assert!(out.contains("and 3 message bodies"), "{out}");
    assert!(
        blobs.list(&heidi_prefix).await.expect("list").is_empty(),
        "heidi's bodies are gone from S3"
    );
    assert_eq!(
        blobs.list(&format!("u/{ivan}/")).await.expect("list").len(),
        1,
        "ivan's body stays"
    );
    assert!(login_fails(imap, "heidi", "pw").await);
    Imap::login(imap, "ivan", "pw").await;
}
