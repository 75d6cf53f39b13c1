//! The distributed stack for end-to-end tests: a real redis-server (AOF on), a real S3 protocol
//! server (s3s-fs), `yubin meta` and two `yubin imap` front-ends on one meta.

use super::{YubinProcess, start_meta, yubin_user};
use std::net::SocketAddr;
use yubin_blob::test_server::{TestS3Server, spawn_s3s_fs};
use yubin_meta_store::testing::RedisServer;

const BUCKET: &str = "yubin-test";

pub struct Stack {
    redis: RedisServer,
    s3: TestS3Server,
    _s3_dir: tempfile::TempDir,
    meta: Option<YubinProcess>,
    grpc: SocketAddr,
    admin: SocketAddr,
    nodes: Vec<YubinProcess>,
}

impl Stack {
    pub async fn start() -> Stack {
        let redis = RedisServer::spawn_with_aof().expect("redis-server");
        let s3_dir = tempfile::tempdir().expect("tempdir");
        // s3s-fs keeps each bucket as a directory under its root.
        std::fs::create_dir_all(s3_dir.path().join(BUCKET)).expect("bucket dir");
        let s3 = spawn_s3s_fs(s3_dir.path()).await.expect("s3s-fs");
        let meta = spawn_meta(&redis.url(), "127.0.0.1:0", &s3);
        let grpc = meta.addr("grpc");
        let admin = meta.addr("http");
        let nodes = (0..2).map(|_| start_node(grpc, &s3)).collect();
        Stack {
            redis,
            s3,
            _s3_dir: s3_dir,
            meta: Some(meta),
            grpc,
            admin,
            nodes,
        }
    }

    pub fn imap(&self, node: usize) -> SocketAddr {
        self.nodes[node].addr("imap")
    }

    /// The port of the stack's redis-server, for tests that watch Redis itself.
    pub fn redis_port(&self) -> u16 {
        self.redis.port()
    }

    /// Gives redis-server the machine's last CPU and moves meta, the front-ends and this test
    /// process (s3s-fs and the clients run in it) to the others, the way production runs Redis
    /// on cores of its own: then Redis latency measures what Redis does, not which process a
    /// small machine's scheduler ran. Returns Redis's CPU; best effort: None with fewer than
    /// two CPUs or when `taskset` failed.
    pub fn pin_redis_to_own_cpu(&self) -> Option<usize> {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        if cpus < 2 {
            return None;
        }
        let pin = |cpus: String, pid: u32| {
            std::process::Command::new("taskset")
                .args(["-a", "-p", "-c", &cpus, &pid.to_string()])
                .stdout(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let others = format!("0-{}", cpus - 2);
        let mut pinned = pin((cpus - 1).to_string(), self.redis.pid());
        for pid in self
            .nodes
            .iter()
            .chain(self.meta.as_ref())
            .map(YubinProcess::pid)
            .chain([std::process::id()])
        {
            pinned &= pin(others.clone(), pid);
        }
        pinned.then_some(cpus - 1)
    }

    /// Whether meta and both front-ends are still the processes the stack started (none
    /// exited or crashed).
    pub fn all_running(&mut self) -> bool {
        self.meta.as_mut().is_some_and(YubinProcess::is_running)
            && self.nodes.iter_mut().all(YubinProcess::is_running)
    }

    /// Meta's gRPC address.
    pub fn grpc(&self) -> SocketAddr {
        self.grpc
    }

    pub fn add_user(&self, name: &str, password: &str) {
        yubin_user(self.admin, &["add", name, "--password", password]);
    }

    /// Runs `yubin user <args>` against meta's admin API; returns its stdout.
    pub fn user(&self, args: &[&str]) -> String {
        yubin_user(self.admin, args)
    }

    /// Stops meta (SIGTERM) and starts it again on the same ports.
    pub fn restart_meta(&mut self) {
        let old = self.meta.take().expect("meta running");
        assert!(old.stop().success(), "meta exits cleanly on SIGTERM");
        self.start_meta_again();
    }

    /// Kills meta without warning (SIGKILL), as a crash would.
    pub fn crash_meta(&mut self) {
        self.meta.take().expect("meta running").kill();
    }

    pub fn start_meta_again(&mut self) {
        let meta = spawn_meta(&self.redis.url(), &self.grpc.to_string(), &self.s3);
        self.admin = meta.addr("http");
        self.meta = Some(meta);
    }
}

/// Meta with the bucket too: deleting an account removes its message bodies.
fn spawn_meta(redis_url: &str, grpc_listen: &str, s3: &TestS3Server) -> YubinProcess {
    start_meta(
        redis_url,
        grpc_listen,
        &["--s3-bucket", BUCKET],
        &s3_env(s3),
    )
}

fn s3_env(s3: &TestS3Server) -> [(&str, &str); 4] {
    [
        ("AWS_ENDPOINT_URL_S3", &s3.endpoint),
        ("AWS_ACCESS_KEY_ID", &s3.access_key),
        ("AWS_SECRET_ACCESS_KEY", &s3.secret_key),
        ("AWS_REGION", "us-east-1"),
    ]
}

fn start_node(grpc: SocketAddr, s3: &TestS3Server) -> YubinProcess {
    let meta_url = format!("http://{grpc}");
    YubinProcess::start(
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
        &s3_env(s3),
        &["imap", "http"],
    )
}
