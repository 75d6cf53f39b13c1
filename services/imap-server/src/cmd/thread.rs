//! THREAD / UID THREAD (RFC 5256 §3) with the ORDEREDSUBJECT and REFERENCES algorithms (§3, §4,
//! in [`crate::threading`]), over the header fields the search index keeps (one round trip to
//! the metadata service).

use crate::cmd::sort::{Hit, load, modseq_of};
use crate::out::{Out, Reply};
use crate::session::Session;
use crate::sort_keys::base_subject;
use crate::telemetry;
use crate::threading::{self, ThreadMessage, first_msg_id, last_msg_ids};
use yubin_imap_proto::{SearchKey, ThreadAlgorithm};

pub(crate) async fn run(
    s: &mut Session,
    out: &mut Out<'_>,
    uid: bool,
    algorithm: ThreadAlgorithm,
    charset: &str,
    search: &SearchKey,
) -> Reply {
    let headers: &[&str] = match algorithm {
        ThreadAlgorithm::OrderedSubject => &["Subject"],
        ThreadAlgorithm::References => &["Subject", "Message-ID", "In-Reply-To", "References"],
    };
    let hits = match load(s, charset, search, headers).await {
        Ok(h) => h,
        Err(r) => return r,
    };
    let modseq = match modseq_of(s, search, &hits).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let limits = s.server.config.sort_thread;
    let mut truncated = 0u64;
    let messages: Vec<ThreadMessage> = hits
        .iter()
        .map(|h| {
            let (m, cut) = message(h, uid, algorithm, &limits);
            truncated += u64::from(cut);
            m
        })
        .collect();
    if truncated > 0 {
        telemetry::thread_references_truncated(truncated);
    }
    let threads = match algorithm {
        ThreadAlgorithm::OrderedSubject => threading::ordered_subject(&messages),
        ThreadAlgorithm::References => threading::references(&messages),
    };
    let mut line = String::from("* THREAD ");
    for i in 0..threads.len() {
        threads.encode(i, &mut line);
        if line.len() >= 60 * 1024 {
            out.buf().extend_from_slice(line.as_bytes());
            line.clear();
            out.flush_if_large().await;
        }
    }
    if let Some(m) = modseq {
        line.push_str(&format!(" (MODSEQ {m})"));
    }
    out.line(line.trim_end());
    Reply::ok("THREAD completed")
}

/// What the algorithm needs of one message, and whether its References were cut to the limit.
fn message(
    h: &Hit,
    uid: bool,
    algorithm: ThreadAlgorithm,
    limits: &crate::SortThreadLimits,
) -> (ThreadMessage, bool) {
    let (base_subject, is_reply) = base_subject(
        h.header("Subject").unwrap_or(""),
        limits.max_sort_field_bytes,
    );
    let (message_id, references, cut) = match algorithm {
        ThreadAlgorithm::OrderedSubject => (None, Vec::new(), false),
        ThreadAlgorithm::References => {
            // RFC 5256 §4 step 1: the References chain, or else the first id of In-Reply-To.
            let (mut references, cut) =
                last_msg_ids(h.header("References").unwrap_or(""), limits.max_references);
            if references.is_empty() && limits.max_references > 0 {
                references.extend(first_msg_id(h.header("In-Reply-To").unwrap_or("")));
            }
            (
                first_msg_id(h.header("Message-ID").unwrap_or("")),
                references,
                cut,
            )
        }
    };
    (
        ThreadMessage {
            number: if uid { h.uid().0 } else { h.seq },
            seq: h.seq,
            date: h.sent_date(),
            base_subject,
            is_reply,
            message_id,
            references,
        },
        cut,
    )
}
