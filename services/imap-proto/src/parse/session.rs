//! Any-state and not-authenticated commands with arguments: ID (RFC 2971), AUTHENTICATE
//! (RFC 3501 §6.2.2, SASL-IR RFC 4959), LOGIN (RFC 3501 §6.2.3), ENABLE (RFC 5161).

use super::{Cursor, PResult};
use crate::command::CommandBody;

/// `id = "ID" SP id-params-list`; `id-params-list = "(" *(string SP nstring) ")" / nil`.
pub(super) fn id(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    if c.eat_keyword("NIL") {
        return Ok(CommandBody::Id(None));
    }
    let pairs = c.list(true, |c| {
        let key = c.string_utf8()?;
        c.sp()?;
        let value = c.nstring_utf8()?;
        Ok((key, value))
    })?;
    Ok(CommandBody::Id(Some(pairs)))
}

/// `authenticate = "AUTHENTICATE" SP auth-type [SP (base64 / "=")]`. The mechanism is
/// upper-cased (SASL mechanism names are case-insensitive in IMAP's atom form); the initial
/// response is kept as sent.
pub(super) fn authenticate(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let mechanism = c.word()?;
    let initial_response = if c.eat(b' ') {
        let ir = c.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
        if ir.is_empty() {
            return c.fail("invalid initial response");
        }
        Some(String::from_utf8_lossy(ir).into_owned())
    } else {
        None
    };
    Ok(CommandBody::Authenticate {
        mechanism,
        initial_response,
    })
}

/// `login = "LOGIN" SP userid SP password`, both astrings, kept as raw bytes.
pub(super) fn login(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let username = c.astring()?;
    c.sp()?;
    let password = c.astring()?;
    Ok(CommandBody::Login { username, password })
}

/// `enable = "ENABLE" 1*(SP capability)`; capability names upper-cased for matching.
pub(super) fn enable(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    let mut caps = Vec::new();
    while c.eat(b' ') {
        caps.push(c.word()?);
    }
    if caps.is_empty() {
        return c.fail("ENABLE needs at least one capability");
    }
    Ok(CommandBody::Enable(caps))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::command::CommandBody;

    fn s(v: &str) -> String {
        v.to_string()
    }

    #[test]
    fn table() {
        let table: Vec<(&[u8], CommandBody)> = vec![
            (b"a ID NIL\r\n", CommandBody::Id(None)),
            (b"a id nil\r\n", CommandBody::Id(None)),
            (b"a ID ()\r\n", CommandBody::Id(Some(vec![]))),
            (
                b"a ID (\"name\" \"Thunderbird\" \"version\" NIL)\r\n",
                CommandBody::Id(Some(vec![
                    (s("name"), Some(s("Thunderbird"))),
                    (s("version"), None),
                ])),
            ),
            (
                b"a ID ({4}\r\nname \"x\")\r\n",
                CommandBody::Id(Some(vec![(s("name"), Some(s("x")))])),
            ),
            (
                b"a AUTHENTICATE plain\r\n",
                CommandBody::Authenticate {
                    mechanism: s("PLAIN"),
                    initial_response: None,
                },
            ),
            (
                b"a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n",
                CommandBody::Authenticate {
                    mechanism: s("PLAIN"),
                    initial_response: Some(s("AGFsaWNlAHNlY3JldA==")),
                },
            ),
            (
                b"a AUTHENTICATE XOAUTH2 =\r\n",
                CommandBody::Authenticate {
                    mechanism: s("XOAUTH2"),
                    initial_response: Some(s("=")),
                },
            ),
            (
                b"a LOGIN alice secret\r\n",
                CommandBody::Login {
                    username: b"alice".to_vec(),
                    password: b"secret".to_vec(),
                },
            ),
            (
                b"a LOGIN \"al ice\" {6}\r\n\xffs\"c t\r\n",
                CommandBody::Login {
                    username: b"al ice".to_vec(),
                    password: b"\xffs\"c t".to_vec(),
                },
            ),
            (
                b"a LOGIN {5+}\r\nalice \"p\\\\w\"\r\n",
                CommandBody::Login {
                    username: b"alice".to_vec(),
                    password: b"p\\w".to_vec(),
                },
            ),
            (
                b"a ENABLE condstore QRESYNC\r\n",
                CommandBody::Enable(vec![s("CONDSTORE"), s("QRESYNC")]),
            ),
            (
                b"a ENABLE IMAP4rev2\r\n",
                CommandBody::Enable(vec![s("IMAP4REV2")]),
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
            "a ID",
            "a ID (\"name\")",
            "a ID (name \"x\")",
            "a ID (\"a\" \"b\" )",
            "a AUTHENTICATE",
            "a AUTHENTICATE PLAIN ",
            "a AUTHENTICATE PLAIN a b",
            "a AUTHENTICATE PLAIN a*",
            "a LOGIN alice",
            "a LOGIN alice  secret",
            "a LOGIN (alice) secret",
            "a ENABLE",
            "a ENABLE ",
        ] {
            let (tag, _) = parse_err(bad);
            assert_eq!(tag.as_deref(), Some("a"), "{bad}");
        }
    }
}
