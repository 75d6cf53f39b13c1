//! SEARCH on Redis: one script reads the columns the key needs, the mailbox's queued search
//! texts and the index generation holding every other message; the full-text index answers
//! the text keys for those (see `crate::fulltext`).

use redis::Value;
use yubin_meta_api::{
    IndexProjection, IndexedMessage, InternalDate, MailboxId, MetaResult, ModSeq, SearchIndex,
    SearchKey, Uid, UserId,
};

use super::{
    RedisStore, bad_reply, decode_record, next, parse_uids, split_flags, v_array, v_bytes, v_num,
    v_string,
};
use crate::fulltext::{self, Generation, Queued};
use crate::search::{self, Candidate};

/// One message that matched a scanning search, with the columns that were loaded.
pub(super) struct ScannedMessage {
    pub(super) uid: Uid,
    pub(super) internal_date: InternalDate,
    pub(super) size: u64,
    /// The queued search text of a message not yet in the full-text index.
    pub(super) queued: Option<SearchIndex>,
}

/// Queued messages with more than this many entries make a search wake the indexer (a write
/// already did, unless the indexer was down or the data predates it).
const NUDGE_AT_QUEUED: usize = 64;

/// Default bytes of queued search text one script call reads (`search`, then `search_texts`
/// for the rest). A message's queued text is at most ~320 KiB (the summary's caps), the
/// indexer's lag is not bounded (it may be down, or a tenant may append faster than it
/// indexes), so without a step one SEARCH's reply, and the time Redis spends building it,
/// would grow with that lag.
pub(super) const SEARCH_TEXT_STEP_BYTES: usize = 1 << 20;

/// UIDs named in one `search_texts` call (its arguments).
const SEARCH_TEXT_STEP_UIDS: usize = 1000;

impl RedisStore {
    /// SEARCH answered from a flag index (`unseen` / `deleted`) without a scan.
    pub(super) async fn search_index_mode(
        &self,
        user: UserId,
        mailbox: MailboxId,
        mode: &str,
    ) -> MetaResult<Vec<Uid>> {
        let mut inv = self.call(&self.scripts.search, user);
        inv.arg(mailbox.0)
            .arg(mode)
            .arg("0")
            .arg("0")
            .arg("0")
            .arg("0");
        let mut cols = v_array(self.invoke_read(&inv).await?)?.into_iter();
        parse_uids(next(&mut cols)?)
    }

    /// The messages matching `key` in one script call that loads only the columns in `need`
    /// (which must include what `key` reads, see [`search::needs`]), with their queued texts;
    /// the generation of the full-text index the text keys are answered from.
    pub(super) async fn scan_matching(
        &self,
        user: UserId,
        mailbox: MailboxId,
        key: &SearchKey,
        need: search::Needs,
    ) -> MetaResult<(Vec<ScannedMessage>, Generation)> {
        let bit = |b: bool| if b { "1" } else { "0" };
        let mut inv = self.call(&self.scripts.search, user);
        inv.arg(mailbox.0)
            .arg("scan")
            .arg(bit(need.flags))
            .arg(bit(need.record))
            .arg(bit(need.modseq))
            .arg(bit(need.index))
            .arg(self.search_text_step_bytes);
        let mut cols = v_array(self.invoke_read(&inv).await?)?.into_iter();
        let uids = parse_uids(next(&mut cols)?)?;
        // Each column is absent (nil) or has one entry per UID.
        let mut column = |name: &str| -> MetaResult<Option<Vec<Value>>> {
            match cols.next() {
                None | Some(Value::Nil) => Ok(None),
                Some(v) => {
                    let c = v_array(v)?;
                    if c.len() == uids.len() {
                        Ok(Some(c))
                    } else {
                        Err(bad_reply(&format!(
                            "search column {name} has the wrong length"
                        )))
                    }
                }
            }
        };
        let flags = column("flags")?;
        let records = column("records")?;
        let modseqs = column("modseqs")?;
        let queued = match cols.next() {
            None | Some(Value::Nil) => None,
            Some(v) => Some(parse_queued_pairs(v)?),
        };
        let mut generation = Generation(v_num(next(&mut cols)?)?);
        let queued = match queued {
            Some(pairs) => {
                let (queued, later) = self.rest_of_queued(user, mailbox, pairs).await?;
                if let Some(later) = later {
                    generation = later;
                }
                Some(queued)
            }
            None => None,
        };
        let (answers, mut texts) = match queued {
            Some(queued) => {
                if queued.len() > NUDGE_AT_QUEUED
                    && let Some(ft) = &self.full_text
                {
                    ft.nudge.nudge(user);
                }
                let (answers, texts) = fulltext::text_view(
                    self.full_text.as_ref(),
                    user,
                    mailbox,
                    key,
                    generation,
                    queued,
                )
                .await?;
                (answers, texts)
            }
            None => (None, Default::default()),
        };
        let (mut flags, mut records, mut modseqs) = (
            flags.map(Vec::into_iter),
            records.map(Vec::into_iter),
            modseqs.map(Vec::into_iter),
        );
        let no_date = InternalDate {
            unix_seconds: 0,
            tz_offset_minutes: 0,
        };
        let mut out = Vec::new();
        for uid in uids {
            let flags = match flags.as_mut() {
                Some(it) => split_flags(&v_string(next(it)?)?),
                None => Vec::new(),
            };
            let (internal_date, size) = match records.as_mut() {
                Some(it) => {
                    let r = decode_record(&v_string(next(it)?)?)?;
                    (r.date, r.size)
                }
                None => (no_date, 0),
            };
            let modseq = match modseqs.as_mut() {
                Some(it) => ModSeq(v_num(next(it)?)?),
                None => ModSeq(0),
            };
            let queued = texts.remove(&uid);
            let c = Candidate {
                uid,
                modseq,
                flags: &flags,
                internal_date,
                size,
                index: queued.as_ref(),
                text: if queued.is_none() {
                    answers.as_ref()
                } else {
                    None
                },
            };
            if search::matches(key, &c) {
                out.push(ScannedMessage {
                    uid,
                    internal_date,
                    size,
                    queued,
                });
            }
        }
        Ok((out, generation))
    }

