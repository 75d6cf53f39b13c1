//! The message writes of the `MailStore` calls: APPEND, FETCH, STORE, COPY/MOVE, EXPUNGE and the `\Recent` claim.

use bytes::Bytes;
use yubin_meta_api::{
    AppendResult, ChangeKind, CopyResult, FlagOp, MailboxId, MessageRecord, MetaResult, ModSeq,
    NewMessage, StoreResult, Uid, UidRange, UidSet, UidValidity, UserId,
};

use super::EmbeddedStore;
use super::tables::*;
use crate::flags;
use crate::names::{self};

pub(super) async fn append(
    s: &EmbeddedStore,
    user: UserId,
    mailbox: &str,
    messages: Vec<NewMessage>,
) -> MetaResult<AppendResult> {
    let name = names::checked(mailbox)?;
    let mut prepared = Vec::with_capacity(messages.len());
    for m in messages {
        m.check_owner(user)?;
        let flags = flags::normalize(&m.flags)?;
        s.limits.check_given(&flags)?;
        // Encoded before the write transaction, which is the store's one serial section.
        let index = crate::fulltext::encode_queued(&m.index)?;
        prepared.push((m, flags, index));
    }
    let (u, limits) = (user.0, s.limits);
    s.write_user(user, move |w| {
        let id = w.id_by_name_req(u, &name)?;
        let mut row = w.mbox(u, id)?;
        let mut uids = Vec::with_capacity(prepared.len());
        if !prepared.is_empty() {
            row.check_keyword_room(&limits, prepared.iter().map(|(_, f, _)| f.as_slice()))?;
            let bytes = prepared.iter().map(|(m, _, _)| m.size).sum();
            w.charge(u, bytes, prepared.len() as u64)?;
            let modseq = row.bump_modseq();
            for (m, flags, index) in &prepared {
                let uid = row.take_uid()?;
                let msg = MsgRow {
                    modseq,
                    flags: flags.clone(),
                    date: m.internal_date,
                    size: m.size,
                    blob: m.blob.clone(),
                };
                w.insert_msg(u, id, &mut row, uid, &msg, (&m.summary, index))?;
                uids.push(Uid(uid));
            }
            w.put_mbox(u, id, &row)?;
            w.emit(u, id, modseq, ChangeKind::Appended);
        }
        Ok(AppendResult {
            uid_validity: UidValidity(row.uid_validity),
            uids,
            mailbox: MailboxId(id),
        })
    })
    .await
}

pub(super) async fn fetch(
    s: &EmbeddedStore,
    user: UserId,
    mailbox: MailboxId,
    uids: &UidSet,
    with_summary: bool,
) -> MetaResult<Vec<MessageRecord>> {
    let (u, m, set) = (user.0, mailbox.0, uids.clone());
    s.read(move |r| {
        r.mbox(u, m)?;
        let msgs = read_msgs_in(&r.messages, u, m, Some(&set))?;
        let mut out = Vec::with_capacity(msgs.len());
        for (uid, msg) in msgs {
            let summary = if with_summary {
                Some(Bytes::from(
                    read_bytes(&r.summaries, u, m, uid)?.unwrap_or_default(),
                ))
            } else {
                None
            };
            out.push(msg.record(uid, summary));
        }
        Ok(out)
    })
    .await
}

pub(super) async fn store_flags(
    s: &EmbeddedStore,
    user: UserId,
    mailbox: MailboxId,
    uids: &UidSet,
    op: FlagOp,
    flags: &[String],
    unchanged_since: Option<ModSeq>,
) -> MetaResult<StoreResult> {
    let given = flags::normalize(flags)?;
    if op != FlagOp::Remove {
        // Refused before the write transaction: this is the cheap, common rejection.
        s.limits.check_given(&given)?;
    }
    let (u, m, set, limits) = (user.0, mailbox.0, uids.clone(), s.limits);
    s.write_user(user, move |w| {
        let mut row = w.mbox(u, m)?;
        if op != FlagOp::Remove {
            // Every message the STORE changes ends up with all of `given` (RFC 3501
            // §6.4.6), so these are the keywords the mailbox would learn.
            row.check_keyword_room(&limits, [given.as_slice()])?;
        }
        let max_per_message = limits.max_keywords_per_message as usize;
        let msgs = read_msgs_in(&*w.messages, u, m, Some(&set))?;
        let mut updated = Vec::new();
        let mut modified = Vec::new();
        let mut modseq = None;
        for (uid, msg) in msgs {
            // RFC 7162 §3.1.3: a message changed after UNCHANGEDSINCE fails the condition.
            if unchanged_since.is_some_and(|us| msg.modseq > us.0) {
                modified.push(Uid(uid));
                continue;
            }
            let Some(next) = flags::apply(&msg.flags, op, &given) else {
                continue;
            };
            let keywords = flags::keyword_count(&next);
            if keywords > max_per_message && keywords > flags::keyword_count(&msg.flags) {
                // Dropping the transaction undoes the messages already changed.
                return Err(limits.too_many_per_message());
            }
            let ms = *modseq.get_or_insert_with(|| row.bump_modseq());
            let new = MsgRow {
                modseq: ms,
                flags: next,
                ..msg.clone()
            };
            w.set_flags(u, m, &mut row, uid, &msg, &new)?;
            updated.push((Uid(uid), ModSeq(ms), new.flags));
        }
        if let Some(ms) = modseq {
            w.put_mbox(u, m, &row)?;
            w.emit(u, m, ms, ChangeKind::Flags);
        }
        Ok(StoreResult {
            updated,
            modified,
            highest_modseq: ModSeq(row.highest_modseq),
        })
    })
    .await
}

