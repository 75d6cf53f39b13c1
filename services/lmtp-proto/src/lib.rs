//! The LMTP wire protocol with no I/O (RFC 2033, which is SMTP of RFC 5321 with `LHLO` and one
//! reply per recipient after the message).
//!
//! [`Receiver`] takes bytes as they arrive, in pieces of any size, and hands out [`Event`]s one at
//! a time: a parsed command line, a command line it could not accept (with the reason), message
//! octets, and the end of a message or of a `BDAT` chunk. It holds at most one command line
//! (bounded by [`Limits::max_line`]) plus what one read added; message octets are handed out as
//! they come, so whatever the message size the receiver's memory stays bounded.
//!
//! Modes:
//! - command lines, `CRLF`-terminated (a bare `LF` is accepted too, as most servers do). A line
//!   longer than the limit is dropped as it arrives and reported once its end is seen, so the
//!   reply keeps its place among pipelined commands (RFC 2920).
//! - `DATA` message text, entered by [`Receiver::start_data`] once the session has decided to
//!   answer `354`: octets are un-dot-stuffed (RFC 5321 §4.5.2) and the message ends at the line
//!   `.` (`CRLF . CRLF`, §4.1.1.4), recognised wherever the reads split it.
//! - a `BDAT` chunk (RFC 3030 §2): entered by the receiver itself as soon as it parses a valid
//!   `BDAT <size>` line, because the chunk's octets follow the line at once and must be consumed
//!   whether or not the session accepts the command; exactly `size` octets are handed out as they
//!   are, then [`Event::ChunkEnd`].

use bytes::{Buf, Bytes, BytesMut};

pub mod address;

/// What the receiver accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4 sets a 512-octet minimum that
    /// servers must accept; extensions make lines longer).
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_line: 4096 }
    }
}

/// The `BODY=` parameter of `MAIL` (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    SevenBit,
    EightBitMime,
}

/// A command the session acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `LHLO <domain>` (RFC 2033 §4.1).
    Lhlo {
        domain: String,
    },
    /// `MAIL FROM:<reverse-path> [SIZE=n] [BODY=…]`; `reverse_path` is empty for the null
    /// sender `<>`.
    Mail {
        reverse_path: String,
        size: Option<u64>,
        body: Option<BodyType>,
    },
    /// `RCPT TO:<forward-path>`.
    Rcpt {
        forward_path: String,
    },
    Data,
    /// `BDAT <size> [LAST]`; the receiver is now handing out the chunk.
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
    /// `HELO` or `EHLO`: an SMTP greeting, which an LMTP server must refuse (RFC 2033 §4.1).
    SmtpGreeting,
    StartTls,
}

