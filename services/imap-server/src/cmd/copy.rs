//! COPY / UID COPY (RFC 3501 §6.4.7) with COPYUID (RFC 4315); bodies are shared, never copied.

use crate::cmd::{invalid_sequence, mailbox_arg, no_selection};
use crate::out::{Out, Reply};
use crate::session::Session;
use yubin_imap_proto::SequenceSet;
use yubin_meta_api::{CopyResult, MetaError, Uid, UidSet};

pub(crate) async fn run(
    s: &mut Session,
    _out: &mut Out<'_>,
    uid: bool,
    set: &SequenceSet,
    mailbox: &[u8],
) -> Reply {
    match transfer(s, uid, set, mailbox, false).await {
        Ok(Some(r)) => Reply::ok("COPY completed").code(copyuid(&r)),
        Ok(None) => Reply::ok("COPY completed"),
        Err(r) => r,
    }
}

/// The `COPYUID uidvalidity source-set destination-set` code.
pub(crate) fn copyuid(r: &CopyResult) -> String {
    // The store allocates destination UIDs in ascending source order, so the two compacted
    // sets correspond element by element as RFC 4315 §3 requires.
    let src: Vec<Uid> = r.mapping.iter().map(|m| m.0).collect();
    let dst: Vec<Uid> = r.mapping.iter().map(|m| m.1).collect();
    format!(
        "COPYUID {} {} {}",
        r.uid_validity,
        UidSet::from_uids(src).to_imap(),
        UidSet::from_uids(dst).to_imap()
    )
}

/// Shared by COPY and MOVE: resolves the set, calls the store, maps errors. `Ok(None)` when the
/// set matched nothing.
pub(crate) async fn transfer(
    s: &mut Session,
    uid: bool,
    set: &SequenceSet,
    mailbox: &[u8],
    remove_source: bool,
) -> Result<Option<CopyResult>, Reply> {
    let dest = mailbox_arg(s, mailbox)?;
    let mail = s.server.mail.clone();
    let Some((user, sel)) = s.selected_mut() else {
        return Err(no_selection());
    };
    if remove_source && sel.read_only {
        return Err(Reply::no("Mailbox is read-only").code("READ-ONLY"));
    }
    let uids = sel.resolve(set, uid, !uid).map_err(invalid_sequence)?;
    if uids.is_empty() {
        return Ok(None);
    }
    let set = UidSet::from_uids(uids);
    let result = mail
        .copy_messages(user, sel.id, &set, &dest, remove_source)
        .await
        .map_err(|e| match e {
            MetaError::NotFound(_) => Reply::no("Mailbox does not exist").code("TRYCREATE"),
            e => Reply::meta(&e),
        })?;
    sel.dirty = true;
    if result.mapping.is_empty() {
        return Ok(None);
    }
    Ok(Some(result))
}
