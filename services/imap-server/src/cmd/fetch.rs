//! FETCH / UID FETCH (RFC 3501 §6.4.5, RFC 9051 §6.4.5) with BINARY (RFC 3516), MODSEQ and the
//! CHANGEDSINCE / VANISHED modifiers (RFC 7162 §3.1.4–3.1.6, §3.2.6) and EMAILID / THREADID
//! (RFC 8474 §5). One `MailStore::fetch` for the whole set; the blob store is read only for
//! messages whose bytes are asked for, and only the byte range the requested sections cover
//! (from the summary's precomputed part offsets). A FETCH of flags alone is answered from the
//! session's view where it knows them (`fetch/flags.rs`); every record read here is kept there.

use crate::cmd::{
    expunge_issued, invalid_sequence, no_selection, not_supported, preview, uid_ranges,
};
use crate::out::{Out, Reply};
use crate::selected::{flag_list, write_vanished, write_vanished_ranges};
use crate::session::Session;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use std::collections::{HashMap, HashSet};
use yubin_imap_proto::encode;
use yubin_imap_proto::{FetchAttribute as A, FetchItems, Section, SectionText, SequenceSet};
use yubin_meta_api::{BlobKey, FlagOp, MessageRecord, ModSeq, Uid, UidSet};
use yubin_mime::{
    SectionWhat, Summary, TransferEncoding, decode_transfer_encoding, filter_header_fields,
};

mod flags;
mod read;
use read::{Body, Loaded, Prefetch, apply_partial, needed_range, prepare, read_span};

