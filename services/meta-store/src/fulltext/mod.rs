//! The full-text index seen from the metadata stores: the queue of search texts not yet in
//! the index, how SEARCH combines the index's answers with that queue, and the indexer that
//! drains it.
//!
//! The index itself is `yubin-text-index` (tantivy, one index per user on local disk, published
//! to object storage as immutable files). A store keeps, per message not yet indexed, the search
//! text computed at delivery (or, for a copy of an indexed message, a reference to its source),
//! and per user the generation of the published index that holds every other message. SEARCH
//! reads both in one step (one Redis script, one redb transaction), asks the index for at least
//! that generation and evaluates queued messages from their text: answers are exact whatever the
//! indexer's lag, and stay exact while it is down (RFC 3501 §6.4.4 asks for exact substring
//! matches).

mod indexer;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub use indexer::{
    BodyText, IndexQueue, IndexWork, Indexer, IndexerSettings, Nudge, QueuedMessage, Removal,
};
use yubin_meta_api::{
    IndexProjection, MailboxId, MetaError, MetaResult, SearchIndex, SearchKey, Uid, UserId,
};
pub use yubin_text_index::Generation;
use yubin_text_index::{LeafHits, TextIndexError, TextIndexes};

/// What a store needs to answer text searches from the index and to have it kept up: the
/// node's indexes and the handle that wakes the indexer after a write.
#[derive(Clone)]
pub struct FullText {
    pub(crate) indexes: Arc<TextIndexes>,
    pub(crate) nudge: Nudge,
}

impl FullText {
    pub fn new(indexes: Arc<TextIndexes>, nudge: Nudge) -> FullText {
        FullText { indexes, nudge }
    }
}

/// A store's queued search text of one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Queued {
    /// The text computed at delivery.
    Text(SearchIndex),
    /// A copy of a message that was already indexed when it was copied: its text is that
    /// message's document.
    CopyOf(MailboxId, Uid),
}

/// The stored form of a reference (see the Redis prelude's `index_forget`): `@<mailbox> <uid>`.
pub fn copy_reference(mailbox: MailboxId, uid: Uid) -> String {
    format!("@{} {}", mailbox.0, uid.0)
}

/// First byte of queued search text in the binary form (postcard): never `@` (a copy reference)
/// nor `{` (the JSON text of earlier releases, still read).
const BINARY_TEXT_TAG: u8 = 0x01;

/// The queued form of a message's search text: [`BINARY_TEXT_TAG`], then the text as postcard.
/// Binary, because JSON escaping of tens of kilobytes of body text per message, and parsing it
/// back in the indexer, cost more CPU than the rest of an APPEND's metadata work.
pub fn encode_queued(index: &SearchIndex) -> MetaResult<Vec<u8>> {
    let mut out = vec![BINARY_TEXT_TAG];
    postcard::to_io(index, &mut out)
        .map_err(|e| MetaError::Internal(format!("encoding search text: {e}")))?;
    Ok(out)
}

/// Decodes a queued entry: text (binary, or the JSON of earlier releases), a copy reference,
/// or empty (a message stored by a release that kept no text for copies: it has none).
pub fn parse_queued(raw: &[u8]) -> MetaResult<Queued> {
    if raw.is_empty() {
        return Ok(Queued::Text(SearchIndex::default()));
    }
    if let Some(rest) = raw.strip_prefix(&[BINARY_TEXT_TAG]) {
        return postcard::from_bytes(rest)
            .map(Queued::Text)
            .map_err(|e| MetaError::Internal(format!("corrupt queued search text: {e}")));
    }
    if let Some(rest) = raw.strip_prefix(b"@") {
        let bad = || MetaError::Internal("corrupt copy reference in the search queue".into());
        let rest = std::str::from_utf8(rest).map_err(|_| bad())?;
        let (m, u) = rest.split_once(' ').ok_or_else(bad)?;
        return Ok(Queued::CopyOf(
            MailboxId(m.parse().map_err(|_| bad())?),
            Uid(u.parse().map_err(|_| bad())?),
        ));
    }
    serde_json::from_slice(raw)
        .map(Queued::Text)
        .map_err(|e| MetaError::Internal(format!("corrupt queued search text: {e}")))
}

