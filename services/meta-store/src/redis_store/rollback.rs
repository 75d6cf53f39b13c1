//! Detecting that Redis lost acknowledged writes (a failover to a replica that missed them, a
//! restart from an old snapshot) before a UID is handed out twice under one UIDVALIDITY.
//!
//! UIDNEXT and HIGHESTMODSEQ of a mailbox only grow under one UIDVALIDITY. meta remembers the
//! highest values it has returned for each mailbox (a bounded LRU map, the "high-water marks");
//! a store answer below its mark means Redis went back in time, and the mailbox is moved to a
//! new UIDVALIDITY (`lua/revalidate.lua`) before the answer is returned, so that no client is
//! told about a UID under the UIDVALIDITY it once had for another message (RFC 3501 §2.3.1.1).
//!
//! The failover itself is also noticed: every few seconds meta reads Redis' `run_id` and
//! `master_replid`; when either changes (another process, or a promoted replica, which takes a
//! new replication id), every mailbox in the map is checked at once, not only when next used.
//! The map is per meta process: a mailbox only another meta replica served, or one evicted from
//! the map, is checked only through the front-end's own view (see `changes_since`).

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lru::LruCache;
use yubin_meta_api::{MailboxId, MetaResult, ModSeq, Uid, UidValidity, UserId};

/// How rollback detection is tuned; `Default` are the production defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollbackSettings {
    /// Mailboxes whose high-water marks are kept (least recently used ones are forgotten).
    pub high_water_mailboxes: usize,
    /// How often the Redis server's identity is compared (failover detection); zero = never.
    pub identity_check: Duration,
}

impl Default for RollbackSettings {
    fn default() -> RollbackSettings {
        RollbackSettings {
            high_water_mailboxes: 100_000,
            identity_check: Duration::from_secs(2),
        }
    }
}

impl RollbackSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.high_water_mailboxes == 0 || self.high_water_mailboxes > 10_000_000 {
            return Err("redis_high_water_mailboxes must be between 1 and 10000000".into());
        }
        Ok(())
    }
}

/// The highest state of one mailbox meta has returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Mark {
    pub(super) uid_validity: UidValidity,
    pub(super) uid_next: Uid,
    pub(super) highest_modseq: ModSeq,
}

impl Mark {
    /// Whether `seen` is behind this mark: an older UIDVALIDITY, or the same one with a lower
    /// UIDNEXT or HIGHESTMODSEQ.
    fn ahead_of(&self, seen: &Mark) -> bool {
        // A HIGHESTMODSEQ of 0 is unknown (APPEND and COPY answers carry none).
        let modseq_behind = seen.highest_modseq.0 != 0 && seen.highest_modseq < self.highest_modseq;
        seen.uid_validity.0 < self.uid_validity.0
            || (seen.uid_validity == self.uid_validity
                && (seen.uid_next < self.uid_next || modseq_behind))
    }
}

/// The high-water marks, shared by the clones of one store.
#[derive(Clone)]
pub(super) struct HighWater {
    marks: Arc<Mutex<LruCache<(UserId, MailboxId), Mark>>>,
}

impl HighWater {
    pub(super) fn new(capacity: usize) -> HighWater {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        HighWater {
            marks: Arc::new(Mutex::new(LruCache::new(capacity))),
        }
    }

    /// Records what a store answer showed. Returns the mark when the answer is behind it
    /// (Redis lost writes); otherwise the mark rises to the answer.
    pub(super) fn observe(&self, user: UserId, mailbox: MailboxId, seen: Mark) -> Option<Mark> {
        let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        match marks.get_mut(&(user, mailbox)) {
            Some(mark) if mark.ahead_of(&seen) => Some(*mark),
            Some(mark) => {
                if seen.uid_validity.0 > mark.uid_validity.0 {
                    *mark = seen;
                } else {
                    mark.uid_next = mark.uid_next.max(seen.uid_next);
                    mark.highest_modseq = mark.highest_modseq.max(seen.highest_modseq);
                }
                None
            }
            None => {
                marks.put((user, mailbox), seen);
                None
            }
        }
    }

    /// Sets the mark after a move to a new UIDVALIDITY (UIDNEXT and HIGHESTMODSEQ start again
    /// from what the store holds).
    pub(super) fn moved(&self, user: UserId, mailbox: MailboxId, mark: Mark) {
        let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        marks.put((user, mailbox), mark);
    }

    /// Every mark, grouped by user, for the check after a failover.
    pub(super) fn snapshot(&self) -> Vec<(UserId, Vec<(MailboxId, Mark)>)> {
        let marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        let mut by_user: std::collections::BTreeMap<UserId, Vec<(MailboxId, Mark)>> =
            Default::default();
        for (&(user, mailbox), mark) in marks.iter() {
            by_user.entry(user).or_default().push((mailbox, *mark));
        }
        by_user.into_iter().collect()
    }

