//! ENVELOPE (RFC 3501 §7.4.2, RFC 9051 §7.5.2) from raw header values.
//!
//! The envelope carries header values as sent: encoded-words (RFC 2047) stay encoded, only the
//! folding is undone. mail-parser decodes addresses, so address lists are parsed here from the raw
//! bytes with a small RFC 5322 §3.4 tokenizer that is deliberately lenient: any input yields some
//! well-formed envelope.

use crate::header::RawHeaders;
use yubin_imap_proto::encode::nstring;

/// One `address` of the envelope: `(name adl mailbox host)`; group start/end markers use NIL
/// fields as RFC 3501 §7.4.2 prescribes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvAddress {
    pub name: Option<String>,
    pub adl: Option<String>,
    pub mailbox: Option<String>,
    pub host: Option<String>,
}

impl EnvAddress {
    fn group_start(name: String) -> EnvAddress {
        EnvAddress {
            name: None,
            adl: None,
            mailbox: Some(name),
            host: None,
        }
    }

    fn group_end() -> EnvAddress {
        EnvAddress {
            name: None,
            adl: None,
            mailbox: None,
            host: None,
        }
    }
}

/// Writes the ENVELOPE value of a message whose (top-level) header fields are `headers`.
pub(crate) fn write_envelope(out: &mut Vec<u8>, headers: &RawHeaders) {
    out.push(b'(');
    write_nstring(out, headers.first("date"));
    out.push(b' ');
    write_nstring(out, headers.first("subject"));
    let from = headers.first("from").map(|v| parse_address_list(&v));
    // RFC 3501 §7.4.2: "If the Sender or Reply-To lines are absent in the [RFC-2822] header, or
    // are present but empty, the server sets the corresponding member of the envelope to be the
    // same value as the from member".
    let or_from = |name: &str| {
        headers
            .first(name)
            .map(|v| parse_address_list(&v))
            .filter(|l| !l.is_empty())
            .or_else(|| from.clone())
    };
    let sender = or_from("sender");
    let reply_to = or_from("reply-to");
    for list in [
        from.clone(),
        sender,
        reply_to,
        headers.first("to").map(|v| parse_address_list(&v)),
        headers.first("cc").map(|v| parse_address_list(&v)),
        headers.first("bcc").map(|v| parse_address_list(&v)),
    ] {
        out.push(b' ');
        write_address_list(out, list.as_deref());
    }
    out.push(b' ');
    write_nstring(out, headers.first("in-reply-to"));
    out.push(b' ');
    write_nstring(out, headers.first("message-id"));
    out.push(b')');
}

fn write_nstring(out: &mut Vec<u8>, s: Option<String>) {
    nstring(out, s.as_deref().map(str::as_bytes));
}

fn write_address_list(out: &mut Vec<u8>, list: Option<&[EnvAddress]>) {
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        out.extend_from_slice(b"NIL");
        return;
    };
    out.push(b'(');
    for a in list {
        out.push(b'(');
        write_nstring(out, a.name.clone());
        out.push(b' ');
        write_nstring(out, a.adl.clone());
        out.push(b' ');
        write_nstring(out, a.mailbox.clone());
        out.push(b' ');
        write_nstring(out, a.host.clone());
        out.push(b')');
    }
    out.push(b')');
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// An atom or dot-atom (dots are kept inside), or a domain literal with its brackets.
    Atom(String),
    /// The content of a quoted-string, quoted-pairs resolved.
    Quoted(String),
    /// The content of a comment, nested parentheses kept.
    Comment(String),
    Special(char),
}

fn tokenize(s: &str) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {}
            '"' => {
                let mut v = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                v.push(n);
                            }
                        }
                        '\r' | '\n' => {}
                        _ => v.push(c),
                    }
                }
                toks.push(Tok::Quoted(v));
            }
            '(' => {
                let mut depth = 1;
                let mut v = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        '\\' => {
                            if let Some(n) = chars.next() {
                                v.push(n);
                            }
                            continue;
                        }
                        _ => {}
                    }
                    v.push(c);
                }
                toks.push(Tok::Comment(v.trim().to_string()));
            }
            '[' => {
                let mut v = String::from("[");
                for c in chars.by_ref() {
                    v.push(c);
                    if c == ']' {
                        break;
                    }
                }
                toks.push(Tok::Atom(v));
            }
            '<' | '>' | '@' | ',' | ':' | ';' => toks.push(Tok::Special(c)),
            _ => {
                let mut v = String::from(c);
                while let Some(&n) = chars.peek() {
                    if matches!(
                        n,
                        ' ' | '\t'
                            | '\r'
                            | '\n'
                            | '"'
                            | '('
                            | ')'
                            | '['
                            | '<'
                            | '>'
                            | '@'
                            | ','
                            | ':'
                            | ';'
                    ) {
                        break;
                    }
                    v.push(n);
                    chars.next();
                }
                toks.push(Tok::Atom(v));
            }
        }
    }
    toks
}

