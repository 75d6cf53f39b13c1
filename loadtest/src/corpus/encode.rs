//! The byte-level pieces of a message: a seeded generator, base64 and quoted-printable bodies,
//! RFC 2047 encoded words, RFC 5322 dates and header folding. Written out here rather than
//! taken from a MIME library so that the bytes are fixed by this code alone: the workload
//! regenerates a message from its Message-ID and compares it with what a server returns.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use encoding_rs::ISO_2022_JP;

/// SplitMix64: tiny, and its output depends on nothing but the seed (a library RNG may change
/// its stream between versions, which would change the corpus).
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    /// The generator of one stream (message `index` of corpus `seed`, or a part of it).
    pub fn new(seed: u64, stream: u64) -> Rng {
        let mut rng = Rng(seed ^ stream.wrapping_mul(0xD134_2543_DE82_EF95));
        rng.next_u64();
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when n is 0); the modulo bias is far below what matters here.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Log-uniform in `lo..hi`: attachment sizes spread over orders of magnitude, small ones
    /// more often than large ones.
    pub fn log_range(&mut self, lo: u64, hi: u64) -> u64 {
        let f = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        (lo as f64 * (hi as f64 / lo as f64).powf(f)) as u64
    }

    /// Random bytes: attachment payloads are compressed formats, so incompressible.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    pub fn hex(&mut self, digits: usize) -> String {
        let mut s = format!("{:016X}", self.next_u64());
        while s.len() < digits {
            s.push_str(&format!("{:016X}", self.next_u64()));
        }
        s.truncate(digits);
        s
    }
}

/// Base64 in 76-character lines, each ending in CRLF (RFC 2045 §6.8).
pub fn base64_lines(data: &[u8]) -> String {
    let encoded = STANDARD.encode(data);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 38 + 2);
    for line in encoded.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push_str("\r\n");
    }
    out
}

/// Quoted-printable (RFC 2045 §6.7): CRLF kept as hard line breaks, other lines cut by soft
/// breaks so none is longer than 76 characters.
pub fn quoted_printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for (i, line) in text.split("\r\n").enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let bytes = line.as_bytes();
        let mut width = 0;
        for (j, &b) in bytes.iter().enumerate() {
            let last = j + 1 == bytes.len();
            let literal =
                (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let piece = if literal {
                (b as char).to_string()
            } else {
                format!("={b:02X}")
            };
            if width + piece.len() > 75 {
                out.push_str("=\r\n");
                width = 0;
            }
            width += piece.len();
            out.push_str(&piece);
        }
    }
    out
}

/// `text` in ISO-2022-JP (RFC 1468): the encoder returns to ASCII at the end, so every call's
/// output stands alone (one body line, one encoded word).
pub fn iso_2022_jp(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = ISO_2022_JP.encode(text);
    debug_assert!(!unmappable, "not in JIS X 0208: {text}");
    bytes.into_owned()
}

/// RFC 2047 encoded words for a header value, separated by folding whitespace: UTF-8 in `B`
/// encoding, or ISO-2022-JP as Japanese mail user agents write it. Pure ASCII is left as is.
pub fn encoded_words(text: &str, japanese: bool) -> String {
    if text.is_ascii() {
        return text.to_string();
    }
    // Characters per word: an encoded word may be at most 75 characters (RFC 2047 §2).
    let per_word = if japanese { 12 } else { 15 };
    let chars: Vec<char> = text.chars().collect();
    let words: Vec<String> = chars
        .chunks(per_word)
        .map(|chunk| {
            let piece: String = chunk.iter().collect();
            if japanese {
                format!("=?ISO-2022-JP?B?{}?=", STANDARD.encode(iso_2022_jp(&piece)))
            } else {
                format!("=?UTF-8?B?{}?=", STANDARD.encode(piece.as_bytes()))
            }
        })
        .collect();
    words.join("\r\n ")
}

/// A display name and address as `From:`/`To:` carry them.
pub fn mailbox(name: &str, addr: &str, japanese: bool) -> String {
    if name.is_ascii() {
        format!("\"{name}\" <{addr}>")
    } else {
        format!("{} <{addr}>", encoded_words(name, japanese))
    }
}

/// `Name: value` with folding at spaces so lines stay near 78 characters (RFC 5322 §2.2.3);
/// values that already contain folds (encoded words) are kept as they are.
pub fn header(name: &str, value: &str) -> String {
    let mut out = format!("{name}:");
    let mut width = out.len();
    if value.contains("\r\n") {
        return format!("{out} {value}\r\n");
    }
    for word in value.split(' ') {
        if width + 1 + word.len() > 78 && width > name.len() + 1 {
            out.push_str("\r\n");
            width = 0;
        }
        out.push(' ');
        out.push_str(word);
        width += 1 + word.len();
    }
    out.push_str("\r\n");
    out
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// An RFC 5322 date for `unix` seconds, shown in the zone `offset_minutes` east of UTC.
pub fn rfc5322_date(unix: i64, offset_minutes: i64) -> String {
    let local = unix + offset_minutes * 60;
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let off = offset_minutes.abs();
    format!(
        "{}, {d} {} {y} {:02}:{:02}:{:02} {sign}{:02}{:02}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        off / 60,
        off % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) of the proleptic Gregorian calendar (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(rfc5322_date(0, 0), "Thu, 1 Jan 1970 00:00:00 +0000");
        // 2026-11-03 10:00:00 UTC was a Tuesday; in Tokyo it is 19:00.
        assert_eq!(
            rfc5322_date(1_793_700_000, 540),
            "Tue, 3 Nov 2026 19:00:00 +0900"
        );
        assert_eq!(
            rfc5322_date(1_793_700_000, -300),
            "Tue, 3 Nov 2026 05:00:00 -0500"
        );
    }

    #[test]
    fn quoted_printable_lines_stay_short_and_decode() {
        let text = format!("{}é=x \r\nnext line ", "a".repeat(200));
        let qp = quoted_printable(&text);
        assert!(qp.split("\r\n").all(|l| l.len() <= 76), "{qp}");
        // Undo the encoding by hand: soft breaks vanish, =XX become bytes.
        let joined = qp.replace("=\r\n", "");
        let mut decoded = Vec::new();
        let b = joined.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'=' {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                decoded.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                decoded.push(b[i]);
                i += 1;
            }
        }
        assert_eq!(String::from_utf8(decoded).unwrap(), text);
    }

    #[test]
    fn japanese_encoded_words_are_short_and_iso_2022_jp() {
        let words = encoded_words("会議の日程について【重要】ご確認ください", true);
        for w in words.split("\r\n ") {
            assert!(w.len() <= 75, "{w}");
            assert!(w.starts_with("=?ISO-2022-JP?B?"), "{w}");
        }
        assert_eq!(iso_2022_jp("日本"), b"\x1b$BF|K\\\x1b(B");
    }
}
