//! Answering one leaf from a searcher, exactly (see [`crate::doc`] for the terms):
//!
//! - a needle of three or more characters (lower-cased) is a substring of a value iff its
//!   trigrams occur at consecutive positions of that value: a phrase over trigrams at offsets
//!   0, 3, 6, … and the last one, which pin down every character of the needle; the one-unused-
//!   position gap between values keeps a phrase inside one value;
//! - a needle of one or two characters is a substring iff some term starts with it (the bigram
//!   and unigram at each value's end make that hold at the end too): the union of the postings of
//!   the terms in its prefix range of the term dictionary;
//! - an empty needle: every message (BODY, TEXT) or every message with the field (HEADER);
//! - the sent-date keys: a range over the indexed day number.
//!
//! Two cases are answered by a superset that is then checked with [`crate::leaf_matches`]
//! against the stored fields: needles longer than [`MAX_NEEDLE_CHARS`] (only their start is
//! looked up, which bounds the query's work) and header names longer than the term key
//! ([`crate::doc::MAX_NAME_KEY_BYTES`]).

use std::ops::Bound;

use roaring::RoaringBitmap;
use tantivy::query::{
    AllQuery, BooleanQuery, EnableScoring, PhraseQuery, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::{DocAddress, DocSet, Searcher, SegmentReader, TERMINATED, TantivyDocument, Term};
use yubin_meta_api::{IndexProjection, MailboxId, SearchIndex, SearchKey, Uid};

use crate::doc::{Fields, Part, StoredHead, name_prefix};
use crate::semantics::leaf_matches;

/// Longest needle (in characters, lower-cased) looked up whole; a longer one is looked up by
/// its first this many characters and the candidates verified.
pub const MAX_NEEDLE_CHARS: usize = 256;

/// How one leaf is looked up.
enum Lookup {
    /// The documents a tantivy query matches.
    Query(Box<dyn Query>),
    /// The documents holding some term of `field` that starts with `prefix`.
    Prefix { field: Field, prefix: Vec<u8> },
}

struct Plan {
    lookups: Vec<Lookup>,
    /// The lookups give a superset: check each candidate with `leaf_matches`.
    verify: bool,
}

/// Lookups of a needle in `field`, whose terms carry `prefix`; the bool says whether the
/// needle was cut (the answer is then a superset).
fn needle_lookup(field: Field, prefix: &str, needle: &str) -> (Lookup, bool) {
    let lower = needle.to_lowercase();
    let starts: Vec<usize> = lower.char_indices().map(|(i, _)| i).collect();
    let cut = starts.len() > MAX_NEEDLE_CHARS;
    let (lower, starts) = if cut {
        let end = starts[MAX_NEEDLE_CHARS];
        (
            lower[..end].to_string(),
            starts[..MAX_NEEDLE_CHARS].to_vec(),
        )
    } else {
        (lower, starts)
    };
    let n = starts.len();
    debug_assert!(n > 0, "empty needles are answered without lookups");
    if n < 3 {
        let mut p = prefix.as_bytes().to_vec();
        p.extend_from_slice(lower.as_bytes());
        return (Lookup::Prefix { field, prefix: p }, cut);
    }
    let gram = |at: usize| {
        let end = starts.get(at + 3).copied().unwrap_or(lower.len());
        Term::from_field_text(field, &format!("{prefix}{}", &lower[starts[at]..end]))
    };
    let mut offsets: Vec<usize> = (0..n - 2).step_by(3).collect();
    if offsets.last() != Some(&(n - 3)) {
        offsets.push(n - 3);
    }
    let query: Box<dyn Query> = if offsets.len() == 1 {
        Box::new(TermQuery::new(gram(0), IndexRecordOption::Basic))
    } else {
        Box::new(PhraseQuery::new_with_offset(
            offsets.into_iter().map(|o| (o, gram(o))).collect(),
        ))
    };
    (Lookup::Query(query), cut)
}

fn plan(f: &Fields, leaf: &SearchKey) -> Plan {
    // The mailbox filter every lookup is intersected with does the work.
    let everything = || Lookup::Query(Box::new(AllQuery));
    let range = |lo: Bound<i32>, hi: Bound<i32>| {
        let t = |b: Bound<i32>| b.map(|d| Term::from_field_i64(f.sent, i64::from(d)));
        Plan {
            lookups: vec![Lookup::Query(Box::new(RangeQuery::new(t(lo), t(hi))))],
            verify: false,
        }
    };
    match leaf {
        SearchKey::Header(name, value) => {
            let (prefix, cut_name) = name_prefix(name);
            if value.is_empty() {
                let term = Term::from_field_text(f.hname, &prefix);
                return Plan {
                    lookups: vec![Lookup::Query(Box::new(TermQuery::new(
                        term,
                        IndexRecordOption::Basic,
                    )))],
                    verify: cut_name,
                };
            }
            let (lookup, cut) = needle_lookup(f.hval, &prefix, value);
            Plan {
                lookups: vec![lookup],
                verify: cut || cut_name,
            }
        }
        SearchKey::Body(s) | SearchKey::Text(s) if s.is_empty() => Plan {
            lookups: vec![everything()],
            verify: false,
        },
        SearchKey::Body(s) => {
            let (lookup, verify) = needle_lookup(f.body, "", s);
            Plan {
                lookups: vec![lookup],
                verify,
            }
        }
        SearchKey::Text(s) => {
            let (in_body, verify) = needle_lookup(f.body, "", s);
            let (in_lines, _) = needle_lookup(f.line, "", s);
            Plan {
                lookups: vec![in_body, in_lines],
                verify,
            }
        }
        SearchKey::SentBefore(d) => range(Bound::Unbounded, Bound::Excluded(*d)),
        SearchKey::SentOn(d) => range(Bound::Included(*d), Bound::Included(*d)),
        SearchKey::SentSince(d) => range(Bound::Included(*d), Bound::Unbounded),
        _ => Plan {
            lookups: Vec::new(),
            verify: false,
        },
    }
}

/// The UIDs of `mailbox` whose message satisfies `leaf` (a leaf of [`crate::text_leaves`];
/// anything else matches nothing).
pub(crate) fn leaf_hits(
    searcher: &Searcher,
    f: &Fields,
    mailbox: MailboxId,
    leaf: &SearchKey,
) -> tantivy::Result<RoaringBitmap> {
    let plan = plan(f, leaf);
    let mut hits = RoaringBitmap::new();
    let in_mailbox = Term::from_field_u64(f.mbox, mailbox.0);
    for lookup in plan.lookups {
        match lookup {
            Lookup::Query(q) => {
                let q = BooleanQuery::intersection(vec![
                    Box::new(TermQuery::new(in_mailbox.clone(), IndexRecordOption::Basic)),
                    q,
                ]);
                let weight = q.weight(EnableScoring::disabled_from_searcher(searcher))?;
                for seg in searcher.segment_readers() {
                    let uids = seg.fast_fields().u64("uid")?;
                    let mut err = None;
                    weight.for_each_no_score(seg, &mut |docs| {
                        for &d in docs {
                            if seg.is_deleted(d) {
                                continue;
                            }
                            match uids.first(d).map(u32::try_from) {
                                Some(Ok(uid)) => {
                                    hits.insert(uid);
                                }
                                _ => err = Some(corrupt("document without a uid")),
                            }
                        }
                    })?;
                    if let Some(e) = err {
                        return Err(e);
                    }
                }
            }
            Lookup::Prefix { field, prefix } => {
                for seg in searcher.segment_readers() {
                    prefix_hits(seg, field, &prefix, mailbox, &mut hits)?;
                }
            }
        }
    }
    if plan.verify {
        let uids: Vec<Uid> = hits.iter().map(Uid).collect();
        let docs = load(searcher, f, mailbox, &uids, None)?;
        hits = docs
            .iter()
            .filter(|(_, ix)| leaf_matches(leaf, ix))
            .map(|(uid, _)| uid.0)
            .collect();
    }
    Ok(hits)
}

fn corrupt(what: &str) -> tantivy::TantivyError {
    tantivy::TantivyError::InternalError(format!("text index: {what}"))
}

/// Adds the UIDs of `mailbox`'s live documents holding a term of `field` starting with
/// `prefix`. Terms are UTF-8, so no term has a 0xFF byte: `prefix ‖ 0xFF` bounds the range.
fn prefix_hits(
    seg: &SegmentReader,
    field: Field,
    prefix: &[u8],
    mailbox: MailboxId,
    hits: &mut RoaringBitmap,
) -> tantivy::Result<()> {
    let inverted = seg.inverted_index(field)?;
    let mbox = seg.fast_fields().u64("mbox")?;
    let uids = seg.fast_fields().u64("uid")?;
    let mut upper = prefix.to_vec();
    upper.push(0xFF);
    let mut terms = inverted
        .terms()
        .range()
        .ge(prefix)
        .lt(&upper)
        .into_stream()?;
    while terms.advance() {
        let mut postings =
            inverted.read_postings_from_terminfo(terms.value(), IndexRecordOption::Basic)?;
        let mut d = postings.doc();
        while d != TERMINATED {
            if !seg.is_deleted(d) && mbox.first(d) == Some(mailbox.0) {
                let uid = uids
                    .first(d)
                    .and_then(|u| u32::try_from(u).ok())
                    .ok_or_else(|| corrupt("document without a uid"))?;
                hits.insert(uid);
            }
            d = postings.advance();
        }
    }
    Ok(())
}

/// The live document of `key` (at most one: a replaced message's old documents are deleted in
/// the same commit).
fn find(searcher: &Searcher, f: &Fields, key: &Term) -> tantivy::Result<Option<DocAddress>> {
    for (ord, seg) in searcher.segment_readers().iter().enumerate() {
        let inverted = seg.inverted_index(f.key)?;
        if let Some(mut postings) = inverted.read_postings(key, IndexRecordOption::Basic)? {
            let mut d = postings.doc();
            while d != TERMINATED {
                if !seg.is_deleted(d) {
                    let ord = u32::try_from(ord).map_err(|_| corrupt("too many segments"))?;
                    return Ok(Some(DocAddress::new(ord, d)));
                }
                d = postings.advance();
            }
        }
    }
    Ok(None)
}

/// The stored search index of each of `uids` in `mailbox` that is indexed (others are left
/// out), projected as [`SearchIndex::project`] does; `None` for the whole index. A projection
/// without body text reads only head documents.
pub(crate) fn load(
    searcher: &Searcher,
    f: &Fields,
    mailbox: MailboxId,
    uids: &[Uid],
    projection: Option<&IndexProjection>,
) -> tantivy::Result<Vec<(Uid, SearchIndex)>> {
    let want_body = projection.is_none_or(|p| p.body_chars > 0);
    let mut out = Vec::with_capacity(uids.len());
    for &uid in uids {
        let Some(head) = find(searcher, f, &f.key_term(mailbox, uid, Part::Head))? else {
            continue;
        };
        let doc: TantivyDocument = searcher.doc(head)?;
        let bytes = doc
            .get_first(f.head_src)
            .and_then(|v| v.as_bytes())
            .ok_or_else(|| corrupt("head without stored fields"))?;
        let stored: StoredHead = serde_json::from_slice(bytes)
            .map_err(|e| corrupt(&format!("stored header fields: {e}")))?;
        let mut ix = SearchIndex {
            headers: stored.headers,
            sent_date: stored.sent_date,
            body_text: String::new(),
        };
        let body = if want_body {
            find(searcher, f, &f.key_term(mailbox, uid, Part::Body))?
        } else {
            None
        };
        if let Some(body) = body {
            let doc: TantivyDocument = searcher.doc(body)?;
            if let Some(text) = doc.get_first(f.body_src).and_then(|v| v.as_str()) {
                ix.body_text = text.to_string();
            }
        }
        out.push((
            uid,
            match projection {
                Some(p) => ix.project(p),
                None => ix,
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_phrases_cover_every_character() {
        let (_, f) = Fields::schema();
        for (needle, cut) in [("abcd", false), ("abcdefg", false)] {
            let (lookup, was_cut) = needle_lookup(f.body, "", needle);
            assert_eq!(was_cut, cut);
            let Lookup::Query(q) = lookup else {
                panic!("phrase expected");
            };
            let mut terms = Vec::new();
            q.query_terms(&mut |t, _| terms.push(t.value().as_str().unwrap().to_string()));
            terms.sort();
            let want: Vec<&str> = if needle == "abcd" {
                vec!["abc", "bcd"]
            } else {
                vec!["abc", "def", "efg"]
            };
            assert_eq!(terms, want);
        }
        let (_, cut) = needle_lookup(f.body, "", &"x".repeat(MAX_NEEDLE_CHARS + 1));
        assert!(cut);
    }
}