pub(crate) async fn run(
    s: &mut Session,
    out: &mut Out<'_>,
    uid: bool,
    set: &SequenceSet,
    items: &FetchItems,
    changed_since: Option<u64>,
    vanished: bool,
) -> Reply {
    // RFC 7162 §3.2.6: VANISHED needs QRESYNC enabled (the parser already demands UID FETCH
    // with CHANGEDSINCE).
    if vanished && !s.qresync {
        return Reply::bad("VANISHED needs ENABLE QRESYNC");
    }
    let mut attrs = distinct(items.expand());
    if let Some(a) = attrs.iter().find(|a| matches!(a, A::SaveDate)) {
        return not_supported(&format!("FETCH {a:?}"));
    }
    // FETCH MODSEQ and CHANGEDSINCE are CONDSTORE enabling commands (RFC 7162 §3.1); with
    // CHANGEDSINCE the MODSEQ item is implied (§3.1.4).
    if changed_since.is_some() || attrs.contains(&A::ModSeq) {
        s.enable_condstore();
        if !attrs.contains(&A::ModSeq) {
            attrs.push(A::ModSeq);
        }
    }
    if uid && !attrs.contains(&A::Uid) {
        // RFC 3501 §6.4.8: UID FETCH responses always include UID.
        attrs.insert(0, A::Uid);
    }
    if flags::answers(&attrs, vanished)
        && let Some(reply) = flags::run(s, out, uid, set, &attrs, changed_since).await
    {
        return reply;
    }
    let mail = s.server.mail.clone();
    let blobs = s.server.blobs.clone();
    let prefetch = Prefetch {
        messages: s.server.config.fetch_prefetch.max(1),
        max_bytes: s.server.config.fetch_prefetch_max_bytes,
    };
    let Some((user, sel)) = s.selected_mut() else {
        return no_selection();
    };
    let uids = match sel.resolve(set, uid, !uid) {
        Ok(u) => u,
        Err(e) => return invalid_sequence(e),
    };
    if let (true, Some(since)) = (vanished, changed_since) {
        // RFC 7162 §3.2.6: the UIDs of the set expunged after CHANGEDSINCE, before the FETCH
        // responses. UIDs still in the view are left out: their expunge is not announced yet
        // and goes out as `* VANISHED` at the end of this command.
        let changes = match mail.changes_since(user, sel.id, ModSeq(since)).await {
            Ok(c) => c,
            Err(e) => return Reply::meta(&e),
        };
        let asked = uid_ranges(set);
        let saved = sel.saved_uids();
        if changes.log_trimmed {
            crate::telemetry::expunge_log_trimmed("fetch");
            // The expunge log no longer reaches back to CHANGEDSINCE: every UID of the set
            // below the view's end that is not in the view (RFC 7162 §3.2.6 / §3.2.10 allow
            // UIDs that never existed); UIDs above it arrive with the next EXISTS.
            let within = asked.unwrap_or_else(|| UidSet::from_uids(saved.iter().copied()));
            let absent = sel.absent_ranges(sel.view_uid_end(), Some(&within));
            write_vanished_ranges(out, &absent, true);
        } else {
            let gone: Vec<Uid> = changes
                .vanished
                .into_iter()
                .filter(|u| !sel.contains(*u))
                .filter(|u| match &asked {
                    Some(asked) => asked.contains(*u),
                    None => saved.binary_search(u).is_ok(),
                })
                .collect();
            write_vanished(out, &gone, true);
        }
    }
    if uids.is_empty() {
        return Reply::ok("FETCH completed");
    }
    let with_summary = attrs.iter().any(needs_summary);
    let requested = uids.len();
    let mut records = match mail
        .fetch(user, sel.id, &UidSet::from_uids(uids), with_summary)
        .await
    {
        Ok(r) => r,
        Err(e) => return Reply::meta(&e),
    };
    sel.learn_records(&records);
    // Messages in the view the store no longer has were expunged by another session; their
    // EXPUNGE cannot be sent during FETCH (RFC 3501 §7.4.1). A UID FETCH ignores UIDs that do
    // not exist (RFC 3501 §6.4.8) and its catch-up may announce the EXPUNGE right away.
    let gone_elsewhere = !uid && records.len() < requested;
    if let Some(since) = changed_since {
        // RFC 7162 §3.1.4: only messages whose MODSEQ is above CHANGEDSINCE.
        records.retain(|r| r.modseq.0 > since);
    }

    // A non-peek body fetch sets \Seen (RFC 3501 §6.4.5), one store call for the whole set;
    // the new flags go out in this FETCH's responses.
    let mut seen_now: HashSet<Uid> = HashSet::new();
    if !sel.read_only && attrs.iter().any(sets_seen) {
        let unseen: Vec<Uid> = records
            .iter()
            .filter(|r| !r.flags.iter().any(|f| f == "\\Seen"))
            .map(|r| r.uid)
            .collect();
        if !unseen.is_empty() {
            let seen = ["\\Seen".to_string()];
            match mail
                .store_flags(
                    user,
                    sel.id,
                    &UidSet::from_uids(unseen),
                    FlagOp::Add,
                    &seen,
                    None,
                )
                .await
            {
                Ok(result) => {
                    for (u, modseq, flags) in result.updated {
                        sel.reported(u, modseq);
                        sel.learn(u, modseq, &flags);
                        seen_now.insert(u);
                        if let Ok(i) = records.binary_search_by_key(&u, |r| r.uid) {
                            records[i].flags = flags;
                            records[i].modseq = modseq;
                        }
                    }
                }
                Err(e) => return Reply::meta(&e),
            }
        }
    }

    let mut failure: Option<Reply> = None;
    // PREVIEW (RFC 8970) comes from the search index, a batch of messages per store call.
    let preview_uids: Vec<Uid> = if attrs.iter().any(|a| matches!(a, A::Preview { .. })) {
        records.iter().map(|r| r.uid).collect()
    } else {
        Vec::new()
    };
    let mut previews = preview::Previews::new();
    // Each message's summary is decoded and its body read (the smallest range the items need)
    // up to `prefetch.messages` messages ahead of the one being written, so that S3 round
    // trips overlap instead of adding up; responses stay in order.
    let wanted: Vec<(u32, &MessageRecord)> = records
        .iter()
        .filter_map(|rec| sel.seq_of(rec.uid).map(|seq| (seq, rec)))
        .collect();
    let mut waiting = wanted.into_iter();
    let mut window = FuturesOrdered::new();
    loop {
        while window.len() < prefetch.messages
            && let Some((seq, rec)) = waiting.next()
        {
            let blobs = blobs.clone();
            window.push_back(prepare(seq, rec, blobs, with_summary, &attrs, prefetch));
        }
        let Some((seq, rec, prepared)) = window.next().await else {
            break;
        };
        let preview_text = match preview_uids.binary_search(&rec.uid) {
            Ok(pos) => match previews
                .get(mail.as_ref(), user, sel.id, &preview_uids[pos..])
                .await
            {
                Ok(text) => Some(text.to_string()),
                Err(e) => {
                    failure = Some(Reply::meta(&e));
                    continue;
                }
            },
            Err(_) => None,
        };
        let (summary, body) = match prepared {
            Ok(p) => p,
            Err(reply) => {
                failure = Some(reply);
                continue;
            }
        };
        let body = match body {
            Body::Ready(loaded) => loaded,
            Body::Later(span) => read_span(blobs.as_ref(), &rec.blob, rec.size, span).await,
        };
        let body = match body {
            Ok(b) => b,
            Err(e) => {
                failure = Some(Reply::blob(&e));
                continue;
            }
        };
        // BINARY contents are decoded before anything of this message is written, so an
        // undecodable part refuses the message cleanly (RFC 3516 §4.3).
        // Each part is decoded once per message however many items name it (BINARY[1],
        // BINARY.SIZE[1], partials of it): the decoded copies held are one per distinct part.
        let mut binaries: Vec<Option<Option<Bytes>>> = Vec::with_capacity(attrs.len());
        let mut decoded: HashMap<&[u32], Option<Bytes>> = HashMap::new();
        let mut undecodable = false;
        for a in &attrs {
            binaries.push(match a {
                A::Binary { part, .. } | A::BinarySize { part } => {
                    if let Some(content) = decoded.get(part.as_slice()) {
                        Some(content.clone())
                    } else {
                        match binary_content(rec, summary.as_ref(), &body, part) {
                            Ok(content) => {
                                decoded.insert(part, content.clone());
                                Some(content)
                            }
                            Err(UnknownCte) => {
                                undecodable = true;
                                break;
                            }
                        }
                    }
                }
                _ => None,
            });
        }
        drop(decoded);
        if undecodable {
            failure =
                Some(Reply::no("Cannot decode the content transfer encoding").code("UNKNOWN-CTE"));
            continue;
        }
        let recent = sel.is_recent(rec.uid);
        out.buf()
            .extend_from_slice(format!("* {seq} FETCH (").as_bytes());
        for (i, a) in attrs.iter().enumerate() {
            if i > 0 {
                out.buf().push(b' ');
            }
            if let (A::Preview { .. }, Some(text)) = (a, &preview_text) {
                preview::write(out.buf(), text);
                continue;
            }
            let binary = binaries.get(i).and_then(Option::as_ref);
            if let Some(large) =
                write_attr(out.buf(), a, rec, summary.as_ref(), &body, recent, binary)
            {
                // Large literal contents go to the socket straight from the blob bytes
                // instead of being copied into the response buffer.
                out.write_direct(&large).await;
            }
        }
        let buf = out.buf();
        if seen_now.contains(&rec.uid) {
            if !attrs.contains(&A::Flags) {
                buf.extend_from_slice(b" FLAGS ");
                buf.extend_from_slice(flag_list(&rec.flags, recent).as_bytes());
            }
            // RFC 7162 §3.1: a FETCH that set \Seen reports MODSEQ once CONDSTORE is on;
            // §3.2: and UID once QRESYNC is.
            if sel.condstore {
                if sel.qresync && !attrs.contains(&A::Uid) {
                    buf.extend_from_slice(format!(" UID {}", rec.uid).as_bytes());
                }
                if !attrs.contains(&A::ModSeq) {
                    buf.extend_from_slice(format!(" MODSEQ ({})", rec.modseq).as_bytes());
                }
            }
        }
        buf.extend_from_slice(b")\r\n");
        out.flush_if_large().await;
    }
    if let Some(f) = failure {
        return f;
    }
    if gone_elsewhere {
        return expunge_issued();
    }
    Reply::ok("FETCH completed")
}

