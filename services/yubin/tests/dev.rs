//! `yubin dev` end to end: a real client (Python's imaplib) works the demo account, and all of it
//! is still there after a restart.

mod common;

use common::{sample_message, start_dev, yubin_user};
use std::process::Command;
use yubin_loadtest::client::Imap;

fn python(mode: &str, addr: std::net::SocketAddr, state: &std::path::Path) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/mail_client.py");
    let out = Command::new("python3")
        .args([
            script,
            mode,
            &addr.ip().to_string(),
            &addr.port().to_string(),
            state.to_str().expect("utf-8"),
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python {mode} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn imaplib_session_survives_restart() {
    let data = tempfile::tempdir().expect("tempdir");
    let state = data.path().join("expected.json");
    let dev = start_dev(&data.path().join("yubin"));
    python("populate", dev.addr("imap"), &state);
    assert!(dev.stop().success(), "dev exits cleanly on SIGTERM");

    let dev = start_dev(&data.path().join("yubin"));
    python("verify", dev.addr("imap"), &state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cli_creates_users_who_can_log_in() {
    let data = tempfile::tempdir().expect("tempdir");
    let dev = start_dev(data.path());
    let out = yubin_user(dev.addr("http"), &["add", "erin", "--password", "s3cret"]);
    assert!(out.contains("erin"), "{out}");
    let list = yubin_user(dev.addr("http"), &["list"]);
    assert!(list.contains("demo") && list.contains("erin"), "{list}");

    let mut erin = Imap::login(dev.addr("imap"), "erin", "s3cret").await;
    let r = erin.append("INBOX", "", &sample_message(3)).await;
    assert!(r.status.contains("APPENDUID"), "{r:?}");
    let mut demo = Imap::login(dev.addr("imap"), "demo", "demo").await;
    let r = demo.ok("SELECT INBOX").await;
    assert!(
        r.find("* 0 EXISTS").is_some(),
        "demo does not see erin's mail: {r:?}"
    );
    let bad = Imap::connect(dev.addr("imap"))
        .await
        .run("LOGIN erin wrong")
        .await;
    assert!(bad.status.starts_with("NO"), "{bad:?}");
}
