//! SELECT (RFC 3501 §6.3.1, RFC 9051 §6.3.2); EXAMINE shares it read-only.
//!
//! A rev1 session gets `* n RECENT` and `[UNSEEN n]`, and a SELECT (not EXAMINE) claims the
//! mailbox's `\Recent` messages for this session. An IMAP4rev2 session gets neither (RFC 9051
//! Appendix E) and gets the mailbox's `* LIST` response instead. Every session gets
//! `* OK [CLOSED]` when the command ends a previous selection: RFC 9051 §7.1 and, once QRESYNC
//! is enabled, RFC 7162 §3.2.11 require it; a rev1 client ignores a code it does not know (RFC
//! 3501 §7.1), and Dovecot sends it the same way.
//!
//! Every SELECT reports `[HIGHESTMODSEQ n]` (RFC 7162 §3.1.2.1: every mailbox has persistent
//! MODSEQs) and `[MAILBOXID (id)]` (RFC 8474 §4.2). The `(CONDSTORE)` parameter enables
//! CONDSTORE (RFC 7162 §3.1.8); `(QRESYNC (uidvalidity modseq [known-uids [seq-match]]))`
//! answers what changed since the client's MODSEQ as `* VANISHED (EARLIER)` and FETCH responses
//! (RFC 7162 §3.2.5).

use crate::cmd::{mailbox_arg, uid_ranges};
use crate::names;
use crate::out::{Next, Out, Reply};
use crate::selected::{Selected, flag_list, write_vanished, write_vanished_ranges};
use crate::session::Session;
use yubin_imap_proto::{QresyncParams, SelectParams};
use yubin_meta_api::{
    HIERARCHY_DELIMITER, MailboxId, MetaResult, ModSeq, Uid, UserId, is_system_flag,
};

