//! SORT / UID SORT (RFC 5256 §3) with the ESORT result form (RFC 5267 §3), and what SORT and
//! THREAD share: loading the matching messages with the header fields they order by in one
//! round trip to the metadata service, base subject extraction (RFC 5256 §2.1), the sent date
//! (§2.2) and the first address's mailbox.

use std::cmp::Ordering;

use crate::cmd::search::translate;
use crate::out::{Out, Reply};
use crate::session::Session;
use yubin_imap_proto::{SearchKey, SearchReturnOption as R, SortCriterion, SortKey, encode};
use yubin_meta_api::{IndexProjection, IndexedMessage, ModSeq, Uid, UidSet};

/// A matching message the client knows, with its sequence number.
pub(crate) struct Hit {
    pub(crate) seq: u32,
    pub(crate) message: IndexedMessage,
}

impl Hit {
    pub(crate) fn uid(&self) -> Uid {
        self.message.uid
    }

    /// The value of the first header field named `name`, if any.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.message
            .index
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The sent date in UTC seconds: the `Date:` header, or INTERNALDATE when it is missing or
    /// does not parse (RFC 5256 §2.2).
    pub(crate) fn sent_date(&self) -> i64 {
        self.message
            .index
            .sent_date
            .unwrap_or(self.message.internal_date)
            .unix_seconds
    }
}

/// Runs the search part of SORT or THREAD: checks the charset (RFC 5256 §3: `BADCHARSET` for
/// one the server does not support), then returns the matching messages the client has been
/// told about, in sequence order, with the header fields in `headers`.
pub(crate) async fn load(
    s: &mut Session,
    charset: &str,
    search: &SearchKey,
    headers: &[&str],
) -> Result<Vec<Hit>, Reply> {
    if !charset.eq_ignore_ascii_case("UTF-8") && !charset.eq_ignore_ascii_case("US-ASCII") {
        return Err(Reply::no("Unsupported charset").code("BADCHARSET (UTF-8 US-ASCII)"));
    }
    let mail = s.server.mail.clone();
    let Some((user, sel)) = s.selected_mut() else {
        return Err(crate::cmd::no_selection());
    };
    let key = translate(search, sel)?;
    let projection = IndexProjection {
        headers: headers.iter().map(|h| (*h).to_string()).collect(),
        body_chars: 0,
    };
    let found = mail
        .search_indexed(user, sel.id, &key, &projection)
        .await
        .map_err(|e| Reply::meta(&e))?;
    // Only messages the client has been told about exist for it.
    Ok(found
        .into_iter()
        .filter_map(|message| sel.seq_of(message.uid).map(|seq| Hit { seq, message }))
        .collect())
}

/// The highest MODSEQ of `hits` when the criteria use the MODSEQ key (RFC 7162 §3.1.5: SORT
/// and THREAD responses then end with `(MODSEQ n)`, and CONDSTORE is enabled).
pub(crate) async fn modseq_of(
    s: &mut Session,
    search: &SearchKey,
    hits: &[Hit],
) -> Result<Option<u64>, Reply> {
    if !uses_modseq(search) {
        return Ok(None);
    }
    s.enable_condstore();
    if hits.is_empty() {
        return Ok(None);
    }
    let mail = s.server.mail.clone();
    let Some((user, sel)) = s.selected_mut() else {
        return Err(crate::cmd::no_selection());
    };
    let uids = UidSet::from_uids(hits.iter().map(Hit::uid));
    let records = mail
        .fetch(user, sel.id, &uids, false)
        .await
        .map_err(|e| Reply::meta(&e))?;
    Ok(records.iter().map(|r| r.modseq).max().map(|m: ModSeq| m.0))
}

fn uses_modseq(key: &SearchKey) -> bool {
    match key {
        SearchKey::ModSeq(_) => true,
        SearchKey::Not(k) => uses_modseq(k),
        SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        SearchKey::And(keys) => keys.iter().any(uses_modseq),
        _ => false,
    }
}