pub(crate) fn index_err(e: TextIndexError) -> MetaError {
    match e {
        TextIndexError::Unavailable(m) => MetaError::Unavailable(format!("full-text index: {m}")),
        other => MetaError::Internal(format!("full-text index: {other}")),
    }
}

/// The index's answers for the text leaves of one search key (see
/// [`yubin_text_index::text_leaves`]), used by [`crate::search::matches`] for messages that are
/// not queued.
#[derive(Debug)]
pub struct TextAnswers<'k> {
    leaves: Vec<&'k SearchKey>,
    hits: LeafHits,
}

impl<'k> TextAnswers<'k> {
    /// Whether `leaf` (a node of the key these answers are for) holds for message `uid`.
    pub fn holds(&self, leaf: &SearchKey, uid: Uid) -> bool {
        self.leaves
            .iter()
            .position(|l| std::ptr::eq(*l, leaf))
            .and_then(|i| self.hits.hits.get(i))
            .is_some_and(|hits| hits.contains(uid.0))
    }
}

/// The texts a search evaluates itself: the queued messages of one mailbox, references
/// resolved.
pub type QueuedTexts = HashMap<Uid, SearchIndex>;

/// Everything a search of `mailbox` needs beyond the store's own columns: the index's answers
/// for the messages in generation `generation` (or later), and the queued messages' texts.
/// `queued` is what the store read in the same step as `generation`.
pub(crate) async fn text_view<'k>(
    full_text: Option<&FullText>,
    user: UserId,
    mailbox: MailboxId,
    key: &'k SearchKey,
    generation: Generation,
    queued: Vec<(Uid, Queued)>,
) -> MetaResult<(Option<TextAnswers<'k>>, QueuedTexts)> {
    // Nothing was ever indexed: every message is queued, and the index is not asked (it may
    // not even be reachable).
    if generation == Generation(0) {
        return Ok((None, resolve_without_index(queued)?));
    }
    let Some(ft) = full_text else {
        return Err(MetaError::Unavailable(
            "messages are indexed but this node has no full-text index configured".into(),
        ));
    };
    let hits = ft
        .indexes
        .search(user, generation, mailbox, key)
        .await
        .map_err(index_err)?;
    let texts = resolve(ft, user, generation, mailbox, queued).await?;
    let answers = TextAnswers {
        leaves: yubin_text_index::text_leaves(key),
        hits,
    };
    Ok((Some(answers), texts))
}

fn resolve_without_index(queued: Vec<(Uid, Queued)>) -> MetaResult<QueuedTexts> {
    queued
        .into_iter()
        .map(|(uid, q)| match q {
            Queued::Text(ix) => Ok((uid, ix)),
            Queued::CopyOf(..) => Err(MetaError::Unavailable(
                "a copied message's text is in the full-text index, which this node lacks".into(),
            )),
        })
        .collect()
}