/// The requested items without repetitions, in the order first asked for. RFC 3501 §6.4.5 /
/// RFC 9051 §7.5.2 have one data item per requested item, and a client repeating an item (e.g.
/// `BINARY.SIZE[1]` thousands of times) must not make the server compute and send it that many
/// times. The PEEK and non-PEEK forms of a section are answered under the same name (RFC 3501
/// §7.4.2), so they count as one item, non-PEEK if either is (it sets `\Seen`).
fn distinct(attrs: Vec<A>) -> Vec<A> {
    let mut seen: HashMap<A, usize> = HashMap::with_capacity(attrs.len());
    let mut out: Vec<A> = Vec::with_capacity(attrs.len());
    for a in attrs {
        let (key, peek) = unpeeked(a.clone());
        match seen.get(&key) {
            Some(&i) => {
                if !peek {
                    out[i] = key;
                }
            }
            None => {
                seen.insert(key, out.len());
                out.push(a);
            }
        }
    }
    out
}

/// The attribute with PEEK cleared, and whether it was set.
fn unpeeked(a: A) -> (A, bool) {
    match a {
        A::BodySection {
            peek,
            section,
            partial,
        } => (
            A::BodySection {
                peek: false,
                section,
                partial,
            },
            peek,
        ),
        A::Binary {
            peek,
            part,
            partial,
        } => (
            A::Binary {
                peek: false,
                part,
                partial,
            },
            peek,
        ),
        other => (other, false),
    }
}