/// Parses an RFC 5322 `address-list` (mailboxes and groups) into envelope addresses.
pub(crate) fn parse_address_list(value: &str) -> Vec<EnvAddress> {
    let toks = tokenize(value);
    let mut p = Parser { toks, pos: 0 };
    let mut out = Vec::new();
    let mut in_group = false;
    while p.pos < p.toks.len() {
        match p.parse_mailbox_or_group_start() {
            Item::GroupStart(name) => {
                if in_group {
                    // Groups do not nest (RFC 5322 §3.4); close the open one first.
                    out.push(EnvAddress::group_end());
                }
                out.push(EnvAddress::group_start(name));
                in_group = true;
            }
            // `<>` and similar debris carry no address: an envelope entry for it would only
            // confuse clients.
            Item::Mailbox(a)
                if a.name.is_none()
                    && a.mailbox.as_deref().is_none_or(str::is_empty)
                    && a.host.as_deref().is_none_or(str::is_empty) => {}
            Item::Mailbox(a) => out.push(a),
            Item::Nothing => {}
        }
        // Consume the separator (or a stray special) so every round makes progress.
        match p.peek() {
            Some(Tok::Special(';')) if in_group => {
                out.push(EnvAddress::group_end());
                in_group = false;
                p.pos += 1;
            }
            Some(Tok::Special(_)) => p.pos += 1,
            _ => {}
        }
    }
    if in_group {
        out.push(EnvAddress::group_end());
    }
    out
}

enum Item {
    GroupStart(String),
    Mailbox(EnvAddress),
    Nothing,
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    /// Reads words up to a special; returns them with the last comment seen.
    fn words(&mut self) -> (Vec<Tok>, Option<String>) {
        let mut words = Vec::new();
        let mut comment = None;
        while let Some(t) = self.peek() {
            match t {
                Tok::Atom(_) | Tok::Quoted(_) => words.push(t.clone()),
                Tok::Comment(c) => {
                    if !c.is_empty() {
                        comment = Some(c.clone());
                    }
                }
                Tok::Special(_) => break,
            }
            self.pos += 1;
        }
        (words, comment)
    }

    /// Parses one mailbox (name-addr or addr-spec) or a group's `display-name ":"`, stopping
    /// before the `,` or `;` that ends it.
    fn parse_mailbox_or_group_start(&mut self) -> Item {
        let (phrase, mut comment) = self.words();
        match self.peek() {
            Some(Tok::Special(':')) => {
                self.pos += 1;
                Item::GroupStart(phrase_text(&phrase))
            }
            Some(Tok::Special('<')) => {
                self.pos += 1;
                let mut adl = None;
                if matches!(self.peek(), Some(Tok::Special('@'))) {
                    // Obsolete route (RFC 5322 §4.4): "@a,@b:" becomes the at-domain-list.
                    let mut route = String::new();
                    while let Some(t) = self.peek() {
                        match t {
                            Tok::Special(':') => {
                                self.pos += 1;
                                break;
                            }
                            Tok::Special('>') => break,
                            Tok::Special(c) => route.push(*c),
                            Tok::Atom(a) => route.push_str(a),
                            Tok::Quoted(q) => route.push_str(q),
                            Tok::Comment(_) => {}
                        }
                        self.pos += 1;
                    }
                    adl = Some(route);
                }
                let (mailbox, host) = self.addr_spec();
                // Skip to the closing bracket, and take a trailing comment as a name fallback.
                while let Some(t) = self.peek() {
                    match t {
                        Tok::Special('>') => {
                            self.pos += 1;
                            break;
                        }
                        Tok::Special(',') | Tok::Special(';') => break,
                        _ => self.pos += 1,
                    }
                }
                let (_, trailing) = self.words();
                if comment.is_none() {
                    comment = trailing;
                }
                let name = if phrase.is_empty() {
                    comment
                } else {
                    Some(phrase_text(&phrase))
                };
                Item::Mailbox(EnvAddress {
                    name,
                    adl,
                    mailbox: Some(mailbox),
                    host: Some(host),
                })
            }
            Some(Tok::Special('@')) => {
                self.pos += 1;
                let local = local_text(&phrase);
                let (domain, trailing) = self.words();
                let host = domain_text(&domain);
                Item::Mailbox(EnvAddress {
                    name: comment.or(trailing),
                    adl: None,
                    mailbox: Some(local),
                    host: Some(host),
                })
            }
            _ => {
                if phrase.is_empty() {
                    Item::Nothing
                } else {
                    // A bare local part with no domain: malformed, but keep what was sent.
                    // The host is an empty string, never NIL, which would mean a group marker.
                    Item::Mailbox(EnvAddress {
                        name: comment,
                        adl: None,
                        mailbox: Some(local_text(&phrase)),
                        host: Some(String::new()),
                    })
                }
            }
        }
    }

