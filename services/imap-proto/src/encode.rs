//! Response encoding helpers: the string forms of RFC 3501 §4.3 / §9 (atom, quoted, literal),
//! literal8 (RFC 3516), `date-time` and modified UTF-7 mailbox names (RFC 3501 §5.1.3).

use crate::civil;

/// `ATOM-CHAR` (RFC 3501 §9): any CHAR except atom-specials, i.e. not `(` `)` `{` SP, CTL,
/// `%` `*` (list-wildcards), `"` `\` (quoted-specials) or `]` (resp-specials).
pub(crate) fn is_atom_char(b: u8) -> bool {
    matches!(b, 0x21..=0x7e) && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// `ASTRING-CHAR` (RFC 3501 §9): ATOM-CHAR or `]`.
pub(crate) fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

/// Whether `s` fits in a quoted string: RFC 3501 §4.3 forbids CR and LF, `TEXT-CHAR` excludes
/// NUL, and 7-bit `CHAR` excludes 8-bit bytes (those need a literal for rev1 clients).
fn can_quote(s: &[u8]) -> bool {
    s.iter()
        .all(|&b| b != 0 && b != b'\r' && b != b'\n' && b < 0x80)
}

/// Appends `s` as an IMAP `astring`-safe string: atom when possible, quoted when it has no
/// CR/LF/NUL/8-bit bytes, otherwise a literal `{n}\r\n...` (or `~{n}` never: use [`literal8`]).
///
/// `NIL` (any case) is quoted although it is a valid atom: in positions where the grammar allows
/// `nstring` a client could read it as the NIL token.
pub fn astring(out: &mut Vec<u8>, s: &[u8]) {
    if !s.is_empty() && s.iter().all(|&b| is_astring_char(b)) && !s.eq_ignore_ascii_case(b"NIL") {
        out.extend_from_slice(s);
    } else {
        string(out, s);
    }
}

/// Appends `s` as `nstring`: quoted or literal, never an atom; `NIL` for `None`.
pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// Appends `s` as a quoted string or, if it cannot be quoted, a literal.
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    if can_quote(s) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        for &b in s {
            // quoted-specials are escaped with a backslash (RFC 3501 §9 `QUOTED-CHAR`).
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, s);
    }
}

/// Appends `s` as a string for an IMAP4rev2 (RFC 9051 §4.3) or UTF8=ACCEPT session: quoted when it
/// is valid UTF-8 without CR, LF or NUL (rev2's `QUOTED-CHAR` includes `UTF8-2..4`), otherwise a
/// literal.
pub fn string_utf8(out: &mut Vec<u8>, s: &[u8]) {
    if std::str::from_utf8(s).is_ok() && !s.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, s);
    }
}

