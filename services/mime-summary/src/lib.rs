//! Message summaries computed once at delivery.
//!
//! The IMAP front-end calls [`summarize`] on every APPEND/delivery and stores the [`Summary`]
//! (opaque bytes, see [`Summary::to_bytes`]) and the [`SearchIndex`] in the metadata service, so
//! FETCH ENVELOPE / BODYSTRUCTURE / BODY[section] never parse a message again: they read the
//! precomputed strings and byte ranges, and fetch just those bytes from the blob store.

mod decode;
mod envelope;
mod header;
mod index;
mod structure;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use thiserror::Error;
use yubin_meta_api::SearchIndex;

pub use decode::decode_transfer_encoding;
pub use header::filter_header_fields;

/// The version written in every summary; [`Summary::from_bytes`] refuses others so a format
/// change is detected instead of misread.
const FORMAT_VERSION: u8 = 1;
/// First byte of a summary in the binary form; the JSON of earlier releases starts with `{`.
const BINARY_TAG: u8 = 0xB1;

#[derive(Debug, Error)]
pub enum SummaryError {
    /// The bytes are not a summary this version can read (corrupted or from a newer format).
    #[error("invalid message summary: {0}")]
    Invalid(String),
}

/// Which bytes of a part a section names (RFC 3501 §6.4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SectionWhat {
    /// The whole message (empty part) or the content of the part.
    Full,
    /// The header of the message (or of the encapsulated message/rfc822), blank line included.
    Header,
    /// The body of the message (or of the encapsulated message/rfc822).
    Text,
    /// The MIME header of the part, blank line included.
    Mime,
}

/// A part's Content-Transfer-Encoding (RFC 2045 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TransferEncoding {
    #[serde(rename = "7")]
    SevenBit,
    #[serde(rename = "8")]
    EightBit,
    #[serde(rename = "b")]
    Binary,
    #[serde(rename = "6")]
    Base64,
    #[serde(rename = "q")]
    QuotedPrintable,
    /// An encoding this server does not know (BINARY answers `NO [UNKNOWN-CTE]`, RFC 3516 §4.3).
    #[serde(rename = "o")]
    Other,
}

impl TransferEncoding {
    /// From the raw Content-Transfer-Encoding value; absent means 7bit (RFC 2045 §6.1).
    pub(crate) fn from_header(v: Option<&str>) -> TransferEncoding {
        let Some(v) = v else {
            return TransferEncoding::SevenBit;
        };
        let v = v.trim();
        // Tolerate a trailing comment or parameter-like junk some mailers add.
        let token = v
            .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
            .next()
            .unwrap_or("");
        match token.to_ascii_lowercase().as_str() {
            "" | "7bit" => TransferEncoding::SevenBit,
            "8bit" => TransferEncoding::EightBit,
            "binary" => TransferEncoding::Binary,
            "base64" => TransferEncoding::Base64,
            "quoted-printable" => TransferEncoding::QuotedPrintable,
            _ => TransferEncoding::Other,
        }
    }
}

/// One MIME part: where its bytes are in the raw message, and its children.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Part {
    /// The MIME header, including the blank line that ends it (`[n.MIME]`). For a message root,
    /// the message header (`HEADER`).
    #[serde(rename = "h")]
    pub header: [u64; 2],
    /// The content: what `[n]` returns (for a message root, `TEXT`).
    #[serde(rename = "c")]
    pub content: [u64; 2],
    #[serde(rename = "e")]
    pub encoding: TransferEncoding,
    #[serde(rename = "k")]
    pub kind: PartKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum PartKind {
    #[serde(rename = "l")]
    Leaf,
    #[serde(rename = "m")]
    Multipart(Vec<Part>),
    /// A message/rfc822 part: the root part of the encapsulated message.
    #[serde(rename = "r")]
    Message(Box<Part>),
}

/// What FETCH needs of a message, computed once by [`summarize`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    #[serde(rename = "v")]
    version: u8,
    /// Length of the message the summary was computed from.
    #[serde(rename = "n")]
    len: u64,
    #[serde(rename = "e")]
    envelope: String,
    #[serde(rename = "s")]
    body_structure: String,
    #[serde(rename = "b")]
    body: String,
    #[serde(rename = "p")]
    root: Part,
}

/// Computes the summary and the search index of a raw RFC 5322 message. Never fails: a message
/// that cannot be parsed is summarized as a single text body.
pub fn summarize(raw: &[u8]) -> (Summary, SearchIndex) {
    let parser = mail_parser::MessageParser::default();
    let (built, index) = match parser.parse(raw) {
        Some(msg) => (
            structure::build_message(&msg, raw, true, 0),
            index::build_index(&msg, raw),
        ),
        None => (
            structure::empty_message(raw.len() as u64),
            index::fallback_index(raw),
        ),
    };
    let summary = Summary {
        version: FORMAT_VERSION,
        len: raw.len() as u64,
        envelope: into_text(built.envelope),
        body_structure: into_text(built.body_structure),
        body: into_text(built.body),
        root: built.root,
    };
    (summary, index)
}

