//! CATENATE (RFC 4469): an APPEND (or REPLACE, RFC 8508 §4) message assembled from TEXT literals
//! and URL parts naming messages, or sections of them, that the same user already has.
//!
//! URLs are server-relative IMAP URLs (RFC 5092): `/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=x]
//! [/;PARTIAL=o.l]`, or `/;UID=n...` for the selected mailbox. One that does not resolve (bad
//! syntax, no such mailbox, stale UIDVALIDITY, no such message or section, absolute or URLAUTH
//! URLs) fails the command with `NO [BADURL url]` (RFC 4469 §3); a result over APPENDLIMIT with
//! `NO [TOOBIG]` (RFC 7889 §2, RFC 4469 §3). Nothing is stored then, and for a MULTIAPPEND no
//! message of the command is appended.
//!
//! The assembled message is held in memory, at most APPENDLIMIT (`Limits::max_literal`) octets:
//! every part's length is checked against what is left before its octets are read (a
//! HEADER.FIELDS part's once filtered).

use crate::out::Reply;
use crate::session::{Session, SessionState};
use crate::spool::Spool;
use bytes::Bytes;
use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt};
use tokio::io::AsyncReadExt;
use yubin_imap_proto::{AppendBody, CatenatePart, ImapUrl, SectionText, parse_imap_url};
use yubin_meta_api::{MailboxId, MetaError, Uid, UidSet, UserId};
use yubin_mime::{SectionWhat, Summary, filter_header_fields};

/// Assembles the message of `parts`, in order. `spooled` holds the command's spooled literals,
/// which streamed TEXT parts index.
///
/// Two passes: every URL is first located through the metadata store (so a bad URL or a part
/// that cannot fit is refused before any body is read), then the bodies are read, up to
/// `fetch_prefetch` of them at once when the located parts fit APPENDLIMIT together (so what
/// is read ahead is bounded by APPENDLIMIT), in turn otherwise. The bodies come through the
/// node's body cache, so a message forwarded from one the client just read costs no GET.
pub(crate) async fn assemble(
    s: &Session,
    user: UserId,
    parts: Vec<CatenatePart>,
    spooled: &[Spool],
) -> Result<Bytes, Reply> {
    let limit = s.server.config.limits.max_literal;
    // Pass 1: what each part is; `exact` counts octets known exactly (TEXT parts, unfiltered
    // sections), `bound` adds the most a HEADER.FIELDS part can come to.
    let mut pieces = Vec::with_capacity(parts.len());
    let (mut exact, mut bound) = (0u64, 0u64);
    for part in parts {
        let left = limit.saturating_sub(exact);
        match part {
            CatenatePart::Text(text) => {
                if text.len() > left {
                    return Err(too_big());
                }
                if matches!(text, AppendBody::Catenate(_)) {
                    // The parser never nests CATENATE.
                    return Err(Reply::bad("Nested CATENATE"));
                }
                exact += text.len();
                bound += text.len();
                pieces.push(Piece::Text(text));
            }
            CatenatePart::Url(raw) => {
                let Some(url) = parse_imap_url(&raw) else {
                    return Err(bad_url(&raw));
                };
                let located = locate(s, user, &url, left).await.map_err(|e| match e {
                    Unresolved::BadUrl => bad_url(&raw),
                    Unresolved::TooBig => too_big(),
                    Unresolved::Failed(r) => r,
                })?;
                let len = located.range.end - located.range.start;
                if located.filter.is_none() {
                    exact += len;
                }
                bound += len;
                pieces.push(Piece::Url(located));
            }
        }
    }
    // Pass 2: the bodies, in order of the parts.
    let window = if bound <= limit {
        s.server.config.fetch_prefetch.max(1)
    } else {
        1
    };
    // Boxed so the stream's future type names no closure (whose lifetimes would keep the
    // session task from being Send).
    let reads: Vec<BoxFuture<'_, Result<Bytes, Unresolved>>> = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Url(located) => Some(read(s, located).boxed()),
            Piece::Text(_) => None,
        })
        .collect();
    let mut reads = futures::stream::iter(reads).buffered(window);
    let mut out: Vec<u8> = Vec::new();
    for piece in &pieces {
        let left = limit.saturating_sub(out.len() as u64);
        match piece {
            Piece::Text(AppendBody::Inline(b)) => out.extend_from_slice(b),
            Piece::Text(AppendBody::Streamed { size, index }) => match spooled.get(*index) {
                Some(Spool::Ready(body)) if body.size == *size => {
                    // Read straight onto the end of the message: no second copy.
                    let read = match tokio::fs::File::open(body.path()).await {
                        Ok(f) => f.take(*size).read_to_end(&mut out).await,
                        Err(e) => Err(e),
                    };
                    match read {
                        Ok(n) if n as u64 == *size => {}
                        Ok(_) => {
                            tracing::error!("CATENATE spool file changed size");
                            return Err(internal());
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "reading a CATENATE spool file failed");
                            return Err(internal());
                        }
                    }
                }
                _ => {
                    return Err(
                        Reply::no("Temporarily unavailable, try again later").code("UNAVAILABLE")
                    );
                }
            },
            Piece::Text(AppendBody::Catenate(_)) => return Err(Reply::bad("Nested CATENATE")),
            Piece::Url(_) => {
                let data = match reads.next().await {
                    Some(Ok(data)) => data,
                    Some(Err(Unresolved::Failed(r))) => return Err(r),
                    Some(Err(_)) | None => return Err(internal()),
                };
                if data.len() as u64 > left {
                    return Err(too_big());
                }
                out.extend_from_slice(&data);
            }
        }
    }
    Ok(Bytes::from(out))
}

