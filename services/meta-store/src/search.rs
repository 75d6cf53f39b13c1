//! The SEARCH evaluator shared by every backend (RFC 3501 §6.4.4, RFC 7162 §3.1.5).
//!
//! A backend loads what [`needs_index`] says the key needs for the mailbox's messages (in one
//! round trip) and calls [`matches`] per message. String keys match as case-insensitive
//! substrings of the MIME-decoded text; date keys compare calendar days in the zone the date
//! was given in.

use std::collections::BTreeSet;

use yubin_meta_api::{DayNumber, InternalDate, ModSeq, SearchIndex, SearchKey, Uid};

use crate::flags;

/// Three consecutive characters of lower-cased text, packed 21 bits each (every `char` fits in
/// 21 bits), so two different trigrams never share a value.
pub type Gram = u64;

/// A posting list a backend keeps per mailbox, so a search can narrow its candidates to the
/// messages on it instead of evaluating every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posting {
    /// The messages whose indexed text (see [`index_grams`]) contains this trigram.
    Gram(Gram),
    /// The messages without `\Seen`.
    Unseen,
    /// The messages with `\Deleted`.
    Deleted,
}

fn push_grams(lowered: &str, out: &mut BTreeSet<Gram>) {
    let mut window = [0u64; 3];
    for (i, c) in lowered.chars().enumerate() {
        window = [window[1], window[2], u64::from(c)];
        if i >= 2 {
            out.insert(window[0] << 42 | window[1] << 21 | window[2]);
        }
    }
}

/// A message's trigrams as a Bloom filter (one hash per gram, eight bits per gram rounded up to
/// a power of two, at least 64): a single row per message that a backend can test a needle's
/// trigrams against. With eight bits per gram a needle trigram is falsely reported present with
/// probability about 1 - e^(-1/8) ≈ 12 %, so a needle of n trigrams lets an unrelated message
/// through with about 0.12^n (0.2 % for three, 4e-8 for eight); candidates are then verified.
pub fn gram_bloom(grams: &BTreeSet<Gram>) -> Vec<u8> {
    let bits = (grams.len() * 8).next_power_of_two().max(64);
    let mut bloom = vec![0u8; bits / 8];
    for &g in grams {
        let bit = bloom_bit(g, bits);
        bloom[bit / 8] |= 1 << (bit % 8);
    }
    bloom
}

/// Whether a filter made by [`gram_bloom`] may hold every one of `grams` (no false negatives).
pub fn bloom_may_contain(bloom: &[u8], grams: &BTreeSet<Gram>) -> bool {
    let bits = bloom.len() * 8;
    if !bits.is_power_of_two() {
        // Not a filter this code wrote: let the message through to exact verification.
        return true;
    }
    grams.iter().all(|&g| {
        let bit = bloom_bit(g, bits);
        bloom[bit / 8] & (1 << (bit % 8)) != 0
    })
}

/// splitmix64's finalizer: spreads the packed characters over the filter's bits.
fn bloom_bit(g: Gram, bits: usize) -> usize {
    let mut z = g.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z as usize) & (bits - 1)
}

/// The trigrams of the lower-cased needle, or `None` when it is too short (under three
/// characters once lower-cased) to narrow anything.
fn needle_grams(needle: &str) -> Option<BTreeSet<Gram>> {
    let mut grams = BTreeSet::new();
    push_grams(&needle.to_lowercase(), &mut grams);
    (!grams.is_empty()).then_some(grams)
}

/// Every trigram a header, body or text key of [`matches`] can look for in this message: those
/// of each lower-cased header name, value and `name: value` line, and of the body text. A
/// needle that is a substring of the lower-cased haystack has all its trigrams in the
/// haystack's, so the postings of these grams never miss a match.
pub fn index_grams(ix: &SearchIndex) -> BTreeSet<Gram> {
    let mut out = BTreeSet::new();
    for (h, v) in &ix.headers {
        push_grams(&h.to_lowercase(), &mut out);
        push_grams(&v.to_lowercase(), &mut out);
        push_grams(&format!("{h}: {v}").to_lowercase(), &mut out);
    }
    push_grams(&ix.body_text.to_lowercase(), &mut out);
    out
}

/// Most distinct trigrams one message gets postings for. Natural text of the indexed size (64 KiB
/// of body, a normal header) has well under this many; a message above it (megabytes of
/// encoded-word header text, random text) would otherwise add one posting set per trigram, up to
/// about a million Redis keys per delivery and again per COPY. Such a message gets no postings
/// and is marked unindexed instead: it is a candidate of every text search and verified against
/// its stored text like any other, so answers stay exact.
pub const MAX_GRAMS_PER_MESSAGE: usize = 32_768;

