//! Test harness: a real `redis-server` (from `PATH`) on a free port, killed on drop.
//!
//! ```no_run
//! # async fn demo() {
//! use yubin_meta_store::{RedisStore, testing::RedisServer};
//! let server = RedisServer::spawn().expect("redis-server");
//! let store = RedisStore::connect(&server.url()).await.expect("connect");
//! # }
//! ```

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
