//! The THREAD algorithms of RFC 5256 as pure functions over small message records:
//! ORDEREDSUBJECT (§3) and REFERENCES (§4), and the `thread-list` encoder (§5).
//!
//! Every header is hostile input: a message may carry a 2 MB References field with hundreds of
//! thousands of ids, and a mailbox may chain thousands of messages into one thread. So nothing
//! here recurses over messages or references (trees are walked with explicit worklists), only
//! the last [`crate::SortThreadLimits::max_references`] references of a message are used, loop
//! checks go through a link-cut forest (O(log n) each, see [`forest`]), and the whole algorithm
//! is O(n log n) in the number of messages and references used.

mod forest;

use std::collections::HashMap;

use forest::LinkCutForest;

/// What the algorithms know of one message.
#[derive(Debug, Clone)]
pub(crate) struct ThreadMessage {
    /// What the response shows: the sequence number or the UID.
    pub(crate) number: u32,
    /// Sequence number, the last tie-breaker of every ordering (RFC 5256 §2.2).
    pub(crate) seq: u32,
    /// Sent date in UTC seconds (RFC 5256 §2.2).
    pub(crate) date: i64,
    /// Base subject (RFC 5256 §2.1), already upper-cased for i;ascii-casemap comparison.
    pub(crate) base_subject: String,
    /// Whether base subject extraction removed a reply or forward marker (§2.1, used in §4
    /// step 5).
    pub(crate) is_reply: bool,
    /// The first message id of the Message-ID field, without the angle brackets.
    pub(crate) message_id: Option<String>,
    /// The last references (oldest first): from References, or the first id of In-Reply-To
    /// when References has none (RFC 5256 §4 step 1).
    pub(crate) references: Vec<String>,
}

impl ThreadMessage {
    fn order_key(&self) -> (i64, u32) {
        (self.date, self.seq)
    }
}

/// The first `<...>` message id of a header value (Message-ID, In-Reply-To), without brackets.
pub(crate) fn first_msg_id(value: &str) -> Option<String> {
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let close = after.find('>')?;
        let id = after[..close].trim();
        if !id.is_empty() {
            return Some(id.to_string());
        }
        rest = &after[close + 1..];
    }
    None
}

/// The last `max` `<...>` message ids of a References value, oldest first, and whether more
/// were there. Scans from the end, so the cost is bounded by what is kept plus the bytes
/// skipped, never by the number of ids in the field. The last references are the nearest
/// ancestors (RFC 5322 §3.6.4 appends the parent's id to the parent's References), which is
/// what places a message in its thread; older ones only repair gaps higher up.
pub(crate) fn last_msg_ids(value: &str, max: usize) -> (Vec<String>, bool) {
    let mut ids = Vec::new();
    let mut end = value.len();
    while let Some(close) = value[..end].rfind('>') {
        let Some(open) = value[..close].rfind('<') else {
            break;
        };
        let id = value[open + 1..close].trim();
        end = open;
        if id.is_empty() {
            continue;
        }
        if ids.len() == max {
            ids.reverse();
            return (ids, true);
        }
        ids.push(id.to_string());
    }
    ids.reverse();
    (ids, false)
}

/// The threads of a mailbox: each node is a message (its number) or a dummy (`None`, only at
/// the top of a thread with several children).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Threads {
    numbers: Vec<Option<u32>>,
    children: Vec<Vec<usize>>,
    roots: Vec<usize>,
}

impl Threads {
    /// How many threads there are.
    pub(crate) fn len(&self) -> usize {
        self.roots.len()
    }

    /// Appends thread `i` as a `thread-list` (RFC 5256 §5): a single child continues the
    /// member list, several children are each parenthesised. A worklist instead of recursion,
    /// so a thread as deep as the mailbox is large encodes in constant stack.
    pub(crate) fn encode(&self, i: usize, out: &mut String) {
        enum Step {
            Open(usize),
            Close,
        }
        let mut work = vec![Step::Open(self.roots[i])];
        while let Some(step) = work.pop() {
            let mut node = match step {
                Step::Close => {
                    out.push(')');
                    continue;
                }
                Step::Open(n) => n,
            };
            out.push('(');
            work.push(Step::Close);
            loop {
                if let Some(n) = self.numbers[node] {
                    out.push_str(&n.to_string());
                }
                match self.children[node].as_slice() {
                    [] => break,
                    [only] if self.numbers[node].is_some() => {
                        out.push(' ');
                        node = *only;
                    }
                    children => {
                        if self.numbers[node].is_some() {
                            out.push(' ');
                        }
                        work.extend(children.iter().rev().map(|&c| Step::Open(c)));
                        break;
                    }
                }
            }
        }
    }

