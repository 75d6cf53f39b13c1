//! CLOSE (RFC 3501 §6.4.2): expunges `\Deleted` messages silently when selected read-write.

use crate::cmd::no_selection;
use crate::out::{Next, Reply};
use crate::session::Session;

pub(crate) async fn run(s: &mut Session) -> Reply {
    let mail = s.server.mail.clone();
    let Some((user, sel)) = s.selected_mut() else {
        return no_selection();
    };
    if !sel.read_only
        && let Err(e) = mail.expunge(user, sel.id, None).await
    {
        // The mailbox stays selected so the client can retry.
        return Reply::meta(&e);
    }
    Reply::ok("CLOSE completed").then(Next::Deselect)
}
