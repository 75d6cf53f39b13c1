//! The part tree (byte ranges for sections) and BODY/BODYSTRUCTURE (RFC 3501 §7.4.2, RFC 9051
//! §7.5.2) of a parsed message.
//!
//! mail-parser decides the tree shape (multipart children, encapsulated messages) and gives the
//! offsets; the values written in BODYSTRUCTURE come from the raw MIME headers, so types, subtypes
//! and parameters appear as sent.

use crate::envelope::write_envelope;
use crate::header::RawHeaders;
use crate::{Part, PartKind, TransferEncoding};
use mail_parser::{Message, MessagePart, PartType};
use std::borrow::Cow;
use yubin_imap_proto::encode::{nstring, string};

/// What one message contributes: its part tree and the three precomputed FETCH values.
pub(crate) struct BuiltMessage {
    pub root: Part,
    pub envelope: Vec<u8>,
    pub body_structure: Vec<u8>,
    pub body: Vec<u8>,
}

/// Builds the summary pieces of `msg`. `raw` is the buffer its offsets refer to; `addressable` is
/// false for a message mail-parser decoded out of a base64/QP-encoded message/rfc822 part, whose
/// offsets do not point into the stored message (its parts then cannot be fetched by section).
pub(crate) fn build_message(
    msg: &Message<'_>,
    raw: &[u8],
    addressable: bool,
    depth: usize,
) -> BuiltMessage {
    let Some(root) = msg.parts.first() else {
        return empty_message(raw.len() as u64);
    };
    let headers = RawHeaders::of_part(root, raw);
    let mut envelope = Vec::new();
    write_envelope(&mut envelope, &headers);
    let mut body_structure = Vec::new();
    let mut body = Vec::new();
    let mut visited = vec![false; msg.parts.len()];
    let root_part = build_part(
        msg,
        0,
        raw,
        addressable,
        false,
        &mut body_structure,
        &mut body,
        depth,
        &mut visited,
    );
    BuiltMessage {
        root: root_part,
        envelope,
        body_structure,
        body,
    }
}

