//! SEARCH and UID SEARCH (RFC 3501 §6.4.4, RFC 9051 §6.4.4), with ESEARCH `RETURN` options
//! (RFC 4731 §3, SAVE from RFC 5182) and the MODSEQ key (RFC 7162 §3.1.5).

use super::{Cursor, PResult};
use crate::command::*;

/// `search = "SEARCH" [search-return-opts] SP search-program`,
/// `search-program = ["CHARSET" SP charset SP] search-key *(SP search-key)`.
/// The top-level keys are always wrapped in `SearchKey::And`, even when there is only one.
pub(super) fn search(c: &mut Cursor<'_>, uid: bool) -> PResult<CommandBody> {
    c.sp()?;
    let mut returns = None;
    if c.eat_keyword("RETURN") {
        c.sp()?;
        returns = Some(c.list(true, |c| {
            Ok(match c.word()?.as_str() {
                "MIN" => SearchReturnOption::Min,
                "MAX" => SearchReturnOption::Max,
                "ALL" => SearchReturnOption::All,
                "COUNT" => SearchReturnOption::Count,
                "SAVE" => SearchReturnOption::Save,
                _ => return c.fail("unknown SEARCH return option"),
            })
        })?);
        c.sp()?;
    }
    let mut charset = None;
    if c.eat_keyword("CHARSET") {
        c.sp()?;
        charset = Some(c.astring_utf8()?);
        c.sp()?;
    }
    let mut keys = vec![key(c)?];
    while c.eat(b' ') {
        keys.push(key(c)?);
    }
    Ok(CommandBody::Search {
        uid,
        charset,
        returns,
        criteria: SearchKey::And(keys),
    })
}

fn string_arg(c: &mut Cursor<'_>) -> PResult<String> {
    c.sp()?;
    c.astring_utf8()
}

fn date_arg(c: &mut Cursor<'_>) -> PResult<Date> {
    c.sp()?;
    c.date()
}

/// Error texts for search programs over `Limits::max_search_depth` / `max_search_keys`
/// (RFC 9051 §7.1 `LIMIT`: a server limit, not the syntax, is the problem).
pub(crate) const SEARCH_TOO_DEEP: &str = "[LIMIT] search keys nested too deeply";
pub(crate) const TOO_MANY_SEARCH_KEYS: &str = "[LIMIT] too many search keys";

/// A search key whose operands are still being read.
enum Open {
    /// `NOT` waiting for its key.
    Not,
    /// `OR` waiting for its first key.
    OrFirst,
    /// `OR` with its first key, waiting for the second.
    OrSecond(SearchKey),
    /// A parenthesised list, with the keys read so far.
    List(Vec<SearchKey>),
}

/// What the start of a key turned out to be.
enum Start {
    Done(SearchKey),
    Open(Open),
}

/// One `search-key`. Parsed with an explicit stack rather than recursion, so the nesting of NOT,
/// OR and parentheses costs heap, not call stack: depth is bounded by `Limits::max_search_depth`
/// (each of them one level) and the number of keys by `Limits::max_search_keys`.
pub(super) fn key(c: &mut Cursor<'_>) -> PResult<SearchKey> {
    let mut open: Vec<Open> = Vec::new();
    loop {
        let mut done = match start(c)? {
            Start::Done(k) => k,
            Start::Open(o) => {
                if open.len() >= c.max_search_depth {
                    return c.fail(SEARCH_TOO_DEEP);
                }
                open.push(o);
                continue;
            }
        };
        // Hand the finished key to the innermost open one, closing those it completes.
        loop {
            match open.last_mut() {
                None => return Ok(done),
                Some(Open::Not) => {
                    open.pop();
                    done = SearchKey::Not(Box::new(done));
                }
                Some(top @ Open::OrFirst) => {
                    *top = Open::OrSecond(done);
                    c.sp()?;
                    break;
                }
                Some(Open::OrSecond(_)) => {
                    let Some(Open::OrSecond(a)) = open.pop() else {
                        unreachable!("matched just above");
                    };
                    done = SearchKey::Or(Box::new(a), Box::new(done));
                }
                Some(Open::List(keys)) => {
                    keys.push(done);
                    if !c.eat(b')') {
                        c.sp()?;
                        break;
                    }
                    let Some(Open::List(keys)) = open.pop() else {
                        unreachable!("matched just above");
                    };
                    done = SearchKey::And(keys);
                }
            }
        }
    }
}

