//! The connection loop: bytes in through the incremental receiver, commands through the
//! dispatcher, responses out; STARTTLS, implicit TLS, IDLE, the SASL continuation, timeouts and
//! shutdown.

use crate::cmd;
use crate::deflate::MaybeDeflate;
use crate::out::{Next, Out, Reply};
use crate::selected::SyncMode;
use crate::server::ImapServer;
use crate::session::{Session, SessionState};
use crate::spool::{Spool, Spooler};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use yubin_imap_proto::{Command, LiteralChunk, Received, Receiver};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for one answer of a SASL exchange (within the login deadline).
const SASL_ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// Per-connection read buffer: small, because idle connections are the common case and memory
/// per idle connection is a target; the receiver accumulates larger commands itself.
const READ_CHUNK: usize = 4 * 1024;
/// RFC 5530 UNAVAILABLE: this node is going away; the client reconnects (to another node).
/// Sent when the account was disabled, deleted or given a new password, on any node: the
/// session ends (RFC 9051 §7.1.5: BYE, the server is closing the connection).
const REVOKED_BYE: &[u8] = b"* BYE Account access revoked\r\n";
const SHUTDOWN_BYE: &[u8] = b"* BYE [UNAVAILABLE] Server shutting down, please reconnect\r\n";
/// Read buffer while a streamed APPEND literal arrives: larger than `READ_CHUNK` for throughput,
/// and only allocated for the duration of that literal.
const SPOOL_CHUNK: usize = 64 * 1024;

/// What the connection does after a command.
enum Flow {
    Continue,
    Close,
    StartTls,
}

pub(crate) async fn handle(
    server: Arc<ImapServer>,
    tcp: TcpStream,
    peer: SocketAddr,
    implicit_tls: bool,
    shutdown: CancellationToken,
) {
    let span = tracing::info_span!(
        "imap",
        %peer,
        tls = implicit_tls,
        user = tracing::field::Empty
    );
    async move {
        tracing::debug!("connection accepted");
        // Until the client authenticates it may only send small commands; see
        // `ImapConfig::pre_auth_max_bytes`.
        let mut receiver = Receiver::new(
            server
                .config
                .limits
                .pre_auth(server.config.pre_auth_max_bytes),
        );
        // The login deadline runs from here, through STARTTLS, and never moves.
        let connected = Instant::now();
        let result = if implicit_tls {
            match tls_accept(&server, tcp).await {
                Some(tls) => {
                    let mut session = Session::new(server.clone(), true, Some(peer.ip()));
                    run(tls, &mut session, &mut receiver, true, connected, &shutdown)
                        .await
                        .map(|_| ())
                }
                None => Ok(()),
            }
        } else {
            let mut session = Session::new(server.clone(), false, Some(peer.ip()));
            match run(tcp, &mut session, &mut receiver, true, connected, &shutdown).await {
                Ok(Some(tcp)) => match tls_accept(&server, tcp).await {
                    Some(tls) => {
                        session.tls_active = true;
                        run(
                            tls,
                            &mut session,
                            &mut receiver,
                            false,
                            connected,
                            &shutdown,
                        )
                        .await
                        .map(|_| ())
                    }
                    None => Ok(()),
                },
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            }
        };
        match result {
            Ok(()) => tracing::debug!("connection closed"),
            Err(e) => tracing::debug!(error = %e, "connection ended with an I/O error"),
        }
    }
    .instrument(span)
    .await
}

async fn tls_accept(
    server: &ImapServer,
    tcp: TcpStream,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let acceptor = server.tls.clone()?;
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            None
        }
    }
}

