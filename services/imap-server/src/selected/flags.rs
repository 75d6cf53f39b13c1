//! The flags of a session's view, kept once known, so that flag reads (`FETCH (FLAGS)`, SEARCH
//! over flag keys) are answered without asking the store.
//!
//! For every message of the view, aligned with `Selected`'s UID list, the view keeps the MODSEQ
//! of the flag state it holds and that state's flag list as an id into a per-selection table of
//! the distinct lists seen: 12 bytes per message (an 8-byte MODSEQ and a 4-byte list id; 16
//! with the view's UID). A list holds the message's flags in the store's order as ids into a
//! table of flag names, so a list answered from the view is exactly the one the store sends,
//! spelling and order included. SELECT and EXAMINE fill the view from the store's snapshot,
//! which carries every message's flags and MODSEQ as of its HIGHESTMODSEQ
//! ([`FlagView::learn_snapshot`]), so the first flag read after SELECT needs no store read
//! either. Until the first state is learned (a snapshot from a meta service that sends no
//! flags) the per-message vectors are not allocated at all.
//!
//! States are merged by MODSEQ: every change of a message's flags gets a higher MODSEQ (RFC 7162
//! §3), so whatever order the session hears of them in (a FETCH, its own STORE, a catch-up),
//! the view keeps the latest.
//!
//! Bounds, whatever a client stores: at most the five system flags plus
//! [`DEFAULT_MAX_KEYWORDS_PER_MAILBOX`] names (the stores' per-mailbox keyword limit), at most
//! [`MAX_LISTS`] lists holding [`MAX_LIST_IDS`] ids together. A state that does not fit leaves
//! its message unknown, and unknown messages are read from the store as before.

use std::collections::HashMap;
use std::sync::Arc;
use yubin_meta_api::{
    DEFAULT_MAX_KEYWORDS_PER_MAILBOX, ModSeq, SearchKey, SnapshotFlags, Uid, UidSet,
};

/// The list id of a message whose flags the view does not know.
const UNKNOWN: u32 = u32::MAX;
/// System flags (RFC 3501 §2.3.2, `\Recent` is never stored) and keywords.
const MAX_NAMES: usize = 5 + DEFAULT_MAX_KEYWORDS_PER_MAILBOX as usize;
/// Distinct flag lists of one selection. A mailbox's messages share few (a handful of system
/// flag combinations, some keywords); the cap bounds what a client making every message's list
/// different can make the session hold.
const MAX_LISTS: usize = 2048;
/// Flag ids in all lists together (64 KiB of ids).
const MAX_LIST_IDS: usize = 32 * 1024;

pub(crate) struct FlagView {
    /// Messages in the view.
    len: usize,
    /// Per message: the MODSEQ of the state held (of the newest state heard of when that one
    /// did not fit). Empty until the first state is learned: then every message is unknown.
    modseq: Vec<ModSeq>,
    /// Per message: the id of its flag list in `lists`, or `UNKNOWN`; empty with `modseq`.
    list: Vec<u32>,
    /// Messages whose list is `UNKNOWN`.
    unknown: usize,
    /// Flag id → name as the store spells it.
    names: Vec<Box<str>>,
    name_ids: HashMap<Box<str>, u16>,
    /// List id → flag ids in the store's order.
    lists: Vec<Arc<[u16]>>,
    list_ids: HashMap<Arc<[u16]>, u32>,
    /// Ids in `lists` together.
    list_id_total: usize,
    /// A compaction left the table more than half full: new lists are not taken any more (see
    /// [`FlagView::add_list`]).
    saturated: bool,
    /// Reused buffer for the ids of the list being interned.
    scratch: Vec<u16>,
    /// Compactions so far: list ids taken before one are stale after it.
    compactions: u64,
}

/// A search key over the view: the store's key (its session-relative parts already resolved to
/// UID sets) with each flag test turned into one answer per flag list.
pub(crate) enum Program {
    All,
    Uids(UidSet),
    /// Indexed by list id: whether the list matches.
    Lists(Vec<bool>),
    ModSeqAtLeast(ModSeq),
    Not(Box<Program>),
    Or(Box<Program>, Box<Program>),
    And(Vec<Program>),
}

