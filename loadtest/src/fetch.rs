//! Reading answers as a mail client must: the items of a FETCH response, the mailbox size a
//! session has been told (EXISTS and EXPUNGE in order), and the codes of SELECT and APPEND.

use crate::client::{Line, Response};
use std::collections::BTreeSet;

/// One data item of a FETCH response.
#[derive(Debug, PartialEq)]
pub enum Item<'a> {
    Number(u64),
    Atom(&'a str),
    /// A parenthesized list, as its text between the outer parentheses (literals inside it
    /// are left as `{n}` markers).
    List(&'a str),
    Quoted(String),
    Literal(&'a [u8]),
    Nil,
}

/// `* <seq> FETCH (<name> <value> ...)`.
#[derive(Debug)]
pub struct Fetch<'a> {
    pub seq: u32,
    /// Item names upper-cased, e.g. `UID`, `BODY[HEADER.FIELDS (FROM TO)]`.
    pub items: Vec<(String, Item<'a>)>,
}

impl<'a> Fetch<'a> {
    pub fn parse(line: &'a Line) -> Option<Fetch<'a>> {
        let rest = line.text.strip_prefix("* ")?;
        let (seq, rest) = rest.split_once(' ')?;
        let seq = seq.parse().ok()?;
        let list = rest.strip_prefix("FETCH (")?;
        let mut p = ItemParser {
            s: list,
            at: 0,
            literals: &line.literals,
            next_literal: 0,
        };
        let mut items = Vec::new();
        loop {
            p.skip_spaces();
            match p.peek() {
                None | Some(b')') => break,
                _ => {}
            }
            let name = p.name()?.to_ascii_uppercase();
            p.skip_spaces();
            let value = p.value()?;
            items.push((name, value));
        }
        Some(Fetch { seq, items })
    }

    pub fn get(&self, name: &str) -> Option<&Item<'a>> {
        self.items.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub fn number(&self, name: &str) -> Option<u64> {
        match self.get(name)? {
            Item::Number(n) => Some(*n),
            _ => None,
        }
    }

    pub fn uid(&self) -> Option<u32> {
        self.number("UID").and_then(|n| u32::try_from(n).ok())
    }

    /// FLAGS lower-cased, without `\recent` (a session property some servers report and
    /// others, IMAP4rev2 ones, do not): what a client compares across sessions.
    pub fn flags(&self) -> Option<BTreeSet<String>> {
        match self.get("FLAGS")? {
            Item::List(raw) => Some(flag_set(raw)),
            _ => None,
        }
    }

    /// The bytes of the first item whose name starts with `prefix` (e.g. `BODY[`): a literal or
    /// a quoted string; NIL is empty.
    pub fn bytes(&self, prefix: &str) -> Option<Vec<u8>> {
        let (_, v) = self.items.iter().find(|(n, _)| n.starts_with(prefix))?;
        match v {
            Item::Literal(b) => Some(b.to_vec()),
            Item::Quoted(s) => Some(s.as_bytes().to_vec()),
            Item::Nil => Some(Vec::new()),
            _ => None,
        }
    }
}

pub fn flag_set(raw: &str) -> BTreeSet<String> {
    raw.split_whitespace()
        .map(str::to_ascii_lowercase)
        .filter(|f| f != "\\recent")
        .collect()
}

struct ItemParser<'a> {
    s: &'a str,
    at: usize,
    literals: &'a [Vec<u8>],
    next_literal: usize,
}

impl<'a> ItemParser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.at).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.at += 1;
        }
    }

    /// An item name: an atom, with a `[section]` that may hold spaces and parentheses, and
    /// an optional `<origin>`.
    fn name(&mut self) -> Option<&'a str> {
        let start = self.at;
        let mut depth = 0;
        while let Some(c) = self.peek() {
            match c {
                b'[' => depth += 1,
                b']' => depth -= 1,
                b' ' | b')' | b'(' if depth == 0 => break,
                _ => {}
            }
            self.at += 1;
        }
        (self.at > start).then(|| &self.s[start..self.at])
    }

    fn value(&mut self) -> Option<Item<'a>> {
        match self.peek()? {
            b'(' => {
                let start = self.at + 1;
                let mut depth = 0;
                loop {
                    match self.peek()? {
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                return Some(Item::List(&self.s[start..self.at - 1]));
                            }
                        }
                        b'"' => {
                            self.quoted()?;
                            continue;
                        }
                        // A literal inside the list (a BODYSTRUCTURE string): skip its
                        // marker and keep the count of literals in step.
                        b'{' if self.literal().is_some() => continue,
                        _ => {}
                    }
                    self.at += 1;
                }
            }
            b'"' => self.quoted().map(Item::Quoted),
            b'{' | b'~' => self.literal().map(Item::Literal),
            _ => {
                let start = self.at;
                while let Some(c) = self.peek() {
                    if c == b' ' || c == b')' {
                        break;
                    }
                    self.at += 1;
                }
                let atom = &self.s[start..self.at];
                Some(if atom.eq_ignore_ascii_case("NIL") {
                    Item::Nil
                } else if let Ok(n) = atom.parse() {
                    Item::Number(n)
                } else {
                    Item::Atom(atom)
                })
            }
        }
    }

    fn quoted(&mut self) -> Option<String> {
        self.at += 1;
        let mut out = String::new();
        loop {
            let c = self.s[self.at..].chars().next()?;
            self.at += c.len_utf8();
            match c {
                '"' => return Some(out),
                '\\' => {
                    let e = self.s[self.at..].chars().next()?;
                    self.at += e.len_utf8();
                    out.push(e);
                }
                _ => out.push(c),
            }
        }
    }

    /// `{n}` or `~{n}` (RFC 3516 literal8): the marker the client left where the literal was.
    fn literal(&mut self) -> Option<&'a [u8]> {
        let rest = &self.s[self.at..];
        let rest = rest.strip_prefix('~').unwrap_or(rest);
        let inner = rest.strip_prefix('{')?;
        let close = inner.find('}')?;
        inner[..close].trim_end_matches('+').parse::<usize>().ok()?;
        let lit = self.literals.get(self.next_literal)?;
        self.next_literal += 1;
        self.at += self.s.len() - self.at - inner.len() + close + 1;
        Some(lit)
    }
}