/// Why a command line was not accepted; the session turns it into a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// Not a command this server knows: `500 5.5.1`.
    Unrecognized,
    /// A known command with malformed arguments: `501 5.5.4`.
    Syntax(&'static str),
    /// A malformed mailbox or path: `501 5.1.3` (RFC 3463: bad destination mailbox syntax) or
    /// `501 5.1.7` for the sender.
    BadAddress { sender: bool, reason: &'static str },
    /// A `MAIL`/`RCPT` parameter not supported: `555 5.5.4` (RFC 5321 §4.1.1.11).
    UnsupportedParameter(String),
    /// The line exceeded [`Limits::max_line`]: `500 5.5.2`.
    LineTooLong,
}

/// One step of the conversation as the receiver sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Command(Command),
    Invalid(CommandError),
    /// Message octets: from `DATA` un-dot-stuffed, from `BDAT` as sent.
    Body(Bytes),
    /// The `.` line ending a `DATA` message; the receiver is back to command lines.
    DataEnd,
    /// The last octet of a `BDAT` chunk was handed out; back to command lines.
    ChunkEnd {
        last: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Command {
        /// Dropping the rest of an over-long line until its end.
        discarding: bool,
    },
    Data {
        /// The next octet starts a line (where a `.` is special).
        line_start: bool,
    },
    Chunk {
        remaining: u64,
        last: bool,
    },
}

/// The incremental LMTP receiver; see the module documentation.
#[derive(Debug)]
pub struct Receiver {
    buf: BytesMut,
    mode: Mode,
    limits: Limits,
}

/// The longest path accepted between `<` and `>` (RFC 5321 §4.5.3.1.3: 256 octets).
const MAX_PATH: usize = 256;
/// The most digits a `SIZE=` or `BDAT` size may have (u64 has 20).
const MAX_SIZE_DIGITS: usize = 20;

impl Receiver {
    pub fn new(limits: Limits) -> Receiver {
        Receiver {
            buf: BytesMut::new(),
            mode: Mode::Command { discarding: false },
            limits,
        }
    }

    /// Adds bytes read from the connection.
    pub fn feed(&mut self, bytes: &[u8]) {
        if let Mode::Command { discarding: true } = self.mode
            && memchr::memchr(b'\n', bytes).is_none()
        {
            // Still inside an over-long line: nothing of it is kept.
            return;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Switches to `DATA` message text; the session calls it when it answers `354`.
    pub fn start_data(&mut self) {
        self.mode = Mode::Data { line_start: true };
    }

    /// Whether the receiver is reading command lines (not message octets).
    pub fn reading_commands(&self) -> bool {
        matches!(self.mode, Mode::Command { .. })
    }

    /// Bytes received and not yet handed out.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next event, or `None` when more bytes are needed.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Event> {
        match self.mode {
            Mode::Command { discarding } => self.next_command(discarding),
            Mode::Data { line_start } => self.next_data(line_start),
            Mode::Chunk { remaining, last } => self.next_chunk(remaining, last),
        }
    }

    fn next_command(&mut self, discarding: bool) -> Option<Event> {
        let Some(end) = memchr::memchr(b'\n', &self.buf) else {
            if discarding || self.buf.len() > self.limits.max_line {
                self.buf.clear();
                self.mode = Mode::Command { discarding: true };
            }
            return None;
        };
        let line = self.buf.split_to(end + 1);
        if discarding || line.len() > self.limits.max_line {
            self.mode = Mode::Command { discarding: false };
            return Some(Event::Invalid(CommandError::LineTooLong));
        }
        let mut text: &[u8] = &line[..end];
        if let Some(stripped) = text.strip_suffix(b"\r") {
            text = stripped;
        }
        let event = match parse_command(text) {
            Ok(command) => {
                if let Command::Bdat { size, last } = command {
                    self.mode = Mode::Chunk {
                        remaining: size,
                        last,
                    };
                }
                Event::Command(command)
            }
            Err(e) => Event::Invalid(e),
        };
        Some(event)
    }

    fn next_data(&mut self, line_start: bool) -> Option<Event> {
        let mut line_start = line_start;
        loop {
            if self.buf.is_empty() {
                self.mode = Mode::Data { line_start };
                return None;
            }
            if line_start && self.buf[0] == b'.' {
                if self.buf.starts_with(b".\r\n") {
                    self.buf.advance(3);
                    self.mode = Mode::Command { discarding: false };
                    return Some(Event::DataEnd);
                }
                if b".\r\n".starts_with(&self.buf) {
                    // "." or ".\r": the end marker may be split across reads.
                    self.mode = Mode::Data { line_start };
                    return None;
                }
                // RFC 5321 §4.5.2: a line that starts with a period and has more on it lost
                // that period to dot-stuffing.
                self.buf.advance(1);
                line_start = false;
                continue;
            }
            // Everything up to the CRLF before the next line that starts with "." is plain text.
            let (take, next_line_start) = match memchr::memmem::find(&self.buf, b"\r\n.") {
                Some(at) => (at + 2, true),
                None if self.buf.ends_with(b"\r\n") => (self.buf.len(), true),
                // Keep a trailing CR: with the next read it may begin "\r\n.".
                None if self.buf.ends_with(b"\r") => (self.buf.len() - 1, false),
                None => (self.buf.len(), false),
            };
            if take == 0 {
                // Only a CR is buffered.
                self.mode = Mode::Data { line_start: false };
                return None;
            }
            self.mode = Mode::Data {
                line_start: next_line_start,
            };
            return Some(Event::Body(self.buf.split_to(take).freeze()));
        }
    }

    fn next_chunk(&mut self, remaining: u64, last: bool) -> Option<Event> {
        if remaining == 0 {
            self.mode = Mode::Command { discarding: false };
            return Some(Event::ChunkEnd { last });
        }
        if self.buf.is_empty() {
            return None;
        }
        let take = usize::try_from(remaining).map_or(self.buf.len(), |r| r.min(self.buf.len()));
        self.mode = Mode::Chunk {
            remaining: remaining - take as u64,
            last,
        };
        Some(Event::Body(self.buf.split_to(take).freeze()))
    }
}

/// Parses one command line (without its line end).
pub fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    let (verb, rest) = match line.iter().position(|&b| b == b' ') {
        Some(at) => (&line[..at], &line[at + 1..]),
        None => (line, &b""[..]),
    };
    let verb = verb.to_ascii_uppercase();
    match verb.as_slice() {
        b"LHLO" => {
            let domain = trim(rest);
            if domain.is_empty() {
                return Err(CommandError::Syntax("LHLO needs a host name"));
            }
            Ok(Command::Lhlo {
                domain: String::from_utf8_lossy(domain).into_owned(),
            })
        }
        b"MAIL" => parse_mail(rest),
        b"RCPT" => parse_rcpt(rest),
        b"DATA" => no_arguments(rest, Command::Data, "DATA takes no arguments"),
        b"BDAT" => parse_bdat(rest),
        b"RSET" => no_arguments(rest, Command::Rset, "RSET takes no arguments"),
        b"QUIT" => no_arguments(rest, Command::Quit, "QUIT takes no arguments"),
        // RFC 5321 §4.1.1.9: NOOP may carry a string, which is ignored; HELP likewise.
        b"NOOP" => Ok(Command::Noop),
        b"HELP" => Ok(Command::Help),
        b"VRFY" => {
            if trim(rest).is_empty() {
                return Err(CommandError::Syntax("VRFY needs an argument"));
            }
            Ok(Command::Vrfy)
        }
        b"HELO" | b"EHLO" => Ok(Command::SmtpGreeting),
        b"STARTTLS" => Ok(Command::StartTls),
        _ => Err(CommandError::Unrecognized),
    }
}

fn no_arguments(rest: &[u8], command: Command, why: &'static str) -> Result<Command, CommandError> {
    if trim(rest).is_empty() {
        Ok(command)
    } else {
        Err(CommandError::Syntax(why))
    }
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

/// Strips a case-insensitive `prefix` such as `FROM:`; spaces after the colon are tolerated, as
/// many clients send them.
fn after_keyword<'a>(rest: &'a [u8], keyword: &[u8]) -> Option<&'a [u8]> {
    let rest = rest.trim_ascii_start();
    if rest.len() < keyword.len() || !rest[..keyword.len()].eq_ignore_ascii_case(keyword) {
        return None;
    }
    Some(rest[keyword.len()..].trim_ascii_start())
}