pub(crate) async fn run(
    s: &mut Session,
    out: &mut Out<'_>,
    mailbox: &[u8],
    params: &SelectParams,
    read_only: bool,
) -> Reply {
    let Some(user) = s.user() else {
        return Reply::bad("Not authenticated");
    };
    // RFC 7162 §3.2.5: the QRESYNC parameter is only valid once QRESYNC is enabled. The command
    // is not executed, so the current selection stays.
    if params.qresync.is_some() && !s.qresync {
        return Reply::bad("QRESYNC parameter without ENABLE QRESYNC");
    }
    if params.condstore {
        s.enable_condstore();
    }
    // A SELECT, even a failing one, ends the current selection (RFC 3501 §6.3.1).
    if s.selected_mut().is_some() {
        out.line("* OK [CLOSED] Previous mailbox is now closed");
    }
    let name = match mailbox_arg(s, mailbox) {
        Ok(n) => n,
        Err(r) => return r.then(Next::Deselect),
    };
    let mail = s.server.mail.clone();
    // A rev2 SELECT lists the mailbox with its children attributes (RFC 9051 §6.3.2), which
    // needs the mailbox list: fetched alongside the snapshot, so it costs no extra latency.
    let (snap, has_children) = if s.rev2 {
        let (snap, list) = tokio::join!(mail.select(user, &name), mail.list_mailboxes(user));
        let prefix = format!("{name}{HIERARCHY_DELIMITER}");
        let children = list.map(|l| l.iter().any(|m| m.name.starts_with(&prefix)));
        (snap, Some(children))
    } else {
        (mail.select(user, &name).await, None)
    };
    let snap = match snap {
        Ok(snap) => snap,
        Err(e) => return Reply::meta(&e).then(Next::Deselect),
    };
    let info = &snap.info;
    let mut flags = String::from("\\Answered \\Flagged \\Deleted \\Seen \\Draft");
    for kw in &snap.keywords {
        if !is_system_flag(kw) {
            flags.push(' ');
            flags.push_str(kw);
        }
    }
    out.line(&format!("* FLAGS ({flags})"));
    if read_only {
        out.line("* OK [PERMANENTFLAGS ()] Read-only mailbox");
    } else if snap.keywords_full {
        // RFC 9051 §7.1 / RFC 3501 §7.1: `\*` says new keywords can be created; a mailbox at
        // its keyword limit cannot take one, so only the known flags are listed.
        out.line(&format!(
            "* OK [PERMANENTFLAGS ({flags})] No new keywords: limit reached"
        ));
    } else {
        out.line(&format!(
            "* OK [PERMANENTFLAGS ({flags} \\*)] Flags permitted"
        ));
    }
    out.line(&format!("* {} EXISTS", snap.uids.len()));
    let first_unseen = snap
        .first_unseen
        .and_then(|first| snap.uids.binary_search(&first).ok());
    let mut selected = Selected::new(info.id, read_only, snap.uids, info.highest_modseq);
    // The view knows every message's flags from here on (as of the snapshot's HIGHESTMODSEQ,
    // which is where its catch-ups start), so FETCH (FLAGS) and flag SEARCH right after SELECT
    // cost a catch-up, not a read of every message.
    selected.learn_snapshot(&snap.flags);
    selected.condstore = s.condstore;
    selected.qresync = s.qresync;
    if s.rev2 {
        selected = selected.for_rev2();
        // RFC 9051 §6.3.2: the mailbox's LIST response, with accurate attributes.
        let mut attrs: Vec<&str> = Vec::new();
        match has_children {
            Some(Ok(true)) => attrs.push("\\HasChildren"),
            Some(Ok(false)) => attrs.push("\\HasNoChildren"),
            // The children attributes are optional (RFC 5258 §4); a failed list leaves them
            // out rather than failing the SELECT.
            Some(Err(e)) => tracing::warn!(error = %e, "listing mailboxes for SELECT failed"),
            None => {}
        }
        if let Some(u) = info.special_use {
            attrs.push(u.as_imap());
        }
        let mut line = format!("* LIST ({}) \"/\" ", attrs.join(" ")).into_bytes();
        names::encode_to(&mut line, &info.name, true);
        line.extend_from_slice(b"\r\n");
        out.buf().extend_from_slice(&line);
    } else {
        let recent = if read_only {
            // EXAMINE leaves \Recent to the next SELECT (RFC 3501 §6.3.2).
            0
        } else {
            // Bounded by the snapshot: messages appended since are claimed by the catch-up
            // that announces them, here or in another session (RFC 3501 §2.3.2).
            let bound = selected.claim_bound();
            let claim = match mail.claim_recent(user, info.id, bound).await {
                Ok(c) => Some(c),
                Err(e) => {
                    // \Recent is advisory: without a claim nothing is recent here.
                    tracing::warn!(error = %e, "claiming \\Recent failed");
                    None
                }
            };
            selected.claim(claim)
        };
        out.line(&format!("* {recent} RECENT"));
        if let Some(i) = first_unseen {
            out.line(&format!("* OK [UNSEEN {}] First unseen", i + 1));
        }
    }
    out.line(&format!(
        "* OK [UIDVALIDITY {}] UIDs valid",
        info.uid_validity
    ));
    out.line(&format!(
        "* OK [UIDNEXT {}] Predicted next UID",
        info.uid_next
    ));
    out.line(&format!(
        "* OK [HIGHESTMODSEQ {}] Highest",
        info.highest_modseq
    ));
    out.line(&format!(
        "* OK [MAILBOXID ({})] Ok",
        mailbox_id(user, info.id)
    ));
    if let Some(q) = &params.qresync
        && q.uid_validity == info.uid_validity.0
        && let Err(e) = resync(&mut selected, mail.as_ref(), user, out, q, info.uid_next).await
    {
        // RFC 7162 §3.2.5 leaves a mismatching UIDVALIDITY silently ignored; a store failure
        // fails the SELECT instead, as the client would otherwise believe it is in sync.
        return Reply::meta(&e).then(Next::Deselect);
    }
    let (code, verb) = if read_only {
        ("READ-ONLY", "EXAMINE")
    } else {
        ("READ-WRITE", "SELECT")
    };
    Reply::ok(format!("{verb} completed"))
        .code(code)
        .then(Next::Selected(Box::new(selected)))
}

