//! The full-text index queue on Redis (see the prelude's `index_forget` for the keys and
//! `crate::fulltext` for the protocol): claim, legacy migration and commit, one script each.

use async_trait::async_trait;
use yubin_meta_api::{MailboxId, MetaResult, Uid, UserId};

use super::{RedisStore, bad_reply, decode_record, next, v_array, v_bytes, v_num, v_string};
use crate::fulltext::{
    self, FullText, Generation, IndexQueue, IndexWork, IndexerSettings, QueuedMessage, Removal,
};

/// Messages whose legacy postings one `index_migrate` step removes: each has a few hundred
/// trigrams, so a step is a few thousand SREMs (a few milliseconds of Redis time).
const MIGRATE_STEP_MESSAGES: u32 = 16;

impl RedisStore {
    /// The same store answering text searches from `full_text` and waking its indexer after
    /// writes that queue search texts.
    pub fn with_full_text(mut self, full_text: FullText) -> RedisStore {
        self.full_text = Some(full_text);
        self
    }

    /// Wakes the indexer for `user` (after a write that queued or forgot search text).
    pub(super) fn nudge_indexer(&self, user: UserId) {
        if let Some(ft) = &self.full_text {
            ft.nudge.nudge(user);
        }
    }
}

#[async_trait]
impl IndexQueue for RedisStore {
    async fn claim_index_work(
        &self,
        user: UserId,
        token: &str,
        settings: &IndexerSettings,
    ) -> MetaResult<Option<IndexWork>> {
        let mut inv = self.call(&self.scripts.index_claim, user);
        inv.arg(token)
            .arg(u64::try_from(settings.lease.as_millis()).unwrap_or(u64::MAX))
            .arg(settings.batch_messages)
            .arg(settings.batch_removals)
            .arg(settings.batch_bytes);
        // The lease is a write, but losing it in a failover only lets another indexer start
        // early: the commit's generation check keeps the result right.
        let mut it = v_array(self.invoke_read(&inv).await?)?.into_iter();
        if v_num::<u8>(next(&mut it)?)? == 0 {
            return Ok(None);
        }
        let base = Generation(v_num(next(&mut it)?)?);
        let legacy_mailboxes = v_array(next(&mut it)?)?
            .into_iter()
            .map(|m| v_num(m).map(MailboxId))
            .collect::<MetaResult<Vec<_>>>()?;
        let flat = v_array(next(&mut it)?)?;
        if flat.len() % 4 != 0 {
            return Err(bad_reply("index claim entries"));
        }
        let mut queued = Vec::with_capacity(flat.len() / 4);
        let mut seen = std::collections::HashSet::new();
        let mut entries = flat.into_iter();
        while let (Some(m), Some(u), Some(raw), Some(record)) = (
            entries.next(),
            entries.next(),
            entries.next(),
            entries.next(),
        ) {
            let (mailbox, uid) = (MailboxId(v_num(m)?), Uid(v_num(u)?));
            if seen.insert((mailbox, uid)) {
                let record = v_string(record)?;
                queued.push(QueuedMessage {
                    mailbox,
                    uid,
                    queued: fulltext::parse_queued(&v_bytes(raw)?)?,
                    blob: (!record.is_empty())
                        .then(|| decode_record(&record).ok().map(|r| r.blob))
                        .flatten(),
                });
            }
        }
        let removal_entries = v_array(next(&mut it)?)?
            .into_iter()
            .map(v_string)
            .collect::<MetaResult<Vec<_>>>()?;
        let mut removals = Vec::with_capacity(removal_entries.len());
        for r in &removal_entries {
            match Removal::parse(r) {
                Some(r) => removals.push(r),
                None => {
                    tracing::warn!(user = user.0, entry = %r, "malformed index removal skipped")
                }
            }
        }
        Ok(Some(IndexWork {
            base,
            legacy_mailboxes,
            queued,
            removals,
            removal_entries,
        }))
    }

    async fn migrate_legacy_postings(&self, user: UserId, mailbox: MailboxId) -> MetaResult<u64> {
        let mut inv = self.call(&self.scripts.index_migrate, user);
        inv.arg(mailbox.0).arg(MIGRATE_STEP_MESSAGES);
        v_num(self.invoke(&inv).await?)
    }

    async fn commit_index_work(
        &self,
        user: UserId,
        token: &str,
        work: &IndexWork,
        indexed: &[(MailboxId, Uid)],
        generation: Generation,
    ) -> MetaResult<bool> {
        let mut inv = self.call(&self.scripts.index_commit, user);
        inv.arg(token)
            .arg(work.base.0)
            .arg(generation.0)
            .arg(work.removal_entries.len());
        for r in &work.removal_entries {
            inv.arg(r);
        }
        for (m, u) in indexed {
            inv.arg(m.0).arg(u.0);
        }
        // Acknowledged like any write (WAIT): the queue entries it drops exist only in the
        // published generation from now on.
        Ok(v_num::<u8>(self.invoke(&inv).await?)? == 1)
    }
}