    /// Every thread, as a THREAD response shows them after `* THREAD `.
    #[cfg(test)]
    pub(crate) fn encode_all(&self) -> String {
        let mut s = String::new();
        for i in 0..self.len() {
            self.encode(i, &mut s);
        }
        s
    }
}

/// ORDEREDSUBJECT (RFC 5256 §3): messages sorted by base subject then sent date, grouped by
/// base subject; the first of each group is the parent of the rest, and the groups are ordered
/// by the sent date of their first message.
pub(crate) fn ordered_subject(messages: &[ThreadMessage]) -> Threads {
    let mut sorted: Vec<usize> = (0..messages.len()).collect();
    sorted.sort_by(|&a, &b| {
        let (a, b) = (&messages[a], &messages[b]);
        a.base_subject
            .cmp(&b.base_subject)
            .then(a.order_key().cmp(&b.order_key()))
    });
    let mut t = Threads {
        numbers: messages.iter().map(|m| Some(m.number)).collect(),
        children: vec![Vec::new(); messages.len()],
        roots: Vec::new(),
    };
    let mut i = 0;
    while i < sorted.len() {
        let first = sorted[i];
        let mut j = i + 1;
        while j < sorted.len() && messages[sorted[j]].base_subject == messages[first].base_subject {
            j += 1;
        }
        t.children[first] = sorted[i + 1..j].to_vec();
        t.roots.push(first);
        i = j;
    }
    t.roots.sort_by_key(|&r| messages[r].order_key());
    t
}

/// REFERENCES (RFC 5256 §4).
pub(crate) fn references(messages: &[ThreadMessage]) -> Threads {
    let mut c = link_by_references(messages);
    prune_dummies(&mut c);
    gather_and_sort(messages, c)
}

/// Containers of step 1: a message, or a dummy for an id referred to but absent.
struct Containers {
    /// The message index of each container; `None` for a dummy.
    message: Vec<Option<usize>>,
    parent: Vec<Option<usize>>,
    /// False for a dummy that pruning (step 3) removed.
    alive: Vec<bool>,
}

impl Containers {
    fn add(&mut self, forest: &mut LinkCutForest, message: Option<usize>) -> usize {
        self.message.push(message);
        self.parent.push(None);
        self.alive.push(true);
        forest.add()
    }
}

/// Step 1: containers for every message and referenced id, linked parent to child.
fn link_by_references(messages: &[ThreadMessage]) -> Containers {
    let mut c = Containers {
        message: Vec::with_capacity(messages.len()),
        parent: Vec::with_capacity(messages.len()),
        alive: Vec::with_capacity(messages.len()),
    };
    let mut forest = LinkCutForest::new();
    // Message ids compare case-sensitively (§4 step 1 note).
    let mut by_id: HashMap<&str, usize> = HashMap::with_capacity(messages.len());
    for (mi, m) in messages.iter().enumerate() {
        // A message without a Message-ID, or whose id an earlier (lower sequence number)
        // message already has, gets a unique id: a container nothing refers to (§4 step 1 A).
        let own = match m.message_id.as_deref() {
            Some(id) => match by_id.get(id).copied() {
                Some(existing) if c.message[existing].is_none() => {
                    c.message[existing] = Some(mi);
                    existing
                }
                Some(_) => c.add(&mut forest, Some(mi)),
                None => {
                    let n = c.add(&mut forest, Some(mi));
                    by_id.insert(id, n);
                    n
                }
            },
            None => c.add(&mut forest, Some(mi)),
        };
        // Step 1 A: each reference is the parent of the next. An existing parent is kept
        // (older messages win), and no link may close a loop: the child is a tree root here,
        // so a loop would mean the parent already lies below it, i.e. has it as its root.
        let mut previous: Option<usize> = None;
        for id in &m.references {
            let node = match by_id.get(id.as_str()).copied() {
                Some(n) => n,
                None => {
                    let n = c.add(&mut forest, None);
                    by_id.insert(id.as_str(), n);
                    n
                }
            };
            if let Some(p) = previous
                && c.parent[node].is_none()
                && forest.root(p) != node
            {
                forest.link(node, p);
                c.parent[node] = Some(p);
            }
            previous = Some(node);
        }
        // Step 1 B: the last reference is the parent, replacing a link an earlier message's
        // (possibly truncated) References made; again never closing a loop.
        if c.parent[own].is_some() {
            forest.cut(own);
            c.parent[own] = None;
        }
        if let Some(p) = previous
            && forest.root(p) != own
        {
            forest.link(own, p);
            c.parent[own] = Some(p);
        }
    }
    c
}

