//! Delivery of one message to the accepted recipients: for each, its own copy with
//! `Return-Path` and `Delivered-To` prepended (RFC 5321 §4.4 puts the return path at final
//! delivery), stored content-addressed in the blob store first and then made visible with one
//! `MailStore::append`, exactly like an IMAP APPEND, so the change wakes IDLE clients the same
//! way. The reply for a recipient is `250` only after both steps succeeded; a failure leaves at
//! worst an unreferenced blob (collected later), never metadata without its body.

use crate::body::Body;
use crate::reply::Reply;
use crate::server::{LmtpServer, OverQuotaReply};
use crate::telemetry::{self, Outcome};
use bytes::{Bytes, BytesMut};
use std::time::Instant;
use yubin_ingest::{INLINE_SUMMARY_LIMIT, IngestError, Source, ingest};
use yubin_meta_api::{InternalDate, MailboxInfo, MetaError, SpecialUse, UserId};

const INBOX: &str = "INBOX";

/// A recipient accepted at `RCPT`.
#[derive(Debug, Clone)]
pub(crate) struct Recipient {
    /// The address as given in `RCPT TO`, for `Delivered-To`.
    pub address: String,
    pub user: UserId,
    /// The `+detail` of the address: the folder to deliver into if the account has one.
    pub detail: Option<String>,
}

/// Delivers `body` to every recipient, in order; one reply per recipient, in `RCPT` order
/// (RFC 2033 §4.2).
pub(crate) async fn deliver(
    server: &LmtpServer,
    sender: &str,
    recipients: &[Recipient],
    body: Body,
) -> Vec<Reply> {
    let large = body.len() > INLINE_SUMMARY_LIMIT as u64;
    // Held for the whole delivery of a large message: it bounds how many whole messages this
    // node holds in memory at once.
    let _permit = if large {
        match server.large_delivery_slots.acquire().await {
            Ok(p) => Some(p),
            Err(_) => return failed_all(recipients, "Server shutting down"),
        }
    } else {
        None
    };
    let message = match body {
        Body::Memory(bytes) => bytes,
        Body::Spooled { path, size } => {
            let read = tokio::task::spawn_blocking(move || {
                let raw = std::fs::read(&path)?;
                if raw.len() as u64 != size {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "spool file changed size",
                    ));
                }
                Ok(Bytes::from(raw))
            })
            .await;
            match read {
                Ok(Ok(bytes)) => bytes,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "reading an lmtp spool file failed");
                    return failed_all(recipients, "Local error reading the message");
                }
                Err(e) => {
                    tracing::error!(error = %e, "spool read task failed");
                    return failed_all(recipients, "Local error reading the message");
                }
            }
        }
    };
    let mut replies = Vec::with_capacity(recipients.len());
    for rcpt in recipients {
        let started = Instant::now();
        let (reply, outcome) = deliver_one(server, sender, rcpt, &message).await;
        telemetry::delivery(outcome);
        telemetry::delivery_duration(started.elapsed());
        match outcome {
            Outcome::Delivered => tracing::info!(
                rcpt = %rcpt.address,
                user = rcpt.user.0,
                size = message.len(),
                "delivered"
            ),
            _ => {
                tracing::warn!(rcpt = %rcpt.address, reply = %reply.text, code = reply.code, "delivery failed")
            }
        }
        replies.push(reply);
    }
    replies
}

fn failed_all(recipients: &[Recipient], why: &str) -> Vec<Reply> {
    recipients
        .iter()
        .map(|_| {
            telemetry::delivery(Outcome::TempFailure);
            Reply::temporary_failure(why)
        })
        .collect()
}

/// The stored copy for one recipient: the trace fields, then the message as received.
pub(crate) fn with_trace_fields(sender: &str, rcpt: &str, message: &[u8]) -> Bytes {
    let prefix = format!("Return-Path: <{sender}>\r\nDelivered-To: {rcpt}\r\n");
    let mut raw = BytesMut::with_capacity(prefix.len() + message.len());
    raw.extend_from_slice(prefix.as_bytes());
    raw.extend_from_slice(message);
    raw.freeze()
}

async fn deliver_one(
    server: &LmtpServer,
    sender: &str,
    rcpt: &Recipient,
    message: &Bytes,
) -> (Reply, Outcome) {
    let raw = with_trace_fields(sender, &rcpt.address, message);
    // Body first (the one ingest path IMAP APPEND takes too): durable in the blob store before
    // any metadata points at it. The copy is in memory, so no spool slot is needed.
    let ingested = match ingest(
        server.blobs.as_ref(),
        rcpt.user,
        Source::Memory(raw),
        &server.large_delivery_slots,
    )
    .await
    {
        Ok(i) => i,
        Err(IngestError::Blob(e)) => {
            tracing::warn!(error = %e, "storing a delivered body failed");
            return (
                Reply::temporary_failure("Message store temporarily unavailable"),
                Outcome::TempFailure,
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "storing a delivered message failed");
            return (
                Reply::temporary_failure("Local error in processing"),
                Outcome::TempFailure,
            );
        }
    };
    let mailbox = match target_mailbox(server, rcpt).await {
        Ok(m) => m,
        Err(e) => return meta_failure(&e, server.config.over_quota),
    };
    let new = ingested.into_new_message(now(), Vec::new());
    let mut result = server
        .mail
        .append(rcpt.user, &mailbox, vec![new.clone()])
        .await;
    if matches!(result, Err(MetaError::NotFound(_))) && mailbox != INBOX {
        // The detail folder was deleted since it was looked up: INBOX is where mail goes then.
        result = server.mail.append(rcpt.user, INBOX, vec![new]).await;
    }
    match result {
        Ok(r) => {
            let uid = r.uids.first().map_or(0, |u| u.0);
            (
                Reply::new(
                    250,
                    "2.0.0",
                    format!("<{}> delivered to {mailbox} (uid {uid})", rcpt.address),
                ),
                Outcome::Delivered,
            )
        }
        Err(e) => meta_failure(&e, server.config.over_quota),
    }
}

