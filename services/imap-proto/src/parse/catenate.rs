//! CATENATE (RFC 4469 §5): the APPEND message built from parts,
//! `append-data =/ "CATENATE" SP "(" cat-part *(SP cat-part) ")"`,
//! `cat-part = text-literal / url`, `text-literal = "TEXT" SP literal`, `url = "URL" SP astring`.

use super::{Cursor, PResult};
use crate::command::{AppendBody, CatenatePart, Section};

/// A server-relative IMAP URL naming a message or a section of one (RFC 5092 §9
/// `imessagepart`), as CATENATE's URL parts use them (RFC 4469 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapUrl {
    /// `"/" enc-mailbox`, percent-decoded (UTF-8, RFC 5092 §3.1); `None` for `/;UID=n`, which
    /// names a message of the selected mailbox.
    pub mailbox: Option<String>,
    /// `;UIDVALIDITY=n`: the URL is stale unless the mailbox still has it.
    pub uid_validity: Option<u32>,
    pub uid: u32,
    /// `/;SECTION=x` (RFC 3501 `section-spec`); `None` for the whole message.
    pub section: Option<Section>,
    /// `/;PARTIAL=offset[.length]`: octets of the message or section (RFC 5092 §5).
    pub partial: Option<(u64, Option<u64>)>,
}

/// Parses a server-relative IMAP URL: `/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=x]
/// [/;PARTIAL=o[.l]]` or, for the selected mailbox, `/;UID=n...`. Parameter names are
/// case-insensitive (RFC 5092 §9). `None` for anything else (absolute `imap://` URLs, URLAUTH,
/// bad percent-encoding): CATENATE answers those with `BADURL`.
pub fn parse_imap_url(url: &[u8]) -> Option<ImapUrl> {
    let rest = url.strip_prefix(b"/")?;
    // enc-mailbox has no ';' (RFC 5092 `bchar`), so the first one starts a parameter.
    let semi = rest.iter().position(|&b| b == b';')?;
    let (enc_mailbox, mut params) = rest.split_at(semi);
    let mut uid_validity = None;
    let mailbox = if enc_mailbox.is_empty() {
        None
    } else if let Some(name) = enc_mailbox.strip_suffix(b"/") {
        Some(percent_decode_utf8(name)?)
    } else {
        // "/mailbox;UIDVALIDITY=n/;UID=n"
        let v;
        (v, params) = param(params, b";UIDVALIDITY=")?;
        uid_validity = Some(nz_number(v)?);
        params = params.strip_prefix(b"/")?;
        Some(percent_decode_utf8(enc_mailbox)?)
    };
    if mailbox.as_deref() == Some("") {
        return None;
    }
    let (v, mut params) = param(params, b";UID=")?;
    let uid = nz_number(v)?;
    let mut section = None;
    if let Some(p) = strip_prefix_ci(params, b"/;SECTION=") {
        let (v, r) = param(p, b"")?;
        params = r;
        section = Some(section_spec(percent_decode_utf8(v)?.as_bytes())?);
    }
    let mut partial = None;
    if let Some(p) = strip_prefix_ci(params, b"/;PARTIAL=") {
        let (v, r) = param(p, b"")?;
        params = r;
        let v = std::str::from_utf8(v).ok()?;
        partial = Some(match v.split_once('.') {
            Some((o, l)) => (
                number(o.as_bytes())?,
                Some(u64::from(nz_number(l.as_bytes())?)),
            ),
            None => (number(v.as_bytes())?, None),
        });
    }
    if !params.is_empty() {
        return None;
    }
    Some(ImapUrl {
        mailbox,
        uid_validity,
        uid,
        section,
        partial,
    })
}

fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

/// Strips `name` (case-insensitively) and returns its value, up to the next `/`, and the rest.
fn param<'a>(s: &'a [u8], name: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let s = strip_prefix_ci(s, name)?;
    let end = s.iter().position(|&b| b == b'/').unwrap_or(s.len());
    let (v, rest) = s.split_at(end);
    (!v.is_empty()).then_some((v, rest))
}

