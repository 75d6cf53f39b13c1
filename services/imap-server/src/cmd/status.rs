//! STATUS (RFC 3501 §6.3.10, RFC 9051 §6.3.11) with SIZE (RFC 8438), DELETED (RFC 9051),
//! HIGHESTMODSEQ (RFC 7162 §3.1.7), APPENDLIMIT (RFC 7889 §3) and MAILBOXID (RFC 8474 §4.3);
//! the same items serve LIST-STATUS (RFC 5819).

use crate::cmd::{mailbox_arg, not_supported};
use crate::names;
use crate::out::{Out, Reply};
use crate::session::Session;
use yubin_imap_proto::StatusItem;
use yubin_meta_api::{MailboxInfo, UserId};

pub(crate) async fn run(
    s: &mut Session,
    out: &mut Out<'_>,
    mailbox: &[u8],
    items: &[StatusItem],
) -> Reply {
    let Some(user) = s.user() else {
        return Reply::bad("Not authenticated");
    };
    let name = match mailbox_arg(s, mailbox) {
        Ok(n) => n,
        Err(r) => return r,
    };
    if let Err(r) = check_items(items) {
        return r;
    }
    // STATUS HIGHESTMODSEQ is a CONDSTORE enabling command (RFC 7162 §3.1).
    if items.contains(&StatusItem::HighestModSeq) {
        s.enable_condstore();
    }
    let info = match s.server.mail.mailbox_status(user, &name).await {
        Ok(i) => i,
        Err(e) => return Reply::meta(&e),
    };
    write_status(out.buf(), s, user, &info, items);
    Reply::ok("STATUS completed")
}

/// The BAD answer for an item of an extension that is not advertised.
pub(crate) fn check_items(items: &[StatusItem]) -> Result<(), Reply> {
    match items
        .iter()
        .find(|i| matches!(i, StatusItem::DeletedStorage))
    {
        Some(item) => Err(not_supported(&format!("STATUS {item:?}"))),
        None => Ok(()),
    }
}

/// Appends `* STATUS name (item value ...)` with CRLF; items refused by [`check_items`] are
/// skipped.
pub(crate) fn write_status(
    buf: &mut Vec<u8>,
    s: &Session,
    user: UserId,
    info: &MailboxInfo,
    items: &[StatusItem],
) {
    let mut parts = Vec::with_capacity(items.len());
    for item in items {
        parts.push(match item {
            StatusItem::Messages => format!("MESSAGES {}", info.exists),
            // RFC 3501 §6.3.10: the messages with `\Recent`. A message is recent to the one
            // session that claims it (`MailStore::claim_recent`); before any session has, it
            // is recent to the next one to select the mailbox, so this counts those.
            StatusItem::Recent => format!("RECENT {}", info.recent),
            StatusItem::UidNext => format!("UIDNEXT {}", info.uid_next),
            StatusItem::UidValidity => format!("UIDVALIDITY {}", info.uid_validity),
            StatusItem::Unseen => format!("UNSEEN {}", info.unseen),
            StatusItem::Deleted => format!("DELETED {}", info.deleted),
            StatusItem::Size => format!("SIZE {}", info.size),
            StatusItem::HighestModSeq => format!("HIGHESTMODSEQ {}", info.highest_modseq),
            // RFC 7889 §3: the same limit for every mailbox, the one CAPABILITY announces.
            StatusItem::AppendLimit => {
                format!("APPENDLIMIT {}", s.server.config.limits.max_literal)
            }
            StatusItem::MailboxId => format!(
                "MAILBOXID ({})",
                crate::cmd::select::mailbox_id(user, info.id)
            ),
            StatusItem::DeletedStorage => continue,
        });
    }
    buf.extend_from_slice(b"* STATUS ");
    names::encode_to(buf, &info.name, s.rev2);
    buf.extend_from_slice(format!(" ({})\r\n", parts.join(" ")).as_bytes());
}
