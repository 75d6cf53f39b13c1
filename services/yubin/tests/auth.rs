//! Authentication end to end through the real `yubin dev` binary: its auth flags, a real client
//! (Python's imaplib) using LOGIN, PLAIN, LOGIN-the-mechanism, OAUTHBEARER and XOAUTH2 with tokens
//! signed by a test-only issuer secret, and the auth cache seen on `/metrics` after a reconnect
//! storm.

mod common;

use common::YubinProcess;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;
use yubin_loadtest::client::Imap;

const ISSUER: &str = "https://id.example.test";
const SECRET: &str = "test-only issuer secret for yubin's end-to-end tests";

fn token(sub: &str, lifetime: i64) -> String {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let claims = serde_json::json!({"iss": ISSUER, "sub": sub, "exp": now + lifetime});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

/// The value of one series of a Prometheus text exposition (0 when absent).
fn metric(addr: SocketAddr, series: &str) -> f64 {
    let mut tcp = std::net::TcpStream::connect(addr).expect("connect http");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        tcp,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut body = String::new();
    tcp.read_to_string(&mut body).expect("read");
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_authenticate_and_the_cache_absorbs_a_storm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("issuer-secret");
    std::fs::write(&secret, format!("{SECRET}\n")).expect("secret");
    let data = dir.path().join("data");
    let dev = YubinProcess::start(
        &[
            "dev",
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--imap-listen",
            "127.0.0.1:0",
            "--imaps-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--lmtp-listen",
            "127.0.0.1:0",
            "--oauth-issuer",
            ISSUER,
            "--oauth-hs256-secret-file",
            secret.to_str().expect("utf-8"),
            "--argon2-memory-kib",
            "8192",
        ],
        &[],
        &["imap", "imaps", "http"],
    );
    let (imap, imaps) = (dev.addr("imap"), dev.addr("imaps"));

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/auth_client.py");
    let out = Command::new("python3")
        .args([
            script,
            &imap.ip().to_string(),
            &imap.port().to_string(),
            &imaps.port().to_string(),
            "demo",
            "demo",
            &token("demo", 300),
            &token("demo", -600),
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "auth_client.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A reconnect storm of the demo account: answered from the cache.
    let http = dev.addr("http");
    let verified = r#"yubin_auth_attempts_total{result="success"}"#;
    let cached = r#"yubin_auth_attempts_total{result="cached"}"#;
    let (verified_before, cached_before) = (metric(http, verified), metric(http, cached));
    let mut logins = tokio::task::JoinSet::new();
    for _ in 0..200 {
        logins.spawn(async move {
            let mut c = Imap::login(imap, "demo", "demo").await;
            c.ok("LOGOUT").await;
        });
    }
    while let Some(done) = logins.join_next().await {
        done.expect("login task");
    }
    assert_eq!(metric(http, verified), verified_before);
    assert!(metric(http, cached) >= cached_before + 200.0);
    assert!(metric(http, r#"yubin_auth_attempts_total{result="failure"}"#) >= 1.0);
    dev.stop();
}