/// What each sort key compares, computed once per message.
struct SortFields {
    subject: String,
    from: String,
    to: String,
    cc: String,
}

// The command's own arguments, as the dispatcher passes them for every command.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    s: &mut Session,
    out: &mut Out<'_>,
    tag: &str,
    uid: bool,
    criteria: &[SortCriterion],
    charset: &str,
    returns: Option<&[R]>,
    search: &SearchKey,
) -> Reply {
    let hits = match load(s, charset, search, &["Subject", "From", "To", "Cc"]).await {
        Ok(h) => h,
        Err(r) => return r,
    };
    let modseq = match modseq_of(s, search, &hits).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let fields: Vec<SortFields> = hits
        .iter()
        .map(|h| SortFields {
            subject: base_subject(h.header("Subject").unwrap_or("")).0,
            from: first_mailbox(h.header("From").unwrap_or("")),
            to: first_mailbox(h.header("To").unwrap_or("")),
            cc: first_mailbox(h.header("Cc").unwrap_or("")),
        })
        .collect();
    let mut order: Vec<usize> = (0..hits.len()).collect();
    order.sort_by(|&a, &b| {
        for c in criteria {
            let o = compare(c.key, (&hits[a], &fields[a]), (&hits[b], &fields[b]));
            let o = if c.reverse { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        // RFC 5256 §3: messages equal under every key stay in mailbox order.
        hits[a].seq.cmp(&hits[b].seq)
    });
    let numbers: Vec<u32> = order
        .iter()
        .map(|&i| if uid { hits[i].uid().0 } else { hits[i].seq })
        .collect();
    match returns {
        None => {
            let mut line = String::from("* SORT");
            for n in &numbers {
                line.push(' ');
                line.push_str(&n.to_string());
                if line.len() >= 60 * 1024 {
                    out.buf().extend_from_slice(line.as_bytes());
                    line.clear();
                    out.flush_if_large().await;
                }
            }
            if let Some(m) = modseq {
                line.push_str(&format!(" (MODSEQ {m})"));
            }
            out.line(&line);
        }
        Some(options) => {
            // RFC 5267 §3.2: MIN and MAX are the first and last message in sort order, ALL
            // lists them in sort order; items of an empty result are left out except COUNT.
            let has = |o: R| options.contains(&o);
            let all = has(R::All) || options.is_empty();
            let mut line = b"* ESORT (TAG ".to_vec();
            encode::string(&mut line, tag.as_bytes());
            line.push(b')');
            if uid {
                line.extend_from_slice(b" UID");
            }
            if let (true, Some(first)) = (has(R::Min), numbers.first()) {
                line.extend_from_slice(format!(" MIN {first}").as_bytes());
            }
            if let (true, Some(last)) = (has(R::Max), numbers.last()) {
                line.extend_from_slice(format!(" MAX {last}").as_bytes());
            }
            if all && !numbers.is_empty() {
                line.extend_from_slice(b" ALL ");
                line.extend_from_slice(encode::sequence_set(&numbers).as_bytes());
            }
            if has(R::Count) {
                line.extend_from_slice(format!(" COUNT {}", numbers.len()).as_bytes());
            }
            if let Some(m) = modseq {
                line.extend_from_slice(format!(" MODSEQ {m}").as_bytes());
            }
            line.extend_from_slice(b"\r\n");
            out.buf().extend_from_slice(&line);
        }
    }
    Reply::ok("SORT completed")
}

/// One RFC 5256 §3 sort key; strings compare with i;ascii-casemap (already upper-cased).
fn compare(key: SortKey, (a, fa): (&Hit, &SortFields), (b, fb): (&Hit, &SortFields)) -> Ordering {
    match key {
        // Arrival order is UID order within a mailbox.
        SortKey::Arrival => a.uid().cmp(&b.uid()),
        SortKey::Cc => fa.cc.cmp(&fb.cc),
        SortKey::Date => a.sent_date().cmp(&b.sent_date()),
        SortKey::From => fa.from.cmp(&fb.from),
        SortKey::Size => a.message.size.cmp(&b.message.size),
        SortKey::Subject => fa.subject.cmp(&fb.subject),
        SortKey::To => fa.to.cmp(&fb.to),
    }
}

/// The `addr-mailbox` (local part) of the first address in an address header, upper-cased for
/// i;ascii-casemap comparison (RFC 5256 §3 CC, FROM, TO); empty when there is none.
pub(crate) fn first_mailbox(value: &str) -> String {
    let address = first_address(value);
    let local = match address.rfind('@') {
        Some(at) => &address[..at],
        None => address.as_str(),
    };
    let local = local.trim();
    let local = local
        .strip_prefix('"')
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or(local);
    local.to_ascii_uppercase()
}

/// The first `addr-spec` of an RFC 5322 §3.4 address list: the part in angle brackets of a
/// `name-addr`, or a bare `addr-spec`; comments are dropped and a group's display name is
/// skipped. Quoted strings are honoured so a comma or `<` in a display name does not count.
fn first_address(value: &str) -> String {
    let mut plain = String::new();
    let mut in_quotes = false;
    let mut comment_depth = 0usize;
    let mut escaped = false;
    let mut angle: Option<String> = None;
    for ch in value.chars() {
        if escaped {
            escaped = false;
            if let Some(a) = angle.as_mut() {
                a.push(ch);
            } else if comment_depth == 0 {
                plain.push(ch);
            }
            continue;
        }
        match ch {
            '\\' if in_quotes || comment_depth > 0 => escaped = true,
            '"' if comment_depth == 0 => {
                in_quotes = !in_quotes;
                match angle.as_mut() {
                    Some(a) => a.push(ch),
                    None => plain.push(ch),
                }
            }
            '(' if !in_quotes => comment_depth += 1,
            ')' if !in_quotes && comment_depth > 0 => comment_depth -= 1,
            _ if comment_depth > 0 => {}
            '<' if !in_quotes && angle.is_none() => angle = Some(String::new()),
            '>' if !in_quotes && angle.is_some() => {
                return angle.unwrap_or_default().trim().to_string();
            }
            // A group's display name ends with ':'; its first member follows.
            ':' if !in_quotes && angle.is_none() => plain.clear(),
            ',' | ';' if !in_quotes && angle.is_none() => {
                if !plain.trim().is_empty() {
                    return plain.trim().to_string();
                }
                plain.clear();
            }
            _ => match angle.as_mut() {
                Some(a) => a.push(ch),
                None => plain.push(ch),
            },
        }
    }
    match angle {
        Some(a) => a.trim().to_string(),
        None => plain.trim().to_string(),
    }
}

/// The base subject (RFC 5256 §2.1), upper-cased for i;ascii-casemap comparison, and whether
/// the subject was a reply or forward (something step 2, 3 or 6 removed), which THREAD
/// REFERENCES needs (§4 step 5).
pub(crate) fn base_subject(subject: &str) -> (String, bool) {
    // Step 1: the text is already decoded to UTF-8; runs of whitespace become one space.
    // (Leading whitespace, which step 3 would remove, is already gone.)
    let mut s: String = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut reply = false;
    loop {
        // Step 2: trailing "(fwd)" and whitespace.
        loop {
            let trimmed = s.trim_end();
            if trimmed.len() != s.len() {
                s.truncate(trimmed.len());
                continue;
            }
            if s.len()
                .checked_sub(5)
                .and_then(|i| s.get(i..))
                .is_some_and(|t| t.eq_ignore_ascii_case("(fwd)"))
            {
                s.truncate(s.len() - 5);
                reply = true;
                continue;
            }
            break;
        }
        // Steps 3 to 5: leaders and blobs until neither matches.
        loop {
            let mut changed = false;
            // Step 3: subj-leader = (*subj-blob subj-refwd) / WSP.
            loop {
                if let Some(rest) = s.strip_prefix(' ') {
                    s = rest.to_string();
                    changed = true;
                    continue;
                }
                if let Some(rest) = strip_refwd_leader(&s) {
                    s = rest;
                    reply = true;
                    changed = true;
                    continue;
                }
                break;
            }
            // Step 4: a leading subj-blob, when something remains after it.
            if let Some(rest) = strip_blob(&s)
                && !rest.is_empty()
            {
                s = rest.to_string();
                changed = true;
            }
            if !changed {
                break;
            }
        }
        // Step 6: "[fwd: ... ]" wrapping the whole subject.
        if s.len() >= 6
            && s.is_char_boundary(5)
            && s[..5].eq_ignore_ascii_case("[fwd:")
            && s.ends_with(']')
        {
            s = s[5..s.len() - 1].to_string();
            reply = true;
            continue;
        }
        break;
    }
    (s.to_ascii_uppercase(), reply)
}

/// `subj-blob = "[" *BLOBCHAR "]" *WSP` at the start of `s`: what follows it.
fn strip_blob(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('[')?;
    let end = rest.find(['[', ']'])?;
    if !rest[end..].starts_with(']') {
        return None;
    }
    Some(rest[end + 1..].trim_start_matches([' ', '\t']))
}

/// `*subj-blob subj-refwd` at the start of `s`, with
/// `subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"`: what follows it.
fn strip_refwd_leader(s: &str) -> Option<String> {
    let mut rest = s;
    while let Some(r) = strip_blob(rest) {
        rest = r;
    }
    let starts = |word: &str| {
        rest.get(..word.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(word))
    };
    let after_word = if starts("re") {
        &rest[2..]
    } else if starts("fwd") {
        &rest[3..]
    } else if starts("fw") {
        &rest[2..]
    } else {
        return None;
    };
    let mut after = after_word.trim_start_matches([' ', '\t']);
    if let Some(r) = strip_blob(after) {
        after = r;
    }
    after.strip_prefix(':').map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subjects() {
        for (subject, base, reply) in [
            ("Hello", "HELLO", false),
            ("Re: Hello", "HELLO", true),
            ("RE:   hello  ", "HELLO", true),
            ("Re: re: Fwd: hello", "HELLO", true),
            ("Fw: hello (fwd)", "HELLO", true),
            ("hello (FWD) (fwd)", "HELLO", true),
            ("[list] Re: hello", "HELLO", true),
            ("Re[2]: hello", "HELLO", true),
            ("Re [list]: hello", "HELLO", true),
            ("[list] hello", "HELLO", false),
            ("[only a blob]", "[ONLY A BLOB]", false),
            ("[Fwd: Re: hello]", "HELLO", true),
            ("[fwd: [fwd: hello]]", "HELLO", true),
            ("Reply to you", "REPLY TO YOU", false),
            ("re:", "", true),
            ("", "", false),
            ("  \t  ", "", false),
            ("Grüße\t\tnach Köln", "GRüßE NACH KöLN", false),
            ("Fwd:[x] y", "Y", true),
            ("日本 (fwd)", "日本", true),
            ("日本語", "日本語", false),
            ("é", "é", false),
        ] {
            assert_eq!(
                base_subject(subject),
                (base.to_string(), reply),
                "{subject:?}"
            );
        }
    }

    #[test]
    fn first_mailboxes() {
        for (value, mailbox) in [
            ("alice@example.org", "ALICE"),
            ("Alice Smith <alice@example.org>, bob@example.org", "ALICE"),
            ("\"Smith, Alice\" <alice@example.org>", "ALICE"),
            ("bob@example.org (Bob <not this>)", "BOB"),
            ("(comment) carol@example.org", "CAROL"),
            ("Friends: dave@example.org, erin@example.org;", "DAVE"),
            ("undisclosed-recipients:;", ""),
            ("\"quoted local\"@example.org", "QUOTED LOCAL"),
            ("", ""),
            ("<>", ""),
            ("no-at-sign", "NO-AT-SIGN"),
        ] {
            assert_eq!(first_mailbox(value), mailbox, "{value:?}");
        }
    }
}