/// Serves one stream until it closes. Returns the stream back when the client asked for
/// STARTTLS (the tagged OK has been written and nothing is buffered).
async fn run<S>(
    stream: S,
    session: &mut Session,
    rx: &mut Receiver,
    greet: bool,
    connected: Instant,
    shutdown: &CancellationToken,
) -> io::Result<Option<S>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    // Plain until COMPRESS (RFC 4978); over TLS the compression sits inside the encryption.
    let mut stream = MaybeDeflate::new(stream);
    if greet {
        let line = format!(
            "* OK [CAPABILITY {}] {} Yubin IMAP ready\r\n",
            session.capabilities(),
            session.server.config.greeting_hostname
        );
        stream.write_all(line.as_bytes()).await?;
        stream.flush().await?;
    }
    let mut rbuf = vec![0u8; READ_CHUNK];
    let login_deadline = connected + session.server.timeouts.login;
    // Moved by complete commands only, never by bytes (RFC 9051 §5.4: the autologout timer
    // measures inactivity, and a client trickling bytes is not issuing commands).
    let mut last_command = Instant::now();
    loop {
        loop {
            match rx.next() {
                Received::NeedMoreData => break,
                Received::NeedContinuation { .. } => {
                    stream.write_all(b"+ Ready for literal data\r\n").await?;
                    stream.flush().await?;
                }
                Received::LiteralStream { size } => {
                    if !spool_literal(&mut stream, session, rx, size).await? {
                        return Ok(None);
                    }
                    // A large upload is progress on a command (and has its own timer).
                    last_command = Instant::now();
                }
                Received::Error { tag, text, fatal } => {
                    // Whatever the refused command had spooled is of no use any more.
                    session.spooled.clear();
                    if fatal && matches!(session.state, SessionState::NotAuthenticated) {
                        crate::telemetry::pre_auth_closed("pre_auth_limit");
                    }
                    let line = format!("{} BAD {text}\r\n", tag.as_deref().unwrap_or("*"));
                    stream.write_all(line.as_bytes()).await?;
                    if fatal {
                        stream
                            .write_all(b"* BYE Cannot recover from the protocol error\r\n")
                            .await?;
                        stream.flush().await?;
                        return Ok(None);
                    }
                    stream.flush().await?;
                }
                Received::Command(command) => {
                    let span = crate::telemetry::command_span(command.body.name());
                    let flow = execute(&mut stream, session, rx, command, login_deadline, shutdown)
                        .instrument(span)
                        .await;
                    if !matches!(session.state, SessionState::NotAuthenticated) {
                        // Authenticated: the configured limits apply from the next command.
                        rx.set_limits(session.server.config.limits);
                    }
                    // APPEND took its spool files; anything else never used them.
                    session.spooled.clear();
                    match flow? {
                        Flow::Continue => {}
                        Flow::Close => {
                            let _ = stream.shutdown().await;
                            return Ok(None);
                        }
                        // STARTTLS is refused once compression is on, so nothing is lost.
                        Flow::StartTls => return Ok(Some(stream.into_inner())),
                    }
                    last_command = Instant::now();
                }
            }
        }
        let unauthenticated = matches!(session.state, SessionState::NotAuthenticated);
        let deadline = if unauthenticated {
            login_deadline
        } else {
            last_command + session.server.timeouts.authenticated
        };
        tokio::select! {
            _ = shutdown.cancelled() => {
                stream.write_all(SHUTDOWN_BYE).await?;
                crate::telemetry::shutdown_bye();
                stream.flush().await?;
                let _ = stream.shutdown().await;
                return Ok(None);
            }
            read = stream.read(&mut rbuf) => {
                let n = read?;
                if n == 0 {
                    return Ok(None);
                }
                crate::telemetry::bytes_in(n);
                rx.feed(&rbuf[..n]);
            }
            hint = session.next_hint() => {
                if hint.revokes_account() {
                    revoke(&mut stream).await?;
                    return Ok(None);
                }
                // Outside IDLE nothing is sent unasked; the next command catches up.
                session.on_hint(hint);
            }
            _ = tokio::time::sleep_until(deadline) => {
                if unauthenticated {
                    crate::telemetry::pre_auth_closed("login_deadline");
                    stream.write_all(LOGIN_DEADLINE_BYE).await?;
                } else {
                    crate::telemetry::autologout("inactive");
                    stream.write_all(INACTIVE_BYE).await?;
                }
                stream.flush().await?;
                let _ = stream.shutdown().await;
                return Ok(None);
            }
        }
    }
}

/// RFC 3501 §7.1.5: the server closes the connection, here because the client did not
/// authenticate within `Timeouts::login` of connecting.
const LOGIN_DEADLINE_BYE: &[u8] = b"* BYE Autologout; not authenticated in time\r\n";

