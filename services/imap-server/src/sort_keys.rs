//! What SORT and THREAD compare, as pure functions over header values: the base subject
//! (RFC 5256 §2.1) and the mailbox of the first address (RFC 5256 §3 CC, FROM, TO).
//!
//! Header values are hostile: a Subject may hold a hundred thousand "Re: " prefixes, and a
//! field may be megabytes long. Only the first `max_bytes` of a field are considered (a
//! setting, [`crate::SortThreadLimits::max_sort_field_bytes`]), and each function is one
//! linear pass over them.

/// Cuts `value` to at most `max_bytes`, at a character boundary.
fn capped(value: &str, max_bytes: usize) -> &str {
    let mut cut = value.len().min(max_bytes);
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    &value[..cut]
}

/// The base subject (RFC 5256 §2.1), upper-cased for i;ascii-casemap comparison, and whether
/// the subject was a reply or forward (step 2, 3 or 6 removed something), which THREAD
/// REFERENCES needs (§4 step 5).
///
/// The steps work on a window `[start, end)` of the normalized text that only ever shrinks, so
/// each byte is consumed once; the one scan that can fail repeatedly (looking past a run of
/// `[blob]`s for a "Re:" in step 3, while step 4 removes those blobs one by one) remembers
/// where it failed.
pub(crate) fn base_subject(subject: &str, max_bytes: usize) -> (String, bool) {
    // Step 1: the text is already decoded to UTF-8; runs of whitespace become one space.
    let mut s = String::with_capacity(subject.len().min(max_bytes));
    for word in capped(subject, max_bytes).split_whitespace() {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(word);
    }
    let b = s.as_bytes();
    let (mut start, mut end) = (0, b.len());
    let mut reply = false;
    loop {
        // Step 2: subj-trailer = "(fwd)" / WSP, from the end, repeatedly.
        loop {
            if end > start && b[end - 1] == b' ' {
                end -= 1;
            } else if end - start >= 5 && b[end - 5..end].eq_ignore_ascii_case(b"(fwd)") {
                end -= 5;
                reply = true;
            } else {
                break;
            }
        }
        // Steps 3 to 5 until neither step matches. `no_leader` is the span of positions from
        // which the step 3 scan is known to fail: every position inside one run of blobs
        // reaches the same end of the run and the same text after it.
        let mut no_leader: Option<(usize, usize)> = None;
        loop {
            let mut changed = false;
            // Step 3: subj-leader = (*subj-blob subj-refwd) / WSP, repeatedly.
            loop {
                if start < end && b[start] == b' ' {
                    start += 1;
                    changed = true;
                    continue;
                }
                if no_leader.is_some_and(|(from, to)| (from..=to).contains(&start)) {
                    break;
                }
                match refwd_leader(b, start, end) {
                    Ok(next) => {
                        start = next;
                        reply = true;
                        changed = true;
                    }
                    Err(run_end) => {
                        no_leader = Some((start, run_end));
                        break;
                    }
                }
            }
            // Step 4: a leading subj-blob, when something remains after it.
            if let Some(next) = blob(b, start, end)
                && next < end
            {
                start = next;
                changed = true;
            }
            if !changed {
                break;
            }
        }
        // Step 6: "[fwd:" ... "]" around the whole rest; then again from step 2.
        if end - start >= 6
            && b[start..start + 5].eq_ignore_ascii_case(b"[fwd:")
            && b[end - 1] == b']'
        {
            start += 5;
            end -= 1;
            reply = true;
            continue;
        }
        break;
    }
    // Every cut above is next to an ASCII byte, so the window is on character boundaries.
    (s[start..end].to_ascii_uppercase(), reply)
}

/// `subj-blob = "[" *BLOBCHAR "]" *WSP` at `i`: the position after it.
fn blob(b: &[u8], i: usize, end: usize) -> Option<usize> {
    if i >= end || b[i] != b'[' {
        return None;
    }
    let close = i + 1 + b[i + 1..end].iter().position(|&c| c == b'[' || c == b']')?;
    if b[close] != b']' {
        return None;
    }
    let mut next = close + 1;
    while next < end && (b[next] == b' ' || b[next] == b'\t') {
        next += 1;
    }
    Some(next)
}

