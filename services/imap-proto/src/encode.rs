//! Response encoding helpers (API contract; see the helper brief).

/// Appends `s` as an IMAP `astring`-safe string: atom when possible, quoted when it has no
/// CR/LF/NUL/8-bit bytes, otherwise a literal `{n}\r\n...` (or `~{n}` never: use [`literal8`]).
pub fn astring(out: &mut Vec<u8>, s: &[u8]) {
    let _ = (out, s);
    todo!("encoder")
}

/// Appends `s` as `nstring`: quoted or literal, never an atom; `NIL` for `None`.
pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    let _ = (out, s);
    todo!("encoder")
}

/// Appends `s` as a quoted string or, if it cannot be quoted, a literal.
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    let _ = (out, s);
    todo!("encoder")
}

/// Appends `{n}\r\n` followed by the bytes.
pub fn literal(out: &mut Vec<u8>, s: &[u8]) {
    let _ = (out, s);
    todo!("encoder")
}

/// Appends `~{n}\r\n` followed by the bytes (RFC 3516 literal8).
pub fn literal8(out: &mut Vec<u8>, s: &[u8]) {
    let _ = (out, s);
    todo!("encoder")
}

/// Formats a `date-time` (RFC 3501 §9): `"dd-Mon-yyyy hh:mm:ss +zzzz"` with the quotes.
pub fn date_time(unix_seconds: i64, tz_offset_minutes: i32) -> String {
    let _ = (unix_seconds, tz_offset_minutes);
    todo!("encoder")
}

/// Encodes a UTF-8 mailbox name in modified UTF-7 (RFC 3501 §5.1.3).
pub fn mutf7_encode(name: &str) -> String {
    let _ = name;
    todo!("encoder")
}

/// Decodes a modified UTF-7 mailbox name; `None` when it is not valid modified UTF-7.
pub fn mutf7_decode(name: &[u8]) -> Option<String> {
    let _ = name;
    todo!("encoder")
}
