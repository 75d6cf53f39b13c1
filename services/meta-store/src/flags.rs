//! Flag list rules shared by both backends (RFC 3501 §2.3.2).
//!
//! Flags compare case-insensitively (system flags by definition; keywords too, as most servers
//! do, so that `$label1` and `$Label1` never coexist on one message); a message keeps the
//! spelling it was first given.
//!
//! Every operation here is linear in the lengths of the lists: membership goes through a set of
//! lower-cased names built once, never a scan of the other list per element (a STORE of 12 000
//! keywords made the quadratic version hold the write lock for seconds).

use std::collections::HashSet;

use yubin_meta_api::{FlagOp, MetaError, MetaResult, canonical_flag, is_system_flag};

/// The lower-cased names of `flags`, for case-insensitive membership (RFC 3501 §2.3.2).
pub(crate) fn lower_set<'a>(flags: impl IntoIterator<Item = &'a String>) -> HashSet<String> {
    flags.into_iter().map(|f| f.to_ascii_lowercase()).collect()
}

/// The number of keywords (flags other than system flags) in `flags`.
pub(crate) fn keyword_count(flags: &[String]) -> usize {
    flags.iter().filter(|f| !is_system_flag(f)).count()
}

/// Canonical, de-duplicated flags without `\Recent` (which is session state, RFC 3501 §2.3.2,
/// and never stored). Rejects what cannot be a flag atom.
pub(crate) fn normalize(flags: &[String]) -> MetaResult<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(flags.len());
    let mut seen = HashSet::with_capacity(flags.len());
    for f in flags {
        let f = canonical_flag(f);
        if f == "\\Recent" {
            continue;
        }
        let bad_char = |c: char| {
            c.is_control()
                || c.is_whitespace()
                || matches!(c, '(' | ')' | '{' | '%' | '*' | '"' | ']')
        };
        let valid =
            !f.is_empty() && !f.chars().any(bad_char) && (is_system_flag(&f) || !f.contains('\\'));
        if !valid {
            return Err(MetaError::Invalid(format!("invalid flag {f:?}")));
        }
        if seen.insert(f.to_ascii_lowercase()) {
            out.push(f);
        }
    }
    Ok(out)
}

/// Whether `flags` holds `flag`; a scan, for the short checks of one system flag.
pub(crate) fn contains(flags: &[String], flag: &str) -> bool {
    flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
}

/// The flags after applying `op` with (normalized) `given`, or `None` when the set does not
/// change, in which case the message keeps its MODSEQ (RFC 7162 §3.2: only real changes bump it).
pub(crate) fn apply(current: &[String], op: FlagOp, given: &[String]) -> Option<Vec<String>> {
    let have = lower_set(current);
    let next: Vec<String> = match op {
        FlagOp::Add => {
            let mut v = current.to_vec();
            // `given` is normalized (no duplicates), so only `current` needs looking up.
            v.extend(
                given
                    .iter()
                    .filter(|f| !have.contains(&f.to_ascii_lowercase()))
                    .cloned(),
            );
            v
        }
        FlagOp::Remove => {
            let drop = lower_set(given);
            current
                .iter()
                .filter(|f| !drop.contains(&f.to_ascii_lowercase()))
                .cloned()
                .collect()
        }
        FlagOp::Replace => given.to_vec(),
    };
    // `next` has no duplicates, so equal length plus inclusion means the same set.
    let same =
        next.len() == have.len() && next.iter().all(|f| have.contains(&f.to_ascii_lowercase()));
    if same { None } else { Some(next) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn normalizes() {
        let n = normalize(&v(&["\\seen", "\\SEEN", "\\recent", "$Label", "$label"])).unwrap();
        assert_eq!(n, v(&["\\Seen", "$Label"]));
        assert!(normalize(&v(&["a b"])).is_err());
        assert!(normalize(&v(&["\\Bogus"])).is_err());
        assert!(normalize(&v(&[""])).is_err());
    }

    #[test]
    fn applies_ops() {
        let cur = v(&["\\Seen", "$A"]);
        assert_eq!(apply(&cur, FlagOp::Add, &v(&["\\Seen"])), None);
        assert_eq!(
            apply(&cur, FlagOp::Add, &v(&["$b"])),
            Some(v(&["\\Seen", "$A", "$b"]))
        );
        assert_eq!(
            apply(&cur, FlagOp::Remove, &v(&["$a"])),
            Some(v(&["\\Seen"]))
        );
        assert_eq!(apply(&cur, FlagOp::Remove, &v(&["$c"])), None);
        assert_eq!(apply(&cur, FlagOp::Replace, &v(&["$A", "\\Seen"])), None);
        assert_eq!(apply(&cur, FlagOp::Replace, &v(&[])), Some(vec![]));
    }
}