/// The RFC 8474 MAILBOXID of a mailbox: mailbox ids are never reused within an account and
/// user ids never across accounts, so the pair names one mailbox for its whole life (RENAME
/// keeps it, CREATE after DELETE gets a new one).
pub(crate) fn mailbox_id(user: UserId, mailbox: MailboxId) -> String {
    format!("M{}-{}", user.0, mailbox.0)
}

/// The QRESYNC part of a SELECT whose UIDVALIDITY matched (RFC 7162 §3.2.5): the UIDs expunged
/// since the client's MODSEQ as `* VANISHED (EARLIER)`, then a FETCH (UID, FLAGS, MODSEQ) for
/// every message of the view changed since, both limited to the client's known UIDs when given.
///
/// Only messages of the view are reported: one expunged after the view's snapshot is still in
/// the view and is announced as `* VANISHED` by a later catch-up, one appended after it arrives
/// with its EXISTS. The optional sequence match data only helps servers that forget old
/// expunges; this one keeps them all (see docs/compliance.md), so it needs none.
async fn resync(
    selected: &mut Selected,
    mail: &dyn yubin_meta_api::MailStore,
    user: UserId,
    out: &mut Out<'_>,
    q: &QresyncParams,
    uid_next: Uid,
) -> MetaResult<()> {
    let changes = mail
        .changes_since(user, selected.id, ModSeq(q.modseq))
        .await?;
    if changes.mailbox_gone {
        // The client's MODSEQ is above the mailbox's HIGHESTMODSEQ under the same UIDVALIDITY:
        // it saw writes the store has lost (a Redis failover). The store has moved the mailbox
        // to a new UIDVALIDITY; the client selects again and resynchronizes in full
        // (RFC 7162 §3.2.5.1), never trusting UIDs it cached under the old one.
        return Err(yubin_meta_api::MetaError::Unavailable(
            "mailbox history changed; select it again".into(),
        ));
    }
    let known = q.known_uids.as_ref().and_then(uid_ranges);
    let is_known = |u: Uid| known.as_ref().is_none_or(|k| k.contains(u));
    if changes.log_trimmed {
        crate::telemetry::expunge_log_trimmed("select");
        // The expunge log no longer reaches back to the client's MODSEQ: every UID below
        // UIDNEXT not in the mailbox, which may include UIDs that never existed (RFC 7162
        // §3.2.5.2 allows it); exact for any MODSEQ the log still covers.
        let absent = selected.absent_ranges(uid_next, known.as_ref());
        write_vanished_ranges(out, &absent, true);
    } else {
        let vanished: Vec<Uid> = changes
            .vanished
            .iter()
            .copied()
            .filter(|u| !selected.contains(*u) && is_known(*u))
            .collect();
        write_vanished(out, &vanished, true);
    }
    for rec in changes.changed {
        // The view keeps the flags it hears of, reported to the client or not.
        selected.learn(rec.uid, rec.modseq, &rec.flags);
        if !is_known(rec.uid) {
            continue;
        }
        let Some(seq) = selected.seq_of(rec.uid) else {
            continue;
        };
        out.line(&format!(
            "* {seq} FETCH (UID {} FLAGS {} MODSEQ ({}))",
            rec.uid,
            flag_list(&rec.flags, selected.is_recent(rec.uid)),
            rec.modseq
        ));
        // The view's own catch-up starts below these changes; it must not repeat them.
        selected.reported(rec.uid, rec.modseq);
        out.flush_if_large().await;
    }
    Ok(())
}