/// The part's transfer encoding is unknown or its content does not decode (RFC 3516 §4.3).
struct UnknownCte;

/// The decoded content of `BINARY[part]` (RFC 3516 §4.2): the part's content with its
/// Content-Transfer-Encoding removed. The whole message (empty part), a multipart and a
/// message/rfc822 part have no encoding of their own beyond the identity ones (RFC 2045 §6.4),
/// so their bytes are returned as they are. `None` for a part that does not exist.
fn binary_content(
    rec: &MessageRecord,
    summary: Option<&Summary>,
    body: &Loaded,
    part: &[u32],
) -> Result<Option<Bytes>, UnknownCte> {
    let range = if part.is_empty() {
        0..rec.size
    } else {
        match summary.and_then(|s| s.section_range(part, SectionWhat::Full)) {
            Some(r) => r,
            None => return Ok(None),
        }
    };
    let raw = body.slice(&range);
    let encoding = summary
        .and_then(|s| s.part_encoding(part))
        .unwrap_or(TransferEncoding::Binary);
    match encoding {
        TransferEncoding::SevenBit | TransferEncoding::EightBit | TransferEncoding::Binary => {
            Ok(Some(raw))
        }
        other => decode_transfer_encoding(&raw, other)
            .map(|d| Some(Bytes::from(d)))
            .ok_or(UnknownCte),
    }
}

fn needs_summary(a: &A) -> bool {
    match a {
        A::Envelope | A::Body | A::BodyStructure | A::Rfc822Header | A::Rfc822Text => true,
        // BODY[] is the whole blob: no offsets needed.
        A::BodySection { section, .. } => !(section.part.is_empty() && section.text.is_none()),
        A::Binary { part, .. } | A::BinarySize { part } => !part.is_empty(),
        _ => false,
    }
}

/// Non-peek body fetches set `\Seen` (RFC 3501 §6.4.5; BINARY likewise, RFC 3516 §4.2).
fn sets_seen(a: &A) -> bool {
    matches!(
        a,
        A::BodySection { peek: false, .. }
            | A::Binary { peek: false, .. }
            | A::Rfc822
            | A::Rfc822Text
    )
}

/// Literals at least this large are written to the socket directly (see [`write_attr`]).
const DIRECT_LITERAL: usize = 16 * 1024;

/// Writes a literal; a large one gets only its `{n}` header into `buf` and its content is
/// returned for the caller to send right after. Content with NUL octets is sent as a literal8
/// `~{n}` (RFC 3516 §4.2; RFC 9051 `literal` excludes NUL): a message can only hold NUL if it was
/// appended as literal8, by a client that speaks BINARY.
fn literal(buf: &mut Vec<u8>, content: Bytes) -> Option<Bytes> {
    if content.contains(&0) {
        buf.push(b'~');
    }
    if content.len() >= DIRECT_LITERAL {
        buf.extend_from_slice(format!("{{{}}}\r\n", content.len()).as_bytes());
        Some(content)
    } else {
        encode::literal(buf, &content);
        None
    }
}

