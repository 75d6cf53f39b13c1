//! APPEND (RFC 3501 §6.3.11) with APPENDUID (RFC 4315). Body first, metadata second: the blob is
//! durable before `MailStore::append` makes it visible, so a crash leaves at worst an orphan
//! blob, never metadata pointing at nothing.
//!
//! Message literals up to `Limits::max_buffered_literal` arrive in memory; larger ones were
//! spooled to a temporary file by the connection as they arrived (`crate::spool`) and are
//! uploaded from it with `BlobStore::put_file`, so they are never held by the connection.

use crate::cmd::mailbox_arg;
use crate::out::Reply;
use crate::session::Session;
use crate::spool::{Spool, SpooledBody};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use yubin_imap_proto::{AppendBody, AppendMessage};
use yubin_meta_api::{BlobKey, InternalDate, MetaError, NewMessage, SearchIndex, UidSet, UserId};
use yubin_mime::Summary;

/// Messages above this size are summarized off the async worker threads.
const INLINE_SUMMARY_LIMIT: usize = 256 * 1024;

pub(crate) async fn run(s: &mut Session, mailbox: &[u8], messages: Vec<AppendMessage>) -> Reply {
    let Some(user) = s.user() else {
        return Reply::bad("Not authenticated");
    };
    let name = match mailbox_arg(s, mailbox) {
        Ok(n) => n,
        Err(r) => return r,
    };
    if messages.is_empty() {
        return Reply::bad("APPEND needs a message");
    }
    // A literal8 message (RFC 3516 §4.4) is stored as sent: binary parts stay binary, and BODY[]
    // of such a message is sent back as literal8 when it holds NUL octets.
    // Taken (not borrowed) so the files are removed when this command ends, whatever the path.
    let spooled = std::mem::take(&mut s.spooled);
    let mut new = Vec::with_capacity(messages.len());
    // RFC 3502 §6.3.11: all or none. Every body is stored before the one metadata append, so
    // a failing message (flags, blob store) returns here with nothing visible.
    for m in messages {
        match store_message(s, user, m, &spooled).await {
            Ok(n) => new.push(n),
            Err(r) => return r,
        }
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

/// Stores the body of one APPEND message (or REPLACE's, RFC 8508) in the blob store and
/// returns what `MailStore::append` needs to make it visible. `spooled` holds the command's
/// spooled literals, which `AppendBody::Streamed` indexes.
pub(crate) async fn store_message(
    s: &Session,
    user: UserId,
    m: AppendMessage,
    spooled: &[Spool],
) -> Result<NewMessage, Reply> {
    let flags = crate::cmd::store::flags_arg(&m.flags, s.server.config.max_flags_per_command)?;
    let (key, size, summary, index) = match m.message {
        AppendBody::Inline(raw) => store_inline(s, user, raw).await?,
        AppendBody::Catenate(parts) => {
            // The assembled message is in memory (up to APPENDLIMIT) until it is summarized:
            // the same peak as a spooled body's summary, so bounded by the same slots.
            let Ok(_permit) = s.server.summary_slots.acquire().await else {
                return Err(Reply::no("Server shutting down").code("UNAVAILABLE"));
            };
            let raw = crate::cmd::catenate::assemble(s, user, parts, spooled).await?;
            store_inline(s, user, raw).await?
        }
        AppendBody::Streamed { size, index } => match spooled.get(index) {
            Some(Spool::Ready(body)) if body.size == size => store_spooled(s, user, body).await?,
            _ => {
                return Err(
                    Reply::no("Temporarily unavailable, try again later").code("UNAVAILABLE")
                );
            }
        },
    };
    let internal_date = match m.internal_date {
        Some(d) => InternalDate {
            unix_seconds: d.unix_seconds,
            tz_offset_minutes: d.tz_offset_minutes,
        },
        None => now(),
    };
    Ok(NewMessage {
        blob: key,
        size,
        internal_date,
        flags,
        summary: summary.to_bytes(),
        index,
    })
}

/// A stored body: its key, size, summary and search index.
type Stored = (BlobKey, u64, Summary, SearchIndex);

/// Stores a body the receiver buffered (at most `max_buffered_literal` bytes).
async fn store_inline(s: &Session, user: UserId, raw: bytes::Bytes) -> Result<Stored, Reply> {
    let digest = hex::encode(Sha256::digest(&raw));
    let key = BlobKey::for_content(user, &digest);
    if let Err(e) = s.server.blobs.put(&key, raw.clone()).await {
        return Err(Reply::blob(&e));
    }
    let size = raw.len() as u64;
    let (summary, index) = if raw.len() > INLINE_SUMMARY_LIMIT {
        match tokio::task::spawn_blocking(move || yubin_mime::summarize(&raw)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "summary task failed");
                return Err(Reply::no("Internal server error").code("SERVERBUG"));
            }
        }
    } else {
        yubin_mime::summarize(&raw)
    };
    Ok((key, size, summary, index))
}

/// Stores a spooled body: uploaded from the file, body first as always.
///
/// The summary needs the whole message in memory: mail-parser works on a byte slice, and it is
/// what gives the part offsets that are stored once so that no folder sync reads S3 (no memory
/// map either, the crate forbids unsafe code). So the file is read back here, on a blocking
/// thread, and dropped as soon as the summary exists. That peak is transient, lasts one
/// summary, and at most `summary_slots` of them run at once per node; what the connection
/// holds while the client sends, however slowly, stays one read buffer.
async fn store_spooled(s: &Session, user: UserId, body: &SpooledBody) -> Result<Stored, Reply> {
    let key = BlobKey::for_content(user, &body.sha256);
    if let Err(e) = s.server.blobs.put_file(&key, body.path(), body.size).await {
        return Err(Reply::blob(&e));
    }
    let Ok(_permit) = s.server.summary_slots.acquire().await else {
        return Err(Reply::no("Server shutting down").code("UNAVAILABLE"));
    };
    let path: PathBuf = body.path().to_path_buf();
    let size = body.size;
    match tokio::task::spawn_blocking(move || {
        let raw = std::fs::read(&path)?;
        if raw.len() as u64 != size {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "spool file changed size",
            ));
        }
        Ok(yubin_mime::summarize(&raw))
    })
    .await
    {
        Ok(Ok((summary, index))) => Ok((key, size, summary, index)),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "reading an APPEND spool file failed");
            Err(Reply::no("Internal server error").code("SERVERBUG"))
        }
        Err(e) => {
            tracing::error!(error = %e, "summary task failed");
            Err(Reply::no("Internal server error").code("SERVERBUG"))
        }
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
