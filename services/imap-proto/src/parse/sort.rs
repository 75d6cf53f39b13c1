//! SORT and THREAD (RFC 5256 §3, §5) and the ESORT return options (RFC 5267 §3).
//!
//! Unlike SEARCH, both commands require the charset (`search-criteria = charset 1*(SP
//! search-key)`, RFC 5256 §5); the search keys are SEARCH's.

use super::{Cursor, PResult, search};
use crate::command::*;

/// `sort = ["UID" SP] "SORT" [SP "RETURN" SP "(" ... ")"] SP sort-criteria SP search-criteria`
/// (RFC 5256 §5 with RFC 5267 §3's `search-return-opts`).
pub(super) fn sort(c: &mut Cursor<'_>, uid: bool) -> PResult<CommandBody> {
    c.sp()?;
    let mut returns = None;
    if c.eat_keyword("RETURN") {
        c.sp()?;
        returns = Some(c.list(true, |c| {
            // RFC 5267 §3.1 defines MIN, MAX, ALL and COUNT for ESORT.
            Ok(match c.word()?.as_str() {
                "MIN" => SearchReturnOption::Min,
                "MAX" => SearchReturnOption::Max,
                "ALL" => SearchReturnOption::All,
                "COUNT" => SearchReturnOption::Count,
                _ => return c.fail("unknown SORT return option"),
            })
        })?);
        c.sp()?;
    }
    let criteria = c.list(false, |c| {
        let mut word = c.word()?;
        let reverse = word == "REVERSE";
        if reverse {
            c.sp()?;
            word = c.word()?;
        }
        let key = match word.as_str() {
            "ARRIVAL" => SortKey::Arrival,
            "CC" => SortKey::Cc,
            "DATE" => SortKey::Date,
            "FROM" => SortKey::From,
            "SIZE" => SortKey::Size,
            "SUBJECT" => SortKey::Subject,
            "TO" => SortKey::To,
            _ => return c.fail("unknown sort key"),
        };
        Ok(SortCriterion { key, reverse })
    })?;
    c.sp()?;
    let (charset, search) = search_criteria(c)?;
    Ok(CommandBody::Sort {
        uid,
        criteria,
        charset,
        returns,
        search,
    })
}

/// `thread = ["UID" SP] "THREAD" SP thread-alg SP search-criteria` (RFC 5256 §5).
pub(super) fn thread(c: &mut Cursor<'_>, uid: bool) -> PResult<CommandBody> {
    c.sp()?;
    let algorithm = match c.word()?.as_str() {
        "ORDEREDSUBJECT" => ThreadAlgorithm::OrderedSubject,
        "REFERENCES" => ThreadAlgorithm::References,
        _ => return c.fail("unknown THREAD algorithm"),
    };
    c.sp()?;
    let (charset, search) = search_criteria(c)?;
    Ok(CommandBody::Thread {
        uid,
        algorithm,
        charset,
        search,
    })
}

