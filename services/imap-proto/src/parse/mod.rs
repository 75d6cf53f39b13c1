//! Recursive-descent parser for one complete (or, for the pre-continuation check, partial)
//! command. The receiver hands over the command text with line endings removed and the literals
//! it has read; a literal is recognised in the text by its `{n}` / `{n+}` / `~{n}` marker, which
//! must sit exactly where the receiver cut the line (RFC 3501 §4.3: a literal's octets follow the
//! CRLF after the marker).
//!
//! One module per command family, each with its table tests.

pub(crate) mod catenate;
mod compress;
mod fetch;
mod mailbox;
mod metadata;
mod quota;
mod replace;
mod search;
mod session;
mod sort;
mod store;

#[cfg(test)]
pub(crate) mod testutil;

use crate::civil;
use crate::command::*;
use crate::encode::{is_astring_char, is_atom_char};
use crate::receiver::Limits;

/// A literal the receiver read: its bytes (or that it streamed them to the caller) and the text
/// offset right after its marker.
#[derive(Debug, Clone)]
pub(crate) struct Lit {
    pub(crate) pos: usize,
    pub(crate) data: AppendBody,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    pub(crate) text: String,
    /// The parser reached the literal the client has not sent yet (partial mode only): not an
    /// error, the command may still be valid.
    pub(crate) incomplete: bool,
    /// With `incomplete`: the pending literal is the message of an APPEND, which the receiver
    /// may stream to the caller instead of buffering.
    pub(crate) pending_message: bool,
}

pub(crate) type PResult<T> = Result<T, ParseError>;

/// Hard ceiling on nesting whatever `Limits::max_nesting` says: the parser recurses once per
/// level, and this keeps the stack use far below a 2 MiB thread stack.
const HARD_MAX_NESTING: usize = 256;

/// Hard ceiling on search-key nesting whatever `Limits::max_search_depth` says: the parser does
/// not recurse on it, but the key tree it builds is dropped, translated and evaluated
/// recursively downstream, a few hundred bytes of stack per level.
const HARD_MAX_SEARCH_DEPTH: usize = 1000;

/// Error text for nesting beyond the limit; the RFC 9051 §7.1 `LIMIT` code tells the client that
/// a server limit, not its syntax, is the problem.
pub(crate) const NESTING_TOO_DEEP: &str = "[LIMIT] nesting too deep";

/// `tag = 1*<any ASTRING-CHAR except "+">` (RFC 9051 §9).
pub(crate) fn is_tag_char(b: u8) -> bool {
    is_astring_char(b) && b != b'+'
}

/// The tag at the start of a command, if it is well-formed and followed by SP; used to address
/// error responses even when the rest is garbage.
pub(crate) fn read_tag(text: &[u8]) -> Option<String> {
    let len = text
        .iter()
        .position(|&b| !is_tag_char(b))
        .unwrap_or(text.len());
    if len > 0 && text.get(len) == Some(&b' ') {
        Some(String::from_utf8_lossy(&text[..len]).into_owned())
    } else {
        None
    }
}

/// Parses a whole command. `partial` means the text ends with the marker of a literal that has
/// not arrived yet; the result is then an error with `incomplete` set if all is well so far.
pub(crate) fn parse_command(
    text: &[u8],
    lits: &[Lit],
    limits: &Limits,
    partial: bool,
) -> Result<Command, (Option<String>, ParseError)> {
    let mut c = Cursor::new(text, lits, limits, partial);
    let tag = read_tag(text);
    let result = (|| {
        let Some(tag) = tag.clone() else {
            return c.fail("missing or invalid tag");
        };
        c.pos = tag.len() + 1;
        let name = c.word().map_err(|_| c.error("missing command name"))?;
        let body = command_body(&mut c, &name)?;
        c.end()?;
        Ok(Command { tag, body })
    })();
    result.map_err(|e| (tag, e))
}

fn no_args(c: &mut Cursor<'_>, body: CommandBody) -> PResult<CommandBody> {
    c.end()?;
    Ok(body)
}

