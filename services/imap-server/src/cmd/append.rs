//! APPEND (RFC 3501 §6.3.11) with APPENDUID (RFC 4315). Body first, metadata second: the blob is
//! durable before `MailStore::append` makes it visible, so a crash leaves at worst an orphan
//! blob, never metadata pointing at nothing.

use crate::cmd::{mailbox_arg, not_supported};
use crate::out::Reply;
use crate::session::Session;
use sha2::{Digest, Sha256};
use yubin_imap_proto::AppendMessage;
use yubin_meta_api::{BlobKey, InternalDate, MetaError, NewMessage, UidSet};

/// Messages above this size are summarized off the async worker threads.
const INLINE_SUMMARY_LIMIT: usize = 256 * 1024;

pub(crate) async fn run(s: &mut Session, mailbox: &[u8], messages: Vec<AppendMessage>) -> Reply {
    let Some(user) = s.user() else {
        return Reply::bad("Not authenticated");
    };
    let name = match mailbox_arg(mailbox) {
        Ok(n) => n,
        Err(r) => return r,
    };
    if messages.is_empty() {
        return Reply::bad("APPEND needs a message");
    }
    if messages.iter().any(|m| m.binary) {
        return not_supported("BINARY literal8");
    }
    let mut new = Vec::with_capacity(messages.len());
    for m in messages {
        let flags = match crate::cmd::store::flags_arg(&m.flags) {
            Ok(f) => f,
            Err(r) => return r,
        };
        let digest = hex::encode(Sha256::digest(&m.message));
        let key = BlobKey::for_content(user, &digest);
        if let Err(e) = s.server.blobs.put(&key, m.message.clone()).await {
            return Reply::blob(&e);
        }
        let raw = m.message;
        let size = raw.len() as u64;
        let (summary, index) = if raw.len() > INLINE_SUMMARY_LIMIT {
            match tokio::task::spawn_blocking(move || yubin_mime::summarize(&raw)).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "summary task failed");
                    return Reply::no("Internal server error").code("SERVERBUG");
                }
            }
        } else {
            yubin_mime::summarize(&raw)
        };
        let internal_date = match m.internal_date {
            Some(d) => InternalDate {
                unix_seconds: d.unix_seconds,
                tz_offset_minutes: d.tz_offset_minutes,
            },
            None => now(),
        };
        new.push(NewMessage {
            blob: key,
            size,
            internal_date,
            flags,
            summary: summary.to_bytes(),
            index,
        });
    }
    match s.server.mail.append(user, &name, new).await {
        Ok(r) => {
            if let Some((_, sel)) = s.selected_mut()
                && sel.id == r.mailbox
            {
                sel.dirty = true;
            }
            Reply::ok("APPEND completed").code(format!(
                "APPENDUID {} {}",
                r.uid_validity,
                UidSet::from_uids(r.uids).to_imap()
            ))
        }
        // RFC 3501 §6.3.11: the client may CREATE and retry.
        Err(MetaError::NotFound(_)) => Reply::no("Mailbox does not exist").code("TRYCREATE"),
        Err(e) => Reply::meta(&e),
    }
}

fn now() -> InternalDate {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    InternalDate {
        unix_seconds: secs,
        tz_offset_minutes: 0,
    }
}
