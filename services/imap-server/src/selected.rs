//! A selected mailbox as one session sees it: the ordered UID list whose positions are the
//! sequence numbers, the session's `\Recent` set, the highest MODSEQ it has caught up to, the
//! expunges it could not announce yet (RFC 3501 §7.4.1) and the saved search result (RFC 5182).
//!
//! `\Recent` (RFC 3501 §2.3.2) belongs to exactly one session: a rev1 SELECT claims the mailbox's
//! unclaimed messages with [`MailStore::claim_recent`], and so does every catch-up that announces
//! new messages. Each claim is bounded by the highest UID the session announces, so it claims
//! exactly what the session tells its client about. Whatever node the sessions run on, the store
//! hands each UID to one claimant only. EXAMINE and IMAP4rev2 sessions never claim.
//!
//! The view also keeps each message's flags and MODSEQ once the session has heard of them
//! ([`flags`]): from the SELECT snapshot, a FETCH, its own STORE, a catch-up (which carries the
//! flags of new and changed messages). After a catch-up the view's flags are the store's as of
//! the catch-up's MODSEQ, so FETCH of flags and SEARCH over flag keys are answered from it (RFC
//! 3501 §5.2 and §7.4.1: a client learns of other sessions' changes through untagged responses,
//! which the catch-up has just sent).

mod flags;

use crate::out::Out;
use flags::{FlagView, remove_positions};
use std::collections::{BTreeSet, HashMap};
use yubin_imap_proto::SequenceSet;
use yubin_meta_api::{
    MailStore, MailboxId, MessageRecord, MetaResult, ModSeq, SearchKey, SnapshotFlags, Uid,
    UidRange, UidSet, UserId,
};

pub(crate) struct Selected {
    pub(crate) id: MailboxId,
    pub(crate) read_only: bool,
    /// The session's view: sequence number n is `uids[n - 1]`. Expunged messages stay here until
    /// their EXPUNGE has been sent, so sequence numbers never shift behind the client's back.
    uids: Vec<Uid>,
    /// Flags and MODSEQ of the messages of `uids`, position by position, where known.
    flags: FlagView,
    /// Expunged elsewhere, not yet announced (ascending).
    pending_expunge: Vec<Uid>,
    /// Messages this session is the first to have seen arrive (the session's `\Recent`).
    recent: BTreeSet<Uid>,
    /// Every change up to here has been turned into untagged responses.
    highest_modseq: ModSeq,
    /// Flag changes this session already reported itself (its own STORE or `\Seen` by FETCH),
    /// by the MODSEQ they got; the next catch-up skips exactly those.
    own_reports: HashMap<Uid, ModSeq>,
    /// A hint arrived (or this session wrote): catch up after the current command.
    pub(crate) dirty: bool,
    /// This session takes `\Recent` (a rev1 SELECT; not EXAMINE, not IMAP4rev2).
    claims_recent: bool,
    /// IMAP4rev2 session: there is no `\Recent` and no RECENT response (RFC 9051 Appendix E).
    rev2: bool,
    /// The result saved by `SEARCH RETURN (SAVE)` (RFC 5182 §2.1), ascending UIDs; `$` names it.
    saved: Vec<Uid>,
    /// CONDSTORE is enabled on the connection (RFC 7162 §3.1): flag changes are reported with
    /// UID and MODSEQ.
    pub(crate) condstore: bool,
    /// QRESYNC is enabled (RFC 7162 §3.2): expunges are reported as `* VANISHED` instead of
    /// `* n EXPUNGE`.
    pub(crate) qresync: bool,
}

/// How a catch-up may talk to the client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SyncMode {
    /// EXPUNGE responses are allowed now (not during FETCH/STORE/SEARCH, RFC 3501 §7.4.1).
    pub(crate) allow_expunge: bool,
    /// Untagged FETCH responses carry UID (during UID commands, RFC 3501 §6.4.8).
    pub(crate) with_uid: bool,
}