/// RFC 3501 §5.4: the inactivity autologout of an authenticated connection.
const INACTIVE_BYE: &[u8] = b"* BYE Autologout; idle for too long\r\n";

/// A streamed literal arrived slower than `Timeouts::literal_min_rate` on average.
const SLOW_LITERAL_BYE: &[u8] = b"* BYE Autologout; literal data arrives too slowly\r\n";

/// One IDLE lasted `Timeouts::idle_max` (RFC 2177 §3: clients re-issue IDLE within 29 minutes).
const IDLE_MAX_BYE: &[u8] = b"* BYE Autologout; IDLE for too long\r\n";

/// The longest a streamed literal of `size` octets may take: `size` at the minimum rate, plus
/// the grace for the round trip and a slow start.
fn literal_allowance(size: u64, timeouts: &crate::server::Timeouts) -> Duration {
    timeouts.literal_grace + Duration::from_secs(size / timeouts.literal_min_rate.max(1))
}

/// Takes a streamed APPEND message literal (RFC 3501 §7.5, RFC 7888 LITERAL+) off the wire into
/// a spool file, holding no more than one read buffer of it, and queues the file for the command
/// (`Session::spooled`). Returns false when the connection is to close (client gone,
/// inactivity); the partial spool file is then removed as it is dropped. A shutdown does not
/// interrupt it: the literal is part of an APPEND already under way, which is finished and
/// answered before the connection's BYE (bounded by the server's shutdown grace period).
async fn spool_literal<S>(
    stream: &mut S,
    session: &mut Session,
    rx: &mut Receiver,
    size: u64,
) -> io::Result<bool>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    // A client that is not authenticated cannot APPEND (the command will be refused); its
    // octets are read and dropped rather than written to disk.
    let mut spooler = if session.user().is_some() {
        match Spooler::create(&session.server.spool_dir()).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot create an APPEND spool file");
                None
            }
        }
    } else {
        None
    };
    let mut rbuf = vec![0u8; SPOOL_CHUNK];
    let timeout = inactivity_timeout(session);
    let mut deadline = Instant::now() + timeout;
    let overall = Instant::now() + literal_allowance(size, &session.server.timeouts);
    loop {
        match rx.take_literal_chunk(SPOOL_CHUNK) {
            LiteralChunk::Data(chunk) => {
                if let Some(sp) = spooler.as_mut()
                    && let Err(e) = sp.write(&chunk).await
                {
                    // Keep reading the literal so the stream stays in step; the command
                    // then answers NO.
                    tracing::error!(error = %e, "writing an APPEND spool file failed");
                    spooler = None;
                }
                continue;
            }
            LiteralChunk::Done => break,
            LiteralChunk::NeedMoreData => {}
        }
        tokio::select! {
            read = stream.read(&mut rbuf) => {
                let n = read?;
                if n == 0 {
                    tracing::debug!(size, "client left during a streamed literal");
                    return Ok(false);
                }
                crate::telemetry::bytes_in(n);
                rx.feed(&rbuf[..n]);
                deadline = Instant::now() + timeout;
            }
            _ = tokio::time::sleep_until(deadline.min(overall)) => {
                if deadline <= overall {
                    crate::telemetry::autologout("inactive");
                    stream.write_all(INACTIVE_BYE).await?;
                } else {
                    crate::telemetry::autologout("literal_too_slow");
                    stream.write_all(SLOW_LITERAL_BYE).await?;
                }
                stream.flush().await?;
                let _ = stream.shutdown().await;
                return Ok(false);
            }
        }
    }
    let spool = match spooler {
        Some(sp) => match sp.finish().await {
            Ok(body) => Spool::Ready(body),
            Err(e) => {
                tracing::error!(error = %e, "finishing an APPEND spool file failed");
                Spool::Discarded
            }
        },
        None => Spool::Discarded,
    };
    session.spooled.push(spool);
    Ok(true)
}

/// How long a streamed literal may go without a byte arriving. Literals are only streamed
/// after authentication (the pre-auth limits refuse anything that large before), so this is the
/// authenticated autologout.
fn inactivity_timeout(session: &Session) -> Duration {
    session.server.timeouts.authenticated
}