fn command_body(c: &mut Cursor<'_>, name: &str) -> PResult<CommandBody> {
    match name {
        "CAPABILITY" => no_args(c, CommandBody::Capability),
        "NOOP" => no_args(c, CommandBody::Noop),
        "LOGOUT" => no_args(c, CommandBody::Logout),
        "STARTTLS" => no_args(c, CommandBody::StartTls),
        "NAMESPACE" => no_args(c, CommandBody::Namespace),
        "IDLE" => no_args(c, CommandBody::Idle),
        "CHECK" => no_args(c, CommandBody::Check),
        "CLOSE" => no_args(c, CommandBody::Close),
        "UNSELECT" => no_args(c, CommandBody::Unselect),
        "EXPUNGE" => no_args(c, CommandBody::Expunge { uids: None }),
        "ID" => session::id(c),
        "AUTHENTICATE" => session::authenticate(c),
        "LOGIN" => session::login(c),
        "ENABLE" => session::enable(c),
        "SELECT" => mailbox::select(c, false),
        "EXAMINE" => mailbox::select(c, true),
        "CREATE" => mailbox::create(c),
        "DELETE" => mailbox::delete(c),
        "RENAME" => mailbox::rename(c),
        "SUBSCRIBE" => mailbox::subscribe(c, true),
        "UNSUBSCRIBE" => mailbox::subscribe(c, false),
        "LIST" => mailbox::list(c),
        "LSUB" => mailbox::lsub(c),
        "STATUS" => mailbox::status(c),
        "APPEND" => mailbox::append(c),
        "SEARCH" => search::search(c, false),
        "SORT" => sort::sort(c, false),
        "THREAD" => sort::thread(c, false),
        "FETCH" => fetch::fetch(c, false),
        "STORE" => store::store(c, false),
        "COPY" => store::copy(c, false, false),
        "MOVE" => store::copy(c, false, true),
        "REPLACE" => replace::replace(c, false),
        "GETQUOTA" => quota::getquota(c),
        "GETQUOTAROOT" => quota::getquotaroot(c),
        "SETQUOTA" => quota::setquota(c),
        "COMPRESS" => compress::compress(c),
        "GETMETADATA" => metadata::getmetadata(c),
        "SETMETADATA" => metadata::setmetadata(c),
        "UID" => {
            c.sp()?;
            let sub = c.word()?;
            match sub.as_str() {
                "EXPUNGE" => store::uid_expunge(c),
                "SEARCH" => search::search(c, true),
                "SORT" => sort::sort(c, true),
                "THREAD" => sort::thread(c, true),
                "FETCH" => fetch::fetch(c, true),
                "STORE" => store::store(c, true),
                "COPY" => store::copy(c, true, false),
                "MOVE" => store::copy(c, true, true),
                "REPLACE" => replace::replace(c, true),
                _ => c.fail("unknown UID command"),
            }
        }
        _ => c.fail("unknown command"),
    }
}

