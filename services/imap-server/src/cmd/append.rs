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
use crate::spool::Spool;
use yubin_imap_proto::{AppendBody, AppendMessage};
use yubin_ingest::{IngestError, Source, ingest};
use yubin_meta_api::{InternalDate, MetaError, NewMessage, UidSet, UserId};

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

/// Stores the body of one APPEND message (or REPLACE's, RFC 8508) through the one ingest path
/// (`yubin_ingest`, which LMTP delivery uses too) and returns what `MailStore::append` needs
/// to make it visible. `spooled` holds the command's spooled literals, which
/// `AppendBody::Streamed` indexes.
pub(crate) async fn store_message(
    s: &Session,
    user: UserId,
    m: AppendMessage,
    spooled: &[Spool],
) -> Result<NewMessage, Reply> {
    let flags = crate::cmd::store::flags_arg(&m.flags, s.server.config.max_flags_per_command)?;
    let blobs = s.server.blobs.as_ref();
    let slots = &s.server.summary_slots;
    let ingested = match m.message {
        AppendBody::Inline(raw) => ingest(blobs, user, Source::Memory(raw), slots).await,
        AppendBody::Catenate(parts) => {
            // The assembled message is in memory (up to APPENDLIMIT) until it is summarized:
            // the same peak as a spooled body's summary, so bounded by the same slots.
            let Ok(_permit) = slots.acquire().await else {
                return Err(Reply::no("Server shutting down").code("UNAVAILABLE"));
            };
            let raw = crate::cmd::catenate::assemble(s, user, parts, spooled).await?;
            ingest(blobs, user, Source::Memory(raw), slots).await
        }
        AppendBody::Streamed { size, index } => match spooled.get(index) {
            Some(Spool::Ready(body)) if body.size == size => {
                // The summary needs the whole message in memory (mail-parser works on a slice;
                // no memory map, the crate forbids unsafe code): ingest reads the file back on
                // a blocking thread, at most `summary_slots` at once per node, and drops it as
                // soon as the summary exists. What the connection holds while the client
                // sends, however slowly, stays one read buffer.
                let source = Source::Spooled {
                    path: body.path(),
                    size: body.size,
                    sha256_hex: &body.sha256,
                };
                ingest(blobs, user, source, slots).await
            }
            _ => {
                return Err(
                    Reply::no("Temporarily unavailable, try again later").code("UNAVAILABLE")
                );
            }
        },
    };
    let ingested = ingested.map_err(|e| match e {
        IngestError::Blob(e) => Reply::blob(&e),
        IngestError::ShuttingDown => Reply::no("Server shutting down").code("UNAVAILABLE"),
        IngestError::Local(detail) => {
            tracing::error!(error = %detail, "storing an APPEND message failed");
            Reply::no("Internal server error").code("SERVERBUG")
        }
    })?;
    let internal_date = match m.internal_date {
        Some(d) => InternalDate {
            unix_seconds: d.unix_seconds,
            tz_offset_minutes: d.tz_offset_minutes,
        },
        None => now(),
    };
    Ok(ingested.into_new_message(internal_date, flags))
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