fn number(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn nz_number(v: &[u8]) -> Option<u32> {
    if v.first() == Some(&b'0') {
        return None;
    }
    u32::try_from(number(v)?).ok().filter(|&n| n > 0)
}

/// RFC 3986 §2.1 percent-decoding; the result must be UTF-8 (RFC 5092 §3.1).
fn percent_decode_utf8(s: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hex = std::str::from_utf8(s.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A `section-spec` (RFC 3501 §9) without brackets, as in `;SECTION=` (RFC 5092 §9).
fn section_spec(spec: &[u8]) -> Option<Section> {
    let mut text = Vec::with_capacity(spec.len() + 2);
    text.push(b'[');
    text.extend_from_slice(spec);
    text.push(b']');
    let limits = crate::receiver::Limits {
        max_nesting: 4,
        ..crate::receiver::Limits::default()
    };
    let mut c = Cursor::new(&text, &[], &limits, false);
    let section = super::fetch::section(&mut c).ok()?;
    c.at_end().then_some(section)
}

/// RFC 4469 sets no bound on the parts of one message; this server does (RFC 9051 §7.1 `LIMIT`).
pub(crate) const TOO_MANY_PARTS: &str = "[LIMIT] too many CATENATE parts";

/// Parses `"(" cat-part *(SP cat-part) ")"` after the `CATENATE SP`.
pub(super) fn catenate(c: &mut Cursor<'_>) -> PResult<AppendBody> {
    c.expect(b'(', "expected ( after CATENATE")?;
    let mut parts = Vec::new();
    loop {
        // Each part may be a literal to read or a URL to resolve with store lookups; checked
        // before the part so the receiver refuses the command before its literal arrives.
        if parts.len() >= c.max_catenate_parts {
            return c.fail(TOO_MANY_PARTS);
        }
        if c.eat_keyword("TEXT") {
            c.sp()?;
            // RFC 4469 §5 allows only `literal` here (no literal8). A TEXT literal may be as
            // large as a message, so the receiver may stream it like one.
            let (text, _) = c.literal(false).map_err(|mut e| {
                e.pending_message = e.incomplete;
                e
            })?;
            parts.push(CatenatePart::Text(text));
        } else if c.eat_keyword("URL") {
            c.sp()?;
            parts.push(CatenatePart::Url(c.astring()?));
        } else {
            return c.fail("expected TEXT or URL");
        }
        if c.eat(b')') {
            return Ok(AppendBody::Catenate(parts));
        }
        c.sp()?;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::command::*;
    use crate::receiver::Received;
    use bytes::Bytes;

    fn text(b: &'static [u8]) -> CatenatePart {
        CatenatePart::Text(AppendBody::Inline(Bytes::from_static(b)))
    }

    fn url(u: &str) -> CatenatePart {
        CatenatePart::Url(u.as_bytes().to_vec())
    }

    fn one(mailbox: &str, flags: Vec<String>, parts: Vec<CatenatePart>) -> CommandBody {
        CommandBody::Append {
            mailbox: mailbox.as_bytes().to_vec(),
            messages: vec![AppendMessage {
                flags,
                internal_date: None,
                message: AppendBody::Catenate(parts),
                binary: false,
            }],
        }
    }

    #[test]
    fn rfc4469_example() {
        // RFC 4469 §5's example, literals synchronizing.
        let input: &[u8] = b"A003 APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE \
            (URL \"/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER\" \
            TEXT {42}\r\n\r\n--------------030308070208000400050907\r\n \
            URL \"/Drafts;UIDVALIDITY=385759045/;UID=20/;section=1.MIME\" \
            URL \"/Drafts;UIDVALIDITY=385759045/;UID=20/;section=1\" \
            TEXT {42}\r\n\r\n--------------030308070208000400050907\r\n \
            URL \"/Drafts;UIDVALIDITY=385759045/;UID=30\" \
            TEXT {44}\r\n\r\n--------------030308070208000400050907--\r\n)\r\n";
        assert_eq!(
            wire_body(input),
            one(
                "Drafts",
                vec!["\\Seen".into(), "\\Draft".into(), "$MDNSent".into()],
                vec![
                    url("/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER"),
                    text(b"\r\n--------------030308070208000400050907\r\n"),
                    url("/Drafts;UIDVALIDITY=385759045/;UID=20/;section=1.MIME"),
                    url("/Drafts;UIDVALIDITY=385759045/;UID=20/;section=1"),
                    text(b"\r\n--------------030308070208000400050907\r\n"),
                    url("/Drafts;UIDVALIDITY=385759045/;UID=30"),
                    text(b"\r\n--------------030308070208000400050907--\r\n"),
                ],
            )
        );
    }

    #[test]
    fn catenate_shapes() {
        let table: Vec<(&[u8], CommandBody)> = vec![
            (
                b"a append INBOX catenate (text {2+}\r\nhi)\r\n",
                one("INBOX", vec![], vec![text(b"hi")]),
            ),
            (
                b"a APPEND INBOX CATENATE (URL /;UID=3)\r\n",
                one("INBOX", vec![], vec![url("/;UID=3")]),
            ),
            // MULTIAPPEND (RFC 3502) with a literal message then a catenated one.
            (
                b"a APPEND INBOX {1+}\r\nx CATENATE (URL \"/;UID=1\" TEXT {1+}\r\ny)\r\n",
                CommandBody::Append {
                    mailbox: b"INBOX".to_vec(),
                    messages: vec![
                        AppendMessage {
                            flags: vec![],
                            internal_date: None,
                            message: AppendBody::Inline(Bytes::from_static(b"x")),
                            binary: false,
                        },
                        AppendMessage {
                            flags: vec![],
                            internal_date: None,
                            message: AppendBody::Catenate(vec![url("/;UID=1"), text(b"y")]),
                            binary: false,
                        },
                    ],
                },
            ),
        ];
        for (input, expected) in table {
            assert_eq!(
                wire_body(input),
                expected,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn imap_urls() {
        use super::{ImapUrl, parse_imap_url};
        let u = |mailbox: Option<&str>, uid_validity, uid, section, partial| ImapUrl {
            mailbox: mailbox.map(str::to_string),
            uid_validity,
            uid,
            section,
            partial,
        };
        let part = |p: &[u32], text| Section {
            part: p.to_vec(),
            text,
        };
        let table: Vec<(&str, ImapUrl)> = vec![
            (
                "/Drafts;UIDVALIDITY=385759045/;UID=20/;section=1.MIME",
                u(
                    Some("Drafts"),
                    Some(385759045),
                    20,
                    Some(part(&[1], Some(SectionText::Mime))),
                    None,
                ),
            ),
            ("/INBOX/;UID=7", u(Some("INBOX"), None, 7, None, None)),
            ("/;UID=3", u(None, None, 3, None, None)),
            (
                "/;uid=3/;SECTION=HEADER",
                u(
                    None,
                    None,
                    3,
                    Some(part(&[], Some(SectionText::Header))),
                    None,
                ),
            ),
            (
                "/Caf%C3%A9/Archiv/;UID=1/;SECTION=2.1.TEXT/;PARTIAL=10.5",
                u(
                    Some("Café/Archiv"),
                    None,
                    1,
                    Some(part(&[2, 1], Some(SectionText::Text))),
                    Some((10, Some(5))),
                ),
            ),
            (
                "/a%20b;UIDVALIDITY=9/;UID=4/;SECTION=HEADER.FIELDS%20(From%20To)/;PARTIAL=0",
                u(
                    Some("a b"),
                    Some(9),
                    4,
                    Some(part(
                        &[],
                        Some(SectionText::HeaderFields(vec!["From".into(), "To".into()])),
                    )),
                    Some((0, None)),
                ),
            ),
        ];
        for (url, expected) in table {
            assert_eq!(parse_imap_url(url.as_bytes()), Some(expected), "{url}");
        }
        for bad in [
            "",
            "imap://alice@example.org/INBOX/;UID=1",
            "INBOX/;UID=1",
            "/INBOX",
            "/INBOX/;UID=0",
            "/INBOX/;UID=",
            "/INBOX/;UID=x",
            "/INBOX/;UID=4294967296",
            "/INBOX;UIDVALIDITY=0/;UID=1",
            "/INBOX;UIDVALIDITY=1;UID=1",
            "/INBOX/;UID=1/;SECTION=BOGUS",
            "/INBOX/;UID=1/;SECTION=1.",
            "/INBOX/;UID=1/;PARTIAL=1.0",
            "/INBOX/;UID=1/;URLAUTH=anonymous",
            "/INBOX/;UID=1/",
            "/%FF/;UID=1",
            "/a%2/;UID=1",
            "//;UID=1",
        ] {
            assert_eq!(parse_imap_url(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn catenate_errors() {
        for input in [
            &b"a APPEND INBOX CATENATE ()\r\n"[..],
            b"a APPEND INBOX CATENATE (URL)\r\n",
            b"a APPEND INBOX CATENATE (FOO \"x\")\r\n",
            b"a APPEND INBOX CATENATE (URL \"/;UID=1\"\r\n",
            b"a APPEND INBOX CATENATE (TEXT \"quoted\")\r\n",
            b"a APPEND INBOX CATENATE (TEXT ~{1+}\r\nx)\r\n",
            b"a APPEND INBOX CATENATE URL \"/;UID=1\"\r\n",
        ] {
            let out = wire(input);
            assert!(
                matches!(out.last(), Some(Received::Error { .. })),
                "{:?}: {out:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
