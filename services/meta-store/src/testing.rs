//! Test harness: a real `redis-server` (from `PATH`) on a free port, killed on drop.
//!
//! ```no_run
//! # async fn demo() {
//! use yubin_meta_store::{RedisStore, testing::RedisServer};
//! let server = RedisServer::spawn().expect("redis-server");
//! let store = RedisStore::connect(&server.url()).await.expect("connect");
//! # }
//! ```
//!
//! [`RedisCluster`] starts three such servers as a Redis Cluster (all slots assigned, no
//! replicas):
//!
//! ```no_run
//! # async fn demo() {
//! use yubin_meta_store::{RedisStore, testing::RedisCluster};
//! let cluster = RedisCluster::spawn().expect("redis cluster");
//! let store = RedisStore::connect_cluster(&cluster.urls()).await.expect("connect");
//! # }
//! ```
//!
//! [`RedisReplicated`] starts a primary with one replica, for failover tests: detach the
//! replica so that it misses writes, kill the primary, and point the store at the replica
//! through a [`TcpProxy`] (the way a DNS name or a managed endpoint follows a failover).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a server is started.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// Port to listen on; a free one when `None`.
    pub port: Option<u16>,
    /// Turns on AOF with `appendfsync always` in this directory, so data survives a restart
    /// (even a kill); without it the server keeps nothing (`--save "" --appendonly no`).
    pub aof_dir: Option<PathBuf>,
}

/// A running `redis-server`, killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
    options: RedisOptions,
    /// Working directory the server owns (removed on drop), unless the caller gave one.
    scratch: Option<tempfile::TempDir>,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

fn answers_ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

impl RedisServer {
    /// A throw-away server: no persistence, free port.
    pub fn spawn() -> std::io::Result<RedisServer> {
        RedisServer::spawn_with(RedisOptions::default())
    }

    /// A server with AOF (`appendfsync always`) in a directory of its own (removed on drop);
    /// data survives [`Self::restart`].
    pub fn spawn_with_aof() -> std::io::Result<RedisServer> {
        let dir = tempfile::tempdir()?;
        let mut server = RedisServer::spawn_with(RedisOptions {
            port: None,
            aof_dir: Some(dir.path().to_path_buf()),
        })?;
        server.scratch = Some(dir);
        Ok(server)
    }

    /// A server with AOF (`appendfsync always`) in `dir`: restart it with [`Self::restart`].
    pub fn spawn_persistent(dir: &Path) -> std::io::Result<RedisServer> {
        RedisServer::spawn_with(RedisOptions {
            port: None,
            aof_dir: Some(dir.to_path_buf()),
        })
    }

    pub fn spawn_with(options: RedisOptions) -> std::io::Result<RedisServer> {
        RedisServer::spawn_args(options, &[])
    }