/// Steps 2 and 3: the roots are the containers without a parent; dummies are removed and their
/// children promoted, except that a dummy at the top stays when it would otherwise promote more
/// than one child to the top. One pass from the roots down: each container's anchor is its
/// nearest ancestor that can survive (a message, or the dummy at the top of its tree).
fn prune_dummies(c: &mut Containers) {
    let n = c.parent.len();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut order: Vec<usize> = Vec::with_capacity(n);
    for (i, p) in c.parent.iter().enumerate() {
        match p {
            Some(p) => children[*p].push(i),
            None => order.push(i),
        }
    }
    // Breadth-first: every parent comes before its children.
    let mut k = 0;
    while k < order.len() {
        order.extend_from_slice(&children[order[k]]);
        k += 1;
    }
    let mut anchor: Vec<Option<usize>> = vec![None; n];
    for &i in &order {
        anchor[i] = c.parent[i].map(|p| {
            if c.message[p].is_some() || c.parent[p].is_none() {
                p
            } else {
                anchor[p].unwrap_or(p)
            }
        });
    }
    // A top dummy keeps its place only with at least two messages promoted to it.
    let mut under_top_dummy = vec![0usize; n];
    for (i, a) in anchor.iter().enumerate() {
        if c.message[i].is_some()
            && let Some(a) = *a
            && c.message[a].is_none()
        {
            under_top_dummy[a] += 1;
        }
    }
    for i in 0..n {
        c.parent[i] = match (c.message[i], anchor[i]) {
            (None, _) => None,
            (Some(_), Some(a)) if c.message[a].is_none() && under_top_dummy[a] < 2 => None,
            (Some(_), a) => a,
        };
        c.alive[i] = c.message[i].is_some() || under_top_dummy[i] >= 2;
    }
}

