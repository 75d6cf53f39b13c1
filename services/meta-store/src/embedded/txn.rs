//! The transaction wrappers: every table open in one write ([`W`]) or read ([`R`]) transaction,
//! and the store's one way to run each.

use std::borrow::Borrow;
use std::cell::Cell;
use std::ops::{Deref, RangeBounds};
use std::rc::Rc;

use redb::{
    AccessGuard, Key, ReadOnlyTable, ReadTransaction, ReadableTable, StorageError, Table, Value,
    WriteTransaction,
};
use yubin_meta_api::{
    ChangeEvent, ChangeKind, MailboxId, MetaError, MetaResult, ModSeq, QuotaUsage, SpecialUse, Uid,
    UidSet, UserId, UserRecord,
};

use super::EmbeddedStore;
use super::tables::*;
use crate::accounts::check_quota;
use crate::names::{self, INBOX};
use crate::{StoreLimits, flags, next_uid_validity};

/// A table of a write transaction that notes every change made through it, so that the
/// group-commit writer knows whether a failing call left anything behind (see `writer`). Reads
/// go to the table itself (`Deref`); every mutating method must be one of those below, which
/// `Deref` (not `DerefMut`) enforces at compile time.
pub(super) struct Tracked<'t, K: Key + 'static, V: Value + 'static> {
    table: Table<'t, K, V>,
    dirty: Rc<Cell<bool>>,
}

impl<'t, K: Key + 'static, V: Value + 'static> Tracked<'t, K, V> {
    fn new(table: Table<'t, K, V>, dirty: &Rc<Cell<bool>>) -> Self {
        Tracked {
            table,
            dirty: dirty.clone(),
        }
    }

    pub(super) fn insert<'k, 'v>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
        value: impl Borrow<V::SelfType<'v>>,
    ) -> Result<Option<AccessGuard<'_, V>>, StorageError> {
        self.dirty.set(true);
        self.table.insert(key, value)
    }

    pub(super) fn remove<'a>(
        &mut self,
        key: impl Borrow<K::SelfType<'a>>,
    ) -> Result<Option<AccessGuard<'_, V>>, StorageError> {
        // Conservative: a removal that finds nothing also counts (it costs at most a replay).
        self.dirty.set(true);
        self.table.remove(key)
    }

    pub(super) fn retain_in<'a, KR, F>(
        &mut self,
        range: impl RangeBounds<KR> + 'a,
        predicate: F,
    ) -> Result<(), StorageError>
    where
        KR: Borrow<K::SelfType<'a>> + 'a,
        F: for<'f> FnMut(K::SelfType<'f>, V::SelfType<'f>) -> bool,
    {
        self.dirty.set(true);
        self.table.retain_in(range, predicate)
    }
}

impl<'t, K: Key + 'static, V: Value + 'static> Deref for Tracked<'t, K, V> {
    type Target = Table<'t, K, V>;

    fn deref(&self) -> &Table<'t, K, V> {
        &self.table
    }
}