    /// SORT / THREAD / PREVIEW's search: the matches with the parts of their texts `projection`
    /// names, queued ones from the queue, the others from the full-text index.
    pub(super) async fn search_projected(
        &self,
        user: UserId,
        mailbox: MailboxId,
        key: &SearchKey,
        projection: &IndexProjection,
    ) -> MetaResult<Vec<IndexedMessage>> {
        let need = search::Needs {
            record: true,
            index: true,
            ..search::needs(key)
        };
        let (found, generation) = self.scan_matching(user, mailbox, key, need).await?;
        let indexed: Vec<Uid> = found
            .iter()
            .filter(|m| m.queued.is_none())
            .map(|m| m.uid)
            .collect();
        let mut docs = fulltext::indexed_documents(
            self.full_text.as_ref(),
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
            .filter_map(|m| {
                let index = match m.queued {
                    Some(ix) => ix.project(projection),
                    None => docs.remove(&m.uid)?,
                };
                Some(IndexedMessage {
                    uid: m.uid,
                    size: m.size,
                    internal_date: m.internal_date,
                    index,
                })
            })
            .collect())
    }
}

impl RedisStore {
    /// The queued texts of `pairs` (the scan's list: a text, or `None` where the scan's budget
    /// ran out), the missing ones read `search_text_step_bytes` at a time. A message that left
    /// the queue between the scan and its read was indexed, or expunged, meanwhile: it is read
    /// from the index as a reference to itself, and the search then asks the index generation
    /// returned here (`Some`), which holds it and everything the scan's generation held (a
    /// message leaves that only by being expunged, and then it rightly matches nothing).
    async fn rest_of_queued(
        &self,
        user: UserId,
        mailbox: MailboxId,
        pairs: Vec<(Uid, Option<Vec<u8>>)>,
    ) -> MetaResult<(Vec<(Uid, Queued)>, Option<Generation>)> {
        let mut out = Vec::with_capacity(pairs.len());
        let mut unread = Vec::new();
        for (uid, raw) in pairs {
            match raw {
                Some(raw) => out.push((uid, fulltext::parse_queued(&raw)?)),
                None => unread.push(uid),
            }
        }
        let mut later = None;
        let mut rest = unread.as_slice();
        while !rest.is_empty() {
            let step = &rest[..rest.len().min(SEARCH_TEXT_STEP_UIDS)];
            let mut inv = self.call(&self.scripts.search_texts, user);
            inv.arg(mailbox.0).arg(self.search_text_step_bytes);
            for uid in step {
                inv.arg(uid.0);
            }
            let mut reply = v_array(self.invoke_read(&inv).await?)?.into_iter();
            let generation = Generation(v_num(next(&mut reply)?)?);
            let texts = v_array(next(&mut reply)?)?;
            let read = texts.len();
            if read == 0 || read > step.len() {
                return Err(bad_reply("search_texts read no text"));
            }
            for (&uid, text) in step.iter().zip(texts) {
                match text {
                    // Nothing was ever indexed: the message can only have been expunged.
                    Value::Nil if generation == Generation(0) => {}
                    Value::Nil => {
                        later = Some(generation);
                        out.push((uid, Queued::CopyOf(mailbox, uid)));
                    }
                    v => out.push((uid, fulltext::parse_queued(&v_bytes(v)?)?)),
                }
            }
            rest = &rest[read..];
        }
        Ok((out, later))
    }
}

/// The script's flat (uid, queued text) list; `None` for a text beyond the script's budget.
fn parse_queued_pairs(v: Value) -> MetaResult<Vec<(Uid, Option<Vec<u8>>)>> {
    let flat = v_array(v)?;
    if flat.len() % 2 != 0 {
        return Err(bad_reply("odd queued search text list"));
    }
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(uid), Some(raw)) = (it.next(), it.next()) {
        let uid = Uid(v_num(uid)?);
        out.push((
            uid,
            match raw {
                Value::Nil => None,
                raw => Some(v_bytes(raw)?),
            },
        ));
    }
    Ok(out)
}