fn parse_mail(rest: &[u8]) -> Result<Command, CommandError> {
    let Some(rest) = after_keyword(rest, b"FROM:") else {
        return Err(CommandError::Syntax("expected MAIL FROM:<address>"));
    };
    let (reverse_path, params) = parse_path(rest, true)?;
    let mut size = None;
    let mut body = None;
    for (key, value) in parameters(params)? {
        match (key.to_ascii_uppercase().as_str(), value) {
            ("SIZE", Some(v)) => {
                size = Some(parse_number(&v, "SIZE needs a number of octets")?);
            }
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("7BIT") => {
                body = Some(BodyType::SevenBit);
            }
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("8BITMIME") => {
                body = Some(BodyType::EightBitMime);
            }
            _ => return Err(CommandError::UnsupportedParameter(key)),
        }
    }
    Ok(Command::Mail {
        reverse_path,
        size,
        body,
    })
}

fn parse_rcpt(rest: &[u8]) -> Result<Command, CommandError> {
    let Some(rest) = after_keyword(rest, b"TO:") else {
        return Err(CommandError::Syntax("expected RCPT TO:<address>"));
    };
    let (forward_path, params) = parse_path(rest, false)?;
    if forward_path.is_empty() {
        return Err(CommandError::BadAddress {
            sender: false,
            reason: "the recipient must not be empty",
        });
    }
    if let Some((key, _)) = parameters(params)?.into_iter().next() {
        return Err(CommandError::UnsupportedParameter(key));
    }
    Ok(Command::Rcpt { forward_path })
}

