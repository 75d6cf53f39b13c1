//! SUBSCRIBE (RFC 3501 §6.3.6).

use crate::cmd::mailbox_arg;
use crate::out::Reply;
use crate::session::Session;

pub(crate) async fn run(s: &mut Session, mailbox: &[u8]) -> Reply {
    set(s, mailbox, true).await
}

/// Shared with UNSUBSCRIBE.
pub(crate) async fn set(s: &mut Session, mailbox: &[u8], subscribed: bool) -> Reply {
    let Some(user) = s.user() else {
        return Reply::bad("Not authenticated");
    };
    let name = match mailbox_arg(s, mailbox) {
        Ok(n) => n,
        Err(r) => return r,
    };
    match s.server.mail.set_subscribed(user, &name, subscribed).await {
        Ok(()) if subscribed => Reply::ok("SUBSCRIBE completed"),
        Ok(()) => Reply::ok("UNSUBSCRIBE completed"),
        Err(e) => Reply::meta(&e),
    }
}
