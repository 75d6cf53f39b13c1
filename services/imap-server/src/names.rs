//! Mailbox names on the wire (modified UTF-7 in IMAP4rev1, RFC 3501 §5.1.3; UTF-8 in IMAP4rev2,
//! RFC 9051 §5.1) and LIST pattern matching (RFC 3501 §6.3.8).

use yubin_imap_proto::encode;
use yubin_meta_api::HIERARCHY_DELIMITER;

/// Decodes a mailbox name as sent by the client into the UTF-8 name the store holds.
///
/// Rev1 clients send modified UTF-7; some send raw UTF-8 anyway, which is unambiguous (modified
/// UTF-7 is 7-bit), so it is accepted. An IMAP4rev2 session (`utf8`) sends UTF-8 and nothing
/// else: `&` is then just an ampersand (RFC 9051 §5.1). `INBOX` is case-insensitive (RFC 3501
/// §5.1) and is normalised to upper case, including as the first level of a hierarchy.
pub(crate) fn decode(raw: &[u8], utf8: bool) -> Option<String> {
    let name = if raw.is_ascii() && !utf8 {
        encode::mutf7_decode(raw)?
    } else {
        String::from_utf8(raw.to_vec()).ok()?
    };
    Some(normalize_inbox(name))
}

/// Upper-cases a leading `inbox` level.
pub(crate) fn normalize_inbox(name: String) -> String {
    let first_len = name.find(HIERARCHY_DELIMITER).unwrap_or(name.len());
    if first_len == 5 && name[..5].eq_ignore_ascii_case("INBOX") && &name[..5] != "INBOX" {
        let mut n = String::with_capacity(name.len());
        n.push_str("INBOX");
        n.push_str(&name[5..]);
        n
    } else {
        name
    }
}

/// Appends a store name as it goes on the wire: modified UTF-7 for a rev1 session, UTF-8 for an
/// IMAP4rev2 one (`utf8`); quoted, or a literal when it cannot be quoted.
pub(crate) fn encode_to(out: &mut Vec<u8>, name: &str, utf8: bool) {
    if utf8 {
        encode::string_utf8(out, name.as_bytes());
    } else {
        let wire = encode::mutf7_encode(name);
        encode::string(out, wire.as_bytes());
    }
}

/// Combines LIST's reference and pattern (RFC 3501 §6.3.8): a pattern starting with the delimiter
/// is absolute, otherwise it is appended to the reference.
pub(crate) fn combine(reference: &str, pattern: &str) -> String {
    if reference.is_empty() || pattern.starts_with(HIERARCHY_DELIMITER) {
        return pattern.to_string();
    }
    let mut s = String::with_capacity(reference.len() + pattern.len() + 1);
    s.push_str(reference);
    if !reference.ends_with(HIERARCHY_DELIMITER) {
        s.push(HIERARCHY_DELIMITER);
    }
    s.push_str(pattern);
    s
}

/// A compiled LIST pattern: `*` matches anything, `%` anything but the delimiter.
pub(crate) struct Pattern {
    chars: Vec<char>,
}

impl Pattern {
    pub(crate) fn new(pattern: &str) -> Pattern {
        // "inbox" matches INBOX whatever its case; only the leading level can be INBOX.
        let p = normalize_inbox(pattern.to_string());
        Pattern {
            chars: p.chars().collect(),
        }
    }

    pub(crate) fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        matches_at(&self.chars, &name)
    }
}

fn matches_at(p: &[char], n: &[char]) -> bool {
    // Dynamic programming over the pattern: `cur[j]` says whether the pattern so far matches
    // the first `j` characters of the name. O(|p|·|n|), no backtracking blow-up, no recursion.
    let mut cur = vec![false; n.len() + 1];
    cur[0] = true;
    for &pc in p {
        let mut next = vec![false; n.len() + 1];
        match pc {
            '*' => {
                let mut any = false;
                for j in 0..=n.len() {
                    any |= cur[j];
                    next[j] = any;
                }
            }
            '%' => {
                for j in 0..=n.len() {
                    next[j] = cur[j] || (j > 0 && next[j - 1] && n[j - 1] != HIERARCHY_DELIMITER);
                }
            }
            c => {
                for j in 1..=n.len() {
                    next[j] = cur[j - 1] && n[j - 1] == c;
                }
            }
        }
        cur = next;
    }
    cur[n.len()]
}

/// The ancestors of `name`, nearest last: `a/b/c` → `a`, `a/b`.
pub(crate) fn ancestors(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices(HIERARCHY_DELIMITER)
        .map(move |(i, _)| &name[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let m = |p: &str, n: &str| Pattern::new(p).matches(n);
        assert!(m("*", "a/b/c"));
        assert!(m("%", "INBOX"));
        assert!(!m("%", "a/b"));
        assert!(m("a/%", "a/b"));
        assert!(!m("a/%", "a/b/c"));
        assert!(m("a/*", "a/b/c"));
        assert!(m("inbox", "INBOX"));
        assert!(m("Inbox/%", "INBOX/x"));
        assert!(!m("inbox", "Inbox2"));
        assert!(m("%/%", "a/b"));
        assert!(m("a%c", "abbc"));
        assert!(!m("a%c", "ab/c"));
        assert!(m("a*c", "ab/c"));
        assert!(m("%b*", "ab/x"));
        assert!(!m("", "a"));
        assert!(m("*%", "a/b"));
    }

    #[test]
    fn rev1_and_rev2_forms() {
        assert_eq!(
            decode(b"Entw&APw-rfe", false).as_deref(),
            Some("Entw\u{fc}rfe")
        );
        assert_eq!(
            decode(b"Entw&APw-rfe", true).as_deref(),
            Some("Entw&APw-rfe")
        );
        assert_eq!(
            decode("Entw\u{fc}rfe".as_bytes(), false).as_deref(),
            Some("Entw\u{fc}rfe")
        );
        assert_eq!(
            decode("Entw\u{fc}rfe".as_bytes(), true).as_deref(),
            Some("Entw\u{fc}rfe")
        );
        assert_eq!(decode(b"Tom & Jerry", true).as_deref(), Some("Tom & Jerry"));
        assert_eq!(decode(b"Tom & Jerry", false), None);
        assert_eq!(decode(b"\xff", true), None);
        assert_eq!(decode(b"inbox/x", true).as_deref(), Some("INBOX/x"));
        let enc = |name: &str, utf8: bool| {
            let mut v = Vec::new();
            encode_to(&mut v, name, utf8);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(enc("Entw\u{fc}rfe & Co", false), "\"Entw&APw-rfe &- Co\"");
        assert_eq!(enc("Entw\u{fc}rfe & Co", true), "\"Entw\u{fc}rfe & Co\"");
    }

    #[test]
    fn reference_combination_and_ancestors() {
        assert_eq!(combine("", "%"), "%");
        assert_eq!(combine("Work", "%"), "Work/%");
        assert_eq!(combine("Work/", "%"), "Work/%");
        assert_eq!(combine("Work", "/x"), "/x");
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(normalize_inbox("inbox/Sub".into()), "INBOX/Sub");
        assert_eq!(normalize_inbox("inboxes".into()), "inboxes");
    }
}