/// What a session has been told of its mailbox, kept as a client must: the UID of each
/// message by sequence number (0 while not yet known). `* n EXISTS` adds messages, `* n
/// EXPUNGE` removes message n and renumbers the rest, a FETCH with a UID names one. What
/// contradicts that is a state error.
#[derive(Debug, Default)]
pub struct Told {
    uids: Vec<u32>,
    /// UIDs announced as expunged in this session.
    pub expunged: Vec<u32>,
}

impl Told {
    pub fn exists(&self) -> u32 {
        self.uids.len() as u32
    }

    /// Applies a response's untagged lines in order; returns what contradicted the session's
    /// knowledge.
    pub fn observe(&mut self, r: &Response) -> Vec<String> {
        let mut errors = Vec::new();
        for line in &r.untagged {
            let Some(rest) = line.text.strip_prefix("* ") else {
                continue;
            };
            let Some((n, what)) = rest.split_once(' ') else {
                continue;
            };
            let Ok(n) = n.parse::<usize>() else { continue };
            let len = self.uids.len();
            if what == "EXISTS" {
                if n < len {
                    errors.push(format!(
                        "EXISTS went back from {len} to {n} without EXPUNGE"
                    ));
                }
                self.uids.resize(n, 0);
            } else if what == "EXPUNGE" {
                if n == 0 || n > len {
                    errors.push(format!("EXPUNGE of message {n} of {len} the session knows"));
                    continue;
                }
                let uid = self.uids.remove(n - 1);
                if uid != 0 {
                    self.expunged.push(uid);
                }
            } else if what.starts_with("FETCH (") {
                let Some(uid) = Fetch::parse(line).and_then(|f| f.uid()) else {
                    continue;
                };
                if n == 0 || n > len {
                    errors.push(format!("FETCH of message {n} (UID {uid}) of {len} told"));
                    continue;
                }
                if let Some(e) = self.place(n - 1, uid) {
                    errors.push(e);
                }
            }
        }
        errors
    }

    /// Records that message `at` (0-based) has `uid`; UIDs must ascend with sequence numbers
    /// (RFC 3501 §2.3.1.1) and a message keeps its UID.
    fn place(&mut self, at: usize, uid: u32) -> Option<String> {
        let known = self.uids[at];
        if known != 0 && known != uid {
            return Some(format!("message {} was UID {known}, now UID {uid}", at + 1));
        }
        self.uids[at] = uid;
        let before = self.uids[..at].iter().rev().find(|&&u| u != 0);
        let after = self.uids[at + 1..].iter().find(|&&u| u != 0);
        match (before, after) {
            (Some(&b), _) if b >= uid => {
                Some(format!("UID {uid} at message {} after UID {b}", at + 1))
            }
            (_, Some(&a)) if a <= uid => {
                Some(format!("UID {uid} at message {} before UID {a}", at + 1))
            }
            _ => None,
        }
    }
}

/// The highest `* n EXISTS` in a response.
pub fn exists(r: &Response) -> Option<u32> {
    r.untagged
        .iter()
        .filter_map(|l| {
            l.text
                .strip_prefix("* ")?
                .strip_suffix(" EXISTS")?
                .parse()
                .ok()
        })
        .max()
}

