//! What bytes of each message a FETCH needs, and reading them ahead: every message's range is
//! read in a task of its own, up to `ImapConfig::fetch_prefetch` messages ahead of the one being
//! written, so S3 round trips overlap instead of adding up (issue 10; Dovecot's
//! `mail_prefetch_count` does the same for its object-storage backend).

use crate::out::Reply;
use bytes::Bytes;
use std::ops::Range;
use yubin_blob::{BlobError, BlobStore};
use yubin_imap_proto::{FetchAttribute as A, Section, SectionText};
use yubin_meta_api::{BlobKey, MessageRecord};
use yubin_mime::{SectionWhat, Summary};

/// The bytes of one message read for this FETCH: `data` starts at byte `offset` of the message.
pub(super) struct Loaded {
    pub(super) data: Bytes,
    pub(super) offset: u64,
}

impl Loaded {
    /// Bytes `r` of the message, clamped to what was read (never panics on odd offsets).
    pub(super) fn slice(&self, r: &Range<u64>) -> Bytes {
        let len = self.data.len();
        let end = (r.end.saturating_sub(self.offset) as usize).min(len);
        let start = (r.start.saturating_sub(self.offset) as usize).min(end);
        self.data.slice(start..end)
    }
}

/// Which part and what of it an attribute reads; `None` when it reads no body bytes.
pub(super) fn section_of(a: &A) -> Option<(&[u32], SectionWhat)> {
    match a {
        A::Rfc822 => Some((&[], SectionWhat::Full)),
        A::Rfc822Header => Some((&[], SectionWhat::Header)),
        A::Rfc822Text => Some((&[], SectionWhat::Text)),
        A::BodySection { section, .. } => Some((&section.part, what_of(section))),
        // Decoding needs the part's whole content; a partial applies to the decoded bytes.
        A::Binary { part, .. } | A::BinarySize { part } => Some((part, SectionWhat::Full)),
        _ => None,
    }
}

pub(super) fn what_of(section: &Section) -> SectionWhat {
    match section.text {
        None => SectionWhat::Full,
        Some(SectionText::Header)
        | Some(SectionText::HeaderFields(_))
        | Some(SectionText::HeaderFieldsNot(_)) => SectionWhat::Header,
        Some(SectionText::Text) => SectionWhat::Text,
        Some(SectionText::Mime) => SectionWhat::Mime,
    }
}

/// The byte range of the message an attribute needs: the section's range, narrowed by the
/// partial unless the section is filtered first (HEADER.FIELDS). `None`: the section does not
/// exist.
pub(super) fn needed_range(
    a: &A,
    rec: &MessageRecord,
    summary: Option<&Summary>,
) -> Option<Range<u64>> {
    let (part, what) = section_of(a)?;
    let whole = if part.is_empty() && what == SectionWhat::Full {
        0..rec.size
    } else {
        summary?.section_range(part, what)?
    };
    match a {
        A::BodySection {
            section, partial, ..
        } if !matches!(
            section.text,
            Some(SectionText::HeaderFields(_)) | Some(SectionText::HeaderFieldsNot(_))
        ) =>
        {
            Some(apply_partial(whole, *partial))
        }
        _ => Some(whole),
    }
}

pub(super) fn apply_partial(r: Range<u64>, partial: Option<(u64, u64)>) -> Range<u64> {
    match partial {
        None => r,
        Some((origin, count)) => {
            let start = r.start.saturating_add(origin).min(r.end);
            let end = start.saturating_add(count).min(r.end);
            start..end
        }
    }
}

/// How far FETCH reads bodies ahead of the message it is writing (`ImapConfig::fetch_prefetch`
/// and `fetch_prefetch_max_bytes`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Prefetch {
    /// Messages prepared at once, the one being written included.
    pub(super) messages: usize,
    /// Bodies (the ranges the items need) larger than this are read only when their turn
    /// comes, so what a connection holds ahead is at most `messages` × this.
    pub(super) max_bytes: u64,
}

/// A message's body bytes as [`prepare`] leaves them.
pub(super) enum Body {
    Ready(Result<Loaded, BlobError>),
    /// Too large to read ahead: this range, read when the message is written.
    Later(Range<u64>),
}

/// Decodes `rec`'s summary (when the items need one) and reads the body range the items need,
/// in a task of its own so the read goes on while earlier messages are written. A summary that
/// cannot be decoded is the command's `NO [SERVERBUG]`.
pub(super) async fn prepare<'r>(
    seq: u32,
    rec: &'r MessageRecord,
    blobs: std::sync::Arc<dyn BlobStore>,
    with_summary: bool,
    attrs: &[A],
    prefetch: Prefetch,
) -> (
    u32,
    &'r MessageRecord,
    Result<(Option<Summary>, Body), Reply>,
) {
    (
        seq,
        rec,
        prepare_one(rec, blobs, with_summary, attrs, prefetch).await,
    )
}

async fn prepare_one(
    rec: &MessageRecord,
    blobs: std::sync::Arc<dyn BlobStore>,
    with_summary: bool,
    attrs: &[A],
    prefetch: Prefetch,
) -> Result<(Option<Summary>, Body), Reply> {
    let summary = if with_summary {
        match rec.summary.as_deref().map(Summary::from_bytes) {
            Some(Ok(summary)) => Some(summary),
            Some(Err(e)) => {
                tracing::error!(uid = %rec.uid, error = %e, "unreadable message summary");
                return Err(Reply::no("Internal server error").code("SERVERBUG"));
            }
            None => {
                tracing::error!(uid = %rec.uid, "message summary missing");
                return Err(Reply::no("Internal server error").code("SERVERBUG"));
            }
        }
    } else {
        None
    };
    let Some(span) = needed_span(rec, summary.as_ref(), attrs) else {
        let empty = Loaded {
            data: Bytes::new(),
            offset: 0,
        };
        return Ok((summary, Body::Ready(Ok(empty))));
    };
    if span.end - span.start > prefetch.max_bytes {
        return Ok((summary, Body::Later(span)));
    }
    let (key, size) = (rec.blob.clone(), rec.size);
    let read = tokio::spawn(async move { read_span(blobs.as_ref(), &key, size, span).await });
    let body = read
        .await
        .unwrap_or_else(|e| Err(BlobError::Other(format!("body read task failed: {e}"))));
    Ok((summary, Body::Ready(body)))
}

/// The smallest byte range covering every section asked for: None when no body bytes are
/// needed, a header-only range for header sections.
pub(super) fn needed_span(
    rec: &MessageRecord,
    summary: Option<&Summary>,
    attrs: &[A],
) -> Option<Range<u64>> {
    let mut span: Option<Range<u64>> = None;
    for a in attrs {
        if let Some(r) = needed_range(a, rec, summary) {
            if r.is_empty() {
                continue;
            }
            span = Some(match span {
                None => r,
                Some(s) => s.start.min(r.start)..s.end.max(r.end),
            });
        }
    }
    span
}

/// Reads `span` of the blob `key` (`size` bytes in all): one whole-object GET when the span
/// covers it, a ranged GET otherwise.
pub(super) async fn read_span(
    blobs: &dyn BlobStore,
    key: &BlobKey,
    size: u64,
    span: Range<u64>,
) -> Result<Loaded, BlobError> {
    let data = if span.start == 0 && span.end >= size {
        blobs.get(key).await?
    } else {
        blobs.get_range(key, span.clone()).await?
    };
    Ok(Loaded {
        data,
        offset: span.start,
    })
}
