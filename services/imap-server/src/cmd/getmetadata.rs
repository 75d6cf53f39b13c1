//! GETMETADATA (RFC 5464 §4.2) and the untagged METADATA response (§4.4).
//!
//! The mailbox `""` names the server entries (METADATA-SERVER). Both `/private` and `/shared`
//! entries belong to the account: there is no mailbox sharing, so the "shared" entries are seen
//! by the account alone, like its private ones.

use crate::cmd::mailbox_arg;
use crate::names;
use crate::out::{Out, Reply};
use crate::session::Session;
use yubin_imap_proto::{MetadataDepth as WireDepth, MetadataOptions, encode};
use yubin_meta_api::{MetadataDepth, MetadataEntry};

/// The store's mailbox argument: `None` for the server entries (mailbox `""`).
pub(crate) fn target(s: &Session, mailbox: &[u8]) -> Result<Option<String>, Reply> {
    if mailbox.is_empty() {
        return Ok(None);
    }
    mailbox_arg(s, mailbox).map(Some)
}

/// `GETMETADATA [(MAXSIZE n DEPTH d)] mailbox entries`.
pub(crate) async fn run(
    s: &mut Session,
    out: &mut Out<'_>,
    mailbox: &[u8],
    options: MetadataOptions,
    entries: &[String],
) -> Reply {
    let Some(user) = s.user() else {
        return Reply::bad("Not authenticated");
    };
    let name = match target(s, mailbox) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let depth = match options.depth {
        WireDepth::Zero => MetadataDepth::Zero,
        WireDepth::One => MetadataDepth::One,
        WireDepth::Infinity => MetadataDepth::Infinity,
    };
    let found = match s
        .server
        .mail
        .get_metadata(user, name.as_deref(), entries, depth)
        .await
    {
        Ok(found) => found,
        Err(e) => return Reply::meta(&e),
    };
    // MAXSIZE (RFC 5464 §4.2.1): longer values are left out and the size of the longest one is
    // reported with LONGENTRIES.
    let mut longest_skipped: Option<usize> = None;
    let mut shown: Vec<(&str, Option<&[u8]>)> = Vec::new();
    for MetadataEntry { name, value } in &found {
        match options.max_size {
            Some(max) if value.len() as u64 > max => {
                longest_skipped = Some(longest_skipped.unwrap_or(0).max(value.len()));
            }
            _ => shown.push((name, Some(value))),
        }
    }
    // A requested entry without a value is answered with NIL (RFC 5464 §4.4: NIL is the value of
    // an entry that does not exist), unless it exists and was left out for MAXSIZE.
    for requested in entries {
        if !found.iter().any(|e| &e.name == requested) {
            shown.push((requested, None));
        }
    }
    shown.sort_by(|a, b| a.0.cmp(b.0));
    shown.dedup_by(|a, b| a.0 == b.0);
    if !shown.is_empty() {
        out.buf()
            .extend_from_slice(&metadata_line(name.as_deref(), &shown, s.rev2));
    }
    let reply = Reply::ok("GETMETADATA completed");
    match longest_skipped {
        Some(n) => reply.code(format!("METADATA LONGENTRIES {n}")),
        None => reply,
    }
}

/// `* METADATA mailbox (entry value ...)` (RFC 5464 §4.4.1); `value = nstring / literal8` (§5):
/// a value holding NUL, which no IMAP4rev1 string may carry, goes as a literal8.
fn metadata_line(mailbox: Option<&str>, entries: &[(&str, Option<&[u8]>)], utf8: bool) -> Vec<u8> {
    let mut line = b"* METADATA ".to_vec();
    match mailbox {
        Some(name) => names::encode_to(&mut line, name, utf8),
        None => line.extend_from_slice(b"\"\""),
    }
    line.extend_from_slice(b" (");
    for (i, (name, value)) in entries.iter().enumerate() {
        if i > 0 {
            line.push(b' ');
        }
        encode::astring(&mut line, name.as_bytes());
        line.push(b' ');
        match value {
            Some(v) if v.contains(&0) => encode::literal8(&mut line, v),
            Some(v) => encode::string(&mut line, v),
            None => line.extend_from_slice(b"NIL"),
        }
    }
    line.extend_from_slice(b")\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_line_shapes() {
        let line = metadata_line(
            Some("INBOX"),
            &[
                ("/private/comment", Some(b"My comment".as_slice())),
                ("/shared/bin", Some(b"a\0b".as_slice())),
                ("/shared/missing", None),
            ],
            false,
        );
        assert_eq!(
            line,
            b"* METADATA \"INBOX\" (/private/comment \"My comment\" /shared/bin ~{3}\r\na\0b \
              /shared/missing NIL)\r\n"
                .to_vec()
        );
        assert_eq!(
            metadata_line(None, &[("/shared/x", Some(b"".as_slice()))], false),
            b"* METADATA \"\" (/shared/x \"\")\r\n".to_vec()
        );
    }
}