/// The encoders only ever receive text (header values are made UTF-8 before encoding), so this is
/// lossless; the lossy path only exists so that no input can make it panic.
fn into_text(v: Vec<u8>) -> String {
    String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

impl Summary {
    /// The stored form, for the metadata store: [`BINARY_TAG`], then the summary as postcard.
    /// Binary, because a header-field FETCH of a range decodes one summary per message, and
    /// JSON's escaping of the envelope and body structure strings made that a tenth of the
    /// front-end's CPU; it is also a fifth smaller in Redis.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = vec![BINARY_TAG];
        // Encoding plain strings, integers and enums into a Vec cannot fail.
        let _ = postcard::to_io(self, &mut out);
        Bytes::from(out)
    }

    /// Decodes [`Summary::to_bytes`]'s form, or the JSON form of earlier releases.
    pub fn from_bytes(b: &[u8]) -> Result<Summary, SummaryError> {
        let s: Summary = match b.split_first() {
            Some((&BINARY_TAG, rest)) => {
                postcard::from_bytes(rest).map_err(|e| SummaryError::Invalid(e.to_string()))?
            }
            _ => serde_json::from_slice(b).map_err(|e| SummaryError::Invalid(e.to_string()))?,
        };
        if s.version != FORMAT_VERSION {
            return Err(SummaryError::Invalid(format!(
                "unsupported summary version {}",
                s.version
            )));
        }
        Ok(s)
    }

    /// The ENVELOPE value in IMAP wire form: `(date subject (from) ... message-id)`. Values that
    /// cannot be quoted (8-bit, CR/LF) are literals, so write it to the client verbatim.
    pub fn envelope(&self) -> &str {
        &self.envelope
    }

    /// The BODYSTRUCTURE value, with extension data.
    pub fn body_structure(&self) -> &str {
        &self.body_structure
    }

    /// The FETCH BODY value (non-extensible BODYSTRUCTURE form).
    pub fn body(&self) -> &str {
        &self.body
    }

    /// Byte range in the raw message of a section (RFC 3501 §6.4.5). `part` empty = whole message.
    ///
    /// - `[]` + `Full`: the whole message; `Header`: the header with its blank line; `Text`: the
    ///   body. `Mime` needs a part number: None.
    /// - `[n..]` + `Full`: the content of the part (for message/rfc822, the whole encapsulated
    ///   message); `Mime`: its MIME header; `Header`/`Text`: only for message/rfc822 parts, the
    ///   header/body of the encapsulated message.
    ///
    /// For a non-multipart message, part 1 is its body; numbers after a message/rfc822 part
    /// continue into the encapsulated message. None for a part that does not exist.
    pub fn section_range(&self, part: &[u32], what: SectionWhat) -> Option<Range<u64>> {
        if part.is_empty() {
            return match what {
                SectionWhat::Full => Some(0..self.len),
                SectionWhat::Header => Some(range(self.root.header)),
                SectionWhat::Text => Some(range(self.root.content)),
                SectionWhat::Mime => None,
            };
        }
        let p = self.find(part)?;
        match what {
            SectionWhat::Full => Some(range(p.content)),
            SectionWhat::Mime => Some(range(p.header)),
            SectionWhat::Header | SectionWhat::Text => match &p.kind {
                PartKind::Message(inner) if what == SectionWhat::Header => {
                    Some(range(inner.header))
                }
                PartKind::Message(inner) => Some(range(inner.content)),
                _ => None,
            },
        }
    }

    /// Content-Transfer-Encoding of the leaf part at `part` (for BINARY, RFC 3516), None if no
    /// such leaf part. A message/rfc822 part counts as a leaf (its content is served as is when
    /// its encoding is an identity one); multiparts and the empty part (the whole message) do not.
    pub fn part_encoding(&self, part: &[u32]) -> Option<TransferEncoding> {
        if part.is_empty() {
            return None;
        }
        let p = self.find(part)?;
        match p.kind {
            PartKind::Multipart(_) => None,
            _ => Some(p.encoding),
        }
    }

    /// Walks part numbers (RFC 3501 §6.4.5): in a multipart, n is the n-th child; in a
    /// non-multipart message, 1 is the message body itself; after a message/rfc822 part, numbering
    /// continues in the encapsulated message.
    fn find(&self, part: &[u32]) -> Option<&Part> {
        let mut cur: Option<&Part> = None;
        for &n in part {
            let index = usize::try_from(n).ok()?.checked_sub(1)?;
            // The container the number indexes into, and whether it is a message root.
            let (container, is_message_root) = match cur {
                None => (&self.root, true),
                Some(p) => match &p.kind {
                    PartKind::Message(inner) => (inner.as_ref(), true),
                    PartKind::Multipart(_) => (p, false),
                    PartKind::Leaf => return None,
                },
            };
            cur = Some(match &container.kind {
                PartKind::Multipart(children) => children.get(index)?,
                _ if is_message_root && index == 0 => container,
                _ => return None,
            });
        }
        cur
    }
}

fn range(r: [u64; 2]) -> Range<u64> {
    r[0]..r[1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_encoding_from_header() {
        assert_eq!(
            TransferEncoding::from_header(None),
            TransferEncoding::SevenBit
        );
        assert_eq!(
            TransferEncoding::from_header(Some(" BASE64 ")),
            TransferEncoding::Base64
        );
        assert_eq!(
            TransferEncoding::from_header(Some("Quoted-Printable (x)")),
            TransferEncoding::QuotedPrintable
        );
        assert_eq!(
            TransferEncoding::from_header(Some("x-uuencode")),
            TransferEncoding::Other
        );
    }
}
