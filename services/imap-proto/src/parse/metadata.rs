//! METADATA commands (RFC 5464 §4): GETMETADATA and SETMETADATA.

use super::mailbox::mailbox;
use super::{Cursor, PResult};
use crate::command::{AppendBody, CommandBody, MetadataDepth, MetadataOptions};

/// `getmetadata = "GETMETADATA" [SP getmetadata-options] SP mailbox SP entries`,
/// `getmetadata-options = "(" getmetadata-option *(SP getmetadata-option) ")"`,
/// `entries = entry / "(" entry *(SP entry) ")"` (RFC 5464 §5). A mailbox never starts with
/// `(`, so an opening parenthesis after the command name is the option list.
pub(super) fn getmetadata(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let mut options = MetadataOptions::default();
    if c.peek() == Some(b'(') {
        let mut seen_maxsize = false;
        let mut seen_depth = false;
        c.list(false, |c| {
            match c.word()?.as_str() {
                // `maxsize-opt = "MAXSIZE" SP number` (RFC 5464 §4.2.1).
                "MAXSIZE" if !seen_maxsize => {
                    seen_maxsize = true;
                    c.sp()?;
                    options.max_size = Some(u64::from(c.number()?));
                }
                // `scope-opt = "DEPTH" SP ("0" / "1" / "infinity")` (RFC 5464 §4.2.2).
                "DEPTH" if !seen_depth => {
                    seen_depth = true;
                    c.sp()?;
                    options.depth = if c.eat_keyword("infinity") {
                        MetadataDepth::Infinity
                    } else {
                        match c.number()? {
                            0 => MetadataDepth::Zero,
                            1 => MetadataDepth::One,
                            _ => return c.fail("DEPTH must be 0, 1 or infinity"),
                        }
                    };
                }
                "MAXSIZE" | "DEPTH" => return c.fail("GETMETADATA option given twice"),
                _ => return c.fail("unknown GETMETADATA option"),
            }
            Ok(())
        })?;
        c.sp()?;
    }
    let mailbox = mailbox(c)?;
    c.sp()?;
    let entries = if c.peek() == Some(b'(') {
        c.list(false, entry)?
    } else {
        vec![entry(c)?]
    };
    Ok(CommandBody::GetMetadata {
        mailbox,
        options,
        entries,
    })
}

/// `setmetadata = "SETMETADATA" SP mailbox SP entry-values`,
/// `entry-values = "(" entry-value *(SP entry-value) ")"`, `entry-value = entry SP value`,
/// `value = nstring / literal8` (RFC 5464 §5).
pub(super) fn setmetadata(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let mailbox = mailbox(c)?;
    c.sp()?;
    let entries = c.list(false, |c| {
        let name = entry(c)?;
        c.sp()?;
        Ok((name, value(c)?))
    })?;
    Ok(CommandBody::SetMetadata { mailbox, entries })
}

/// `entry = astring`: a slash-separated path under `/private` or `/shared` (RFC 5464 §3.2). Entry
/// names are case-insensitive, so they are returned lower-cased; they must be UTF-8, must not
/// hold `*`, `%` or control characters, and must have neither empty components (`//`) nor a
/// trailing `/`.
fn entry(c: &mut Cursor<'_>) -> PResult<String> {
    let raw = c.astring()?;
    let Ok(name) = String::from_utf8(raw) else {
        return c.fail("entry name is not UTF-8");
    };
    let name = name.to_lowercase();
    let under_root = ["/private", "/shared"].iter().any(|root| {
        name == *root
            || name
                .strip_prefix(root)
                .is_some_and(|rest| rest.starts_with('/'))
    });
    if !under_root {
        return c.fail("entry name must start with /private or /shared");
    }
    if name.ends_with('/')
        || name.contains("//")
        || name
            .chars()
            .any(|ch| ch == '*' || ch == '%' || ch.is_control())
    {
        return c.fail("invalid entry name");
    }
    Ok(name)
}