    /// `local-part "@" domain` inside angle brackets.
    fn addr_spec(&mut self) -> (String, String) {
        let (local, _) = self.words();
        let local = local_text(&local);
        if matches!(self.peek(), Some(Tok::Special('@'))) {
            self.pos += 1;
            let (domain, _) = self.words();
            (local, domain_text(&domain))
        } else {
            (local, String::new())
        }
    }
}

/// A display name: words joined by single spaces, quoted-strings unquoted.
fn phrase_text(words: &[Tok]) -> String {
    let parts: Vec<&str> = words
        .iter()
        .filter_map(|t| match t {
            Tok::Atom(a) | Tok::Quoted(a) => Some(a.as_str()),
            _ => None,
        })
        .collect();
    parts.join(" ")
}

/// A local part: atoms concatenated, quoted-strings kept quoted so the address stays usable.
fn local_text(words: &[Tok]) -> String {
    let mut s = String::new();
    for t in words {
        match t {
            Tok::Atom(a) => s.push_str(a),
            Tok::Quoted(q) => {
                s.push('"');
                for c in q.chars() {
                    if c == '"' || c == '\\' {
                        s.push('\\');
                    }
                    s.push(c);
                }
                s.push('"');
            }
            _ => {}
        }
    }
    s
}

fn domain_text(words: &[Tok]) -> String {
    let mut s = String::new();
    for t in words {
        if let Tok::Atom(a) | Tok::Quoted(a) = t {
            s.push_str(a);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(name: Option<&str>, mailbox: &str, host: &str) -> EnvAddress {
        EnvAddress {
            name: name.map(String::from),
            adl: None,
            mailbox: Some(mailbox.into()),
            host: Some(host.into()),
        }
    }

    #[test]
    fn parses_common_forms() {
        assert_eq!(
            parse_address_list(
                "\"Doe, John\" <john.doe@example.com>, jane@example.org (Jane), =?UTF-8?Q?Ren=C3=A9?= <r@x.fr>"
            ),
            vec![
                addr(Some("Doe, John"), "john.doe", "example.com"),
                addr(Some("Jane"), "jane", "example.org"),
                addr(Some("=?UTF-8?Q?Ren=C3=A9?="), "r", "x.fr"),
            ]
        );
    }

    #[test]
    fn parses_groups_and_routes() {
        assert_eq!(
            parse_address_list("undisclosed-recipients:;"),
            vec![
                EnvAddress::group_start("undisclosed-recipients".into()),
                EnvAddress::group_end()
            ]
        );
        assert_eq!(
            parse_address_list("Team: a@x.org, B <b@y.org>; c@z.org"),
            vec![
                EnvAddress::group_start("Team".into()),
                addr(None, "a", "x.org"),
                addr(Some("B"), "b", "y.org"),
                EnvAddress::group_end(),
                addr(None, "c", "z.org"),
            ]
        );
        let routed = parse_address_list("<@relay.example,@r2.example:user@host.example>");
        assert_eq!(routed[0].adl.as_deref(), Some("@relay.example,@r2.example"));
        assert_eq!(routed[0].mailbox.as_deref(), Some("user"));
    }

    #[test]
    fn survives_garbage() {
        for s in ["<<<", "@@,;:", "\"unterminated", "(((", "a@", "<>", ""] {
            let _ = parse_address_list(s);
        }
        assert_eq!(parse_address_list("<>"), vec![]);
        assert_eq!(parse_address_list("<<<broken@@"), vec![]);
    }
}
