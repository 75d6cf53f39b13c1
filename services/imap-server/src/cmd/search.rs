//! SEARCH / UID SEARCH (RFC 3501 §6.4.4, RFC 9051 §6.4.4). The session resolves what only it
//! knows (sequence numbers, `*`, `$`, `\Recent`, NEW/OLD) into UID sets; the metadata service
//! evaluates the rest in one round trip over its index.
//!
//! Results: the classic `* SEARCH` in a rev1 session without RETURN; `* ESEARCH` (RFC 4731 §3)
//! with RETURN options, and always in an IMAP4rev2 session (RFC 9051 §7.3.4), where no RETURN
//! means ALL. `RETURN (SAVE)` keeps the result for `$` (RFC 5182).
//!
//! The MODSEQ key (RFC 7162 §3.1.5) enables CONDSTORE and adds the highest MODSEQ of the
//! returned messages to the result: `(MODSEQ n)` at the end of `* SEARCH`, a `MODSEQ n` item in
//! `* ESEARCH`; neither when nothing matched.
//!
//! A key testing nothing but flags, `\Recent`, sequence numbers, UIDs and MODSEQ is evaluated
//! over the session's view once it knows every message's flags: after the catch-up that brings
//! the view up to the store (see `Session::catch_up_for_read`), the answer is the store's.

use crate::cmd::no_selection;
use crate::out::{Out, Reply};
use crate::selected::{Selected, SyncMode};
use crate::session::Session;
use yubin_imap_proto::{SearchKey as K, SearchReturnOption as R, encode};
use yubin_meta_api::{ModSeq, SearchKey as M, Uid, UidSet, canonical_flag};

