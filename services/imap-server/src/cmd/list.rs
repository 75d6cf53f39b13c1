//! LIST (RFC 3501 §6.3.8, RFC 9051 §6.3.9) with LIST-EXTENDED selection and return options
//! (RFC 5258), LIST-STATUS (RFC 5819), CHILDREN (RFC 3348) and SPECIAL-USE (RFC 6154). One
//! `list_mailboxes` round trip (plus one for subscriptions when asked) whatever the account size.

use crate::cmd::mailbox_arg;
use crate::cmd::status::{check_items, write_status};
use crate::names::{self, Pattern};
use crate::out::{Out, Reply};
use crate::session::Session;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use yubin_imap_proto::{ListReturnOption, ListSelectOption, StatusItem};
use yubin_meta_api::{MailboxInfo, SpecialUse};

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
    let select_subscribed = selection.contains(&ListSelectOption::Subscribed);
    let select_special = selection.contains(&ListSelectOption::SpecialUse);
    let recursive = selection.contains(&ListSelectOption::RecursiveMatch);
    // REMOTE (RFC 5258 §3.1) asks for remote mailboxes too; there are none, so it changes nothing.
    // SUBSCRIBED as a selection option implies it as a return option (RFC 5258 §3.1).
    let mut want_subscribed = select_subscribed;
    let mut status_items: Option<&[StatusItem]> = None;
    for r in returns {
        match r {
            // CHILDREN and special-use attributes are always returned (RFC 5258 §4 and RFC 6154
            // §2 allow them unasked).
            ListReturnOption::Children | ListReturnOption::SpecialUse => {}
            ListReturnOption::Subscribed => want_subscribed = true,
            ListReturnOption::Status(items) => {
                if let Err(r) = check_items(items) {
                    return r;
                }
                status_items = Some(items);
            }
        }
    }
    let reference = match mailbox_arg(s, reference) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut decoded = Vec::with_capacity(patterns.len());
    for p in patterns {
        match mailbox_arg(s, p) {
            Ok(p) => decoded.push(p),
            Err(r) => return r,
        }
    }
    if decoded.len() == 1 && decoded[0].is_empty() && selection.is_empty() {
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
    let infos: HashMap<&str, &MailboxInfo> =
        mailboxes.iter().map(|m| (m.name.as_str(), m)).collect();
    let compiled: Vec<Pattern> = decoded
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| Pattern::new(&names::combine(&reference, p)))
        .collect();
    let matches = |name: &str| compiled.iter().any(|p| p.matches(name));

    // Which names satisfy the selection criteria (RFC 5258 §3.1). Without selection options
    // every mailbox and implied parent does; with them, the names that meet all of them, which
    // for SUBSCRIBED include subscribed names that do not exist.
    let selective = select_subscribed || select_special;
    let meets = |name: &str| -> bool {
        (!select_subscribed || subscribed.contains(name))
            && (!select_special || tree.get(name).is_some_and(|n| n.special_use.is_some()))
    };
    let mut universe: BTreeSet<&str> = tree.names().collect();
    if select_subscribed {
        universe.extend(subscribed.iter().map(String::as_str));
    }
    // name -> whether CHILDINFO applies (RECURSIVEMATCH: a descendant meets the criteria but
    // does not match the pattern, RFC 5258 §3.5).
    let mut listed: BTreeMap<&str, bool> = BTreeMap::new();
    for &name in &universe {
        if !selective {
            if matches(name) {
                listed.insert(name, false);
            }
            continue;
        }
        if !meets(name) {
            continue;
        }
        if matches(name) {
            listed.entry(name).or_insert(false);
        }
        if recursive && !matches(name) {
            for parent in names::ancestors(name) {
                if matches(parent) {
                    listed.insert(parent, true);
                }
            }
        }
    }
    let mut childinfo = Vec::new();
    if select_subscribed {
        childinfo.push("\"SUBSCRIBED\"");
    }
    if select_special {
        childinfo.push("\"SPECIAL-USE\"");
    }
    let mut order: Vec<&str> = listed.keys().copied().collect();
    order.sort_by_key(|k| inbox_first(k));
    for name in order {
        let with_childinfo = listed[name];
        if selective && !with_childinfo && !meets(name) {
            continue;
        }
        let node = tree.get(name);
        let mut attrs: Vec<&str> = Vec::new();
        match node {
            // A subscribed name with no mailbox and no inferiors (RFC 5258 §3.4).
            None => attrs.push("\\NonExistent"),
            Some(node) => {
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
            }
        }
        if want_subscribed && subscribed.contains(name) {
            attrs.push("\\Subscribed");
        }
        let mut line = format!("* LIST ({}) \"/\" ", attrs.join(" ")).into_bytes();
        names::encode_to(&mut line, name, s.rev2);
        if with_childinfo {
            line.extend_from_slice(
                format!(" (\"CHILDINFO\" ({}))", childinfo.join(" ")).as_bytes(),
            );
        }
        line.extend_from_slice(b"\r\n");
        out.buf().extend_from_slice(&line);
        // LIST-STATUS: the STATUS of each selectable mailbox right after its LIST (RFC 5819 §2).
        if let (Some(items), Some(info)) = (status_items, infos.get(name)) {
            write_status(out.buf(), s, user, info, items);
        }
        out.flush_if_large().await;
    }
    Reply::ok("LIST completed")
}

/// Sort key: INBOX (and its inferiors) first, then by name.
fn inbox_first(name: &str) -> (bool, &str) {
    (!(name == "INBOX" || name.starts_with("INBOX/")), name)
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
    #[cfg(test)]
    pub(crate) fn sorted(&self) -> Vec<(&'a str, &Node)> {
        let mut v: Vec<(&'a str, &Node)> = self.nodes.iter().map(|(k, n)| (*k, n)).collect();
        v.sort_by_key(|(k, _)| inbox_first(k));
        v
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name)
    }

    /// Every mailbox and implied parent, in name order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.nodes.keys().copied()
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
