//! THREAD / UID THREAD (RFC 5256 §3) with the ORDEREDSUBJECT and REFERENCES algorithms (§4),
//! over the header fields the search index keeps (one round trip to the metadata service).

use std::collections::HashMap;

use crate::cmd::sort::{Hit, base_subject, load, modseq_of};
use crate::out::{Out, Reply};
use crate::session::Session;
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
    let messages: Vec<Message> = hits.iter().map(|h| Message::new(h, uid)).collect();
    let threads = match algorithm {
        ThreadAlgorithm::OrderedSubject => ordered_subject(&messages),
        ThreadAlgorithm::References => references(&messages),
    };
    let mut line = String::from("* THREAD ");
    for thread in &threads {
        line.push('(');
        thread.encode(&mut line);
        line.push(')');
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

/// What the algorithms know of one message.
#[derive(Debug, Clone)]
struct Message {
    /// What the response shows: the sequence number or the UID.
    number: u32,
    /// Sequence number, the last tie-breaker of every ordering.
    seq: u32,
    /// Sent date in UTC seconds (RFC 5256 §2.2).
    date: i64,
    base_subject: String,
    is_reply: bool,
    message_id: Option<String>,
    /// The References chain, or the first message id of In-Reply-To when References has none
    /// (RFC 5256 §4 step 1 A).
    references: Vec<String>,
}

impl Message {
    fn new(h: &Hit, uid: bool) -> Message {
        let (base_subject, is_reply) = base_subject(h.header("Subject").unwrap_or(""));
        let mut references = msg_ids(h.header("References").unwrap_or(""));
        if references.is_empty() {
            references = msg_ids(h.header("In-Reply-To").unwrap_or(""))
                .into_iter()
                .take(1)
                .collect();
        }
        Message {
            number: if uid { h.uid().0 } else { h.seq },
            seq: h.seq,
            date: h.sent_date(),
            base_subject,
            is_reply,
            message_id: msg_ids(h.header("Message-ID").unwrap_or(""))
                .into_iter()
                .next(),
            references,
        }
    }

    fn order_key(&self) -> (i64, u32) {
        (self.date, self.seq)
    }
}

/// The `<...>` message ids in a header value, without the brackets, in order.
fn msg_ids(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else {
            break;
        };
        let id = after[..close].trim();
        if !id.is_empty() {
            out.push(id.to_string());
        }
        rest = &after[close + 1..];
    }
    out
}

/// A node of a thread tree as the response shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tree {
    /// `None` for a dummy (a message referred to but not present), which only survives at the
    /// top of a thread with several children (RFC 5256 §4 step 4).
    number: Option<u32>,
    children: Vec<Tree>,
}

impl Tree {
    /// `thread-members` / `thread-nested` (RFC 5256 §5): a single child continues the list,
    /// several children are each parenthesised.
    fn encode(&self, out: &mut String) {
        let mut node = self;
        loop {
            if let Some(n) = node.number {
                out.push_str(&n.to_string());
            }
            match node.children.as_slice() {
                [] => return,
                [only] if node.number.is_some() => {
                    out.push(' ');
                    node = only;
                }
                children => {
                    if node.number.is_some() {
                        out.push(' ');
                    }
                    for child in children {
                        out.push('(');
                        child.encode(out);
                        out.push(')');
                    }
                    return;
                }
            }
        }
    }
}

/// ORDEREDSUBJECT (RFC 5256 §3): messages sorted by base subject then sent date, grouped by
/// base subject; the first of each group is the parent of the rest, and the groups are ordered
/// by the sent date of their first message.
fn ordered_subject(messages: &[Message]) -> Vec<Tree> {
    let mut sorted: Vec<&Message> = messages.iter().collect();
    sorted.sort_by(|a, b| {
        a.base_subject
            .cmp(&b.base_subject)
            .then(a.order_key().cmp(&b.order_key()))
    });
    let mut threads: Vec<(&Message, Tree)> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let first = sorted[i];
        let mut j = i + 1;
        while j < sorted.len() && sorted[j].base_subject == first.base_subject {
            j += 1;
        }
        let children = sorted[i + 1..j]
            .iter()
            .map(|m| Tree {
                number: Some(m.number),
                children: Vec::new(),
            })
            .collect();
        threads.push((
            first,
            Tree {
                number: Some(first.number),
                children,
            },
        ));
        i = j;
    }
    threads.sort_by_key(|(first, _)| first.order_key());
    threads.into_iter().map(|(_, t)| t).collect()
}

