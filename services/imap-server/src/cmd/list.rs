//! LIST (RFC 3501 §6.3.8) with CHILDREN (RFC 3348) and SPECIAL-USE attributes (RFC 6154).
//! One `list_mailboxes` round trip whatever the account size.

use crate::cmd::{mailbox_arg, not_supported};
use crate::names::{self, Pattern};
use crate::out::{Out, Reply};
use crate::session::Session;
use std::collections::{BTreeMap, HashSet};
use yubin_imap_proto::{ListReturnOption, ListSelectOption};
use yubin_meta_api::SpecialUse;

pub(crate) async fn run(
    s: &mut Session,
    out: &mut Out<'_>,
    reference: &[u8],
    patterns: &[Vec<u8>],
    selection: &[ListSelectOption],
    returns: &[ListReturnOption],
) -> Reply {
    let Some(user) = s.user() else {
        return Reply::bad("Not authenticated");
    };
    if !selection.is_empty() {
        return not_supported("LIST selection options");
    }
    let mut want_subscribed = false;
    for r in returns {
        match r {
            // CHILDREN and special-use attributes are always returned.
            ListReturnOption::Children | ListReturnOption::SpecialUse => {}
            ListReturnOption::Subscribed => want_subscribed = true,
            ListReturnOption::Status(_) => return not_supported("LIST-STATUS"),
        }
    }
    let reference = match mailbox_arg(reference) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut decoded = Vec::with_capacity(patterns.len());
    for p in patterns {
        match mailbox_arg(p) {
            Ok(p) => decoded.push(p),
            Err(r) => return r,
        }
    }
    if decoded.len() == 1 && decoded[0].is_empty() {
        // The hierarchy delimiter and root (RFC 3501 §6.3.8).
        out.line("* LIST (\\Noselect) \"/\" \"\"");
        return Reply::ok("LIST completed");
    }
    let mailboxes = match s.server.mail.list_mailboxes(user).await {
        Ok(m) => m,
        Err(e) => return Reply::meta(&e),
    };
    let subscribed: HashSet<String> = if want_subscribed {
        match s.server.mail.list_subscriptions(user).await {
            Ok(v) => v.into_iter().collect(),
            Err(e) => return Reply::meta(&e),
        }
    } else {
        HashSet::new()
    };
    let tree = Tree::new(mailboxes.iter().map(|m| (m.name.as_str(), m.special_use)));
    let compiled: Vec<Pattern> = decoded
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| Pattern::new(&names::combine(&reference, p)))
        .collect();
    for (name, node) in tree.sorted() {
        if !compiled.iter().any(|p| p.matches(name)) {
            continue;
        }
        let mut attrs: Vec<&str> = Vec::new();
        if !node.exists {
            attrs.push("\\Noselect");
        }
        attrs.push(if node.has_children {
            "\\HasChildren"
        } else {
            "\\HasNoChildren"
        });
        if let Some(u) = node.special_use {
            attrs.push(u.as_imap());
        }
        if subscribed.contains(name) {
            attrs.push("\\Subscribed");
        }
        let mut line = format!("* LIST ({}) \"/\" ", attrs.join(" ")).into_bytes();
        names::encode_to(&mut line, name);
        out.buf().extend_from_slice(&line);
        out.buf().extend_from_slice(b"\r\n");
        out.flush_if_large().await;
    }
    Reply::ok("LIST completed")
}

pub(crate) struct Node {
    /// False for an implied parent (`a` when only `a/b` exists).
    pub(crate) exists: bool,
    pub(crate) has_children: bool,
    pub(crate) special_use: Option<SpecialUse>,
}

/// Every mailbox plus its implied parents.
pub(crate) struct Tree<'a> {
    nodes: BTreeMap<&'a str, Node>,
}

impl<'a> Tree<'a> {
    pub(crate) fn new(names_in: impl Iterator<Item = (&'a str, Option<SpecialUse>)>) -> Tree<'a> {
        let mut nodes: BTreeMap<&'a str, Node> = BTreeMap::new();
        for (name, special_use) in names_in {
            let node = nodes.entry(name).or_insert(Node {
                exists: true,
                has_children: false,
                special_use,
            });
            node.exists = true;
            node.special_use = special_use;
            for parent in names::ancestors(name) {
                nodes
                    .entry(parent)
                    .or_insert(Node {
                        exists: false,
                        has_children: true,
                        special_use: None,
                    })
                    .has_children = true;
            }
        }
        Tree { nodes }
    }

    /// INBOX (and its inferiors) first, then by name.
    pub(crate) fn sorted(&self) -> Vec<(&'a str, &Node)> {
        let mut v: Vec<(&'a str, &Node)> = self.nodes.iter().map(|(k, n)| (*k, n)).collect();
        v.sort_by_key(|(k, _)| (!(*k == "INBOX" || k.starts_with("INBOX/")), *k));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implied_parents_are_noselect_and_children_are_marked() {
        let tree = Tree::new(
            [
                ("a/b/c", None),
                ("INBOX", None),
                ("INBOX/x", None),
                ("Sent", Some(SpecialUse::Sent)),
                ("a", None),
            ]
            .into_iter(),
        );
        let v: Vec<(&str, bool, bool)> = tree
            .sorted()
            .into_iter()
            .map(|(n, node)| (n, node.exists, node.has_children))
            .collect();
        assert_eq!(
            v,
            [
                ("INBOX", true, true),
                ("INBOX/x", true, false),
                ("Sent", true, false),
                ("a", true, true),
                ("a/b", false, true),
                ("a/b/c", true, false),
            ]
        );
    }
}
