//! Content-Transfer-Encoding decoding for FETCH BINARY (RFC 3516).

use crate::TransferEncoding;

/// Decodes a part's content for BINARY[] (base64 / quoted-printable); None if undecodable (→ NO
/// [UNKNOWN-CTE]). Identity encodings (7bit, 8bit, binary) return the content unchanged.
pub fn decode_transfer_encoding(content: &[u8], enc: TransferEncoding) -> Option<Vec<u8>> {
    match enc {
        TransferEncoding::SevenBit | TransferEncoding::EightBit | TransferEncoding::Binary => {
            Some(content.to_vec())
        }
        TransferEncoding::Base64 => decode_base64(content),
        TransferEncoding::QuotedPrintable => Some(decode_quoted_printable(content)),
        TransferEncoding::Other => None,
    }
}

fn base64_value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// RFC 2045 §6.8: line breaks and other whitespace are ignored; decoding stops at the first `=`
/// pad. Any other character outside the alphabet makes the content undecodable (§6.8 says to
/// ignore them, but silently dropping bytes would hand the client corrupted data as if it were
/// fine; RFC 3516 §4.3 lets the server refuse instead).
fn decode_base64(content: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(content.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in content {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == b'=' {
            break;
        }
        acc = (acc << 6) | base64_value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A single leftover sextet cannot encode a byte: truncated input.
    if bits >= 6 {
        return None;
    }
    Some(out)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// RFC 2045 §6.7: `=XX` octets, `=` CRLF soft line breaks, trailing whitespace on a line dropped.
/// Malformed `=` sequences are kept literally, as §6.7 note (2) recommends.
fn decode_quoted_printable(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len());
    for line in content.split_inclusive(|&c| c == b'\n') {
        let (body, eol): (&[u8], &[u8]) = if let Some(b) = line.strip_suffix(b"\r\n") {
            (b, b"\r\n")
        } else if let Some(b) = line.strip_suffix(b"\n") {
            (b, b"\n")
        } else {
            (line, b"")
        };
        // Transport may add trailing whitespace; it is never part of the data (rule 3).
        let end = body
            .iter()
            .rposition(|&c| c != b' ' && c != b'\t')
            .map_or(0, |p| p + 1);
        let body = &body[..end];
        let (body, soft) = match body.strip_suffix(b"=") {
            Some(b) => (b, true),
            None => (body, false),
        };
        let mut i = 0;
        while i < body.len() {
            let c = body[i];
            if c == b'='
                && let (Some(h), Some(l)) = (
                    body.get(i + 1).copied().and_then(hex_value),
                    body.get(i + 2).copied().and_then(hex_value),
                )
            {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
            out.push(c);
            i += 1;
        }
        if !soft {
            out.extend_from_slice(eol);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(
            decode_transfer_encoding(
                b"SGVs\r\nbG8s\r\nIHdvcmxkIQ==\r\n",
                TransferEncoding::Base64
            ),
            Some(b"Hello, world!".to_vec())
        );
        assert_eq!(
            decode_transfer_encoding(b"SGV*", TransferEncoding::Base64),
            None
        );
        assert_eq!(
            decode_transfer_encoding(b"S", TransferEncoding::Base64),
            None
        );
        assert_eq!(
            decode_transfer_encoding(b"", TransferEncoding::Base64),
            Some(vec![])
        );
    }

    #[test]
    fn quoted_printable() {
        assert_eq!(
            decode_transfer_encoding(
                b"caf=C3=A9 =3D x  \r\nlong=\r\nline=ZZ\r\n",
                TransferEncoding::QuotedPrintable
            ),
            Some("café = x\r\nlongline=ZZ\r\n".as_bytes().to_vec())
        );
    }

    #[test]
    fn identity_and_unknown() {
        assert_eq!(
            decode_transfer_encoding(b"\x00\xff", TransferEncoding::Binary),
            Some(vec![0, 0xff])
        );
        assert_eq!(
            decode_transfer_encoding(b"x", TransferEncoding::Other),
            None
        );
    }
}
