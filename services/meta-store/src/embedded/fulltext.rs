//! The full-text index queue in the database (tables `search_index`, `index_generation`,
//! `index_removals`, `index_lease`; the protocol is `crate::fulltext`'s, the same as on Redis).

use async_trait::async_trait;
use redb::ReadableTable;
use yubin_meta_api::{MailboxId, MetaResult, Uid, UserId};

use super::EmbeddedStore;
use super::tables::*;
use super::txn::W;
use crate::fulltext::{
    self, FullText, Generation, IndexQueue, IndexWork, IndexerSettings, QueuedMessage, Removal,
};

impl EmbeddedStore {
    /// The same store answering text searches from `full_text` and waking its indexer after
    /// writes that queue search texts.
    pub fn with_full_text(mut self, full_text: FullText) -> EmbeddedStore {
        self.full_text = Some(full_text);
        self
    }

    pub(super) fn nudge_indexer(&self, user: UserId) {
        if let Some(ft) = &self.full_text {
            ft.nudge.nudge(user);
        }
    }

    /// Wakes the indexer for every account with queued search texts or removals (at start:
    /// a database written by a release without the index, or work an earlier run left).
    pub async fn nudge_queued_accounts(&self) -> MetaResult<()> {
        let users = self
            .read(|r| {
                let mut users = std::collections::BTreeSet::new();
                let mut next = 0u64;
                // One seek per account, not one step per queued message.
                while let Some(item) = r.search_index.range((next, 0, 0)..).map_err(db_err)?.next()
                {
                    let u = item.map_err(db_err)?.0.value().0;
                    users.insert(u);
                    match u.checked_add(1) {
                        Some(n) => next = n,
                        None => break,
                    }
                }
                Ok(users)
            })
            .await?;
        for u in users {
            self.nudge_indexer(UserId(u));
        }
        Ok(())
    }
}

fn now_millis() -> u64 {
    yubin_meta_api::unix_micros_now() / 1000
}

/// The reference counter fields a queued value adds to (see `INDEX_REFS`): none for a text.
fn ref_fields(value: &[u8]) -> Vec<String> {
    match fulltext::parse_queued(value) {
        Ok(fulltext::Queued::CopyOf(m, uid)) => {
            vec![format!("{} {}", m.0, uid.0), format!("{} *", m.0)]
        }
        _ => Vec::new(),
    }
}