/// Every table, open in one write transaction.
pub(super) struct W<'t> {
    pub(super) meta: Tracked<'t, &'static str, u64>,
    pub(super) users: Tracked<'t, u64, BytesTable>,
    pub(super) user_names: Tracked<'t, &'static str, u64>,
    pub(super) user_seq: Tracked<'t, u64, BytesTable>,
    pub(super) mailboxes: Tracked<'t, (u64, u64), BytesTable>,
    pub(super) mailbox_names: Tracked<'t, (u64, &'static str), u64>,
    pub(super) subscriptions: Tracked<'t, (u64, &'static str), u8>,
    pub(super) messages: Tracked<'t, (u64, u64, u32), BytesTable>,
    pub(super) summaries: Tracked<'t, (u64, u64, u32), BytesTable>,
    pub(super) search_index: Tracked<'t, (u64, u64, u32), BytesTable>,
    pub(super) by_modseq: Tracked<'t, (u64, u64, u64, u32), u8>,
    pub(super) expunged: Tracked<'t, (u64, u64, u64, u32), u8>,
    pub(super) unseen: Tracked<'t, (u64, u64, u32), u8>,
    pub(super) deleted: Tracked<'t, (u64, u64, u32), u8>,
    pub(super) index_generation: Tracked<'t, u64, u64>,
    pub(super) index_removals: Tracked<'t, (u64, u64), &'static str>,
    pub(super) index_lease: Tracked<'t, u64, &'static str>,
    pub(super) index_refs: Tracked<'t, (u64, &'static str), u64>,
    pub(super) quotas: Tracked<'t, u64, BytesTable>,
    pub(super) aliases: Tracked<'t, &'static str, u64>,
    pub(super) user_aliases: Tracked<'t, (u64, &'static str), u8>,
    pub(super) domains: Tracked<'t, &'static str, &'static str>,
    pub(super) metadata: Tracked<'t, (u64, u64, &'static str), BytesTable>,
    pub(super) metadata_bytes: Tracked<'t, u64, u64>,
    pub(super) deleted_users: Tracked<'t, u64, u8>,
    /// Hints of the current call, published once the transaction has committed.
    pub(super) events: Vec<ChangeEvent>,
    /// Set by every change to a table: whether the current call has written anything (see
    /// [`W::begin_call`]).
    dirty: Rc<Cell<bool>>,
}

