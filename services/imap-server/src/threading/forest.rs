//! A dynamic forest that answers "which tree root is above this node" in O(log n) amortized
//! time while edges are added and removed: a link-cut tree (Sleator–Tarjan), without the
//! re-rooting operation, because the REFERENCES algorithm only ever hangs a tree's root under
//! another node and detaches a node from its parent.
//!
//! RFC 5256 §4 step 1 refuses every link that would make a loop. With plain parent pointers
//! that check walks the whole ancestor chain, which a crafted mailbox makes as deep as it has
//! messages and references (a quadratic total); this structure keeps every check logarithmic.
//! Every operation is a loop: nothing here recurses.

const NONE: u32 = u32::MAX;

/// The represented forest is rooted; each node has at most one parent.
pub(crate) struct LinkCutForest {
    /// Children in the auxiliary splay tree: `[left, right]`; left is towards the root.
    child: Vec<[u32; 2]>,
    /// The splay-tree parent, or (for a splay root) the path-parent pointer.
    up: Vec<u32>,
}

impl LinkCutForest {
    pub(crate) fn new() -> LinkCutForest {
        LinkCutForest {
            child: Vec::new(),
            up: Vec::new(),
        }
    }

    /// Adds a node of its own tree; returns its index (consecutive from 0).
    pub(crate) fn add(&mut self) -> usize {
        self.child.push([NONE, NONE]);
        self.up.push(NONE);
        self.child.len() - 1
    }

    /// Whether `x` is the root of its splay tree (its `up` is a path-parent or nothing).
    fn is_splay_root(&self, x: u32) -> bool {
        let p = self.up[x as usize];
        p == NONE || (self.child[p as usize][0] != x && self.child[p as usize][1] != x)
    }

    fn rotate(&mut self, x: u32) {
        let y = self.up[x as usize];
        let z = self.up[y as usize];
        let dir = usize::from(self.child[y as usize][1] == x);
        if !self.is_splay_root(y) {
            let zd = usize::from(self.child[z as usize][1] == y);
            self.child[z as usize][zd] = x;
        }
        self.up[x as usize] = z;
        let moved = self.child[x as usize][1 - dir];
        self.child[y as usize][dir] = moved;
        if moved != NONE {
            self.up[moved as usize] = y;
        }
        self.child[x as usize][1 - dir] = y;
        self.up[y as usize] = x;
    }

    fn splay(&mut self, x: u32) {
        while !self.is_splay_root(x) {
            let y = self.up[x as usize];
            if !self.is_splay_root(y) {
                let z = self.up[y as usize];
                let zig_zig = (self.child[y as usize][0] == x) == (self.child[z as usize][0] == y);
                self.rotate(if zig_zig { y } else { x });
            }
            self.rotate(x);
        }
    }

    /// Makes the path from `x`'s tree root to `x` the preferred path, with `x` at the root of
    /// its splay tree and nothing below it on that path.
    fn access(&mut self, x: u32) {
        let mut last = NONE;
        let mut y = x;
        while y != NONE {
            self.splay(y);
            self.child[y as usize][1] = last;
            last = y;
            y = self.up[y as usize];
        }
        self.splay(x);
    }

    /// The root of the tree holding `x`.
    pub(crate) fn root(&mut self, x: usize) -> usize {
        let x = x as u32;
        self.access(x);
        let mut r = x;
        while self.child[r as usize][0] != NONE {
            r = self.child[r as usize][0];
        }
        // Splaying the root keeps the next query on this tree cheap (amortized bound).
        self.splay(r);
        r as usize
    }

    /// Hangs `child`, which must be the root of its tree and not an ancestor of `parent`, under
    /// `parent`.
    pub(crate) fn link(&mut self, child: usize, parent: usize) {
        let c = child as u32;
        self.access(c);
        debug_assert_eq!(self.child[child][0], NONE, "only a root is linked");
        self.up[child] = parent as u32;
    }

    /// Detaches `x` from its parent, if it has one.
    pub(crate) fn cut(&mut self, x: usize) {
        let xi = x as u32;
        self.access(xi);
        let above = self.child[x][0];
        if above != NONE {
            self.up[above as usize] = NONE;
            self.child[x][0] = NONE;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The forest against plain parent pointers over a deterministic pseudo-random sequence of
    /// links and cuts.
    #[test]
    fn agrees_with_parent_pointers() {
        let n = 200;
        let mut f = LinkCutForest::new();
        let mut parent: Vec<Option<usize>> = vec![None; n];
        for _ in 0..n {
            f.add();
        }
        let naive_root = |parent: &[Option<usize>], mut x: usize| {
            while let Some(p) = parent[x] {
                x = p;
            }
            x
        };
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let a = (next() % n as u64) as usize;
            let b = (next() % n as u64) as usize;
            match next() % 3 {
                0 => {
                    f.cut(a);
                    parent[a] = None;
                }
                _ => {
                    if parent[a].is_none() && naive_root(&parent, b) != a {
                        assert_ne!(f.root(b), a);
                        f.link(a, b);
                        parent[a] = Some(b);
                    } else if parent[a].is_none() {
                        assert_eq!(f.root(b), a, "{b} is below {a}");
                    }
                }
            }
            assert_eq!(f.root(a), naive_root(&parent, a));
            assert_eq!(f.root(b), naive_root(&parent, b));
        }
    }

    /// A chain as deep as the forest is large is built and queried with loops only.
    #[test]
    fn deep_chains_need_no_stack() {
        let n = 300_000;
        let mut f = LinkCutForest::new();
        for _ in 0..n {
            f.add();
        }
        for i in 1..n {
            f.link(i, i - 1);
        }
        assert_eq!(f.root(n - 1), 0);
        f.cut(n / 2);
        assert_eq!(f.root(n - 1), n / 2);
        assert_eq!(f.root(n / 2 - 1), 0);
    }
}
