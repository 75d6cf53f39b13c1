//! SEARCH / UID SEARCH (RFC 3501 §6.4.4). The session resolves what only it knows (sequence
//! numbers, `*`, `\Recent`, NEW/OLD) into UID sets; the metadata service evaluates the rest in
//! one round trip over its index.

use crate::cmd::{no_selection, not_supported};
use crate::out::{Out, Reply};
use crate::selected::Selected;
use crate::session::Session;
use yubin_imap_proto::{SearchKey as K, SearchReturnOption};
use yubin_meta_api::{SearchKey as M, UidSet, canonical_flag};

pub(crate) async fn run(
    s: &mut Session,
    out: &mut Out<'_>,
    uid: bool,
    charset: Option<&str>,
    returns: Option<&[SearchReturnOption]>,
    criteria: &K,
) -> Reply {
    if returns.is_some() {
        return not_supported("ESEARCH");
    }
    if let Some(cs) = charset
        && !cs.eq_ignore_ascii_case("UTF-8")
        && !cs.eq_ignore_ascii_case("US-ASCII")
    {
        return Reply::no("Unsupported charset").code("BADCHARSET (UTF-8 US-ASCII)");
    }
    let mail = s.server.mail.clone();
    let Some((user, sel)) = s.selected_mut() else {
        return no_selection();
    };
    let key = match translate(criteria, sel) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let found = match mail.search(user, sel.id, &key).await {
        Ok(v) => v,
        Err(e) => return Reply::meta(&e),
    };
    let mut line = String::from("* SEARCH");
    for u in found {
        // Only messages the client has been told about exist for it.
        if let Some(seq) = sel.seq_of(u) {
            line.push(' ');
            if uid {
                line.push_str(&u.to_string());
            } else {
                line.push_str(&seq.to_string());
            }
        }
        if line.len() >= 60 * 1024 {
            out.buf().extend_from_slice(line.as_bytes());
            line.clear();
            out.flush_if_large().await;
        }
    }
    out.line(&line);
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
        K::ModSeq(_) => return Err(not_supported("SEARCH MODSEQ")),
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

fn resolve(
    sel: &Selected,
    set: &yubin_imap_proto::SequenceSet,
    uid: bool,
) -> Result<UidSet, Reply> {
    // Out-of-range numbers simply match nothing in SEARCH.
    sel.resolve(set, uid, false)
        .map(UidSet::from_uids)
        .map_err(|_| not_supported("SEARCHRES ($)"))
}