impl FlagView {
    /// The view of `len` messages whose flags are not known yet.
    pub(crate) fn unknown(len: usize) -> FlagView {
        FlagView {
            len,
            modseq: Vec::new(),
            list: Vec::new(),
            unknown: len,
            names: Vec::new(),
            name_ids: HashMap::new(),
            lists: Vec::new(),
            list_ids: HashMap::new(),
            list_id_total: 0,
            saturated: false,
            scratch: Vec::new(),
            compactions: 0,
        }
    }

    /// Whether the flags of every message are known.
    pub(crate) fn all_known(&self) -> bool {
        self.unknown == 0
    }

    /// The MODSEQ of message `i` when its flags are known.
    pub(crate) fn modseq(&self, i: usize) -> Option<ModSeq> {
        match self.list.get(i) {
            Some(&l) if l != UNKNOWN => self.modseq.get(i).copied(),
            _ => None,
        }
    }

    /// Appends a message, with its state when known.
    pub(crate) fn push(&mut self, state: Option<(ModSeq, &[String])>) {
        if !self.list.is_empty() || state.is_some() {
            self.materialize();
            self.modseq.push(ModSeq(0));
            self.list.push(UNKNOWN);
        }
        self.len += 1;
        self.unknown += 1;
        if let Some((modseq, flags)) = state {
            self.learn(self.len - 1, modseq, flags);
        }
    }

    /// Takes `flags` at `modseq` as message `i`'s state unless the view holds a later one.
    pub(crate) fn learn(&mut self, i: usize, modseq: ModSeq, flags: &[String]) {
        if i >= self.len {
            return;
        }
        self.materialize();
        if self.holds_newer(i, modseq) {
            return;
        }
        let id = self.intern(flags);
        self.set(i, modseq, id);
    }

    /// Takes every message's state from a SELECT snapshot (aligned with the view, which is
    /// built from the same snapshot); nothing when the snapshot carries none (`covers`).
    /// Each distinct list of the snapshot is interned once, not once per message.
    pub(crate) fn learn_snapshot(&mut self, flags: &SnapshotFlags) {
        if self.len == 0 || !flags.covers(self.len) {
            return;
        }
        self.materialize();
        // Snapshot list → view list id, filled as lists are met. A compaction (when a hostile
        // mailbox has more distinct lists than the table holds) renumbers the view's lists, so
        // the ids taken before it are dropped then.
        let mut ids: Vec<Option<u32>> = vec![None; flags.lists.len()];
        let mut compactions = self.compactions;
        for (i, (&l, &modseq)) in flags.list_of.iter().zip(&flags.modseqs).enumerate() {
            if self.holds_newer(i, modseq) {
                continue;
            }
            let l = l as usize;
            let id = match ids[l] {
                Some(id) => id,
                None => {
                    let id = self.intern(&flags.lists[l]);
                    if self.compactions != compactions {
                        compactions = self.compactions;
                        ids.fill(None);
                    }
                    ids[l] = Some(id);
                    id
                }
            };
            self.set(i, modseq, id);
        }
    }

    /// Whether the view holds a state of message `i` at least as new as `modseq` (a known one
    /// at the same MODSEQ is the same state).
    fn holds_newer(&self, i: usize, modseq: ModSeq) -> bool {
        let known = self.list[i] != UNKNOWN;
        modseq < self.modseq[i] || (modseq == self.modseq[i] && known)
    }

    /// Makes list `id` (possibly `UNKNOWN`) at `modseq` message `i`'s state.
    fn set(&mut self, i: usize, modseq: ModSeq, id: u32) {
        let known = self.list[i] != UNKNOWN;
        match (known, id != UNKNOWN) {
            (true, false) => self.unknown += 1,
            (false, true) => self.unknown -= 1,
            _ => {}
        }
        self.modseq[i] = modseq;
        self.list[i] = id;
    }

    /// Removes the messages at `positions` (ascending, distinct, each below the length).
    pub(crate) fn remove(&mut self, positions: &[usize]) {
        if self.list.is_empty() {
            self.unknown -= positions.len();
        } else {
            self.unknown -= positions
                .iter()
                .filter(|&&i| self.list[i] == UNKNOWN)
                .count();
            remove_positions(&mut self.modseq, positions);
            remove_positions(&mut self.list, positions);
        }
        self.len -= positions.len();
    }

    /// Message `i`'s flags in the store's order, when known.
    pub(crate) fn flags(&self, i: usize) -> Option<Vec<String>> {
        let &l = self.list.get(i).filter(|l| **l != UNKNOWN)?;
        Some(
            self.lists[l as usize]
                .iter()
                .map(|&id| self.names[usize::from(id)].to_string())
                .collect(),
        )
    }

