//! CREATE (RFC 3501 §6.3.3), with CREATE-SPECIAL-USE attributes (RFC 6154 §3) passed through;
//! the tagged OK names the new mailbox's MAILBOXID (RFC 8474 §4.1).

use crate::cmd::mailbox_arg;
use crate::out::Reply;
use crate::session::Session;
use yubin_meta_api::{HIERARCHY_DELIMITER, SpecialUse, is_valid_mailbox_name};

pub(crate) async fn run(s: &mut Session, mailbox: &[u8], special_use: &[String]) -> Reply {
    let Some(user) = s.user() else {
        return Reply::bad("Not authenticated");
    };
    let name = match mailbox_arg(s, mailbox) {
        Ok(n) => n,
        Err(r) => return r,
    };
    // A trailing delimiter only declares the intent to create inferiors (RFC 3501 §6.3.3).
    let name = name.trim_end_matches(HIERARCHY_DELIMITER).to_string();
    if name == "INBOX" {
        return Reply::no("INBOX always exists").code("ALREADYEXISTS");
    }
    if !is_valid_mailbox_name(&name) {
        return Reply::no("Invalid mailbox name").code("CANNOT");
    }
    let mut use_attr = None;
    for attr in special_use {
        match SpecialUse::from_imap(attr) {
            Some(u) if use_attr.is_none() => use_attr = Some(u),
            _ => return Reply::no("Unsupported special-use attribute").code("USEATTR"),
        }
    }
    match s.server.mail.create_mailbox(user, &name, use_attr).await {
        Ok(info) => Reply::ok("CREATE completed").code(format!(
            "MAILBOXID ({})",
            crate::cmd::select::mailbox_id(user, info.id)
        )),
        Err(e) => Reply::meta(&e),
    }
}
