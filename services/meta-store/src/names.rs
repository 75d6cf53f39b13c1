//! Mailbox name rules shared by both backends (RFC 3501 §5.1).

use yubin_meta_api::{HIERARCHY_DELIMITER, MetaError, MetaResult, is_valid_mailbox_name};

pub(crate) const INBOX: &str = "INBOX";

/// Spells `INBOX` (case-insensitive, RFC 3501 §5.1) in upper case, also as the first level of
/// a hierarchical name (`inbox/x` is `INBOX/x`), so every lookup sees one spelling.
pub(crate) fn normalize(name: &str) -> String {
    match name.split_once(HIERARCHY_DELIMITER) {
        Some((first, rest)) if first.eq_ignore_ascii_case(INBOX) => {
            format!("{INBOX}{HIERARCHY_DELIMITER}{rest}")
        }
        None if name.eq_ignore_ascii_case(INBOX) => INBOX.to_string(),
        _ => name.to_string(),
    }
}

/// A normalized name that may be stored, or `Invalid`.
pub(crate) fn checked(name: &str) -> MetaResult<String> {
    let n = normalize(name);
    if is_valid_mailbox_name(&n) {
        Ok(n)
    } else {
        Err(MetaError::Invalid(format!("invalid mailbox name {name:?}")))
    }
}

/// The name for CREATE: a trailing delimiter only declares the intent to create inferiors
/// later (RFC 3501 §6.3.3), so it is dropped.
pub(crate) fn for_create(name: &str) -> MetaResult<String> {
    checked(name.strip_suffix(HIERARCHY_DELIMITER).unwrap_or(name))
}

/// The superiors of `name`, outermost first: `a/b/c` gives `a`, `a/b`.
pub(crate) fn superiors(name: &str) -> Vec<String> {
    name.match_indices(HIERARCHY_DELIMITER)
        .map(|(i, _)| name[..i].to_string())
        .collect()
}

/// Whether `name` lies below `parent` in the hierarchy.
pub(crate) fn is_inferior(name: &str, parent: &str) -> bool {
    name.len() > parent.len()
        && name.starts_with(parent)
        && name[parent.len()..].starts_with(HIERARCHY_DELIMITER)
}

/// The new name of `name` (which is `from` or one of its inferiors) when `from` becomes `to`.
pub(crate) fn renamed(name: &str, from: &str, to: &str) -> String {
    format!("{to}{}", &name[from.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_is_case_insensitive() {
        assert_eq!(normalize("inBox"), "INBOX");
        assert_eq!(normalize("inbox/Sub"), "INBOX/Sub");
        assert_eq!(normalize("inboxes"), "inboxes");
        assert_eq!(normalize("Archive/inbox"), "Archive/inbox");
    }

    #[test]
    fn hierarchy_helpers() {
        assert_eq!(superiors("a/b/c"), vec!["a", "a/b"]);
        assert!(superiors("a").is_empty());
        assert!(is_inferior("a/b", "a"));
        assert!(!is_inferior("ab", "a"));
        assert!(!is_inferior("a", "a"));
        assert_eq!(renamed("a/b", "a", "x/y"), "x/y/b");
        assert_eq!(for_create("a/").as_deref(), Ok("a"));
        assert!(checked("a//b").is_err());
    }
}
