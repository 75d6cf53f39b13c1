//! SELECT (RFC 3501 §6.3.1); EXAMINE shares it read-only.

use crate::cmd::{mailbox_arg, not_supported};
use crate::out::{Next, Out, Reply};
use crate::selected::Selected;
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
    let name = match mailbox_arg(mailbox) {
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
    // `\Recent` is per session here: no message is recent to a session that just selected.
    out.line("* 0 RECENT");
    if let Some(first) = snap.first_unseen
        && let Ok(i) = snap.uids.binary_search(&first)
    {
        out.line(&format!("* OK [UNSEEN {}] First unseen", i + 1));
    }
    out.line(&format!(
        "* OK [UIDVALIDITY {}] UIDs valid",
        info.uid_validity
    ));
    out.line(&format!(
        "* OK [UIDNEXT {}] Predicted next UID",
        info.uid_next
    ));
    let selected = Selected::new(info.id, read_only, snap.uids, info.highest_modseq);
    let (code, verb) = if read_only {
        ("READ-ONLY", "EXAMINE")
    } else {
        ("READ-WRITE", "SELECT")
    };
    Reply::ok(format!("{verb} completed"))
        .code(code)
        .then(Next::Selected(Box::new(selected)))
}