pub(crate) async fn run(
    s: &mut Session,
    out: &mut Out<'_>,
    tag: &str,
    uid: bool,
    charset: Option<&str>,
    returns: Option<&[R]>,
    criteria: &K,
) -> Reply {
    let with_modseq = uses_modseq(criteria);
    if with_modseq {
        s.enable_condstore();
    }
    let rev2 = s.rev2;
    let mail = s.server.mail.clone();
    let charset_ok = charset
        .is_none_or(|cs| cs.eq_ignore_ascii_case("UTF-8") || cs.eq_ignore_ascii_case("US-ASCII"));
    // A view missing some message's flags leaves the search to the store, without a catch-up
    // first (the command's own catch-up follows it as before).
    let from_view = charset_ok
        && tests_flags_only(criteria)
        && s.selected_mut()
            .is_some_and(|(_, sel)| sel.all_flags_known())
        && s.catch_up_for_read(out, SyncMode::naming_messages(uid))
            .await;
    let Some((user, sel)) = s.selected_mut() else {
        return no_selection();
    };
    let save = returns.is_some_and(|r| r.contains(&R::Save));
    if !charset_ok {
        if save {
            // RFC 5182 §2.1: a failed SEARCH with SAVE leaves `$` empty.
            sel.save_result(Vec::new());
        }
        return Reply::no("Unsupported charset").code("BADCHARSET (UTF-8 US-ASCII)");
    }
    let found = match translate(criteria, sel) {
        Ok(key) => match from_view.then(|| sel.search_flags(&key)).flatten() {
            Some(uids) => Ok(uids),
            None => mail
                .search(user, sel.id, &key)
                .await
                .map_err(|e| Reply::meta(&e)),
        },
        Err(r) => Err(r),
    };
    let found = match found {
        Ok(v) => v,
        Err(r) => {
            if save {
                sel.save_result(Vec::new());
            }
            return r;
        }
    };
    // Only messages the client has been told about exist for it.
    let hits: Vec<(u32, Uid)> = found
        .into_iter()
        .filter_map(|u| sel.seq_of(u).map(|seq| (seq, u)))
        .collect();
    let number = |&(seq, u): &(u32, Uid)| if uid { u.0 } else { seq };
    let options = returns.map(<[R]>::to_vec).or_else(|| rev2.then(Vec::new));
    // The messages whose MODSEQ the result reports (RFC 7162 §3.1.5, RFC 4731 §3.2 with
    // RFC 7162 §3.1.10): all of them, or only the MIN / MAX ones when those are all ESEARCH
    // returns.
    let modseq = if with_modseq && !hits.is_empty() {
        let reported: Vec<Uid> = match &options {
            Some(o)
                if !o.is_empty()
                    && !o.contains(&R::All)
                    && !o.contains(&R::Count)
                    && (o.contains(&R::Min) || o.contains(&R::Max)) =>
            {
                let mut v = Vec::with_capacity(2);
                if let (true, Some(first)) = (o.contains(&R::Min), hits.first()) {
                    v.push(first.1);
                }
                if let (true, Some(last)) = (o.contains(&R::Max), hits.last()) {
                    v.push(last.1);
                }
                v
            }
            _ => hits.iter().map(|h| h.1).collect(),
        };
        // Right after the catch-up the view's MODSEQs are the store's.
        let known: Option<Vec<ModSeq>> = from_view
            .then(|| reported.iter().map(|u| sel.known_modseq(*u)).collect())
            .flatten();
        match known {
            Some(modseqs) => modseqs.iter().map(|m| m.0).max(),
            None => match mail
                .fetch(user, sel.id, &UidSet::from_uids(reported), false)
                .await
            {
                Ok(records) => {
                    sel.learn_records(&records);
                    records.iter().map(|r| r.modseq.0).max()
                }
                Err(e) => return Reply::meta(&e),
            },
        }
    } else {
        None
    };

    let Some(options) = options else {
        // The rev1 `* SEARCH` response, written in pieces so a huge result is never one buffer.
        let mut line = String::from("* SEARCH");
        for hit in &hits {
            line.push(' ');
            line.push_str(&number(hit).to_string());
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
        return Reply::ok("SEARCH completed");
    };
    let has = |o: R| options.contains(&o);
    // `RETURN ()` (and a rev2 SEARCH without RETURN) means ALL (RFC 4731 §3.1).
    let all = has(R::All) || options.is_empty();
    let min = has(R::Min);
    let max = has(R::Max);
    let count = has(R::Count);
    if save {
        // RFC 5182 §2.1: with MIN and/or MAX but neither ALL nor COUNT, only those are saved.
        let saved: Vec<Uid> = if (min || max) && !all && !count {
            let mut v = Vec::new();
            if let (true, Some(first)) = (min, hits.first()) {
                v.push(first.1);
            }
            if let (true, Some(last)) = (max, hits.last())
                && !v.contains(&last.1)
            {
                v.push(last.1);
            }
            v
        } else {
            hits.iter().map(|h| h.1).collect()
        };
        sel.save_result(saved);
        if !(min || max || count || has(R::All)) {
            // SAVE alone: no ESEARCH response (RFC 5182 §2.1).
            return Reply::ok("SEARCH completed");
        }
    }
    let mut line = b"* ESEARCH (TAG ".to_vec();
    encode::string(&mut line, tag.as_bytes());
    line.push(b')');
    if uid {
        line.extend_from_slice(b" UID");
    }
    // Result items for an empty result are left out, except COUNT (RFC 4731 §3.1).
    if let (true, Some(first)) = (min, hits.first()) {
        line.extend_from_slice(format!(" MIN {}", number(first)).as_bytes());
    }
    if let (true, Some(last)) = (max, hits.last()) {
        line.extend_from_slice(format!(" MAX {}", number(last)).as_bytes());
    }
    if all && !hits.is_empty() {
        let numbers: Vec<u32> = hits.iter().map(number).collect();
        line.extend_from_slice(b" ALL ");
        line.extend_from_slice(encode::sequence_set(&numbers).as_bytes());
    }
    if count {
        line.extend_from_slice(format!(" COUNT {}", hits.len()).as_bytes());
    }
    if let Some(m) = modseq {
        line.extend_from_slice(format!(" MODSEQ {m}").as_bytes());
    }
    line.extend_from_slice(b"\r\n");
    out.buf().extend_from_slice(&line);
    Reply::ok("SEARCH completed")
}

fn flag(f: &str) -> M {
    M::Flag(f.to_string())
}

fn no_flag(f: &str) -> M {
    M::NoFlag(f.to_string())
}

fn header(name: &str, value: &str) -> M {
    M::Header(name.to_string(), value.to_string())
}

/// Translates the client's key into the store's, resolving session-relative parts.
pub(crate) fn translate(key: &K, sel: &Selected) -> Result<M, Reply> {
    Ok(match key {
        K::All => M::All,
        K::Answered => flag("\\Answered"),
        K::Deleted => flag("\\Deleted"),
        K::Draft => flag("\\Draft"),
        K::Flagged => flag("\\Flagged"),
        K::Seen => flag("\\Seen"),
        K::Unanswered => no_flag("\\Answered"),
        K::Undeleted => no_flag("\\Deleted"),
        K::Undraft => no_flag("\\Draft"),
        K::Unflagged => no_flag("\\Flagged"),
        K::Unseen => no_flag("\\Seen"),
        K::Keyword(k) => M::Flag(canonical_flag(k)),
        K::Unkeyword(k) => M::NoFlag(canonical_flag(k)),
        K::Recent => M::Uids(sel.recent_set()),
        K::New => M::And(vec![M::Uids(sel.recent_set()), no_flag("\\Seen")]),
        K::Old => M::Not(Box::new(M::Uids(sel.recent_set()))),
        K::Bcc(v) => header("Bcc", v),
        K::Cc(v) => header("Cc", v),
        K::From(v) => header("From", v),
        K::To(v) => header("To", v),
        K::Subject(v) => header("Subject", v),
        K::Header(n, v) => header(n, v),
        K::Body(v) => M::Body(v.clone()),
        K::Text(v) => M::Text(v.clone()),
        K::Before(d) => M::Before(*d),
        K::On(d) => M::On(*d),
        K::Since(d) => M::Since(*d),
        K::SentBefore(d) => M::SentBefore(*d),
        K::SentOn(d) => M::SentOn(*d),
        K::SentSince(d) => M::SentSince(*d),
        K::Larger(n) => M::Larger(*n),
        K::Smaller(n) => M::Smaller(*n),
        K::ModSeq(n) => M::ModSeqAtLeast(ModSeq(*n)),
        K::Uid(set) => M::Uids(resolve(sel, set, true)?),
        K::SequenceSet(set) => M::Uids(resolve(sel, set, false)?),
        K::Not(k) => M::Not(Box::new(translate(k, sel)?)),
        K::Or(a, b) => M::Or(Box::new(translate(a, sel)?), Box::new(translate(b, sel)?)),
        K::And(keys) => M::And(
            keys.iter()
                .map(|k| translate(k, sel))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    })
}

/// Whether `key` tests nothing but what the session's view keeps: flags (`\Recent` is the
/// session's own), sequence numbers, UIDs and MODSEQ, in any boolean combination.
fn tests_flags_only(key: &K) -> bool {
    match key {
        K::All
        | K::Answered
        | K::Deleted
        | K::Draft
        | K::Flagged
        | K::Seen
        | K::Unanswered
        | K::Undeleted
        | K::Undraft
        | K::Unflagged
        | K::Unseen
        | K::Keyword(_)
        | K::Unkeyword(_)
        | K::Recent
        | K::New
        | K::Old
        | K::ModSeq(_)
        | K::Uid(_)
        | K::SequenceSet(_) => true,
        K::Not(k) => tests_flags_only(k),
        K::Or(a, b) => tests_flags_only(a) && tests_flags_only(b),
        K::And(keys) => keys.iter().all(tests_flags_only),
        _ => false,
    }
}

/// Whether the criteria use the MODSEQ key anywhere (RFC 7162 §3.1.5).
fn uses_modseq(key: &K) -> bool {
    match key {
        K::ModSeq(_) => true,
        K::Not(k) => uses_modseq(k),
        K::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        K::And(keys) => keys.iter().any(uses_modseq),
        _ => false,
    }
}

fn resolve(
    sel: &Selected,
    set: &yubin_imap_proto::SequenceSet,
    uid: bool,
) -> Result<UidSet, Reply> {
    // Out-of-range numbers simply match nothing in SEARCH.
    sel.resolve(set, uid, false)
        .map(UidSet::from_uids)
        .map_err(crate::cmd::invalid_sequence)
}
