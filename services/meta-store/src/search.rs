//! The SEARCH evaluator shared by every backend (RFC 3501 §6.4.4, RFC 7162 §3.1.5).
//!
//! A backend loads what [`needs_index`] says the key needs for the mailbox's messages (in one
//! round trip) and calls [`matches`] per message. String keys match as case-insensitive
//! substrings of the MIME-decoded text; date keys compare calendar days in the zone the date
//! was given in.

use yubin_meta_api::{DayNumber, InternalDate, ModSeq, SearchIndex, SearchKey, Uid};

use crate::flags;

/// What the evaluator knows of one message.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub uid: Uid,
    pub modseq: ModSeq,
    pub flags: &'a [String],
    pub internal_date: InternalDate,
    pub size: u64,
    /// The search index; `None` when the key does not need it (see [`needs_index`]), in which
    /// case header/body/sent-date keys match nothing.
    pub index: Option<&'a SearchIndex>,
}

/// The calendar day of `date` in its own zone (RFC 3501 §6.4.4: "disregarding time and
/// timezone").
pub fn day_number(date: InternalDate) -> DayNumber {
    let local = date.unix_seconds + i64::from(date.tz_offset_minutes) * 60;
    let day = local.div_euclid(86_400);
    DayNumber::try_from(day).unwrap_or(if day < 0 {
        DayNumber::MIN
    } else {
        DayNumber::MAX
    })
}

/// Whether evaluating `key` needs the per-message search index (headers, sent date, body).
pub fn needs_index(key: &SearchKey) -> bool {
    match key {
        SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_)
        | SearchKey::Header(..)
        | SearchKey::Body(_)
        | SearchKey::Text(_) => true,
        SearchKey::Not(k) => needs_index(k),
        SearchKey::Or(a, b) => needs_index(a) || needs_index(b),
        SearchKey::And(ks) => ks.iter().any(needs_index),
        SearchKey::All
        | SearchKey::Uids(_)
        | SearchKey::Flag(_)
        | SearchKey::NoFlag(_)
        | SearchKey::Before(_)
        | SearchKey::On(_)
        | SearchKey::Since(_)
        | SearchKey::Larger(_)
        | SearchKey::Smaller(_)
        | SearchKey::ModSeqAtLeast(_) => false,
    }
}

/// Which per-message data evaluating a key reads, so a backend loads only that.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Flags and keywords (FLAG/NOFLAG keys).
    pub flags: bool,
    /// Internal date and size.
    pub record: bool,
    pub modseq: bool,
    /// The search index (see [`needs_index`]).
    pub index: bool,
}

impl Needs {
    fn or(self, o: Needs) -> Needs {
        Needs {
            flags: self.flags || o.flags,
            record: self.record || o.record,
            modseq: self.modseq || o.modseq,
            index: self.index || o.index,
        }
    }
}

/// The data `key` reads; what it does not read may be left at default values in the
/// [`Candidate`].
pub fn needs(key: &SearchKey) -> Needs {
    let none = Needs::default();
    match key {
        SearchKey::All | SearchKey::Uids(_) => none,
        SearchKey::Flag(_) | SearchKey::NoFlag(_) => Needs {
            flags: true,
            ..none
        },
        SearchKey::Before(_)
        | SearchKey::On(_)
        | SearchKey::Since(_)
        | SearchKey::Larger(_)
        | SearchKey::Smaller(_) => Needs {
            record: true,
            ..none
        },
        SearchKey::ModSeqAtLeast(_) => Needs {
            modseq: true,
            ..none
        },
        SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_)
        | SearchKey::Header(..)
        | SearchKey::Body(_)
        | SearchKey::Text(_) => Needs {
            index: true,
            ..none
        },
        SearchKey::Not(k) => needs(k),
        SearchKey::Or(a, b) => needs(a).or(needs(b)),
        SearchKey::And(ks) => ks.iter().fold(none, |acc, k| acc.or(needs(k))),
    }
}

/// Case-insensitive substring test on decoded text; an empty needle is in every string.
fn contains_ci(haystack: &str, needle_lower: &str) -> bool {
    needle_lower.is_empty() || haystack.to_lowercase().contains(needle_lower)
}

