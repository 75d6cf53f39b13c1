//! QUOTA commands (RFC 9208 §4): GETQUOTA, GETQUOTAROOT and SETQUOTA.

use super::mailbox::mailbox;
use super::{Cursor, PResult};
use crate::command::CommandBody;

/// `getquota = "GETQUOTA" SP quota-root-name`, `quota-root-name = astring`.
pub(super) fn getquota(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    Ok(CommandBody::GetQuota { root: c.astring()? })
}

/// `getquotaroot = "GETQUOTAROOT" SP mailbox`.
pub(super) fn getquotaroot(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    Ok(CommandBody::GetQuotaRoot {
        mailbox: mailbox(c)?,
    })
}

/// `setquota = "SETQUOTA" SP quota-root-name SP setquota-list`,
/// `setquota-list = "(" [setquota-resource *(SP setquota-resource)] ")"`,
/// `setquota-resource = resource-name SP resource-limit`, `resource-limit = number64`.
pub(super) fn setquota(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let root = c.astring()?;
    c.sp()?;
    let limits = c.list(true, |c| {
        let name = c.word()?;
        c.sp()?;
        Ok((name, c.number64()?))
    })?;
    Ok(CommandBody::SetQuota { root, limits })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::command::CommandBody;

    #[test]
    fn table() {
        let table: Vec<(&[u8], CommandBody)> = vec![
            (
                b"G0001 GETQUOTA \"\"\r\n",
                CommandBody::GetQuota { root: vec![] },
            ),
            (
                b"a getquota {4}\r\nroot\r\n",
                CommandBody::GetQuota {
                    root: b"root".to_vec(),
                },
            ),
            (
                b"G0002 GETQUOTAROOT INBOX\r\n",
                CommandBody::GetQuotaRoot {
                    mailbox: b"INBOX".to_vec(),
                },
            ),
            (
                b"S0000 SETQUOTA \"\" (STORAGE 512)\r\n",
                CommandBody::SetQuota {
                    root: vec![],
                    limits: vec![("STORAGE".into(), 512)],
                },
            ),
            (
                b"a SETQUOTA x (storage 1 message 9223372036854775807)\r\n",
                CommandBody::SetQuota {
                    root: b"x".to_vec(),
                    limits: vec![
                        ("STORAGE".into(), 1),
                        ("MESSAGE".into(), 9_223_372_036_854_775_807),
                    ],
                },
            ),
            (
                b"a SETQUOTA \"\" ()\r\n",
                CommandBody::SetQuota {
                    root: vec![],
                    limits: vec![],
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
    fn errors() {
        for bad in [
            "a GETQUOTA",
            "a GETQUOTA a b",
            "a GETQUOTAROOT",
            "a SETQUOTA \"\"",
            "a SETQUOTA \"\" STORAGE 5",
            "a SETQUOTA \"\" (STORAGE)",
            "a SETQUOTA \"\" (STORAGE -1)",
            "a SETQUOTA \"\" (STORAGE 9223372036854775808)",
        ] {
            let (tag, _) = parse_err(bad);
            assert_eq!(tag.as_deref(), Some("a"), "{bad}");
        }
    }
}
