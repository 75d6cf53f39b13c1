//! SEARCH: the flag indexes, the trigram filters, then the shared evaluator.

use std::collections::BTreeSet;

use redb::ReadableTable;
use yubin_meta_api::{
    IndexProjection, IndexedMessage, MailboxId, MetaResult, ModSeq, SearchIndex, SearchKey, Uid,
    UserId,
};

use super::EmbeddedStore;
use super::tables::*;
use super::txn::*;
use crate::search::{self, Candidate, Posting};

pub(super) async fn search(
    s: &EmbeddedStore,
    user: UserId,
    mailbox: MailboxId,
    key: &SearchKey,
) -> MetaResult<Vec<Uid>> {
    let (u, m, key) = (user.0, mailbox.0, key.clone());
    s.read(move |r| {
        r.mbox(u, m)?;
        // The two flags with their own index are answered by it alone (SEARCH UNSEEN /
        // DELETED), without reading any message.
        match &key {
            SearchKey::NoFlag(f) if f.eq_ignore_ascii_case("\\Seen") => {
                return Ok(read_uid_keys(&r.unseen, u, m)?
                    .into_iter()
                    .map(Uid)
                    .collect());
            }
            SearchKey::Flag(f) if f.eq_ignore_ascii_case("\\Deleted") => {
                return Ok(read_uid_keys(&r.deleted, u, m)?
                    .into_iter()
                    .map(Uid)
                    .collect());
            }
            _ => {}
        }
        let with_index = search::needs_index(&key);
        // Trigrams every match holds narrow by the filters in one pass; otherwise the key's
        // own plan (flag postings, OR of needles) is followed.
        let narrowed = match search::required_grams(&key) {
            Some(grams) => Some(read_bloom_matches(&r.search_bloom, u, m, &grams)?),
            None => search::candidates(&key, &mut |p| match p {
                Posting::Gram(g) => read_bloom_matches(&r.search_bloom, u, m, &BTreeSet::from([g])),
                Posting::Unseen => read_uid_keys(&r.unseen, u, m),
                Posting::Deleted => read_uid_keys(&r.deleted, u, m),
            })?,
        };
        let msgs = match narrowed {
            None => read_msgs_in(&r.messages, u, m, None)?,
            Some(uids) => {
                let mut msgs = Vec::with_capacity(uids.len());
                for uid in uids {
                    if let Some(msg) = read_msg(&r.messages, u, m, uid)? {
                        msgs.push((uid, msg));
                    }
                }
                msgs
            }
        };
        let mut out = Vec::new();
        for (uid, msg) in msgs {
            let index: Option<SearchIndex> = if with_index {
                match read_bytes(&r.search_index, u, m, uid)? {
                    Some(b) => Some(decode(&b)?),
                    None => Some(SearchIndex::default()),
                }
            } else {
                None
            };
            let c = Candidate {
                uid: Uid(uid),
                modseq: ModSeq(msg.modseq),
                flags: &msg.flags,
                internal_date: msg.date,
                size: msg.size,
                index: index.as_ref(),
            };
            if search::matches(&key, &c) {
                out.push(Uid(uid));
            }
        }
        Ok(out)
    })
    .await
}

pub(super) async fn search_indexed(
    s: &EmbeddedStore,
    user: UserId,
    mailbox: MailboxId,
    key: &SearchKey,
    projection: &IndexProjection,
) -> MetaResult<Vec<IndexedMessage>> {
    let (u, m, key, projection) = (user.0, mailbox.0, key.clone(), projection.clone());
    s.read(move |r| {
        r.mbox(u, m)?;
        let mut out = Vec::new();
        for (uid, msg) in read_msgs_in(&r.messages, u, m, None)? {
            let index: SearchIndex = match read_bytes(&r.search_index, u, m, uid)? {
                Some(b) => decode(&b)?,
                None => SearchIndex::default(),
            };
            let c = Candidate {
                uid: Uid(uid),
                modseq: ModSeq(msg.modseq),
                flags: &msg.flags,
                internal_date: msg.date,
                size: msg.size,
                index: Some(&index),
            };
            if search::matches(&key, &c) {
                out.push(IndexedMessage {
                    uid: Uid(uid),
                    size: msg.size,
                    internal_date: msg.date,
                    index: index.project(&projection),
                });
            }
        }
        Ok(out)
    })
    .await
}

/// Builds the trigram filter of every stored message once, for a database written before they
/// existed; later opens find the `META` marker and skip the walk.
pub(super) fn build_search_blooms(w: &mut W<'_>) -> MetaResult<()> {
    if w.meta.get(SEARCH_BLOOM_READY).map_err(db_err)?.is_some() {
        return Ok(());
    }
    let mut rows = Vec::new();
    for item in w.search_index.iter().map_err(db_err)? {
        let (k, v) = item.map_err(db_err)?;
        rows.push((k.value(), stored_bloom(v.value())?));
    }
    for (key, bloom) in rows {
        w.search_bloom
            .insert(key, bloom.as_slice())
            .map_err(db_err)?;
    }
    w.meta.insert(SEARCH_BLOOM_READY, 1).map_err(db_err)?;
    Ok(())
}