/// Runs one command, including the IDLE and SASL exchanges it may start, and writes its tagged
/// completion.
async fn execute<S>(
    stream: &mut MaybeDeflate<S>,
    session: &mut Session,
    rx: &mut Receiver,
    command: Command,
    login_deadline: Instant,
    shutdown: &CancellationToken,
) -> io::Result<Flow>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let Command { tag, body } = command;
    let name = body.name();
    let started = Instant::now();
    let mut reply = {
        let mut out = Out::new(stream);
        let reply = cmd::dispatch(session, &mut out, &tag, body).await;
        out.flush().await?;
        reply
    };
    loop {
        reply = match reply.next {
            Next::SaslContinue => {
                let challenge = cmd::authenticate::challenge(session);
                stream
                    .write_all(format!("+ {challenge}\r\n").as_bytes())
                    .await?;
                stream.flush().await?;
                let Some(line) = read_line(stream, rx, login_deadline, shutdown).await? else {
                    return Ok(Flow::Close);
                };
                let mut out = Out::new(stream);
                let r = cmd::authenticate::finish(session, &mut out, &line).await;
                out.flush().await?;
                r
            }
            Next::Idle => {
                let before = session.enter_idle();
                let result = idle(stream, session, rx, shutdown).await;
                session.restore_gauge(before);
                match result? {
                    Some(r) => r,
                    None => return Ok(Flow::Close),
                }
            }
            Next::Compress if rx.buffered() > 0 => {
                // RFC 4978 §3: the client sends nothing after COMPRESS until it has seen the
                // result, and compresses from the octet after it; bytes already here were sent
                // before compression began and cannot be told apart from compressed ones.
                let r = Reply::bad("COMPRESS must be the last command sent before compression");
                let mut out = Out::new(stream);
                out.tagged(&tag, &r);
                out.line("* BYE Pipelined data after COMPRESS");
                out.flush().await?;
                return Ok(Flow::Close);
            }
            Next::StartTls if rx.buffered() > 0 => {
                // RFC 3501 §6.2.1: TLS negotiation begins right after the CRLF of the OK.
                // Bytes pipelined behind STARTTLS were sent in the clear (possibly injected by
                // a man in the middle) and must never run as if they came over TLS; dropping
                // them silently would hide that, so refuse and close.
                let r = Reply::bad("STARTTLS must be the last command sent before TLS negotiation");
                let mut out = Out::new(stream);
                out.tagged(&tag, &r);
                out.line("* BYE Pipelined data after STARTTLS");
                out.flush().await?;
                return Ok(Flow::Close);
            }
            _ => break,
        };
    }
    tracing::debug!(command = name, status = ?reply.status, "command done");
    crate::telemetry::command(name, reply.status, started.elapsed());
    let mut out = Out::new(stream);
    out.tagged(&tag, &reply);
    out.flush().await?;
    let starttls = matches!(reply.next, Next::StartTls);
    if matches!(reply.next, Next::Compress) {
        // The tagged OK went out uncompressed; everything after it is DEFLATE (RFC 4978 §3).
        stream.start();
    }
    if !session.apply(reply.next) {
        return Ok(Flow::Close);
    }
    Ok(if starttls {
        Flow::StartTls
    } else {
        Flow::Continue
    })
}

/// Reads one SASL line (RFC 3501 §6.2.2), at most the receiver's (pre-authentication) line
/// limit; `None` when the connection ended, shuts down, or the client did not answer by the
/// login deadline, which bytes trickling in do not move.
/// Ends a session whose account was revoked: `* BYE`, then close.
async fn revoke<S>(stream: &mut S) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    crate::telemetry::session_revoked();
    stream.write_all(REVOKED_BYE).await?;
    stream.flush().await?;
    let _ = stream.shutdown().await;
    Ok(())
}

