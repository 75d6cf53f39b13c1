//! Just enough of the IMAP response grammar (RFC 3501 §9, RFC 9051 §9) to read untagged responses
//! exactly as a server sent them: values (atoms, quoted strings, literals, lists) and the
//! classification of untagged responses that the end-to-end tests check.

use std::collections::BTreeSet;
use yubin_loadtest::client::Line;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Atom(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
}

pub struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
    literals: &'a [Vec<u8>],
    next_literal: usize,
}

impl<'a> Parser<'a> {
    pub fn new(text: &'a str, literals: &'a [Vec<u8>]) -> Parser<'a> {
        Parser {
            text: text.as_bytes(),
            pos: 0,
            literals,
            next_literal: 0,
        }
    }

    /// Every value up to the end of the line.
    pub fn values(&mut self) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        loop {
            self.skip_spaces();
            if self.pos >= self.text.len() {
                return Ok(out);
            }
            out.push(self.value()?);
        }
    }

    fn skip_spaces(&mut self) {
        while self.text.get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
    }

    pub fn value(&mut self) -> Result<Value, String> {
        self.skip_spaces();
        match self.text.get(self.pos) {
            None => Err("unexpected end of line".into()),
            Some(b'(') => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_spaces();
                    match self.text.get(self.pos) {
                        Some(b')') => {
                            self.pos += 1;
                            return Ok(Value::List(items));
                        }
                        None => return Err("unclosed list".into()),
                        _ => items.push(self.value()?),
                    }
                }
            }
            Some(b'"') => {
                self.pos += 1;
                let mut out = Vec::new();
                loop {
                    match self.text.get(self.pos) {
                        None => return Err("unclosed quoted string".into()),
                        Some(b'\\') => {
                            out.push(*self.text.get(self.pos + 1).ok_or("bad escape")?);
                            self.pos += 2;
                        }
                        Some(b'"') => {
                            self.pos += 1;
                            return Ok(Value::Bytes(out));
                        }
                        Some(&c) => {
                            out.push(c);
                            self.pos += 1;
                        }
                    }
                }
            }
            Some(b'{') => {
                let end = self.text[self.pos..]
                    .iter()
                    .position(|&c| c == b'}')
                    .ok_or("unclosed literal size")?;
                self.pos += end + 1;
                let literal = self
                    .literals
                    .get(self.next_literal)
                    .ok_or("literal marker without literal")?;
                self.next_literal += 1;
                Ok(Value::Bytes(literal.clone()))
            }
            Some(_) => {
                // An atom; a `[...]` section (which may hold spaces and parentheses) belongs to it,
                // as in `BODY[HEADER.FIELDS (MESSAGE-ID)]`.
                let start = self.pos;
                let mut depth = 0u32;
                while let Some(&c) = self.text.get(self.pos) {
                    match c {
                        b'[' => depth += 1,
                        b']' => depth = depth.saturating_sub(1),
                        b' ' | b'(' | b')' if depth == 0 => break,
                        _ => {}
                    }
                    self.pos += 1;
                }
                Ok(Value::Atom(
                    String::from_utf8_lossy(&self.text[start..self.pos]).into_owned(),
                ))
            }
        }
    }
}

/// One untagged response, classified.
#[derive(Debug)]
pub enum Untagged {
    Exists(u32),
    Recent(u32),
    Expunge(u32),
    Fetch(u32, Vec<(String, Value)>),
    Search(Vec<u32>),
    /// `* OK|NO|BAD|BYE [code] text`
    Cond {
        kind: String,
        code: Option<String>,
    },
    /// Data this test does not model: FLAGS, LIST, STATUS, CAPABILITY, …
    Data(String),
}

pub fn parse_untagged(line: &Line) -> Result<Untagged, String> {
    let rest = line
        .text
        .strip_prefix("* ")
        .ok_or_else(|| format!("not an untagged response: {}", line.text))?;
    let (first, tail) = rest.split_once(' ').unwrap_or((rest, ""));
    if let Ok(n) = first.parse::<u32>() {
        let (kind, args) = tail.split_once(' ').unwrap_or((tail, ""));
        return match kind.to_ascii_uppercase().as_str() {
            "EXISTS" => Ok(Untagged::Exists(n)),
            "RECENT" => Ok(Untagged::Recent(n)),
            "EXPUNGE" => Ok(Untagged::Expunge(n)),
            "FETCH" => {
                let mut p = Parser::new(args, &line.literals);
                let Value::List(items) = p.value()? else {
                    return Err("FETCH without a list".into());
                };
                let mut attrs = Vec::new();
                let mut items = items.into_iter();
                while let Some(name) = items.next() {
                    let Value::Atom(name) = name else {
                        return Err(format!("FETCH item name is not an atom: {name:?}"));
                    };
                    let value = items
                        .next()
                        .ok_or_else(|| format!("FETCH item {name} without a value"))?;
                    attrs.push((name.to_ascii_uppercase(), value));
                }
                Ok(Untagged::Fetch(n, attrs))
            }
            other => Err(format!("unknown numbered response {other}")),
        };
    }
    let word = first.to_ascii_uppercase();
    match word.as_str() {
        "SEARCH" => tail
            .split_whitespace()
            .map(|t| {
                t.parse::<u32>()
                    .map_err(|_| format!("bad SEARCH number {t}"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Untagged::Search),
        "OK" | "NO" | "BAD" | "BYE" | "PREAUTH" => Ok(Untagged::Cond {
            kind: word,
            code: response_code(tail),
        }),
        _ => Ok(Untagged::Data(word)),
    }
}

/// The response code of a status text: `[APPENDUID 1 5] done` -> `APPENDUID 1 5`.
pub fn response_code(text: &str) -> Option<String> {
    let rest = text.strip_prefix('[')?;
    let end = rest.find(']')?;
    Some(rest[..end].to_string())
}

pub fn flags_of(value: &Value) -> Option<BTreeSet<String>> {
    let Value::List(items) = value else {
        return None;
    };
    items
        .iter()
        .map(|v| match v {
            Value::Atom(a) => Some(a.clone()),
            _ => None,
        })
        .collect()
}