/// A message mail-parser could not parse at all: no header, the whole input is a text body.
pub(crate) fn empty_message(len: u64) -> BuiltMessage {
    let mut envelope = Vec::new();
    write_envelope(&mut envelope, &RawHeaders { fields: Vec::new() });
    let lines = 0;
    let basic =
        format!("(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" {len} {lines}");
    BuiltMessage {
        root: Part {
            header: [0, 0],
            content: [0, len],
            encoding: TransferEncoding::SevenBit,
            kind: PartKind::Leaf,
        },
        envelope,
        body_structure: format!("{basic} NIL NIL NIL NIL)").into_bytes(),
        body: format!("{basic})").into_bytes(),
    }
}

/// Nesting deeper than this is summarized as an opaque leaf. Real mail nests a handful of levels;
/// the bound keeps our recursion and the serialized summary (serde_json refuses documents nested
/// more than 128 levels, and each MIME level costs up to three) bounded whatever the input.
const MAX_DEPTH: usize = 32;

#[allow(clippy::too_many_arguments)]
fn build_part(
    msg: &Message<'_>,
    id: usize,
    raw: &[u8],
    addressable: bool,
    in_digest: bool,
    bs: &mut Vec<u8>,
    body: &mut Vec<u8>,
    depth: usize,
    visited: &mut [bool],
) -> Part {
    let Some(part) = msg.parts.get(id) else {
        write_empty_text(bs, body);
        return empty_part();
    };
    // mail-parser keeps a message's parts in one list, multiparts naming their children by
    // index; malformed nesting can make it list a part under two parents or under itself
    // (found by fuzzing: a 900-byte message took minutes and hundreds of MB, the depth cap
    // alone still allowing children^MAX_DEPTH visits). Each part is summarized once; a part
    // named again is shown as an empty text part, so the work is linear in the parts.
    if std::mem::replace(&mut visited[id], true) {
        write_empty_text(bs, body);
        return empty_part();
    }
    let headers = RawHeaders::of_part(part, raw);
    let ct = headers
        .first("content-type")
        .map(|v| parse_content_type(&v));
    let (header, content) = ranges(part, raw.len());
    let encoding_raw = headers.first("content-transfer-encoding");
    let encoding = TransferEncoding::from_header(encoding_raw.as_deref());

    match &part.body {
        PartType::Multipart(children) if depth < MAX_DEPTH => {
            let subtype = ct
                .as_ref()
                .and_then(|c| c.subtype.clone())
                .unwrap_or_else(|| "mixed".into());
            let digest = subtype.eq_ignore_ascii_case("digest");
            bs.push(b'(');
            body.push(b'(');
            let mut kids = Vec::with_capacity(children.len());
            for &child in children {
                kids.push(build_part(
                    msg,
                    child as usize,
                    raw,
                    addressable,
                    digest,
                    bs,
                    body,
                    depth + 1,
                    visited,
                ));
            }
            if children.is_empty() {
                // `body-type-mpart` needs at least one body (RFC 3501 §9); a multipart with no
                // parts is shown with one empty text part, as other servers do.
                write_empty_text(bs, body);
            }
            for out in [&mut *bs, &mut *body] {
                out.push(b' ');
                string(out, subtype.as_bytes());
            }
            // body-ext-mpart: parameters, disposition, language, location.
            bs.push(b' ');
            write_params(bs, ct.as_ref().map(|c| c.params.as_slice()).unwrap_or(&[]));
            write_ext_common(bs, &headers);
            bs.push(b')');
            body.push(b')');
            Part {
                header,
                content,
                encoding,
                kind: if addressable {
                    PartKind::Multipart(kids)
                } else {
                    PartKind::Leaf
                },
            }
        }
        PartType::Message(inner) if depth < MAX_DEPTH => {
            // An encapsulated message whose offsets point into our buffer is addressable; one
            // mail-parser had to decode first is not (its offsets are into the decoded copy).
            let inner_in_raw = addressable && matches!(inner.raw_message, Cow::Borrowed(_));
            let inner_raw: &[u8] = if inner_in_raw {
                raw
            } else {
                &inner.raw_message
            };
            let built = build_message(inner, inner_raw, inner_in_raw, depth + 1);
            let (ty, sub) = match &ct {
                Some(c) if c.ty.eq_ignore_ascii_case("message") => (
                    c.ty.clone(),
                    c.subtype.clone().unwrap_or_else(|| "RFC822".into()),
                ),
                _ => ("MESSAGE".into(), "RFC822".into()),
            };
            let params = ct.as_ref().map(|c| c.params.as_slice()).unwrap_or(&[]);
            let size = content[1] - content[0];
            let lines = count_lines(&raw[content[0] as usize..content[1] as usize]);
            for (out, inner_form) in [(&mut *bs, &built.body_structure), (&mut *body, &built.body)]
            {
                write_basic_fields(
                    out,
                    &ty,
                    &sub,
                    params,
                    &headers,
                    encoding_raw.as_deref(),
                    size,
                );
                out.push(b' ');
                out.extend_from_slice(&built.envelope);
                out.push(b' ');
                out.extend_from_slice(inner_form);
                out.extend_from_slice(format!(" {lines}").as_bytes());
            }
            write_ext_1part(bs, &headers);
            bs.push(b')');
            body.push(b')');
            Part {
                header,
                content,
                encoding,
                kind: if inner_in_raw {
                    PartKind::Message(Box::new(built.root))
                } else {
                    PartKind::Leaf
                },
            }
        }
        _ => {
            let (ty, sub, params): (String, String, Vec<(String, String)>) = match ct {
                Some(c) if c.subtype.is_some() => {
                    let sub = c.subtype.unwrap_or_default();
                    if c.ty.eq_ignore_ascii_case("multipart") {
                        // A multipart mail-parser could not split (no boundary): RFC 2046 §5.1.1
                        // makes it unusable; show it as the text it effectively is.
                        ("TEXT".into(), "PLAIN".into(), us_ascii())
                    } else if c.ty.eq_ignore_ascii_case("message")
                        && (sub.eq_ignore_ascii_case("rfc822")
                            || sub.eq_ignore_ascii_case("global"))
                    {
                        // Not parsed as a message (empty or mangled): body-type-msg would need an
                        // envelope, so present the bytes as opaque data.
                        ("APPLICATION".into(), "OCTET-STREAM".into(), c.params)
                    } else {
                        (c.ty, sub, c.params)
                    }
                }
                // RFC 2045 §5.2 / RFC 2046 §5.1.5: no (or an invalid) Content-Type means
                // text/plain; charset=us-ascii, or message/rfc822 inside multipart/digest.
                _ if in_digest => ("MESSAGE".into(), "RFC822".into(), Vec::new()),
                _ => ("TEXT".into(), "PLAIN".into(), us_ascii()),
            };
            if ty.eq_ignore_ascii_case("message") && sub.eq_ignore_ascii_case("rfc822") {
                // Digest default with an unparsed body: same reasoning as above.
                return leaf(
                    "APPLICATION",
                    "OCTET-STREAM",
                    &[],
                    &headers,
                    encoding_raw.as_deref(),
                    raw,
                    header,
                    content,
                    encoding,
                    bs,
                    body,
                );
            }
            leaf(
                &ty,
                &sub,
                &params,
                &headers,
                encoding_raw.as_deref(),
                raw,
                header,
                content,
                encoding,
                bs,
                body,
            )
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn leaf(
    ty: &str,
    sub: &str,
    params: &[(String, String)],
    headers: &RawHeaders,
    encoding_raw: Option<&str>,
    raw: &[u8],
    header: [u64; 2],
    content: [u64; 2],
    encoding: TransferEncoding,
    bs: &mut Vec<u8>,
    body: &mut Vec<u8>,
) -> Part {
    let size = content[1] - content[0];
    let is_text = ty.eq_ignore_ascii_case("text");
    let lines = count_lines(&raw[content[0] as usize..content[1] as usize]);
    for out in [&mut *bs, &mut *body] {
        write_basic_fields(out, ty, sub, params, headers, encoding_raw, size);
        if is_text {
            // body-type-text carries body-fld-lines (RFC 3501 §9).
            out.extend_from_slice(format!(" {lines}").as_bytes());
        }
    }
    write_ext_1part(bs, headers);
    bs.push(b')');
    body.push(b')');
    Part {
        header,
        content,
        encoding,
        kind: PartKind::Leaf,
    }
}

fn us_ascii() -> Vec<(String, String)> {
    vec![("CHARSET".into(), "US-ASCII".into())]
}

fn empty_part() -> Part {
    Part {
        header: [0, 0],
        content: [0, 0],
        encoding: TransferEncoding::SevenBit,
        kind: PartKind::Leaf,
    }
}

fn write_empty_text(bs: &mut Vec<u8>, body: &mut Vec<u8>) {
    let basic = b"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 0 0";
    bs.extend_from_slice(basic);
    bs.extend_from_slice(b" NIL NIL NIL NIL)");
    body.extend_from_slice(basic);
    body.push(b')');
}

/// The MIME header range (including its blank line) and content range of `part`, clamped to the
/// buffer so a parser quirk can never make a range point outside the message.
fn ranges(part: &MessagePart<'_>, len: usize) -> ([u64; 2], [u64; 2]) {
    let len = len as u64;
    let h0 = u64::from(part.offset_header).min(len);
    let b0 = u64::from(part.offset_body).clamp(h0, len);
    let end = u64::from(part.offset_end).clamp(b0, len);
    ([h0, b0], [b0, end])
}

/// Opens a body and writes `body-fields` up to and including the size:
/// `("type" "subtype" (params) id description encoding size`.
fn write_basic_fields(
    out: &mut Vec<u8>,
    ty: &str,
    sub: &str,
    params: &[(String, String)],
    headers: &RawHeaders,
    encoding_raw: Option<&str>,
    size: u64,
) {
    out.push(b'(');
    string(out, ty.as_bytes());
    out.push(b' ');
    string(out, sub.as_bytes());
    out.push(b' ');
    write_params(out, params);
    out.push(b' ');
    nstring(
        out,
        headers.first("content-id").as_deref().map(str::as_bytes),
    );
    out.push(b' ');
    nstring(
        out,
        headers
            .first("content-description")
            .as_deref()
            .map(str::as_bytes),
    );
    out.push(b' ');
    // body-fld-enc is a string; absent means 7BIT (RFC 2045 §6.1). Known values are written in
    // the upper case RFC 3501 uses, unknown ones as sent.
    let enc = match encoding_raw.map(str::trim) {
        None | Some("") => "7BIT".to_string(),
        Some(e) => match e.to_ascii_lowercase().as_str() {
            "7bit" | "8bit" | "binary" | "base64" | "quoted-printable" => e.to_ascii_uppercase(),
            _ => e.to_string(),
        },
    };
    string(out, enc.as_bytes());
    out.extend_from_slice(format!(" {size}").as_bytes());
}

/// body-ext-1part: md5, then disposition, language, location.
fn write_ext_1part(out: &mut Vec<u8>, headers: &RawHeaders) {
    out.push(b' ');
    nstring(
        out,
        headers.first("content-md5").as_deref().map(str::as_bytes),
    );
    write_ext_common(out, headers);
}

/// ` disposition language location` (RFC 3501 §9 body-fld-dsp, body-fld-lang, body-fld-loc).
fn write_ext_common(out: &mut Vec<u8>, headers: &RawHeaders) {
    out.push(b' ');
    match headers
        .first("content-disposition")
        .map(|v| parse_content_type(&v))
    {
        Some(d) if !d.ty.is_empty() => {
            out.push(b'(');
            string(out, d.ty.as_bytes());
            out.push(b' ');
            write_params(out, &d.params);
            out.push(b')');
        }
        _ => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    let langs: Vec<String> = headers
        .first("content-language")
        .map(|v| {
            v.split(',')
                .map(|s| strip_comments(s).trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    match langs.as_slice() {
        [] => out.extend_from_slice(b"NIL"),
        [one] => string(out, one.as_bytes()),
        many => {
            out.push(b'(');
            for (i, l) in many.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                string(out, l.as_bytes());
            }
            out.push(b')');
        }
    }
    out.push(b' ');
    nstring(
        out,
        headers
            .first("content-location")
            .as_deref()
            .map(str::as_bytes),
    );
}

fn write_params(out: &mut Vec<u8>, params: &[(String, String)]) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, k.as_bytes());
        out.push(b' ');
        string(out, v.as_bytes());
    }
    out.push(b')');
}

/// body-fld-lines: the number of line breaks in the part body. RFC 3501 §7.4.2 only says "size of
/// the body in text lines"; the CRLF before a multipart boundary belongs to the delimiter (RFC 2046
/// §5.1.1), so a part's unterminated last line is not counted — what Dovecot and Cyrus report, which
/// clients that cache BODYSTRUCTURE across servers compare against.
fn count_lines(b: &[u8]) -> u64 {
    b.iter().filter(|&&c| c == b'\n').count() as u64
}

/// A parsed Content-Type or Content-Disposition value (RFC 2045 §5.1, RFC 2183 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContentType {
    /// The type (or disposition type), as sent.
    pub ty: String,
    pub subtype: Option<String>,
    /// Parameters as sent; RFC 2231 `name*` forms are kept verbatim, not decoded.
    pub params: Vec<(String, String)>,
}

/// Parses `type/subtype; name=value; name="quoted value"` leniently.
pub(crate) fn parse_content_type(v: &str) -> ContentType {
    let v = strip_comments(v);
    let mut segments = split_unquoted(&v, ';').into_iter();
    let first = segments.next().unwrap_or_default();
    let first = first.trim();
    let (ty, subtype) = match first.split_once('/') {
        Some((t, s)) if !t.trim().is_empty() && !s.trim().is_empty() => {
            (t.trim().to_string(), Some(s.trim().to_string()))
        }
        _ => (first.to_string(), None),
    };
    let mut params = Vec::new();
    for seg in segments {
        let Some((name, value)) = seg.split_once('=') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        let value = value.trim();
        let value = match value.strip_prefix('"') {
            Some(q) => unquote(q),
            None => value.to_string(),
        };
        params.push((name.to_string(), value));
    }
    ContentType {
        ty,
        subtype,
        params,
    }
}

/// Content of a quoted-string whose opening quote is already stripped.
fn unquote(q: &str) -> String {
    let mut out = String::new();
    let mut chars = q.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Splits on `sep` outside quoted-strings.
fn split_unquoted(v: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in v.chars() {
        if escaped {
            escaped = false;
            cur.push(c);
            continue;
        }
        match c {
            '\\' if quoted => {
                escaped = true;
                cur.push(c);
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c == sep && !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Removes RFC 5322 comments `( ... )` outside quoted-strings.
fn strip_comments(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    for c in v.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_type_params() {
        let ct = parse_content_type(
            "Text/Plain (comment); charset=\"utf-8\"; format=flowed; name*=utf-8''a%20b; x=\"a;b\"",
        );
        assert_eq!(ct.ty, "Text");
        assert_eq!(ct.subtype.as_deref(), Some("Plain"));
        assert_eq!(
            ct.params,
            vec![
                ("charset".into(), "utf-8".into()),
                ("format".into(), "flowed".into()),
                ("name*".into(), "utf-8''a%20b".into()),
                ("x".into(), "a;b".into()),
            ]
        );
        assert_eq!(parse_content_type("garbage").subtype, None);
    }

    #[test]
    fn counts_lines() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"hello"), 0);
        assert_eq!(count_lines(b"hello\r\n"), 1);
        assert_eq!(count_lines(b"a\r\nb"), 1);
        assert_eq!(count_lines(b"a\r\nb\r\n"), 2);
    }
}