impl W<'_> {
    /// Counts (`d` = 1) or uncounts (`d` = -1) queued value `value` if it is a copy reference.
    pub(super) fn index_ref(&mut self, u: u64, value: &[u8], d: i64) -> MetaResult<()> {
        for field in ref_fields(value) {
            let now = self
                .index_refs
                .get((u, field.as_str()))
                .map_err(db_err)?
                .map_or(0, |c| c.value());
            let next = now.saturating_add_signed(d);
            if next == 0 {
                self.index_refs
                    .remove((u, field.as_str()))
                    .map_err(db_err)?;
            } else {
                self.index_refs
                    .insert((u, field.as_str()), next)
                    .map_err(db_err)?;
            }
        }
        Ok(())
    }

    /// Drops the queued entry of one message; whether there was one.
    fn unqueue(&mut self, u: u64, m: u64, uid: u32) -> MetaResult<bool> {
        let Some(value) = self
            .search_index
            .remove((u, m, uid))
            .map_err(db_err)?
            .map(|v| v.value().to_vec())
        else {
            return Ok(false);
        };
        self.index_ref(u, &value, -1)?;
        Ok(true)
    }

    /// Drops every queued entry of a mailbox (it is being deleted).
    pub(super) fn unqueue_mailbox(&mut self, u: u64, m: u64) -> MetaResult<()> {
        let mut values = Vec::new();
        for item in self
            .search_index
            .range((u, m, 0)..=(u, m, u32::MAX))
            .map_err(db_err)?
        {
            values.push(item.map_err(db_err)?.1.value().to_vec());
        }
        for v in values {
            self.index_ref(u, &v, -1)?;
        }
        self.search_index
            .retain_in((u, m, 0)..=(u, m, u32::MAX), |_, _| false)
            .map_err(db_err)?;
        Ok(())
    }

    /// Called when message `uid` of mailbox `m` goes: one whose text was still queued is not in
    /// the index, unless an indexer has claimed it (lease held); otherwise the index must
    /// forget it.
    pub(super) fn index_forget(&mut self, u: u64, m: u64, uid: u32) -> MetaResult<()> {
        let was_queued = self.unqueue(u, m, uid)?;
        let claimed = self.index_lease.get(u).map_err(db_err)?.is_some();
        if !was_queued || claimed {
            self.push_index_removal(u, &format!("{m} {uid}"))?;
        }
        Ok(())
    }

    pub(super) fn push_index_removal(&mut self, u: u64, what: &str) -> MetaResult<()> {
        let next = self
            .index_removals
            .range((u, 0)..=(u, u64::MAX))
            .map_err(db_err)?
            .next_back()
            .transpose()
            .map_err(db_err)?
            .map_or(0, |(k, _)| k.value().1 + 1);
        self.index_removals
            .insert((u, next), what)
            .map_err(db_err)?;
        Ok(())
    }

    /// Drops the account's index bookkeeping (account deletion).
    pub(super) fn forget_index_state(&mut self, u: u64) -> MetaResult<()> {
        self.index_generation.remove(u).map_err(db_err)?;
        self.index_lease.remove(u).map_err(db_err)?;
        self.index_removals
            .retain_in((u, 0)..=(u, u64::MAX), |_, _| false)
            .map_err(db_err)?;
        self.index_refs
            .retain_in::<(u64, &str), _>((u, "")..(u + 1, ""), |_, _| false)
            .map_err(db_err)?;
        Ok(())
    }
}

#[async_trait]
impl IndexQueue for EmbeddedStore {
    async fn claim_index_work(
        &self,
        user: UserId,
        token: &str,
        settings: &IndexerSettings,
    ) -> MetaResult<Option<IndexWork>> {
        let (u, token) = (user.0, token.to_string());
        let lease_ms = u64::try_from(settings.lease.as_millis()).unwrap_or(u64::MAX);
        let (most, most_removals, most_bytes) = (
            settings.batch_messages,
            settings.batch_removals,
            settings.batch_bytes,
        );
        self.write(move |w| {
            let now = now_millis();
            if let Some(held) = w.index_lease.get(u).map_err(db_err)? {
                let held = held.value().to_string();
                let (holder, expiry) = held.split_once(' ').unwrap_or((&held, "0"));
                if holder != token && expiry.parse::<u64>().unwrap_or(0) > now {
                    return Ok(None);
                }
            }
            let lease = format!("{token} {}", now.saturating_add(lease_ms));
            w.index_lease.insert(u, lease.as_str()).map_err(db_err)?;
            let base = Generation(
                w.index_generation
                    .get(u)
                    .map_err(db_err)?
                    .map_or(0, |g| g.value()),
            );
            let mut queued = Vec::new();
            let mut bytes = 0usize;
            for item in w
                .search_index
                .range((u, 0, 0)..=(u, u64::MAX, u32::MAX))
                .map_err(db_err)?
            {
                if queued.len() >= most || (!queued.is_empty() && bytes >= most_bytes) {
                    break;
                }
                let (k, v) = item.map_err(db_err)?;
                bytes += v.value().len();
                let (_, m, uid) = k.value();
                queued.push(QueuedMessage {
                    mailbox: MailboxId(m),
                    uid: Uid(uid),
                    queued: fulltext::parse_queued(v.value())?,
                    blob: None,
                });
            }
            // The bodies of the copies, for a rebuild (see `BodyText`).
            for q in &mut queued {
                if matches!(q.queued, fulltext::Queued::CopyOf(..)) {
                    q.blob = read_msg(&*w.messages, u, q.mailbox.0, q.uid.0)?.map(|m| m.blob);
                }
            }
            // A removal whose target a queued copy still refers to waits (looking a little
            // further, so that waiting ones do not hide the others).
            let mut removals = Vec::new();
            let mut removal_entries = Vec::new();
            let mut candidates = Vec::new();
            for item in w
                .index_removals
                .range((u, 0)..=(u, u64::MAX))
                .map_err(db_err)?
                .take(most_removals.saturating_mul(4))
            {
                let (k, v) = item.map_err(db_err)?;
                candidates.push((k.value().1, v.value().to_string()));
            }
            for (seq, what) in candidates {
                if removal_entries.len() >= most_removals {
                    break;
                }
                if w.index_refs
                    .get((u, what.as_str()))
                    .map_err(db_err)?
                    .is_some()
                {
                    continue;
                }
                removal_entries.push(seq.to_string());
                if let Some(r) = Removal::parse(&what) {
                    removals.push(r);
                }
            }
            if queued.is_empty() && removal_entries.is_empty() {
                // Nothing to do: the lease is not kept.
                w.index_lease.remove(u).map_err(db_err)?;
            }
            Ok(Some(IndexWork {
                base,
                legacy_mailboxes: Vec::new(),
                queued,
                removals,
                removal_entries,
            }))
        })
        .await
    }

