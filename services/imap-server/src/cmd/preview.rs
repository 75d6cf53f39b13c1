//! FETCH PREVIEW (RFC 8970): a short plain-text preview of each message, made from the search
//! index's body text that was extracted once at delivery (text/plain parts as decoded, text/html
//! reduced to text). It never reads the blob store: one `MailStore::search_indexed` round trip
//! per batch of messages returns the start of each message's indexed text.
//!
//! Every stored message has its index, so a preview is always "readily available" and
//! `PREVIEW (LAZY)` (RFC 8970 §4) gets the same text as `PREVIEW`, never NIL.

use std::collections::HashMap;
use yubin_imap_proto::encode;
use yubin_meta_api::{
    IndexProjection, MailStore, MailboxId, MetaResult, SearchKey, Uid, UidSet, UserId,
};

/// RFC 8970 §3.3: the preview is at most 256 characters.
pub(crate) const PREVIEW_MAX_CHARS: usize = 256;

/// Characters of indexed text read per message. Collapsing whitespace only shortens the text,
/// so twice the preview length leaves room for indentation and blank lines while keeping what
/// one batch holds small (`BATCH` × this many characters).
const INDEX_CHARS: u32 = 2 * PREVIEW_MAX_CHARS as u32;

/// Messages whose index text one store call returns: bounds the memory of a `FETCH 1:*
/// PREVIEW` over a large mailbox to one batch, at one round trip per batch.
const BATCH: usize = 1000;

/// The previews of the messages of one FETCH, loaded a batch at a time in the order the FETCH
/// writes its responses.
pub(crate) struct Previews {
    loaded: HashMap<Uid, String>,
}

impl Previews {
    pub(crate) fn new() -> Self {
        Previews {
            loaded: HashMap::new(),
        }
    }

    /// The preview of `pending[0]`, loading it together with the next messages of `pending`
    /// (up to one batch) when it is not loaded yet. A message the store no longer has (expunged
    /// meanwhile) gets the empty preview.
    pub(crate) async fn get(
        &mut self,
        mail: &dyn MailStore,
        user: UserId,
        mailbox: MailboxId,
        pending: &[Uid],
    ) -> MetaResult<&str> {
        let Some(&uid) = pending.first() else {
            return Ok("");
        };
        if !self.loaded.contains_key(&uid) {
            // Previous batches are written out already: drop them so memory stays one batch.
            self.loaded.clear();
            let batch: Vec<Uid> = pending.iter().take(BATCH).copied().collect();
            let projection = IndexProjection {
                headers: Vec::new(),
                body_chars: INDEX_CHARS,
            };
            let key = SearchKey::Uids(UidSet::from_uids(batch.clone()));
            let found = mail
                .search_indexed(user, mailbox, &key, &projection)
                .await?;
            for m in found {
                self.loaded.insert(m.uid, preview_text(&m.index.body_text));
            }
            for u in batch {
                self.loaded.entry(u).or_default();
            }
        }
        Ok(self.loaded.get(&uid).map_or("", String::as_str))
    }
}

/// The preview of `body_text` (RFC 8970 §3.3): runs of whitespace and control characters
/// (line breaks, tabs) collapse to one space, leading and trailing whitespace is dropped, and
/// the result is cut to at most 256 characters (Unicode scalar values, not octets, so a
/// multi-byte character is never split).
pub(crate) fn preview_text(body_text: &str) -> String {
    let mut out = String::with_capacity(body_text.len().min(4 * PREVIEW_MAX_CHARS));
    let mut chars = 0;
    let mut pending_space = false;
    for ch in body_text.chars() {
        if ch.is_whitespace() || ch.is_control() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            if chars + 1 >= PREVIEW_MAX_CHARS {
                break;
            }
            out.push(' ');
            chars += 1;
            pending_space = false;
        }
        if chars >= PREVIEW_MAX_CHARS {
            break;
        }
        out.push(ch);
        chars += 1;
    }
    out
}

/// Writes `PREVIEW <string>` (RFC 8970 §3.2). The text is UTF-8: a quoted string when it is
/// plain ASCII, otherwise a literal, which carries 8-bit text in IMAP4rev1 too.
pub(crate) fn write(buf: &mut Vec<u8>, text: &str) {
    buf.extend_from_slice(b"PREVIEW ");
    encode::string(buf, text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_collapses_and_edges_trim() {
        assert_eq!(preview_text(""), "");
        assert_eq!(preview_text(" \r\n\t "), "");
        assert_eq!(
            preview_text("\r\n  Hello,\r\n\r\n\tworld  again \r\n"),
            "Hello, world again"
        );
        assert_eq!(preview_text("a\u{0}b\u{a0}c"), "a b c");
    }

    #[test]
    fn cut_at_256_characters_not_octets() {
        let long = "é".repeat(300);
        let p = preview_text(&long);
        assert_eq!(p.chars().count(), PREVIEW_MAX_CHARS);
        assert!(p.chars().all(|c| c == 'é'));
        // A space is never the last character of a cut preview.
        let words = "ab ".repeat(200);
        let p = preview_text(&words);
        assert!(p.chars().count() <= PREVIEW_MAX_CHARS);
        assert!(!p.ends_with(' '));
        assert!(p.starts_with("ab ab"));
    }

    #[test]
    fn written_as_quoted_or_literal() {
        let mut buf = Vec::new();
        write(&mut buf, "Hi \"you\"");
        assert_eq!(buf, b"PREVIEW \"Hi \\\"you\\\"\"");
        let mut buf = Vec::new();
        write(&mut buf, "日本");
        assert_eq!(buf, "PREVIEW {6}\r\n日本".as_bytes());
        let mut buf = Vec::new();
        write(&mut buf, "");
        assert_eq!(buf, b"PREVIEW \"\"");
    }
}