/// The number of `* n EXPUNGE` lines.
pub fn expunges(r: &Response) -> usize {
    r.untagged
        .iter()
        .filter(|l| l.text.starts_with("* ") && l.text.ends_with(" EXPUNGE"))
        .count()
}

/// The number in a response code like `[UIDNEXT 42]` on an untagged OK line.
pub fn code_number(r: &Response, code: &str) -> Option<u32> {
    let needle = format!("[{code} ");
    r.untagged.iter().find_map(|l| {
        let rest = l.text.split(&needle).nth(1)?;
        rest.split(']').next()?.parse().ok()
    })
}

/// `[APPENDUID uidvalidity uid]` of RFC 4315 §3.
pub fn append_uid(r: &Response) -> Option<(u32, u32)> {
    let rest = r.status.split("[APPENDUID ").nth(1)?;
    let mut parts = rest.split([' ', ']']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The value of header field `name` in a header block, unfolded (RFC 5322 §2.2.3).
pub fn header_value(block: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(block);
    let mut value: Option<String> = None;
    for line in text.split("\r\n") {
        if let Some(v) = value.as_mut() {
            if line.starts_with([' ', '\t']) {
                v.push_str(line);
                continue;
            }
            break;
        }
        if let Some((field, rest)) = line.split_once(':')
            && field.eq_ignore_ascii_case(name)
        {
            value = Some(rest.trim_start().to_string());
        }
    }
    value.map(|v| v.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, literals: &[&[u8]]) -> Line {
        Line {
            text: text.to_string(),
            literals: literals.iter().map(|l| l.to_vec()).collect(),
        }
    }

    #[test]
    fn fetch_items_with_sections_lists_and_literals() {
        let l = line(
            "* 12 FETCH (UID 34 FLAGS (\\Seen $Work \\Recent) RFC822.SIZE 5234 \
             BODY[HEADER.FIELDS (FROM TO)] {9} BODYSTRUCTURE (\"text\" {3} NIL) BODY[] ~{2})",
            &[b"From: x\r\n", b"odd", b"hi"],
        );
        let f = Fetch::parse(&l).expect("parses");
        assert_eq!(f.seq, 12);
        assert_eq!(f.uid(), Some(34));
        assert_eq!(f.number("RFC822.SIZE"), Some(5234));
        let flags: Vec<String> = f.flags().unwrap().into_iter().collect();
        assert_eq!(flags, ["$work", "\\seen"]);
        assert_eq!(f.bytes("BODY[HEADER").unwrap(), b"From: x\r\n");
        assert!(matches!(f.get("BODYSTRUCTURE"), Some(Item::List(_))));
        // The literal inside BODYSTRUCTURE was counted, so BODY[] gets the third one.
        assert_eq!(f.bytes("BODY[]").unwrap(), b"hi");
    }

    fn response(lines: &[&str]) -> Response {
        Response {
            untagged: lines.iter().map(|l| line(l, &[])).collect(),
            status: "OK".into(),
        }
    }

    #[test]
    fn told_counts_and_flags_contradictions() {
        let mut told = Told::default();
        let r = response(&["* 5 EXISTS", "* 2 EXPUNGE", "* 3 EXISTS", "* 9 EXPUNGE"]);
        let errors = told.observe(&r);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(told.exists(), 3);
    }

    #[test]
    fn told_follows_uids_through_expunges() {
        let mut told = Told::default();
        let r = response(&[
            "* 4 EXISTS",
            // Out of order is fine (an unsolicited flag change first), as long as UIDs ascend
            // with sequence numbers.
            "* 3 FETCH (UID 30 FLAGS ())",
            "* 1 FETCH (UID 10 FLAGS ())",
            "* 2 FETCH (UID 20 FLAGS ())",
            "* 4 FETCH (UID 40 FLAGS ())",
            "* 2 EXPUNGE",
        ]);
        assert!(told.observe(&r).is_empty());
        assert_eq!(told.expunged, [20]);
        // Message 2 is now UID 30: another UID there contradicts it, as does a FETCH beyond.
        let r = response(&["* 2 FETCH (UID 31 FLAGS ())", "* 4 FETCH (UID 50 FLAGS ())"]);
        assert_eq!(told.observe(&r).len(), 2);
        let mut fresh = Told::default();
        let r = response(&["* 2 EXISTS", "* 1 FETCH (UID 9)", "* 2 FETCH (UID 5)"]);
        assert_eq!(fresh.observe(&r).len(), 1, "UIDs must ascend");
    }

    #[test]
    fn folded_header_values() {
        let block = b"Subject: a\r\n b\r\nMessage-ID: <1.2.x@y>\r\n\r\n";
        assert_eq!(header_value(block, "subject").as_deref(), Some("a b"));
        assert_eq!(
            header_value(block, "MESSAGE-ID").as_deref(),
            Some("<1.2.x@y>")
        );
    }
}