    /// Starts a server with `extra` arguments appended to the usual ones.
    fn spawn_args(options: RedisOptions, extra: &[String]) -> std::io::Result<RedisServer> {
        let port = match options.port {
            Some(p) => p,
            None => free_port()?,
        };
        let scratch = match options.aof_dir {
            Some(_) => None,
            None => Some(tempfile::tempdir()?),
        };
        let dir = match (&options.aof_dir, &scratch) {
            (Some(d), _) => d.clone(),
            (None, Some(t)) => t.path().to_path_buf(),
            (None, None) => std::env::temp_dir(),
        };
        std::fs::create_dir_all(&dir)?;
        let mut cmd = Command::new("redis-server");
        cmd.arg("--port")
            .arg(port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--save")
            .arg("")
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if options.aof_dir.is_some() {
            cmd.arg("--appendonly")
                .arg("yes")
                .arg("--appendfsync")
                .arg("always");
        } else {
            cmd.arg("--appendonly").arg("no");
        }
        cmd.args(extra);
        let mut child = cmd.spawn().map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("starting redis-server (is it installed and on PATH?): {e}"),
            )
        })?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !answers_ping(port) {
            if let Some(status) = child.try_wait()? {
                return Err(std::io::Error::other(format!(
                    "redis-server exited with {status} (port {port} taken?)"
                )));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(std::io::Error::other("redis-server did not answer PING"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(RedisServer {
            child,
            port,
            options: RedisOptions {
                port: Some(port),
                aof_dir: options.aof_dir,
            },
            scratch,
        })
    }

    /// The server's process id (tests pin it to a CPU of its own, as production gives Redis).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL, like a crash) and starts it again on the same port and
    /// directory.
    pub fn restart(mut self) -> std::io::Result<RedisServer> {
        let options = self.options.clone();
        // The directory (and with it the AOF) outlives the old process.
        let scratch = self.scratch.take();
        drop(self);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match RedisServer::spawn_with(options.clone()) {
                Ok(mut s) => {
                    if options.aof_dir.is_some() {
                        s.scratch = scratch;
                    }
                    return Ok(s);
                }
                // The port may linger for a moment after the kill.
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Number of hash slots of a Redis Cluster.
const SLOTS: u16 = 16384;

/// A 3-node Redis Cluster (primaries only, slots split evenly), every node killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// Cluster bus port of each node, in the order of `nodes`.
    bus_ports: Vec<u16>,
}

/// Sends one command in RESP (inline commands cannot carry empty or spaced arguments) and
/// reads one reply; enough for the few setup commands the harness needs.
fn command(port: u16, args: &[&str]) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(
        &(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(500),
    )?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes())?;
    // Replies of interest are small (+OK, -ERR, an integer, the bulk string of CLUSTER INFO); read
    // until the reply is complete or the server stops sending.
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if reply_complete(&out) {
            break;
        }
    }
    String::from_utf8(out).map_err(|e| std::io::Error::other(format!("reply not UTF-8: {e}")))
}

fn reply_complete(r: &[u8]) -> bool {
    match r.first() {
        Some(b'+' | b'-' | b':') => r.ends_with(b"\r\n"),
        Some(b'$') => {
            let Some(eol) = r.windows(2).position(|w| w == b"\r\n") else {
                return false;
            };
            let len: i64 = std::str::from_utf8(&r[1..eol])
                .ok()
                .and_then(|l| l.parse().ok())
                .unwrap_or(-1);
            len < 0 || r.len() >= eol + 2 + len as usize + 2
        }
        _ => false,
    }
}

fn expect_ok(port: u16, args: &[&str]) -> std::io::Result<()> {
    let reply = command(port, args)?;
    if reply.starts_with("+OK") {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "{args:?} on port {port}: {}",
            reply.trim_end()
        )))
    }
}

impl RedisCluster {
    /// Three primaries on free ports, each in its own temporary directory, without
    /// persistence; returns once every node reports `cluster_state:ok`.
    pub fn spawn() -> std::io::Result<RedisCluster> {
        let mut nodes = Vec::new();
        let mut bus_ports = Vec::new();
        for _ in 0..3 {
            // The cluster bus needs a port of its own; by default it is port + 10000, which
            // may be taken or out of range, so it is chosen explicitly (`cluster-port`, Redis 7).
            let bus = free_port()?;
            let extra = [
                "--cluster-enabled".to_string(),
                "yes".into(),
                "--cluster-config-file".into(),
                "nodes.conf".into(),
                "--cluster-port".into(),
                bus.to_string(),
                "--cluster-node-timeout".into(),
                "2000".into(),
            ];
            nodes.push(RedisServer::spawn_args(RedisOptions::default(), &extra)?);
            bus_ports.push(bus);
        }
        let cluster = RedisCluster { nodes, bus_ports };
        cluster.form()?;
        Ok(cluster)
    }