/// Writes ascending numbers as a compact `sequence-set` (RFC 3501 §9): runs of consecutive
/// numbers become `a:b`. Used for ESEARCH `ALL` (RFC 4731 §3.1) over sequence numbers or UIDs.
pub fn sequence_set(numbers: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < numbers.len() {
        let start = numbers[i];
        let mut end = start;
        while i + 1 < numbers.len() && numbers[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = numbers[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// Appends `{n}\r\n` followed by the bytes.
pub fn literal(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len() + 24);
    out.push(b'{');
    out.extend_from_slice(s.len().to_string().as_bytes());
    out.extend_from_slice(b"}\r\n");
    out.extend_from_slice(s);
}

/// Appends `~{n}\r\n` followed by the bytes (RFC 3516 literal8).
pub fn literal8(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'~');
    literal(out, s);
}

/// The range of local times `date-time` can show: its `date-year` is exactly four digits.
const MIN_LOCAL_SECONDS: i64 = -62_167_219_200; // 0000-01-01 00:00:00
const MAX_LOCAL_SECONDS: i64 = 253_402_300_799; // 9999-12-31 23:59:59
/// `zone` is `("+" / "-") 4DIGIT`, so offsets are shown up to ±99:59.
const MAX_ZONE_MINUTES: i32 = 99 * 60 + 59;

/// Formats a `date-time` (RFC 3501 §9): `"dd-Mon-yyyy hh:mm:ss +zzzz"` with the quotes.
///
/// The day is written as two digits (`date-day-fixed` allows both `SP DIGIT` and `2DIGIT`).
/// Instants whose local year falls outside 0000..=9999 are clamped, because `date-year` has
/// exactly four digits.
pub fn date_time(unix_seconds: i64, tz_offset_minutes: i32) -> String {
    let zone = tz_offset_minutes.clamp(-MAX_ZONE_MINUTES, MAX_ZONE_MINUTES);
    let local = unix_seconds
        .saturating_add(i64::from(zone) * 60)
        .clamp(MIN_LOCAL_SECONDS, MAX_LOCAL_SECONDS);
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (year, month, day) = civil::civil_from_days(days);
    let sign = if zone < 0 { '-' } else { '+' };
    let zone_abs = zone.unsigned_abs();
    format!(
        "\"{:02}-{}-{:04} {:02}:{:02}:{:02} {}{:02}{:02}\"",
        day,
        civil::MONTHS[(month - 1) as usize],
        year,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        sign,
        zone_abs / 60,
        zone_abs % 60
    )
}

/// Modified BASE64 alphabet (RFC 3501 §5.1.3): RFC 2045 base64 with `,` instead of `/`.
const MBASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn mbase64_value(b: u8) -> Option<u32> {
    match b {
        b'A'..=b'Z' => Some(u32::from(b - b'A')),
        b'a'..=b'z' => Some(u32::from(b - b'a') + 26),
        b'0'..=b'9' => Some(u32::from(b - b'0') + 52),
        b'+' => Some(62),
        b',' => Some(63),
        _ => None,
    }
}

/// Writes the UTF-16BE units as a `&...-` shifted run, without padding (RFC 3501 §5.1.3).
fn flush_shifted(out: &mut String, units: &mut Vec<u16>) {
    if units.is_empty() {
        return;
    }
    out.push('&');
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for unit in units.drain(..) {
        for byte in unit.to_be_bytes() {
            acc = (acc << 8) | u32::from(byte);
            bits += 8;
            while bits >= 6 {
                bits -= 6;
                out.push(char::from(MBASE64[((acc >> bits) & 0x3f) as usize]));
            }
        }
    }
    if bits > 0 {
        out.push(char::from(MBASE64[((acc << (6 - bits)) & 0x3f) as usize]));
    }
    out.push('-');
}

/// Encodes a UTF-8 mailbox name in modified UTF-7 (RFC 3501 §5.1.3).
///
/// Printable US-ASCII (0x20..=0x7e) stands for itself, `&` becomes `&-`, and every other run of
/// characters is UTF-16BE in modified BASE64 between `&` and `-`.
pub fn mutf7_encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut units: Vec<u16> = Vec::new();
    for ch in name.chars() {
        if (' '..='~').contains(&ch) {
            flush_shifted(&mut out, &mut units);
            if ch == '&' {
                out.push_str("&-");
            } else {
                out.push(ch);
            }
        } else {
            let mut buf = [0u16; 2];
            units.extend_from_slice(ch.encode_utf16(&mut buf));
        }
    }
    flush_shifted(&mut out, &mut units);
    out
}

/// Decodes a modified UTF-7 mailbox name; `None` when it is not valid modified UTF-7.
///
/// Rejected (RFC 3501 §5.1.3): bytes outside printable US-ASCII, an unterminated `&` run, a run
/// whose bits do not make whole UTF-16 units or leave non-zero padding bits, unpaired
/// surrogates, and runs that encode printable US-ASCII (which "MUST NOT" be shifted).
pub fn mutf7_decode(name: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < name.len() {
        let b = name[i];
        if b == b'&' {
            let end = i + 1 + name[i + 1..].iter().position(|&c| c == b'-')?;
            let run = &name[i + 1..end];
            if run.is_empty() {
                out.push('&');
            } else {
                decode_run(run, &mut out)?;
            }
            i = end + 1;
        } else if (0x20..=0x7e).contains(&b) {
            out.push(char::from(b));
            i += 1;
        } else {
            return None;
        }
    }
    Some(out)
}

fn decode_run(run: &[u8], out: &mut String) -> Option<()> {
    let mut units = Vec::with_capacity(run.len() * 6 / 16);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in run {
        acc = ((acc << 6) | mbase64_value(c)?) & 0x3f_ffff;
        bits += 6;
        if bits >= 16 {
            bits -= 16;
            units.push(((acc >> bits) & 0xffff) as u16);
        }
    }
    // Fewer than 6 leftover bits, all zero: anything else is not a minimal UTF-16 encoding.
    if bits >= 6 || acc & ((1 << bits) - 1) != 0 {
        return None;
    }
    for ch in char::decode_utf16(units) {
        let ch = ch.ok()?;
        if (' '..='~').contains(&ch) {
            return None;
        }
        out.push(ch);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl Fn(&mut Vec<u8>, &[u8]), s: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut out, s);
        out
    }

    #[test]
    fn astring_forms() {
        let table: &[(&[u8], &[u8])] = &[
            (b"INBOX", b"INBOX"),
            (b"a]b", b"a]b"),
            (b"Sent.2024", b"Sent.2024"),
            (b"", b"\"\""),
            (b"nil", b"\"nil\""),
            (b"two words", b"\"two words\""),
            (b"a(b", b"\"a(b\""),
            (b"a{b", b"\"a{b\""),
            (b"50%", b"\"50%\""),
            (b"a*", b"\"a*\""),
            (b"say \"hi\"", b"\"say \\\"hi\\\"\""),
            (b"back\\slash", b"\"back\\\\slash\""),
            (b"line\r\nbreak", b"{11}\r\nline\r\nbreak"),
            (b"nul\0", b"{4}\r\nnul\0"),
            ("caf\u{e9}".as_bytes(), b"{5}\r\ncaf\xc3\xa9"),
            (b"tab\there", b"\"tab\there\""),
        ];
        for (input, want) in table {
            assert_eq!(
                enc(astring, input),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn string_and_nstring_forms() {
        assert_eq!(enc(string, b"INBOX"), b"\"INBOX\"");
        assert_eq!(enc(string, b""), b"\"\"");
        assert_eq!(enc(string, b"a\"b"), b"\"a\\\"b\"");
        assert_eq!(enc(string, b"\n"), b"{1}\r\n\n");
        assert_eq!(enc(string, b"\xff"), b"{1}\r\n\xff");
        let mut out = Vec::new();
        nstring(&mut out, None);
        out.push(b' ');
        nstring(&mut out, Some(b"NIL"));
        out.push(b' ');
        nstring(&mut out, Some(b"x\ry"));
        assert_eq!(out, b"NIL \"NIL\" {3}\r\nx\ry");
    }

    #[test]
    fn utf8_strings() {
        assert_eq!(
            enc(string_utf8, "caf\u{e9}".as_bytes()),
            "\"caf\u{e9}\"".as_bytes()
        );
        assert_eq!(enc(string_utf8, b"a\"b\\"), b"\"a\\\"b\\\\\"");
        assert_eq!(enc(string_utf8, b"\xff"), b"{1}\r\n\xff");
        assert_eq!(enc(string_utf8, b"a\nb"), b"{3}\r\na\nb");
        assert_eq!(enc(string_utf8, b""), b"\"\"");
    }

    #[test]
    fn sequence_sets() {
        assert_eq!(sequence_set(&[]), "");
        assert_eq!(sequence_set(&[7]), "7");
        assert_eq!(sequence_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(
            sequence_set(&[u32::MAX - 1, u32::MAX]),
            "4294967294:4294967295"
        );
    }

    #[test]
    fn literals() {
        assert_eq!(enc(literal, b""), b"{0}\r\n");
        assert_eq!(enc(literal, b"hello"), b"{5}\r\nhello");
        assert_eq!(enc(literal8, b"\0\x01"), b"~{2}\r\n\0\x01");
    }

    #[test]
    fn date_times() {
        let table: &[(i64, i32, &str)] = &[
            (0, 0, "\"01-Jan-1970 00:00:00 +0000\""),
            (-1, 0, "\"31-Dec-1969 23:59:59 +0000\""),
            (951_782_400, 0, "\"29-Feb-2000 00:00:00 +0000\""),
            // 2024-07-04 12:34:56 UTC shown in +02:00 and -07:30.
            (1_720_096_496, 120, "\"04-Jul-2024 14:34:56 +0200\""),
            (1_720_096_496, -450, "\"04-Jul-2024 05:04:56 -0730\""),
            (1_704_067_199, 60, "\"01-Jan-2024 00:59:59 +0100\""),
            (1_704_067_200, -1, "\"31-Dec-2023 23:59:00 -0001\""),
            (i64::MAX, 0, "\"31-Dec-9999 23:59:59 +0000\""),
            (i64::MIN, 0, "\"01-Jan-0000 00:00:00 +0000\""),
            (0, 100_000, "\"05-Jan-1970 03:59:00 +9959\""),
        ];
        for &(secs, tz, want) in table {
            assert_eq!(date_time(secs, tz), want, "{secs} {tz}");
        }
    }

    #[test]
    fn mutf7_round_trips() {
        let table: &[(&str, &str)] = &[
            ("INBOX", "INBOX"),
            ("", ""),
            ("&", "&-"),
            ("Tom & Jerry", "Tom &- Jerry"),
            (
                "~peter/mail/\u{53f0}\u{5317}/\u{65e5}\u{672c}\u{8a9e}",
                "~peter/mail/&U,BTFw-/&ZeVnLIqe-",
            ),
            ("Entw\u{fc}rfe", "Entw&APw-rfe"),
            ("\u{e9}", "&AOk-"),
            ("\u{1f600}", "&2D3eAA-"),
            ("a\tb", "a&AAk-b"),
            ("Gel\u{f6}scht & \u{dc}ber", "Gel&APY-scht &- &ANw-ber"),
        ];
        for &(utf8, utf7) in table {
            assert_eq!(mutf7_encode(utf8), utf7, "{utf8:?}");
            assert_eq!(
                mutf7_decode(utf7.as_bytes()).as_deref(),
                Some(utf8),
                "{utf7}"
            );
        }
    }

    #[test]
    fn mutf7_rejects() {
        let bad: &[&[u8]] = &[
            b"&",           // unterminated
            b"&AOk",        // unterminated run
            b"&AO-",        // 12 bits: not a whole UTF-16 unit
            b"&AOl-",       // non-zero padding bits
            b"&AGE-",       // shifted printable ASCII ('a')
            b"&2D0-",       // lone high surrogate
            b"&AOk/-",      // '/' is not in modified BASE64
            b"caf\xc3\xa9", // raw 8-bit
            b"a\nb",        // control character
            b"&AOkA6Q=-",   // padding is not allowed
        ];
        for input in bad {
            assert_eq!(
                mutf7_decode(input),
                None,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn char_classes() {
        for b in 0u8..=255 {
            let atom = is_atom_char(b);
            let expected = (0x21..0x7f).contains(&b) && !b"(){%*\"\\]".contains(&b);
            assert_eq!(atom, expected, "{b:#x}");
            assert_eq!(is_astring_char(b), expected || b == b']');
        }
    }
}