/// `*subj-blob subj-refwd` at `i`, with
/// `subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"`: the position after it, or where
/// the run of blobs ended when it does not match.
fn refwd_leader(b: &[u8], i: usize, end: usize) -> Result<usize, usize> {
    let mut at = i;
    while let Some(next) = blob(b, at, end) {
        at = next;
    }
    let run_end = at;
    let rest = &b[at..end];
    let starts =
        |word: &[u8]| rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word);
    at += if starts(b"re") {
        2
    } else if starts(b"fwd") {
        3
    } else if starts(b"fw") {
        2
    } else {
        return Err(run_end);
    };
    while at < end && (b[at] == b' ' || b[at] == b'\t') {
        at += 1;
    }
    if let Some(next) = blob(b, at, end) {
        at = next;
    }
    if at < end && b[at] == b':' {
        Ok(at + 1)
    } else {
        Err(run_end)
    }
}

/// The `addr-mailbox` (local part) of the first address in an address header, upper-cased for
/// i;ascii-casemap comparison (RFC 5256 §3 CC, FROM, TO); empty when there is none.
pub(crate) fn first_mailbox(value: &str, max_bytes: usize) -> String {
    let address = first_address(capped(value, max_bytes));
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

/// One element of an address list as [`first_address`] reads it.
#[derive(Default)]
struct Element {
    /// The text outside comments and angle brackets.
    plain: String,
    /// The content of the last `<...>`: a `name-addr`'s `angle-addr` comes last.
    angle: Option<String>,
}

impl Element {
    /// The address this element names, if it looks like one: an `angle-addr`, or a bare
    /// `addr-spec` (with an `@`).
    fn address(&self) -> Option<String> {
        match &self.angle {
            Some(a) => Some(a.trim().to_string()),
            None if self.plain.contains('@') => Some(self.plain.trim().to_string()),
            None => None,
        }
    }
}

/// The first address of an RFC 5322 §3.4 address list: the part in angle brackets of a
/// `name-addr`, or a bare `addr-spec`; comments are dropped and a group's display name is
/// skipped. Quoted strings are honoured so a comma or `<` in a display name does not count.
///
/// The index keeps header values with RFC 2047 encoded-words decoded, so a display name such
/// as `=?UTF-8?Q?Doe=2C_John?=` arrives as `Doe, John` with a bare comma: an element with
/// neither `@` nor angle brackets is such a fragment, not an address, and is skipped (it only
/// counts when nothing else in the field is an address).
fn first_address(value: &str) -> String {
    let mut fallback: Option<String> = None;
    let mut el = Element::default();
    let mut in_quotes = false;
    let mut in_angle = false;
    let mut comment_depth = 0usize;
    let mut escaped = false;
    let push = |el: &mut Element, in_angle: bool, ch: char| match (in_angle, el.angle.as_mut()) {
        (true, Some(a)) => a.push(ch),
        _ => el.plain.push(ch),
    };
    let mut end_element = |el: &mut Element| -> Option<String> {
        let done = std::mem::take(el);
        if let Some(a) = done.address() {
            return Some(a);
        }
        let plain = done.plain.trim();
        if fallback.is_none() && !plain.is_empty() {
            fallback = Some(plain.to_string());
        }
        None
    };
    for ch in value.chars() {
        if escaped {
            escaped = false;
            if comment_depth == 0 {
                push(&mut el, in_angle, ch);
            }
            continue;
        }
        match ch {
            '\\' if in_quotes || comment_depth > 0 => escaped = true,
            '"' if comment_depth == 0 => {
                in_quotes = !in_quotes;
                push(&mut el, in_angle, ch);
            }
            '(' if !in_quotes => comment_depth += 1,
            ')' if !in_quotes && comment_depth > 0 => comment_depth -= 1,
            _ if comment_depth > 0 => {}
            '<' if !in_quotes && !in_angle => {
                in_angle = true;
                el.angle = Some(String::new());
            }
            '>' if !in_quotes && in_angle => in_angle = false,
            // A group's display name ends with ':'; its first member follows.
            ':' if !in_quotes && !in_angle => el = Element::default(),
            ',' | ';' if !in_quotes && !in_angle => {
                if let Some(a) = end_element(&mut el) {
                    return a;
                }
            }
            _ => push(&mut el, in_angle, ch),
        }
    }
    if let Some(a) = end_element(&mut el) {
        return a;
    }
    fallback.unwrap_or_default()
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
            ("hello(fwd)", "HELLO", true),
            ("[list] Re: hello", "HELLO", true),
            ("Re[2]: hello", "HELLO", true),
            ("Re [list]: hello", "HELLO", true),
            ("[list] hello", "HELLO", false),
            ("[a] [b] hello", "HELLO", false),
            ("[a][b] re: [c] hello", "HELLO", true),
            ("[only a blob]", "[ONLY A BLOB]", false),
            ("[a] [only a blob]", "[ONLY A BLOB]", false),
            ("[Fwd: Re: hello]", "HELLO", true),
            ("[fwd: [fwd: hello]]", "HELLO", true),
            ("[fwd: hello] (fwd)", "HELLO", true),
            ("Reply to you", "REPLY TO YOU", false),
            ("re:", "", true),
            ("", "", false),
            ("  \t  ", "", false),
            ("[unclosed hello", "[UNCLOSED HELLO", false),
            ("Grüße\t\tnach Köln", "GRüßE NACH KöLN", false),
            ("Fwd:[x] y", "Y", true),
            ("日本 (fwd)", "日本", true),
            ("日本語", "日本語", false),
            ("é", "é", false),
        ] {
            assert_eq!(
                base_subject(subject, 4096),
                (base.to_string(), reply),
                "{subject:?}"
            );
        }
    }

    #[test]
    fn base_subject_considers_only_the_cap() {
        assert_eq!(
            base_subject("Re: hello world", 9),
            ("HELLO".to_string(), true)
        );
        // The cut never splits a character.
        assert_eq!(base_subject("ab日本", 4), ("AB".to_string(), false));
    }

    /// Inputs that make a step-by-step implementation quadratic; each must come out right and
    /// (being linear) at once even in a debug build.
    #[test]
    fn base_subject_of_hostile_subjects() {
        let n = 100_000;
        let cap = 64 * n;
        let leaders = format!("{}hello", "Re: [x] Fwd: ".repeat(n));
        assert_eq!(base_subject(&leaders, cap), ("HELLO".to_string(), true));
        let blobs = format!("{}hello", "[x]".repeat(n));
        assert_eq!(base_subject(&blobs, cap), ("HELLO".to_string(), false));
        let blobs_then_reply = format!("{}re: hello", "[x] ".repeat(n));
        assert_eq!(
            base_subject(&blobs_then_reply, cap),
            ("HELLO".to_string(), true)
        );
        let trailers = format!("hello{}", " (fwd)".repeat(n));
        assert_eq!(base_subject(&trailers, cap), ("HELLO".to_string(), true));
        let wrapped = format!("{}hello{}", "[fwd: ".repeat(n), "]".repeat(n));
        assert_eq!(base_subject(&wrapped, cap), ("HELLO".to_string(), true));
        let unclosed = "[".repeat(n);
        assert_eq!(base_subject(&unclosed, cap).0.len(), n);
    }

    #[test]
    fn first_mailboxes() {
        for (value, mailbox) in [
            ("alice@example.org", "ALICE"),
            ("Alice Smith <alice@example.org>, bob@example.org", "ALICE"),
            ("\"Smith, Alice\" <alice@example.org>", "ALICE"),
            // A decoded encoded-word display name with a bare comma.
            ("Doe, John <zed@example.org>", "ZED"),
            ("Doe, John <zed@example.org>, abe@example.org", "ZED"),
            ("a <b> <carl@example.org>", "CARL"),
            ("bob@example.org (Bob <not this>)", "BOB"),
            ("(comment) carol@example.org", "CAROL"),
            ("Friends: dave@example.org, erin@example.org;", "DAVE"),
            ("undisclosed-recipients:;", ""),
            ("\"quoted local\"@example.org", "QUOTED LOCAL"),
            ("", ""),
            ("<>", ""),
            ("no-at-sign", "NO-AT-SIGN"),
        ] {
            assert_eq!(first_mailbox(value, 4096), mailbox, "{value:?}");
        }
    }
}
