//! REPLACE / UID REPLACE (RFC 8508): appends a new version of a message to a mailbox, then
//! expunges the original from the selected mailbox. The new message is durable first (body in
//! the blob store, then its metadata), so a failure at any step loses nothing: at worst both
//! versions exist.
//!
//! RFC 8508 §3: the client learns the new message's UID from an untagged
//! `OK [APPENDUID ...]` (RFC 4315) sent before the `EXPUNGE` (or `VANISHED` with QRESYNC,
//! RFC 7162 §3.2.10) of the original, as MOVE does with COPYUID (RFC 6851 §4.3).

use crate::cmd::append::store_message;
use crate::cmd::{invalid_sequence, mailbox_arg, no_selection};
use crate::out::{Out, Reply};
use crate::session::Session;
use yubin_imap_proto::{AppendMessage, SeqBound, SequenceSet};
use yubin_meta_api::{FlagOp, MetaError, UidSet};

pub(crate) async fn run(
    s: &mut Session,
    out: &mut Out<'_>,
    uid: bool,
    target: u32,
    mailbox: &[u8],
    message: AppendMessage,
) -> Reply {
    // Taken (not borrowed) so the spool files are removed when this command ends.
    let spooled = std::mem::take(&mut s.spooled);
    let name = match mailbox_arg(s, mailbox) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let Some((user, sel)) = s.selected_mut() else {
        return no_selection();
    };
    // The original is expunged, which a read-only selection does not allow (RFC 8508 §3).
    if sel.read_only {
        return Reply::no("Mailbox is read-only").code("READ-ONLY");
    }
    let source = sel.id;
    let set = SequenceSet::Ranges(vec![(SeqBound::Number(target), SeqBound::Number(target))]);
    // A sequence number outside the view is a client error (BAD); a UID that is gone is NO
    // (RFC 8508 §3), both before anything is stored.
    let original = match sel.resolve(&set, uid, !uid) {
        Ok(uids) => match uids.first() {
            Some(&u) => u,
            None => return Reply::no("No such message").code("NONEXISTENT"),
        },
        Err(e) => return invalid_sequence(e),
    };

    let new = match store_message(s, user, message, &spooled).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let appended = match s.server.mail.append(user, &name, vec![new]).await {
        Ok(r) => r,
        // RFC 8508 §3 follows APPEND (RFC 3501 §6.3.11): the client may CREATE and retry.
        Err(MetaError::NotFound(_)) => {
            return Reply::no("Mailbox does not exist").code("TRYCREATE");
        }
        Err(e) => return Reply::meta(&e),
    };
    let mail = s.server.mail.clone();
    let Some((_, sel)) = s.selected_mut() else {
        return no_selection();
    };
    if appended.mailbox == sel.id {
        // The new message is announced by the catch-up's EXISTS after this command.
        sel.dirty = true;
    }
    out.line(&format!(
        "* OK [APPENDUID {} {}] Replacement Message ID",
        appended.uid_validity,
        UidSet::from_uids(appended.uids).to_imap()
    ));
    // RFC 8508 §3: the original is removed as by `UID STORE +FLAGS.SILENT (\Deleted)` and
    // `UID EXPUNGE` restricted to it; other \Deleted messages stay.
    let only_original = UidSet::from_uids(vec![original]);
    let deleted = ["\\Deleted".to_string()];
    if let Err(e) = mail
        .store_flags(user, source, &only_original, FlagOp::Add, &deleted, None)
        .await
    {
        return Reply::meta(&e);
    }
    let expunged = match mail.expunge(user, source, Some(&only_original)).await {
        Ok(u) => u,
        Err(e) => return Reply::meta(&e),
    };
    sel.expunged_now(&expunged, out);
    Reply::ok("REPLACE completed")
}
