//! EXPUNGE (RFC 3501 §6.4.3) and UID EXPUNGE (RFC 4315 §2.1).

use crate::cmd::{invalid_sequence, no_selection};
use crate::out::{Out, Reply};
use crate::session::Session;
use yubin_imap_proto::SequenceSet;
use yubin_meta_api::UidSet;

pub(crate) async fn run(s: &mut Session, out: &mut Out<'_>, uids: Option<&SequenceSet>) -> Reply {
    let mail = s.server.mail.clone();
    let Some((user, sel)) = s.selected_mut() else {
        return no_selection();
    };
    if sel.read_only {
        return Reply::no("Mailbox is read-only").code("READ-ONLY");
    }
    let restrict = match uids {
        Some(set) => match sel.resolve(set, true, false) {
            Ok(v) if v.is_empty() => return Reply::ok("EXPUNGE completed"),
            Ok(v) => Some(UidSet::from_uids(v)),
            Err(e) => return invalid_sequence(e),
        },
        None => None,
    };
    match mail.expunge(user, sel.id, restrict.as_ref()).await {
        Ok(gone) => {
            sel.expunged_now(&gone, out);
            sel.dirty = true;
            Reply::ok("EXPUNGE completed")
        }
        Err(e) => Reply::meta(&e),
    }
}
