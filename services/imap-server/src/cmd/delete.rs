//! DELETE (RFC 3501 §6.3.4).

use crate::cmd::mailbox_arg;
use crate::out::Reply;
use crate::session::Session;

pub(crate) async fn run(s: &mut Session, mailbox: &[u8]) -> Reply {
    let Some(user) = s.user() else {
        return Reply::bad("Not authenticated");
    };
    let name = match mailbox_arg(mailbox) {
        Ok(n) => n,
        Err(r) => return r,
    };
    if name == "INBOX" {
        return Reply::no("INBOX cannot be deleted").code("CANNOT");
    }
    match s.server.mail.delete_mailbox(user, &name).await {
        Ok(()) => Reply::ok("DELETE completed"),
        Err(e) => Reply::meta(&e),
    }
}
