//! Raw header access: field names and values exactly as sent, only unfolded.

use mail_parser::MessagePart;

/// The header fields of one MIME part (or message), in order, as raw text.
pub(crate) struct RawHeaders {
    /// (name as written, unfolded value with surrounding whitespace trimmed).
    pub fields: Vec<(String, String)>,
}

impl RawHeaders {
    /// The fields of `part`, sliced out of `raw` with mail-parser's offsets.
    pub fn of_part(part: &MessagePart<'_>, raw: &[u8]) -> RawHeaders {
        let fields = part
            .headers
            .iter()
            .map(|h| {
                let name_end = (h.offset_start as usize).min(raw.len());
                let name_start = (h.offset_field as usize).min(name_end);
                let name_bytes = &raw[name_start..name_end];
                // offset_start points just past the colon.
                let name_bytes = name_bytes.strip_suffix(b":").unwrap_or(name_bytes);
                let name = String::from_utf8_lossy(name_bytes).trim().to_string();
                let value_end = (h.offset_end as usize).min(raw.len());
                let value_start = name_end.min(value_end);
                (name, unfold(&raw[value_start..value_end]))
            })
            .collect();
        RawHeaders { fields }
    }

    /// The value of the first field named `name` (case-insensitive, RFC 5322 §1.2.2).
    pub fn first(&self, name: &str) -> Option<String> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
}

/// Undoes RFC 5322 §2.2.3 folding (drops every CR and LF; the WSP that follows a fold stays) and
/// trims surrounding whitespace. Bytes that are not UTF-8 (raw 8-bit headers in a legacy charset)
/// are replaced, because summaries are text.
pub(crate) fn unfold(value: &[u8]) -> String {
    let bytes: Vec<u8> = value
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    String::from_utf8_lossy(&bytes)
        .trim_matches(|c| c == ' ' || c == '\t')
        .to_string()
}

/// Keeps only (or, with `exclude`, drops) the named header fields (case-insensitive), keeping
/// continuation lines, and ends with the blank line (RFC 3501 §6.4.5 HEADER.FIELDS / .NOT).
///
/// `header` is a header block as [`crate::Summary::section_range`] returns it for `HEADER` or
/// `MIME` (the terminating blank line may or may not be included). Lines that are not header
/// fields (no colon) are dropped in both modes: they are not fields a client can name.
pub fn filter_header_fields(header: &[u8], names: &[String], exclude: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len().min(4096));
    let mut keep = false;
    // memchr rather than a byte-at-a-time split: this runs over the header of every message a
    // header-field FETCH names (the most common FETCH of all).
    let mut rest = header;
    while !rest.is_empty() {
        let line = match memchr::memchr(b'\n', rest) {
            Some(end) => {
                let line = &rest[..end];
                rest = &rest[end + 1..];
                line
            }
            None => std::mem::take(&mut rest),
        };
        let content = line.strip_suffix(b"\r").unwrap_or(line);
        if content.is_empty() {
            // The blank line ends the header.
            break;
        }
        if content[0] == b' ' || content[0] == b'\t' {
            // A continuation line belongs to the field above it.
            if keep {
                push_line(&mut out, content);
            }
            continue;
        }
        keep = match memchr::memchr(b':', content) {
            Some(colon) => {
                let name = trim_wsp(&content[..colon]);
                let named = names
                    .iter()
                    .any(|n| n.as_bytes().eq_ignore_ascii_case(name));
                named != exclude
            }
            None => false,
        };
        if keep {
            push_line(&mut out, content);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Writes a line with a CRLF ending whatever ending it had, so the result is well-formed.
fn push_line(out: &mut Vec<u8>, content: &[u8]) {
    out.extend_from_slice(content);
    out.extend_from_slice(b"\r\n");
}

fn trim_wsp(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|&c| c != b' ' && c != b'\t')
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|&c| c != b' ' && c != b'\t')
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &[u8] =
        b"From: a@x\r\nSubject: hello\r\n  world\r\nTo: b@y\r\nX-Junk\r\nsubject: again\r\n\r\n";

    #[test]
    fn keeps_named_fields_with_continuations() {
        let names = vec!["SUBJECT".to_string()];
        assert_eq!(
            filter_header_fields(H, &names, false),
            b"Subject: hello\r\n  world\r\nsubject: again\r\n\r\n"
        );
    }

    #[test]
    fn drops_named_fields() {
        let names = vec!["subject".to_string(), "x-none".to_string()];
        assert_eq!(
            filter_header_fields(H, &names, true),
            b"From: a@x\r\nTo: b@y\r\n\r\n"
        );
    }

    #[test]
    fn no_match_is_just_the_blank_line() {
        assert_eq!(
            filter_header_fields(H, &["x-missing".to_string()], false),
            b"\r\n"
        );
        assert_eq!(filter_header_fields(b"", &[], true), b"\r\n");
    }

    #[test]
    fn unfold_keeps_wsp() {
        assert_eq!(unfold(b" hello\r\n world\r\n"), "hello world");
    }
}
