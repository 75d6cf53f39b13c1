//! Harness for end-to-end tests: runs the real `yubin` binary in its roles, against a real
//! redis-server and a real S3 protocol server (s3s-fs), and talks IMAP to it over TCP.
#![allow(dead_code)]

pub mod response;
pub mod stack;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// `yubin meta` against `redis_url`, gRPC on `grpc_listen` (`127.0.0.1:0` for a free port), HTTP
/// on a free port, with `extra` flags and `env`.
pub fn start_meta(
    redis_url: &str,
    grpc_listen: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> YubinProcess {
    let mut args = vec![
        "meta",
        "--redis-url",
        redis_url,
        "--grpc-listen",
        grpc_listen,
        "--http-listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    YubinProcess::start(&args, env, &["grpc", "http"])
}

/// A blocking `GET path` on a role's HTTP port: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr).expect("connect http");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The gRPC secret every role the harness starts shares (meta demands it, imap and lmtp
/// present it): written once per test binary under cargo's scratch directory for tests.
pub fn grpc_secret_file() -> &'static Path {
    static FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let path = dir.join("yubin-test-grpc-secret");
        // Written under a unique name and renamed, so test binaries running at once never read
        // a half-written file.
        let partial = dir.join(format!("yubin-test-grpc-secret.{}", std::process::id()));
        std::fs::write(&partial, "test-grpc-secret-0123456789abcdef0123456789\n")
            .expect("write the test grpc secret");
        std::fs::rename(&partial, &path).expect("publish the test grpc secret");
        path
    })
}

pub fn yubin_bin() -> &'static str {
    env!("CARGO_BIN_EXE_yubin")
}

/// A running `yubin` process; stopped with SIGTERM (graceful) on drop.
pub struct YubinProcess {
    child: Child,
    /// What it announced as `<what> listening on <addr>`.
    pub addrs: HashMap<String, SocketAddr>,
}

impl YubinProcess {
    /// Starts `yubin <args>` and waits until every listener in `expect` is announced.
    pub fn start(args: &[&str], envs: &[(&str, &str)], expect: &[&str]) -> YubinProcess {
        let mut cmd = Command::new(yubin_bin());
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env_remove("YUBIN_ADMIN_TOKEN")
            // Every role gets the shared gRPC secret (a test can override it through `envs`).
            .env("YUBIN_GRPC_SECRET_FILE", grpc_secret_file());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn yubin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Keep draining so the child never blocks on a full pipe.
                    continue;
                }
            }
        });
        let mut addrs = HashMap::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !expect.iter().all(|e| addrs.contains_key(*e)) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => {
                    let _ = child.kill();
                    panic!("yubin {args:?} did not announce {expect:?} (got {addrs:?})");
                }
            };
            if let Some((what, addr)) = line.split_once(" listening on ") {
                addrs.insert(what.to_string(), addr.parse().expect("address"));
            }
        }
        YubinProcess { child, addrs }
    }

    pub fn addr(&self, what: &str) -> SocketAddr {
        self.addrs[what]
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (it did not exit or crash).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then wait for a clean exit (graceful shutdown is part of the contract).
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.terminate()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait().expect("wait")
    }

    /// Kills without a chance to clean up (crash).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for YubinProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// `yubin dev` on a data dir, every listener on a free port.
pub fn start_dev(data_dir: &Path) -> YubinProcess {
    YubinProcess::start(
        &[
            "dev",
            "--data-dir",
            data_dir.to_str().expect("utf-8 path"),
            "--imap-listen",
            "127.0.0.1:0",
            "--imaps-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--lmtp-listen",
            "127.0.0.1:0",
        ],
        &[],
        &["imap", "imaps", "http", "lmtp"],
    )
}

/// Runs `yubin user …` against an admin URL and returns its stdout.
pub fn yubin_user(admin: SocketAddr, args: &[&str]) -> String {
    let out = Command::new(yubin_bin())
        .arg("user")
        .arg("--admin")
        .arg(format!("http://{admin}"))
        .args(args)
        .env_remove("YUBIN_ADMIN_TOKEN")
        .output()
        .expect("run yubin user");
    assert!(
        out.status.success(),
        "yubin user {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A real-looking message: multipart/mixed with a text part, an HTML alternative and a binary
/// attachment, headers in UTF-8 and ISO-2022-JP encoded words, CRLF line ends.
pub fn sample_message(n: usize) -> Vec<u8> {
    let attachment: Vec<u8> = (0..(600 + n * 37)).map(|i| (i * 7 + n) as u8).collect();
    let b64 = base64_lines(&attachment);
    format!(
        "From: =?UTF-8?B?w4lsb2RpZQ==?= <elodie@example.org>\r\n\
To: demo@example.com\r\n\
Subject: =?ISO-2022-JP?B?GyRCRnxLXDhsGyhC?= report {n}\r\n\
Date: Tue, 3 Nov 2026 10:{m:02}:00 +0900\r\n\
Message-ID: <msg{n}@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b{n}\"\r\n\
\r\n\
--b{n}\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Héllo number {n}, naïve café — 郵便.\r\n\
--b{n}\r\n\
Content-Type: application/octet-stream; name=\"data{n}.bin\"\r\n\
Content-Disposition: attachment; filename=\"data{n}.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
{b64}--b{n}--\r\n",
        m = n % 60
    )
    .into_bytes()
}

fn base64_lines(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    let mut line = 0;
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
        line += 4;
        if line >= 76 {
            out.push_str("\r\n");
            line = 0;
        }
    }
    if line > 0 {
        out.push_str("\r\n");
    }
    out
}
