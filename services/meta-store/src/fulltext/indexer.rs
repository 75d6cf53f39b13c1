//! The indexer: moves queued search texts into the full-text index, one account at a time.
//!
//! A store wakes it ([`Nudge::nudge`]) after every write that queues or forgets text; it then
//! claims the account's queue (a lease in the store, so that one indexer works on an account at
//! a time however many metadata replicas run), writes and publishes the next index generation,
//! and commits: the store records the new generation and drops what it holds from the queue in
//! one step. Killed at any point before that commit, it leaves the queue as it was: the work is
//! claimed again once the lease expires, and a generation published but never committed is
//! replaced (the next writer starts from the committed one). Nothing is lost.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::mpsc;
use tracing::{debug, warn};
use yubin_meta_api::{AccountStore, BlobKey, MailboxId, MetaResult, SearchIndex, Uid, UserId};
use yubin_text_index::{TextIndexes, WriteBatch};

use super::{Generation, Queued, index_err};

/// What the index must forget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Message(MailboxId, Uid),
    Mailbox(MailboxId),
}

impl Removal {
    /// The stored form: `<mailbox> <uid>` or `<mailbox> *`.
    pub fn parse(raw: &str) -> Option<Removal> {
        let (m, u) = raw.split_once(' ')?;
        let m = MailboxId(m.parse().ok()?);
        Some(if u == "*" {
            Removal::Mailbox(m)
        } else {
            Removal::Message(m, Uid(u.parse().ok()?))
        })
    }
}

/// One claim on an account's queue.
#[derive(Debug, Clone, Default)]
pub struct IndexWork {
    /// The committed generation the new one builds on.
    pub base: Generation,
    /// Mailboxes still holding search postings of a release that kept the index in the store.
    pub legacy_mailboxes: Vec<MailboxId>,
    /// Queued messages, in the store's order.
    pub queued: Vec<QueuedMessage>,
    pub removals: Vec<Removal>,
    /// The store's handles of the removal entries `removals` came from (malformed ones are
    /// skipped but still consumed), handed back at commit.
    pub removal_entries: Vec<String>,
}

impl IndexWork {
    fn is_empty(&self) -> bool {
        self.queued.is_empty() && self.removal_entries.is_empty()
    }
}

/// One queued message of a claim.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    pub mailbox: MailboxId,
    pub uid: Uid,
    pub queued: Queued,
    /// Its body, to rebuild the text of a copy whose source is no longer indexed.
    pub blob: Option<BlobKey>,
}

/// Computes a message's search text from its body (what delivery computed), for the rare copy
/// whose source the index no longer holds.
#[async_trait]
pub trait BodyText: Send + Sync + 'static {
    async fn search_text(&self, blob: &BlobKey) -> MetaResult<SearchIndex>;
}

/// The store side of indexing (the Redis and embedded stores implement it).
#[async_trait]
pub trait IndexQueue: Send + Sync + 'static {
    /// Takes the account's lease as `token` (or renews it) and returns up to
    /// `settings.batch_messages` queued messages and `settings.batch_removals` removals; `None`
    /// when another indexer holds the lease. A removal whose target a queued copy refers to is
    /// held back until that copy is indexed.
    async fn claim_index_work(
        &self,
        user: UserId,
        token: &str,
        settings: &IndexerSettings,
    ) -> MetaResult<Option<IndexWork>>;

    /// Removes a bounded part of the legacy postings of `mailbox`; returns how many messages
    /// still have some.
    async fn migrate_legacy_postings(&self, user: UserId, mailbox: MailboxId) -> MetaResult<u64>;

    /// Records `generation` as the account's index and drops from the queue what it holds
    /// (`indexed`, and `work`'s removals); `false` when the lease or the base generation is no
    /// longer this indexer's, or a copy queued meanwhile refers to something a removal took out
    /// (nothing changed; the generation is discarded).
    async fn commit_index_work(
        &self,
        user: UserId,
        token: &str,
        work: &IndexWork,
        indexed: &[(MailboxId, Uid)],
        generation: Generation,
    ) -> MetaResult<bool>;
}

/// Indexer settings.
#[derive(Debug, Clone)]
pub struct IndexerSettings {
    /// Most queued messages per generation.
    pub batch_messages: usize,
    /// Most removals per generation.
    pub batch_removals: usize,
    /// Most bytes of queued text per claim (at least one message is taken, however large): a
    /// claim is one Redis script, which must stay short.
    pub batch_bytes: usize,
    /// How long a claim holds the account; a crashed indexer's claim is taken over after it.
    pub lease: Duration,
    /// Accounts indexed at once.
    pub concurrency: usize,
    /// How long a nudged account waits before its queue is claimed, so that the writes of a
    /// busy account go into one index generation instead of one each: every generation is a
    /// tantivy commit (a new segment, its merges, files written and published), which cost
    /// more than indexing the message itself when each APPEND made its own. Searches stay
    /// exact meanwhile (they check the queued tail themselves).
    pub delay: Duration,
}