async fn read_line<S>(
    stream: &mut S,
    rx: &mut Receiver,
    login_deadline: Instant,
    shutdown: &CancellationToken,
) -> io::Result<Option<Vec<u8>>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut rbuf = vec![0u8; 1024];
    // AUTHENTICATE is only valid before authentication (RFC 3501 §6.2.2), so the login deadline
    // always applies to its answers.
    let deadline = login_deadline.min(Instant::now() + SASL_ANSWER_TIMEOUT);
    loop {
        if let Some(line) = rx.take_line() {
            return Ok(Some(line));
        }
        tokio::select! {
            _ = shutdown.cancelled() => {
                stream.write_all(SHUTDOWN_BYE).await?;
                crate::telemetry::shutdown_bye();
                stream.flush().await?;
                return Ok(None);
            }
            read = stream.read(&mut rbuf) => {
                let n = read?;
                if n == 0 {
                    return Ok(None);
                }
                rx.feed(&rbuf[..n]);
            }
            _ = tokio::time::sleep_until(deadline) => {
                crate::telemetry::pre_auth_closed("login_deadline");
                stream.write_all(LOGIN_DEADLINE_BYE).await?;
                stream.flush().await?;
                return Ok(None);
            }
        }
    }
}

/// IDLE (RFC 2177): changes are pushed as they happen (EXPUNGE included, RFC 3501 §7.4.1 allows
/// it while idling), `* OK Still here` keeps NAT mappings alive, `DONE` ends it. Returns the
/// tagged reply, or `None` when the connection must close.
async fn idle<S>(
    stream: &mut S,
    session: &mut Session,
    rx: &mut Receiver,
    shutdown: &CancellationToken,
) -> io::Result<Option<Reply>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    const MODE: SyncMode = SyncMode {
        allow_expunge: true,
        with_uid: false,
    };
    stream.write_all(b"+ idling\r\n").await?;
    stream.flush().await?;
    if let Some(r) = idle_sync(stream, session, true).await? {
        return Ok(Some(r));
    }
    let keepalive = session.server.config.idle_keepalive;
    let mut ticker = tokio::time::interval_at(Instant::now() + keepalive, keepalive);
    let idle_end = Instant::now() + session.server.timeouts.idle_max;
    let mut rbuf = vec![0u8; 256];
    loop {
        match rx.take_idle_done() {
            Some(true) => {
                // Anything that raced with DONE is reported before the tagged OK.
                if let Some(r) = idle_sync(stream, session, false).await? {
                    return Ok(Some(r));
                }
                return Ok(Some(Reply::ok("IDLE terminated")));
            }
            Some(false) => return Ok(Some(Reply::bad("Expected DONE to end IDLE"))),
            None => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => {
                stream.write_all(SHUTDOWN_BYE).await?;
                crate::telemetry::shutdown_bye();
                stream.flush().await?;
                return Ok(None);
            }
            read = stream.read(&mut rbuf) => {
                let n = read?;
                if n == 0 {
                    return Ok(None);
                }
                rx.feed(&rbuf[..n]);
            }
            hint = session.next_hint() => {
                if hint.revokes_account() {
                    revoke(stream).await?;
                    return Ok(None);
                }
                if session.on_hint(hint) {
                    let received = Instant::now();
                    let r = idle_sync(stream, session, false).await?;
                    crate::telemetry::idle_push(received.elapsed());
                    if let Some(r) = r {
                        return Ok(Some(r));
                    }
                }
            }
            _ = tokio::time::sleep_until(idle_end) => {
                crate::telemetry::autologout("idle_max");
                stream.write_all(IDLE_MAX_BYE).await?;
                stream.flush().await?;
                return Ok(None);
            }
            _ = ticker.tick() => {
                stream.write_all(b"* OK Still here\r\n").await?;
                stream.flush().await?;
                // Also a safety net for hints lost without the stream noticing.
                if let Some(r) = idle_sync(stream, session, true).await? {
                    return Ok(Some(r));
                }
            }
        }
    }

    async fn idle_sync<S>(
        stream: &mut S,
        session: &mut Session,
        force: bool,
    ) -> io::Result<Option<Reply>>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let mut out = Out::new(stream);
        let result = session.sync(&mut out, MODE, force).await;
        out.flush().await?;
        Ok(match result {
            Ok(Next::Disconnect) => Some(Reply::no("Mailbox deleted").then(Next::Disconnect)),
            Ok(_) => None,
            Err(e) => {
                // A store outage must not kill the IDLE; the next hint or tick retries.
                tracing::warn!(error = %e, "catch-up during IDLE failed");
                None
            }
        })
    }
}