pub(super) async fn copy_messages(
    s: &EmbeddedStore,
    user: UserId,
    source: MailboxId,
    uids: &UidSet,
    destination: &str,
    remove_source: bool,
) -> MetaResult<CopyResult> {
    let name = names::checked(destination)?;
    let (u, src, set, limits) = (user.0, source.0, uids.clone(), s.limits);
    s.write_user(user, move |w| {
        w.mbox(u, src)?;
        let dst = w.id_by_name_req(u, &name)?;
        let (validity, mapping) = w.transfer(u, src, Some(&set), dst, remove_source, &limits)?;
        Ok(CopyResult {
            uid_validity: UidValidity(validity),
            mapping,
            destination: MailboxId(dst),
        })
    })
    .await
}

pub(super) async fn expunge(
    s: &EmbeddedStore,
    user: UserId,
    mailbox: MailboxId,
    uids: Option<&UidSet>,
) -> MetaResult<Vec<Uid>> {
    let (u, m, set, max_log) = (user.0, mailbox.0, uids.cloned(), s.limits.max_expunge_log);
    s.write_user(user, move |w| {
        let mut row = w.mbox(u, m)?;
        let doomed: Vec<u32> = read_uid_keys(&*w.deleted, u, m)?
            .into_iter()
            .filter(|uid| set.as_ref().is_none_or(|s| s.contains(Uid(*uid))))
            .collect();
        if doomed.is_empty() {
            return Ok(Vec::new());
        }
        let mut doomed_msgs = Vec::with_capacity(doomed.len());
        for &uid in &doomed {
            if let Some(msg) = read_msg(&*w.messages, u, m, uid)? {
                doomed_msgs.push((uid, msg));
            }
        }
        let bytes = doomed_msgs.iter().map(|(_, msg)| msg.size).sum();
        w.credit(u, bytes, doomed_msgs.len() as u64)?;
        let modseq = row.bump_modseq();
        for (uid, msg) in &doomed_msgs {
            w.expunge_msg(u, m, &mut row, *uid, msg, modseq)?;
        }
        w.trim_expunged(u, m, &mut row, max_log)?;
        w.put_mbox(u, m, &row)?;
        w.emit(u, m, modseq, ChangeKind::Expunged);
        Ok(doomed.into_iter().map(Uid).collect())
    })
    .await
}

pub(super) async fn claim_recent(
    s: &EmbeddedStore,
    user: UserId,
    mailbox: MailboxId,
    up_to: Uid,
) -> MetaResult<UidRange> {
    let (u, m) = (user.0, mailbox.0);
    // Most claims find nothing new (every SELECT asks): a read answers those, so they do
    // not queue behind other writes for a commit that changes nothing. A claim that races
    // a concurrent one is then ordered before it, which is all the mark promises.
    let nothing_new = s
        .read(move |r| {
            let row = r.mbox(u, m)?;
            let to = row.recent_from.max(up_to.0.min(row.uid_next));
            Ok((to == row.recent_from).then_some(row.recent_from))
        })
        .await?;
    if let Some(mark) = nothing_new {
        return Ok(UidRange {
            from: Uid(mark),
            to: Uid(mark),
        });
    }
    s.write_user(user, move |w| {
        let mut row = w.mbox(u, m)?;
        // The mark never moves back (a UID is claimed once) nor past UIDNEXT (a UID not
        // assigned yet belongs to whoever announces it first).
        let from = row.recent_from;
        let to = from.max(up_to.0.min(row.uid_next));
        if to != from {
            row.recent_from = to;
            w.put_mbox(u, m, &row)?;
        }
        Ok(UidRange {
            from: Uid(from),
            to: Uid(to),
        })
    })
    .await
}
