//! DELETE (RFC 3501 §6.3.4).

use crate::cmd::mailbox_arg;
use crate::out::{Next, Reply};
use crate::session::Session;

pub(crate) async fn run(s: &mut Session, mailbox: &[u8]) -> Reply {
    let Some(user) = s.user() else {
        return Reply::bad("Not authenticated");
    };
    let name = match mailbox_arg(s, mailbox) {
        Ok(n) => n,
        Err(r) => return r,
    };
    if name == "INBOX" {
        return Reply::no("INBOX cannot be deleted").code("CANNOT");
    }
    // Deleting the mailbox this session has selected ends the selection quietly; only other
    // sessions get the BYE of a vanished mailbox. The extra lookup happens only when selected.
    let deletes_selected = match s.selected_mut() {
        Some((_, sel)) => {
            let id = sel.id;
            matches!(s.server.mail.mailbox_status(user, &name).await, Ok(info) if info.id == id)
        }
        None => false,
    };
    match s.server.mail.delete_mailbox(user, &name).await {
        Ok(()) if deletes_selected => Reply::ok("DELETE completed").then(Next::Deselect),
        Ok(()) => Reply::ok("DELETE completed"),
        Err(e) => Reply::meta(&e),
    }
}
