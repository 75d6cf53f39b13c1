//! One LMTP connection: bytes through the [`Receiver`], events through the session state
//! machine, replies out.
//!
//! Replies are collected while the receiver still has complete commands buffered and written
//! when it needs more bytes, which is what PIPELINING (RFC 2920) asks of a server: every reply,
//! in order, and nothing lost from a batch of commands sent at once.

use crate::address::Address;
use crate::body::{BodyBuffer, BodyFailure};
use crate::deliver::{self, Recipient};
use crate::proto::{Command, Event, Limits, Receiver};
use crate::reply::Reply;
use crate::server::LmtpServer;
use crate::telemetry::{self, ConnectionGauge, Outcome};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use yubin_meta_api::{MetaError, UserId};

/// Bytes read per system call: connections come from a handful of MTA processes, and messages
/// are large, so a generous buffer.
const READ_CHUNK: usize = 64 * 1024;

pub(crate) async fn handle(
    server: Arc<LmtpServer>,
    tcp: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let span = tracing::info_span!("lmtp", %peer);
    async move {
        let _gauge = ConnectionGauge::new();
        tracing::debug!("connection accepted");
        match run(server, tcp, &shutdown).await {
            Ok(()) => tracing::debug!("connection closed"),
            Err(e) => tracing::debug!(error = %e, "connection ended with an I/O error"),
        }
    }
    .instrument(span)
    .await
}

/// What the receiver is doing with message octets.
enum Receiving {
    Nothing,
    /// `DATA` text of the current transaction.
    Data,
    /// A `BDAT` chunk: kept unless the command was refused, in which case its octets are read
    /// and dropped (RFC 3030 §2) and `refusal` is the reply once the chunk has been read.
    Chunk {
        refusal: Option<Reply>,
    },
}

/// One mail transaction: `MAIL` through the end of the message (or `RSET`).
struct Transaction {
    sender: String,
    recipients: Vec<Recipient>,
    /// The message so far, once `DATA` or the first `BDAT` started it.
    body: Option<BodyBuffer>,
}

struct Session {
    server: Arc<LmtpServer>,
    /// `LHLO` was received.
    greeted: bool,
    transaction: Option<Transaction>,
    receiving: Receiving,
}

/// What the loop does after an event.
enum Flow {
    Continue,
    Close,
}

async fn run<S>(
    server: Arc<LmtpServer>,
    mut stream: S,
    shutdown: &CancellationToken,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut out = Vec::new();
    out.extend_from_slice(
        format!("220 {} LMTP Yubin ready\r\n", server.config.hostname).as_bytes(),
    );
    let mut rx = Receiver::new(Limits {
        max_line: server.config.max_line_bytes,
    });
    let mut session = Session {
        server: server.clone(),
        greeted: false,
        transaction: None,
        receiving: Receiving::Nothing,
    };
    let mut rbuf = vec![0u8; READ_CHUNK];
    loop {
        while let Some(event) = rx.next() {
            if let Flow::Close = session.on_event(event, &mut rx, &mut out).await {
                stream.write_all(&out).await?;
                stream.flush().await?;
                return Ok(());
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            stream.flush().await?;
            out.clear();
        }
        // Shutdown is honoured only between reads: a delivery in progress always completes and
        // gets its replies, so the MTA knows exactly which recipients have their copy.
        let n = tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                Reply::shutting_down().write_to(&mut out);
                stream.write_all(&out).await?;
                stream.flush().await?;
                return Ok(());
            }
            read = tokio::time::timeout(server.config.idle_timeout, stream.read(&mut rbuf)) => match read {
                Ok(r) => r?,
                Err(_) => {
                    Reply::new(421, "4.4.2", "Timeout waiting for input, closing connection").write_to(&mut out);
                    stream.write_all(&out).await?;
                    stream.flush().await?;
                    return Ok(());
                }
            },
        };
        if n == 0 {
            return Ok(());
        }
        rx.feed(&rbuf[..n]);
    }
}

impl Session {
    async fn on_event(&mut self, event: Event, rx: &mut Receiver, out: &mut Vec<u8>) -> Flow {
        match event {
            Event::Command(command) => return self.on_command(command, rx, out).await,
            Event::Invalid(e) => Reply::from(&e).write_to(out),
            Event::Body(bytes) => {
                let keep = match &self.receiving {
                    Receiving::Data => true,
                    Receiving::Chunk { refusal, .. } => refusal.is_none(),
                    Receiving::Nothing => false,
                };
                if keep && let Some(body) = self.transaction.as_mut().and_then(|t| t.body.as_mut())
                {
                    body.push(&bytes).await;
                }
            }
            Event::DataEnd => {
                self.receiving = Receiving::Nothing;
                self.finish_message(out).await;
            }
            Event::ChunkEnd { last } => {
                let receiving = std::mem::replace(&mut self.receiving, Receiving::Nothing);
                self.on_chunk_end(receiving, last, out).await;
            }
        }
        Flow::Continue
    }