/// The trigrams a backend posts for a message ([`index_grams`]), or `None` when there are more
/// than [`MAX_GRAMS_PER_MESSAGE`]: the message is then unindexed (always a candidate). Stops
/// collecting at the cap, so the work and memory are bounded whatever the text.
pub fn posted_grams(ix: &SearchIndex) -> Option<BTreeSet<Gram>> {
    let mut out = BTreeSet::new();
    let mut push = |text: &str| {
        let mut window = [0u64; 3];
        for (i, c) in text.chars().enumerate() {
            window = [window[1], window[2], u64::from(c)];
            if i >= 2 {
                out.insert(window[0] << 42 | window[1] << 21 | window[2]);
                if out.len() > MAX_GRAMS_PER_MESSAGE {
                    return false;
                }
            }
        }
        true
    };
    for (h, v) in &ix.headers {
        let fits = push(&h.to_lowercase())
            && push(&v.to_lowercase())
            && push(&format!("{h}: {v}").to_lowercase());
        if !fits {
            return None;
        }
    }
    push(&ix.body_text.to_lowercase()).then_some(out)
}

/// The filter a backend keeps for a message ([`gram_bloom`] of [`posted_grams`]); for an
/// unindexed message an empty one, which [`bloom_may_contain`] lets through for every needle.
pub fn posted_bloom(ix: &SearchIndex) -> Vec<u8> {
    posted_grams(ix).map(|g| gram_bloom(&g)).unwrap_or_default()
}

/// The UIDs that can match `key`, from the backend's posting lists (`postings` returns one list
/// in ascending UID order), or `None` when the key cannot be narrowed that way and every message
/// is a candidate. The answer is a superset: candidates are then checked with [`matches`].
pub fn candidates<E>(
    key: &SearchKey,
    postings: &mut dyn FnMut(Posting) -> Result<Vec<u32>, E>,
) -> Result<Option<Vec<u32>>, E> {
    Ok(match key {
        SearchKey::Header(_, s) | SearchKey::Body(s) | SearchKey::Text(s) => {
            match needle_grams(s) {
                None => None,
                Some(grams) => {
                    let mut lists = Vec::with_capacity(grams.len());
                    for g in grams {
                        let list = postings(Posting::Gram(g))?;
                        if list.is_empty() {
                            return Ok(Some(Vec::new()));
                        }
                        lists.push(list);
                    }
                    Some(intersect_all(lists))
                }
            }
        }
        SearchKey::NoFlag(f) if f.eq_ignore_ascii_case("\\Seen") => {
            Some(postings(Posting::Unseen)?)
        }
        SearchKey::Flag(f) if f.eq_ignore_ascii_case("\\Deleted") => {
            Some(postings(Posting::Deleted)?)
        }
        SearchKey::And(ks) => {
            let mut lists = Vec::new();
            for k in ks {
                if let Some(list) = candidates(k, postings)? {
                    if list.is_empty() {
                        return Ok(Some(list));
                    }
                    lists.push(list);
                }
            }
            (!lists.is_empty()).then(|| intersect_all(lists))
        }
        SearchKey::Or(a, b) => match (candidates(a, postings)?, candidates(b, postings)?) {
            (Some(x), Some(y)) => Some(union(&x, &y)),
            _ => None,
        },
        _ => None,
    })
}

/// Trigrams every message matching `key` contains (see [`index_grams`]), or `None` when the key
/// requires none (a short needle, NOT, a key that reads no text). For a backend that can only
/// intersect postings (one Redis script call), this is the whole plan; any subset of the answer
/// still narrows soundly.
pub fn required_grams(key: &SearchKey) -> Option<BTreeSet<Gram>> {
    match key {
        SearchKey::Header(_, s) | SearchKey::Body(s) | SearchKey::Text(s) => needle_grams(s),
        SearchKey::And(ks) => {
            let all: BTreeSet<Gram> = ks.iter().filter_map(required_grams).flatten().collect();
            (!all.is_empty()).then_some(all)
        }
        // A match satisfies one side or the other, so only grams both sides require are certain.
        SearchKey::Or(a, b) => {
            let both: BTreeSet<Gram> = required_grams(a)?
                .intersection(&required_grams(b)?)
                .copied()
                .collect();
            (!both.is_empty()).then_some(both)
        }
        _ => None,
    }
}