    async fn migrate_legacy_postings(&self, _user: UserId, _mailbox: MailboxId) -> MetaResult<u64> {
        // The database's legacy filters are dropped whole when it is opened.
        Ok(0)
    }

    async fn commit_index_work(
        &self,
        user: UserId,
        token: &str,
        work: &IndexWork,
        indexed: &[(MailboxId, Uid)],
        generation: Generation,
    ) -> MetaResult<bool> {
        let (u, token) = (user.0, token.to_string());
        let base = work.base;
        // The entries are the removals' sequence numbers (see `claim_index_work`).
        let seqs: Vec<u64> = work
            .removal_entries
            .iter()
            .filter_map(|e| e.parse().ok())
            .collect();
        let indexed = indexed.to_vec();
        self.write(move |w| {
            let mine = w
                .index_lease
                .get(u)
                .map_err(db_err)?
                .is_some_and(|l| l.value().split(' ').next() == Some(token.as_str()));
            let current = w
                .index_generation
                .get(u)
                .map_err(db_err)?
                .map_or(0, |g| g.value());
            if !mine || current != base.0 {
                return Ok(false);
            }
            // A copy queued meanwhile may refer to what a removal took out: then nothing is
            // committed (checked before any write; a failed call is undone anyway).
            let mut consumed: std::collections::HashMap<String, u64> = Default::default();
            for (m, uid) in &indexed {
                if let Some(v) = w.search_index.get((u, m.0, uid.0)).map_err(db_err)? {
                    for f in ref_fields(v.value()) {
                        *consumed.entry(f).or_default() += 1;
                    }
                }
            }
            let mut removal_seqs = Vec::with_capacity(seqs.len());
            for seq in &seqs {
                let Some(what) = w
                    .index_removals
                    .get((u, *seq))
                    .map_err(db_err)?
                    .map(|v| v.value().to_string())
                else {
                    continue;
                };
                let refs = w
                    .index_refs
                    .get((u, what.as_str()))
                    .map_err(db_err)?
                    .map_or(0, |c| c.value());
                if refs > consumed.get(&what).copied().unwrap_or(0) {
                    return Ok(false);
                }
                removal_seqs.push(*seq);
            }
            w.index_generation.insert(u, generation.0).map_err(db_err)?;
            for (m, uid) in &indexed {
                w.unqueue(u, m.0, uid.0)?;
            }
            for seq in removal_seqs {
                w.index_removals.remove((u, seq)).map_err(db_err)?;
            }
            w.index_lease.remove(u).map_err(db_err)?;
            Ok(true)
        })
        .await
    }
}
