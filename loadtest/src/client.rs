//! A deliberately small IMAP client: it speaks the wire format directly, so tests see exactly
//! what the server sends and the load generator measures the server, not a client library.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One response line; literals are collected separately, the text keeps the `{n}` markers.
#[derive(Debug, Clone)]
pub struct Line {
    pub text: String,
    pub literals: Vec<Vec<u8>>,
}

impl Line {
    pub fn has(&self, needle: &str) -> bool {
        self.text.contains(needle)
    }
}

#[derive(Debug)]
pub struct Response {
    pub untagged: Vec<Line>,
    /// The tagged status line without the tag, e.g. `OK [APPENDUID 1 1] done`.
    pub status: String,
}

impl Response {
    pub fn is_ok(&self) -> bool {
        self.status.starts_with("OK")
    }
    pub fn find(&self, needle: &str) -> Option<&Line> {
        self.untagged.iter().find(|l| l.has(needle))
    }
    pub fn count(&self, needle: &str) -> usize {
        self.untagged.iter().filter(|l| l.has(needle)).count()
    }
}

pub struct Imap {
    io: BufReader<TcpStream>,
    /// The part of a line read so far: kept here so that a read given up by a timeout (IDLE,
    /// `wait_for`) loses no bytes and the next read goes on where it stopped.
    partial: Vec<u8>,
    next_tag: u32,
    pub greeting: String,
}

const TIMEOUT: Duration = Duration::from_secs(20);

impl Imap {
    pub async fn connect(addr: SocketAddr) -> Imap {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let mut imap = Imap {
            io: BufReader::new(stream),
            partial: Vec::new(),
            next_tag: 1,
            greeting: String::new(),
        };
        imap.greeting = imap.read_line().await.expect("greeting").text;
        assert!(imap.greeting.starts_with("* OK"), "{}", imap.greeting);
        imap
    }

    pub async fn login(addr: SocketAddr, user: &str, password: &str) -> Imap {
        let mut imap = Imap::connect(addr).await;
        imap.ok(&format!("LOGIN {user} {password}")).await;
        imap
    }

    fn tag(&mut self) -> String {
        let t = format!("T{}", self.next_tag);
        self.next_tag += 1;
        t
    }

    /// Reads one response line (with any literals), or None on timeout/EOF.
    pub async fn read_line_within(&mut self, wait: Duration) -> Option<Line> {
        tokio::time::timeout(wait, self.read_line()).await.ok()?
    }

    async fn read_line(&mut self) -> Option<Line> {
        let mut text = String::new();
        let mut literals = Vec::new();
        loop {
            // `read_until` is cancel-safe: what it read stays in `partial`.
            let n = self.io.read_until(b'\n', &mut self.partial).await.ok()?;
            if n == 0 || !self.partial.ends_with(b"\n") {
                return None;
            }
            let raw = std::mem::take(&mut self.partial);
            let chunk = String::from_utf8_lossy(&raw).into_owned();
            let chunk = chunk.trim_end_matches(['\r', '\n']).to_string();
            text.push_str(&chunk);
            // A line ending in {n} announces a literal of n bytes, after which the line goes on.
            let size = chunk
                .strip_suffix('}')
                .and_then(|s| s.rfind('{').map(|i| &s[i + 1..]))
                .and_then(|s| s.trim_end_matches('+').parse::<usize>().ok());
            match size {
                Some(size) => {
                    let mut lit = vec![0u8; size];
                    self.io.read_exact(&mut lit).await.ok()?;
                    literals.push(lit);
                }
                None => return Some(Line { text, literals }),
            }
        }
    }

    /// A response line the server sent while no command was in progress, or None when nothing
    /// is waiting. Untagged data may come at any time (RFC 3501 §7), but an EXPUNGE must not
    /// (§7.4.1); a test calls this between commands to see such lines before it sends the next.
    pub async fn unsolicited(&mut self) -> Option<Line> {
        if self.io.buffer().is_empty() {
            // `peek` does not consume, so giving up on it at once loses nothing.
            let mut probe = [0u8; 1];
            match tokio::time::timeout(Duration::ZERO, self.io.get_ref().peek(&mut probe)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
        self.read_line_within(TIMEOUT).await
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.expect("write");
    }

    /// Sends a command and collects everything up to its tagged response.
    pub async fn run(&mut self, command: &str) -> Response {
        let tag = self.tag();
        self.send_raw(format!("{tag} {command}\r\n").as_bytes())
            .await;
        self.finish(&tag).await
    }

    async fn finish(&mut self, tag: &str) -> Response {
        let mut untagged = Vec::new();
        loop {
            let line = tokio::time::timeout(TIMEOUT, self.read_line())
                .await
                .unwrap_or_else(|_| panic!("timeout waiting for {tag}; so far {untagged:?}"))
                .unwrap_or_else(|| panic!("connection closed waiting for {tag}"));
            if let Some(rest) = line.text.strip_prefix(&format!("{tag} ")) {
                return Response {
                    untagged,
                    status: rest.to_string(),
                };
            }
            untagged.push(line);
        }
    }

    /// Runs a command that must succeed.
    pub async fn ok(&mut self, command: &str) -> Response {
        let r = self.run(command).await;
        assert!(r.is_ok(), "{command} -> {} ({:?})", r.status, r.untagged);
        r
    }

    /// APPEND with a synchronizing literal (waits for the continuation request).
    pub async fn append(&mut self, mailbox: &str, flags: &str, message: &[u8]) -> Response {
        let tag = self.tag();
        let flags = if flags.is_empty() {
            String::new()
        } else {
            format!("({flags}) ")
        };
        self.send_raw(
            format!("{tag} APPEND {mailbox} {flags}{{{}}}\r\n", message.len()).as_bytes(),
        )
        .await;
        let cont = self.read_line().await.expect("continuation");
        assert!(cont.text.starts_with('+'), "expected +, got {}", cont.text);
        self.send_raw(message).await;
        self.send_raw(b"\r\n").await;
        self.finish(&tag).await
    }

    /// Starts IDLE and waits for the continuation request.
    pub async fn idle(&mut self) -> String {
        let tag = self.tag();
        self.send_raw(format!("{tag} IDLE\r\n").as_bytes()).await;
        let cont = self.read_line().await.expect("idle continuation");
        assert!(cont.text.starts_with('+'), "expected +, got {}", cont.text);
        tag
    }

    /// Reads untagged lines until one contains `needle`; None on timeout.
    pub async fn wait_for(&mut self, needle: &str, wait: Duration) -> Option<Line> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let line = self.read_line_within(left).await?;
            if line.has(needle) {
                return Some(line);
            }
        }
    }

    /// Ends IDLE.
    pub async fn done(&mut self, tag: &str) -> Response {
        self.send_raw(b"DONE\r\n").await;
        self.finish(tag).await
    }
}