    /// Appends message `i`'s flag list, `(\Seen $Junk)` with `\Recent` added when `recent`, as
    /// [`super::flag_list`] writes it; false (and nothing written) when it is not known.
    pub(crate) fn write_flags(&self, i: usize, recent: bool, buf: &mut Vec<u8>) -> bool {
        let Some(&l) = self.list.get(i).filter(|l| **l != UNKNOWN) else {
            return false;
        };
        let list = &self.lists[l as usize];
        buf.push(b'(');
        for (k, &id) in list.iter().enumerate() {
            if k > 0 {
                buf.push(b' ');
            }
            buf.extend_from_slice(self.names[usize::from(id)].as_bytes());
        }
        if recent {
            if !list.is_empty() {
                buf.push(b' ');
            }
            buf.extend_from_slice(b"\\Recent");
        }
        buf.push(b')');
        true
    }

    /// `key` as a program over the view, or `None` when it tests more than flags, UIDs and
    /// MODSEQ (dates, sizes, text: the store's index answers those).
    pub(crate) fn compile(&self, key: &SearchKey) -> Option<Program> {
        Some(match key {
            SearchKey::All => Program::All,
            SearchKey::Uids(set) => Program::Uids(set.clone()),
            SearchKey::Flag(f) => Program::Lists(self.lists_with(f)),
            SearchKey::NoFlag(f) => Program::Not(Box::new(Program::Lists(self.lists_with(f)))),
            SearchKey::ModSeqAtLeast(m) => Program::ModSeqAtLeast(*m),
            SearchKey::Not(k) => Program::Not(Box::new(self.compile(k)?)),
            SearchKey::Or(a, b) => {
                Program::Or(Box::new(self.compile(a)?), Box::new(self.compile(b)?))
            }
            SearchKey::And(keys) => Program::And(
                keys.iter()
                    .map(|k| self.compile(k))
                    .collect::<Option<Vec<_>>>()?,
            ),
            _ => return None,
        })
    }

    /// Whether message `i` (UID `uid`), whose flags are known, matches `program`.
    pub(crate) fn matches(&self, program: &Program, i: usize, uid: Uid) -> bool {
        match program {
            Program::All => true,
            Program::Uids(set) => set.contains(uid),
            Program::Lists(answers) => self
                .list
                .get(i)
                .and_then(|&l| answers.get(l as usize))
                .copied()
                .unwrap_or(false),
            Program::ModSeqAtLeast(m) => self.modseq.get(i).is_some_and(|have| have >= m),
            Program::Not(p) => !self.matches(p, i, uid),
            Program::Or(a, b) => self.matches(a, i, uid) || self.matches(b, i, uid),
            Program::And(ps) => ps.iter().all(|p| self.matches(p, i, uid)),
        }
    }

    /// Per list: whether it holds `flag`. Flags compare case-insensitively, as the stores
    /// compare them (RFC 3501 §2.3.2 for system flags; keywords too, see meta-store's flags).
    fn lists_with(&self, flag: &str) -> Vec<bool> {
        let named: Vec<bool> = self
            .names
            .iter()
            .map(|n| n.eq_ignore_ascii_case(flag))
            .collect();
        self.lists
            .iter()
            .map(|l| l.iter().any(|&id| named[usize::from(id)]))
            .collect()
    }

    /// Allocates the per-message vectors (every message unknown) on first use.
    fn materialize(&mut self) {
        if self.list.len() < self.len {
            self.modseq.resize(self.len, ModSeq(0));
            self.list.resize(self.len, UNKNOWN);
        }
    }

    /// The list id of `flags`, or `UNKNOWN` when the tables have no room for it.
    fn intern(&mut self, flags: &[String]) -> u32 {
        let mut ids = std::mem::take(&mut self.scratch);
        ids.clear();
        let mut fits = true;
        for f in flags {
            match self.name_id(f) {
                Some(id) => ids.push(id),
                None => {
                    fits = false;
                    break;
                }
            }
        }
        let id = if fits { self.list_id(&ids) } else { UNKNOWN };
        self.scratch = ids;
        id
    }

    fn name_id(&mut self, name: &str) -> Option<u16> {
        if let Some(&id) = self.name_ids.get(name) {
            return Some(id);
        }
        if self.names.len() >= MAX_NAMES {
            return None;
        }
        let id = u16::try_from(self.names.len()).ok()?;
        self.names.push(name.into());
        self.name_ids.insert(name.into(), id);
        Some(id)
    }

