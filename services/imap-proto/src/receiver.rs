//! The incremental command receiver.
//!
//! Framing (RFC 3501 §2.2, §4.3, §7.5; RFC 7888): a command is one or more CRLF-terminated
//! lines; a line ending in a literal marker `{n}` / `{n+}` / `~{n}` is followed by exactly `n`
//! octets, after which the command continues with another line. The receiver cuts the byte
//! stream into these pieces, enforces [`Limits`] on each, and hands the assembled command to
//! the parser (the private `parse` module) once its last line has arrived.
//!
//! Memory: a line is never held beyond `max_line` (a longer one is discarded as it arrives), a
//! literal is never accepted beyond `max_literal`, and one command never holds more than
//! `max_command`. Only literals up to `max_buffered_literal` are held: a larger APPEND message
//! literal is handed to the caller piece by piece as it arrives ([`Received::LiteralStream`],
//! [`Receiver::take_literal_chunk`]) so the caller can spool it to disk, and any other literal that
//! large is refused. What one connection makes the receiver hold is therefore bounded by the line
//! and buffered-literal limits, whatever APPENDLIMIT is. Input the caller has fed but not yet
//! drained with [`Receiver::next`] / [`Receiver::take_literal_chunk`] is of course held too, so
//! callers should alternate feeding and draining.

use bytes::{Buf, Bytes, BytesMut};

use crate::command::{AppendBody, Command};
use crate::parse::{self, Lit};

/// Bounds on what one client may make the server hold (all configurable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest command line (without literals), in bytes.
    pub max_line: usize,
    /// Largest literal the server accepts, in bytes (APPENDLIMIT).
    pub max_literal: u64,
    /// Total bytes one command may hold, line and literals together.
    pub max_command: u64,
    /// Deepest nesting of parenthesised lists / SEARCH keys.
    pub max_nesting: usize,
    /// Largest literal held in memory. A larger APPEND message literal is streamed to the caller
    /// instead (still at most `max_literal`); any other literal over it is refused.
    pub max_buffered_literal: usize,
    /// Most messages in one APPEND (MULTIAPPEND, RFC 3502 §6.3.11); more is `BAD [LIMIT]`.
    pub max_append_messages: usize,
    /// Most parts of one CATENATE message (RFC 4469 §5); more is `BAD [LIMIT]`.
    pub max_catenate_parts: usize,
    /// Most search keys in one SEARCH / SORT / THREAD program (every key counts, nested or not).
    pub max_search_keys: usize,
    /// Deepest nesting of search keys: each NOT, OR and parenthesised list is one level.
    pub max_search_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_line: 64 * 1024,
            max_literal: 64 * 1024 * 1024,
            max_command: 80 * 1024 * 1024,
            max_nesting: 64,
            max_buffered_literal: 256 * 1024,
            max_append_messages: 1000,
            max_catenate_parts: 256,
            max_search_keys: 4096,
            max_search_depth: 500,
        }
    }
}

impl Limits {
    /// The limits of a connection that has not authenticated yet: nothing it may send then
    /// (LOGIN, AUTHENTICATE, STARTTLS, ID, CAPABILITY) needs more than a few KiB, so a line,
    /// literal or command over `max_bytes` is refused before anything is spent on a client
    /// nobody knows (RFC 7888 §4 allows refusing a non-synchronizing literal; RFC 9051 §7.1
    /// `LIMIT`). Never raises a limit.
    pub fn pre_auth(self, max_bytes: usize) -> Limits {
        let max = max_bytes as u64;
        Limits {
            max_line: self.max_line.min(max_bytes),
            max_literal: self.max_literal.min(max),
            max_command: self.max_command.min(max),
            max_buffered_literal: self.max_buffered_literal.min(max_bytes),
            ..self
        }
    }
}

/// What the receiver has for the caller after being fed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Feed more bytes.
    NeedMoreData,
    /// The client announced a synchronizing literal of `size` bytes and waits for `+` before
    /// sending it (RFC 3501 §7.5). The caller writes a continuation request, then keeps feeding.
    NeedContinuation { size: u64 },
    /// An APPEND message literal of `size` bytes (over `max_buffered_literal`) is arriving and
    /// is not buffered: the caller now takes its octets with [`Receiver::take_literal_chunk`]
    /// (feeding more input as needed) until that says [`LiteralChunk::Done`], then goes on with
    /// `next`. The command it belongs to carries [`AppendBody::Streamed`] for it. For a
    /// synchronizing literal this follows `NeedContinuation`.
    LiteralStream { size: u64 },
    /// A complete command.
    Command(Command),
    /// The command was malformed or over a limit: answer `<tag> BAD <text>` (or untagged `* BAD`
    /// when no tag could be read). The receiver has already skipped the rest of that command.
    /// `fatal` means the stream cannot be resynchronised (e.g. a non-synchronizing literal over
    /// the limit): answer `* BYE` and close.
    Error {
        tag: Option<String>,
        text: String,
        fatal: bool,
    },
}

/// What [`Receiver::take_literal_chunk`] has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiteralChunk {
    /// The next octets of the streamed literal (never empty).
    Data(Bytes),
    /// None of the literal's octets are buffered: feed more input.
    NeedMoreData,
    /// The literal has been taken in full (or none is being streamed): call `next`.
    Done,
}

/// Error text for a literal over `max_literal` / `max_command`. It starts with the RFC 7889
/// response code so that APPEND can answer `NO [TOOBIG] ...` by passing it through.
pub const LITERAL_TOO_LARGE: &str = "[TOOBIG] literal too large";

/// Error texts for a line over `max_line` and a command over `max_command`: the RFC 9051 §7.1
/// `LIMIT` code says a server limit was exceeded (the command may be fine otherwise).
pub const LINE_TOO_LONG: &str = "[LIMIT] line too long";
pub const COMMAND_TOO_LONG: &str = "[LIMIT] command too long";

/// Bytes of a discarded line kept to recognise a literal marker at its end.
const SKIP_TAIL: usize = 32;

/// Input buffer capacity worth giving back once a streamed literal is done.
const SHRINK_ABOVE: usize = 16 * 1024;

/// Sync literals per command for which the partial command is syntax-checked before asking
/// for the literal; bounded so that a command with thousands of literals does not reparse its
/// text thousands of times.
const PRECHECK_LITERALS: usize = 8;