/// The queued messages' texts, copy references read from the index. The index may be newer
/// than `generation` (another search or the indexer moved it on), and each lookup may see a
/// newer generation than the one before; generations only move forward, and the indexer adds a
/// copy no later than it forgets the copy's source. So the copy's own document is looked up,
/// then its source's, then the copy's again: one of the three finds the text unless the copy
/// itself was expunged meanwhile (then it matches nothing, as an expunged message should).
pub(crate) async fn resolve(
    ft: &FullText,
    user: UserId,
    generation: Generation,
    mailbox: MailboxId,
    queued: Vec<(Uid, Queued)>,
) -> MetaResult<QueuedTexts> {
    let mut out = QueuedTexts::with_capacity(queued.len());
    let mut refs: Vec<(Uid, MailboxId, Uid)> = Vec::new();
    for (uid, q) in queued {
        match q {
            Queued::Text(ix) => {
                out.insert(uid, ix);
            }
            Queued::CopyOf(m, u) => refs.push((uid, m, u)),
        }
    }
    if refs.is_empty() {
        return Ok(out);
    }
    let own = |out: &QueuedTexts, refs: &[(Uid, MailboxId, Uid)]| -> Vec<Uid> {
        refs.iter()
            .map(|r| r.0)
            .filter(|u| !out.contains_key(u))
            .collect()
    };
    copies_from_index(ft, user, generation, mailbox, &own(&out, &refs), &mut out).await?;
    let mut by_source: BTreeMap<MailboxId, Vec<(Uid, Uid)>> = BTreeMap::new();
    for &(uid, m, u) in &refs {
        if !out.contains_key(&uid) {
            by_source.entry(m).or_default().push((uid, u));
        }
    }
    for (m, pairs) in by_source {
        let sources: Vec<Uid> = pairs.iter().map(|p| p.1).collect();
        let found: HashMap<Uid, SearchIndex> = ft
            .indexes
            .documents(user, generation, m, &sources, None)
            .await
            .map_err(index_err)?
            .into_iter()
            .collect();
        for (uid, source) in pairs {
            if let Some(ix) = found.get(&source) {
                out.insert(uid, ix.clone());
            }
        }
    }
    let missing = own(&out, &refs);
    copies_from_index(ft, user, generation, mailbox, &missing, &mut out).await?;
    let gone = own(&out, &refs);
    if !gone.is_empty() {
        tracing::debug!(
            user = user.0,
            mailbox = mailbox.0,
            copies = gone.len(),
            "copied messages found in neither the index nor the queue (expunged meanwhile)"
        );
    }
    Ok(out)
}

/// Adds to `out` the indexed documents of `uids` (copies indexed under their own key).
async fn copies_from_index(
    ft: &FullText,
    user: UserId,
    generation: Generation,
    mailbox: MailboxId,
    uids: &[Uid],
    out: &mut QueuedTexts,
) -> MetaResult<()> {
    if uids.is_empty() {
        return Ok(());
    }
    for (uid, ix) in ft
        .indexes
        .documents(user, generation, mailbox, uids, None)
        .await
        .map_err(index_err)?
    {
        out.insert(uid, ix);
    }
    Ok(())
}

/// The stored texts of indexed messages `uids` of `mailbox`, cut to `projection` (SORT, THREAD
/// and PREVIEW read them; RFC 5256, RFC 8970).
pub(crate) async fn indexed_documents(
    full_text: Option<&FullText>,
    user: UserId,
    generation: Generation,
    mailbox: MailboxId,
    uids: &[Uid],
    projection: &IndexProjection,
) -> MetaResult<HashMap<Uid, SearchIndex>> {
    if uids.is_empty() {
        return Ok(HashMap::new());
    }
    let Some(ft) = full_text else {
        return Err(MetaError::Unavailable(
            "messages are indexed but this node has no full-text index configured".into(),
        ));
    };
    Ok(ft
        .indexes
        .documents(user, generation, mailbox, uids, Some(projection))
        .await
        .map_err(index_err)?
        .into_iter()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use yubin_meta_api::InternalDate;

    fn text() -> SearchIndex {
        SearchIndex {
            headers: vec![("Subject".into(), "\"quoted\" \\ and 日本語".into())],
            sent_date: Some(InternalDate {
                unix_seconds: 1_700_000_000,
                tz_offset_minutes: -300,
            }),
            body_text: "line one\r\nline two {not json}".into(),
        }
    }

    /// Queued text round-trips in the binary form, text queued as JSON by earlier releases is
    /// still read, and neither is mistaken for a copy reference.
    #[test]
    fn queued_text_is_read_in_both_forms() {
        let binary = encode_queued(&text()).unwrap();
        assert_eq!(binary[0], BINARY_TEXT_TAG);
        assert!(matches!(parse_queued(&binary).unwrap(), Queued::Text(t) if t == text()));
        let json = serde_json::to_vec(&text()).unwrap();
        assert!(matches!(parse_queued(&json).unwrap(), Queued::Text(t) if t == text()));
        assert!(binary.len() < json.len());
        assert!(matches!(
            parse_queued(b"@7 42").unwrap(),
            Queued::CopyOf(MailboxId(7), Uid(42))
        ));
        assert!(parse_queued(&binary[..binary.len() - 3]).is_err());
    }
}