fn parse_bdat(rest: &[u8]) -> Result<Command, CommandError> {
    let mut words = rest
        .split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .map(|w| std::str::from_utf8(w).unwrap_or(""));
    let size = match words.next() {
        Some(w) => parse_number(w, "BDAT needs a chunk size")?,
        None => return Err(CommandError::Syntax("BDAT needs a chunk size")),
    };
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(CommandError::Syntax("expected BDAT <size> [LAST]")),
    };
    if words.next().is_some() {
        return Err(CommandError::Syntax("expected BDAT <size> [LAST]"));
    }
    Ok(Command::Bdat { size, last })
}

fn parse_number(s: &str, why: &'static str) -> Result<u64, CommandError> {
    if s.is_empty() || s.len() > MAX_SIZE_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CommandError::Syntax(why));
    }
    s.parse().map_err(|_| CommandError::Syntax(why))
}

/// `KEY[=VALUE]` parameters separated by spaces (RFC 5321 §4.1.2 `esmtp-param`).
fn parameters(s: &[u8]) -> Result<Vec<(String, Option<String>)>, CommandError> {
    let s = std::str::from_utf8(s).map_err(|_| CommandError::Syntax("parameters must be ASCII"))?;
    let mut out = Vec::new();
    for word in s.split(' ').filter(|w| !w.is_empty()) {
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (word, None),
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(CommandError::Syntax("malformed parameter"));
        }
        out.push((key.to_string(), value));
    }
    Ok(out)
}