/// One part of the message, as pass 1 leaves it.
enum Piece {
    Text(AppendBody),
    Url(Located),
}

/// Where a URL part's octets are.
struct Located {
    blob: yubin_meta_api::BlobKey,
    /// The message's bytes to read (for HEADER.FIELDS(.NOT), the whole header).
    range: std::ops::Range<u64>,
    filter: Option<FieldFilter>,
}

/// HEADER.FIELDS(.NOT) of a URL part, applied once the header is read.
struct FieldFilter {
    names: Vec<String>,
    exclude: bool,
    /// Applies to the filtered octets (RFC 5092 §5).
    partial: Option<(u64, Option<u64>)>,
}

/// Why a URL part gave no octets.
enum Unresolved {
    /// It names nothing this user has (RFC 4469 §3 `BADURL`).
    BadUrl,
    /// What it names is larger than what is left of APPENDLIMIT.
    TooBig,
    /// The stores failed.
    Failed(Reply),
}

/// Where the octets `url` names are, if they are at most `left` (for HEADER.FIELDS parts, the
/// filtered size is checked once read).
async fn locate(
    s: &Session,
    user: UserId,
    url: &ImapUrl,
    left: u64,
) -> Result<Located, Unresolved> {
    let mailbox = match &url.mailbox {
        Some(name) => {
            // RFC 3501 §5.1: INBOX is case-insensitive.
            let name = if name.eq_ignore_ascii_case("INBOX") {
                "INBOX"
            } else {
                name.as_str()
            };
            let info = match s.server.mail.mailbox_status(user, name).await {
                Ok(info) => info,
                Err(MetaError::NotFound(_)) => return Err(Unresolved::BadUrl),
                Err(e) => return Err(Unresolved::Failed(Reply::meta(&e))),
            };
            if url.uid_validity.is_some_and(|v| v != info.uid_validity.0) {
                return Err(Unresolved::BadUrl);
            }
            info.id
        }
        None => match selected_mailbox(s) {
            Some(id) => id,
            None => return Err(Unresolved::BadUrl),
        },
    };
    let uids = UidSet::from_uids([Uid(url.uid)]);
    let records = s
        .server
        .mail
        .fetch(user, mailbox, &uids, url.section.is_some())
        .await
        .map_err(|e| Unresolved::Failed(Reply::meta(&e)))?;
    let Some(rec) = records.into_iter().find(|r| r.uid == Uid(url.uid)) else {
        return Err(Unresolved::BadUrl);
    };
    let (range, fields) = match &url.section {
        None => (0..rec.size, None),
        Some(section) => {
            let summary = match rec.summary.as_deref().map(Summary::from_bytes) {
                Some(Ok(summary)) => summary,
                Some(Err(e)) => {
                    tracing::error!(uid = %rec.uid, error = %e, "unreadable message summary");
                    return Err(Unresolved::Failed(internal()));
                }
                None => {
                    tracing::error!(uid = %rec.uid, "message summary missing");
                    return Err(Unresolved::Failed(internal()));
                }
            };
            let (what, fields) = match &section.text {
                None => (SectionWhat::Full, None),
                Some(SectionText::Header) => (SectionWhat::Header, None),
                Some(SectionText::Text) => (SectionWhat::Text, None),
                Some(SectionText::Mime) => (SectionWhat::Mime, None),
                Some(SectionText::HeaderFields(names)) => {
                    (SectionWhat::Header, Some((names.clone(), false)))
                }
                Some(SectionText::HeaderFieldsNot(names)) => {
                    (SectionWhat::Header, Some((names.clone(), true)))
                }
            };
            match summary.section_range(&section.part, what) {
                Some(r) => (r, fields),
                None => return Err(Unresolved::BadUrl),
            }
        }
    };
    if let Some((names, exclude)) = fields {
        // The header read is bounded by the stored message, itself at most APPENDLIMIT.
        return Ok(Located {
            blob: rec.blob,
            range,
            filter: Some(FieldFilter {
                names,
                exclude,
                partial: url.partial,
            }),
        });
    }
    let range = partial(range, url.partial);
    if range.end - range.start > left {
        return Err(Unresolved::TooBig);
    }
    Ok(Located {
        blob: rec.blob,
        range,
        filter: None,
    })
}

