//! SELECT (RFC 3501 §6.3.1, RFC 9051 §6.3.2); EXAMINE shares it read-only.
//!
//! A rev1 session gets `* n RECENT` and `[UNSEEN n]`, and a SELECT (not EXAMINE) claims the
//! mailbox's `\Recent` messages for this session. An IMAP4rev2 session gets neither (RFC 9051
//! Appendix E), gets the mailbox's `* LIST` response instead, and `* OK [CLOSED]` when the
//! command ends a previous selection (RFC 9051 §7.1).

use crate::cmd::{mailbox_arg, not_supported};
use crate::names;
use crate::out::{Next, Out, Reply};
use crate::selected::{Selected, SyncMode};
use crate::session::Session;
use yubin_imap_proto::SelectParams;
use yubin_meta_api::is_system_flag;

pub(crate) async fn run(
    s: &mut Session,
    out: &mut Out<'_>,
    mailbox: &[u8],
    params: &SelectParams,
    read_only: bool,
) -> Reply {
    if params.condstore || params.qresync.is_some() {
        return not_supported("CONDSTORE/QRESYNC");
    }
    // A SELECT, even a failing one, ends the current selection (RFC 3501 §6.3.1).
    let Some(user) = s.user() else {
        return Reply::bad("Not authenticated");
    };
    if s.rev2 && s.selected_mut().is_some() {
        out.line("* OK [CLOSED] Previous mailbox is now closed");
    }
    let name = match mailbox_arg(s, mailbox) {
        Ok(n) => n,
        Err(r) => return r.then(Next::Deselect),
    };
    let snap = match s.server.mail.select(user, &name).await {
        Ok(snap) => snap,
        Err(e) => return Reply::meta(&e).then(Next::Deselect),
    };
    let info = &snap.info;
    let mut flags = String::from("\\Answered \\Flagged \\Deleted \\Seen \\Draft");
    for kw in &snap.keywords {
        if !is_system_flag(kw) {
            flags.push(' ');
            flags.push_str(kw);
        }
    }
    out.line(&format!("* FLAGS ({flags})"));
    if read_only {
        out.line("* OK [PERMANENTFLAGS ()] Read-only mailbox");
    } else {
        out.line(&format!(
            "* OK [PERMANENTFLAGS ({flags} \\*)] Flags permitted"
        ));
    }
    out.line(&format!("* {} EXISTS", snap.uids.len()));
    let first_unseen = snap
        .first_unseen
        .and_then(|first| snap.uids.binary_search(&first).ok());
    let mut selected = Selected::new(info.id, read_only, snap.uids, info.highest_modseq);
    // The claim may reach past the snapshot (messages appended in between).
    let mut claimed_unseen = false;
    if s.rev2 {
        selected = selected.for_rev2();
        // RFC 9051 §6.3.2: the mailbox's LIST response, with accurate attributes.
        let mut line = b"* LIST (".to_vec();
        if let Some(u) = info.special_use {
            line.extend_from_slice(u.as_imap().as_bytes());
        }
        line.extend_from_slice(b") \"/\" ");
        names::encode_to(&mut line, &info.name, true);
        line.extend_from_slice(b"\r\n");
        out.buf().extend_from_slice(&line);
    } else {
        let recent = if read_only {
            // EXAMINE leaves \Recent to the next SELECT (RFC 3501 §6.3.2).
            0
        } else {
            let claim = match s.server.mail.claim_recent(user, info.id).await {
                Ok(c) => {
                    claimed_unseen = c.to > info.uid_next;
                    Some(c)
                }
                Err(e) => {
                    // \Recent is advisory: without a claim nothing is recent here.
                    tracing::warn!(error = %e, "claiming \\Recent failed");
                    None
                }
            };
            selected.claim(claim)
        };
        out.line(&format!("* {recent} RECENT"));
        if let Some(i) = first_unseen {
            out.line(&format!("* OK [UNSEEN {}] First unseen", i + 1));
        }
    }
    out.line(&format!(
        "* OK [UIDVALIDITY {}] UIDs valid",
        info.uid_validity
    ));
    out.line(&format!(
        "* OK [UIDNEXT {}] Predicted next UID",
        info.uid_next
    ));
    if claimed_unseen {
        // Messages this session now owns as \Recent but has not announced: announce them now
        // (EXISTS and RECENT may follow at any time), or they would be recent to no session if
        // the client left before its next command.
        let mode = SyncMode {
            allow_expunge: true,
            with_uid: false,
        };
        if let Err(e) = selected.sync(s.server.mail.as_ref(), user, out, mode).await {
            return Reply::meta(&e).then(Next::Deselect);
        }
    }
    let (code, verb) = if read_only {
        ("READ-ONLY", "EXAMINE")
    } else {
        ("READ-WRITE", "SELECT")
    };
    Reply::ok(format!("{verb} completed"))
        .code(code)
        .then(Next::Selected(Box::new(selected)))
}