/// Appends one FETCH item. Returns the content of a large literal whose header was just
/// written; the caller must send it next.
fn write_attr(
    buf: &mut Vec<u8>,
    a: &A,
    rec: &MessageRecord,
    summary: Option<&Summary>,
    body: &Loaded,
    recent: bool,
    binary: Option<&Option<Bytes>>,
) -> Option<Bytes> {
    match a {
        A::Uid => buf.extend_from_slice(format!("UID {}", rec.uid).as_bytes()),
        A::Flags => {
            buf.extend_from_slice(b"FLAGS ");
            buf.extend_from_slice(flag_list(&rec.flags, recent).as_bytes());
        }
        A::InternalDate => {
            buf.extend_from_slice(b"INTERNALDATE ");
            let d = &rec.internal_date;
            buf.extend_from_slice(
                encode::date_time(d.unix_seconds, d.tz_offset_minutes).as_bytes(),
            );
        }
        A::Rfc822Size => buf.extend_from_slice(format!("RFC822.SIZE {}", rec.size).as_bytes()),
        A::Envelope => {
            buf.extend_from_slice(b"ENVELOPE ");
            buf.extend_from_slice(summary.map_or("NIL", Summary::envelope).as_bytes());
        }
        A::BodyStructure => {
            buf.extend_from_slice(b"BODYSTRUCTURE ");
            buf.extend_from_slice(summary.map_or("NIL", Summary::body_structure).as_bytes());
        }
        A::Body => {
            buf.extend_from_slice(b"BODY ");
            buf.extend_from_slice(summary.map_or("NIL", Summary::body).as_bytes());
        }
        A::Rfc822 | A::Rfc822Header | A::Rfc822Text => {
            let name: &[u8] = match a {
                A::Rfc822 => b"RFC822 ",
                A::Rfc822Header => b"RFC822.HEADER ",
                _ => b"RFC822.TEXT ",
            };
            buf.extend_from_slice(name);
            match needed_range(a, rec, summary) {
                Some(r) => return literal(buf, body.slice(&r)),
                None => buf.extend_from_slice(b"NIL"),
            }
        }
        A::BodySection {
            section, partial, ..
        } => {
            // The response names the section without PEEK (RFC 3501 §7.4.2).
            buf.extend_from_slice(b"BODY[");
            write_section(buf, section);
            buf.push(b']');
            if let Some((origin, _)) = partial {
                buf.extend_from_slice(format!("<{origin}>").as_bytes());
            }
            buf.push(b' ');
            match (needed_range(a, rec, summary), &section.text) {
                (None, _) => buf.extend_from_slice(b"NIL"),
                (Some(r), Some(SectionText::HeaderFields(names))) => {
                    let filtered = filter_header_fields(&body.slice(&r), names, false);
                    let f = apply_partial(0..filtered.len() as u64, *partial);
                    encode::literal(buf, &filtered[f.start as usize..f.end as usize]);
                }
                (Some(r), Some(SectionText::HeaderFieldsNot(names))) => {
                    let filtered = filter_header_fields(&body.slice(&r), names, true);
                    let f = apply_partial(0..filtered.len() as u64, *partial);
                    encode::literal(buf, &filtered[f.start as usize..f.end as usize]);
                }
                (Some(r), _) => return literal(buf, body.slice(&r)),
            }
        }
        A::Binary { part, partial, .. } => {
            buf.extend_from_slice(b"BINARY[");
            write_part(buf, part);
            buf.push(b']');
            if let Some((origin, _)) = partial {
                buf.extend_from_slice(format!("<{origin}>").as_bytes());
            }
            buf.push(b' ');
            match binary.and_then(Option::as_ref) {
                Some(content) => {
                    let r = apply_partial(0..content.len() as u64, *partial);
                    return literal(buf, content.slice(r.start as usize..r.end as usize));
                }
                None => buf.extend_from_slice(b"NIL"),
            }
        }
        A::BinarySize { part } => {
            buf.extend_from_slice(b"BINARY.SIZE[");
            write_part(buf, part);
            buf.extend_from_slice(b"] ");
            match binary.and_then(Option::as_ref) {
                Some(content) => buf.extend_from_slice(content.len().to_string().as_bytes()),
                None => buf.extend_from_slice(b"NIL"),
            }
        }
        A::ModSeq => buf.extend_from_slice(format!("MODSEQ ({})", rec.modseq).as_bytes()),
        A::EmailId => {
            buf.extend_from_slice(format!("EMAILID ({})", email_id(&rec.blob)).as_bytes())
        }
        // RFC 8474 §5.2: NIL when the server does not compute threads.
        A::ThreadId => buf.extend_from_slice(b"THREADID NIL"),
        // Refused before any output (see `run`).
        A::SaveDate => buf.extend_from_slice(b"NIL"),
        // Written by `run` from the search index (see `preview`) before this is reached.
        A::Preview { .. } => preview::write(buf, ""),
    }
    None
}

