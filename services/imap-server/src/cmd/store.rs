//! STORE / UID STORE (RFC 3501 §6.4.6) with the UNCHANGEDSINCE modifier (RFC 7162 §3.1.3).

use crate::cmd::{invalid_sequence, no_selection};
use crate::out::{Out, Reply};
use crate::selected::flag_list;
use crate::session::Session;
use std::collections::{HashMap, HashSet};
use yubin_imap_proto::{SequenceSet, StoreMode, encode};
use yubin_meta_api::{FlagOp, ModSeq, Uid, UidSet, canonical_flag, is_system_flag};

/// Validates and canonicalises client flags: system flags in RFC spelling, `\Recent` dropped (it
/// cannot be set, RFC 3501 §2.3.2), unknown `\`-flags refused, duplicates removed. More than
/// `max` flags get `NO [LIMIT]` (RFC 5530 §3) before any other work: the list is client input
/// bounded only by the line length.
pub(crate) fn flags_arg(flags: &[String], max: usize) -> Result<Vec<String>, Reply> {
    if flags.len() > max {
        return Err(Reply::no(format!("More than {max} flags in one command")).code("LIMIT"));
    }
    let mut out: Vec<String> = Vec::with_capacity(flags.len());
    let mut seen = HashSet::with_capacity(flags.len());
    for f in flags {
        let c = canonical_flag(f);
        if c == "\\Recent" {
            continue;
        }
        if c.starts_with('\\') && !is_system_flag(&c) {
            return Err(Reply::bad(format!("Invalid flag {f}")));
        }
        if seen.insert(c.clone()) {
            out.push(c);
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    s: &mut Session,
    out: &mut Out<'_>,
    uid: bool,
    set: &SequenceSet,
    mode: StoreMode,
    silent: bool,
    flags: &[String],
    unchanged_since: Option<u64>,
) -> Reply {
    let flags = match flags_arg(flags, s.server.config.max_flags_per_command) {
        Ok(f) => f,
        Err(r) => return r,
    };
    // STORE UNCHANGEDSINCE is a CONDSTORE enabling command (RFC 7162 §3.1).
    if unchanged_since.is_some() {
        s.enable_condstore();
    }
    let mail = s.server.mail.clone();
    let Some((user, sel)) = s.selected_mut() else {
        return no_selection();
    };
    if sel.read_only {
        return Reply::no("Mailbox is read-only").code("READ-ONLY");
    }
    let uids = match sel.resolve(set, uid, !uid) {
        Ok(u) => u,
        Err(e) => return invalid_sequence(e),
    };
    if uids.is_empty() {
        return Reply::ok("STORE completed");
    }
    let op = match mode {
        StoreMode::Add => FlagOp::Add,
        StoreMode::Remove => FlagOp::Remove,
        StoreMode::Replace => FlagOp::Replace,
    };
    let set = UidSet::from_uids(uids.iter().copied());
    let client_condition = unchanged_since.map(ModSeq);
    // After .SILENT the client knows a message's new flags only if it knew them before: the
    // session has been told every change up to its highest MODSEQ. So a silent STORE first
    // applies only to messages not changed since (UNCHANGEDSINCE that MODSEQ, RFC 7162 §3.1.3);
    // those are the ones whose result the session may treat as reported. Messages another
    // session changed meanwhile are stored in a second pass under the client's own condition
    // and left for the next catch-up to report with their whole flag state (RFC 3501 §7.4.1).
    let first_condition = match (silent, client_condition) {
        (true, Some(c)) => Some(c.min(sel.highest_modseq())),
        (true, None) => Some(sel.highest_modseq()),
        (false, c) => c,
    };
    let first = match mail
        .store_flags(user, sel.id, &set, op, &flags, first_condition)
        .await
    {
        Ok(r) => r,
        Err(e) => return Reply::meta(&e),
    };
    let mut updated: Vec<(Uid, ModSeq, Vec<String>, bool)> = first
        .updated
        .into_iter()
        .map(|(u, m, f)| (u, m, f, true))
        .collect();
    let mut modified_uids = first.modified;
    if silent && !modified_uids.is_empty() {
        let retry = UidSet::from_uids(modified_uids.iter().copied());
        let second = match mail
            .store_flags(user, sel.id, &retry, op, &flags, client_condition)
            .await
        {
            Ok(r) => r,
            Err(e) => return Reply::meta(&e),
        };
        updated.extend(second.updated.into_iter().map(|(u, m, f)| (u, m, f, false)));
        modified_uids = second.modified;
    }
    // uid -> (modseq, flags) after the STORE; `changed` marks the ones this STORE wrote.
    let mut now: HashMap<Uid, (ModSeq, Vec<String>)> = HashMap::with_capacity(uids.len());
    let mut changed: HashSet<Uid> = HashSet::with_capacity(updated.len());
    for (u, modseq, f, told) in updated {
        if told {
            sel.reported(u, modseq);
        }
        sel.learn(u, modseq, &f);
        changed.insert(u);
        now.insert(u, (modseq, f));
    }
    // RFC 7162 §3.1.3: messages changed after UNCHANGEDSINCE were left alone.
    let modified: HashSet<Uid> = modified_uids.into_iter().collect();
    sel.dirty = true;
    // Messages the store left alone: their flags were already so, or another session expunged
    // them. A silent STORE reports nothing of them. Otherwise the client expects the resulting
    // flags of every message in the set (RFC 3501 §6.4.6): the view's state serves when it
    // agrees with what the STORE asked for (the store left the message alone, so its flags do
    // too), and the store is asked only for the rest.
    let mut ask: Vec<Uid> = Vec::new();
    if !silent {
        for &u in &uids {
            if now.contains_key(&u) || modified.contains(&u) {
                continue;
            }
            match sel.known_flags(u) {
                Some((modseq, f)) if agrees(op, &flags, &f) => {
                    now.insert(u, (modseq, f));
                }
                _ => ask.push(u),
            }
        }
    }
    if !ask.is_empty() {
        match mail
            .fetch(user, sel.id, &UidSet::from_uids(ask), false)
            .await
        {
            Ok(records) => {
                sel.learn_records(&records);
                for r in records {
                    now.insert(r.uid, (r.modseq, r.flags));
                }
            }
            Err(e) => return Reply::meta(&e),
        }
    }
    // A message another session expunged is left out and the STORE still succeeds for the
    // rest (RFC 2180 §4.2.1 allows either; Dovecot answers OK and clients expect it: a NO
    // fails the whole command for them). The EXPUNGE comes at the next command that may send
    // it.
    for &u in &uids {
        let (Some((modseq, f)), Some(seq)) = (now.get(&u), sel.seq_of(u)) else {
            continue;
        };
        // .SILENT suppresses the FLAGS, but once CONDSTORE is enabled every message this
        // STORE changed is still reported with its new MODSEQ (RFC 7162 §3.1.3).
        if silent && !(sel.condstore && changed.contains(&u)) {
            continue;
        }
        let mut items: Vec<String> = Vec::with_capacity(3);
        if uid || sel.qresync {
            items.push(format!("UID {u}"));
        }
        if !silent {
            items.push(format!("FLAGS {}", flag_list(f, sel.is_recent(u))));
        }
        if sel.condstore {
            items.push(format!("MODSEQ ({modseq})"));
        }
        out.line(&format!("* {seq} FETCH ({})", items.join(" ")));
        out.flush_if_large().await;
    }
    if !modified.is_empty() {
        // The MODIFIED code names the messages that failed the UNCHANGEDSINCE test, by
        // sequence number for STORE and by UID for UID STORE (RFC 7162 §3.1.3).
        let mut numbers: Vec<u32> = uids
            .iter()
            .filter(|u| modified.contains(u))
            .filter_map(|&u| if uid { Some(u.0) } else { sel.seq_of(u) })
            .collect();
        numbers.sort_unstable();
        return Reply::ok("Conditional STORE failed")
            .code(format!("MODIFIED {}", encode::sequence_set(&numbers)));
    }
    Reply::ok("STORE completed")
}

/// Whether flags `have` are what a STORE of `flags` with `op` leaves: the store leaves a message
/// alone only if so. Keywords compare case-insensitively, as the store matches them.
fn agrees(op: FlagOp, flags: &[String], have: &[String]) -> bool {
    let holds = |f: &String| have.iter().any(|h| h.eq_ignore_ascii_case(f));
    match op {
        FlagOp::Add => flags.iter().all(holds),
        FlagOp::Remove => !flags.iter().any(holds),
        FlagOp::Replace => {
            flags.len() == have.len()
                && flags.iter().all(holds)
                && have
                    .iter()
                    .all(|h| flags.iter().any(|f| f.eq_ignore_ascii_case(h)))
        }
    }
}