#[derive(Debug)]
enum State {
    /// Reading a line of the current command, or waiting for a new command.
    Line,
    /// Waiting for the `size` octets of a literal of the current command.
    Literal { size: usize },
    /// An APPEND message literal of `size` octets is to be streamed; `next` announces it.
    StreamStart { size: u64 },
    /// The caller is taking the `remaining` octets of a streamed literal.
    Stream { remaining: u64 },
    /// Discarding the rest of a command already answered with an error: the current line (the
    /// last `SKIP_TAIL` bytes of it are in `tail`), and `discard` octets of a non-synchronizing
    /// literal it announced, which the client sends regardless.
    Skip { tail: Vec<u8>, discard: u64 },
    /// A fatal error was reported; input is ignored.
    Failed,
}

/// Receives commands from a byte stream.
#[derive(Debug)]
pub struct Receiver {
    limits: Limits,
    buf: BytesMut,
    state: State,
    /// Bytes at the start of `buf` already known to hold no LF (saves rescanning when the
    /// caller feeds a line in small pieces).
    scanned: usize,
    /// Text of the current command so far, line endings removed.
    text: Vec<u8>,
    /// Literals of the current command.
    lits: Vec<Lit>,
    /// Bytes the current command holds, lines and literals, counted against `max_command`
    /// (streamed literals too: they are spooled, and the spool is bounded by it).
    held: u64,
    /// Literals of the current command streamed so far.
    streamed: usize,
}

/// A literal marker at the end of a line.
struct Marker {
    /// `None` when the size does not fit in a u64.
    size: Option<u64>,
    /// `{n}` (the client waits for `+`) rather than `{n+}`.
    sync: bool,
}

/// Recognises `{digits}` / `{digits+}` at the end of a line (without its CRLF). A marker can
/// only end a line as a literal in valid IMAP (`{` is not an atom character and quoted strings
/// cannot span lines), so this does not need to know anything else about the line.
fn literal_marker(line: &[u8]) -> Option<Marker> {
    let body = line.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let inner = &body[open + 1..];
    let (digits, sync) = match inner.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (inner, true),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let size = digits.iter().try_fold(0u64, |acc, &b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    });
    Some(Marker { size, sync })
}

/// Keeps the last `SKIP_TAIL` bytes of `tail ++ more`.
fn push_tail(tail: &mut Vec<u8>, more: &[u8]) {
    let more = &more[more.len().saturating_sub(SKIP_TAIL)..];
    tail.extend_from_slice(more);
    let excess = tail.len().saturating_sub(SKIP_TAIL);
    tail.drain(..excess);
}