    /// Assigns a third of the slots to each node, introduces the nodes to each other and
    /// waits until the cluster is healthy everywhere.
    fn form(&self) -> std::io::Result<()> {
        let n = self.nodes.len() as u16;
        let per = SLOTS.div_ceil(n);
        for (i, node) in self.nodes.iter().enumerate() {
            let first = i as u16 * per;
            let last = ((i as u16 + 1) * per).min(SLOTS) - 1;
            expect_ok(
                node.port(),
                &[
                    "CLUSTER",
                    "ADDSLOTSRANGE",
                    &first.to_string(),
                    &last.to_string(),
                ],
            )?;
        }
        // Introducing the others to the first node is enough: gossip spreads the rest. The
        // wait below is dominated by Redis itself, which keeps a fresh primary from declaring
        // the cluster OK for its first two seconds (CLUSTER_WRITABLE_DELAY in cluster.c).
        let first = self.nodes[0].port();
        for (node, bus) in self.nodes.iter().zip(&self.bus_ports).skip(1) {
            // CLUSTER MEET <ip> <port> <bus-port>; the bus port argument is needed because it
            // is not port + 10000 here.
            expect_ok(
                first,
                &[
                    "CLUSTER",
                    "MEET",
                    "127.0.0.1",
                    &node.port().to_string(),
                    &bus.to_string(),
                ],
            )?;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let healthy = self.nodes.iter().all(|node| {
                command(node.port(), &["CLUSTER", "INFO"]).is_ok_and(|info| {
                    info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")
                })
            });
            if healthy {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(
                    "redis cluster did not reach cluster_state:ok",
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Seed URLs of every node (`redis://127.0.0.1:<port>/`).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Ports of the nodes, in the order of [`Self::urls`].
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// The port of the node that owns `key`'s slot.
    pub fn owner_of(&self, key: &str) -> std::io::Result<u16> {
        let slot = command(self.nodes[0].port(), &["CLUSTER", "KEYSLOT", key])?;
        let slot: u16 = slot
            .trim()
            .trim_start_matches(':')
            .parse()
            .map_err(|_| std::io::Error::other(format!("CLUSTER KEYSLOT replied {slot:?}")))?;
        let n = self.nodes.len() as u16;
        let per = SLOTS.div_ceil(n);
        let index = usize::from(slot / per);
        self.nodes
            .get(index)
            .map(RedisServer::port)
            .ok_or_else(|| std::io::Error::other(format!("no node for slot {slot}")))
    }
}

/// A primary and one replica (`--replicaof`), both without persistence, killed on drop.
#[derive(Debug)]
pub struct RedisReplicated {
    pub primary: Option<RedisServer>,
    pub replica: RedisServer,
}

/// One field of an `INFO` reply (`name:value` lines).
fn info_field(port: u16, section: &str, name: &str) -> std::io::Result<Option<String>> {
    let info = command(port, &["INFO", section])?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_string()))
}

impl RedisReplicated {
    /// A primary and a replica that has completed its first sync.
    pub fn spawn() -> std::io::Result<RedisReplicated> {
        // A replica's first sync otherwise waits 5 s for more replicas to share the transfer.
        let primary = RedisServer::spawn_args(
            RedisOptions::default(),
            &["--repl-diskless-sync-delay".to_string(), "0".into()],
        )?;
        let replica = RedisServer::spawn_args(
            RedisOptions::default(),
            &[
                "--replicaof".to_string(),
                "127.0.0.1".into(),
                primary.port().to_string(),
            ],
        )?;
        let pair = RedisReplicated {
            primary: Some(primary),
            replica,
        };
        // Online on the primary's side: it then counts the replica for WAIT.
        pair.wait_until(|p| {
            Ok(info_field(p.primary_port(), "replication", "slave0")?
                .is_some_and(|s| s.contains("state=online")))
        })?;
        Ok(pair)
    }

    fn wait_until(
        &self,
        ready: impl Fn(&RedisReplicated) -> std::io::Result<bool>,
    ) -> std::io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready(self)? {
            if Instant::now() > deadline {
                return Err(std::io::Error::other("replica did not catch up"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Cuts the replica off (`REPLICAOF NO ONE`): from now on it misses every write of the
    /// primary, and it takes writes itself, like a replica promoted by a failover.
    pub fn detach_replica(&self) -> std::io::Result<()> {
        expect_ok(self.replica.port(), &["REPLICAOF", "NO", "ONE"])
    }

    /// Kills the primary (SIGKILL).
    pub fn kill_primary(&mut self) {
        self.primary = None;
    }

    pub fn primary_port(&self) -> u16 {
        self.primary.as_ref().map_or(0, RedisServer::port)
    }
}

/// A TCP forwarder on a free port that connects each client to a target port, which can be
/// switched: existing connections are cut, new ones go to the new target.
#[derive(Debug)]
pub struct TcpProxy {
    port: u16,
    target: Arc<AtomicU16>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl TcpProxy {
    pub fn start(target: u16) -> std::io::Result<TcpProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        let proxy = TcpProxy {
            port,
            target: Arc::new(AtomicU16::new(target)),
            open: Arc::default(),
            stop: Arc::default(),
        };
        let (target, open, stop) = (proxy.target.clone(), proxy.open.clone(), proxy.stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let to = target.load(Ordering::SeqCst);
                let Ok(server) = TcpStream::connect((Ipv4Addr::LOCALHOST, to)) else {
                    continue;
                };
                let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                if let (Ok(c3), Ok(s3)) = (client.try_clone(), server.try_clone())
                    && let Ok(mut open) = open.lock()
                {
                    open.push(c3);
                    open.push(s3);
                }
                std::thread::spawn(move || pump(client, s2));
                std::thread::spawn(move || pump(server, c2));
            }
        });
        Ok(proxy)
    }

    /// `redis://127.0.0.1:<proxy port>/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Sends new connections to `target` and cuts the open ones.
    pub fn switch(&self, target: u16) {
        self.target.store(target, Ordering::SeqCst);
        if let Ok(mut open) = self.open.lock() {
            for s in open.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.switch(0);
        // Wakes the accept loop so that it sees `stop`.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

/// Copies `from` to `to` until either side closes, then closes both.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