    async fn on_command(&mut self, command: Command, rx: &mut Receiver, out: &mut Vec<u8>) -> Flow {
        let config = &self.server.config;
        match command {
            Command::Lhlo { domain } => {
                tracing::debug!(%domain, "lhlo");
                // Like EHLO, LHLO resets any transaction (RFC 5321 §4.1.4).
                self.greeted = true;
                self.transaction = None;
                let lines = [
                    config.hostname.clone(),
                    "PIPELINING".to_string(),
                    "ENHANCEDSTATUSCODES".to_string(),
                    "8BITMIME".to_string(),
                    format!("SIZE {}", config.max_message_bytes),
                    "CHUNKING".to_string(),
                ];
                for (i, line) in lines.iter().enumerate() {
                    let sep = if i + 1 == lines.len() { ' ' } else { '-' };
                    out.extend_from_slice(format!("250{sep}{line}\r\n").as_bytes());
                }
            }
            Command::Mail {
                reverse_path,
                size,
                body: _,
            } => {
                let reply = if !self.greeted {
                    Reply::bad_sequence("Send LHLO first")
                } else if self.transaction.is_some() {
                    Reply::bad_sequence("Nested MAIL command")
                } else if size.is_some_and(|s| s > config.max_message_bytes) {
                    // RFC 1870 §6.1: refuse a declared size over the limit at MAIL.
                    Reply::too_big()
                } else {
                    self.transaction = Some(Transaction {
                        sender: reverse_path,
                        recipients: Vec::new(),
                        body: None,
                    });
                    Reply::new(250, "2.1.0", "Sender OK")
                };
                reply.write_to(out);
            }
            Command::Rcpt { forward_path } => {
                let reply = self.on_rcpt(forward_path).await;
                reply.write_to(out);
            }
            Command::Data => {
                let fresh = self.new_body();
                let reply = match &mut self.transaction {
                    None => Reply::bad_sequence("Send MAIL first"),
                    // RFC 2033 §4.2: DATA without a successful RCPT gets 503.
                    Some(t) if t.recipients.is_empty() => {
                        Reply::bad_sequence("No valid recipients")
                    }
                    Some(t) if t.body.is_some() => {
                        Reply::bad_sequence("DATA cannot follow BDAT in one transaction")
                    }
                    Some(t) => {
                        t.body = Some(fresh);
                        self.receiving = Receiving::Data;
                        rx.start_data();
                        // 354 is an intermediate reply: no enhanced status code (RFC 2034 §3).
                        out.extend_from_slice(b"354 Start mail input; end with <CRLF>.<CRLF>\r\n");
                        return Flow::Continue;
                    }
                };
                reply.write_to(out);
            }
            Command::Bdat { .. } => {
                // The chunk follows whatever the verdict; its reply comes once it is read.
                let refusal = match &self.transaction {
                    None => Some(Reply::bad_sequence("Send MAIL first")),
                    Some(t) if t.recipients.is_empty() => {
                        Some(Reply::bad_sequence("No valid recipients"))
                    }
                    Some(_) => None,
                };
                if refusal.is_none() {
                    let fresh = self.new_body();
                    if let Some(t) = self.transaction.as_mut() {
                        t.body.get_or_insert(fresh);
                    }
                }
                self.receiving = Receiving::Chunk { refusal };
            }
            Command::Rset => {
                self.transaction = None;
                Reply::new(250, "2.0.0", "OK").write_to(out);
            }
            Command::Noop => Reply::new(250, "2.0.0", "OK").write_to(out),
            Command::Quit => {
                Reply::new(221, "2.0.0", "Bye").write_to(out);
                return Flow::Close;
            }
            // RFC 5321 §3.5.3: 252 when the server will not verify but accepts for delivery.
            Command::Vrfy => {
                Reply::new(252, "2.5.0", "Cannot verify, send the message").write_to(out)
            }
            Command::Help => Reply::new(
                214,
                "2.0.0",
                "Commands: LHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP",
            )
            .write_to(out),
            Command::SmtpGreeting => {
                Reply::new(500, "5.5.1", "This is an LMTP server: use LHLO").write_to(out);
            }
            Command::StartTls => {
                Reply::new(
                    502,
                    "5.5.1",
                    "STARTTLS not offered; LMTP runs on a trusted network",
                )
                .write_to(out);
            }
        }
        Flow::Continue
    }