impl Default for IndexerSettings {
    fn default() -> IndexerSettings {
        IndexerSettings {
            batch_messages: 512,
            batch_removals: 4096,
            batch_bytes: 1 << 20,
            lease: Duration::from_secs(120),
            concurrency: 2,
            delay: Duration::from_millis(500),
        }
    }
}

/// Wakes the indexer for an account. Cheap and never blocks: an account already waiting is
/// not queued twice.
#[derive(Clone)]
pub struct Nudge {
    tx: mpsc::UnboundedSender<UserId>,
    waiting: Arc<Mutex<HashSet<UserId>>>,
}

impl Nudge {
    pub fn nudge(&self, user: UserId) {
        let fresh = self
            .waiting
            .lock()
            .map(|mut w| w.insert(user))
            .unwrap_or(true);
        if fresh {
            // A closed channel means the indexer stopped (shutdown): the queue stays in the
            // store and searches stay exact.
            let _ = self.tx.send(user);
        }
    }

    /// A handle whose nudges go nowhere, with the receiver for a caller that runs the work
    /// itself (tests).
    pub fn channel() -> (Nudge, mpsc::UnboundedReceiver<UserId>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Nudge {
                tx,
                waiting: Arc::default(),
            },
            rx,
        )
    }

    fn done_waiting(&self, user: UserId) {
        if let Ok(mut w) = self.waiting.lock() {
            w.remove(&user);
        }
    }
}

/// The indexing work of one node.
pub struct Indexer {
    queue: Arc<dyn IndexQueue>,
    indexes: Arc<TextIndexes>,
    bodies: Option<Arc<dyn BodyText>>,
    settings: IndexerSettings,
    /// Identifies this indexer's claims.
    token: String,
}

impl Indexer {
    pub fn new(
        queue: Arc<dyn IndexQueue>,
        indexes: Arc<TextIndexes>,
        settings: IndexerSettings,
    ) -> Indexer {
        let token = format!(
            "{:x}-{:x}",
            std::process::id(),
            yubin_meta_api::unix_micros_now()
        );
        Indexer {
            queue,
            indexes,
            bodies: None,
            settings,
            token,
        }
    }

    /// Rebuilds the text of copies whose source is gone from the bodies (see [`BodyText`]).
    pub fn with_bodies(mut self, bodies: Arc<dyn BodyText>) -> Indexer {
        self.bodies = Some(bodies);
        self
    }

    /// Runs the indexer until every [`Nudge`] of `nudges` is dropped; each nudged account is
    /// indexed until its queue is empty. One task per account at a time: a nudge for an account
    /// being indexed makes that task go round once more (two tasks of one indexer share its
    /// token, so the lease would not keep them apart). Each round first waits
    /// [`IndexerSettings::delay`] (without holding one of the `concurrency` slots), and the
    /// nudges that come while it waits are answered by that round's claim.
    pub fn spawn(self, nudge: Nudge, mut nudges: mpsc::UnboundedReceiver<UserId>) {
        let me = Arc::new(self);
        let slots = Arc::new(tokio::sync::Semaphore::new(me.settings.concurrency.max(1)));
        // Accounts with a task, and whether it must go round again.
        let running: Arc<Mutex<HashMap<UserId, bool>>> = Arc::default();
        tokio::spawn(async move {
            while let Some(user) = nudges.recv().await {
                nudge.done_waiting(user);
                {
                    let mut r = running.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(again) = r.get_mut(&user) {
                        *again = true;
                        continue;
                    }
                    r.insert(user, false);
                }
                let (me, running, slots) = (me.clone(), running.clone(), slots.clone());
                tokio::spawn(async move {
                    loop {
                        if !me.settings.delay.is_zero() {
                            tokio::time::sleep(me.settings.delay).await;
                        }
                        // What was queued up to here is claimed by this round.
                        if let Some(again) = running
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_mut(&user)
                        {
                            *again = false;
                        }
                        let Ok(permit) = slots.acquire().await else {
                            return;
                        };
                        if let Err(e) = me.index_account(user).await {
                            warn!(user = user.0, error = %e, "indexing failed; the queue is kept");
                            metrics::counter!("yubin_fulltext_batches_total", "result" => "failed")
                                .increment(1);
                        }
                        drop(permit);
                        let mut r = running.lock().unwrap_or_else(|p| p.into_inner());
                        match r.get_mut(&user) {
                            Some(again) if *again => *again = false,
                            _ => {
                                r.remove(&user);
                                break;
                            }
                        }
                    }
                });
            }
        });
    }