impl Receiver {
    pub fn new(limits: Limits) -> Receiver {
        Receiver {
            limits,
            buf: BytesMut::new(),
            state: State::Line,
            scanned: 0,
            text: Vec::new(),
            lits: Vec::new(),
            held: 0,
            streamed: 0,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Changes the limits from the next line on (e.g. raised once the client has
    /// authenticated, see [`Limits::pre_auth`]); what is already received is unaffected.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Appends bytes received from the client.
    pub fn feed(&mut self, bytes: &[u8]) {
        if !matches!(self.state, State::Failed) {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Advances; call repeatedly until `NeedMoreData`.
    // Not an Iterator: `NeedMoreData` is not the end of the stream, and the name is the contract.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Received {
        loop {
            match self.state {
                State::Failed => return Received::NeedMoreData,
                State::Skip { .. } => {
                    if !self.skip() {
                        return Received::NeedMoreData;
                    }
                }
                State::Literal { size } => {
                    if self.buf.len() < size {
                        return Received::NeedMoreData;
                    }
                    // split_to hands the literal's bytes over without copying them.
                    let data = self.buf.split_to(size).freeze();
                    self.scanned = 0;
                    self.lits.push(Lit {
                        pos: self.text.len(),
                        data: AppendBody::Inline(data),
                    });
                    self.state = State::Line;
                }
                State::StreamStart { size } => {
                    self.lits.push(Lit {
                        pos: self.text.len(),
                        data: AppendBody::Streamed {
                            size,
                            index: self.streamed,
                        },
                    });
                    self.streamed += 1;
                    self.state = State::Stream { remaining: size };
                    return Received::LiteralStream { size };
                }
                // The caller drains it with take_literal_chunk.
                State::Stream { .. } => return Received::NeedMoreData,
                State::Line => {
                    if let Some(out) = self.line() {
                        return out;
                    }
                }
            }
        }
    }

    /// Handles the next line of the current command; `None` means "keep going".
    fn line(&mut self) -> Option<Received> {
        let Some(lf) = self.find_lf() else {
            // Without its CRLF the line may be one byte longer than max_line (a buffered CR).
            if self.buf.len() > self.limits.max_line.saturating_add(1) {
                return Some(self.abandon(LINE_TOO_LONG));
            }
            return Some(Received::NeedMoreData);
        };
        let end = if lf > 0 && self.buf[lf - 1] == b'\r' {
            lf - 1
        } else {
            // A bare LF is tolerated as a line end (robustness; RFC 3501 §2.2 says CRLF).
            lf
        };
        if end > self.limits.max_line {
            return Some(self.abandon(LINE_TOO_LONG));
        }
        let held = self.held + end as u64;
        if held > self.limits.max_command {
            return Some(self.abandon(COMMAND_TOO_LONG));
        }
        if self.text.is_empty() && end == 0 {
            // An empty line between commands: nothing to answer.
            self.consume(lf + 1);
            return None;
        }
        self.held = held;
        self.text.extend_from_slice(&self.buf[..end]);
        self.consume(lf + 1);

        let line_start = self.text.len() - end;
        let Some(marker) = literal_marker(&self.text[line_start..]) else {
            return Some(self.finish());
        };
        let fits = marker.size.filter(|&size| {
            size <= self.limits.max_literal
                && self.held.saturating_add(size) <= self.limits.max_command
        });
        let Some(size) = fits else {
            let tag = parse::read_tag(&self.text);
            self.reset_command();
            if marker.sync {
                // RFC 7888 §4 / RFC 9051 §7.5: refuse before the client sends it; it never does.
                return Some(Received::Error {
                    tag,
                    text: LITERAL_TOO_LARGE.to_string(),
                    fatal: false,
                });
            }
            // The client is already sending the octets: there is no way to find the end of
            // this command other than reading them all, which is what the limit forbids.
            self.state = State::Failed;
            self.buf = BytesMut::new();
            return Some(Received::Error {
                tag,
                text: LITERAL_TOO_LARGE.to_string(),
                fatal: true,
            });
        };
        if size > self.limits.max_buffered_literal as u64 {
            return self.stream_or_refuse(size, marker.sync);
        }
        let Ok(size) = usize::try_from(size) else {
            // Unreachable in practice: size is at most max_buffered_literal, a usize.
            return Some(self.refuse_unbuffered(size, marker.sync));
        };
        // Reject a command that is already wrong before making the client send a literal, and
        // (at every power of two) a command piling up literals past a count limit of the parser
        // (MULTIAPPEND messages, CATENATE parts, search keys) before it reaches `max_command`:
        // the reparses cost O(text · log literals) in all.
        let count = self.lits.len();
        let precheck = (marker.sync && count < PRECHECK_LITERALS)
            || (count >= PRECHECK_LITERALS && count.is_power_of_two());
        if precheck
            && let Err((tag, e)) = parse::parse_command(&self.text, &self.lits, &self.limits, true)
            && !e.incomplete
        {
            self.reset_command();
            self.skip_unsent(size as u64, marker.sync);
            return Some(Received::Error {
                tag,
                text: e.text,
                fatal: false,
            });
        }
        self.held += size as u64;
        self.state = State::Literal { size };
        if marker.sync {
            Some(Received::NeedContinuation { size: size as u64 })
        } else {
            None
        }
    }

    /// A literal too large to buffer: streamed to the caller if it is an APPEND message
    /// (RFC 3502 `append-message`), refused otherwise. The partial command is parsed to know;
    /// this happens at most `max_command / max_buffered_literal` times per command.
    fn stream_or_refuse(&mut self, size: u64, sync: bool) -> Option<Received> {
        match parse::parse_command(&self.text, &self.lits, &self.limits, true) {
            Err((_, e)) if e.incomplete && e.pending_message => {
                self.held += size;
                self.state = State::StreamStart { size };
                if sync {
                    Some(Received::NeedContinuation { size })
                } else {
                    None
                }
            }
            Err((tag, e)) if !e.incomplete => {
                let text = e.text;
                self.reset_command();
                self.skip_unsent(size, sync);
                Some(Received::Error {
                    tag,
                    text,
                    fatal: false,
                })
            }
            _ => Some(self.refuse_unbuffered(size, sync)),
        }
    }

    /// Refuses a literal within `max_literal` that may not be buffered (it is not an APPEND
    /// message). Unlike a literal over `max_literal`, the octets of a non-synchronizing one are
    /// read and dropped (bounded by `max_literal`, never held), so the stream goes on.
    fn refuse_unbuffered(&mut self, size: u64, sync: bool) -> Received {
        let tag = parse::read_tag(&self.text);
        self.reset_command();
        self.skip_unsent(size, sync);
        Received::Error {
            tag,
            text: LITERAL_TOO_LARGE.to_string(),
            fatal: false,
        }
    }

    /// After refusing a command at a literal marker: a synchronizing literal is never sent (no
    /// `+`, RFC 3501 §7.5); a non-synchronizing one is (RFC 7888 §4), so its octets and the rest
    /// of the command are discarded.
    fn skip_unsent(&mut self, size: u64, sync: bool) {
        if !sync {
            self.state = State::Skip {
                tail: Vec::new(),
                discard: size,
            };
        }
    }

    /// Takes up to `max` (at least 1) octets of the literal being streamed, from what has been
    /// fed so far; see [`Received::LiteralStream`]. The octets are handed over without copying.
    pub fn take_literal_chunk(&mut self, max: usize) -> LiteralChunk {
        let State::Stream { remaining } = &mut self.state else {
            return LiteralChunk::Done;
        };
        if *remaining == 0 {
            self.state = State::Line;
            return LiteralChunk::Done;
        }
        if self.buf.is_empty() {
            return LiteralChunk::NeedMoreData;
        }
        let n = usize::try_from(*remaining)
            .unwrap_or(usize::MAX)
            .min(self.buf.len())
            .min(max.max(1));
        let data = self.buf.split_to(n).freeze();
        *remaining -= n as u64;
        self.scanned = 0;
        if *remaining == 0 {
            self.state = State::Line;
            // The caller fed large reads while streaming; an idle connection should not keep
            // that allocation (what is left is at most the rest of one read).
            if self.buf.capacity() > SHRINK_ABOVE {
                self.buf = BytesMut::from(&self.buf[..]);
            }
        }
        LiteralChunk::Data(data)
    }

    /// Octets of the streamed literal not taken yet; `None` when no literal is being streamed.
    pub fn literal_remaining(&self) -> Option<u64> {
        match self.state {
            State::StreamStart { size } => Some(size),
            State::Stream { remaining } => Some(remaining),
            _ => None,
        }
    }

    /// Parses the complete command.
    fn finish(&mut self) -> Received {
        let result = parse::parse_command(&self.text, &self.lits, &self.limits, false);
        self.reset_command();
        match result {
            Ok(command) => Received::Command(command),
            Err((tag, e)) => Received::Error {
                tag,
                text: e.text,
                fatal: false,
            },
        }
    }

    /// Reports an over-long line or command and starts discarding the rest of it.
    fn abandon(&mut self, text: &str) -> Received {
        let tag = if self.text.is_empty() {
            parse::read_tag(&self.buf)
        } else {
            parse::read_tag(&self.text)
        };
        self.reset_command();
        self.state = State::Skip {
            tail: Vec::new(),
            discard: 0,
        };
        Received::Error {
            tag,
            text: text.to_string(),
            fatal: false,
        }
    }

    /// Discards input of an abandoned command; true once it is all gone.
    fn skip(&mut self) -> bool {
        let State::Skip { tail, discard } = &mut self.state else {
            return true;
        };
        loop {
            if *discard > 0 {
                let n = usize::try_from(*discard)
                    .unwrap_or(usize::MAX)
                    .min(self.buf.len());
                self.buf.advance(n);
                *discard -= n as u64;
                if *discard > 0 {
                    self.scanned = 0;
                    return false;
                }
            }
            match self.buf.iter().position(|&b| b == b'\n') {
                None => {
                    push_tail(tail, &self.buf);
                    self.buf.clear();
                    self.scanned = 0;
                    return false;
                }
                Some(lf) => {
                    push_tail(tail, &self.buf[..lf]);
                    self.buf.advance(lf + 1);
                    self.scanned = 0;
                    if tail.last() == Some(&b'\r') {
                        tail.pop();
                    }
                    // A non-synchronizing literal is sent anyway: skip its octets and the line
                    // after it. A synchronizing one is never sent, as we did not say `+`.
                    match literal_marker(tail) {
                        Some(Marker {
                            size: Some(size),
                            sync: false,
                        }) => {
                            *discard = size;
                            tail.clear();
                        }
                        _ => {
                            self.state = State::Line;
                            return true;
                        }
                    }
                }
            }
        }
    }

    fn find_lf(&mut self) -> Option<usize> {
        let start = self.scanned.min(self.buf.len());
        match self.buf[start..].iter().position(|&b| b == b'\n') {
            Some(i) => Some(start + i),
            None => {
                self.scanned = self.buf.len();
                None
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.buf.advance(n);
        self.scanned = 0;
    }

    fn reset_command(&mut self) {
        self.text = Vec::new();
        self.lits = Vec::new();
        self.held = 0;
        self.streamed = 0;
        self.state = State::Line;
    }

    /// Reads the line that ends an IDLE (RFC 2177): `Some(true)` for `DONE`, `Some(false)` for any
    /// other complete line, `None` if no full line is buffered yet.
    pub fn take_idle_done(&mut self) -> Option<bool> {
        self.take_line()
            .map(|line| line.eq_ignore_ascii_case(b"DONE"))
    }

    /// Reads one line of a SASL exchange (RFC 3501 §6.2.2): the base64 text without CRLF, or
    /// `None` if no full line is buffered yet. `*` alone means the client cancelled.
    ///
    /// A line longer than `max_line` is discarded up to its end and reported as `*`: the
    /// exchange cannot go on, and cancelling is what the session does with it.
    pub fn take_line(&mut self) -> Option<Vec<u8>> {
        match self.state {
            State::Failed => return None,
            State::Skip { .. } => {
                if !self.skip() {
                    return None;
                }
            }
            // Not a place for a line: the caller is in the middle of a streamed literal.
            State::StreamStart { .. } | State::Stream { .. } => return None,
            State::Line | State::Literal { .. } => {}
        }
        let Some(lf) = self.find_lf() else {
            if self.buf.len() > self.limits.max_line.saturating_add(1) {
                self.state = State::Skip {
                    tail: Vec::new(),
                    discard: 0,
                };
                self.skip();
                return Some(b"*".to_vec());
            }
            return None;
        };
        let end = if lf > 0 && self.buf[lf - 1] == b'\r' {
            lf - 1
        } else {
            lf
        };
        let line = self.buf[..end].to_vec();
        self.consume(lf + 1);
        if line.len() > self.limits.max_line {
            return Some(b"*".to_vec());
        }
        Some(line)
    }

    /// Bytes buffered but not yet consumed (to hand over unread bytes, e.g. none may remain after
    /// STARTTLS per RFC 3501 §6.2.1). This includes the part of a command received so far.
    pub fn buffered(&self) -> usize {
        let inline: usize = self
            .lits
            .iter()
            .map(|l| match &l.data {
                AppendBody::Inline(b) => b.len(),
                AppendBody::Streamed { .. } | AppendBody::Catenate(_) => 0,
            })
            .sum();
        self.buf.len() + self.text.len() + inline
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::*;

    fn small() -> Limits {
        Limits {
            max_line: 64,
            max_literal: 100,
            max_command: 300,
            max_nesting: 8,
            // Nothing streams: these limits test buffering.
            max_buffered_literal: 100,
            ..Limits::default()
        }
    }

    /// Limits under which literals over 16 bytes stream.
    fn streaming() -> Limits {
        Limits {
            max_line: 64,
            max_literal: 1000,
            max_command: 2500,
            max_nesting: 8,
            max_buffered_literal: 16,
            ..Limits::default()
        }
    }

    /// Everything the receiver produces for `input` fed in pieces of `step` bytes.
    fn run(limits: Limits, input: &[u8], step: usize) -> Vec<Received> {
        run_streaming(limits, input, step).0
    }

    /// [`run`], also taking streamed literals (in chunks of at most `step` bytes) and returning
    /// their octets, one entry per streamed literal.
    fn run_streaming(limits: Limits, input: &[u8], step: usize) -> (Vec<Received>, Vec<Vec<u8>>) {
        let mut r = Receiver::new(limits);
        let mut out = Vec::new();
        let mut streamed: Vec<Vec<u8>> = Vec::new();
        for chunk in input.chunks(step.max(1)) {
            r.feed(chunk);
            loop {
                drain(&mut r, step, &mut streamed);
                match r.next() {
                    Received::NeedMoreData => break,
                    Received::LiteralStream { size } => {
                        streamed.push(Vec::new());
                        out.push(Received::LiteralStream { size });
                    }
                    other => out.push(other),
                }
            }
        }
        (out, streamed)
    }

    /// Takes what is buffered of a streamed literal onto the last entry of `streamed`.
    fn drain(r: &mut Receiver, max: usize, streamed: &mut [Vec<u8>]) {
        while let LiteralChunk::Data(d) = r.take_literal_chunk(max) {
            assert!(!d.is_empty() && d.len() <= max.max(1));
            match streamed.last_mut() {
                Some(body) => body.extend_from_slice(&d),
                None => panic!("literal octets before LiteralStream"),
            }
        }
    }

    fn cmd(tag: &str, body: CommandBody) -> Received {
        Received::Command(Command {
            tag: tag.to_string(),
            body,
        })
    }

    fn err(tag: Option<&str>, text: &str, fatal: bool) -> Received {
        Received::Error {
            tag: tag.map(str::to_string),
            text: text.to_string(),
            fatal,
        }
    }

    fn login(u: &str, p: &str) -> CommandBody {
        CommandBody::Login {
            username: u.as_bytes().to_vec(),
            password: p.as_bytes().to_vec(),
        }
    }

    fn append1(message: &'static [u8], binary: bool) -> CommandBody {
        CommandBody::Append {
            mailbox: b"INBOX".to_vec(),
            messages: vec![AppendMessage {
                flags: vec![],
                internal_date: None,
                message: AppendBody::Inline(bytes::Bytes::from_static(message)),
                binary,
            }],
        }
    }

    /// (limits, wire input, expected outputs): checked whole, byte by byte and in odd pieces.
    fn table() -> Vec<(Limits, &'static [u8], Vec<Received>)> {
        let d = Limits::default();
        vec![
            // Pipelined commands come out one by one; blank lines are ignored; bare LF is ok.
            (
                d,
                b"a NOOP\r\n\r\nb CAPABILITY\nc LOGOUT\r\n",
                vec![
                    cmd("a", CommandBody::Noop),
                    cmd("b", CommandBody::Capability),
                    cmd("c", CommandBody::Logout),
                ],
            ),
            // Synchronizing literals ask for `+` exactly once each; non-synchronizing never.
            (
                d,
                b"a LOGIN {5}\r\nalice {6}\r\nsecret\r\nb LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n",
                vec![
                    Received::NeedContinuation { size: 5 },
                    Received::NeedContinuation { size: 6 },
                    cmd("a", login("alice", "secret")),
                    cmd("b", login("alice", "secret")),
                ],
            ),
            // A literal holding CRLF and things that look like commands.
            (
                d,
                b"a APPEND INBOX {18}\r\nb LOGOUT\r\n{3}\r\nx\r\n\r\nc NOOP\r\n",
                vec![
                    Received::NeedContinuation { size: 18 },
                    cmd("a", append1(b"b LOGOUT\r\n{3}\r\nx\r\n", false)),
                    cmd("c", CommandBody::Noop),
                ],
            ),
            // LITERAL- semantics: a non-synchronizing literal over 4096 bytes is still fine.
            (d, b"a APPEND INBOX ~{0+}\r\n\r\n", vec![cmd("a", append1(b"", true))]),
            // Errors are per command; the stream goes on.
            (
                d,
                b"a FROB\r\n* NOOP\r\nb NOOP\r\n",
                vec![
                    err(Some("a"), "unknown command", false),
                    err(None, "missing or invalid tag", false),
                    cmd("b", CommandBody::Noop),
                ],
            ),
            // A command already wrong is refused before its literal is asked for.
            (
                d,
                b"a FROB {5}\r\nb NOOP\r\n",
                vec![
                    err(Some("a"), "unknown command", false),
                    cmd("b", CommandBody::Noop),
                ],
            ),
            // Over-long line: error with the tag, the rest of the line is skipped.
            (
                small(),
                b"a1 SELECT xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\nb NOOP\r\n",
                vec![err(Some("a1"), LINE_TOO_LONG, false), cmd("b", CommandBody::Noop)],
            ),
            // ... and when it announced a non-synchronizing literal, that is skipped as well,
            // together with the rest of the command.
            (
                small(),
                b"a1 SELECT xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx {10+}\r\nb NOOP\r\nxx {2+}\r\nzz\r\nc NOOP\r\n",
                vec![err(Some("a1"), LINE_TOO_LONG, false), cmd("c", CommandBody::Noop)],
            ),
            // A synchronizing literal over the limit: refused without a continuation; the
            // client does not send it.
            (
                small(),
                b"a APPEND INBOX {101}\r\nb NOOP\r\n",
                vec![err(Some("a"), LITERAL_TOO_LARGE, false), cmd("b", CommandBody::Noop)],
            ),
            (
                small(),
                b"a APPEND INBOX {99999999999999999999999}\r\nb NOOP\r\n",
                vec![err(Some("a"), LITERAL_TOO_LARGE, false), cmd("b", CommandBody::Noop)],
            ),
            // A literal at the limit is fine.
            (
                small(),
                b"a LOGIN u {100+}\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n",
                vec![cmd("a", login("u", &"x".repeat(100)))],
            ),
            // A non-synchronizing literal over the limit cannot be skipped: fatal, and nothing
            // after it is read.
            (
                small(),
                b"a APPEND INBOX {101+}\r\nb NOOP\r\n",
                vec![err(Some("a"), LITERAL_TOO_LARGE, true)],
            ),
            // The whole command over max_command, through several literals.
            (
                small(),
                b"a APPEND INBOX {100+}\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx {100+}\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx {100}\r\n",
                vec![err(Some("a"), LITERAL_TOO_LARGE, false)],
            ),
            // A literal marker in the middle of a line is not a literal.
            (
                d,
                b"a LOGIN {5} x\r\n",
                vec![err(Some("a"), "literal must end the line", false)],
            ),
        ]
    }

    #[test]
    fn table_whole_split_and_bytewise() {
        for (limits, input, want) in table() {
            for step in [input.len(), 1, 2, 3, 7, 64] {
                assert_eq!(
                    run(limits, input, step),
                    want,
                    "step {step}: {:?}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    fn streamed(size: u64, index: usize) -> AppendBody {
        AppendBody::Streamed { size, index }
    }

    fn inline(b: &'static [u8]) -> AppendBody {
        AppendBody::Inline(bytes::Bytes::from_static(b))
    }

    fn append(messages: Vec<(AppendBody, bool)>) -> CommandBody {
        CommandBody::Append {
            mailbox: b"INBOX".to_vec(),
            messages: messages
                .into_iter()
                .map(|(message, binary)| AppendMessage {
                    flags: vec![],
                    internal_date: None,
                    message,
                    binary,
                })
                .collect(),
        }
    }

    /// 20 octets that look like commands and literal markers; a streamed literal under
    /// `streaming()` limits.
    const BIG: &[u8] = b"LOGOUT\r\n{3}\r\nx\r\n{9+}";

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// (wire input, expected outputs, expected streamed bodies).
    type StreamCase = (Vec<u8>, Vec<Received>, Vec<Vec<u8>>);

    /// The streaming cases, under `streaming()` limits.
    fn stream_table() -> Vec<StreamCase> {
        let big = BIG.to_vec();
        let seventeen = b"0123456789abcdefg".to_vec();
        vec![
            // Synchronizing: `+` first, then the stream; pipelined commands after it still run.
            (
                cat(&[b"a APPEND INBOX {20}\r\n", BIG, b"\r\nb NOOP\r\n"]),
                vec![
                    Received::NeedContinuation { size: 20 },
                    Received::LiteralStream { size: 20 },
                    cmd("a", append(vec![(streamed(20, 0), false)])),
                    cmd("b", CommandBody::Noop),
                ],
                vec![big.clone()],
            ),
            // LITERAL+ (RFC 7888): no continuation.
            (
                cat(&[b"a APPEND INBOX {20+}\r\n", BIG, b"\r\nb NOOP\r\n"]),
                vec![
                    Received::LiteralStream { size: 20 },
                    cmd("a", append(vec![(streamed(20, 0), false)])),
                    cmd("b", CommandBody::Noop),
                ],
                vec![big.clone()],
            ),
            // literal8 (RFC 3516).
            (
                cat(&[b"a APPEND INBOX ~{20}\r\n", BIG, b"\r\n"]),
                vec![
                    Received::NeedContinuation { size: 20 },
                    Received::LiteralStream { size: 20 },
                    cmd("a", append(vec![(streamed(20, 0), true)])),
                ],
                vec![big.clone()],
            ),
            // MULTIAPPEND (RFC 3502) mixing buffered and streamed messages.
            (
                cat(&[
                    b"a APPEND INBOX {3+}\r\nabc {20+}\r\n",
                    BIG,
                    b" {17}\r\n0123456789abcdefg {2}\r\nhi\r\nb NOOP\r\n",
                ]),
                vec![
                    Received::LiteralStream { size: 20 },
                    Received::NeedContinuation { size: 17 },
                    Received::LiteralStream { size: 17 },
                    Received::NeedContinuation { size: 2 },
                    cmd(
                        "a",
                        append(vec![
                            (inline(b"abc"), false),
                            (streamed(20, 0), false),
                            (streamed(17, 1), false),
                            (inline(b"hi"), false),
                        ]),
                    ),
                    cmd("b", CommandBody::Noop),
                ],
                vec![big.clone(), seventeen],
            ),
            // Over max_literal: still refused, without a continuation; the client does not
            // send it.
            (
                b"a APPEND INBOX {1001}\r\nb NOOP\r\n".to_vec(),
                vec![
                    err(Some("a"), LITERAL_TOO_LARGE, false),
                    cmd("b", CommandBody::Noop),
                ],
                vec![],
            ),
            // ... and fatal when non-synchronizing.
            (
                b"a APPEND INBOX {1001+}\r\nb NOOP\r\n".to_vec(),
                vec![err(Some("a"), LITERAL_TOO_LARGE, true)],
                vec![],
            ),
            // Streamed literals count against max_command like buffered ones.
            (
                cat(&[
                    b"a APPEND INBOX {1000+}\r\n",
                    &[b'x'; 1000],
                    b" {1000+}\r\n",
                    &[b'y'; 1000],
                    b" {1000}\r\nb NOOP\r\n",
                ]),
                vec![
                    Received::LiteralStream { size: 1000 },
                    Received::LiteralStream { size: 1000 },
                    err(Some("a"), LITERAL_TOO_LARGE, false),
                    cmd("b", CommandBody::Noop),
                ],
                vec![vec![b'x'; 1000], vec![b'y'; 1000]],
            ),
            // A literal too big to buffer that is not an APPEND message (a password, a
            // mailbox name) is refused; a non-synchronizing one is skipped, not fatal.
            (
                b"a LOGIN {20}\r\nb APPEND {17}\r\nc NOOP\r\n".to_vec(),
                vec![
                    err(Some("a"), LITERAL_TOO_LARGE, false),
                    err(Some("b"), LITERAL_TOO_LARGE, false),
                    cmd("c", CommandBody::Noop),
                ],
                vec![],
            ),
            (
                cat(&[b"a LOGIN {20+}\r\n", BIG, b" {2+}\r\npw\r\nb NOOP\r\n"]),
                vec![
                    err(Some("a"), LITERAL_TOO_LARGE, false),
                    cmd("b", CommandBody::Noop),
                ],
                vec![],
            ),
            // An APPEND already wrong before its big literal is refused at once; a
            // non-synchronizing literal is skipped with the rest of the command.
            (
                cat(&[b"a APPEND INBOX (\\Seen {20+}\r\n", BIG, b"\r\nb NOOP\r\n"]),
                vec![
                    err(Some("a"), "expected atom", false),
                    cmd("b", CommandBody::Noop),
                ],
                vec![],
            ),
            // A buffered literal at the threshold is not streamed.
            (
                b"a APPEND INBOX {16+}\r\n0123456789abcdef\r\n".to_vec(),
                vec![cmd("a", append(vec![(inline(b"0123456789abcdef"), false)]))],
                vec![],
            ),
        ]
    }

    #[test]
    fn streamed_literals_whole_split_and_bytewise() {
        for (input, want, want_bodies) in stream_table() {
            for step in [input.len(), 1, 2, 3, 7, 64] {
                let (got, bodies) = run_streaming(streaming(), &input, step);
                let shown = String::from_utf8_lossy(&input);
                assert_eq!(got, want, "step {step}: {shown:?}");
                assert_eq!(bodies, want_bodies, "step {step}: {shown:?}");
            }
        }
    }

    #[test]
    fn streamed_literal_is_never_buffered() {
        let limits = Limits {
            max_literal: 64 * 1024 * 1024,
            max_command: 64 * 1024 * 1024 + 1024,
            ..Limits::default()
        };
        let size: u64 = 8 * 1024 * 1024;
        let mut r = Receiver::new(limits);
        r.feed(format!("a APPEND INBOX {{{size}}}\r\n").as_bytes());
        assert_eq!(r.next(), Received::NeedContinuation { size });
        assert_eq!(r.take_literal_chunk(100), LiteralChunk::Done);
        assert_eq!(r.next(), Received::LiteralStream { size });
        assert_eq!(r.literal_remaining(), Some(size));
        assert_eq!(r.take_literal_chunk(100), LiteralChunk::NeedMoreData);
        // Neither next() nor take_line() may eat literal octets.
        assert_eq!(r.next(), Received::NeedMoreData);
        let piece = vec![b'z'; 4096];
        let mut taken = 0u64;
        while taken < size {
            r.feed(&piece);
            assert_eq!(r.take_line(), None);
            assert_eq!(r.next(), Received::NeedMoreData);
            loop {
                match r.take_literal_chunk(1500) {
                    LiteralChunk::Data(d) => {
                        assert!(d.len() <= 1500 && d.iter().all(|&b| b == b'z'));
                        taken += d.len() as u64;
                    }
                    LiteralChunk::NeedMoreData => break,
                    LiteralChunk::Done => break,
                }
            }
            assert!(r.buffered() < 8192, "{}", r.buffered());
        }
        assert_eq!(taken, size);
        assert_eq!(r.literal_remaining(), None);
        assert_eq!(r.take_literal_chunk(100), LiteralChunk::Done);
        r.feed(b" {3+}\r\nabc\r\nb NOOP\r\n");
        assert_eq!(
            r.next(),
            cmd(
                "a",
                append(vec![(streamed(size, 0), false), (inline(b"abc"), false)])
            )
        );
        assert_eq!(r.next(), cmd("b", CommandBody::Noop));
    }

    #[test]
    fn continuation_only_once_and_bytes_wait() {
        let mut r = Receiver::new(Limits::default());
        r.feed(b"a LOGIN {5}\r\n");
        assert_eq!(r.next(), Received::NeedContinuation { size: 5 });
        assert_eq!(r.next(), Received::NeedMoreData);
        assert_eq!(r.next(), Received::NeedMoreData);
        r.feed(b"ali");
        assert_eq!(r.next(), Received::NeedMoreData);
        r.feed(b"ce pw\r\nb NO");
        assert_eq!(r.next(), cmd("a", login("alice", "pw")));
        // Bytes after a command stay buffered.
        assert_eq!(r.buffered(), 4);
        assert_eq!(r.next(), Received::NeedMoreData);
        r.feed(b"OP\r\n");
        assert_eq!(r.next(), cmd("b", CommandBody::Noop));
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn over_long_line_reported_before_its_end() {
        let limits = small();
        let mut r = Receiver::new(limits);
        r.feed(b"t1 NOOP ");
        r.feed(&[b'x'; 100]);
        assert_eq!(r.next(), err(Some("t1"), LINE_TOO_LONG, false));
        // Memory stays bounded while the rest streams in.
        for _ in 0..1000 {
            r.feed(&[b'y'; 100]);
            assert_eq!(r.next(), Received::NeedMoreData);
            assert!(r.buffered() <= limits.max_line + 1);
        }
        r.feed(b"\r\nt2 NOOP\r\n");
        assert_eq!(r.next(), cmd("t2", CommandBody::Noop));
    }

    #[test]
    fn literal_bytes_are_not_copied() {
        let mut r = Receiver::new(Limits::default());
        r.feed(b"a APPEND INBOX {4+}\r\nbody\r\n");
        let Received::Command(Command {
            body: CommandBody::Append { messages, .. },
            ..
        }) = r.next()
        else {
            panic!()
        };
        assert_eq!(
            messages[0].message,
            AppendBody::Inline(bytes::Bytes::from_static(b"body"))
        );
    }

    #[test]
    fn idle_and_sasl_lines() {
        let mut r = Receiver::new(small());
        assert_eq!(r.take_idle_done(), None);
        r.feed(b"DO");
        assert_eq!(r.take_idle_done(), None);
        r.feed(b"ne\r\nfoo\nAGFsaWNl\r\n*\r\n\r\nx NOOP\r\n");
        assert_eq!(r.take_idle_done(), Some(true));
        assert_eq!(r.take_idle_done(), Some(false));
        assert_eq!(r.take_line(), Some(b"AGFsaWNl".to_vec()));
        assert_eq!(r.take_line(), Some(b"*".to_vec()));
        assert_eq!(r.take_line(), Some(Vec::new()));
        assert_eq!(r.next(), cmd("x", CommandBody::Noop));
        assert_eq!(r.take_line(), None);
        // An over-long SASL line is dropped (bounded memory) and reads as a cancel.
        r.feed(&[b'A'; 200]);
        assert_eq!(r.take_line(), Some(b"*".to_vec()));
        assert!(r.buffered() == 0);
        r.feed(b"AAAA\r\nnext\r\n");
        assert_eq!(r.take_line(), Some(b"next".to_vec()));
    }

    #[test]
    fn fatal_stops_everything() {
        let mut r = Receiver::new(small());
        r.feed(b"a LOGIN {1000+}\r\n");
        assert_eq!(r.next(), err(Some("a"), LITERAL_TOO_LARGE, true));
        r.feed(b"b NOOP\r\n");
        assert_eq!(r.next(), Received::NeedMoreData);
        assert_eq!(r.buffered(), 0);
        assert_eq!(r.take_line(), None);
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Random input mixing raw bytes with IMAP-looking pieces, so that the interesting paths
    /// (literals, lists, nesting, limits) are reached, not just "unknown command".
    fn random_input(rng: &mut XorShift) -> Vec<u8> {
        const PIECES: &[&[u8]] = &[
            b"a ",
            b"UID ",
            b"FETCH ",
            b"SEARCH ",
            b"APPEND ",
            b"LOGIN ",
            b"STORE ",
            b"SELECT ",
            b"LIST ",
            b"ID ",
            b"NOT ",
            b"OR ",
            b"(",
            b")",
            b"{3}\r\n",
            b"{2+}\r\n",
            b"~{1}\r\n",
            b"{99999}\r\n",
            b"{200+}\r\n",
            b"{20}\r\n",
            b"~{24+}\r\n",
            b"\r\n",
            b"\n",
            b"\"",
            b"\\",
            b"1:*",
            b"$",
            b"BODY[",
            b"]",
            b"<0.1>",
            b" ",
            b"INBOX",
            b"+FLAGS",
            b"(\\Seen)",
            b"\"01-Jan-2000 00:00:00 +0000\"",
            b"RETURN (",
            b"CHARSET ",
            b"DONE\r\n",
            b"NIL",
            b"{",
            b"}",
            b"HEADER.FIELDS (",
        ];
        const COMMANDS: &[&[u8]] = &[
            b"a NOOP\r\n",
            b"b LOGIN {5}\r\nalice {2+}\r\npw\r\n",
            b"c APPEND INBOX (\\Seen) ~{3}\r\nabc {1+}\r\nx\r\n",
            b"j APPEND INBOX {20}\r\n01234567890123456789 ~{17+}\r\n0123456789abcdefg\r\n",
            b"d UID FETCH 1:* (FLAGS BODY.PEEK[1.HEADER.FIELDS (From)]<0.9>) (CHANGEDSINCE 3)\r\n",
            b"e SEARCH RETURN (MIN) OR NOT (SEEN 1:3) UID $ SINCE \"1-Jan-2000\"\r\n",
            b"f STORE 1 (UNCHANGEDSINCE 4) +FLAGS.SILENT \\Seen x\r\n",
            b"g LIST (SUBSCRIBED) \"\" (a* %) RETURN (STATUS (MESSAGES))\r\n",
            b"h SELECT INBOX (QRESYNC (1 2 1:9 (1 2)))\r\n",
            b"i ID (\"a\" NIL)\r\n",
        ];
        let mut out = Vec::new();
        for _ in 0..rng.below(4) {
            let start = out.len();
            out.extend_from_slice(COMMANDS[rng.below(COMMANDS.len())]);
            // A few random byte changes keep it close to valid.
            for _ in 0..rng.below(3) {
                let at = start + rng.below(out.len() - start);
                out[at] = rng.next() as u8;
            }
        }
        let len = rng.below(40);
        for _ in 0..len {
            if rng.below(3) == 0 {
                for _ in 0..rng.below(8) {
                    out.push(rng.next() as u8);
                }
            } else {
                out.extend_from_slice(PIECES[rng.below(PIECES.len())]);
            }
        }
        out
    }

    /// Feeds random input under `limits`, checking bounds after each drain; returns how many
    /// (commands, continuations, errors, fatal errors, streamed literals) were seen.
    fn random_rounds(limits: Limits, seed: u64) -> [usize; 5] {
        // After draining, the receiver's input buffer holds at most an unfinished line or an
        // unfinished buffered literal, never a streamed one; the command holds its text and
        // buffered literals, each at most max_buffered_literal. None of this depends on
        // max_literal.
        let buf_bound = (limits.max_line + 1).max(limits.max_buffered_literal);
        let mut rng = XorShift(seed);
        let mut seen = [0usize; 5];
        for round in 0..20_000 {
            let input = random_input(&mut rng);
            let mut r = Receiver::new(limits);
            let mut rest = &input[..];
            let mut outputs = Vec::new();
            while !rest.is_empty() {
                let n = 1 + rng.below(rest.len().min(40));
                r.feed(&rest[..n]);
                rest = &rest[n..];
                loop {
                    // Occasionally read as if in IDLE / SASL; must not break anything.
                    if rng.below(16) == 0 {
                        let _ = r.take_line();
                    }
                    while let LiteralChunk::Data(_) = r.take_literal_chunk(1 + rng.below(8)) {}
                    let got = r.next();
                    match &got {
                        Received::NeedMoreData => break,
                        Received::Command(_) => seen[0] += 1,
                        Received::NeedContinuation { .. } => seen[1] += 1,
                        Received::Error { fatal: false, .. } => seen[2] += 1,
                        Received::Error { fatal: true, .. } => seen[3] += 1,
                        Received::LiteralStream { .. } => seen[4] += 1,
                    }
                    outputs.push(got);
                    assert!(outputs.len() <= input.len() + 1, "round {round}");
                }
                assert!(r.buf.len() <= buf_bound, "round {round}: {}", r.buf.len());
                assert!(r.held <= limits.max_command, "round {round}");
                assert!(r.text.len() as u64 <= limits.max_command);
                for lit in &r.lits {
                    if let AppendBody::Inline(b) = &lit.data {
                        assert!(b.len() <= limits.max_buffered_literal, "round {round}");
                    }
                }
            }
            // Splitting differently changes nothing when only next() is used.
            if round % 10 == 0 {
                let whole = run_streaming(limits, &input, input.len());
                let bytewise = run_streaming(limits, &input, 1);
                assert_eq!(
                    whole,
                    bytewise,
                    "round {round}: {:?}",
                    String::from_utf8_lossy(&input)
                );
            }
        }
        seen
    }

    #[test]
    fn random_input_never_panics_and_stays_bounded() {
        let limits = Limits {
            max_buffered_literal: 16,
            ..small()
        };
        let seen = random_rounds(limits, 0x9e37_79b9_7f4a_7c15);
        assert!(seen.iter().all(|&n| n > 20), "{seen:?}");
        // The same bounds hold with a huge APPENDLIMIT: memory does not follow max_literal.
        let huge = Limits {
            max_literal: 1 << 40,
            max_command: 1 << 41,
            ..limits
        };
        let seen = random_rounds(huge, 0x2545_f491_4f6c_dd1d);
        assert!(seen[0] > 20 && seen[4] > 20, "{seen:?}");
    }

    /// A MULTIAPPEND over `max_append_messages` is refused at the first literal past the cap,
    /// before it is sent (synchronizing) or by skipping it (non-synchronizing), and the
    /// connection goes on.
    #[test]
    fn multiappend_message_count_is_capped() {
        let limits = Limits {
            max_append_messages: 3,
            ..Limits::default()
        };
        let three = b"a APPEND box {1}\r\nx {1}\r\ny {1}\r\nz\r\n";
        let got = run(limits, three, three.len());
        assert!(matches!(got.last(), Some(Received::Command(_))), "{got:?}");
        let four = b"a APPEND box {1}\r\nx {1}\r\ny {1}\r\nz {1}\r\nb NOOP\r\n";
        let got = run(limits, four, four.len());
        assert_eq!(
            got[3..],
            [
                err(Some("a"), "[LIMIT] too many messages in one APPEND", false),
                cmd("b", CommandBody::Noop)
            ],
            "{got:?}"
        );
        // Non-synchronizing: refused at the 8th, 16th, … literal at the latest (the receiver
        // checks at powers of two), long before thousands of literals pile up.
        let mut many = b"a APPEND box".to_vec();
        for _ in 0..5000 {
            many.extend_from_slice(b" {1+}\r\nx");
        }
        many.extend_from_slice(b"\r\nb NOOP\r\n");
        let mut r = Receiver::new(limits);
        r.feed(&many);
        assert_eq!(
            r.next(),
            err(Some("a"), "[LIMIT] too many messages in one APPEND", false)
        );
        assert_eq!(r.next(), cmd("b", CommandBody::Noop));
    }

    #[test]
    fn catenate_part_count_is_capped() {
        let limits = Limits {
            max_catenate_parts: 2,
            ..Limits::default()
        };
        let two = b"a APPEND box CATENATE (URL \"/INBOX/;UID=1\" TEXT {1}\r\nx)\r\n";
        assert!(matches!(
            run(limits, two, two.len()).last(),
            Some(Received::Command(_))
        ));
        let three = b"a APPEND box CATENATE (TEXT {1+}\r\nx URL \"/INBOX/;UID=1\" TEXT {1+}\r\ny)\r\nb NOOP\r\n";
        assert_eq!(
            run(limits, three, three.len()),
            [
                err(Some("a"), "[LIMIT] too many CATENATE parts", false),
                cmd("b", CommandBody::Noop)
            ]
        );
    }

    /// Before authentication a non-synchronizing literal over the pre-auth limit ends the
    /// connection as soon as its marker is read: its octets are never buffered.
    #[test]
    fn pre_auth_limits_refuse_large_literals_unread() {
        let limits = Limits::default().pre_auth(8 * 1024);
        assert_eq!(limits.max_command, 8 * 1024);
        assert_eq!(limits.max_literal, 8 * 1024);
        let mut r = Receiver::new(limits);
        r.feed(b"a LOGIN {1048576+}\r\n");
        r.feed(&vec![b'x'; 64 * 1024]);
        assert_eq!(r.next(), err(Some("a"), LITERAL_TOO_LARGE, true));
        assert_eq!(r.buffered(), 0);
        r.feed(&vec![b'x'; 64 * 1024]);
        assert_eq!(r.buffered(), 0, "input after the fatal error is dropped");
        // Raised after login: the same literal is fine.
        let mut r = Receiver::new(limits);
        r.set_limits(Limits::default());
        r.feed(b"a LOGIN {20000+}\r\n");
        assert_eq!(r.next(), Received::NeedMoreData);
    }
}
