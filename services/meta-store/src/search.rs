//! The SEARCH evaluator shared by every backend (RFC 3501 §6.4.4, RFC 7162 §3.1.5).
//!
//! A backend loads what [`needs_index`] says the key needs for the mailbox's messages (in one
//! round trip) and calls [`matches`] per message. String keys match as case-insensitive
//! substrings of the MIME-decoded text; date keys compare calendar days in the zone the date
//! was given in.

use yubin_meta_api::{InternalDate, ModSeq, SearchIndex, SearchKey, Uid};

use crate::flags;
use crate::fulltext::TextAnswers;

/// What the evaluator knows of one message.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub uid: Uid,
    pub modseq: ModSeq,
    pub flags: &'a [String],
    pub internal_date: InternalDate,
    pub size: u64,
    /// The message's search text, when the evaluator has it: a message still queued for the
    /// full-text index (or every message, on a store without one).
    pub index: Option<&'a SearchIndex>,
    /// The full-text index's answers for the key's text leaves, for a message without `index`
    /// (an indexed one). With neither, header/body/sent-date keys match nothing (the key does
    /// not need them, see [`needs_index`]).
    pub text: Option<&'a TextAnswers<'a>>,
}

/// The calendar day of a date in its own zone (RFC 3501 §6.4.4), as the text index uses it.
pub use yubin_text_index::day_number;

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
        SearchKey::Larger(n) => c.size > *n,
        SearchKey::Smaller(n) => c.size < *n,
        // The text leaves (RFC 3501 §6.4.4): one definition, shared with the full-text index.
        leaf @ (SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_)
        | SearchKey::Header(..)
        | SearchKey::Body(_)
        | SearchKey::Text(_)) => match (c.index, c.text) {
            (Some(ix), _) => yubin_text_index::leaf_matches(leaf, ix),
            (None, Some(answers)) => answers.holds(leaf, c.uid),
            (None, None) => false,
        },
        SearchKey::ModSeqAtLeast(m) => c.modseq >= *m,
        SearchKey::Not(k) => !matches(k, c),
        SearchKey::Or(a, b) => matches(a, c) || matches(b, c),
        SearchKey::And(ks) => ks.iter().all(|k| matches(k, c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yubin_meta_api::UidSet;

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
            text: None,
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