/// `value = nstring / literal8`; `None` for NIL.
fn value(c: &mut Cursor<'_>) -> PResult<Option<Vec<u8>>> {
    match c.peek() {
        Some(b'"') => c.quoted().map(Some),
        Some(b'{' | b'~') => match c.literal(true)?.0 {
            AppendBody::Inline(b) => Ok(Some(b.to_vec())),
            // The receiver streams only APPEND message literals.
            AppendBody::Streamed { .. } | AppendBody::Catenate(_) => c.fail("literal too large"),
        },
        _ if c.eat_keyword("NIL") => Ok(None),
        _ => c.fail("expected a value (string, literal8 or NIL)"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::command::{CommandBody, MetadataDepth, MetadataOptions};

    fn get(mailbox: &str, options: MetadataOptions, entries: &[&str]) -> CommandBody {
        CommandBody::GetMetadata {
            mailbox: mailbox.as_bytes().to_vec(),
            options,
            entries: entries.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn getmetadata_table() {
        let table: Vec<(&[u8], CommandBody)> = vec![
            // RFC 5464 §4.2 examples.
            (
                b"a GETMETADATA \"\" /shared/comment\r\n",
                get("", MetadataOptions::default(), &["/shared/comment"]),
            ),
            (
                b"a GETMETADATA INBOX (/shared/Comment /Private/comment)\r\n",
                get(
                    "INBOX",
                    MetadataOptions::default(),
                    &["/shared/comment", "/private/comment"],
                ),
            ),
            (
                b"a GETMETADATA (MAXSIZE 1024) INBOX /shared/comment\r\n",
                get(
                    "INBOX",
                    MetadataOptions {
                        max_size: Some(1024),
                        depth: MetadataDepth::Zero,
                    },
                    &["/shared/comment"],
                ),
            ),
            (
                b"a GETMETADATA (DEPTH 1) INBOX (/private/filters/values)\r\n",
                get(
                    "INBOX",
                    MetadataOptions {
                        max_size: None,
                        depth: MetadataDepth::One,
                    },
                    &["/private/filters/values"],
                ),
            ),
            (
                b"a GETMETADATA (depth INFINITY maxsize 0) \"\" /shared\r\n",
                get(
                    "",
                    MetadataOptions {
                        max_size: Some(0),
                        depth: MetadataDepth::Infinity,
                    },
                    &["/shared"],
                ),
            ),
            (
                b"a GETMETADATA INBOX {15}\r\n/shared/comment\r\n",
                get("INBOX", MetadataOptions::default(), &["/shared/comment"]),
            ),
        ];
        for (input, want) in table {
            assert_eq!(
                wire_body(input),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn setmetadata_table() {
        let table: Vec<(&[u8], CommandBody)> = vec![
            (
                b"a SETMETADATA INBOX (/private/comment \"My new comment\")\r\n",
                CommandBody::SetMetadata {
                    mailbox: b"INBOX".to_vec(),
                    entries: vec![("/private/comment".into(), Some(b"My new comment".to_vec()))],
                },
            ),
            (
                b"a SETMETADATA \"\" (/shared/Comment NIL /private/x {3}\r\nabc)\r\n",
                CommandBody::SetMetadata {
                    mailbox: vec![],
                    entries: vec![
                        ("/shared/comment".into(), None),
                        ("/private/x".into(), Some(b"abc".to_vec())),
                    ],
                },
            ),
            (
                b"a SETMETADATA INBOX (/shared/bin ~{3+}\r\na\x00b)\r\n",
                CommandBody::SetMetadata {
                    mailbox: b"INBOX".to_vec(),
                    entries: vec![("/shared/bin".into(), Some(b"a\x00b".to_vec()))],
                },
            ),
            (
                b"a SETMETADATA INBOX (/shared/e \"\")\r\n",
                CommandBody::SetMetadata {
                    mailbox: b"INBOX".to_vec(),
                    entries: vec![("/shared/e".into(), Some(vec![]))],
                },
            ),
        ];
        for (input, want) in table {
            assert_eq!(
                wire_body(input),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn malformed_commands_are_refused() {
        for bad in [
            "a GETMETADATA",
            "a GETMETADATA INBOX",
            "a GETMETADATA INBOX ()",
            "a GETMETADATA INBOX comment",
            "a GETMETADATA INBOX /public/comment",
            "a GETMETADATA INBOX /sharedx",
            "a GETMETADATA INBOX /shared/",
            "a GETMETADATA INBOX /shared//a",
            "a GETMETADATA INBOX /shared/a*",
            "a GETMETADATA INBOX \"/shared/a%\"",
            "a GETMETADATA (DEPTH 2) INBOX /shared/a",
            "a GETMETADATA (DEPTH 1 DEPTH 0) INBOX /shared/a",
            "a GETMETADATA (MAXSIZE -1) INBOX /shared/a",
            "a GETMETADATA (FOO 1) INBOX /shared/a",
            "a GETMETADATA () INBOX /shared/a",
            "a SETMETADATA INBOX /shared/a \"x\"",
            "a SETMETADATA INBOX (/shared/a)",
            "a SETMETADATA INBOX (/shared/a x)",
            "a SETMETADATA INBOX ()",
        ] {
            parse_err(bad);
        }
    }
}