impl<'t> W<'t> {
    pub(super) fn open(txn: &'t WriteTransaction) -> MetaResult<W<'t>> {
        let dirty = Rc::new(Cell::new(false));
        Ok(W {
            meta: Tracked::new(txn.open_table(META).map_err(db_err)?, &dirty),
            users: Tracked::new(txn.open_table(USERS).map_err(db_err)?, &dirty),
            user_names: Tracked::new(txn.open_table(USER_NAMES).map_err(db_err)?, &dirty),
            user_seq: Tracked::new(txn.open_table(USER_SEQ).map_err(db_err)?, &dirty),
            mailboxes: Tracked::new(txn.open_table(MAILBOXES).map_err(db_err)?, &dirty),
            mailbox_names: Tracked::new(txn.open_table(MAILBOX_NAMES).map_err(db_err)?, &dirty),
            subscriptions: Tracked::new(txn.open_table(SUBSCRIPTIONS).map_err(db_err)?, &dirty),
            messages: Tracked::new(txn.open_table(MESSAGES).map_err(db_err)?, &dirty),
            summaries: Tracked::new(txn.open_table(SUMMARIES).map_err(db_err)?, &dirty),
            search_index: Tracked::new(txn.open_table(SEARCH_INDEX).map_err(db_err)?, &dirty),
            by_modseq: Tracked::new(txn.open_table(BY_MODSEQ).map_err(db_err)?, &dirty),
            expunged: Tracked::new(txn.open_table(EXPUNGED).map_err(db_err)?, &dirty),
            unseen: Tracked::new(txn.open_table(UNSEEN).map_err(db_err)?, &dirty),
            deleted: Tracked::new(txn.open_table(DELETED).map_err(db_err)?, &dirty),
            index_generation: Tracked::new(
                txn.open_table(INDEX_GENERATION).map_err(db_err)?,
                &dirty,
            ),
            index_removals: Tracked::new(txn.open_table(INDEX_REMOVALS).map_err(db_err)?, &dirty),
            index_lease: Tracked::new(txn.open_table(INDEX_LEASE).map_err(db_err)?, &dirty),
            index_refs: Tracked::new(txn.open_table(INDEX_REFS).map_err(db_err)?, &dirty),
            quotas: Tracked::new(txn.open_table(QUOTAS).map_err(db_err)?, &dirty),
            aliases: Tracked::new(txn.open_table(ALIASES).map_err(db_err)?, &dirty),
            user_aliases: Tracked::new(txn.open_table(USER_ALIASES).map_err(db_err)?, &dirty),
            domains: Tracked::new(txn.open_table(DOMAINS).map_err(db_err)?, &dirty),
            metadata: Tracked::new(txn.open_table(METADATA).map_err(db_err)?, &dirty),
            metadata_bytes: Tracked::new(txn.open_table(METADATA_BYTES).map_err(db_err)?, &dirty),
            deleted_users: Tracked::new(txn.open_table(DELETED_USERS).map_err(db_err)?, &dirty),
            events: Vec::new(),
            dirty,
        })
    }

    /// Starts a call: no hints yet and nothing written by it.
    pub(super) fn begin_call(&mut self) {
        self.events.clear();
        self.dirty.set(false);
    }

    /// Whether the current call has changed (or tried to change) any table. A call that fails
    /// without having written can be dropped alone; one that wrote cannot be undone inside the
    /// transaction.
    pub(super) fn wrote(&self) -> bool {
        self.dirty.get()
    }

    pub(super) fn emit(&mut self, u: u64, m: u64, modseq: u64, kind: ChangeKind) {
        self.events.push(ChangeEvent {
            user: UserId(u),
            mailbox: MailboxId(m),
            modseq: ModSeq(modseq),
            kind,
            // Stamped when sent, after the commit.
            published_unix_micros: 0,
        });
    }

    /// Moves mailbox `m` to a new UIDVALIDITY, above its own and the user's last one (RFC 3501
    /// §2.3.1.1); its messages stay. See `changes_since`.
    pub(super) fn revalidate(&mut self, u: u64, m: u64, row: &mut MboxRow) -> MetaResult<()> {
        let mut seq: UserSeq = match self.user_seq.get(u).map_err(db_err)? {
            Some(g) => decode(g.value())?,
            None => UserSeq::default(),
        };
        seq.last_uid_validity = next_uid_validity(seq.last_uid_validity.max(row.uid_validity)).0;
        self.user_seq
            .insert(u, encode(&seq)?.as_slice())
            .map_err(db_err)?;
        row.uid_validity = seq.last_uid_validity;
        self.put_mbox(u, m, row)?;
        self.emit(u, m, row.highest_modseq, ChangeKind::MailboxList);
        Ok(())
    }

    pub(super) fn mbox(&self, u: u64, m: u64) -> MetaResult<MboxRow> {
        read_mbox(&*self.mailboxes, u, m)?
            .ok_or_else(|| MetaError::NotFound(format!("mailbox {m}")))
    }

    pub(super) fn put_mbox(&mut self, u: u64, m: u64, row: &MboxRow) -> MetaResult<()> {
        self.mailboxes
            .insert((u, m), encode(row)?.as_slice())
            .map_err(db_err)?;
        Ok(())
    }

    /// The id of the mailbox called `name` (normalized), creating INBOX on first use.
    pub(super) fn id_by_name(&mut self, u: u64, name: &str) -> MetaResult<Option<u64>> {
        if let Some(id) = read_mbox_id(&*self.mailbox_names, u, name)? {
            return Ok(Some(id));
        }
        if name == INBOX {
            return self.create_mbox(u, INBOX, None).map(|(id, _)| Some(id));
        }
        Ok(None)
    }

    pub(super) fn id_by_name_req(&mut self, u: u64, name: &str) -> MetaResult<u64> {
        self.id_by_name(u, name)?
            .ok_or_else(|| MetaError::NotFound(format!("mailbox {name}")))
    }

    /// Creates a mailbox under a name known to be free.
    pub(super) fn create_mbox(
        &mut self,
        u: u64,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> MetaResult<(u64, MboxRow)> {
        let mut seq: UserSeq = match self.user_seq.get(u).map_err(db_err)? {
            Some(g) => decode(g.value())?,
            None => UserSeq::default(),
        };
        seq.last_mailbox += 1;
        seq.last_uid_validity = next_uid_validity(seq.last_uid_validity).0;
        self.user_seq
            .insert(u, encode(&seq)?.as_slice())
            .map_err(db_err)?;
        let id = seq.last_mailbox;
        let row = MboxRow {
            name: name.to_string(),
            uid_validity: seq.last_uid_validity,
            uid_next: 1,
            highest_modseq: 1,
            exists: 0,
            unseen: 0,
            deleted: 0,
            size: 0,
            special_use,
            keywords: Vec::new(),
            recent_from: first_uid(),
            expunge_log: 0,
            vanished_floor: 0,
        };
        self.put_mbox(u, id, &row)?;
        self.mailbox_names.insert((u, name), id).map_err(db_err)?;
        self.emit(u, id, row.highest_modseq, ChangeKind::MailboxList);
        Ok((id, row))
    }

    /// Refuses (before anything is written) when creating `name`'s missing superiors plus
    /// `extra` mailboxes would take the account past `limits.max_mailboxes`.
    pub(super) fn check_mailbox_room(
        &self,
        limits: &StoreLimits,
        u: u64,
        name: &str,
        extra: usize,
    ) -> MetaResult<()> {
        let mut added = extra;
        for sup in names::superiors(name) {
            if read_mbox_id(&*self.mailbox_names, u, &sup)?.is_none() {
                added += 1;
            }
        }
        if added == 0 {
            return Ok(());
        }
        let mut have = 0usize;
        for item in self
            .mailboxes
            .range((u, 0)..=(u, u64::MAX))
            .map_err(db_err)?
        {
            item.map_err(db_err)?;
            have += 1;
        }
        if have + added > limits.max_mailboxes as usize {
            return Err(limits.too_many_mailboxes());
        }
        Ok(())
    }

    /// Creates the missing superiors of `name` (RFC 3501 §6.3.3/§6.3.5: the server SHOULD).
    pub(super) fn create_superiors(&mut self, u: u64, name: &str) -> MetaResult<()> {
        for sup in names::superiors(name) {
            if self.id_by_name(u, &sup)?.is_none() {
                self.create_mbox(u, &sup, None)?;
            }
        }
        Ok(())
    }

    pub(super) fn usage(&self, u: u64) -> MetaResult<QuotaUsage> {
        read_usage(&*self.quotas, &*self.mailboxes, u)
    }

    pub(super) fn put_usage(&mut self, u: u64, usage: &QuotaUsage) -> MetaResult<()> {
        self.quotas
            .insert(u, encode(usage)?.as_slice())
            .map_err(db_err)?;
        Ok(())
    }

    /// Adds messages to the account's usage, refusing with `OverQuota` (and writing nothing)
    /// when a limit would be exceeded. Called before the messages are written, inside the same
    /// transaction, so concurrent writers can never overshoot a limit together.
    pub(super) fn charge(&mut self, u: u64, bytes: u64, messages: u64) -> MetaResult<()> {
        let mut usage = self.usage(u)?;
        check_quota(&usage, bytes, messages)?;
        usage.storage_bytes += bytes;
        usage.messages += messages;
        self.put_usage(u, &usage)
    }

    /// Takes removed messages off the account's usage. Must run before the mailbox rows
    /// change: for an account without stored counters the usage is computed from them.
    pub(super) fn credit(&mut self, u: u64, bytes: u64, messages: u64) -> MetaResult<()> {
        let mut usage = self.usage(u)?;
        usage.storage_bytes = usage.storage_bytes.saturating_sub(bytes);
        usage.messages = usage.messages.saturating_sub(messages);
        self.put_usage(u, &usage)
    }

    pub(super) fn user_row(&self, u: u64) -> MetaResult<UserRow> {
        match self.users.get(u).map_err(db_err)? {
            Some(g) => decode(g.value()),
            None => Err(MetaError::NotFound(format!("user {u}"))),
        }
    }

    pub(super) fn put_user_row(&mut self, u: u64, row: &UserRow) -> MetaResult<()> {
        self.users
            .insert(u, encode(row)?.as_slice())
            .map_err(db_err)?;
        Ok(())
    }

    pub(super) fn insert_msg(
        &mut self,
        u: u64,
        m: u64,
        row: &mut MboxRow,
        uid: u32,
        msg: &MsgRow,
        (summary, index): (&[u8], &[u8]),
    ) -> MetaResult<()> {
        self.messages
            .insert((u, m, uid), encode(msg)?.as_slice())
            .map_err(db_err)?;
        self.summaries
            .insert((u, m, uid), summary)
            .map_err(db_err)?;
        self.search_index
            .insert((u, m, uid), index)
            .map_err(db_err)?;
        self.index_ref(u, index, 1)?;
        self.index_flags(u, m, uid, msg, true)?;
        row.count(msg, true);
        row.note_keywords(&msg.flags);
        Ok(())
    }

    /// Adds or removes the secondary index entries of one message.
    pub(super) fn index_flags(
        &mut self,
        u: u64,
        m: u64,
        uid: u32,
        msg: &MsgRow,
        add: bool,
    ) -> MetaResult<()> {
        let seen = flags::contains(&msg.flags, "\\Seen");
        let deleted = flags::contains(&msg.flags, "\\Deleted");
        if add {
            self.by_modseq
                .insert((u, m, msg.modseq, uid), 0)
                .map_err(db_err)?;
            if !seen {
                self.unseen.insert((u, m, uid), 0).map_err(db_err)?;
            }
            if deleted {
                self.deleted.insert((u, m, uid), 0).map_err(db_err)?;
            }
        } else {
            self.by_modseq
                .remove((u, m, msg.modseq, uid))
                .map_err(db_err)?;
            self.unseen.remove((u, m, uid)).map_err(db_err)?;
            self.deleted.remove((u, m, uid)).map_err(db_err)?;
        }
        Ok(())
    }

    /// Removes a message and logs its UID as expunged at `modseq` (RFC 7162 §3.2.10); the
    /// write then calls [`W::trim_expunged`] once.
    pub(super) fn expunge_msg(
        &mut self,
        u: u64,
        m: u64,
        row: &mut MboxRow,
        uid: u32,
        msg: &MsgRow,
        modseq: u64,
    ) -> MetaResult<()> {
        self.messages.remove((u, m, uid)).map_err(db_err)?;
        self.summaries.remove((u, m, uid)).map_err(db_err)?;
        self.index_forget(u, m, uid)?;
        self.index_flags(u, m, uid, msg, false)?;
        self.expunged
            .insert((u, m, modseq, uid), 0)
            .map_err(db_err)?;
        row.expunge_log += 1;
        row.count(msg, false);
        Ok(())
    }

    /// Keeps mailbox `m`'s expunge log to `max_log` entries: the oldest go, and the floor below
    /// which QRESYNC answers are no longer exact rises to the highest MODSEQ dropped (as
    /// `trim_expunged` in the Redis prelude). Drops at most what the write added beyond the cap
    /// (plus any excess of a lowered cap), each an O(log n) removal.
    pub(super) fn trim_expunged(
        &mut self,
        u: u64,
        m: u64,
        row: &mut MboxRow,
        max_log: u32,
    ) -> MetaResult<()> {
        while row.expunge_log > u64::from(max_log) {
            let oldest = self
                .expunged
                .range((u, m, 0, 0)..=(u, m, u64::MAX, u32::MAX))
                .map_err(db_err)?
                .next()
                .transpose()
                .map_err(db_err)?
                .map(|(k, _)| k.value());
            let Some(key) = oldest else {
                row.expunge_log = 0;
                break;
            };
            self.expunged.remove(key).map_err(db_err)?;
            row.vanished_floor = row.vanished_floor.max(key.2);
            row.expunge_log -= 1;
        }
        Ok(())
    }

    pub(super) fn set_flags(
        &mut self,
        u: u64,
        m: u64,
        row: &mut MboxRow,
        uid: u32,
        old: &MsgRow,
        new: &MsgRow,
    ) -> MetaResult<()> {
        self.index_flags(u, m, uid, old, false)?;
        row.count(old, false);
        self.messages
            .insert((u, m, uid), encode(new)?.as_slice())
            .map_err(db_err)?;
        self.index_flags(u, m, uid, new, true)?;
        row.count(new, true);
        row.note_keywords(&new.flags);
        Ok(())
    }

    /// Removes every row of a mailbox (its messages, logs and name).
    pub(super) fn drop_mailbox(&mut self, u: u64, m: u64, name: &str) -> MetaResult<()> {
        let r = (u, m, 0)..=(u, m, u32::MAX);
        self.messages
            .retain_in(r.clone(), |_, _| false)
            .map_err(db_err)?;
        self.summaries
            .retain_in(r.clone(), |_, _| false)
            .map_err(db_err)?;
        self.unqueue_mailbox(u, m)?;
        self.unseen
            .retain_in(r.clone(), |_, _| false)
            .map_err(db_err)?;
        self.deleted.retain_in(r, |_, _| false).map_err(db_err)?;
        let r4 = (u, m, 0, 0)..=(u, m, u64::MAX, u32::MAX);
        self.by_modseq
            .retain_in(r4.clone(), |_, _| false)
            .map_err(db_err)?;
        self.expunged.retain_in(r4, |_, _| false).map_err(db_err)?;
        self.push_index_removal(u, &format!("{m} *"))?;
        self.forget_metadata(u, m)?;
        self.mailboxes.remove((u, m)).map_err(db_err)?;
        self.mailbox_names.remove((u, name)).map_err(db_err)?;
        Ok(())
    }

    /// Removes the METADATA entries of mailbox `m` (0: the server's) and takes their bytes off
    /// the account's total.
    pub(super) fn forget_metadata(&mut self, u: u64, m: u64) -> MetaResult<()> {
        let mut bytes = 0u64;
        self.metadata
            .retain_in::<(u64, u64, &str), _>((u, m, "")..(u, m + 1, ""), |(_, _, name), value| {
                bytes += (name.len() + value.len()) as u64;
                false
            })
            .map_err(db_err)?;
        let held = self.metadata_bytes_of(u)?;
        self.set_metadata_bytes(u, held.saturating_sub(bytes))
    }

    pub(super) fn metadata_bytes_of(&self, u: u64) -> MetaResult<u64> {
        Ok(self
            .metadata_bytes
            .get(u)
            .map_err(db_err)?
            .map_or(0, |v| v.value()))
    }

    pub(super) fn set_metadata_bytes(&mut self, u: u64, bytes: u64) -> MetaResult<()> {
        if bytes == 0 {
            self.metadata_bytes.remove(u).map_err(db_err)?;
        } else {
            self.metadata_bytes.insert(u, bytes).map_err(db_err)?;
        }
        Ok(())
    }

    /// Copies (or moves) the existing messages of `set` from `src` to `dst`, with new UIDs in
    /// ascending source order, keeping flags and internal dates (RFC 3501 §6.4.7).
    pub(super) fn transfer(
        &mut self,
        u: u64,
        src: u64,
        set: Option<&UidSet>,
        dst: u64,
        remove_source: bool,
        limits: &StoreLimits,
    ) -> MetaResult<(u32, Vec<(Uid, Uid)>)> {
        let mut srow = self.mbox(u, src)?;
        let mut drow = if src == dst {
            None
        } else {
            Some(self.mbox(u, dst)?)
        };
        let msgs = read_msgs_in(&*self.messages, u, src, set)?;
        let validity = drow.as_ref().map_or(srow.uid_validity, |d| d.uid_validity);
        if msgs.is_empty() {
            return Ok((validity, Vec::new()));
        }
        if let Some(d) = &drow {
            d.check_keyword_room(limits, msgs.iter().map(|(_, m)| m.flags.as_slice()))?;
        }
        if !remove_source {
            // A copy adds to the account's usage; a move within it changes nothing.
            let bytes = msgs.iter().map(|(_, m)| m.size).sum();
            self.charge(u, bytes, msgs.len() as u64)?;
        }
        // A copy leaves every source message as it was, so the source's HIGHESTMODSEQ stays
        // (RFC 7162 §3.1.4: it is the highest MODSEQ of the mailbox's messages); only a move
        // expunges there and needs a new one.
        let smodseq = if remove_source || drow.is_none() {
            srow.bump_modseq()
        } else {
            srow.highest_modseq
        };
        let dmodseq = match drow.as_mut() {
            Some(d) => d.bump_modseq(),
            None => smodseq,
        };
        let mut mapping = Vec::with_capacity(msgs.len());
        for (uid, msg) in msgs {
            let summary = read_bytes(&*self.summaries, u, src, uid)?.unwrap_or_default();
            // Still queued: the copy queues the same text; else it references the indexed
            // source (read before a move forgets it; the indexer applies copies first).
            let index = match read_bytes(&*self.search_index, u, src, uid)? {
                Some(text) => text,
                None => crate::fulltext::copy_reference(MailboxId(src), Uid(uid)).into_bytes(),
            };
            if remove_source {
                self.expunge_msg(u, src, &mut srow, uid, &msg, smodseq)?;
            }
            let d = match drow.as_mut() {
                Some(d) => d,
                None => &mut srow,
            };
            let new_uid = d.take_uid()?;
            let copy = MsgRow {
                modseq: dmodseq,
                ..msg
            };
            self.insert_msg(u, dst, d, new_uid, &copy, (&summary, &index))?;
            mapping.push((Uid(uid), Uid(new_uid)));
        }
        if remove_source {
            self.trim_expunged(u, src, &mut srow, limits.max_expunge_log)?;
        }
        self.put_mbox(u, src, &srow)?;
        if let Some(d) = &drow {
            self.put_mbox(u, dst, d)?;
        }
        self.emit(u, dst, dmodseq, ChangeKind::Appended);
        if remove_source {
            self.emit(u, src, smodseq, ChangeKind::Expunged);
        }
        Ok((validity, mapping))
    }
}

/// Every table, open in one read transaction.
pub(super) struct R {
    pub(super) users: ReadOnlyTable<u64, BytesTable>,
    pub(super) user_names: ReadOnlyTable<&'static str, u64>,
    pub(super) mailboxes: ReadOnlyTable<(u64, u64), BytesTable>,
    pub(super) mailbox_names: ReadOnlyTable<(u64, &'static str), u64>,
    pub(super) subscriptions: ReadOnlyTable<(u64, &'static str), u8>,
    pub(super) messages: ReadOnlyTable<(u64, u64, u32), BytesTable>,
    pub(super) summaries: ReadOnlyTable<(u64, u64, u32), BytesTable>,
    pub(super) search_index: ReadOnlyTable<(u64, u64, u32), BytesTable>,
    pub(super) by_modseq: ReadOnlyTable<(u64, u64, u64, u32), u8>,
    pub(super) expunged: ReadOnlyTable<(u64, u64, u64, u32), u8>,
    pub(super) unseen: ReadOnlyTable<(u64, u64, u32), u8>,
    pub(super) deleted: ReadOnlyTable<(u64, u64, u32), u8>,
    pub(super) index_generation: ReadOnlyTable<u64, u64>,
    pub(super) quotas: ReadOnlyTable<u64, BytesTable>,
    pub(super) aliases: ReadOnlyTable<&'static str, u64>,
    pub(super) domains: ReadOnlyTable<&'static str, &'static str>,
    pub(super) metadata: ReadOnlyTable<(u64, u64, &'static str), BytesTable>,
}

impl R {
    pub(super) fn open(txn: &ReadTransaction) -> MetaResult<R> {
        Ok(R {
            users: txn.open_table(USERS).map_err(db_err)?,
            user_names: txn.open_table(USER_NAMES).map_err(db_err)?,
            mailboxes: txn.open_table(MAILBOXES).map_err(db_err)?,
            mailbox_names: txn.open_table(MAILBOX_NAMES).map_err(db_err)?,
            subscriptions: txn.open_table(SUBSCRIPTIONS).map_err(db_err)?,
            messages: txn.open_table(MESSAGES).map_err(db_err)?,
            summaries: txn.open_table(SUMMARIES).map_err(db_err)?,
            search_index: txn.open_table(SEARCH_INDEX).map_err(db_err)?,
            by_modseq: txn.open_table(BY_MODSEQ).map_err(db_err)?,
            expunged: txn.open_table(EXPUNGED).map_err(db_err)?,
            unseen: txn.open_table(UNSEEN).map_err(db_err)?,
            deleted: txn.open_table(DELETED).map_err(db_err)?,
            index_generation: txn.open_table(INDEX_GENERATION).map_err(db_err)?,
            quotas: txn.open_table(QUOTAS).map_err(db_err)?,
            aliases: txn.open_table(ALIASES).map_err(db_err)?,
            domains: txn.open_table(DOMAINS).map_err(db_err)?,
            metadata: txn.open_table(METADATA).map_err(db_err)?,
        })
    }

    pub(super) fn mbox(&self, u: u64, m: u64) -> MetaResult<MboxRow> {
        read_mbox(&self.mailboxes, u, m)?.ok_or_else(|| MetaError::NotFound(format!("mailbox {m}")))
    }

    pub(super) fn id_by_name(&self, u: u64, name: &str) -> MetaResult<u64> {
        read_mbox_id(&self.mailbox_names, u, name)?
            .ok_or_else(|| MetaError::NotFound(format!("mailbox {name}")))
    }

    pub(super) fn user(&self, id: u64) -> MetaResult<Option<UserRecord>> {
        match self.users.get(id).map_err(db_err)? {
            Some(g) => {
                let row: UserRow = decode(g.value())?;
                Ok(Some(UserRecord {
                    id: UserId(id),
                    name: row.name,
                    password_hash: row.password_hash,
                    disabled: row.disabled,
                }))
            }
            None => Ok(None),
        }
    }
}

impl EmbeddedStore {
    /// Runs `f` in a write transaction on the writer thread, which may share the transaction
    /// (and its fsync) with other calls (see `writer`); answers once that transaction has
    /// committed, after which the call's hints are published. On `Err` nothing of `f` is
    /// written. `f` may run more than once (when a later call spoils a shared transaction), so
    /// it must act only through `W`.
    pub(super) async fn write<T, F>(&self, f: F) -> MetaResult<T>
    where
        T: Send + 'static,
        F: for<'t> Fn(&mut W<'t>) -> MetaResult<T> + Send + 'static,
    {
        self.writer.write(f).await
    }

    /// [`Self::write`] for a write to `user`'s mail: refused when the account was deleted.
    pub(super) async fn write_user<T, F>(&self, user: UserId, f: F) -> MetaResult<T>
    where
        T: Send + 'static,
        F: for<'t> Fn(&mut W<'t>) -> MetaResult<T> + Send + 'static,
    {
        self.write(move |w| {
            if w.deleted_users.get(user.0).map_err(db_err)?.is_some() {
                return Err(MetaError::NotFound("account (deleted)".into()));
            }
            f(w)
        })
        .await
    }

    /// Runs `f` in one read transaction (a consistent snapshot) on a blocking thread.
    pub(super) async fn read<T, F>(&self, f: F) -> MetaResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&R) -> MetaResult<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(db_err)?;
            f(&R::open(&txn)?)
        })
        .await
        .map_err(|e| MetaError::Internal(format!("embedded store task: {e}")))?
    }
}
