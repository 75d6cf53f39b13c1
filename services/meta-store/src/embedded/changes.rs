//! SELECT's snapshot, CONDSTORE/QRESYNC catch-up and the change-hint stream.

use futures::StreamExt;
use tokio::sync::broadcast;
use yubin_meta_api::{
    ChangeEvent, ChangeKind, ChangeStream, Changes, MailboxId, MailboxSnapshot, MetaResult, ModSeq,
    SnapshotFlagsBuilder, Uid, UserId,
};

use super::EmbeddedStore;
use super::tables::*;
use crate::names::{self, INBOX};

pub(super) async fn select(
    s: &EmbeddedStore,
    user: UserId,
    name: &str,
) -> MetaResult<MailboxSnapshot> {
    let name = names::checked(name)?;
    if name == INBOX {
        s.ensure_inbox(user).await?;
    }
    let (u, limits) = (user.0, s.limits);
    s.read(move |r| {
        let id = r.id_by_name(u, &name)?;
        let row = r.mbox(u, id)?;
        // Each message's flags and MODSEQ come from the same read transaction as the UIDs
        // and the mailbox row, so they are the state at the row's HIGHESTMODSEQ.
        let mut uids = Vec::with_capacity(row.exists as usize);
        let mut flags = SnapshotFlagsBuilder::default();
        for item in r
            .messages
            .range((u, id, 0)..=(u, id, u32::MAX))
            .map_err(db_err)?
        {
            let (k, v) = item.map_err(db_err)?;
            let msg: MsgRow = decode(v.value())?;
            uids.push(Uid(k.value().2));
            flags.push(ModSeq(msg.modseq), &msg.flags);
        }
        let first_unseen = r
            .unseen
            .range((u, id, 0)..=(u, id, u32::MAX))
            .map_err(db_err)?
            .next()
            .transpose()
            .map_err(db_err)?
            .map(|(k, _)| Uid(k.value().2));
        let recent = count_unclaimed(&r.messages, u, id, row.recent_from)?;
        Ok(MailboxSnapshot {
            info: row.info(id, recent),
            uids,
            first_unseen,
            keywords_full: limits.keywords_full(row.keywords.len()),
            keywords: row.keywords,
            flags: flags.finish(),
        })
    })
    .await
}

pub(super) async fn changes_since(
    s: &EmbeddedStore,
    user: UserId,
    mailbox: MailboxId,
    since: ModSeq,
) -> MetaResult<Changes> {
    let (u, m) = (user.0, mailbox.0);
    let changes = s
        .read(move |r| {
            let Some(row) = read_mbox(&r.mailboxes, u, m)? else {
                return Ok(Some(gone_changes()));
            };
            if since.0 > row.highest_modseq {
                // Ahead of the mailbox: handled below, in a write.
                return Ok(None);
            }
            // Entries above the floor were never dropped: exact from there on.
            let log_trimmed = since.0 < row.vanished_floor;
            let mut changed = Vec::new();
            for uid in read_modseq_log(&r.by_modseq, u, m, since.0)? {
                if let Some(msg) = read_msg(&r.messages, u, m, uid)? {
                    changed.push(msg.record(uid, None));
                }
            }
            Ok(Some(Changes {
                highest_modseq: ModSeq(row.highest_modseq),
                uid_next: Uid(row.uid_next),
                exists: row.exists,
                changed,
                vanished: read_modseq_log(&r.expunged, u, m, since.0)?
                    .into_iter()
                    .map(Uid)
                    .collect(),
                mailbox_gone: false,
                log_trimmed,
            }))
        })
        .await?;
    if let Some(changes) = changes {
        return Ok(changes);
    }
    // A MODSEQ above HIGHESTMODSEQ was never handed out by this mailbox: the caller's view
    // is of another history (a restored database, or a client's made-up value). As in
    // the Redis store: a new UIDVALIDITY, and the view ends.
    s.write(move |w| {
        let mut row = w.mbox(u, m)?;
        if since.0 > row.highest_modseq {
            w.revalidate(u, m, &mut row)?;
        }
        Ok(())
    })
    .await?;
    Ok(gone_changes())
}

pub(super) async fn watch(s: &EmbeddedStore, user: UserId) -> MetaResult<ChangeStream> {
    let rx = s.events.subscribe();
    let stream = futures::stream::unfold(rx, move |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(ev) if ev.user == user => return Some((ev, rx)),
                Ok(_) => continue,
                // Hints were dropped: tell the consumer to resync (it calls
                // changes_since, the truth).
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return Some((resync_hint(user), rx));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(stream.boxed())
}

/// The answer of `changes_since` when the caller's view of a mailbox has ended.
pub(super) fn gone_changes() -> Changes {
    Changes {
        highest_modseq: ModSeq(0),
        uid_next: Uid(0),
        exists: 0,
        changed: Vec::new(),
        vanished: Vec::new(),
        mailbox_gone: true,
        log_trimmed: false,
    }
}

/// The hint sent when hints may have been lost: mailbox 0 (no mailbox has it), modseq 0, kind
/// `MailboxList`, which makes a consumer re-read its mailbox list and selected mailbox.
pub(crate) fn resync_hint(user: UserId) -> ChangeEvent {
    ChangeEvent {
        user,
        mailbox: MailboxId(0),
        modseq: ModSeq(0),
        kind: ChangeKind::MailboxList,
        published_unix_micros: 0,
    }
}
