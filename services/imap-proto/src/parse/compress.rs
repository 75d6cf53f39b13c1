//! COMPRESS (RFC 4978 §3).

use super::{Cursor, PResult};
use crate::command::CommandBody;

/// `compress = "COMPRESS" SP algorithm`, `algorithm = atom`. The mechanism is returned
/// upper-cased; whether it is one the server offers is the session's decision (RFC 4978 §3 asks
/// for a tagged BAD for an unknown one, which the session gives).
pub(super) fn compress(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    Ok(CommandBody::Compress {
        mechanism: c.word()?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::command::CommandBody;

    #[test]
    fn table() {
        let table: Vec<(&[u8], CommandBody)> = vec![
            (
                b"a COMPRESS DEFLATE\r\n",
                CommandBody::Compress {
                    mechanism: "DEFLATE".into(),
                },
            ),
            (
                b"b compress deflate\r\n",
                CommandBody::Compress {
                    mechanism: "DEFLATE".into(),
                },
            ),
            (
                b"c COMPRESS LZ4\r\n",
                CommandBody::Compress {
                    mechanism: "LZ4".into(),
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
        for bad in [
            "a COMPRESS",
            "a COMPRESS ",
            "a COMPRESS DEFLATE extra",
            "a COMPRESS \"DEFLATE\"",
        ] {
            parse_err(bad);
        }
    }
}