/// The intersection of ascending lists, smallest first so the work shrinks fastest.
fn intersect_all(mut lists: Vec<Vec<u32>>) -> Vec<u32> {
    lists.sort_by_key(Vec::len);
    let mut it = lists.into_iter();
    let mut acc = it.next().unwrap_or_default();
    for list in it {
        if acc.is_empty() {
            break;
        }
        let mut j = 0;
        acc.retain(|uid| {
            while j < list.len() && list[j] < *uid {
                j += 1;
            }
            j < list.len() && list[j] == *uid
        });
    }
    acc
}

fn union(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let next = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x == y => {
                i += 1;
                j += 1;
                *x
            }
            (Some(x), Some(y)) if x < y => {
                i += 1;
                *x
            }
            (Some(x), None) => {
                i += 1;
                *x
            }
            (_, Some(y)) => {
                j += 1;
                *y
            }
            (None, None) => break,
        };
        out.push(next);
    }
    out
}

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

    fn index(subject: &str, body: &str) -> SearchIndex {
        SearchIndex {
            headers: vec![("Subject".into(), subject.into())],
            sent_date: None,
            body_text: body.into(),
        }
    }

    /// Postings built from `index_grams` and the answer of `candidates` never drop a message
    /// `matches` accepts, for ASCII, accented, Greek (final sigma) and CJK needles.
    #[test]
    fn candidates_never_miss_a_match() {
        let docs = [
            index("Grüße aus Köln", "Straße"),
            index("ΣΊΣΥΦΟΣ", "日本語のテキスト"),
            index("Re: alpha beta", "ALPHA gamma"),
            index("", ""),
        ];
        let grams: Vec<BTreeSet<Gram>> = docs.iter().map(index_grams).collect();
        let mut postings = |p: Posting| -> Result<Vec<u32>, ()> {
            Ok(match p {
                Posting::Gram(g) => (0..docs.len())
                    .filter(|&i| grams[i].contains(&g))
                    .map(|i| i as u32 + 1)
                    .collect(),
                Posting::Unseen | Posting::Deleted => Vec::new(),
            })
        };
        let b = Box::new;
        let keys = [
            SearchKey::Header("subject".into(), "KÖLN".into()),
            SearchKey::Text("subject: re: al".into()),
            SearchKey::Text("σίσυφος".into()),
            SearchKey::Body("本語の".into()),
            SearchKey::Body("alpha gamma".into()),
            SearchKey::Or(
                b(SearchKey::Body("straße".into())),
                b(SearchKey::Text("beta".into())),
            ),
            SearchKey::And(vec![
                SearchKey::Text("alpha".into()),
                SearchKey::Body("gamma".into()),
            ]),
        ];
        for key in keys {
            let want: Vec<u32> = (0..docs.len())
                .filter(|&i| {
                    matches(
                        &key,
                        &Candidate {
                            uid: Uid(i as u32 + 1),
                            modseq: ModSeq(1),
                            flags: &[],
                            internal_date: InternalDate {
                                unix_seconds: 0,
                                tz_offset_minutes: 0,
                            },
                            size: 0,
                            index: Some(&docs[i]),
                        },
                    )
                })
                .map(|i| i as u32 + 1)
                .collect();
            assert!(!want.is_empty(), "{key:?} matches something");
            let got = candidates(&key, &mut postings)
                .expect("lookup")
                .expect("narrowed");
            assert!(
                want.iter().all(|u| got.contains(u)),
                "{key:?}: {got:?} misses {want:?}"
            );
            assert!(
                !got.contains(&4),
                "{key:?}: the empty message is not a candidate"
            );
            // An OR whose sides share no trigram requires none.
            let required = required_grams(&key).unwrap_or_default();
            for u in want {
                assert!(required.is_subset(&grams[u as usize - 1]), "{key:?}");
            }
        }
        assert_eq!(
            candidates(&SearchKey::Text("al".into()), &mut postings),
            Ok(None)
        );
        // Filters never lose a gram, and reject a needle absent from a small message.
        for g in &grams {
            assert!(bloom_may_contain(&gram_bloom(g), g));
        }
        let small = gram_bloom(&grams[2]);
        let absent = required_grams(&SearchKey::Text("xylophonist quartz".into())).expect("grams");
        assert!(!bloom_may_contain(&small, &absent));
        assert_eq!(gram_bloom(&BTreeSet::new()).len(), 8);
        assert_eq!(
            required_grams(&SearchKey::Not(b(SearchKey::Text("alpha".into())))),
            None
        );
        assert_eq!(union(&[1, 3, 5], &[2, 3, 6]), vec![1, 2, 3, 5, 6]);
        assert_eq!(
            intersect_all(vec![vec![1, 3, 5, 7], vec![3, 7, 9], vec![7]]),
            vec![7]
        );
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
