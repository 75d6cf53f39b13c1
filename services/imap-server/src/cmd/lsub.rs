//! LSUB (RFC 3501 §6.3.9): subscribed names matching the pattern; a non-subscribed parent that
//! `%` reaches is listed `\Noselect`.

use crate::cmd::mailbox_arg;
use crate::names::{self, Pattern};
use crate::out::{Out, Reply};
use crate::session::Session;
use std::collections::BTreeMap;

pub(crate) async fn run(
    s: &mut Session,
    out: &mut Out<'_>,
    reference: &[u8],
    pattern: &[u8],
) -> Reply {
    let Some(user) = s.user() else {
        return Reply::bad("Not authenticated");
    };
    let (reference, pattern) = match (mailbox_arg(s, reference), mailbox_arg(s, pattern)) {
        (Ok(r), Ok(p)) => (r, p),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if pattern.is_empty() {
        out.line("* LSUB (\\Noselect) \"/\" \"\"");
        return Reply::ok("LSUB completed");
    }
    let subscriptions = match s.server.mail.list_subscriptions(user).await {
        Ok(v) => v,
        Err(e) => return Reply::meta(&e),
    };
    let full = names::combine(&reference, &pattern);
    let compiled = Pattern::new(&full);
    let mut hits: BTreeMap<&str, bool> = BTreeMap::new();
    for name in &subscriptions {
        if compiled.matches(name) {
            hits.insert(name, true);
        }
        if !full.contains('*') {
            for parent in names::ancestors(name) {
                if compiled.matches(parent) {
                    hits.entry(parent).or_insert(false);
                }
            }
        }
    }
    for (name, subscribed) in hits {
        let attrs = if subscribed { "()" } else { "(\\Noselect)" };
        let mut line = format!("* LSUB {attrs} \"/\" ").into_bytes();
        names::encode_to(&mut line, name, s.rev2);
        out.buf().extend_from_slice(&line);
        out.buf().extend_from_slice(b"\r\n");
    }
    Reply::ok("LSUB completed")
}