/// The octets of a located part: PARTIAL applies to the section's octets (RFC 5092 §5), after
/// HEADER.FIELDS filtering.
async fn read(s: &Session, located: &Located) -> Result<Bytes, Unresolved> {
    if located.range.is_empty() && located.filter.is_none() {
        return Ok(Bytes::new());
    }
    let data = get(s, &located.blob, located.range.clone()).await?;
    let Some(filter) = &located.filter else {
        return Ok(data);
    };
    let filtered = Bytes::from(filter_header_fields(&data, &filter.names, filter.exclude));
    let r = partial(0..filtered.len() as u64, filter.partial);
    Ok(filtered.slice(r.start as usize..r.end as usize))
}

async fn get(
    s: &Session,
    blob: &yubin_meta_api::BlobKey,
    range: std::ops::Range<u64>,
) -> Result<Bytes, Unresolved> {
    s.server
        .blobs
        .get_range(blob, range)
        .await
        .map_err(|e| Unresolved::Failed(Reply::blob(&e)))
}

/// `/;PARTIAL=offset[.length]` within `r` (RFC 5092 §5): clipped to the section like FETCH's
/// `<origin.count>` (RFC 3501 §6.4.5).
fn partial(r: std::ops::Range<u64>, partial: Option<(u64, Option<u64>)>) -> std::ops::Range<u64> {
    match partial {
        None => r,
        Some((offset, length)) => {
            let start = r.start.saturating_add(offset).min(r.end);
            let end = match length {
                Some(l) => start.saturating_add(l).min(r.end),
                None => r.end,
            };
            start..end
        }
    }
}

fn selected_mailbox(s: &Session) -> Option<MailboxId> {
    match &s.state {
        SessionState::Selected { mailbox, .. } => Some(mailbox.id),
        _ => None,
    }
}

fn internal() -> Reply {
    Reply::no("Internal server error").code("SERVERBUG")
}

fn too_big() -> Reply {
    Reply::no("Message would be larger than APPENDLIMIT").code("TOOBIG")
}

/// `NO [BADURL url]`: the URL as sent, a bare `url-resp-text` (RFC 4469 §5 with erratum 4046);
/// octets that text may not hold (`]`, CR, LF, NUL) and non-ASCII ones are percent-encoded so
/// the response line stays well-formed ASCII.
fn bad_url(raw: &[u8]) -> Reply {
    let mut text = String::with_capacity(raw.len());
    for &b in raw {
        if matches!(b, b']' | b'\r' | b'\n' | 0 | 0x80..=0xff) {
            text.push_str(&format!("%{b:02X}"));
        } else {
            text.push(b as char);
        }
    }
    if text.is_empty() {
        text.push_str("%20");
    }
    Reply::no("CATENATE URL does not name a message or section").code(format!("BADURL {text}"))
}
