//! Server and mailbox annotations (IMAP METADATA, RFC 5464).

use serde::{Deserialize, Serialize};

/// Which entries below a requested entry a read returns (RFC 5464 §4.2.2 DEPTH).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataDepth {
    /// Only the entry itself.
    #[default]
    Zero,
    /// The entry and its immediate children.
    One,
    /// The entry and every descendant.
    Infinity,
}

impl MetadataDepth {
    /// Whether `name` is returned for a request of `requested` at this depth. Entry names are
    /// already lower-cased and validated (RFC 5464 §3.2), so a descendant is a name that starts
    /// with `requested` followed by `/`.
    pub fn selects(self, requested: &str, name: &str) -> bool {
        if name == requested {
            return true;
        }
        let Some(rest) = name
            .strip_prefix(requested)
            .and_then(|r| r.strip_prefix('/'))
        else {
            return false;
        };
        match self {
            MetadataDepth::Zero => false,
            MetadataDepth::One => !rest.contains('/'),
            MetadataDepth::Infinity => true,
        }
    }
}

/// One stored entry: its lower-cased name (`/private/...` or `/shared/...`) and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataEntry {
    pub name: String,
    pub value: Vec<u8>,
}

/// Checks an entry name the way the IMAP parser does (RFC 5464 §3.2), so a store never holds a
/// name a client could not have sent: lower-case, under `/private` or `/shared`, no empty
/// component, no trailing `/`, no `*`, `%` or control character.
pub fn is_valid_metadata_entry(name: &str) -> bool {
    let under_root = ["/private", "/shared"].iter().any(|root| {
        name == *root
            || name
                .strip_prefix(root)
                .is_some_and(|rest| rest.starts_with('/'))
    });
    under_root
        && !name.ends_with('/')
        && !name.contains("//")
        && !name
            .chars()
            .any(|ch| ch == '*' || ch == '%' || ch.is_control() || ch.is_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_selects_descendants() {
        let d0 = MetadataDepth::Zero;
        let d1 = MetadataDepth::One;
        let di = MetadataDepth::Infinity;
        assert!(d0.selects("/private/a", "/private/a"));
        assert!(!d0.selects("/private/a", "/private/a/b"));
        assert!(d1.selects("/private/a", "/private/a/b"));
        assert!(!d1.selects("/private/a", "/private/a/b/c"));
        assert!(di.selects("/private/a", "/private/a/b/c"));
        // A sibling sharing a prefix is not a descendant.
        assert!(!di.selects("/private/a", "/private/ab"));
        assert!(!di.selects("/private/a", "/shared/a"));
    }

    #[test]
    fn entry_names() {
        assert!(is_valid_metadata_entry("/private/comment"));
        assert!(is_valid_metadata_entry("/shared"));
        assert!(!is_valid_metadata_entry("/Private/comment"));
        assert!(!is_valid_metadata_entry("/privatex"));
        assert!(!is_valid_metadata_entry("/private/"));
        assert!(!is_valid_metadata_entry("/private//a"));
        assert!(!is_valid_metadata_entry("/private/a*"));
        assert!(!is_valid_metadata_entry("comment"));
    }
}