/// Whether the message `c` satisfies `key`.
pub fn matches(key: &SearchKey, c: &Candidate<'_>) -> bool {
    match key {
        SearchKey::All => true,
        SearchKey::Uids(set) => set.contains(c.uid),
        SearchKey::Flag(f) => flags::contains(c.flags, f),
        SearchKey::NoFlag(f) => !flags::contains(c.flags, f),
        SearchKey::Before(d) => day_number(c.internal_date) < *d,
        SearchKey::On(d) => day_number(c.internal_date) == *d,
        SearchKey::Since(d) => day_number(c.internal_date) >= *d,
        SearchKey::SentBefore(d) => sent_day(c).is_some_and(|s| s < *d),
        SearchKey::SentOn(d) => sent_day(c).is_some_and(|s| s == *d),
        SearchKey::SentSince(d) => sent_day(c).is_some_and(|s| s >= *d),
        SearchKey::Larger(n) => c.size > *n,
        SearchKey::Smaller(n) => c.size < *n,
        SearchKey::Header(name, value) => {
            let needle = value.to_lowercase();
            c.index.is_some_and(|ix| {
                ix.headers
                    .iter()
                    .any(|(h, v)| h.eq_ignore_ascii_case(name) && contains_ci(v, &needle))
            })
        }
        SearchKey::Body(s) => {
            let needle = s.to_lowercase();
            c.index
                .is_some_and(|ix| contains_ci(&ix.body_text, &needle))
        }
        SearchKey::Text(s) => {
            let needle = s.to_lowercase();
            c.index.is_some_and(|ix| {
                contains_ci(&ix.body_text, &needle)
                    || ix.headers.iter().any(|(h, v)| {
                        contains_ci(h, &needle)
                            || contains_ci(v, &needle)
                            || contains_ci(&format!("{h}: {v}"), &needle)
                    })
            })
        }
        SearchKey::ModSeqAtLeast(m) => c.modseq >= *m,
        SearchKey::Not(k) => !matches(k, c),
        SearchKey::Or(a, b) => matches(a, c) || matches(b, c),
        SearchKey::And(ks) => ks.iter().all(|k| matches(k, c)),
    }
}

/// The `Date:` header's day in its own zone (RFC 3501 §6.4.4 SENTBEFORE/SENTON/SENTSINCE); a
/// message without a parseable `Date:` matches no sent-date key.
fn sent_day(c: &Candidate<'_>) -> Option<DayNumber> {
    c.index.and_then(|ix| ix.sent_date).map(day_number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use yubin_meta_api::UidSet;

    #[test]
    fn day_numbers_use_the_dates_own_zone() {
        // 1970-01-02T00:30:00+01:00 is 1970-01-01T23:30Z: day 1 in its own zone.
        let d = InternalDate {
            unix_seconds: 86_400 - 1800,
            tz_offset_minutes: 60,
        };
        assert_eq!(day_number(d), 1);
        let before_epoch = InternalDate {
            unix_seconds: -1,
            tz_offset_minutes: 0,
        };
        assert_eq!(day_number(before_epoch), -1);
    }

    #[test]
    fn evaluates_keys() {
        let flags = vec!["\\Seen".to_string()];
        let ix = SearchIndex {
            headers: vec![("Subject".into(), "Grüße aus Köln".into())],
            sent_date: None,
            body_text: "Hello World".into(),
        };
        let c = Candidate {
            uid: Uid(3),
            modseq: ModSeq(7),
            flags: &flags,
            internal_date: InternalDate {
                unix_seconds: 0,
                tz_offset_minutes: 0,
            },
            size: 100,
            index: Some(&ix),
        };
        assert!(matches(&SearchKey::Flag("\\seen".into()), &c));
        assert!(
            matches(
                &SearchKey::Header("subject".into(), "GRÜSSE".to_lowercase()),
                &c
            ) || matches(&SearchKey::Header("subject".into(), "grÜße".into()), &c)
        );
        assert!(matches(
            &SearchKey::Header("SUBJECT".into(), String::new()),
            &c
        ));
        assert!(!matches(&SearchKey::Header("Cc".into(), String::new()), &c));
        assert!(matches(&SearchKey::Text("subject: grüße".into()), &c));
        assert!(matches(&SearchKey::Body("WORLD".into()), &c));
        assert!(!matches(&SearchKey::SentOn(0), &c));
        assert!(matches(&SearchKey::Uids(UidSet::from_ranges([(1, 5)])), &c));
        assert!(matches(
            &SearchKey::Or(
                Box::new(SearchKey::Larger(100)),
                Box::new(SearchKey::Smaller(101))
            ),
            &c
        ));
        assert!(matches(&SearchKey::ModSeqAtLeast(ModSeq(7)), &c));
        assert!(!matches(
            &SearchKey::Not(Box::new(SearchKey::ModSeqAtLeast(ModSeq(7)))),
            &c
        ));
    }
}
