//! Helpers shared by the parser table tests.

use super::*;
use crate::receiver::{Limits, Received, Receiver};

impl<'a> Cursor<'a> {
    pub(crate) fn for_test(text: &'a [u8], lits: &'a [Lit]) -> Cursor<'a> {
        Cursor::new(text, lits, &Limits::default(), false)
    }
}

pub(crate) fn cursor(text: &[u8]) -> Cursor<'_> {
    Cursor::for_test(text, &[])
}

/// Parses one literal-free command line (no CRLF).
pub(crate) fn parse_ok(line: &str) -> Command {
    match parse_command(line.as_bytes(), &[], &Limits::default(), false) {
        Ok(c) => c,
        Err((_, e)) => panic!("{line:?}: {}", e.text),
    }
}

pub(crate) fn parse_err(line: &str) -> (Option<String>, ParseError) {
    match parse_command(line.as_bytes(), &[], &Limits::default(), false) {
        Ok(c) => panic!("{line:?} parsed as {c:?}"),
        Err(e) => e,
    }
}

/// The body of a literal-free command line.
pub(crate) fn body(line: &str) -> CommandBody {
    parse_ok(line).body
}

/// Runs full wire bytes (CRLFs, literals) through a receiver with default limits and returns
/// everything it produced except `NeedMoreData`.
pub(crate) fn wire(input: &[u8]) -> Vec<Received> {
    let mut r = Receiver::new(Limits::default());
    r.feed(input);
    let mut out = Vec::new();
    loop {
        match r.next() {
            Received::NeedMoreData => return out,
            other => out.push(other),
        }
    }
}

/// The single command in `input`, skipping continuation requests.
pub(crate) fn wire_body(input: &[u8]) -> CommandBody {
    let out = wire(input);
    let mut commands = out.into_iter().filter_map(|r| match r {
        Received::Command(c) => Some(c.body),
        Received::NeedContinuation { .. } => None,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
    });
    let first = commands.next();
    assert!(commands.next().is_none());
    first.unwrap_or_else(|| panic!("no command from {:?}", String::from_utf8_lossy(input)))
}