impl SyncMode {
    /// During FETCH, STORE, SEARCH and the commands that name messages like them: EXPUNGE only
    /// in their UID forms (RFC 3501 §7.4.1), whose untagged FETCH responses carry UID.
    pub(crate) fn naming_messages(uid: bool) -> SyncMode {
        SyncMode {
            allow_expunge: uid,
            with_uid: uid,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncOutcome {
    Current,
    /// An expunge that may not be announced yet held the whole catch-up back (see
    /// [`Selected::sync`]); the view is as before and `dirty` is set.
    Deferred,
    /// The mailbox was deleted (or recreated) behind the session.
    Gone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InvalidSequence;

impl Selected {
    pub(crate) fn new(
        id: MailboxId,
        read_only: bool,
        uids: Vec<Uid>,
        highest_modseq: ModSeq,
    ) -> Selected {
        Selected {
            id,
            read_only,
            flags: FlagView::unknown(uids.len()),
            uids,
            pending_expunge: Vec::new(),
            recent: BTreeSet::new(),
            highest_modseq,
            own_reports: HashMap::new(),
            dirty: false,
            claims_recent: false,
            rev2: false,
            saved: Vec::new(),
            condstore: false,
            qresync: false,
        }
    }

    /// The MODSEQ up to which every change has been reported to the client (RFC 7162: what
    /// HIGHESTMODSEQ may tell it).
    pub(crate) fn highest_modseq(&self) -> ModSeq {
        self.highest_modseq
    }

    /// Whether `uid` is in the view (announced and not yet announced as expunged).
    pub(crate) fn contains(&self, uid: Uid) -> bool {
        self.uids.binary_search(&uid).is_ok()
    }

    /// One above the highest UID of the view (1 for an empty view).
    pub(crate) fn view_uid_end(&self) -> Uid {
        Uid(self.uids.last().map_or(1, |u| u.0.saturating_add(1)))
    }

    /// The UIDs below `below` that are not in the view, as ascending ranges, limited to
    /// `within` when given. This is the VANISHED answer when the store's expunge log no longer
    /// reaches back to the client's MODSEQ (`Changes::log_trimmed`): RFC 7162 §3.2.5.2 and
    /// §3.2.10 let the server include UIDs that never existed. Linear in the view and `within`.
    pub(crate) fn absent_ranges(&self, below: Uid, within: Option<&UidSet>) -> Vec<(u32, u32)> {
        let mut gaps = Vec::new();
        let mut next = 1u32;
        for u in self.uids.iter().map(|u| u.0).filter(|u| *u < below.0) {
            if u > next {
                gaps.push((next, u - 1));
            }
            next = u.saturating_add(1);
        }
        if below.0 > next {
            gaps.push((next, below.0 - 1));
        }
        let Some(within) = within else {
            return gaps;
        };
        // Both lists ascend and are disjoint: one merge pass.
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        let limit = within.ranges();
        while i < gaps.len() && j < limit.len() {
            let lo = gaps[i].0.max(limit[j].0);
            let hi = gaps[i].1.min(limit[j].1);
            if lo <= hi {
                out.push((lo, hi));
            }
            if gaps[i].1 < limit[j].1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        out
    }

    /// Marks the view as an IMAP4rev2 session's: no `\Recent`, no RECENT responses.
    pub(crate) fn for_rev2(mut self) -> Selected {
        self.rev2 = true;
        self
    }

    /// The bound for this session's `\Recent` claims ([`MailStore::claim_recent`]): one past
    /// the highest UID in the view, so a claim takes only messages the session has announced
    /// (or is announcing in the current response). Saturates at the top of the UID space.
    pub(crate) fn claim_bound(&self) -> Uid {
        Uid(self.uids.last().map_or(1, |u| u.0.saturating_add(1)))
    }

    /// Makes this session the claimant of `\Recent` (rev1 SELECT), starting with `claim`, the
    /// range the SELECT claimed (bounded by [`Selected::claim_bound`]): the messages of the view
    /// in it are recent to this session. Returns how many are.
    pub(crate) fn claim(&mut self, claim: Option<UidRange>) -> usize {
        self.claims_recent = true;
        if let Some(claim) = claim {
            let start = self.uids.partition_point(|u| *u < claim.from);
            let end = self.uids.partition_point(|u| *u < claim.to);
            self.recent.extend(self.uids[start..end].iter().copied());
        }
        self.recent.len()
    }

    /// Replaces the saved search result (RFC 5182 §2.1); UIDs ascending.
    pub(crate) fn save_result(&mut self, uids: Vec<Uid>) {
        self.saved = uids;
    }

    /// The saved search result (`$`), ascending UIDs, including any expunged since.
    pub(crate) fn saved_uids(&self) -> &[Uid] {
        &self.saved
    }

    pub(crate) fn is_recent(&self, uid: Uid) -> bool {
        self.recent.contains(&uid)
    }

    pub(crate) fn recent_set(&self) -> UidSet {
        UidSet::from_uids(self.recent.iter().copied())
    }

    /// The sequence number of `uid` in this view.
    pub(crate) fn seq_of(&self, uid: Uid) -> Option<u32> {
        self.uids
            .binary_search(&uid)
            .ok()
            .and_then(|i| u32::try_from(i + 1).ok())
    }

    /// Remembers a flag change this session has reported itself.
    pub(crate) fn reported(&mut self, uid: Uid, modseq: ModSeq) {
        self.own_reports.insert(uid, modseq);
    }

    /// Takes `flags` at `modseq` as the state of `uid` (ignored outside the view, or when the
    /// view knows a later state).
    pub(crate) fn learn(&mut self, uid: Uid, modseq: ModSeq, flags: &[String]) {
        if let Ok(i) = self.uids.binary_search(&uid) {
            self.flags.learn(i, modseq, flags);
        }
    }

    /// Takes the flags and MODSEQs of a SELECT snapshot, the one the view's UIDs come from:
    /// they are the store's state at the view's starting HIGHESTMODSEQ, and the view's first
    /// catch-up brings them up to date like any other state it holds. A snapshot without them
    /// (an older meta service) leaves every message unknown, read from the store as needed.
    pub(crate) fn learn_snapshot(&mut self, flags: &SnapshotFlags) {
        self.flags.learn_snapshot(flags);
    }

    /// [`Selected::learn`] for records the store returned.
    pub(crate) fn learn_records(&mut self, records: &[MessageRecord]) {
        for r in records {
            self.learn(r.uid, r.modseq, &r.flags);
        }
    }

    /// Whether the flags of every message of the view are known.
    pub(crate) fn all_flags_known(&self) -> bool {
        self.flags.all_known()
    }

    /// The MODSEQ of `uid` when its flags are known; `None` as well for a message whose
    /// expunge is pending (the store no longer has it).
    pub(crate) fn known_modseq(&self, uid: Uid) -> Option<ModSeq> {
        if self.pending_expunge.binary_search(&uid).is_ok() {
            return None;
        }
        self.flags.modseq(self.uids.binary_search(&uid).ok()?)
    }

    /// The flags and MODSEQ of `uid` as the view holds them, when known (and not expunged).
    pub(crate) fn known_flags(&self, uid: Uid) -> Option<(ModSeq, Vec<String>)> {
        let modseq = self.known_modseq(uid)?;
        let i = self.uids.binary_search(&uid).ok()?;
        Some((modseq, self.flags.flags(i)?))
    }

    /// Whether `uid` was expunged elsewhere and its expunge is not announced yet.
    pub(crate) fn expunge_pending(&self, uid: Uid) -> bool {
        self.pending_expunge.binary_search(&uid).is_ok()
    }

    /// Appends the flag list of `uid` as a FETCH response gives it (`\Recent` included for
    /// this session's recent messages), when known; false (and nothing written) otherwise.
    pub(crate) fn write_known_flags(&self, uid: Uid, buf: &mut Vec<u8>) -> bool {
        match self.uids.binary_search(&uid) {
            Ok(i) => self.flags.write_flags(i, self.recent.contains(&uid), buf),
            Err(_) => false,
        }
    }

    /// The messages of the view matching `key`, ascending, evaluated over the view's flags:
    /// `None` unless every message's flags are known and `key` tests nothing but flags, UIDs
    /// and MODSEQ. Messages whose expunge is pending are left out, as the store no longer
    /// has them. Only right after a catch-up is this what the store would answer.
    pub(crate) fn search_flags(&self, key: &SearchKey) -> Option<Vec<Uid>> {
        if !self.flags.all_known() {
            return None;
        }
        let program = self.flags.compile(key)?;
        Some(
            self.uids
                .iter()
                .enumerate()
                .filter(|&(i, &u)| self.flags.matches(&program, i, u) && !self.expunge_pending(u))
                .map(|(_, &u)| u)
                .collect(),
        )
    }

    /// Resolves a sequence set of a command to the UIDs of this view, ascending.
    ///
    /// With `uid`, ranges are UIDs and `*` is the highest UID in the view (RFC 3501 §6.4.8:
    /// `n:*` includes the last message even when n is larger); UIDs not in the view are ignored.
    /// Without, numbers are sequence numbers: with `strict`, one outside 1..=EXISTS is an error
    /// (FETCH/STORE/COPY), otherwise it simply matches nothing (SEARCH).
    pub(crate) fn resolve(
        &self,
        set: &SequenceSet,
        uid: bool,
        strict: bool,
    ) -> Result<Vec<Uid>, InvalidSequence> {
        // `$` (RFC 5182 §2.1) names the saved UIDs, in UID and sequence-number commands alike;
        // those expunged since simply drop out.
        if matches!(set, SequenceSet::Saved) {
            return Ok(self
                .saved
                .iter()
                .copied()
                .filter(|u| self.uids.binary_search(u).is_ok())
                .collect());
        }
        // The ranges are merged before anything is taken from the view (a set may repeat
        // `1:*` thousands of times): disjoint ascending ranges give disjoint ascending slices,
        // so the result is built once, at most the size of the view.
        let mut out: Vec<Uid> = Vec::new();
        if uid {
            let max = self.uids.last().map_or(0, |u| u.0);
            for (lo, hi) in set.merged(max).unwrap_or_default() {
                let start = self.uids.partition_point(|u| u.0 < lo);
                let end = self.uids.partition_point(|u| u.0 <= hi);
                out.extend_from_slice(&self.uids[start..end]);
            }
        } else {
            let n = u32::try_from(self.uids.len()).unwrap_or(u32::MAX);
            for (lo, hi) in set.merged(n).unwrap_or_default() {
                if lo == 0 || hi > n {
                    if strict {
                        return Err(InvalidSequence);
                    }
                    if lo > n {
                        continue;
                    }
                }
                let lo = lo.max(1) as usize;
                let hi = hi.min(n) as usize;
                out.extend_from_slice(&self.uids[lo - 1..hi]);
            }
        }
        Ok(out)
    }

    /// Whether expunges by others wait to be announced.
    pub(crate) fn has_pending_expunges(&self) -> bool {
        !self.pending_expunge.is_empty()
    }

    /// Announces expunges this session caused itself (EXPUNGE, MOVE): they go out now.
    pub(crate) fn expunged_now(&mut self, uids: &[Uid], out: &mut Out<'_>) {
        self.queue_expunges(uids);
        self.flush_expunges(out);
    }

    fn queue_expunges(&mut self, uids: &[Uid]) {
        for &uid in uids {
            if self.uids.binary_search(&uid).is_ok() {
                self.pending_expunge.push(uid);
            }
        }
        self.pending_expunge.sort_unstable();
        self.pending_expunge.dedup();
    }

    /// Sends `* n EXPUNGE` for every pending expunge. Each number is computed against the view
    /// as it is after the previous one was removed, which is what the client does too. Once
    /// QRESYNC is enabled the same expunges go out as one `* VANISHED uid-set` instead (RFC 7162
    /// §3.2.10: the server MUST NOT send EXPUNGE then).
    fn flush_expunges(&mut self, out: &mut Out<'_>) {
        let mut vanished: Vec<Uid> = Vec::new();
        // Pending expunges ascend, so their positions do: the k-th one removed (from 0) has
        // k fewer messages before it by then. The view is cut once, after the loop.
        let mut positions: Vec<usize> = Vec::new();
        for uid in std::mem::take(&mut self.pending_expunge) {
            if let Ok(i) = self.uids.binary_search(&uid) {
                self.recent.remove(&uid);
                self.own_reports.remove(&uid);
                if self.qresync {
                    vanished.push(uid);
                } else {
                    out.line(&format!("* {} EXPUNGE", i - positions.len() + 1));
                }
                positions.push(i);
            }
        }
        remove_positions(&mut self.uids, &positions);
        self.flags.remove(&positions);
        write_vanished(out, &vanished, false);
    }

    /// Catches up with the store: one `changes_since` call, turned into untagged EXISTS /
    /// RECENT / FETCH (FLAGS) / EXPUNGE responses as `mode` allows. Expunges that may not be
    /// sent now are kept and sent at the next point that allows them.
    pub(crate) async fn sync(
        &mut self,
        mail: &dyn MailStore,
        user: UserId,
        out: &mut Out<'_>,
        mode: SyncMode,
    ) -> MetaResult<SyncOutcome> {
        let mut arrived: Vec<Uid> = Vec::new();
        let mut flag_changes = Vec::new();
        let changes = mail
            .changes_since(user, self.id, self.highest_modseq)
            .await?;
        self.dirty = false;
        if changes.mailbox_gone {
            return Ok(SyncOutcome::Gone);
        }
        let vanished = if changes.log_trimmed {
            crate::telemetry::expunge_log_trimmed("catch_up");
            // More than `max_expunge_log` expunges since the view's MODSEQ (one big EXPUNGE of
            // this session's own can do it): the log no longer says which messages of the view
            // went, so the view is compared with the UIDs the mailbox holds now, read after
            // `changes` and so covering every expunge up to its HIGHESTMODSEQ. One read of the
            // mailbox's UIDs, as a SELECT does; an expunge reported early is harmless.
            let present = mail.search(user, self.id, &SearchKey::All).await?;
            self.uids
                .iter()
                .copied()
                .filter(|u| present.binary_search(u).is_err())
                .collect()
        } else {
            changes.vanished
        };
        if self.condstore && !mode.allow_expunge && vanished.iter().any(|u| self.contains(*u)) {
            // An expunge that may not be announced now (RFC 3501 §7.4.1) holds back the
            // whole catch-up once MODSEQs are visible: a client that took the MODSEQ of a
            // later flag change as its HIGHESTMODSEQ and left would otherwise never learn
            // of the expunge through QRESYNC (RFC 7162 §3.2.5 reports only later ones).
            // The next command that allows expunges reports everything in order.
            self.dirty = true;
            return Ok(SyncOutcome::Deferred);
        }
        self.queue_expunges(&vanished);
        let mut last = self.uids.last().copied();
        for rec in changes.changed {
            if last.is_none_or(|l| rec.uid > l) {
                // New since the view was built; its flags are the client's to fetch (and
                // the view's to keep).
                self.uids.push(rec.uid);
                self.flags.push(Some((rec.modseq, &rec.flags)));
                last = Some(rec.uid);
                arrived.push(rec.uid);
                continue;
            }
            // Whatever is reported below, the view takes the newest flags: its own changes
            // and those of messages about to be expunged included.
            self.learn(rec.uid, rec.modseq, &rec.flags);
            if self.own_reports.get(&rec.uid) == Some(&rec.modseq)
                || self.pending_expunge.binary_search(&rec.uid).is_ok()
            {
                continue;
            } else if self.uids.binary_search(&rec.uid).is_ok() {
                flag_changes.push(rec);
            } else {
                // Below the highest UID but never seen: UIDs ascend, so this is a message
                // that was already expunged from the view. Nothing to say.
                tracing::debug!(uid = %rec.uid, "change for a message outside the view");
            }
        }
        self.own_reports.clear();
        if changes.highest_modseq > self.highest_modseq {
            self.highest_modseq = changes.highest_modseq;
        }
        if self.claims_recent && !arrived.is_empty() {
            // The arrivals are announced below (EXISTS), so they may be recent here unless
            // another session (on any node) claimed them first. The claim is bounded by the
            // newest of them: a message committed after `changes` was read stays unclaimed for
            // the session that announces it (RFC 3501 §2.3.2; RFC 9051 dropped \Recent).
            match mail.claim_recent(user, self.id, self.claim_bound()).await {
                Ok(claim) => self
                    .recent
                    .extend(arrived.iter().copied().filter(|u| claim.contains(*u))),
                // \Recent is advisory: a failed claim leaves the messages non-recent here
                // rather than failing the command.
                Err(e) => tracing::warn!(error = %e, "claiming \\Recent failed"),
            }
        }
        if mode.allow_expunge {
            self.flush_expunges(out);
        }
        if !arrived.is_empty() {
            out.line(&format!("* {} EXISTS", self.uids.len()));
            if !self.rev2 {
                out.line(&format!("* {} RECENT", self.recent.len()));
            }
        }
        for rec in flag_changes {
            let Some(seq) = self.seq_of(rec.uid) else {
                continue;
            };
            let mut line = format!("* {seq} FETCH (");
            // RFC 7162 §3.1: once CONDSTORE is enabled, an untagged FETCH caused by a flag
            // change carries MODSEQ; §3.2: with QRESYNC, UID too.
            if mode.with_uid || self.qresync {
                line.push_str(&format!("UID {} ", rec.uid));
            }
            line.push_str("FLAGS ");
            line.push_str(&flag_list(&rec.flags, self.recent.contains(&rec.uid)));
            if self.condstore {
                line.push_str(&format!(" MODSEQ ({})", rec.modseq));
            }
            line.push(')');
            out.line(&line);
        }
        Ok(SyncOutcome::Current)
    }
}

/// Writes `* VANISHED [(EARLIER) ]uid-set` (RFC 7162 §3.2.10) for `uids` (ascending), split
/// over several responses so no line grows without bound (RFC 7162 §4 recommends lines under
/// 8 kB); nothing for an empty list.
pub(crate) fn write_vanished(out: &mut Out<'_>, uids: &[Uid], earlier: bool) {
    write_vanished_ranges(out, &compact(uids), earlier);
}

/// [`write_vanished`] for ascending, disjoint inclusive ranges.
pub(crate) fn write_vanished_ranges(out: &mut Out<'_>, ranges: &[(u32, u32)], earlier: bool) {
    const PER_LINE: usize = 1000;
    for chunk in ranges.chunks(PER_LINE) {
        let set = UidSet::from_ranges(chunk.iter().copied());
        let prefix = if earlier {
            "* VANISHED (EARLIER) "
        } else {
            "* VANISHED "
        };
        out.line(&format!("{prefix}{}", set.to_imap()));
    }
}

/// Ascending UIDs as inclusive ranges.
fn compact(uids: &[Uid]) -> Vec<(u32, u32)> {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for u in uids {
        match ranges.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(u.0) => *hi = u.0,
            _ => ranges.push((u.0, u.0)),
        }
    }
    ranges
}

/// `(\Seen foo)` with `\Recent` added for the session's recent messages.
pub(crate) fn flag_list(flags: &[String], recent: bool) -> String {
    let mut s = String::from("(");
    for (i, f) in flags.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(f);
    }
    if recent {
        if !flags.is_empty() {
            s.push(' ');
        }
        s.push_str("\\Recent");
    }
    s.push(')');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use yubin_imap_proto::SeqBound;

    fn view(uids: &[u32]) -> Selected {
        Selected::new(
            MailboxId(1),
            false,
            uids.iter().map(|&u| Uid(u)).collect(),
            ModSeq(1),
        )
    }

    fn set(r: &[(SeqBound, SeqBound)]) -> SequenceSet {
        SequenceSet::Ranges(r.to_vec())
    }

    use SeqBound::{Number as N, Star};

    #[test]
    fn sequence_numbers_resolve_against_the_view() {
        let v = view(&[3, 5, 9, 12]);
        assert_eq!(
            v.resolve(&set(&[(N(2), Star)]), false, true),
            Ok(vec![Uid(5), Uid(9), Uid(12)])
        );
        assert_eq!(
            v.resolve(&set(&[(N(4), N(1))]), false, true)
                .map(|v| v.len()),
            Ok(4)
        );
        assert_eq!(
            v.resolve(&set(&[(N(5), N(5))]), false, true),
            Err(InvalidSequence)
        );
        assert_eq!(
            v.resolve(&set(&[(N(3), N(7))]), false, false),
            Ok(vec![Uid(9), Uid(12)])
        );
        assert_eq!(
            v.resolve(&set(&[(N(0), N(0))]), false, true),
            Err(InvalidSequence)
        );
    }

    #[test]
    fn uid_sets_resolve_against_the_view() {
        let v = view(&[3, 5, 9, 12]);
        assert_eq!(
            v.resolve(&set(&[(N(4), N(10))]), true, true),
            Ok(vec![Uid(5), Uid(9)])
        );
        // `20:*` is `12:20` (RFC 3501 §6.4.8).
        assert_eq!(
            v.resolve(&set(&[(N(20), Star)]), true, true),
            Ok(vec![Uid(12)])
        );
        assert_eq!(v.resolve(&set(&[(N(100), N(200))]), true, true), Ok(vec![]));
        assert_eq!(
            view(&[]).resolve(&set(&[(N(1), Star)]), true, true),
            Ok(vec![])
        );
        assert_eq!(v.resolve(&SequenceSet::Saved, true, true), Ok(vec![]));
    }

    #[test]
    fn saved_result_follows_the_view() {
        let mut v = view(&[3, 5, 9, 12]);
        v.save_result(vec![Uid(5), Uid(7), Uid(12)]);
        // 7 is not in the view (expunged, or never seen): `$` no longer names it.
        assert_eq!(
            v.resolve(&SequenceSet::Saved, false, true),
            Ok(vec![Uid(5), Uid(12)])
        );
        assert_eq!(
            v.resolve(&SequenceSet::Saved, true, true),
            Ok(vec![Uid(5), Uid(12)])
        );
    }

    #[test]
    fn recent_claims_mark_the_view() {
        let mut v = view(&[3, 5, 9, 12]);
        assert_eq!(
            v.claim_bound(),
            Uid(13),
            "claims stop past the highest UID announced"
        );
        let n = v.claim(Some(UidRange {
            from: Uid(5),
            to: Uid(13),
        }));
        assert_eq!(n, 3);
        assert!(!v.is_recent(Uid(3)) && v.is_recent(Uid(5)) && v.is_recent(Uid(12)));
        assert_eq!(
            view(&[]).claim_bound(),
            Uid(1),
            "an empty view claims nothing"
        );
        assert_eq!(view(&[u32::MAX]).claim_bound(), Uid(u32::MAX));
        assert_eq!(view(&[1]).claim(None), 0);
    }

    #[test]
    fn flag_lists() {
        assert_eq!(flag_list(&[], false), "()");
        assert_eq!(flag_list(&[], true), "(\\Recent)");
        assert_eq!(
            flag_list(&["\\Seen".into(), "x".into()], true),
            "(\\Seen x \\Recent)"
        );
    }
}