/// Position in the command text plus the literals still to be taken.
pub(crate) struct Cursor<'a> {
    text: &'a [u8],
    pos: usize,
    lits: &'a [Lit],
    next_lit: usize,
    depth: usize,
    max_depth: usize,
    /// `Limits::max_append_messages`.
    pub(crate) max_append_messages: usize,
    /// `Limits::max_catenate_parts`.
    pub(crate) max_catenate_parts: usize,
    /// What is left of `Limits::max_search_keys` for this command.
    pub(crate) search_keys_left: usize,
    /// `Limits::max_search_depth`.
    pub(crate) max_search_depth: usize,
    partial: bool,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(
        text: &'a [u8],
        lits: &'a [Lit],
        limits: &Limits,
        partial: bool,
    ) -> Cursor<'a> {
        Cursor {
            text,
            pos: 0,
            lits,
            next_lit: 0,
            depth: 0,
            max_depth: limits.max_nesting.min(HARD_MAX_NESTING),
            max_append_messages: limits.max_append_messages,
            max_catenate_parts: limits.max_catenate_parts,
            search_keys_left: limits.max_search_keys,
            max_search_depth: limits.max_search_depth.min(HARD_MAX_SEARCH_DEPTH),
            partial,
        }
    }

    pub(crate) fn error(&self, what: &str) -> ParseError {
        ParseError {
            text: what.to_string(),
            incomplete: false,
            pending_message: false,
        }
    }

    pub(crate) fn fail<T>(&self, what: &str) -> PResult<T> {
        Err(self.error(what))
    }

    /// Skips `n` bytes the caller has just peeked at.
    pub(crate) fn pos_advance(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.text.len());
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn rest(&self) -> &'a [u8] {
        self.text.get(self.pos..).unwrap_or_default()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn expect(&mut self, b: u8, what: &str) -> PResult<()> {
        if self.eat(b) { Ok(()) } else { self.fail(what) }
    }

    pub(crate) fn sp(&mut self) -> PResult<()> {
        self.expect(b' ', "expected SP")
    }

    pub(crate) fn end(&self) -> PResult<()> {
        if self.at_end() {
            Ok(())
        } else {
            self.fail("unexpected characters at end of command")
        }
    }

    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let rest = self.rest();
        let n = rest.iter().position(|&b| !f(b)).unwrap_or(rest.len());
        self.pos += n;
        &rest[..n]
    }

    pub(crate) fn atom(&mut self) -> PResult<&'a [u8]> {
        let a = self.take_while(is_atom_char);
        if a.is_empty() {
            self.fail("expected atom")
        } else {
            Ok(a)
        }
    }

    /// An atom upper-cased, for keyword matching (keywords are case-insensitive, RFC 3501 §9
    /// note 3).
    pub(crate) fn word(&mut self) -> PResult<String> {
        Ok(String::from_utf8_lossy(self.atom()?).to_ascii_uppercase())
    }

    /// Consumes `kw` if the text continues with it as a whole word.
    pub(crate) fn eat_keyword(&mut self, kw: &str) -> bool {
        let rest = self.rest();
        let n = kw.len();
        if rest.len() >= n
            && rest[..n].eq_ignore_ascii_case(kw.as_bytes())
            && rest.get(n).is_none_or(|&b| !is_atom_char(b))
        {
            self.pos += n;
            true
        } else {
            false
        }
    }

    fn digits(&mut self) -> PResult<u64> {
        let d = self.take_while(|b| b.is_ascii_digit());
        if d.is_empty() {
            return self.fail("expected number");
        }
        let mut n: u64 = 0;
        for &b in d {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(b - b'0')))
                .ok_or_else(|| self.error("number too large"))?;
        }
        Ok(n)
    }

    /// `number` (RFC 3501 §9): unsigned 32-bit.
    pub(crate) fn number(&mut self) -> PResult<u32> {
        let n = self.digits()?;
        u32::try_from(n).map_err(|_| self.error("number too large"))
    }

    pub(crate) fn nz_number(&mut self) -> PResult<u32> {
        match self.number()? {
            0 => self.fail("zero is not allowed here"),
            n => Ok(n),
        }
    }

    /// `number64` (RFC 9051 §9) and `mod-sequence-value` (RFC 7162 §7): up to 2^63-1.
    pub(crate) fn number64(&mut self) -> PResult<u64> {
        let n = self.digits()?;
        if n > i64::MAX as u64 {
            self.fail("number too large")
        } else {
            Ok(n)
        }
    }

    /// `quoted` (RFC 3501 §9). 8-bit bytes are accepted: RFC 9051 allows UTF-8 in quoted
    /// strings, and the session decides what a rev1 client may send.
    pub(crate) fn quoted(&mut self) -> PResult<Vec<u8>> {
        self.expect(b'"', "expected quoted string")?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return self.fail("unterminated quoted string"),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b @ (b'"' | b'\\')) => {
                            self.pos += 1;
                            out.push(b);
                        }
                        _ => return self.fail("invalid escape in quoted string"),
                    }
                }
                Some(0 | b'\r' | b'\n') => return self.fail("invalid character in quoted string"),
                Some(b) => {
                    self.pos += 1;
                    out.push(b);
                }
            }
        }
    }

    /// A literal (`{n}`, `{n+}`, or with `allow8` also `~{n}` / `~{n+}`); returns its bytes and
    /// whether it was a literal8.
    pub(crate) fn literal(&mut self, allow8: bool) -> PResult<(AppendBody, bool)> {
        let binary = self.eat(b'~');
        if binary && !allow8 {
            return self.fail("literal8 is not allowed here");
        }
        self.expect(b'{', "expected literal")?;
        let size = self.digits()?;
        self.eat(b'+');
        self.expect(b'}', "invalid literal")?;
        match self.lits.get(self.next_lit) {
            Some(lit) if lit.pos == self.pos && lit.data.len() == size => {
                self.next_lit += 1;
                Ok((lit.data.clone(), binary))
            }
            None if self.partial && self.at_end() => Err(ParseError {
                text: "literal pending".to_string(),
                incomplete: true,
                pending_message: false,
            }),
            _ => self.fail("literal must end the line"),
        }
    }

    /// `string = quoted / literal`.
    pub(crate) fn string(&mut self) -> PResult<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => match self.literal(false)?.0 {
                AppendBody::Inline(b) => Ok(b.to_vec()),
                // The receiver streams only APPEND message literals; a string never is one.
                AppendBody::Streamed { .. } | AppendBody::Catenate(_) => {
                    self.fail("literal too large")
                }
            },
            _ => self.fail("expected string"),
        }
    }

    /// `astring = 1*ASTRING-CHAR / string`.
    pub(crate) fn astring(&mut self) -> PResult<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => {
                let a = self.take_while(is_astring_char);
                if a.is_empty() {
                    self.fail("expected astring")
                } else {
                    Ok(a.to_vec())
                }
            }
        }
    }

    pub(crate) fn astring_utf8(&mut self) -> PResult<String> {
        Ok(lossy(self.astring()?))
    }

    pub(crate) fn string_utf8(&mut self) -> PResult<String> {
        Ok(lossy(self.string()?))
    }

    /// `nstring = string / nil`.
    pub(crate) fn nstring_utf8(&mut self) -> PResult<Option<String>> {
        if self.eat_keyword("NIL") {
            Ok(None)
        } else {
            self.string_utf8().map(Some)
        }
    }

    /// `list-mailbox = 1*list-char / string`; list-char adds `%`, `*` and `]` to ATOM-CHAR.
    pub(crate) fn list_mailbox(&mut self) -> PResult<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => {
                let a = self.take_while(|b| is_astring_char(b) || b == b'%' || b == b'*');
                if a.is_empty() {
                    self.fail("expected mailbox pattern")
                } else {
                    Ok(a.to_vec())
                }
            }
        }
    }

    fn seq_number(&mut self) -> PResult<SeqBound> {
        if self.eat(b'*') {
            Ok(SeqBound::Star)
        } else {
            Ok(SeqBound::Number(self.nz_number()?))
        }
    }

    /// `sequence-set` (RFC 3501 §9) or `$` (RFC 5182 §2).
    pub(crate) fn seq_set(&mut self) -> PResult<SequenceSet> {
        if self.eat(b'$') {
            return Ok(SequenceSet::Saved);
        }
        let mut ranges = Vec::new();
        loop {
            let from = self.seq_number()?;
            let to = if self.eat(b':') {
                self.seq_number()?
            } else {
                from
            };
            ranges.push((from, to));
            if !self.eat(b',') {
                return Ok(SequenceSet::Ranges(ranges));
            }
        }
    }

    /// `flag` (RFC 3501 §9), spelled as sent: `\Seen`, `\*` (only meaningful in PERMANENTFLAGS
    /// but harmless to accept) or a keyword atom.
    pub(crate) fn flag(&mut self) -> PResult<String> {
        if self.eat(b'\\') {
            if self.eat(b'*') {
                return Ok("\\*".to_string());
            }
            Ok(format!("\\{}", lossy(self.atom()?.to_vec())))
        } else {
            Ok(lossy(self.atom()?.to_vec()))
        }
    }

    /// `flag-list = "(" [flag *(SP flag)] ")"`.
    pub(crate) fn flag_list(&mut self) -> PResult<Vec<String>> {
        self.list(true, Cursor::flag)
    }

    /// Counts one level of nesting against the limit.
    pub(crate) fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > self.max_depth {
            self.fail(NESTING_TOO_DEEP)
        } else {
            Ok(())
        }
    }

    pub(crate) fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// A parenthesised, SP-separated list of `item`.
    pub(crate) fn list<T>(
        &mut self,
        allow_empty: bool,
        mut item: impl FnMut(&mut Self) -> PResult<T>,
    ) -> PResult<Vec<T>> {
        self.expect(b'(', "expected (")?;
        self.enter()?;
        let mut out = Vec::new();
        if self.eat(b')') {
            if !allow_empty {
                return self.fail("empty list");
            }
        } else {
            loop {
                out.push(item(self)?);
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
        }
        self.leave();
        Ok(out)
    }

    fn fixed_digits(&mut self, n: usize) -> PResult<u32> {
        let rest = self.rest();
        if rest.len() < n || !rest[..n].iter().all(u8::is_ascii_digit) {
            return self.fail("invalid date");
        }
        self.pos += n;
        Ok(rest[..n]
            .iter()
            .fold(0, |acc, &b| acc * 10 + u32::from(b - b'0')))
    }

    fn month(&mut self) -> PResult<u32> {
        let rest = self.rest();
        match rest.get(..3).and_then(civil::month_from_abbrev) {
            Some(m) => {
                self.pos += 3;
                Ok(m)
            }
            None => self.fail("invalid month"),
        }
    }

    /// `date-day "-" date-month "-" date-year` → days since 1970-01-01, validated.
    fn date_text(&mut self, day: Option<u32>) -> PResult<Date> {
        let day = match day {
            Some(d) => d,
            None => {
                let d = self.take_while(|b| b.is_ascii_digit());
                if d.is_empty() || d.len() > 2 {
                    return self.fail("invalid date");
                }
                d.iter().fold(0, |acc, &b| acc * 10 + u32::from(b - b'0'))
            }
        };
        self.expect(b'-', "invalid date")?;
        let month = self.month()?;
        self.expect(b'-', "invalid date")?;
        let year = i64::from(self.fixed_digits(4)?);
        if day == 0 || day > civil::days_in_month(year, month) {
            return self.fail("invalid date");
        }
        Ok(civil::days_from_civil(year, month, day) as Date)
    }

    /// `date = date-text / DQUOTE date-text DQUOTE` (RFC 3501 §9).
    pub(crate) fn date(&mut self) -> PResult<Date> {
        let quoted = self.eat(b'"');
        let d = self.date_text(None)?;
        if quoted {
            self.expect(b'"', "invalid date")?;
        }
        Ok(d)
    }

    /// `date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE`
    /// (RFC 3501 §9); `date-day-fixed` is `SP DIGIT` or `2DIGIT`, a lone digit is tolerated.
    pub(crate) fn date_time(&mut self) -> PResult<DateTime> {
        self.expect(b'"', "expected date-time")?;
        let day = if self.eat(b' ') {
            self.fixed_digits(1)?
        } else if self.rest().get(1).is_some_and(u8::is_ascii_digit) {
            self.fixed_digits(2)?
        } else {
            self.fixed_digits(1)?
        };
        let days = self.date_text(Some(day))?;
        self.expect(b' ', "invalid date-time")?;
        let hour = self.fixed_digits(2)?;
        self.expect(b':', "invalid date-time")?;
        let minute = self.fixed_digits(2)?;
        self.expect(b':', "invalid date-time")?;
        let second = self.fixed_digits(2)?;
        self.expect(b' ', "invalid date-time")?;
        let negative = match self.peek() {
            Some(b'+') => false,
            Some(b'-') => true,
            _ => return self.fail("invalid zone"),
        };
        self.pos += 1;
        let zh = self.fixed_digits(2)?;
        let zm = self.fixed_digits(2)?;
        self.expect(b'"', "invalid date-time")?;
        // A leap second (60) is accepted and simply lands on the next minute.
        if hour > 23 || minute > 59 || second > 60 || zm > 59 {
            return self.fail("invalid date-time");
        }
        let mut tz = (zh * 60 + zm) as i32;
        if negative {
            tz = -tz;
        }
        let local = i64::from(days) * 86_400
            + i64::from(hour) * 3600
            + i64::from(minute) * 60
            + i64::from(second);
        Ok(DateTime {
            unix_seconds: local - i64::from(tz) * 60,
            tz_offset_minutes: tz,
        })
    }
}