    pub(super) fn len(&self) -> usize {
        self.marks.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Counts and logs a detected rollback.
pub(super) fn report(user: UserId, mailbox: MailboxId, old: UidValidity, new: UidValidity) {
    metrics::counter!("yubin_redis_rollbacks_total").increment(1);
    tracing::warn!(
        user = user.0,
        mailbox = mailbox.0,
        old_uidvalidity = old.0,
        new_uidvalidity = new.0,
        "redis lost writes to this mailbox (failover or restore); moved it to a new UIDVALIDITY"
    );
}

impl super::RedisStore {
    /// Checks a store answer about `mailbox` against its mark. When Redis is behind, moves the
    /// mailbox to a new UIDVALIDITY and returns it (the caller answers with it, or reads again).
    pub(super) async fn guard(
        &self,
        user: UserId,
        mailbox: MailboxId,
        seen: Mark,
    ) -> MetaResult<Option<UidValidity>> {
        let Some(mark) = self.high_water.observe(user, mailbox, seen) else {
            return Ok(None);
        };
        let moved = self.revalidate(user, &[(mailbox, mark)]).await?;
        Ok(moved.into_iter().next().map(|(_, v)| v))
    }

    /// The UIDVALIDITY to report for messages a write just added to `mailbox` (APPENDUID,
    /// COPYUID; RFC 4315) whose highest new UID is `last`: when the write reached a Redis that
    /// had lost earlier writes, the new messages moved with their mailbox and their UIDs hold
    /// under the new UIDVALIDITY only.
    pub(super) async fn validity_after_write(
        &self,
        user: UserId,
        mailbox: MailboxId,
        validity: UidValidity,
        last: Option<&Uid>,
    ) -> MetaResult<UidValidity> {
        let Some(last) = last else {
            return Ok(validity);
        };
        let seen = Mark {
            uid_validity: validity,
            uid_next: Uid(last.0.saturating_add(1)),
            highest_modseq: ModSeq(0),
        };
        Ok(self.guard(user, mailbox, seen).await?.unwrap_or(validity))
    }

    /// Runs `lua/revalidate.lua` for `marks` of one user; returns the current UIDVALIDITY of
    /// every mailbox that still exists, reporting those it moved.
    pub(super) async fn revalidate(
        &self,
        user: UserId,
        marks: &[(MailboxId, Mark)],
    ) -> MetaResult<Vec<(MailboxId, UidValidity)>> {
        let mut out = Vec::new();
        // Bounded script runs: a user with many mailboxes in the map is checked in chunks.
        for chunk in marks.chunks(500) {
            let mut inv = self.call(&self.scripts.revalidate, user);
            inv.arg(super::now_secs());
            for (m, mark) in chunk {
                inv.arg(m.0)
                    .arg(mark.uid_validity.0)
                    .arg(mark.uid_next.0)
                    .arg(mark.highest_modseq.0);
            }
            let flat = super::v_array(self.invoke(&inv).await?)?;
            let mut it = flat.into_iter();
            while let Some(m) = it.next() {
                let m = MailboxId(super::v_num(m)?);
                let old = UidValidity(super::v_num(super::next(&mut it)?)?);
                let new = UidValidity(super::v_num(super::next(&mut it)?)?);
                if old != new {
                    report(user, m, old, new);
                    let uid_next = chunk
                        .iter()
                        .find(|(id, _)| *id == m)
                        .map_or(Uid(1), |(_, mark)| mark.uid_next);
                    self.high_water.moved(
                        user,
                        m,
                        Mark {
                            uid_validity: new,
                            uid_next,
                            highest_modseq: ModSeq(0),
                        },
                    );
                }
                out.push((m, new));
            }
        }
        Ok(out)
    }

    /// Checks every mailbox in the map against Redis (after a failover was noticed).
    pub(super) async fn check_all_marks(&self) -> MetaResult<usize> {
        let mut moved = 0;
        for (user, marks) in self.high_water.snapshot() {
            let before: Vec<UidValidity> = marks.iter().map(|(_, m)| m.uid_validity).collect();
            let now = self.revalidate(user, &marks).await?;
            moved += now.iter().filter(|(_, v)| !before.contains(v)).count();
        }
        Ok(moved)
    }

    /// The server's identity: `run_id` (a new process) and `master_replid` (a new replication
    /// history, e.g. a promoted replica). On a cluster, `None`: the check is left to the marks.
    async fn identity(&self) -> MetaResult<Option<String>> {
        let super::Conn::Single(c) = &self.conn else {
            return Ok(None);
        };
        let mut c = c.clone();
        let info: String = redis::cmd("INFO")
            .arg("server")
            .arg("replication")
            .query_async(&mut c)
            .await
            .map_err(super::redis_err)?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .unwrap_or("")
                .trim()
                .to_string()
        };
        Ok(Some(format!(
            "{} {}",
            field("run_id"),
            field("master_replid")
        )))
    }

    /// Starts the failover watch: every `interval`, compares the server's identity with the
    /// last one seen and checks every marked mailbox when it changed. Ends when every clone of
    /// the store is gone (it holds only a weak reference to the store's token).
    pub(super) fn watch_identity(&self, interval: Duration) {
        if interval.is_zero() || !matches!(self.conn, super::Conn::Single(_)) {
            return;
        }
        let alive = Arc::downgrade(&self.alive);
        let store = super::RedisStore {
            alive: Arc::new(()),
            ..self.clone()
        };
        tokio::spawn(async move {
            let mut last: Option<String> = None;
            loop {
                tokio::time::sleep(interval).await;
                if alive.upgrade().is_none() {
                    return;
                }
                let Ok(Some(now)) = store.identity().await else {
                    continue;
                };
                if last.as_ref().is_some_and(|l| *l != now) {
                    tracing::warn!(
                        marked = store.high_water.len(),
                        "redis server identity changed (restart or failover); checking every \
                         known mailbox for lost writes"
                    );
                    match store.check_all_marks().await {
                        Ok(_) => last = Some(now),
                        // Checked again at the next tick.
                        Err(e) => tracing::warn!(error = %e, "checking mailboxes after failover"),
                    }
                } else {
                    last = Some(now);
                }
            }
        });
    }
}
