//! REPLACE and UID REPLACE (RFC 8508 §6):
//! `replace = "REPLACE" SP seq-number SP mailbox append-message`,
//! `uid-replace = "UID" SP "REPLACE" SP uniqueid SP mailbox append-message`.

use super::mailbox::{append_message, mailbox};
use super::{Cursor, PResult};
use crate::command::CommandBody;

pub(super) fn replace(c: &mut Cursor<'_>, uid: bool) -> PResult<CommandBody> {
    c.sp()?;
    // One message only: a sequence number or UID, never a set, `*` or `$`.
    let target = c.nz_number()?;
    c.sp()?;
    let mailbox = mailbox(c)?;
    let message = append_message(c)?;
    c.end()?;
    Ok(CommandBody::Replace {
        uid,
        target,
        mailbox,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::command::*;
    use bytes::Bytes;

    #[test]
    fn rfc8508_examples() {
        // RFC 8508 §3.1 and §3.2 shapes.
        assert_eq!(
            wire_body(b"A003 REPLACE 4 Drafts (\\Seen \\Draft) {5}\r\nHello\r\n"),
            CommandBody::Replace {
                uid: false,
                target: 4,
                mailbox: b"Drafts".to_vec(),
                message: AppendMessage {
                    flags: vec!["\\Seen".into(), "\\Draft".into()],
                    internal_date: None,
                    message: AppendBody::Inline(Bytes::from_static(b"Hello")),
                    binary: false,
                },
            }
        );
        let CommandBody::Replace {
            uid,
            target,
            mailbox,
            message,
        } = wire_body(
            b"B004 UID REPLACE 2000 \"Other Folder\" \"04-Jul-2024 14:34:56 +0200\" ~{3+}\r\na\0b\r\n",
        )
        else {
            panic!("not a REPLACE");
        };
        assert!(uid);
        assert_eq!(target, 2000);
        assert_eq!(mailbox, b"Other Folder".to_vec());
        assert!(message.flags.is_empty());
        assert!(message.internal_date.is_some());
        assert!(message.binary);
        assert_eq!(
            message.message,
            AppendBody::Inline(Bytes::from_static(b"a\0b"))
        );
    }

    #[test]
    fn errors() {
        for bad in [
            &b"a REPLACE\r\n"[..],
            b"a REPLACE 1\r\n",
            b"a REPLACE 1 INBOX\r\n",
            b"a REPLACE 0 INBOX {1}\r\nx\r\n",
            b"a REPLACE * INBOX {1}\r\nx\r\n",
            b"a REPLACE 1:2 INBOX {1}\r\nx\r\n",
            b"a UID REPLACE 1,2 INBOX {1}\r\nx\r\n",
            b"a REPLACE 1 INBOX \"x\"\r\n",
            // One message only: no MULTIAPPEND shape.
            b"a REPLACE 1 INBOX {1}\r\nx {1}\r\ny\r\n",
        ] {
            let out = wire(bad);
            assert!(
                out.iter()
                    .any(|r| matches!(r, crate::Received::Error { .. })),
                "{:?}: {out:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