pub(crate) fn lossy(v: Vec<u8>) -> String {
    match String::from_utf8(v) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use bytes::Bytes;

    #[test]
    fn tags_and_names() {
        assert_eq!(read_tag(b"a1 NOOP"), Some("a1".to_string()));
        assert_eq!(read_tag(b"a+1 NOOP"), None);
        assert_eq!(read_tag(b"* NOOP"), None);
        assert_eq!(read_tag(b"NOOP"), None);
        assert_eq!(read_tag(b"x]y NOOP"), Some("x]y".to_string()));
        let table: &[(&str, CommandBody)] = &[
            ("a capability", CommandBody::Capability),
            ("a NoOp", CommandBody::Noop),
            ("a LOGOUT", CommandBody::Logout),
            ("a STARTTLS", CommandBody::StartTls),
            ("a namespace", CommandBody::Namespace),
            ("a IDLE", CommandBody::Idle),
            ("a check", CommandBody::Check),
            ("a CLOSE", CommandBody::Close),
            ("a unselect", CommandBody::Unselect),
            ("a EXPUNGE", CommandBody::Expunge { uids: None }),
        ];
        for (line, want) in table {
            assert_eq!(parse_ok(line).body, *want, "{line}");
        }
        for bad in [
            "a",
            "a ",
            "+a NOOP",
            "a NOOP x",
            "a NOOP ",
            "a FROB",
            "a UID FROB 1",
            "a  NOOP",
            "a\tNOOP",
        ] {
            parse_err(bad);
        }
        assert_eq!(parse_err("a FROB").0, Some("a".to_string()));
        assert_eq!(parse_err("(x) NOOP").0, None);
    }

    #[test]
    fn primitives() {
        let mut c = cursor(b"\"a\\\"b\\\\c\" rest");
        assert_eq!(c.quoted().unwrap(), b"a\"b\\c");
        for bad in [&b"\"abc"[..], b"\"a\\nb\"", b"\"a\rb\"", b"\"a\0\""] {
            assert!(cursor(bad).quoted().is_err());
        }
        assert_eq!(cursor(b"foo]bar x").astring().unwrap(), b"foo]bar");
        assert_eq!(cursor(b"\"\" x").astring().unwrap(), b"");
        assert!(cursor(b"(x)").astring().is_err());
        assert_eq!(cursor(b"%a*]").list_mailbox().unwrap(), b"%a*]");
        assert_eq!(cursor(b"4294967295").number().unwrap(), u32::MAX);
        assert!(cursor(b"4294967296").number().is_err());
        assert!(cursor(b"0").nz_number().is_err());
        assert!(cursor(b"99999999999999999999999").number64().is_err());
        assert_eq!(
            cursor(b"9223372036854775807").number64().unwrap(),
            i64::MAX as u64
        );
        assert!(cursor(b"9223372036854775808").number64().is_err());
    }

    #[test]
    fn sequence_sets() {
        use SeqBound::*;
        let table: &[(&str, SequenceSet)] = &[
            ("1", SequenceSet::Ranges(vec![(Number(1), Number(1))])),
            (
                "1,3:5,7:*,*",
                SequenceSet::Ranges(vec![
                    (Number(1), Number(1)),
                    (Number(3), Number(5)),
                    (Number(7), Star),
                    (Star, Star),
                ]),
            ),
            ("5:2", SequenceSet::Ranges(vec![(Number(5), Number(2))])),
            ("$", SequenceSet::Saved),
        ];
        for (input, want) in table {
            let mut c = cursor(input.as_bytes());
            assert_eq!(c.seq_set().unwrap(), *want, "{input}");
            assert!(c.at_end(), "{input}");
        }
        for bad in ["0", "1:0", "", "a", ",1", "1:", "4294967296"] {
            assert!(cursor(bad.as_bytes()).seq_set().is_err(), "{bad}");
        }
        // Trailing garbage is left for the caller to reject.
        let mut c = cursor(b"1,");
        assert!(c.seq_set().is_err());
    }

    #[test]
    fn dates() {
        let table: &[(&str, Date)] = &[
            ("1-Jan-1970", 0),
            ("\"01-jan-1970\"", 0),
            ("29-FEB-2000", 11_016),
            ("31-Dec-1969", -1),
        ];
        for (input, want) in table {
            assert_eq!(cursor(input.as_bytes()).date().unwrap(), *want, "{input}");
        }
        for bad in [
            "29-Feb-2001",
            "0-Jan-2000",
            "32-Jan-2000",
            "1-Foo-2000",
            "1-Jan-70",
            "\"1-Jan-2000",
            "123-Jan-2000",
            "1 Jan 2000",
        ] {
            assert!(cursor(bad.as_bytes()).date().is_err(), "{bad}");
        }
    }

    #[test]
    fn date_times() {
        let table: &[(&str, i64, i32)] = &[
            ("\"01-Jan-1970 00:00:00 +0000\"", 0, 0),
            ("\" 1-Jan-1970 01:00:00 +0100\"", 0, 60),
            ("\"1-Jan-1970 00:00:00 -0130\"", 5400, -90),
            ("\"04-Jul-2024 14:34:56 +0200\"", 1_720_096_496, 120),
        ];
        for &(input, secs, tz) in table {
            let got = cursor(input.as_bytes()).date_time().unwrap();
            assert_eq!(
                got,
                DateTime {
                    unix_seconds: secs,
                    tz_offset_minutes: tz
                },
                "{input}"
            );
            // The encoder writes what the parser reads.
            let encoded = crate::encode::date_time(secs, tz);
            assert_eq!(cursor(encoded.as_bytes()).date_time().unwrap(), got);
        }
        for bad in [
            "01-Jan-1970 00:00:00 +0000",
            "\"01-Jan-1970 24:00:00 +0000\"",
            "\"01-Jan-1970 00:60:00 +0000\"",
            "\"01-Jan-1970 00:00:00 0000\"",
            "\"01-Jan-1970 00:00:00 +00\"",
            "\"01-Jan-1970 00:00:00 +0060\"",
            "\"31-Apr-2020 00:00:00 +0000\"",
            "\"01-Jan-1970 0:00:00 +0000\"",
        ] {
            assert!(cursor(bad.as_bytes()).date_time().is_err(), "{bad}");
        }
    }

    #[test]
    fn literals_in_text() {
        // The literal marker must be where the receiver cut the line.
        let text = b"{3}";
        let lits = [Lit {
            pos: 3,
            data: AppendBody::Inline(Bytes::from_static(b"abc")),
        }];
        let mut c = Cursor::for_test(text, &lits);
        assert_eq!(c.astring().unwrap(), b"abc");
        let mut c = Cursor::for_test(b" {3}", &lits);
        c.pos = 1;
        assert!(c.astring().is_err());
        let mut c = Cursor::for_test(b"~{3}", &lits);
        assert!(c.literal(false).is_err());
        let lits8 = [Lit {
            pos: 4,
            data: AppendBody::Inline(Bytes::from_static(b"abc")),
        }];
        let mut c = Cursor::for_test(b"~{3}", &lits8);
        assert_eq!(
            c.literal(true).unwrap(),
            (AppendBody::Inline(Bytes::from_static(b"abc")), true)
        );
        let mut c = Cursor::for_test(b"{4}", &lits);
        assert!(c.astring().is_err());
    }

    #[test]
    fn nesting_limit() {
        let mut c = cursor(b"((()))");
        c.max_depth = 2;
        let r = c.list(true, |c| c.list(true, |c| c.list(true, |_| Ok(()))));
        assert_eq!(r.unwrap_err().text, "[LIMIT] nesting too deep");
        let mut c = cursor(b"(())");
        c.max_depth = 2;
        assert!(c.list(true, |c| c.list(true, |_| Ok(()))).is_ok());
    }
}