/// Parses `<path>` at the start of `s` and returns its content (source route removed, RFC 5321
/// §4.1.2 / Appendix C) and what follows the `>`.
fn parse_path(s: &[u8], sender: bool) -> Result<(String, &[u8]), CommandError> {
    let bad = |reason| CommandError::BadAddress { sender, reason };
    if s.first() != Some(&b'<') {
        return Err(bad("the address must be enclosed in <>"));
    }
    let mut in_quotes = false;
    let mut escaped = false;
    let mut end = None;
    for (i, &b) in s.iter().enumerate().skip(1) {
        if b < 0x20 || b == 0x7f {
            return Err(bad("control characters in the address"));
        }
        if escaped {
            escaped = false;
        } else if in_quotes && b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            in_quotes = !in_quotes;
        } else if !in_quotes && b == b' ' {
            return Err(bad("spaces in the address"));
        } else if !in_quotes && b == b'>' {
            end = Some(i);
            break;
        }
    }
    let Some(end) = end else {
        return Err(bad("the address has no closing >"));
    };
    let mut inner = &s[1..end];
    if inner.len() > MAX_PATH {
        return Err(bad("the address is too long"));
    }
    if inner.first() == Some(&b'@') {
        // A source route `@a,@b:user@c`: obsolete, to be accepted and ignored.
        match inner.iter().position(|&b| b == b':') {
            Some(colon) => inner = &inner[colon + 1..],
            None => return Err(bad("malformed source route")),
        }
    }
    let text = std::str::from_utf8(inner).map_err(|_| bad("the address is not UTF-8"))?;
    if !text.is_empty() && address::Address::parse(text).is_none() {
        return Err(bad("malformed address"));
    }
    let rest = &s[end + 1..];
    if !rest.is_empty() && rest[0] != b' ' {
        return Err(CommandError::Syntax("expected a space after the address"));
    }
    Ok((text.to_string(), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver() -> Receiver {
        Receiver::new(Limits { max_line: 64 })
    }

    fn drain(rx: &mut Receiver) -> Vec<Event> {
        std::iter::from_fn(|| rx.next()).collect()
    }

    fn body(events: &[Event]) -> Vec<u8> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Body(b) => Some(b.to_vec()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    #[test]
    fn command_lines_parse() {
        let table: &[(&[u8], Result<Command, CommandError>)] = &[
            (
                b"LHLO mx.example.org",
                Ok(Command::Lhlo {
                    domain: "mx.example.org".into(),
                }),
            ),
            (
                b"lhlo [127.0.0.1]",
                Ok(Command::Lhlo {
                    domain: "[127.0.0.1]".into(),
                }),
            ),
            (b"LHLO", Err(CommandError::Syntax("LHLO needs a host name"))),
            (
                b"MAIL FROM:<a@example.org>",
                Ok(Command::Mail {
                    reverse_path: "a@example.org".into(),
                    size: None,
                    body: None,
                }),
            ),
            (
                b"mail from: <a@example.org> SIZE=1234 BODY=8BITMIME",
                Ok(Command::Mail {
                    reverse_path: "a@example.org".into(),
                    size: Some(1234),
                    body: Some(BodyType::EightBitMime),
                }),
            ),
            (
                b"MAIL FROM:<>",
                Ok(Command::Mail {
                    reverse_path: String::new(),
                    size: None,
                    body: None,
                }),
            ),
            (
                b"MAIL FROM:<@relay.example,@r2.example:a@example.org> BODY=7BIT",
                Ok(Command::Mail {
                    reverse_path: "a@example.org".into(),
                    size: None,
                    body: Some(BodyType::SevenBit),
                }),
            ),
            (
                b"MAIL FROM:<a@example.org> BODY=BINARYMIME",
                Err(CommandError::UnsupportedParameter("BODY".into())),
            ),
            (
                b"MAIL FROM:<a@example.org> SIZE=99999999999999999999999",
                Err(CommandError::Syntax("SIZE needs a number of octets")),
            ),
            (
                b"MAIL FROM:a@example.org",
                Err(CommandError::BadAddress {
                    sender: true,
                    reason: "the address must be enclosed in <>",
                }),
            ),
            (
                b"MAIL TO:<a@example.org>",
                Err(CommandError::Syntax("expected MAIL FROM:<address>")),
            ),
            (
                b"RCPT TO:<bob+lists@example.com>",
                Ok(Command::Rcpt {
                    forward_path: "bob+lists@example.com".into(),
                }),
            ),
            (
                b"RCPT TO:<\"john doe\"@example.com>",
                Ok(Command::Rcpt {
                    forward_path: "\"john doe\"@example.com".into(),
                }),
            ),
            (
                b"RCPT TO:<postmaster>",
                Ok(Command::Rcpt {
                    forward_path: "postmaster".into(),
                }),
            ),
            (
                b"RCPT TO:<>",
                Err(CommandError::BadAddress {
                    sender: false,
                    reason: "the recipient must not be empty",
                }),
            ),
            (
                b"RCPT TO:<a b@example.com>",
                Err(CommandError::BadAddress {
                    sender: false,
                    reason: "spaces in the address",
                }),
            ),
            (
                b"RCPT TO:<a@example.com",
                Err(CommandError::BadAddress {
                    sender: false,
                    reason: "the address has no closing >",
                }),
            ),
            (
                b"RCPT TO:<a@example.com> NOTIFY=NEVER",
                Err(CommandError::UnsupportedParameter("NOTIFY".into())),
            ),
            (
                b"RCPT TO:<a@@example.com>",
                Err(CommandError::BadAddress {
                    sender: false,
                    reason: "malformed address",
                }),
            ),
            (b"DATA", Ok(Command::Data)),
            (
                b"DATA now",
                Err(CommandError::Syntax("DATA takes no arguments")),
            ),
            (
                b"BDAT 1000",
                Ok(Command::Bdat {
                    size: 1000,
                    last: false,
                }),
            ),
            (
                b"bdat 0 last",
                Ok(Command::Bdat {
                    size: 0,
                    last: true,
                }),
            ),
            (
                b"BDAT -1",
                Err(CommandError::Syntax("BDAT needs a chunk size")),
            ),
            (
                b"BDAT 10 LAST MORE",
                Err(CommandError::Syntax("expected BDAT <size> [LAST]")),
            ),
            (b"RSET", Ok(Command::Rset)),
            (b"NOOP hello", Ok(Command::Noop)),
            (b"QUIT", Ok(Command::Quit)),
            (b"VRFY bob", Ok(Command::Vrfy)),
            (b"HELP", Ok(Command::Help)),
            (b"EHLO mx", Ok(Command::SmtpGreeting)),
            (b"HELO mx", Ok(Command::SmtpGreeting)),
            (b"STARTTLS", Ok(Command::StartTls)),
            (b"XYZZY", Err(CommandError::Unrecognized)),
            (b"", Err(CommandError::Unrecognized)),
        ];
        for (line, want) in table {
            assert_eq!(
                &parse_command(line),
                want,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn pipelined_commands_in_one_read_come_out_in_order() {
        let mut rx = receiver();
        rx.feed(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n");
        let events = drain(&mut rx);
        assert_eq!(events.len(), 4);
        assert!(matches!(events[0], Event::Command(Command::Mail { .. })));
        assert!(matches!(events[2], Event::Command(Command::Rcpt { .. })));
        assert_eq!(events[3], Event::Command(Command::Data));
    }

    #[test]
    fn a_command_split_across_reads_waits_for_its_line_end() {
        let mut rx = receiver();
        rx.feed(b"NO");
        assert_eq!(rx.next(), None);
        rx.feed(b"OP\r");
        assert_eq!(rx.next(), None);
        rx.feed(b"\nQUIT\n");
        assert_eq!(rx.next(), Some(Event::Command(Command::Noop)));
        assert_eq!(rx.next(), Some(Event::Command(Command::Quit)));
        assert_eq!(rx.next(), None);
    }

    #[test]
    fn an_over_long_line_is_dropped_and_reported_in_its_place() {
        let mut rx = receiver();
        rx.feed(b"NOOP\r\n");
        rx.feed(&[b'A'; 100]);
        assert_eq!(rx.next(), Some(Event::Command(Command::Noop)));
        assert_eq!(rx.next(), None);
        assert_eq!(rx.buffered(), 0, "the long line is not kept");
        rx.feed(&[b'A'; 1000]);
        assert_eq!(rx.buffered(), 0);
        rx.feed(b"AAA\r\nRSET\r\n");
        assert_eq!(rx.next(), Some(Event::Invalid(CommandError::LineTooLong)));
        assert_eq!(rx.next(), Some(Event::Command(Command::Rset)));
        // A long line that arrives complete in one read is refused too.
        let mut line = vec![b'N'; 80];
        line.extend_from_slice(b"\r\n");
        rx.feed(&line);
        assert_eq!(rx.next(), Some(Event::Invalid(CommandError::LineTooLong)));
        assert_eq!(rx.next(), None);
    }

    #[test]
    fn data_is_unstuffed_and_ends_at_the_dot_line() {
        let mut rx = receiver();
        rx.feed(b"DATA\r\n");
        assert_eq!(rx.next(), Some(Event::Command(Command::Data)));
        rx.start_data();
        rx.feed(b"Subject: x\r\n\r\n..leading dot\r\n.\r\nNOOP\r\n");
        let events = drain(&mut rx);
        assert_eq!(body(&events), b"Subject: x\r\n\r\n.leading dot\r\n");
        assert_eq!(
            &events[events.len() - 2..],
            &[Event::DataEnd, Event::Command(Command::Noop)]
        );
        assert!(rx.reading_commands());
    }

    #[test]
    fn the_end_marker_is_found_however_the_reads_split_it() {
        let wire: &[u8] = b"a\r\n..b\r\n.c\r\n\r\n.\r\nQUIT\r\n";
        let want: &[u8] = b"a\r\n.b\r\nc\r\n\r\n";
        for split in 0..=wire.len() {
            for second in split..=wire.len() {
                let mut rx = receiver();
                rx.start_data();
                let mut events = Vec::new();
                for piece in [&wire[..split], &wire[split..second], &wire[second..]] {
                    rx.feed(piece);
                    events.extend(drain(&mut rx));
                }
                assert_eq!(body(&events), want, "split at {split}/{second}");
                let tail: Vec<_> = events
                    .iter()
                    .filter(|e| !matches!(e, Event::Body(_)))
                    .collect();
                assert_eq!(
                    tail,
                    [&Event::DataEnd, &Event::Command(Command::Quit)],
                    "split at {split}/{second}"
                );
            }
        }
    }

    #[test]
    fn data_byte_by_byte() {
        let wire: &[u8] = b"x\r\n.\r\r\n.\r\n";
        let mut rx = receiver();
        rx.start_data();
        let mut events = Vec::new();
        for b in wire {
            rx.feed(std::slice::from_ref(b));
            events.extend(drain(&mut rx));
        }
        // ".\r\r\n" is a dot-stuffed line holding "\r".
        assert_eq!(body(&events), b"x\r\n\r\r\n");
        assert_eq!(events.last(), Some(&Event::DataEnd));
    }

    #[test]
    fn an_empty_message_and_lines_longer_than_the_command_limit() {
        let mut rx = receiver();
        rx.start_data();
        rx.feed(b".\r\n");
        assert_eq!(rx.next(), Some(Event::DataEnd));
        // Message lines are not bound by the command-line limit: they are streamed.
        rx.start_data();
        let mut wire = vec![b'z'; 10_000];
        wire.extend_from_slice(b"\r\n.\r\n");
        rx.feed(&wire);
        let events = drain(&mut rx);
        assert_eq!(body(&events).len(), 10_002);
        assert_eq!(events.last(), Some(&Event::DataEnd));
    }

    #[test]
    fn bdat_chunks_are_taken_verbatim_by_size() {
        let mut rx = receiver();
        rx.feed(b"BDAT 5\r\n.\r\nabBDAT 3 LAST\r\nxyzRSET\r\n");
        let events = drain(&mut rx);
        assert_eq!(
            events,
            vec![
                Event::Command(Command::Bdat {
                    size: 5,
                    last: false
                }),
                Event::Body(Bytes::from_static(b".\r\nab")),
                Event::ChunkEnd { last: false },
                Event::Command(Command::Bdat {
                    size: 3,
                    last: true
                }),
                Event::Body(Bytes::from_static(b"xyz")),
                Event::ChunkEnd { last: true },
                Event::Command(Command::Rset),
            ]
        );
    }

    #[test]
    fn a_bdat_chunk_split_across_reads() {
        let mut rx = receiver();
        rx.feed(b"BDAT 6 LAST\r\nab");
        assert_eq!(
            rx.next(),
            Some(Event::Command(Command::Bdat {
                size: 6,
                last: true
            }))
        );
        assert_eq!(rx.next(), Some(Event::Body(Bytes::from_static(b"ab"))));
        assert_eq!(rx.next(), None);
        rx.feed(b"cdefNOOP\r\n");
        assert_eq!(rx.next(), Some(Event::Body(Bytes::from_static(b"cdef"))));
        assert_eq!(rx.next(), Some(Event::ChunkEnd { last: true }));
        assert_eq!(rx.next(), Some(Event::Command(Command::Noop)));
        // BDAT 0 LAST ends at once.
        rx.feed(b"BDAT 0 LAST\r\n");
        assert_eq!(
            rx.next(),
            Some(Event::Command(Command::Bdat {
                size: 0,
                last: true
            }))
        );
        assert_eq!(rx.next(), Some(Event::ChunkEnd { last: true }));
        assert_eq!(rx.next(), None);
    }
}