    fn new_body(&self) -> BodyBuffer {
        BodyBuffer::new(
            self.server.config.max_message_bytes,
            self.server.config.max_buffered_message_bytes,
            &self.server.spool_dir(),
        )
    }

    async fn on_rcpt(&mut self, forward_path: String) -> Reply {
        let Some(transaction) = &self.transaction else {
            return Reply::bad_sequence("Send MAIL first");
        };
        if transaction.body.is_some() {
            return Reply::bad_sequence("RCPT cannot follow BDAT");
        }
        if transaction.recipients.len() >= self.server.config.max_recipients {
            return Reply::new(452, "4.5.3", "Too many recipients");
        }
        let Some(address) = Address::parse(&forward_path) else {
            // The receiver checked the syntax already; this is the same check.
            return Reply::new(501, "5.1.3", "Bad recipient address syntax");
        };
        match self.resolve(&address).await {
            Ok(Some(user)) => {
                let recipient = Recipient {
                    address: forward_path,
                    user,
                    detail: address.detail().map(str::to_string),
                };
                if let Some(t) = &mut self.transaction {
                    t.recipients.push(recipient);
                }
                Reply::new(250, "2.1.5", "Recipient OK")
            }
            Ok(None) => {
                telemetry::delivery(Outcome::UnknownUser);
                tracing::info!(rcpt = %forward_path, "unknown recipient");
                Reply::unknown_user()
            }
            Err(e) => {
                telemetry::delivery(Outcome::TempFailure);
                tracing::warn!(rcpt = %forward_path, error = %e, "recipient lookup failed");
                Reply::temporary_failure("Account lookup temporarily unavailable")
            }
        }
    }

    /// The account of an address, by [`Address::lookup_name`]; a disabled account is no
    /// account.
    async fn resolve(&self, address: &Address) -> Result<Option<UserId>, MetaError> {
        self.server.auth.lookup(&address.lookup_name()).await
    }

    /// After `DATA`'s final `.` or an accepted `BDAT LAST`: one reply per recipient.
    async fn finish_message(&mut self, out: &mut Vec<u8>) {
        let Some(mut transaction) = self.transaction.take() else {
            return;
        };
        let Some(body) = transaction.body.take() else {
            return;
        };
        let replies = match body.finish().await {
            Ok(body) => {
                deliver::deliver(
                    &self.server,
                    &transaction.sender,
                    &transaction.recipients,
                    body,
                )
                .await
            }
            Err(failure) => {
                let (reply, outcome) = failure_reply(&failure);
                transaction
                    .recipients
                    .iter()
                    .map(|_| {
                        telemetry::delivery(outcome);
                        reply.clone()
                    })
                    .collect()
            }
        };
        for reply in replies {
            reply.write_to(out);
        }
    }

    async fn on_chunk_end(&mut self, receiving: Receiving, last: bool, out: &mut Vec<u8>) {
        let Receiving::Chunk { refusal, .. } = receiving else {
            return;
        };
        if let Some(reply) = refusal {
            reply.write_to(out);
            return;
        }
        if last {
            // Every recipient gets its reply, also when the message failed in an earlier
            // chunk: a pipelining client counts one reply per recipient after BDAT LAST.
            self.finish_message(out).await;
            return;
        }
        let failure = self
            .transaction
            .as_ref()
            .and_then(|t| t.body.as_ref())
            .and_then(|b| b.failure().map(failure_reply));
        match failure {
            Some((reply, _)) => reply.write_to(out),
            None => {
                let size = self
                    .transaction
                    .as_ref()
                    .and_then(|t| t.body.as_ref())
                    .map_or(0, BodyBuffer::size);
                Reply::new(250, "2.0.0", format!("{size} octets received")).write_to(out);
            }
        }
    }
}

fn failure_reply(failure: &BodyFailure) -> (Reply, Outcome) {
    match failure {
        BodyFailure::TooBig => (Reply::too_big(), Outcome::Rejected),
        BodyFailure::Spool => (
            Reply::temporary_failure("Local error storing the message"),
            Outcome::TempFailure,
        ),
    }
}