/// The RFC 8474 EMAILID of a message: its body's content hash, from the content-addressed
/// blob key (`u/<user>/<sha256>`). COPY and MOVE share the blob, so the copy keeps the id
/// (RFC 8474 §5.1); identical bodies of one account share it too, which the RFC allows. Any
/// character an `objectid` may not hold is dropped.
pub(crate) fn email_id(blob: &BlobKey) -> String {
    let hash = blob.as_str().rsplit('/').next().unwrap_or_default();
    let mut id = String::with_capacity(hash.len() + 1);
    id.push('M');
    id.extend(
        hash.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .take(254),
    );
    id
}

fn write_part(buf: &mut Vec<u8>, part: &[u32]) {
    for (i, p) in part.iter().enumerate() {
        if i > 0 {
            buf.push(b'.');
        }
        buf.extend_from_slice(p.to_string().as_bytes());
    }
}

fn write_section(buf: &mut Vec<u8>, section: &Section) {
    write_part(buf, &section.part);
    let Some(text) = &section.text else {
        return;
    };
    if !section.part.is_empty() {
        buf.push(b'.');
    }
    let (name, fields): (&[u8], Option<&Vec<String>>) = match text {
        SectionText::Header => (b"HEADER", None),
        SectionText::HeaderFields(f) => (b"HEADER.FIELDS", Some(f)),
        SectionText::HeaderFieldsNot(f) => (b"HEADER.FIELDS.NOT", Some(f)),
        SectionText::Text => (b"TEXT", None),
        SectionText::Mime => (b"MIME", None),
    };
    buf.extend_from_slice(name);
    if let Some(fields) = fields {
        buf.extend_from_slice(b" (");
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                buf.push(b' ');
            }
            encode::astring(buf, f.as_bytes());
        }
        buf.push(b')');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_ids_come_from_the_content_hash() {
        assert_eq!(email_id(&BlobKey("u/7/ab12cd".into())), "Mab12cd");
        assert_eq!(email_id(&BlobKey("u/7/a.b+c".into())), "Mabc");
    }

    #[test]
    fn repeated_items_are_asked_once() {
        let size = A::BinarySize { part: vec![1] };
        let body = |peek| A::BodySection {
            peek,
            section: Section::default(),
            partial: None,
        };
        let attrs = vec![
            A::Flags,
            size.clone(),
            body(true),
            A::Flags,
            size.clone(),
            body(false),
        ];
        assert_eq!(distinct(attrs), vec![A::Flags, size.clone(), body(false)]);
        assert_eq!(distinct(vec![size.clone(); 4000]), vec![size]);
        assert_eq!(distinct(vec![body(true), body(true)]), vec![body(true)]);
    }

    #[test]
    fn partials_clamp() {
        assert_eq!(apply_partial(10..20, Some((2, 5))), 12..17);
        assert_eq!(apply_partial(10..20, Some((8, 5))), 18..20);
        assert_eq!(apply_partial(10..20, Some((50, 5))), 20..20);
        assert_eq!(apply_partial(10..20, None), 10..20);
    }
}
