use crate::Uid;
use serde::{Deserialize, Serialize};

/// A set of UIDs as sorted, non-overlapping, non-adjacent inclusive ranges. An open upper end
/// (IMAP's `*` in a UID set) is written as `u32::MAX`; implementations never walk a set one UID at
/// a time, so such ranges cost nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UidSet {
    ranges: Vec<(u32, u32)>,
}

impl UidSet {
    pub fn new() -> UidSet {
        UidSet::default()
    }

    /// Builds a set from arbitrary inclusive ranges (either bound order, overlaps allowed).
    pub fn from_ranges(ranges: impl IntoIterator<Item = (u32, u32)>) -> UidSet {
        let mut v: Vec<(u32, u32)> = ranges
            .into_iter()
            .map(|(a, b)| if a <= b { (a, b) } else { (b, a) })
            .collect();
        v.sort_unstable();
        let mut out: Vec<(u32, u32)> = Vec::with_capacity(v.len());
        for (a, b) in v {
            match out.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        UidSet { ranges: out }
    }

    pub fn from_uids(uids: impl IntoIterator<Item = Uid>) -> UidSet {
        UidSet::from_ranges(uids.into_iter().map(|u| (u.0, u.0)))
    }

    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.ranges
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn contains(&self, uid: Uid) -> bool {
        let i = self.ranges.partition_point(|r| r.1 < uid.0);
        self.ranges.get(i).is_some_and(|r| r.0 <= uid.0)
    }

    /// Number of UIDs in the set.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|(a, b)| u64::from(b - a) + 1).sum()
    }

    /// Iterates every UID in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = Uid> + '_ {
        self.ranges.iter().flat_map(|&(a, b)| (a..=b).map(Uid))
    }

    /// The compact IMAP form, e.g. `1:3,7` (RFC 3501 §9 sequence-set); empty for an empty set.
    pub fn to_imap(&self) -> String {
        let parts: Vec<String> = self
            .ranges
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}:{b}")
                }
            })
            .collect();
        parts.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_overlapping_and_adjacent_ranges() {
        let s = UidSet::from_ranges([(5, 3), (7, 9), (10, 10), (1, 1)]);
        assert_eq!(s.ranges(), &[(1, 1), (3, 5), (7, 10)]);
        assert_eq!(s.to_imap(), "1,3:5,7:10");
        assert_eq!(s.len(), 8);
        assert!(s.contains(Uid(4)) && s.contains(Uid(10)) && !s.contains(Uid(6)));
        assert_eq!(
            s.iter().map(|u| u.0).collect::<Vec<_>>(),
            [1, 3, 4, 5, 7, 8, 9, 10]
        );
    }
}
