//! Sequence sets as disjoint ranges (RFC 3501 §9 `sequence-set`).
//!
//! A client may repeat and overlap ranges at will (`1:*,1:*,…`), and RFC 3501 §9 says the order
//! and repetition do not matter: each message is named once. Expanding the ranges one by one
//! before removing duplicates would cost memory and time proportional to the mailbox size times
//! the number of ranges, so the ranges themselves are merged first: sorting and merging `r`
//! ranges costs O(r log r) whatever they cover, and what is resolved afterwards is at most the
//! mailbox once.

use crate::command::{SeqBound, SequenceSet};

impl SequenceSet {
    /// The numbers of this set as sorted, non-overlapping, non-adjacent inclusive ranges, with
    /// `*` standing for `star` (the largest number in use, RFC 3501 §9; `n:*` is the same range
    /// as `*:n`). `None` for `$` (RFC 5182), which names a saved result rather than numbers.
    pub fn merged(&self, star: u32) -> Option<Vec<(u32, u32)>> {
        match self {
            SequenceSet::Ranges(ranges) => Some(merge_ranges(ranges.iter().map(|&(a, b)| {
                let a = bound(a, star);
                let b = bound(b, star);
                if a <= b { (a, b) } else { (b, a) }
            }))),
            SequenceSet::Saved => None,
        }
    }
}

fn bound(b: SeqBound, star: u32) -> u32 {
    match b {
        SeqBound::Number(n) => n,
        SeqBound::Star => star,
    }
}

/// Sorts inclusive `(low, high)` ranges (each with `low <= high`) and merges those that overlap
/// or touch.
pub fn merge_ranges(ranges: impl IntoIterator<Item = (u32, u32)>) -> Vec<(u32, u32)> {
    let mut v: Vec<(u32, u32)> = ranges.into_iter().collect();
    v.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(v.len().min(1024));
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use SeqBound::{Number as N, Star};

    fn set(r: &[(SeqBound, SeqBound)]) -> SequenceSet {
        SequenceSet::Ranges(r.to_vec())
    }

    #[test]
    fn overlapping_repeated_and_reversed_ranges_merge() {
        let s = set(&[(N(7), N(9)), (N(1), Star), (N(4), N(2)), (N(12), N(12))]);
        assert_eq!(s.merged(10), Some(vec![(1, 10), (12, 12)]));
        let s = set(&[(N(5), N(6)), (N(1), N(2)), (N(3), N(3)), (N(9), N(9))]);
        assert_eq!(s.merged(10), Some(vec![(1, 3), (5, 6), (9, 9)]));
        // `n:*` with n beyond the largest number is `*:n` (RFC 3501 §9).
        assert_eq!(set(&[(N(20), Star)]).merged(10), Some(vec![(10, 20)]));
        assert_eq!(SequenceSet::Saved.merged(10), None);
        assert_eq!(
            set(&[(N(4_000_000_000), Star)]).merged(u32::MAX),
            Some(vec![(4_000_000_000, u32::MAX)])
        );
    }

    /// The attack: `1:*` repeated thousands of times merges to one range, without anything the
    /// size of the mailbox being built.
    #[test]
    fn a_repeated_full_range_is_one_range() {
        let s = SequenceSet::Ranges(vec![(N(1), Star); 16_000]);
        assert_eq!(s.merged(u32::MAX - 1), Some(vec![(1, u32::MAX - 1)]));
        let s = SequenceSet::Ranges((1..=16_000).rev().map(|n| (N(n), N(n))).collect());
        assert_eq!(s.merged(1), Some(vec![(1, 16_000)]));
    }
}