/// The account's folder named by the address detail (case-insensitively) when mail from
/// outside may be filed there, else INBOX.
async fn target_mailbox(server: &LmtpServer, rcpt: &Recipient) -> Result<String, MetaError> {
    let Some(detail) = &rcpt.detail else {
        return Ok(INBOX.to_string());
    };
    let mailboxes = server.mail.list_mailboxes(rcpt.user).await?;
    Ok(mailboxes
        .into_iter()
        .find(|m| m.name.eq_ignore_ascii_case(detail) && takes_detail_delivery(m))
        .map_or_else(|| INBOX.to_string(), |m| m.name))
}

/// Whether a `+detail` address may file mail into `mailbox`. The detail is chosen by whoever
/// sends the mail, so it must not plant messages where the user keeps what they wrote
/// themselves (`\Sent`, `\Drafts`: a forged "sent" message, a draft one edits and sends) or
/// where mail is on its way out (`\Trash`); `\All` and `\Flagged` are views of other
/// mailboxes (RFC 6154 §2). Such mail goes to INBOX instead, as for an unknown folder.
fn takes_detail_delivery(mailbox: &MailboxInfo) -> bool {
    !matches!(
        mailbox.special_use,
        Some(
            SpecialUse::Sent
                | SpecialUse::Drafts
                | SpecialUse::Trash
                | SpecialUse::All
                | SpecialUse::Flagged
        )
    )
}

/// The reply for a metadata error at delivery.
pub(crate) fn meta_failure(e: &MetaError, over_quota: OverQuotaReply) -> (Reply, Outcome) {
    match e {
        MetaError::OverQuota(_) => {
            let reply = match over_quota {
                OverQuotaReply::Permanent => Reply::new(552, "5.2.2", "Mailbox is full"),
                OverQuotaReply::Temporary => Reply::new(452, "4.2.2", "Mailbox is full"),
            };
            (reply, Outcome::OverQuota)
        }
        // The account was deleted or disabled since RCPT.
        MetaError::NotFound(_) | MetaError::AuthenticationFailed => {
            (Reply::unknown_user(), Outcome::UnknownUser)
        }
        MetaError::Unavailable(_) => (
            Reply::temporary_failure("Mail store temporarily unavailable"),
            Outcome::TempFailure,
        ),
        // A bug or bad data on our side: the MTA keeps the message and retries rather than
        // bouncing it for something the sender cannot fix.
        MetaError::Invalid(_)
        | MetaError::AlreadyExists(_)
        | MetaError::Limit(_)
        | MetaError::Internal(_) => {
            tracing::error!(error = %e, "delivery failed in the metadata store");
            (
                Reply::temporary_failure("Local error in processing"),
                Outcome::TempFailure,
            )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_fields_come_first() {
        let raw = with_trace_fields(
            "a@example.org",
            "bob+x@example.com",
            b"Subject: hi\r\n\r\nbody\r\n",
        );
        assert_eq!(
            &raw[..],
            b"Return-Path: <a@example.org>\r\nDelivered-To: bob+x@example.com\r\nSubject: hi\r\n\r\nbody\r\n"
        );
        let bounce = with_trace_fields("", "bob@example.com", b"\r\n");
        assert!(bounce.starts_with(b"Return-Path: <>\r\n"));
    }

    #[test]
    fn metadata_errors_map_to_reply_codes() {
        let over = MetaError::OverQuota("storage".into());
        let (r, o) = meta_failure(&over, OverQuotaReply::Permanent);
        assert_eq!((r.code, r.enhanced, o), (552, "5.2.2", Outcome::OverQuota));
        let (r, _) = meta_failure(&over, OverQuotaReply::Temporary);
        assert_eq!((r.code, r.enhanced), (452, "4.2.2"));
        let (r, o) = meta_failure(
            &MetaError::Unavailable("redis".into()),
            OverQuotaReply::Permanent,
        );
        assert_eq!(
            (r.code, r.enhanced, o),
            (451, "4.3.0", Outcome::TempFailure)
        );
        let (r, o) = meta_failure(
            &MetaError::NotFound("user".into()),
            OverQuotaReply::Permanent,
        );
        assert_eq!(
            (r.code, r.enhanced, o),
            (550, "5.1.1", Outcome::UnknownUser)
        );
        let (r, _) = meta_failure(
            &MetaError::Internal("bug".into()),
            OverQuotaReply::Permanent,
        );
        assert_eq!(r.code, 451);
    }
}