/// Reads the start of one key: a whole key without operands, or the opening of NOT, OR or a
/// list (with the separator after it), whose operands follow.
fn start(c: &mut Cursor<'_>) -> PResult<Start> {
    c.search_keys_left = match c.search_keys_left.checked_sub(1) {
        Some(n) => n,
        None => return c.fail(TOO_MANY_SEARCH_KEYS),
    };
    match c.peek() {
        Some(b'(') => {
            c.pos_advance(1);
            if c.peek() == Some(b')') {
                return c.fail("empty list");
            }
            return Ok(Start::Open(Open::List(Vec::new())));
        }
        Some(b'0'..=b'9' | b'*' | b'$') => {
            return Ok(Start::Done(SearchKey::SequenceSet(c.seq_set()?)));
        }
        _ => {}
    }
    let word = c.word()?;
    Ok(Start::Done(match word.as_str() {
        "NOT" => {
            c.sp()?;
            return Ok(Start::Open(Open::Not));
        }
        "OR" => {
            c.sp()?;
            return Ok(Start::Open(Open::OrFirst));
        }
        "ALL" => SearchKey::All,
        "ANSWERED" => SearchKey::Answered,
        "DELETED" => SearchKey::Deleted,
        "DRAFT" => SearchKey::Draft,
        "FLAGGED" => SearchKey::Flagged,
        "NEW" => SearchKey::New,
        "OLD" => SearchKey::Old,
        "RECENT" => SearchKey::Recent,
        "SEEN" => SearchKey::Seen,
        "UNANSWERED" => SearchKey::Unanswered,
        "UNDELETED" => SearchKey::Undeleted,
        "UNDRAFT" => SearchKey::Undraft,
        "UNFLAGGED" => SearchKey::Unflagged,
        "UNSEEN" => SearchKey::Unseen,
        "BCC" => SearchKey::Bcc(string_arg(c)?),
        "BODY" => SearchKey::Body(string_arg(c)?),
        "CC" => SearchKey::Cc(string_arg(c)?),
        "FROM" => SearchKey::From(string_arg(c)?),
        "SUBJECT" => SearchKey::Subject(string_arg(c)?),
        "TEXT" => SearchKey::Text(string_arg(c)?),
        "TO" => SearchKey::To(string_arg(c)?),
        "HEADER" => {
            let name = string_arg(c)?;
            SearchKey::Header(name, string_arg(c)?)
        }
        "BEFORE" => SearchKey::Before(date_arg(c)?),
        "ON" => SearchKey::On(date_arg(c)?),
        "SINCE" => SearchKey::Since(date_arg(c)?),
        "SENTBEFORE" => SearchKey::SentBefore(date_arg(c)?),
        "SENTON" => SearchKey::SentOn(date_arg(c)?),
        "SENTSINCE" => SearchKey::SentSince(date_arg(c)?),
        "KEYWORD" | "UNKEYWORD" => {
            c.sp()?;
            let kw = super::lossy(c.atom()?.to_vec());
            if word == "KEYWORD" {
                SearchKey::Keyword(kw)
            } else {
                SearchKey::Unkeyword(kw)
            }
        }
        "LARGER" => {
            c.sp()?;
            SearchKey::Larger(c.number64()?)
        }
        "SMALLER" => {
            c.sp()?;
            SearchKey::Smaller(c.number64()?)
        }
        "UID" => {
            c.sp()?;
            SearchKey::Uid(c.seq_set()?)
        }
        "MODSEQ" => {
            // `"MODSEQ" [SP entry-name SP entry-type-req] SP mod-sequence-valzer`
            c.sp()?;
            if c.peek() == Some(b'"') {
                c.quoted()?;
                c.sp()?;
                let kind = c.word()?;
                if !matches!(kind.as_str(), "PRIV" | "SHARED" | "ALL") {
                    return c.fail("invalid MODSEQ entry type");
                }
                c.sp()?;
            }
            SearchKey::ModSeq(c.number64()?)
        }
        _ => return c.fail("unknown SEARCH key"),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::receiver::{Limits, Received, Receiver};

    fn criteria(line: &str) -> SearchKey {
        match body(line) {
            CommandBody::Search { criteria, .. } => criteria,
            other => panic!("{other:?}"),
        }
    }

    fn and(keys: Vec<SearchKey>) -> SearchKey {
        SearchKey::And(keys)
    }

    fn one(n: u32) -> SequenceSet {
        SequenceSet::Ranges(vec![(SeqBound::Number(n), SeqBound::Number(n))])
    }

    #[test]
    fn simple_keys() {
        use SearchKey::*;
        let table: Vec<(&str, SearchKey)> = vec![
            ("ALL", All),
            ("answered", Answered),
            ("DELETED", Deleted),
            ("DRAFT", Draft),
            ("FLAGGED", Flagged),
            ("NEW", New),
            ("OLD", Old),
            ("RECENT", Recent),
            ("SEEN", Seen),
            ("UNANSWERED", Unanswered),
            ("UNDELETED", Undeleted),
            ("UNDRAFT", Undraft),
            ("UNFLAGGED", Unflagged),
            ("UNSEEN", Unseen),
            ("BCC x@y", Bcc("x@y".into())),
            ("BODY \"two words\"", Body("two words".into())),
            ("CC c", Cc("c".into())),
            ("FROM \"Smith\"", From("Smith".into())),
            ("SUBJECT hello]", Subject("hello]".into())),
            ("TEXT t", Text("t".into())),
            ("TO \"\"", To("".into())),
            (
                "HEADER Message-ID \"<a@b>\"",
                Header("Message-ID".into(), "<a@b>".into()),
            ),
            ("BEFORE 1-Feb-1994", Before(8797)),
            ("ON \"01-Feb-1994\"", On(8797)),
            ("SINCE 1-feb-1994", Since(8797)),
            ("SENTBEFORE 1-Jan-1970", SentBefore(0)),
            ("SENTON 2-Jan-1970", SentOn(1)),
            ("SENTSINCE 31-Dec-1969", SentSince(-1)),
            ("KEYWORD $Forwarded", Keyword("$Forwarded".into())),
            ("UNKEYWORD Junk", Unkeyword("Junk".into())),
            ("LARGER 10000", Larger(10_000)),
            ("SMALLER 5000000000", Smaller(5_000_000_000)),
            (
                "UID 1:*",
                Uid(super::SequenceSet::Ranges(vec![(
                    SeqBound::Number(1),
                    SeqBound::Star,
                )])),
            ),
            ("UID $", Uid(super::SequenceSet::Saved)),
            (
                "2,4:*",
                SequenceSet(super::SequenceSet::Ranges(vec![
                    (SeqBound::Number(2), SeqBound::Number(2)),
                    (SeqBound::Number(4), SeqBound::Star),
                ])),
            ),
            (
                "*",
                SequenceSet(super::SequenceSet::Ranges(vec![(
                    SeqBound::Star,
                    SeqBound::Star,
                )])),
            ),
            ("$", SequenceSet(super::SequenceSet::Saved)),
            ("MODSEQ 620162338", ModSeq(620_162_338)),
            (
                "MODSEQ \"/flags/\\\\draft\" all 620162338",
                ModSeq(620_162_338),
            ),
            ("NOT SEEN", Not(Box::new(Seen))),
            ("OR SEEN FLAGGED", Or(Box::new(Seen), Box::new(Flagged))),
            ("(SEEN)", And(vec![Seen])),
            (
                "(SEEN (FLAGGED 3))",
                And(vec![Seen, And(vec![Flagged, SequenceSet(one(3))])]),
            ),
        ];
        for (keys, want) in table {
            let line = format!("a SEARCH {keys}");
            assert_eq!(criteria(&line), and(vec![want]), "{line}");
        }
    }

    #[test]
    fn programs() {
        use SearchKey::*;
        assert_eq!(
            body("A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\""),
            CommandBody::Search {
                uid: false,
                charset: None,
                returns: Some(vec![SearchReturnOption::Min, SearchReturnOption::Count]),
                criteria: and(vec![
                    Flagged,
                    Since(8797),
                    Not(Box::new(From("Smith".into()))),
                ]),
            }
        );
        assert_eq!(
            body("a UID SEARCH return () charset UTF-8 OR (SEEN 1:2) NOT 3 TEXT x"),
            CommandBody::Search {
                uid: true,
                charset: Some("UTF-8".into()),
                returns: Some(vec![]),
                criteria: and(vec![
                    Or(
                        Box::new(And(vec![
                            Seen,
                            SequenceSet(super::SequenceSet::Ranges(vec![(
                                SeqBound::Number(1),
                                SeqBound::Number(2)
                            )]))
                        ])),
                        Box::new(Not(Box::new(SequenceSet(one(3)))))
                    ),
                    Text("x".into()),
                ]),
            }
        );
        assert_eq!(
            body("a SEARCH RETURN (MIN MAX ALL COUNT SAVE) ALL"),
            CommandBody::Search {
                uid: false,
                charset: None,
                returns: Some(vec![
                    SearchReturnOption::Min,
                    SearchReturnOption::Max,
                    SearchReturnOption::All,
                    SearchReturnOption::Count,
                    SearchReturnOption::Save,
                ]),
                criteria: and(vec![All]),
            }
        );
        // A literal search string, 8-bit in UTF-8.
        assert_eq!(
            wire_body(b"a SEARCH CHARSET UTF-8 SUBJECT {4}\r\n\xc3\xa9t\xc3\r\n"),
            CommandBody::Search {
                uid: false,
                charset: Some("UTF-8".into()),
                returns: None,
                criteria: and(vec![Subject("\u{e9}t\u{fffd}".into())]),
            }
        );
    }

    #[test]
    fn errors() {
        for bad in [
            "a SEARCH",
            "a SEARCH ",
            "a SEARCH FOO",
            "a SEARCH SEEN ",
            "a SEARCH NOT",
            "a SEARCH OR SEEN",
            "a SEARCH ()",
            "a SEARCH (SEEN",
            "a SEARCH SEEN)",
            "a SEARCH SINCE 31-Feb-2000",
            "a SEARCH SINCE",
            "a SEARCH LARGER x",
            "a SEARCH UID",
            "a SEARCH 0",
            "a SEARCH CHARSET UTF-8",
            "a SEARCH RETURN (FOO) ALL",
            "a SEARCH RETURN ALL",
            "a SEARCH KEYWORD \\Seen",
            "a SEARCH HEADER Subject",
            "a SEARCH MODSEQ \"/flags/x\" bogus 5",
            "a SEARCH MODSEQ",
        ] {
            let (tag, _) = parse_err(bad);
            assert_eq!(tag.as_deref(), Some("a"), "{bad}");
        }
    }

    fn nested(kind: &str, depth: usize) -> String {
        let mut s = String::from("a SEARCH ");
        match kind {
            "NOT" => {
                s.push_str(&"NOT ".repeat(depth));
                s.push_str("SEEN");
            }
            "OR" => {
                s.push_str(&"OR SEEN ".repeat(depth));
                s.push_str("SEEN");
            }
            _ => {
                s.push_str(&"(".repeat(depth));
                s.push_str("SEEN");
                s.push_str(&")".repeat(depth));
            }
        }
        s
    }

    #[test]
    fn nesting_up_to_the_limit() {
        for kind in ["NOT", "OR", "PAREN"] {
            for limit in [1usize, 5, 64, 500] {
                let limits = Limits {
                    max_search_depth: limit,
                    ..Limits::default()
                };
                let mut r = Receiver::new(limits);
                r.feed(format!("{}\r\n", nested(kind, limit)).as_bytes());
                assert!(matches!(r.next(), Received::Command(_)), "{kind} {limit}");
                r.feed(format!("{}\r\n", nested(kind, limit + 1)).as_bytes());
                match r.next() {
                    Received::Error { tag, text, fatal } => {
                        assert_eq!(tag.as_deref(), Some("a"));
                        assert_eq!(text, SEARCH_TOO_DEEP);
                        assert!(!fatal);
                    }
                    other => panic!("{kind} {limit}: {other:?}"),
                }
            }
        }
    }

    /// 200 nested ORs parse under the default limits into the right tree.
    #[test]
    fn two_hundred_nested_ors_parse() {
        let mut r = Receiver::new(Limits::default());
        r.feed(format!("{}\r\n", nested("OR", 200)).as_bytes());
        let Received::Command(Command {
            body: CommandBody::Search { criteria, .. },
            ..
        }) = r.next()
        else {
            panic!("not parsed");
        };
        let SearchKey::And(top) = criteria else {
            panic!("top level is an AND");
        };
        let mut depth = 0;
        let mut k = &top[0];
        while let SearchKey::Or(a, b) = k {
            assert_eq!(**a, SearchKey::Seen);
            depth += 1;
            k = b;
        }
        assert_eq!((depth, k), (200, &SearchKey::Seen));
    }

    #[test]
    fn key_count_is_bounded() {
        let limits = Limits {
            max_search_keys: 10,
            ..Limits::default()
        };
        let mut r = Receiver::new(limits);
        // NOT and the parenthesis count as keys too: 10 in all.
        r.feed(b"a SEARCH SEEN (NOT DRAFT OR SEEN DELETED) 1 2 3\r\n");
        assert!(matches!(r.next(), Received::Command(_)));
        r.feed(b"a SEARCH SEEN (NOT DRAFT OR SEEN DELETED) 1 2 3 4\r\n");
        assert_eq!(
            r.next(),
            Received::Error {
                tag: Some("a".into()),
                text: TOO_MANY_SEARCH_KEYS.into(),
                fatal: false
            }
        );
    }

    #[test]
    fn huge_nesting_does_not_overflow_the_stack() {
        // Even with absurd configured limits, the parser's own ceiling keeps the tree (which
        // is dropped, cloned and evaluated recursively) shallow; the parser itself does not
        // recurse on nesting.
        let limits = Limits {
            max_nesting: usize::MAX,
            max_search_depth: usize::MAX,
            max_search_keys: usize::MAX,
            max_line: 1 << 20,
            ..Limits::default()
        };
        let handle = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let mut out = Vec::new();
                for kind in ["NOT", "OR", "PAREN"] {
                    let mut r = Receiver::new(limits);
                    r.feed(format!("{}\r\n", nested(kind, 100_000)).as_bytes());
                    out.push(r.next());
                }
                out
            })
            .unwrap();
        for got in handle.join().unwrap() {
            match got {
                Received::Error {
                    fatal: false, text, ..
                } => assert_eq!(text, SEARCH_TOO_DEEP),
                other => panic!("{other:?}"),
            }
        }
    }
}
