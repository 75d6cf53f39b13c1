//! The SEARCH index (decoded header values, Date:, body text) extracted at delivery.

use mail_parser::decoders::html::html_to_text;
use mail_parser::parsers::MessageStream;
use mail_parser::{HeaderValue, Message, MessagePart, MimeHeaders, PartType};
use std::borrow::Cow;
use yubin_meta_api::{InternalDate, SearchIndex};

/// Cap on `body_text`: enough for BODY/TEXT search on real mail, bounded metadata size.
pub(crate) const BODY_TEXT_CAP: usize = 64 * 1024;

/// Cap on the decoded header text (names and values together) kept in the index. Real headers
/// are a few KiB (long Received/DKIM chains stay far below); without a cap a message with
/// megabytes of encoded-word header text put all of it into the stored index, once per COPY.
/// Fields are kept in order; the one crossing the cap is cut, later ones are left out. The
/// stored text is what SEARCH verifies against, so text within the cap is found exactly.
pub(crate) const HEADER_TEXT_CAP: usize = 256 * 1024;

pub(crate) fn build_index(msg: &Message<'_>, raw: &[u8]) -> SearchIndex {
    let headers = msg
        .parts
        .first()
        .map(|root| decoded_headers(root, raw))
        .unwrap_or_default();
    let sent_date = msg.date().filter(|d| d.is_valid()).map(|d| {
        let offset = i32::from(d.tz_hour) * 60 + i32::from(d.tz_minute);
        InternalDate {
            unix_seconds: d.to_timestamp(),
            tz_offset_minutes: if d.tz_before_gmt { -offset } else { offset },
        }
    });
    let mut body_text = String::new();
    collect_text(msg, &mut body_text, 0);
    truncate_at_char(&mut body_text, BODY_TEXT_CAP);
    SearchIndex {
        headers,
        sent_date,
        body_text,
    }
}

/// The index of input mail-parser could not parse: no header, the bytes are the text.
pub(crate) fn fallback_index(raw: &[u8]) -> SearchIndex {
    let mut body_text = String::from_utf8_lossy(raw).into_owned();
    truncate_at_char(&mut body_text, BODY_TEXT_CAP);
    SearchIndex {
        headers: Vec::new(),
        sent_date: None,
        body_text,
    }
}

/// Every field of the top-level header: name as written, value with RFC 2047 encoded-words
/// decoded (mail-parser's unstructured decoder handles any charset it knows, ISO-2022-JP
/// included) and folding undone.
fn decoded_headers(root: &MessagePart<'_>, raw: &[u8]) -> Vec<(String, String)> {
    let mut budget = HEADER_TEXT_CAP;
    let mut out = Vec::new();
    for h in &root.headers {
        if budget == 0 {
            break;
        }
        let (mut name, mut value) = decoded_field(h, raw);
        truncate_at_char(&mut name, budget);
        budget -= name.len();
        truncate_at_char(&mut value, budget);
        budget -= value.len();
        out.push((name, value));
    }
    out
}

/// One field: name as written, value decoded.
fn decoded_field(h: &mail_parser::Header<'_>, raw: &[u8]) -> (String, String) {
    let name_end = (h.offset_start as usize).min(raw.len());
    let name_start = (h.offset_field as usize).min(name_end);
    let name = &raw[name_start..name_end];
    let name = name.strip_suffix(b":").unwrap_or(name);
    let name = String::from_utf8_lossy(name).trim().to_string();
    let value_end = (h.offset_end as usize).min(raw.len());
    let value = decode_value(&raw[name_end.min(value_end)..value_end]);
    (name, value)
}

fn decode_value(raw_value: &[u8]) -> String {
    match MessageStream::new(raw_value).parse_unstructured() {
        HeaderValue::Text(t) => t.trim().to_string(),
        _ => crate::header::unfold(raw_value),
    }
}

/// Appends the decoded text of text/plain and text/html parts (html reduced to text), recursing
/// into encapsulated messages so forwarded mail is searchable too.
fn collect_text(msg: &Message<'_>, out: &mut String, depth: usize) {
    if depth > 16 {
        return;
    }
    for part in &msg.parts {
        if out.len() >= BODY_TEXT_CAP {
            return;
        }
        let text: Option<Cow<'_, str>> = match &part.body {
            PartType::Text(t) if is_plain(part) => Some(Cow::Borrowed(t.as_ref())),
            PartType::Html(h) => Some(Cow::Owned(html_to_text(h))),
            PartType::Message(inner) => {
                collect_text(inner, out, depth + 1);
                None
            }
            _ => None,
        };
        if let Some(t) = text {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&t);
        }
    }
}

/// text/plain, or no Content-Type at all (RFC 2045 §5.2 default); other text/* (csv, calendar)
/// is attachment data, not message text.
fn is_plain(part: &MessagePart<'_>) -> bool {
    match part.content_type() {
        None => true,
        Some(ct) => {
            ct.c_type.eq_ignore_ascii_case("text")
                && ct
                    .c_subtype
                    .as_deref()
                    .is_none_or(|s| s.eq_ignore_ascii_case("plain"))
        }
    }
}

fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}