    fn list_id(&mut self, ids: &[u16]) -> u32 {
        if let Some(&id) = self.list_ids.get(ids) {
            return id;
        }
        self.add_list(ids)
    }

    fn has_room(&self, ids: usize) -> bool {
        self.lists.len() < MAX_LISTS && self.list_id_total + ids <= MAX_LIST_IDS
    }

    /// Adds a new list. When the table is full, the lists no message holds any more are
    /// dropped first; if more than half of the table is still in use afterwards, the session
    /// takes no new lists for the rest of the selection rather than compacting again and again
    /// (each compaction walks the whole view).
    fn add_list(&mut self, ids: &[u16]) -> u32 {
        if !self.has_room(ids.len()) {
            if self.saturated {
                return UNKNOWN;
            }
            self.compact();
            if self.lists.len() > MAX_LISTS / 2 || self.list_id_total > MAX_LIST_IDS / 2 {
                self.saturated = true;
            }
            if !self.has_room(ids.len()) {
                return UNKNOWN;
            }
        }
        let Ok(id) = u32::try_from(self.lists.len()) else {
            return UNKNOWN;
        };
        let list: Arc<[u16]> = ids.into();
        self.list_id_total += list.len();
        self.lists.push(list.clone());
        self.list_ids.insert(list, id);
        id
    }

    /// Drops the lists no message holds and renumbers the rest.
    fn compact(&mut self) {
        self.compactions += 1;
        let mut renumber = vec![UNKNOWN; self.lists.len()];
        let mut kept: Vec<Arc<[u16]>> = Vec::new();
        for l in self.list.iter_mut().filter(|l| **l != UNKNOWN) {
            let old = *l as usize;
            if renumber[old] == UNKNOWN {
                // Fewer lists than `MAX_LISTS` are kept, so the id fits.
                renumber[old] = kept.len() as u32;
                kept.push(self.lists[old].clone());
            }
            *l = renumber[old];
        }
        self.list_id_total = kept.iter().map(|l| l.len()).sum();
        self.list_ids = kept
            .iter()
            .enumerate()
            .map(|(id, l)| (l.clone(), id as u32))
            .collect();
        self.lists = kept;
    }
}

