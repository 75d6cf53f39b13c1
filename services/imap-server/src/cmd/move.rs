//! MOVE / UID MOVE (RFC 6851): atomic copy + expunge in the store; the client gets the
//! `COPYUID` as an untagged OK before the EXPUNGEs (RFC 6851 §4.3).

use crate::cmd::copy::{copyuid, transfer};
use crate::cmd::no_selection;
use crate::out::{Out, Reply};
use crate::session::Session;
use yubin_imap_proto::SequenceSet;
use yubin_meta_api::Uid;

pub(crate) async fn run(
    s: &mut Session,
    out: &mut Out<'_>,
    uid: bool,
    set: &SequenceSet,
    mailbox: &[u8],
) -> Reply {
    let result = match transfer(s, uid, set, mailbox, true).await {
        Ok(Some(r)) => r,
        Ok(None) => return Reply::ok("MOVE completed"),
        Err(r) => return r,
    };
    let Some((_, sel)) = s.selected_mut() else {
        return no_selection();
    };
    out.line(&format!("* OK [{}] Moved", copyuid(&result)));
    // RFC 6851 §3.3: the moved messages are expunged from the source and the client is told
    // so now, whatever the form of the command.
    let moved: Vec<Uid> = result.mapping.iter().map(|m| m.0).collect();
    sel.expunged_now(&moved, out);
    Reply::ok("MOVE completed")
}
