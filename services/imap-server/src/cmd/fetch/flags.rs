//! FETCH of nothing but FLAGS, UID and MODSEQ, answered from the flags the session's view keeps
//! (`selected::flags`). The catch-up runs first, so the view holds the store's flags as of
//! now and the client has been told every change before it (RFC 3501 §7.4.1); only the
//! messages whose flags the view does not know are read from the store, in one call.
//! A catch-up that may not send an expunge during this command with CONDSTORE on holds
//! everything back (see `Selected::sync`); the store answers then, as it does for a FETCH with
//! VANISHED (RFC 7162 §3.2.6, which reads the expunge log anyway).

use crate::cmd::{expunge_issued, invalid_sequence};
use crate::out::{Out, Reply};
use crate::selected::{SyncMode, flag_list};
use crate::session::Session;
use yubin_imap_proto::{FetchAttribute as A, SequenceSet};
use yubin_meta_api::{MessageRecord, ModSeq, Uid, UidSet};

/// Whether the view can answer items `attrs` (INTERNALDATE, RFC822.SIZE and the rest are not
/// kept; VANISHED reads the store's expunge log).
pub(super) fn answers(attrs: &[A], vanished: bool) -> bool {
    !vanished
        && attrs
            .iter()
            .all(|a| matches!(a, A::Uid | A::Flags | A::ModSeq))
}

/// The FETCH answered from the view, or `None` when the caller is to read the store as before:
/// flags are asked for and the view knows none of the set's (one store read answers it all; a
/// catch-up first would only add a round trip), or the view could not be brought up to date.
/// A FETCH of UID alone needs no flags: the catch-up is all it costs.
pub(super) async fn run(
    s: &mut Session,
    out: &mut Out<'_>,
    uid: bool,
    set: &SequenceSet,
    attrs: &[A],
    changed_since: Option<u64>,
) -> Option<Reply> {
    let needs_flags = attrs.iter().any(|a| !matches!(a, A::Uid));
    let (_, sel) = s.selected_mut()?;
    let asked = sel.resolve(set, uid, !uid).ok()?;
    if needs_flags && !asked.iter().any(|u| sel.known_modseq(*u).is_some()) {
        return None;
    }
    if !s
        .catch_up_for_read(out, SyncMode::naming_messages(uid))
        .await
    {
        return None;
    }
    let mail = s.server.mail.clone();
    let (user, sel) = s.selected_mut()?;
    // Resolved again: the catch-up may have announced new messages (`*`) or, in a UID FETCH,
    // expunges.
    let uids = match sel.resolve(set, uid, !uid) {
        Ok(u) => u,
        Err(e) => return Some(invalid_sequence(e)),
    };
    let unknown: Vec<Uid> = uids
        .iter()
        .copied()
        .filter(|u| needs_flags && !sel.expunge_pending(*u) && sel.known_modseq(*u).is_none())
        .collect();
    let mut fetched: Vec<MessageRecord> = Vec::new();
    if !unknown.is_empty() {
        fetched = match mail
            .fetch(user, sel.id, &UidSet::from_uids(unknown), false)
            .await
        {
            Ok(r) => r,
            Err(e) => return Some(Reply::meta(&e)),
        };
        sel.learn_records(&fetched);
    }
    // A message expunged by another session whose EXPUNGE may not be sent now (RFC 3501
    // §7.4.1), as in the store's answer; a UID FETCH ignores it (§6.4.8).
    let mut gone = false;
    for u in uids {
        let Some(seq) = sel.seq_of(u) else {
            continue;
        };
        let record = match sel.known_modseq(u) {
            _ if sel.expunge_pending(u) => {
                gone = true;
                continue;
            }
            _ if !needs_flags => Source::Bare,
            Some(modseq) => Source::View(modseq),
            None => match fetched.binary_search_by_key(&u, |r| r.uid) {
                // Read from the store but not kept (the view's tables are full).
                Ok(k) => Source::Store(&fetched[k]),
                Err(_) => {
                    gone = true;
                    continue;
                }
            },
        };
        // RFC 7162 §3.1.4: only messages whose MODSEQ is above CHANGEDSINCE.
        if changed_since.is_some_and(|since| record.modseq().0 <= since) {
            continue;
        }
        let buf = out.buf();
        buf.extend_from_slice(format!("* {seq} FETCH (").as_bytes());
        for (i, a) in attrs.iter().enumerate() {
            if i > 0 {
                buf.push(b' ');
            }
            match a {
                A::Uid => buf.extend_from_slice(format!("UID {u}").as_bytes()),
                A::ModSeq => {
                    buf.extend_from_slice(format!("MODSEQ ({})", record.modseq()).as_bytes())
                }
                // FLAGS, the one item left that `answers` lets through.
                _ => {
                    buf.extend_from_slice(b"FLAGS ");
                    match record {
                        Source::Store(r) => {
                            buf.extend_from_slice(flag_list(&r.flags, sel.is_recent(u)).as_bytes())
                        }
                        _ => {
                            sel.write_known_flags(u, buf);
                        }
                    }
                }
            }
        }
        buf.extend_from_slice(b")\r\n");
        out.flush_if_large().await;
    }
    if gone && !uid {
        return Some(expunge_issued());
    }
    Some(Reply::ok("FETCH completed"))
}

/// Where a message's answer comes from.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// Nothing but the UID is asked for.
    Bare,
    View(ModSeq),
    Store(&'a MessageRecord),
}

impl Source<'_> {
    fn modseq(&self) -> ModSeq {
        match self {
            // Never asked: CHANGEDSINCE implies the MODSEQ item (RFC 7162 §3.1.4).
            Source::Bare => ModSeq(0),
            Source::View(m) => *m,
            Source::Store(r) => r.modseq,
        }
    }
}
