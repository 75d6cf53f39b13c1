//! The incremental command receiver (API contract; see the helper brief).

use crate::command::Command;

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
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_line: 64 * 1024,
            max_literal: 64 * 1024 * 1024,
            max_command: 80 * 1024 * 1024,
            max_nesting: 64,
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

/// Receives commands from a byte stream.
#[derive(Debug)]
pub struct Receiver {
    limits: Limits,
}

impl Receiver {
    pub fn new(limits: Limits) -> Receiver {
        Receiver { limits }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Appends bytes received from the client.
    pub fn feed(&mut self, bytes: &[u8]) {
        let _ = bytes;
        todo!("parser")
    }

    /// Advances; call repeatedly until `NeedMoreData`.
    pub fn next(&mut self) -> Received {
        todo!("parser")
    }

    /// Reads the line that ends an IDLE (RFC 2177): `Some(true)` for `DONE`, `Some(false)` for any
    /// other complete line, `None` if no full line is buffered yet.
    pub fn take_idle_done(&mut self) -> Option<bool> {
        todo!("parser")
    }

    /// Reads one line of a SASL exchange (RFC 3501 §6.2.2): the base64 text without CRLF, or
    /// `None` if no full line is buffered yet. `*` alone means the client cancelled.
    pub fn take_line(&mut self) -> Option<Vec<u8>> {
        todo!("parser")
    }

    /// Bytes buffered but not yet consumed (to hand over unread bytes, e.g. none may remain after
    /// STARTTLS per RFC 3501 §6.2.1).
    pub fn buffered(&self) -> usize {
        todo!("parser")
    }
}