/// Removes the elements at `positions` (ascending, distinct) in one pass.
pub(super) fn remove_positions<T>(v: &mut Vec<T>, positions: &[usize]) {
    let mut next = positions.iter().peekable();
    let mut i = 0;
    v.retain(|_| {
        let drop = next.next_if(|&&p| p == i).is_some();
        i += 1;
        !drop
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(list: &[&str]) -> Vec<String> {
        list.iter().map(|f| f.to_string()).collect()
    }

    fn written(v: &FlagView, i: usize, recent: bool) -> Option<String> {
        let mut buf = Vec::new();
        v.write_flags(i, recent, &mut buf)
            .then(|| String::from_utf8(buf).expect("utf-8"))
    }

    #[test]
    fn the_later_modseq_wins_whatever_the_order() {
        let mut v = FlagView::unknown(2);
        assert!(!v.all_known() && v.modseq(0).is_none() && written(&v, 0, false).is_none());
        assert!(
            v.list.is_empty(),
            "nothing allocated before a state is learned"
        );
        v.learn(0, ModSeq(7), &flags(&["\\Seen", "$Junk"]));
        v.learn(0, ModSeq(5), &flags(&[]));
        assert_eq!(
            written(&v, 0, true).as_deref(),
            Some("(\\Seen $Junk \\Recent)")
        );
        assert_eq!(v.modseq(0), Some(ModSeq(7)));
        v.learn(0, ModSeq(9), &flags(&[]));
        assert_eq!(written(&v, 0, false).as_deref(), Some("()"));
        assert_eq!(written(&v, 0, true).as_deref(), Some("(\\Recent)"));
        assert!(!v.all_known());
        v.learn(1, ModSeq(3), &flags(&["\\Answered"]));
        assert!(v.all_known());
    }

    #[test]
    fn pushes_and_removals_keep_the_alignment() {
        let mut v = FlagView::unknown(3);
        v.push(None);
        assert_eq!((v.len, v.unknown), (4, 4));
        v.push(Some((ModSeq(4), &flags(&["\\Flagged"]))));
        assert_eq!((v.len, v.unknown, v.list.len()), (5, 4, 5));
        v.learn(1, ModSeq(2), &flags(&["a"]));
        v.remove(&[0, 2]);
        assert_eq!((v.len, v.unknown), (3, 1));
        assert_eq!(written(&v, 0, false).as_deref(), Some("(a)"));
        assert!(written(&v, 1, false).is_none());
        assert_eq!(written(&v, 2, false).as_deref(), Some("(\\Flagged)"));
        let mut lazy = FlagView::unknown(3);
        lazy.remove(&[1]);
        assert_eq!((lazy.len, lazy.unknown, lazy.list.len()), (2, 2, 0));
    }

    #[test]
    fn keywords_beyond_the_mailbox_limit_stay_unknown() {
        let mut v = FlagView::unknown(MAX_NAMES + 1);
        for i in 0..MAX_NAMES {
            v.learn(i, ModSeq(1), &flags(&[&format!("k{i}")]));
        }
        assert_eq!(v.unknown, 1);
        v.learn(MAX_NAMES, ModSeq(1), &flags(&["\\Seen", "one-too-many"]));
        assert_eq!(v.unknown, 1, "no room for another name");
        assert_eq!(v.modseq(MAX_NAMES), None);
        // An older state heard of later does not replace what was learned of the newer one.
        v.learn(MAX_NAMES, ModSeq(0), &flags(&["k0"]));
        assert_eq!(v.unknown, 1);
    }

    #[test]
    fn lists_no_message_holds_are_dropped_when_the_table_fills() {
        let mut v = FlagView::unknown(1);
        // One message going through more distinct lists than the table holds.
        let names: Vec<String> = (0..64).map(|i| format!("k{i}")).collect();
        let mut modseq = 1;
        for a in 0..64 {
            for b in 0..64 {
                if a != b {
                    modseq += 1;
                    v.learn(0, ModSeq(modseq), &[names[a].clone(), names[b].clone()]);
                    assert!(v.all_known(), "{a} {b}");
                }
            }
        }
        assert!(v.lists.len() <= MAX_LISTS && !v.saturated);
        assert_eq!(written(&v, 0, false).as_deref(), Some("(k63 k62)"));
    }

    #[test]
    fn a_table_full_of_live_lists_stops_taking_new_ones() {
        let n = MAX_LISTS + 10;
        let mut v = FlagView::unknown(n);
        for i in 0..n {
            v.learn(
                i,
                ModSeq(1),
                &[format!("k{}", i % 200), format!("x{}", i / 200)],
            );
        }
        assert!(v.saturated);
        assert_eq!(v.unknown, 10);
        assert_eq!(written(&v, 0, false).as_deref(), Some("(k0 x0)"));
    }

    #[test]
    fn programs_match_flags_uids_and_modseq() {
        let mut v = FlagView::unknown(3);
        v.learn(0, ModSeq(5), &flags(&["\\Seen", "$Label1"]));
        v.learn(1, ModSeq(6), &flags(&[]));
        v.learn(2, ModSeq(7), &flags(&["\\Deleted", "\\Seen"]));
        let uids = [Uid(10), Uid(11), Uid(12)];
        let run = |key: &SearchKey| -> Vec<u32> {
            let p = v.compile(key).expect("compiles");
            (0..3)
                .filter(|&i| v.matches(&p, i, uids[i]))
                .map(|i| uids[i].0)
                .collect()
        };
        let flag = |f: &str| SearchKey::Flag(f.into());
        assert_eq!(run(&SearchKey::NoFlag("\\Seen".into())), [11]);
        assert_eq!(
            run(&flag("$label1")),
            [10],
            "keywords compare case-insensitively"
        );
        assert_eq!(run(&flag("never-seen")), Vec::<u32>::new());
        assert_eq!(run(&SearchKey::NoFlag("never-seen".into())), [10, 11, 12]);
        assert_eq!(
            run(&SearchKey::Or(
                Box::new(flag("\\Deleted")),
                Box::new(SearchKey::Uids(UidSet::from_uids([Uid(11)])))
            )),
            [11, 12]
        );
        assert_eq!(
            run(&SearchKey::And(vec![
                flag("\\Seen"),
                SearchKey::Not(Box::new(SearchKey::ModSeqAtLeast(ModSeq(6))))
            ])),
            [10]
        );
        assert!(v.compile(&SearchKey::Larger(5)).is_none());
        assert!(
            v.compile(&SearchKey::Not(Box::new(SearchKey::Body("x".into()))))
                .is_none()
        );
    }

    fn snapshot(states: &[(u64, &[&str])]) -> SnapshotFlags {
        let mut b = yubin_meta_api::SnapshotFlagsBuilder::default();
        for (m, f) in states {
            b.push(ModSeq(*m), &flags(f));
        }
        b.finish()
    }

    #[test]
    fn a_snapshot_makes_every_message_known() {
        let snap = snapshot(&[
            (3, &["\\Seen"]),
            (4, &[]),
            (3, &["\\Seen"]),
            (9, &["$Junk", "\\Seen"]),
        ]);
        let mut v = FlagView::unknown(4);
        v.learn(1, ModSeq(12), &flags(&["\\Flagged"]));
        v.learn_snapshot(&snap);
        assert!(v.all_known());
        assert_eq!(written(&v, 0, false).as_deref(), Some("(\\Seen)"));
        assert_eq!(
            written(&v, 1, false).as_deref(),
            Some("(\\Flagged)"),
            "a later state heard of first stays"
        );
        assert_eq!(
            written(&v, 3, true).as_deref(),
            Some("($Junk \\Seen \\Recent)")
        );
        assert_eq!(
            (v.modseq(2), v.modseq(3)),
            (Some(ModSeq(3)), Some(ModSeq(9)))
        );
        assert_eq!(v.lists.len(), 3, "one list per distinct list");

        // A snapshot without flags (an older meta), or one not matching the view, is ignored.
        for other in [SnapshotFlags::default(), snapshot(&[(1, &[])])] {
            let mut v = FlagView::unknown(4);
            v.learn_snapshot(&other);
            assert!(v.list.is_empty() && v.unknown == 4);
        }
        let mut empty = FlagView::unknown(0);
        empty.learn_snapshot(&SnapshotFlags::default());
        assert!(empty.all_known());
    }

    #[test]
    fn a_snapshot_with_more_lists_than_the_table_stays_consistent() {
        // Every message its own list: the table fills, compacts (renumbering the lists taken so
        // far) and saturates; whatever the view keeps must be the message's own list.
        let n = MAX_LISTS + 100;
        let names: Vec<Vec<String>> = (0..n)
            .map(|i| vec![format!("k{}", i % 200), format!("x{}", i / 200)])
            .collect();
        let mut b = yubin_meta_api::SnapshotFlagsBuilder::default();
        for (i, f) in names.iter().enumerate() {
            b.push(ModSeq(i as u64 + 1), f);
        }
        let mut v = FlagView::unknown(n);
        v.learn_snapshot(&b.finish());
        assert!(v.unknown > 0 && v.unknown < n, "{}", v.unknown);
        for (i, f) in names.iter().enumerate() {
            if let Some(w) = written(&v, i, false) {
                assert_eq!(w, format!("({})", f.join(" ")), "message {i}");
                assert_eq!(v.modseq(i), Some(ModSeq(i as u64 + 1)));
            }
        }
    }

    #[test]
    fn list_ids_taken_before_a_compaction_are_not_reused_after_it() {
        // The table is one short of full of lists no message holds any more (message 0 went
        // through them all); the snapshot's second list compacts it, renumbering the first.
        let mut v = FlagView::unknown(3);
        for k in 0..MAX_LISTS - 1 {
            let pair = [format!("old{}", k / 64), format!("old{}", 64 + k % 64)];
            v.learn(0, ModSeq(k as u64 + 1), &pair);
        }
        assert_eq!((v.lists.len(), v.compactions), (MAX_LISTS - 1, 0));
        let snap = snapshot(&[
            (5_000, &["a", "\\Seen"]),
            (5_001, &["b"]),
            (5_002, &["a", "\\Seen"]),
        ]);
        v.learn_snapshot(&snap);
        assert_eq!(v.compactions, 1);
        assert!(v.all_known());
        for (i, want) in ["(a \\Seen)", "(b)", "(a \\Seen)"].iter().enumerate() {
            assert_eq!(written(&v, i, false).as_deref(), Some(*want), "message {i}");
        }
    }

    #[test]
    fn positions_are_removed_in_one_pass() {
        let mut v = vec![0, 1, 2, 3, 4, 5];
        remove_positions(&mut v, &[0, 3, 5]);
        assert_eq!(v, [1, 2, 4]);
        remove_positions(&mut v, &[]);
        assert_eq!(v, [1, 2, 4]);
    }
}