/// A container of the REFERENCES algorithm: a message, or a dummy for a referenced id.
#[derive(Debug, Default)]
struct Container {
    message: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

struct Arena {
    nodes: Vec<Container>,
}

impl Arena {
    fn add(&mut self, message: Option<usize>) -> usize {
        self.nodes.push(Container {
            message,
            ..Container::default()
        });
        self.nodes.len() - 1
    }

    /// Whether `maybe_ancestor` is `node` or one of its ancestors.
    fn is_ancestor(&self, maybe_ancestor: usize, node: usize) -> bool {
        let mut cur = Some(node);
        // A parent chain is at most as long as the arena; the bound guards against a bug
        // turning into an endless loop.
        let mut steps = 0;
        while let Some(c) = cur {
            if c == maybe_ancestor {
                return true;
            }
            steps += 1;
            if steps > self.nodes.len() {
                return true;
            }
            cur = self.nodes[c].parent;
        }
        false
    }

    fn unlink(&mut self, child: usize) {
        if let Some(p) = self.nodes[child].parent.take() {
            self.nodes[p].children.retain(|&c| c != child);
        }
    }

    fn link(&mut self, parent: usize, child: usize) {
        self.unlink(child);
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
    }
}

/// REFERENCES (RFC 5256 §4), the threading of Jamie Zawinski's algorithm.
fn references(messages: &[Message]) -> Vec<Tree> {
    let mut arena = Arena {
        nodes: Vec::with_capacity(messages.len() * 2),
    };
    let mut by_id: HashMap<String, usize> = HashMap::new();
    // Step 1, in mailbox order.
    for (mi, m) in messages.iter().enumerate() {
        // A message without a Message-ID, or with one already taken by another message, gets
        // a container of its own that nothing can refer to.
        let own = match m.message_id.as_ref().and_then(|id| by_id.get(id).copied()) {
            Some(c) if arena.nodes[c].message.is_none() => {
                arena.nodes[c].message = Some(mi);
                c
            }
            Some(_) => arena.add(Some(mi)),
            None => {
                let c = arena.add(Some(mi));
                if let Some(id) = &m.message_id {
                    by_id.insert(id.clone(), c);
                }
                c
            }
        };
        // Step 1 A: link the References chain parent to child, never overriding a parent
        // already known and never creating a loop.
        let mut previous: Option<usize> = None;
        for id in &m.references {
            let c = *by_id.entry(id.clone()).or_insert_with(|| arena.add(None));
            if let Some(p) = previous
                && arena.nodes[c].parent.is_none()
                && !arena.is_ancestor(c, p)
            {
                arena.link(p, c);
            }
            previous = Some(c);
        }
        // Step 1 B: the last reference is the message's parent, replacing an existing link.
        match previous {
            Some(p) if !arena.is_ancestor(own, p) => arena.link(p, own),
            Some(_) => {}
            None => arena.unlink(own),
        }
    }
    // Step 2: the root set.
    let roots: Vec<usize> = (0..arena.nodes.len())
        .filter(|&c| arena.nodes[c].parent.is_none())
        .collect();
    // Step 4: prune dummies.
    let mut roots: Vec<usize> = roots
        .into_iter()
        .flat_map(|r| prune(&mut arena, r, true))
        .collect();
    // Step 5: gather roots with the same base subject.
    let subject_of = |arena: &Arena, c: usize| -> Option<usize> {
        arena.nodes[c].message.or_else(|| {
            arena.nodes[c]
                .children
                .first()
                .and_then(|&f| arena.nodes[f].message)
        })
    };
    let mut table: HashMap<String, usize> = HashMap::new();
    for &r in &roots {
        let Some(mi) = subject_of(&arena, r) else {
            continue;
        };
        let subject = &messages[mi].base_subject;
        if subject.is_empty() {
            continue;
        }
        match table.get(subject).copied() {
            None => {
                table.insert(subject.clone(), r);
            }
            Some(old) => {
                let old_dummy = arena.nodes[old].message.is_none();
                let this_dummy = arena.nodes[r].message.is_none();
                let old_reply = arena.nodes[old]
                    .message
                    .is_some_and(|m| messages[m].is_reply);
                let this_reply = arena.nodes[r].message.is_some_and(|m| messages[m].is_reply);
                if (this_dummy && !old_dummy) || (old_reply && !this_reply) {
                    table.insert(subject.clone(), r);
                }
            }
        }
    }
    let mut removed = vec![false; arena.nodes.len()];
    let mut i = 0;
    while i < roots.len() {
        let r = roots[i];
        i += 1;
        if removed[r] {
            continue;
        }
        let Some(mi) = subject_of(&arena, r) else {
            continue;
        };
        let subject = messages[mi].base_subject.clone();
        if subject.is_empty() {
            continue;
        }
        let Some(&other) = table.get(&subject) else {
            continue;
        };
        if other == r || removed[other] {
            continue;
        }
        let this_dummy = arena.nodes[r].message.is_none();
        let other_dummy = arena.nodes[other].message.is_none();
        let this_reply = arena.nodes[r].message.is_some_and(|m| messages[m].is_reply);
        let other_reply = arena.nodes[other]
            .message
            .is_some_and(|m| messages[m].is_reply);
        if this_dummy && other_dummy {
            // Both dummies: this one's children join the table's.
            for c in std::mem::take(&mut arena.nodes[r].children) {
                arena.nodes[c].parent = None;
                arena.link(other, c);
            }
            removed[r] = true;
        } else if this_dummy != other_dummy {
            // The message becomes a sibling of the dummy's children.
            let (dummy, message) = if this_dummy { (r, other) } else { (other, r) };
            arena.link(dummy, message);
            removed[message] = true;
            table.insert(subject, dummy);
        } else if !other_reply && this_reply {
            arena.link(other, r);
            removed[r] = true;
        } else if other_reply && !this_reply {
            // Misordered: the original becomes the parent of the reply.
            arena.link(r, other);
            removed[other] = true;
            table.insert(subject, r);
        } else {
            // Siblings under a new dummy, which takes the table entry's place.
            let dummy = arena.add(None);
            removed.push(false);
            arena.link(dummy, other);
            arena.link(dummy, r);
            removed[other] = true;
            removed[r] = true;
            roots.push(dummy);
            table.insert(subject, dummy);
        }
    }
    let roots: Vec<usize> = roots.into_iter().filter(|&r| !removed[r]).collect();
    // Step 6: sort siblings by sent date, a dummy by its (earliest) first child.
    let mut trees: Vec<(Option<(i64, u32)>, Tree)> = roots
        .into_iter()
        .map(|r| build(&arena, messages, r))
        .collect();
    trees.sort_by_key(|t| t.0);
    trees.into_iter().map(|(_, t)| t).collect()
}

/// Step 4 for the subtree at `c`: a dummy without children disappears, a dummy with children
/// is replaced by them, except a top-level dummy with several children. Returns what takes
/// `c`'s place.
fn prune(arena: &mut Arena, c: usize, top: bool) -> Vec<usize> {
    let children = std::mem::take(&mut arena.nodes[c].children);
    let mut kept = Vec::new();
    for child in children {
        for k in prune(arena, child, false) {
            arena.nodes[k].parent = Some(c);
            kept.push(k);
        }
    }
    arena.nodes[c].children = kept;
    if arena.nodes[c].message.is_some() {
        return vec![c];
    }
    if top && arena.nodes[c].children.len() > 1 {
        return vec![c];
    }
    let promoted = std::mem::take(&mut arena.nodes[c].children);
    for &p in &promoted {
        arena.nodes[p].parent = None;
    }
    promoted
}

/// The tree at `c` with every set of siblings sorted by sent date; returns the sort key of
/// its root (a dummy's is its first child's).
fn build(arena: &Arena, messages: &[Message], c: usize) -> (Option<(i64, u32)>, Tree) {
    let mut children: Vec<(Option<(i64, u32)>, Tree)> = arena.nodes[c]
        .children
        .iter()
        .map(|&k| build(arena, messages, k))
        .collect();
    children.sort_by_key(|t| t.0);
    let message = arena.nodes[c].message.map(|m| &messages[m]);
    let key = match message {
        Some(m) => Some(m.order_key()),
        None => children.first().and_then(|f| f.0),
    };
    (
        key,
        Tree {
            number: message.map(|m| m.number),
            children: children.into_iter().map(|(_, t)| t).collect(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: u32, date: i64, subject: &str, id: &str, refs: &[&str]) -> Message {
        let (base_subject, is_reply) = base_subject(subject);
        Message {
            number: n,
            seq: n,
            date,
            base_subject,
            is_reply,
            message_id: (!id.is_empty()).then(|| id.to_string()),
            references: refs.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn encode(threads: &[Tree]) -> String {
        let mut s = String::new();
        for t in threads {
            s.push('(');
            t.encode(&mut s);
            s.push(')');
        }
        s
    }

    #[test]
    fn encodes_like_the_rfc() {
        // RFC 5256 §5's example: (3 6 (4 23)(44 7 96))
        let leaf = |n| Tree {
            number: Some(n),
            children: vec![],
        };
        let chain = |n, child| Tree {
            number: Some(n),
            children: vec![child],
        };
        let t = chain(
            3,
            Tree {
                number: Some(6),
                children: vec![chain(4, leaf(23)), chain(44, chain(7, leaf(96)))],
            },
        );
        assert_eq!(encode(&[t]), "(3 6 (4 23)(44 7 96))");
        let dummy = Tree {
            number: None,
            children: vec![leaf(3), leaf(5)],
        };
        assert_eq!(encode(&[leaf(2), dummy]), "(2)((3)(5))");
    }

    #[test]
    fn ordered_subject_groups_by_base_subject() {
        let ms = vec![
            msg(1, 100, "b", "", &[]),
            msg(2, 50, "Re: a", "", &[]),
            msg(3, 60, "a", "", &[]),
            msg(4, 70, "re: b", "", &[]),
            msg(5, 10, "c", "", &[]),
            msg(6, 80, "A", "", &[]),
        ];
        // Thread "C" starts at 5 (date 10), "A" at 2 (50), "B" at 4 (70).
        assert_eq!(encode(&ordered_subject(&ms)), "(5)(2 (3)(6))(4 1)");
    }

    #[test]
    fn references_builds_threads() {
        let ms = vec![
            msg(1, 10, "topic", "a@x", &[]),
            msg(2, 20, "Re: topic", "b@x", &["a@x"]),
            msg(3, 30, "Re: topic", "c@x", &["a@x", "b@x"]),
            msg(4, 25, "Re: topic", "d@x", &["a@x"]),
            // Its parent is missing: a dummy with one child disappears.
            msg(5, 40, "other", "e@x", &["missing@x"]),
            // Two replies to a missing message: the dummy stays at the top.
            msg(6, 50, "Re: lost", "f@x", &["lost@x"]),
            msg(7, 45, "Re: lost", "g@x", &["lost@x"]),
            // No references but the same subject as thread 1's root: gathered under it.
            msg(8, 60, "Re: topic", "h@x", &[]),
            // Duplicate Message-ID: treated as a distinct message.
            msg(9, 5, "solo", "a@x", &[]),
        ];
        assert_eq!(encode(&references(&ms)), "(9)(1 (2 3)(4)(8))(5)((7)(6))");
    }

    #[test]
    fn references_survive_loops_and_misordered_replies() {
        let ms = vec![
            msg(1, 10, "x", "a@x", &["b@x"]),
            msg(2, 20, "x", "b@x", &["a@x"]),
            // The reply arrived first, the original has no references to it.
            msg(3, 30, "Re: y", "r@x", &[]),
            msg(4, 40, "y", "o@x", &[]),
        ];
        // 2 cannot become 1's child (1 already descends from 2): the link is not made.
        assert_eq!(encode(&references(&ms)), "(2 1)(4 3)");
    }

    #[test]
    fn message_ids() {
        assert_eq!(
            msg_ids(" <a@x> (comment) <b@y>\t<c@z"),
            vec!["a@x".to_string(), "b@y".to_string()]
        );
        assert!(msg_ids("no ids").is_empty());
    }
}
