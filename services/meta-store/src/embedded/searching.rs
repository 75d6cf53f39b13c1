//! SEARCH: the flag indexes; otherwise one read transaction takes the columns, the mailbox's
//! queued search texts and the full-text index generation, the index answers the text keys of
//! the other messages (`crate::fulltext`), and the shared evaluator decides.

use std::collections::HashMap;

use yubin_meta_api::{
    IndexProjection, IndexedMessage, MailboxId, MetaResult, ModSeq, SearchKey, Uid, UserId,
};

use super::EmbeddedStore;
use super::tables::*;
use crate::fulltext::{self, Generation, Queued};
use crate::search::{self, Candidate};

/// What one read transaction gives a search.
struct Scan {
    msgs: Vec<(u32, MsgRow)>,
    queued: Vec<(Uid, Queued)>,
    generation: Generation,
}

/// Queued messages with more than this many entries make a search wake the indexer.
const NUDGE_AT_QUEUED: usize = 64;

async fn scan(
    s: &EmbeddedStore,
    user: UserId,
    mailbox: MailboxId,
    with_text: bool,
) -> MetaResult<Scan> {
    let (u, m) = (user.0, mailbox.0);
    let scan = s
        .read(move |r| {
            r.mbox(u, m)?;
            let msgs = read_msgs_in(&r.messages, u, m, None)?;
            let mut queued = Vec::new();
            if with_text {
                for item in r
                    .search_index
                    .range((u, m, 0)..=(u, m, u32::MAX))
                    .map_err(db_err)?
                {
                    let (k, v) = item.map_err(db_err)?;
                    queued.push((Uid(k.value().2), fulltext::parse_queued(v.value())?));
                }
            }
            let generation = Generation(
                r.index_generation
                    .get(u)
                    .map_err(db_err)?
                    .map_or(0, |g| g.value()),
            );
            Ok(Scan {
                msgs,
                queued,
                generation,
            })
        })
        .await?;
    if scan.queued.len() > NUDGE_AT_QUEUED {
        s.nudge_indexer(user);
    }
    Ok(scan)
}

pub(super) async fn search(
    s: &EmbeddedStore,
    user: UserId,
    mailbox: MailboxId,
    key: &SearchKey,
) -> MetaResult<Vec<Uid>> {
    let (u, m) = (user.0, mailbox.0);
    // The two flags with their own index are answered by it alone (SEARCH UNSEEN / DELETED),
    // without reading any message.
    let flag_index = match key {
        SearchKey::NoFlag(f) if f.eq_ignore_ascii_case("\\Seen") => Some(true),
        SearchKey::Flag(f) if f.eq_ignore_ascii_case("\\Deleted") => Some(false),
        _ => None,
    };
    if let Some(unseen) = flag_index {
        return s
            .read(move |r| {
                r.mbox(u, m)?;
                let t = if unseen { &r.unseen } else { &r.deleted };
                Ok(read_uid_keys(t, u, m)?.into_iter().map(Uid).collect())
            })
            .await;
    }
    Ok(matching(s, user, mailbox, key, search::needs_index(key))
        .await?
        .0
        .into_iter()
        .map(|(uid, _, _)| uid)
        .collect())
}

/// The messages matching `key` (with their queued text, if any), and the generation the
/// index answered from.
#[allow(clippy::type_complexity)]
async fn matching(
    s: &EmbeddedStore,
    user: UserId,
    mailbox: MailboxId,
    key: &SearchKey,
    with_text: bool,
) -> MetaResult<(
    Vec<(Uid, MsgRow, Option<yubin_meta_api::SearchIndex>)>,
    Generation,
)> {
    let scan = scan(s, user, mailbox, with_text).await?;
    let (answers, mut texts) = if with_text {
        fulltext::text_view(
            s.full_text.as_ref(),
            user,
            mailbox,
            key,
            scan.generation,
            scan.queued,
        )
        .await?
    } else {
        (None, HashMap::new())
    };
    let mut out = Vec::new();
    for (uid, msg) in scan.msgs {
        let uid = Uid(uid);
        let queued = texts.remove(&uid);
        let c = Candidate {
            uid,
            modseq: ModSeq(msg.modseq),
            flags: &msg.flags,
            internal_date: msg.date,
            size: msg.size,
            index: queued.as_ref(),
            text: if queued.is_none() {
                answers.as_ref()
            } else {
                None
            },
        };
        if search::matches(key, &c) {
            out.push((uid, msg, queued));
        }
    }
    Ok((out, scan.generation))
}

pub(super) async fn search_indexed(
    s: &EmbeddedStore,
    user: UserId,
    mailbox: MailboxId,
    key: &SearchKey,
    projection: &IndexProjection,
) -> MetaResult<Vec<IndexedMessage>> {
    let (found, generation) = matching(s, user, mailbox, key, true).await?;
    let indexed: Vec<Uid> = found
        .iter()
        .filter(|(_, _, q)| q.is_none())
        .map(|(uid, _, _)| *uid)
        .collect();
    let mut docs = fulltext::indexed_documents(
        s.full_text.as_ref(),
        user,
        generation,
        mailbox,
        &indexed,
        projection,
    )
    .await?;
    // A message without a document was expunged meanwhile (its removal reached the index
    // generation read after the scan): it is left out, as it would be a moment later.
    Ok(found
        .into_iter()
        .filter_map(|(uid, msg, queued)| {
            let index = match queued {
                Some(ix) => ix.project(projection),
                None => docs.remove(&uid)?,
            };
            Some(IndexedMessage {
                uid,
                size: msg.size,
                internal_date: msg.date,
                index,
            })
        })
        .collect())
}
