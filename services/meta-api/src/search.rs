use crate::{ModSeq, UidSet};
use serde::{Deserialize, Serialize};

/// A calendar day as days since 1970-01-01. IMAP date search keys compare dates only, disregarding
/// time and zone (RFC 3501 §6.4.4).
pub type DayNumber = i32;

/// A search program the metadata service evaluates. Session-relative parts of IMAP SEARCH (sequence
/// numbers, `$`, `\Recent`, NEW/OLD) are resolved to UID sets by the front-end before it is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SearchKey {
    All,
    /// Messages whose UID is in the set.
    Uids(UidSet),
    /// Messages carrying the flag or keyword (canonical spelling).
    Flag(String),
    /// Messages not carrying the flag or keyword.
    NoFlag(String),
    /// INTERNALDATE (in its own zone) is before / on / on-or-after the day.
    Before(DayNumber),
    On(DayNumber),
    Since(DayNumber),
    /// `Date:` header (in its own zone) is before / on / on-or-after the day.
    SentBefore(DayNumber),
    SentOn(DayNumber),
    SentSince(DayNumber),
    /// RFC822.SIZE strictly larger / smaller than n.
    Larger(u64),
    Smaller(u64),
    /// Header field `name` contains `value` as a case-insensitive substring; an empty value
    /// matches every message that has the field (RFC 3501 §6.4.4 HEADER).
    Header(String, String),
    /// The body text contains the string (case-insensitive).
    Body(String),
    /// The header or body text contains the string (case-insensitive).
    Text(String),
    /// Message modseq is at least n (RFC 7162 §3.1.5).
    ModSeqAtLeast(ModSeq),
    Not(Box<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    And(Vec<SearchKey>),
}
