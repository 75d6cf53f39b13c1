//! SETMETADATA (RFC 5464 §4.3): sets entries, or removes them with NIL, all or none.

use crate::cmd::getmetadata::target;
use crate::out::Reply;
use crate::session::Session;
use yubin_meta_api::MetaError;

/// `SETMETADATA mailbox (entry value ...)`.
pub(crate) async fn run(
    s: &mut Session,
    mailbox: &[u8],
    entries: Vec<(String, Option<Vec<u8>>)>,
) -> Reply {
    let Some(user) = s.user() else {
        return Reply::bad("Not authenticated");
    };
    let name = match target(s, mailbox) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let limits = s.server.config.metadata;
    // RFC 5464 §4.3: a value over the limit fails the whole command with the largest size the
    // server accepts.
    if entries.iter().any(|(_, v)| {
        v.as_ref()
            .is_some_and(|v| v.len() as u64 > u64::from(limits.max_entry_size))
    }) {
        return Reply::no("Metadata value too large")
            .code(format!("METADATA MAXSIZE {}", limits.max_entry_size));
    }
    match s
        .server
        .mail
        .set_metadata(user, name.as_deref(), &entries, limits.max_entries)
        .await
    {
        Ok(()) => Reply::ok("SETMETADATA completed"),
        // The only growth set_metadata refuses is the entry count (RFC 5464 §4.3 TOOMANY).
        Err(MetaError::OverQuota(_)) => {
            Reply::no("Too many metadata entries").code("METADATA TOOMANY")
        }
        Err(e) => Reply::meta(&e),
    }
}
