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

/// Cap on one field's decoded value, so that one huge field (a megabyte Subject) cannot
/// crowd the fields after it (Message-ID, References: what THREAD needs) out of the index.
pub(crate) const FIELD_TEXT_CAP: usize = 64 * 1024;

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
        let cap = budget.min(FIELD_TEXT_CAP);
        if is_ancestry(&name) {
            keep_last_ids(&mut value, cap);
        } else {
            truncate_at_char(&mut value, cap);
        }
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

/// References and In-Reply-To: their last ids are the nearest ancestors (RFC 5322 §3.6.4),
/// the ones THREAD=REFERENCES uses (RFC 5256 §4 step 1), so a cut keeps the end.
fn is_ancestry(name: &str) -> bool {
    name.eq_ignore_ascii_case("References") || name.eq_ignore_ascii_case("In-Reply-To")
}

/// Keeps at most `max` bytes from the end of a list of message ids, starting at a whole id.
fn keep_last_ids(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut cut = s.len() - max;
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    // Start at the next id, so that no id is kept in part.
    let start = s[cut..].find('<').map_or(s.len(), |i| cut + i);
    s.drain(..start);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn field<'a>(index: &'a SearchIndex, name: &str) -> &'a str {
        index
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} in the index"))
    }

    /// A megabyte Subject ahead of a megabyte References: the Subject is cut to the field cap,
    /// Message-ID and the last references (the parent) are still indexed, whole ids only.
    #[test]
    fn a_huge_field_does_not_crowd_out_the_fields_after_it() {
        let mut m = String::from("From: a@example.org\r\nSubject: ");
        m.push_str(&"Re: [x] ".repeat(150_000));
        m.push_str("hello\r\nMessage-ID: <me@example.org>\r\nReferences:");
        for i in 0..100_000 {
            m.push_str(&format!(" <r{i}@example.org>\r\n"));
        }
        m.push_str("\r\nbody\r\n");
        let (_, index) = crate::summarize(m.as_bytes());
        let total: usize = index.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
        assert!(total <= HEADER_TEXT_CAP, "{total}");
        assert!(field(&index, "Subject").len() <= FIELD_TEXT_CAP);
        assert_eq!(field(&index, "Message-ID"), "<me@example.org>");
        let references = field(&index, "References");
        assert!(references.len() <= FIELD_TEXT_CAP);
        assert!(references.starts_with('<'), "{}", &references[..40]);
        assert!(references.ends_with("<r99999@example.org>"));
    }

    #[test]
    fn keeping_the_last_ids_starts_at_a_whole_id() {
        let mut s = String::from("<a@x> <bb@x> <ccc@x>");
        keep_last_ids(&mut s, 10);
        assert_eq!(s, "<ccc@x>");
        let mut s = String::from("<a@x> <bb@x>");
        keep_last_ids(&mut s, 100);
        assert_eq!(s, "<a@x> <bb@x>");
        // No id starts within the last bytes: nothing partial is kept.
        let mut s = String::from("<aaaaaaaaaaaa@x>");
        keep_last_ids(&mut s, 4);
        assert_eq!(s, "");
    }
}