/// Steps 4 to 6: the top-level threads sorted by sent date (a dummy by its earliest child),
/// threads with the same base subject gathered, then every set of siblings sorted.
fn gather_and_sort(messages: &[ThreadMessage], c: Containers) -> Threads {
    let Containers {
        mut message,
        mut parent,
        alive,
    } = c;
    let n = message.len();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut roots: Vec<usize> = Vec::new();
    for i in (0..n).filter(|&i| alive[i]) {
        match parent[i] {
            Some(p) => children[p].push(i),
            None => roots.push(i),
        }
    }
    let key = |message: &[Option<usize>], i: usize| message[i].map(|m| messages[m].order_key());
    // Step 4. A top dummy's children are messages; its key and subject are its earliest
    // child's.
    for &r in &roots {
        if message[r].is_none() {
            children[r].sort_by_key(|&k| key(&message, k));
        }
    }
    let first_message = |children: &[Vec<usize>], message: &[Option<usize>], i: usize| {
        message[i].or_else(|| children[i].first().and_then(|&f| message[f]))
    };
    roots.sort_by_key(|&r| first_message(&children, &message, r).map(|m| messages[m].order_key()));
    let subject_of = |children: &[Vec<usize>], message: &[Option<usize>], i: usize| {
        let m = first_message(children, message, i)?;
        let s = messages[m].base_subject.as_str();
        (!s.is_empty()).then_some(s)
    };
    let is_reply =
        |message: &[Option<usize>], i: usize| message[i].is_some_and(|m| messages[m].is_reply);
    // Step 5 B: one thread per subject; a dummy wins over a message, an original over a reply.
    let mut table: HashMap<&str, usize> = HashMap::new();
    for &r in &roots {
        let Some(subject) = subject_of(&children, &message, r) else {
            continue;
        };
        match table.get(subject).copied() {
            None => {
                table.insert(subject, r);
            }
            Some(t) => {
                if message[t].is_some()
                    && (message[r].is_none() || (is_reply(&message, t) && !is_reply(&message, r)))
                {
                    table.insert(subject, r);
                }
            }
        }
    }
    // Step 5 C: every other thread of that subject merges into the table's.
    let mut removed = vec![false; n];
    let mut new_roots: Vec<usize> = Vec::new();
    for &r in &roots {
        if removed[r] || parent[r].is_some() {
            continue;
        }
        let Some(subject) = subject_of(&children, &message, r) else {
            continue;
        };
        let Some(t) = table.get(subject).copied() else {
            continue;
        };
        if t == r {
            continue;
        }
        match (message[t].is_none(), message[r].is_none()) {
            (true, true) => {
                // Both dummies: the children of both become siblings.
                let moved = std::mem::take(&mut children[r]);
                for &k in &moved {
                    parent[k] = Some(t);
                }
                children[t].extend(moved);
                removed[r] = true;
            }
            (true, false) => {
                children[t].push(r);
                parent[r] = Some(t);
            }
            _ if is_reply(&message, r) && !is_reply(&message, t) => {
                children[t].push(r);
                parent[r] = Some(t);
            }
            _ => {
                // Siblings under a new dummy, which takes the table entry's place.
                let d = message.len();
                message.push(None);
                parent.push(None);
                removed.push(false);
                children.push(vec![t, r]);
                parent[t] = Some(d);
                parent[r] = Some(d);
                new_roots.push(d);
                table.insert(subject, d);
            }
        }
    }
    roots.extend(new_roots);
    roots.retain(|&r| !removed[r] && parent[r].is_none());
    // Step 6: every set of siblings by sent date; a dummy (only ever at the top, with messages
    // as children) by its earliest child.
    let keys: Vec<Option<(i64, u32)>> = (0..message.len())
        .map(|i| match message[i] {
            Some(m) => Some(messages[m].order_key()),
            None => children[i].iter().filter_map(|&k| key(&message, k)).min(),
        })
        .collect();
    for list in &mut children {
        list.sort_by_key(|&k| keys[k]);
    }
    roots.sort_by_key(|&r| keys[r]);
    Threads {
        numbers: message
            .iter()
            .map(|m| m.map(|m| messages[m].number))
            .collect(),
        children,
        roots,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sort_keys::base_subject;

    fn msg(n: u32, date: i64, subject: &str, id: &str, refs: &[&str]) -> ThreadMessage {
        let (base_subject, is_reply) = base_subject(subject, 1024);
        ThreadMessage {
            number: n,
            seq: n,
            date,
            base_subject,
            is_reply,
            message_id: (!id.is_empty()).then(|| id.to_string()),
            references: refs.iter().map(|r| r.to_string()).collect(),
        }
    }

    fn tree(numbers: Vec<Option<u32>>, children: Vec<Vec<usize>>, roots: Vec<usize>) -> Threads {
        Threads {
            numbers,
            children,
            roots,
        }
    }

    #[test]
    fn encodes_like_the_rfc() {
        // RFC 5256 §5's example: (3 6 (4 23)(44 7 96)), nodes 0..=7 in that order.
        let n = |v: &[u32]| v.iter().map(|&x| Some(x)).collect::<Vec<_>>();
        let t = tree(
            n(&[3, 6, 4, 23, 44, 7, 96]),
            vec![
                vec![1],
                vec![2, 4],
                vec![3],
                vec![],
                vec![5],
                vec![6],
                vec![],
            ],
            vec![0],
        );
        assert_eq!(t.encode_all(), "(3 6 (4 23)(44 7 96))");
        // A dummy at the top: ((3)(5)).
        let t = tree(
            vec![Some(2), None, Some(3), Some(5)],
            vec![vec![], vec![2, 3], vec![], vec![]],
            vec![0, 1],
        );
        assert_eq!(t.encode_all(), "(2)((3)(5))");
    }

    #[test]
    fn message_ids() {
        assert_eq!(first_msg_id(" <> <a@x> (c) <b@y>"), Some("a@x".to_string()));
        assert_eq!(first_msg_id("no ids <unclosed"), None);
        let (ids, more) = last_msg_ids(" <a@x> (comment) <b@y>\t<c@z", 10);
        assert_eq!(ids, vec!["a@x".to_string(), "b@y".to_string()]);
        assert!(!more);
        let (ids, more) = last_msg_ids("<1> <2> <3> <4>", 2);
        assert_eq!(ids, vec!["3".to_string(), "4".to_string()]);
        assert!(more);
        assert_eq!(
            last_msg_ids("<1> <> <2>", 2),
            (vec!["1".into(), "2".into()], false)
        );
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
        assert_eq!(ordered_subject(&ms).encode_all(), "(5)(2 (3)(6))(4 1)");
        assert_eq!(ordered_subject(&[]).encode_all(), "");
    }

    /// RFC 5256 §4, case by case: (messages, expected THREAD data).
    #[test]
    fn references_table() {
        let cases: Vec<(&str, Vec<ThreadMessage>, &str)> = vec![
            (
                "a reply chain and a sibling, sorted by date",
                vec![
                    msg(1, 10, "topic", "a@x", &[]),
                    msg(2, 20, "Re: topic", "b@x", &["a@x"]),
                    msg(3, 30, "Re: topic", "c@x", &["a@x", "b@x"]),
                    msg(4, 25, "Re: topic", "d@x", &["a@x"]),
                ],
                "(1 (2 3)(4))",
            ),
            (
                "a missing parent: the dummy with one child disappears",
                vec![msg(1, 40, "other", "e@x", &["missing@x"])],
                "(1)",
            ),
            (
                "two replies to a missing message: the dummy stays at the top",
                vec![
                    msg(1, 50, "Re: lost", "f@x", &["lost@x"]),
                    msg(2, 45, "Re: lost", "g@x", &["lost@x"]),
                ],
                "((2)(1))",
            ),
            (
                "dummies inside a thread are replaced by their children",
                vec![
                    msg(1, 10, "root", "r@x", &[]),
                    msg(2, 20, "Re: root", "b@x", &["r@x", "gone1@x", "gone2@x"]),
                    msg(3, 30, "Re: root", "c@x", &["r@x", "gone1@x"]),
                ],
                "(1 (2)(3))",
            ),
            (
                "the last reference is the parent even when In-Reply-To-like order differs",
                vec![
                    msg(1, 10, "s", "a@x", &[]),
                    msg(2, 20, "Re: s", "b@x", &["a@x"]),
                    // Truncated References: only b; still a grandchild of 1.
                    msg(3, 30, "Re: s", "c@x", &["b@x"]),
                ],
                "(1 2 3)",
            ),
            (
                "an earlier message's links are kept; step 1 B still re-parents the message",
                vec![
                    // Says c's parent is b.
                    msg(1, 10, "x", "z@x", &["b@x", "c@x"]),
                    // c itself says its parent is a: that wins (step 1 B).
                    msg(2, 20, "y", "c@x", &["a@x"]),
                ],
                "(2 1)",
            ),
            (
                "a loop is never closed",
                vec![
                    msg(1, 10, "x", "a@x", &["b@x"]),
                    msg(2, 20, "x", "b@x", &["a@x"]),
                ],
                "(2 1)",
            ),
            (
                "a message referencing itself",
                vec![msg(1, 10, "self", "a@x", &["a@x"])],
                "(1)",
            ),
            (
                "a duplicate Message-ID: the later message is a different one",
                vec![
                    msg(1, 10, "one", "dup@x", &[]),
                    msg(2, 5, "two", "dup@x", &[]),
                    msg(3, 30, "Re: one", "r@x", &["dup@x"]),
                ],
                "(2)(1 3)",
            ),
            (
                "messages without Message-ID are threads of their own",
                vec![msg(1, 20, "p", "", &[]), msg(2, 10, "q", "", &[])],
                "(2)(1)",
            ),
            (
                "step 5: a reply without references joins the original's thread",
                vec![
                    msg(1, 10, "topic", "a@x", &[]),
                    msg(2, 60, "Re: topic", "h@x", &[]),
                ],
                "(1 2)",
            ),
            (
                "step 5: a misordered reply becomes the child of the original",
                vec![msg(1, 30, "Re: y", "r@x", &[]), msg(2, 40, "y", "o@x", &[])],
                "(2 1)",
            ),
            (
                "step 5: two originals with one subject become siblings under a dummy",
                vec![
                    msg(1, 10, "same", "a@x", &[]),
                    msg(2, 20, "Same", "b@x", &[]),
                    msg(3, 30, "Re: same", "c@x", &[]),
                ],
                "((1)(2)(3))",
            ),
            (
                "step 5: a message joins a dummy thread of its subject",
                vec![
                    msg(1, 50, "Re: lost", "f@x", &["lost@x"]),
                    msg(2, 45, "Re: lost", "g@x", &["lost@x"]),
                    msg(3, 60, "lost", "h@x", &[]),
                ],
                "((2)(1)(3))",
            ),
            (
                "step 5: two dummy threads of one subject merge",
                vec![
                    msg(1, 50, "Re: lost", "f@x", &["lost@x"]),
                    msg(2, 45, "Re: lost", "g@x", &["lost@x"]),
                    msg(3, 40, "Re: lost", "i@x", &["other@x"]),
                    msg(4, 41, "Re: lost", "j@x", &["other@x"]),
                ],
                "((3)(4)(2)(1))",
            ),
            (
                "step 4 before 5: the earliest thread of a subject is the one merged into",
                vec![
                    msg(1, 30, "hello", "a@x", &[]),
                    msg(2, 20, "Re: hello", "b@x", &["c@x"]),
                    msg(3, 10, "hello", "c@x", &[]),
                ],
                "((3 2)(1))",
            ),
            (
                "empty subjects are never gathered",
                vec![msg(1, 10, "", "a@x", &[]), msg(2, 20, "Re:", "b@x", &[])],
                "(1)(2)",
            ),
            (
                "sibling ties are broken by sequence number",
                vec![
                    msg(1, 10, "t", "a@x", &[]),
                    msg(3, 20, "u", "c@x", &["a@x"]),
                    msg(2, 20, "v", "b@x", &["a@x"]),
                ],
                "(1 (2)(3))",
            ),
        ];
        for (what, ms, want) in cases {
            assert_eq!(references(&ms).encode_all(), want, "{what}");
        }
    }

    /// The attack: one message naming 200 000 ancestors, and a mailbox chaining thousands of
    /// messages; both thread and encode with loops only (a recursion would overflow the test
    /// thread's stack) and in O(n log n).
    #[test]
    fn deep_threads_need_no_recursion() {
        let n = 200_000usize;
        let ids: Vec<String> = (0..n).map(|i| format!("m{i}@x")).collect();
        // Each message replies to the previous one: a chain as deep as the mailbox.
        let ms: Vec<ThreadMessage> = (0..n)
            .map(|i| ThreadMessage {
                number: i as u32 + 1,
                seq: i as u32 + 1,
                date: i as i64,
                base_subject: "S".to_string(),
                is_reply: i > 0,
                message_id: Some(ids[i].clone()),
                references: if i == 0 {
                    vec![]
                } else {
                    vec![ids[i - 1].clone()]
                },
            })
            .collect();
        let t = references(&ms);
        assert_eq!(t.len(), 1);
        let mut s = String::new();
        t.encode(0, &mut s);
        assert!(s.starts_with("(1 2 3 "), "{}", &s[..20]);
        assert!(s.ends_with(" 200000)"));
        // Reversed arrival: each message's parent arrives later, so step 1 B keeps cutting
        // and relinking inside one deep tree.
        let mut rev = ms.clone();
        rev.reverse();
        for (i, m) in rev.iter_mut().enumerate() {
            m.seq = i as u32 + 1;
        }
        assert_eq!(references(&rev).len(), 1);
        // One message whose References holds every id, oldest first.
        let one = vec![ThreadMessage {
            number: 1,
            seq: 1,
            date: 0,
            base_subject: "S".to_string(),
            is_reply: true,
            message_id: Some("me@x".to_string()),
            references: ids.clone(),
        }];
        assert_eq!(references(&one).encode_all(), "(1)");
    }
}
