//! STATUS (RFC 3501 §6.3.10) with SIZE (RFC 8438) and DELETED (RFC 9051).

use crate::cmd::{mailbox_arg, not_supported};
use crate::names;
use crate::out::{Out, Reply};
use crate::session::Session;
use yubin_imap_proto::StatusItem;

pub(crate) async fn run(
    s: &mut Session,
    out: &mut Out<'_>,
    mailbox: &[u8],
    items: &[StatusItem],
) -> Reply {
    let Some(user) = s.user() else {
        return Reply::bad("Not authenticated");
    };
    let name = match mailbox_arg(mailbox) {
        Ok(n) => n,
        Err(r) => return r,
    };
    if let Some(item) = items.iter().find(|i| {
        matches!(
            i,
            StatusItem::HighestModSeq | StatusItem::AppendLimit | StatusItem::MailboxId
        )
    }) {
        return not_supported(&format!("STATUS {item:?}"));
    }
    let info = match s.server.mail.mailbox_status(user, &name).await {
        Ok(i) => i,
        Err(e) => return Reply::meta(&e),
    };
    let mut parts = Vec::with_capacity(items.len());
    for item in items {
        parts.push(match item {
            StatusItem::Messages => format!("MESSAGES {}", info.exists),
            // `\Recent` is per session; no other session's view counts (see SELECT).
            StatusItem::Recent => "RECENT 0".to_string(),
            StatusItem::UidNext => format!("UIDNEXT {}", info.uid_next),
            StatusItem::UidValidity => format!("UIDVALIDITY {}", info.uid_validity),
            StatusItem::Unseen => format!("UNSEEN {}", info.unseen),
            StatusItem::Deleted => format!("DELETED {}", info.deleted),
            StatusItem::Size => format!("SIZE {}", info.size),
            StatusItem::HighestModSeq | StatusItem::AppendLimit | StatusItem::MailboxId => {
                continue;
            }
        });
    }
    let mut line = b"* STATUS ".to_vec();
    names::encode_to(&mut line, &info.name);
    line.extend_from_slice(format!(" ({})\r\n", parts.join(" ")).as_bytes());
    out.buf().extend_from_slice(&line);
    Reply::ok("STATUS completed")
}
