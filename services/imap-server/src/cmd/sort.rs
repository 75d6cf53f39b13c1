//! SORT / UID SORT (RFC 5256 §3) with the ESORT result form (RFC 5267 §3), and what SORT and
//! THREAD share: loading the matching messages with the header fields they order by in one
//! round trip to the metadata service, and the sent date (§2.2). What the keys compare (base
//! subject, first mailbox) is in [`crate::sort_keys`].

use std::cmp::Ordering;

use crate::cmd::search::translate;
use crate::out::{Out, Reply};
use crate::session::Session;
use crate::sort_keys::{base_subject, first_mailbox};
use yubin_imap_proto::{SearchKey, SearchReturnOption as R, SortCriterion, SortKey, encode};
use yubin_meta_api::{IndexProjection, IndexedMessage, ModSeq, Uid, UidSet};

/// A matching message the client knows, with its sequence number.
pub(crate) struct Hit {
    pub(crate) seq: u32,
    pub(crate) message: IndexedMessage,
}

impl Hit {
    pub(crate) fn uid(&self) -> Uid {
        self.message.uid
    }

    /// The value of the first header field named `name`, if any.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.message
            .index
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The sent date in UTC seconds: the `Date:` header, or INTERNALDATE when it is missing or
    /// does not parse (RFC 5256 §2.2).
    pub(crate) fn sent_date(&self) -> i64 {
        self.message
            .index
            .sent_date
            .unwrap_or(self.message.internal_date)
            .unix_seconds
    }
}

/// Runs the search part of SORT or THREAD: checks the charset (RFC 5256 §3: `BADCHARSET` for
/// one the server does not support), then returns the matching messages the client has been
/// told about, in sequence order, with the header fields in `headers`.
pub(crate) async fn load(
    s: &mut Session,
    charset: &str,
    search: &SearchKey,
    headers: &[&str],
) -> Result<Vec<Hit>, Reply> {
    if !charset.eq_ignore_ascii_case("UTF-8") && !charset.eq_ignore_ascii_case("US-ASCII") {
        return Err(Reply::no("Unsupported charset").code("BADCHARSET (UTF-8 US-ASCII)"));
    }
    let mail = s.server.mail.clone();
    let Some((user, sel)) = s.selected_mut() else {
        return Err(crate::cmd::no_selection());
    };
    let key = translate(search, sel)?;
    let projection = IndexProjection {
        headers: headers.iter().map(|h| (*h).to_string()).collect(),
        body_chars: 0,
    };
    let found = mail
        .search_indexed(user, sel.id, &key, &projection)
        .await
        .map_err(|e| Reply::meta(&e))?;
    // Only messages the client has been told about exist for it.
    Ok(found
        .into_iter()
        .filter_map(|message| sel.seq_of(message.uid).map(|seq| Hit { seq, message }))
        .collect())
}

/// The highest MODSEQ of `hits` when the criteria use the MODSEQ key (RFC 7162 §3.1.5: SORT
/// and THREAD responses then end with `(MODSEQ n)`, and CONDSTORE is enabled).
pub(crate) async fn modseq_of(
    s: &mut Session,
    search: &SearchKey,
    hits: &[Hit],
) -> Result<Option<u64>, Reply> {
    if !uses_modseq(search) {
        return Ok(None);
    }
    s.enable_condstore();
    if hits.is_empty() {
        return Ok(None);
    }
    let mail = s.server.mail.clone();
    let Some((user, sel)) = s.selected_mut() else {
        return Err(crate::cmd::no_selection());
    };
    let uids = UidSet::from_uids(hits.iter().map(Hit::uid));
    let records = mail
        .fetch(user, sel.id, &uids, false)
        .await
        .map_err(|e| Reply::meta(&e))?;
    sel.learn_records(&records);
    Ok(records.iter().map(|r| r.modseq).max().map(|m: ModSeq| m.0))
}

fn uses_modseq(key: &SearchKey) -> bool {
    match key {
        SearchKey::ModSeq(_) => true,
        SearchKey::Not(k) => uses_modseq(k),
        SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        SearchKey::And(keys) => keys.iter().any(uses_modseq),
        _ => false,
    }
}

/// What each sort key compares, computed once per message.
struct SortFields {
    subject: String,
    from: String,
    to: String,
    cc: String,
}

