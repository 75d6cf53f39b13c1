//! The one definition of what IMAP SEARCH's text and sent-date keys mean (RFC 3501 §6.4.4,
//! RFC 9051 §6.4.4): case-insensitive substring tests on the MIME-decoded text, and calendar-day
//! comparisons of the `Date:` header in its own zone. The index answers exactly this; the tests
//! compare every index answer with a scan through [`leaf_matches`].

use yubin_meta_api::{DayNumber, InternalDate, SearchIndex, SearchKey};

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

/// Whether `key` is a leaf the text index answers: HEADER, BODY, TEXT and the sent-date keys.
pub fn is_text_leaf(key: &SearchKey) -> bool {
    matches!(
        key,
        SearchKey::Header(..)
            | SearchKey::Body(_)
            | SearchKey::Text(_)
            | SearchKey::SentBefore(_)
            | SearchKey::SentOn(_)
            | SearchKey::SentSince(_)
    )
}

/// The leaves of `key` the index answers, in pre-order (left to right through AND, OR and NOT).
/// A caller identifies a leaf by its position in this list, in [`crate::LeafHits::hits`].
pub fn text_leaves(key: &SearchKey) -> Vec<&SearchKey> {
    fn walk<'a>(key: &'a SearchKey, out: &mut Vec<&'a SearchKey>) {
        match key {
            SearchKey::Not(k) => walk(k, out),
            SearchKey::Or(a, b) => {
                walk(a, out);
                walk(b, out);
            }
            SearchKey::And(ks) => ks.iter().for_each(|k| walk(k, out)),
            k if is_text_leaf(k) => out.push(k),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(key, &mut out);
    out
}

/// Case-insensitive substring test on decoded text; an empty needle is in every string. Both
/// sides are lower-cased as whole strings (`str::to_lowercase`, which handles the Greek final
/// sigma by context), so the index must lower-case whole values the same way.
fn contains_ci(haystack: &str, needle_lower: &str) -> bool {
    needle_lower.is_empty() || haystack.to_lowercase().contains(needle_lower)
}

/// Whether the message whose search index is `ix` satisfies the text or sent-date leaf `leaf`;
/// any other key (flags, sizes, UIDs, boolean operators) is not a leaf of the index and gives
/// `false`.
///
/// - HEADER: some field whose name equals the key's ASCII-case-insensitively has a value
///   containing the string; the empty string matches every message having the field.
/// - BODY: the body text contains the string.
/// - TEXT: the body text, or some header name, value or whole `name: value` line, contains it.
/// - SENTBEFORE/SENTON/SENTSINCE: the `Date:` day ([`day_number`]) compared with the key's day;
///   a message without a parseable `Date:` matches none of them.
pub fn leaf_matches(leaf: &SearchKey, ix: &SearchIndex) -> bool {
    let sent_day = || ix.sent_date.map(day_number);
    match leaf {
        SearchKey::Header(name, value) => {
            let needle = value.to_lowercase();
            ix.headers
                .iter()
                .any(|(h, v)| h.eq_ignore_ascii_case(name) && contains_ci(v, &needle))
        }
        SearchKey::Body(s) => contains_ci(&ix.body_text, &s.to_lowercase()),
        SearchKey::Text(s) => {
            let needle = s.to_lowercase();
            contains_ci(&ix.body_text, &needle)
                || ix.headers.iter().any(|(h, v)| {
                    contains_ci(h, &needle)
                        || contains_ci(v, &needle)
                        || contains_ci(&format!("{h}: {v}"), &needle)
                })
        }
        SearchKey::SentBefore(d) => sent_day().is_some_and(|s| s < *d),
        SearchKey::SentOn(d) => sent_day().is_some_and(|s| s == *d),
        SearchKey::SentSince(d) => sent_day().is_some_and(|s| s >= *d),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn leaves_in_pre_order() {
        let b = Box::new;
        let key = SearchKey::And(vec![
            SearchKey::Flag("\\Seen".into()),
            SearchKey::Or(
                b(SearchKey::Body("a".into())),
                b(SearchKey::Not(b(SearchKey::SentOn(3)))),
            ),
            SearchKey::Text("b".into()),
        ]);
        assert_eq!(
            text_leaves(&key),
            vec![
                &SearchKey::Body("a".into()),
                &SearchKey::SentOn(3),
                &SearchKey::Text("b".into())
            ]
        );
        assert!(text_leaves(&SearchKey::All).is_empty());
    }

    #[test]
    fn evaluates_leaves() {
        let ix = SearchIndex {
            headers: vec![
                ("Subject".into(), "Grüße aus Köln".into()),
                ("X-Empty".into(), String::new()),
            ],
            sent_date: Some(InternalDate {
                unix_seconds: 86_400 * 10 + 5,
                tz_offset_minutes: 0,
            }),
            body_text: "Hello World".into(),
        };
        assert!(leaf_matches(
            &SearchKey::Header("subject".into(), "GRÜßE".into()),
            &ix
        ));
        assert!(leaf_matches(
            &SearchKey::Header("x-empty".into(), String::new()),
            &ix
        ));
        assert!(!leaf_matches(
            &SearchKey::Header("Cc".into(), String::new()),
            &ix
        ));
        assert!(leaf_matches(&SearchKey::Text("subject: grüße".into()), &ix));
        assert!(leaf_matches(&SearchKey::Text("x-empty: ".into()), &ix));
        assert!(leaf_matches(&SearchKey::Body("WORLD".into()), &ix));
        assert!(!leaf_matches(&SearchKey::Body("köln".into()), &ix));
        assert!(leaf_matches(&SearchKey::SentOn(10), &ix));
        assert!(leaf_matches(&SearchKey::SentSince(10), &ix));
        assert!(!leaf_matches(&SearchKey::SentBefore(10), &ix));
        assert!(!leaf_matches(&SearchKey::All, &ix));
        let undated = SearchIndex::default();
        assert!(!leaf_matches(&SearchKey::SentBefore(i32::MAX), &undated));
        assert!(leaf_matches(&SearchKey::Body(String::new()), &undated));
    }
}
