//! RENAME (RFC 3501 §6.3.5); inferiors move along, INBOX's messages move out.

use crate::cmd::mailbox_arg;
use crate::out::Reply;
use crate::session::Session;
use yubin_meta_api::is_valid_mailbox_name;

pub(crate) async fn run(s: &mut Session, from: &[u8], to: &[u8]) -> Reply {
    let Some(user) = s.user() else {
        return Reply::bad("Not authenticated");
    };
    let (from, to) = match (mailbox_arg(s, from), mailbox_arg(s, to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if !is_valid_mailbox_name(&to) {
        return Reply::no("Invalid mailbox name").code("CANNOT");
    }
    if to == "INBOX" {
        return Reply::no("INBOX already exists").code("ALREADYEXISTS");
    }
    match s.server.mail.rename_mailbox(user, &from, &to).await {
        Ok(()) => Reply::ok("RENAME completed"),
        Err(e) => Reply::meta(&e),
    }
}