    /// Indexes `user`'s queue until it is empty (or another indexer holds the account).
    pub async fn index_account(&self, user: UserId) -> MetaResult<()> {
        // Commits lost in a row to a race (see `IndexQueue::commit_index_work`): each retry
        // claims afresh; past a few, the next write's nudge tries again.
        let mut lost = 0;
        loop {
            let Some(work) = self
                .queue
                .claim_index_work(user, &self.token, &self.settings)
                .await?
            else {
                debug!(user = user.0, "another indexer holds the account");
                return Ok(());
            };
            for &m in &work.legacy_mailboxes {
                while self.queue.migrate_legacy_postings(user, m).await? > 0 {}
            }
            if work.is_empty() {
                return Ok(());
            }
            let started = Instant::now();
            let (batch, mut indexed) = batch_of(&work);
            let outcome = self
                .indexes
                .write(user, work.base, next_generation(work.base), batch)
                .await
                .map_err(index_err)?;
            let mut generation = outcome.generation;
            if !outcome.unresolved_copies.is_empty() {
                let (rebuilt, generation_after) = self
                    .rebuild_copies(user, &work, &outcome.unresolved_copies, generation)
                    .await?;
                generation = generation_after;
                // What could not be rebuilt stays queued (and SEARCH reports it).
                indexed.retain(|k| !outcome.unresolved_copies.contains(k) || rebuilt.contains(k));
            }
            let committed = self
                .queue
                .commit_index_work(user, &self.token, &work, &indexed, generation)
                .await?;
            let result = if committed { "committed" } else { "lost" };
            metrics::counter!("yubin_fulltext_batches_total", "result" => result).increment(1);
            metrics::histogram!("yubin_fulltext_batch_seconds")
                .record(started.elapsed().as_secs_f64());
            if !committed {
                lost += 1;
                if lost >= 3 {
                    return Ok(());
                }
                continue;
            }
            lost = 0;
            metrics::counter!("yubin_fulltext_indexed_messages_total")
                .increment(indexed.len() as u64);
        }
    }

    /// Indexes the copies in `unresolved` from their bodies on top of `generation`; returns
    /// those indexed and the generation holding them.
    async fn rebuild_copies(
        &self,
        user: UserId,
        work: &IndexWork,
        unresolved: &[(MailboxId, Uid)],
        generation: Generation,
    ) -> MetaResult<(Vec<(MailboxId, Uid)>, Generation)> {
        warn!(
            user = user.0,
            copies = unresolved.len(),
            "copied messages whose source is not indexed; rebuilding their text from the body"
        );
        metrics::counter!("yubin_fulltext_unresolved_copies_total")
            .increment(unresolved.len() as u64);
        let Some(bodies) = &self.bodies else {
            return Ok((Vec::new(), generation));
        };
        let mut batch = WriteBatch::default();
        for q in &work.queued {
            if !unresolved.contains(&(q.mailbox, q.uid)) {
                continue;
            }
            let Some(blob) = &q.blob else { continue };
            match bodies.search_text(blob).await {
                Ok(ix) => batch.add.push((q.mailbox, q.uid, ix)),
                Err(e) => warn!(user = user.0, error = %e, "cannot read a copied message's body"),
            }
        }
        if batch.add.is_empty() {
            return Ok((Vec::new(), generation));
        }
        let rebuilt = batch.add.iter().map(|(m, u, _)| (*m, *u)).collect();
        let outcome = self
            .indexes
            .write(user, generation, next_generation(generation), batch)
            .await
            .map_err(index_err)?;
        Ok((rebuilt, outcome.generation))
    }
}

impl Indexer {
    /// Indexes every account in turn, paging through them by name: the migration of data
    /// written before the index left the store (its texts are all queued, and on Redis its
    /// trigram postings are removed), or a catch-up after the indexer was down. Returns how
    /// many accounts it went through; an account that fails is logged and skipped.
    pub async fn index_all_accounts(&self, accounts: &dyn AccountStore) -> MetaResult<u64> {
        const PAGE: usize = 500;
        let mut after: Option<String> = None;
        let mut done = 0u64;
        loop {
            let page = accounts.list_users_page(after.as_deref(), PAGE).await?;
            let Some(last) = page.last() else {
                return Ok(done);
            };
            after = Some(last.name.clone());
            for user in &page {
                if let Err(e) = self.index_account(user.id).await {
                    warn!(user = user.id.0, error = %e, "indexing the account failed; skipped");
                }
                done += 1;
            }
            tracing::info!(accounts = done, "full-text index: accounts indexed so far");
        }
    }
}

/// The generation a write on `base` publishes: above `base` and above the clock in
/// microseconds, so that a generation published by a write whose commit then failed (an
/// orphan) is never published again with other content by a later write on the same base.
fn next_generation(base: Generation) -> Generation {
    Generation(
        base.0
            .saturating_add(1)
            .max(yubin_meta_api::unix_micros_now()),
    )
}

/// The index write for `work`, and the queued messages it indexes.
fn batch_of(work: &IndexWork) -> (WriteBatch, Vec<(MailboxId, Uid)>) {
    let mut batch = WriteBatch::default();
    let mut indexed = Vec::with_capacity(work.queued.len());
    for q in &work.queued {
        let key = (q.mailbox, q.uid);
        match &q.queued {
            Queued::Text(ix) => batch.add.push((q.mailbox, q.uid, ix.clone())),
            // (source, destination), as the index wants them.
            Queued::CopyOf(sm, su) => batch.add_copies.push(((*sm, *su), key)),
        }
        indexed.push(key);
    }
    for r in &work.removals {
        match *r {
            Removal::Message(m, u) => batch.remove.push((m, u)),
            Removal::Mailbox(m) => batch.remove_mailboxes.push(m),
        }
    }
    (batch, indexed)
}