// The command's own arguments, as the dispatcher passes them for every command.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    s: &mut Session,
    out: &mut Out<'_>,
    tag: &str,
    uid: bool,
    criteria: &[SortCriterion],
    charset: &str,
    returns: Option<&[R]>,
    search: &SearchKey,
) -> Reply {
    let hits = match load(s, charset, search, &["Subject", "From", "To", "Cc"]).await {
        Ok(h) => h,
        Err(r) => return r,
    };
    let modseq = match modseq_of(s, search, &hits).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let max = s.server.config.sort_thread.max_sort_field_bytes;
    let fields: Vec<SortFields> = hits
        .iter()
        .map(|h| SortFields {
            subject: base_subject(h.header("Subject").unwrap_or(""), max).0,
            from: first_mailbox(h.header("From").unwrap_or(""), max),
            to: first_mailbox(h.header("To").unwrap_or(""), max),
            cc: first_mailbox(h.header("Cc").unwrap_or(""), max),
        })
        .collect();
    let mut order: Vec<usize> = (0..hits.len()).collect();
    order.sort_by(|&a, &b| {
        for c in criteria {
            let o = compare(c.key, (&hits[a], &fields[a]), (&hits[b], &fields[b]));
            let o = if c.reverse { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        // RFC 5256 §3: messages equal under every key stay in mailbox order.
        hits[a].seq.cmp(&hits[b].seq)
    });
    let numbers: Vec<u32> = order
        .iter()
        .map(|&i| if uid { hits[i].uid().0 } else { hits[i].seq })
        .collect();
    match returns {
        None => {
            let mut line = String::from("* SORT");
            for n in &numbers {
                line.push(' ');
                line.push_str(&n.to_string());
                if line.len() >= 60 * 1024 {
                    out.buf().extend_from_slice(line.as_bytes());
                    line.clear();
                    out.flush_if_large().await;
                }
            }
            if let Some(m) = modseq {
                line.push_str(&format!(" (MODSEQ {m})"));
            }
            out.line(&line);
        }
        Some(options) => {
            // RFC 5267 §3: SORT with RETURN answers with ESEARCH (RFC 4731 §3.1), where MIN and
            // MAX are the first and last message in sort order and ALL lists them all in sort
            // order; MIN, MAX and ALL are left out of an empty result. `RETURN ()` means ALL.
            let has = |o: R| options.contains(&o);
            let all = has(R::All) || options.is_empty();
            let mut line = b"* ESEARCH (TAG ".to_vec();
            encode::string(&mut line, tag.as_bytes());
            line.push(b')');
            if uid {
                line.extend_from_slice(b" UID");
            }
            if let (true, Some(first)) = (has(R::Min), numbers.first()) {
                line.extend_from_slice(format!(" MIN {first}").as_bytes());
            }
            if let (true, Some(last)) = (has(R::Max), numbers.last()) {
                line.extend_from_slice(format!(" MAX {last}").as_bytes());
            }
            if has(R::Count) {
                line.extend_from_slice(format!(" COUNT {}", numbers.len()).as_bytes());
            }
            if all && !numbers.is_empty() {
                // Only ascending runs become ranges, so the set reads the same whether a client
                // takes `a:b` as an ordered run or as a set (RFC 5267 §3 keeps sort order).
                line.extend_from_slice(b" ALL ");
                line.extend_from_slice(encode::sequence_set(&numbers).as_bytes());
            }
            if let Some(m) = modseq {
                line.extend_from_slice(format!(" MODSEQ {m}").as_bytes());
            }
            line.extend_from_slice(b"\r\n");
            out.buf().extend_from_slice(&line);
        }
    }
    Reply::ok("SORT completed")
}

/// One RFC 5256 §3 sort key; strings compare with i;ascii-casemap (already upper-cased).
fn compare(key: SortKey, (a, fa): (&Hit, &SortFields), (b, fb): (&Hit, &SortFields)) -> Ordering {
    match key {
        // INTERNALDATE (RFC 5256 §3), which APPEND may set to any date: not UID order. Equal
        // dates fall through to the next key and finally to sequence order.
        SortKey::Arrival => a
            .message
            .internal_date
            .unix_seconds
            .cmp(&b.message.internal_date.unix_seconds),
        SortKey::Cc => fa.cc.cmp(&fb.cc),
        SortKey::Date => a.sent_date().cmp(&b.sent_date()),
        SortKey::From => fa.from.cmp(&fb.from),
        SortKey::Size => a.message.size.cmp(&b.message.size),
        SortKey::Subject => fa.subject.cmp(&fb.subject),
        SortKey::To => fa.to.cmp(&fb.to),
    }
}