/// `search-criteria = charset 1*(SP search-key)`; the keys are ANDed like SEARCH's.
fn search_criteria(c: &mut Cursor<'_>) -> PResult<(String, SearchKey)> {
    let charset = c.astring_utf8()?;
    let mut keys = Vec::new();
    while c.eat(b' ') {
        keys.push(search::key(c)?);
    }
    if keys.is_empty() {
        return c.fail("missing search key");
    }
    Ok((charset, SearchKey::And(keys)))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::command::*;

    fn crit(key: SortKey, reverse: bool) -> SortCriterion {
        SortCriterion { key, reverse }
    }

    #[test]
    fn sort_commands() {
        // RFC 5256 §3 examples.
        assert_eq!(
            body("A282 SORT (SUBJECT) UTF-8 SINCE 1-Feb-1994"),
            CommandBody::Sort {
                uid: false,
                criteria: vec![crit(SortKey::Subject, false)],
                charset: "UTF-8".into(),
                returns: None,
                search: SearchKey::And(vec![SearchKey::Since(8797)]),
            }
        );
        assert_eq!(
            body("A283 SORT (SUBJECT REVERSE DATE) UTF-8 ALL"),
            CommandBody::Sort {
                uid: false,
                criteria: vec![crit(SortKey::Subject, false), crit(SortKey::Date, true)],
                charset: "UTF-8".into(),
                returns: None,
                search: SearchKey::And(vec![SearchKey::All]),
            }
        );
        assert_eq!(
            body("A284 UID sort (arrival cc from size to) us-ascii SUBJECT \"x\" SEEN"),
            CommandBody::Sort {
                uid: true,
                criteria: vec![
                    crit(SortKey::Arrival, false),
                    crit(SortKey::Cc, false),
                    crit(SortKey::From, false),
                    crit(SortKey::Size, false),
                    crit(SortKey::To, false),
                ],
                charset: "us-ascii".into(),
                returns: None,
                search: SearchKey::And(vec![SearchKey::Subject("x".into()), SearchKey::Seen]),
            }
        );
        // RFC 5267 §3 example.
        assert_eq!(
            body("A301 UID SORT RETURN (COUNT MIN max all) (DATE) UTF-8 UNDELETED"),
            CommandBody::Sort {
                uid: true,
                criteria: vec![crit(SortKey::Date, false)],
                charset: "UTF-8".into(),
                returns: Some(vec![
                    SearchReturnOption::Count,
                    SearchReturnOption::Min,
                    SearchReturnOption::Max,
                    SearchReturnOption::All
                ]),
                search: SearchKey::And(vec![SearchKey::Undeleted]),
            }
        );
        assert_eq!(
            body("a SORT RETURN () (REVERSE ARRIVAL) UTF-8 ALL"),
            CommandBody::Sort {
                uid: false,
                criteria: vec![crit(SortKey::Arrival, true)],
                charset: "UTF-8".into(),
                returns: Some(vec![]),
                search: SearchKey::And(vec![SearchKey::All]),
            }
        );
    }

    #[test]
    fn thread_commands() {
        // RFC 5256 §3 examples.
        assert_eq!(
            body("A283 THREAD ORDEREDSUBJECT UTF-8 SINCE 5-MAR-2000"),
            CommandBody::Thread {
                uid: false,
                algorithm: ThreadAlgorithm::OrderedSubject,
                charset: "UTF-8".into(),
                search: SearchKey::And(vec![SearchKey::Since(11021)]),
            }
        );
        assert_eq!(
            body("A284 UID THREAD REFERENCES US-ASCII TEXT \"gewp\" 1:5"),
            CommandBody::Thread {
                uid: true,
                algorithm: ThreadAlgorithm::References,
                charset: "US-ASCII".into(),
                search: SearchKey::And(vec![
                    SearchKey::Text("gewp".into()),
                    SearchKey::SequenceSet(SequenceSet::Ranges(vec![(
                        SeqBound::Number(1),
                        SeqBound::Number(5)
                    )])),
                ]),
            }
        );
    }

    #[test]
    fn malformed_sort_and_thread() {
        for bad in [
            "a SORT",
            "a SORT (SUBJECT)",
            "a SORT (SUBJECT) UTF-8",
            "a SORT (SUBJECT) ALL",
            "a SORT SUBJECT UTF-8 ALL",
            "a SORT () UTF-8 ALL",
            "a SORT (BOGUS) UTF-8 ALL",
            "a SORT (REVERSE) UTF-8 ALL",
            "a SORT (REVERSE REVERSE DATE) UTF-8 ALL",
            "a SORT (DATE)UTF-8 ALL",
            "a SORT RETURN (SAVE) (DATE) UTF-8 ALL",
            "a SORT RETURN (DATE) UTF-8 ALL",
            "a THREAD",
            "a THREAD REFERENCES",
            "a THREAD REFERENCES UTF-8",
            "a THREAD BOGUS UTF-8 ALL",
            "a THREAD REFERENCES ALL",
            "a UID THREAD (REFERENCES) UTF-8 ALL",
        ] {
            let (tag, _) = parse_err(bad);
            assert_eq!(tag.as_deref(), Some("a"), "{bad}");
        }
    }
}
