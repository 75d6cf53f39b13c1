//! The operations of the store differential test and their random generator over a small
//! universe (two users, a handful of mailbox names, a dozen bodies, a few flags), small enough
//! that random operations keep hitting the same mailboxes, messages and edge cases.

use bytes::Bytes;
use yubin_meta_api::{
    BlobKey, FlagOp, IndexProjection, InternalDate, MetadataDepth, ModSeq, NewMessage, QuotaLimits,
    SearchIndex, SearchKey, SpecialUse, Uid, UidSet, UserId,
};

/// Accounts per sequence: the second one checks that nothing leaks between accounts.
pub const USERS: usize = 2;

/// Names the ops choose from: INBOX in several spellings (RFC 3501 §5.1: INBOX is
/// case-insensitive), hierarchical names (renaming a parent moves its children, §6.3.5), and
/// names that are invalid or only exist after a rename.
const MAILBOXES: [&str; 10] = [
    "INBOX",
    "inbox",
    "Archive",
    "Archive/2024",
    "Archive/2024/Q1",
    "Work",
    "Work/Projects",
    "Trash",
    "INBOX/Sub",
    "Old",
];

/// Rarely used names that a store must refuse or treat specially.
const ODD_MAILBOXES: [&str; 4] = ["", "Archive/", "a//b", "Bad*Name"];

const KEYWORDS: [&str; 5] = ["$Forwarded", "$Junk", "todo", "Later", "\\seen"];
const SYSTEM_FLAGS: [&str; 5] = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];

/// Distinct bodies; a message refers to one by number, and equal numbers are equal bodies (the
/// same blob key and summary), as a duplicate delivery is.
const BODIES: u32 = 12;

const METADATA_ENTRIES: [&str; 6] = [
    "/private/comment",
    "/shared/comment",
    "/private/a",
    "/private/a/b",
    "/private/a/b/c",
    "/shared/vendor/x",
];

/// A small seeded PRNG (splitmix64): deterministic per seed, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn from_clock() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Rng(u64::try_from(nanos & u128::from(u64::MAX)).unwrap_or(0)
            ^ u64::from(std::process::id()))
    }

    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn index(&mut self, n: usize) -> usize {
        usize::try_from(self.below(n as u64)).unwrap_or(0)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    fn small(&mut self, n: u32) -> u32 {
        u32::try_from(self.below(u64::from(n))).unwrap_or(0)
    }
}

/// Which mailbox an op on a mailbox id addresses.
#[derive(Debug, Clone)]
pub enum Target {
    /// The mailbox of that name now (what SELECT resolves).
    Name(String),
    /// The n-th mailbox the engine ever reported, possibly deleted or renamed since: a session
    /// still selecting it.
    Seen(usize),
}

/// A message to append, described without the user id the engine gave the account.
#[derive(Debug, Clone)]
pub struct Message {
    pub body: u32,
    pub flags: Vec<String>,
    pub day: i64,
}

/// Body text with more distinct trigrams than a message gets postings for
/// (`MAX_GRAMS_PER_MESSAGE`): such a message is unindexed, a candidate of every text search.
fn huge_text() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789 .,-";
        let mut rng = Rng::new(42);
        let mut text: String = (0..60_000)
            .map(|_| char::from(ALPHABET[rng.index(ALPHABET.len())]))
            .collect();
        text.push_str(" the report, Straße");
        text
    })
}

impl Message {
    pub fn build(&self, user: UserId) -> NewMessage {
        let n = self.body;
        let mut message = self.indexed(user);
        match n {
            // Stored without a search index, as messages delivered before there was one.
            10 => message.index = SearchIndex::default(),
            11 => message.index.body_text = huge_text().to_string(),
            _ => {}
        }
        message
    }

    fn indexed(&self, user: UserId) -> NewMessage {
        let n = self.body;
        NewMessage {
            blob: BlobKey::for_content(user, &format!("{n:064x}")),
            size: 100 + u64::from(n) * 37,
            internal_date: InternalDate {
                unix_seconds: 1_700_000_000 + self.day * 86_400 + i64::from(n) * 3_600,
                tz_offset_minutes: if n.is_multiple_of(3) { -300 } else { 60 },
            },
            flags: self.flags.clone(),
            summary: Bytes::from(format!("summary-{n}")),
            index: SearchIndex {
                headers: vec![
                    (
                        "From".into(),
                        format!("Sender {} <s{}@example.org>", n % 4, n % 4),
                    ),
                    ("Subject".into(), format!("Report {n} Grüße")),
                    (
                        "X-Tag".into(),
                        if n.is_multiple_of(2) {
                            "even".into()
                        } else {
                            String::new()
                        },
                    ),
                ],
                sent_date: (!n.is_multiple_of(5)).then_some(InternalDate {
                    unix_seconds: 1_700_000_000 + i64::from(n) * 86_400,
                    tz_offset_minutes: 0,
                }),
                body_text: format!("Body {n} of the report, Straße number {}", n % 3),
            },
        }
    }
}

#[derive(Debug, Clone)]
pub enum Op {
    Create {
        user: usize,
        name: String,
        special_use: Option<SpecialUse>,
    },
    Delete {
        user: usize,
        name: String,
    },
    Rename {
        user: usize,
        from: String,
        to: String,
    },
    Subscribe {
        user: usize,
        name: String,
        on: bool,
    },
    Append {
        user: usize,
        mailbox: String,
        messages: Vec<Message>,
    },
    Select {
        user: usize,
        name: String,
    },
    Status {
        user: usize,
        name: String,
    },
    Fetch {
        user: usize,
        target: Target,
        uids: UidSet,
        with_summary: bool,
    },
    StoreFlags {
        user: usize,
        target: Target,
        uids: UidSet,
        op: FlagOp,
        flags: Vec<String>,
        unchanged_since: Option<ModSeq>,
    },
    Copy {
        user: usize,
        target: Target,
        uids: UidSet,
        destination: String,
        remove_source: bool,
    },
    Expunge {
        user: usize,
        target: Target,
        uids: Option<UidSet>,
    },
    Search {
        user: usize,
        target: Target,
        key: SearchKey,
    },
    SearchIndexed {
        user: usize,
        target: Target,
        key: SearchKey,
        projection: IndexProjection,
    },
    ChangesSince {
        user: usize,
        target: Target,
        since: ModSeq,
    },
    ClaimRecent {
        user: usize,
        target: Target,
        up_to: Uid,
    },
    SetQuota {
        user: usize,
        limits: QuotaLimits,
    },
    Quota {
        user: usize,
    },
    SetMetadata {
        user: usize,
        mailbox: Option<String>,
        entries: Vec<(String, Option<Vec<u8>>)>,
        max_entries: u32,
    },
    GetMetadata {
        user: usize,
        mailbox: Option<String>,
        entries: Vec<String>,
        depth: MetadataDepth,
    },
    ListMailboxes {
        user: usize,
    },
    ListSubscriptions {
        user: usize,
    },
}

impl Op {
    pub fn user(&self) -> usize {
        match self {
            Op::Create { user, .. }
            | Op::Delete { user, .. }
            | Op::Rename { user, .. }
            | Op::Subscribe { user, .. }
            | Op::Append { user, .. }
            | Op::Select { user, .. }
            | Op::Status { user, .. }
            | Op::Fetch { user, .. }
            | Op::StoreFlags { user, .. }
            | Op::Copy { user, .. }
            | Op::Expunge { user, .. }
            | Op::Search { user, .. }
            | Op::SearchIndexed { user, .. }
            | Op::ChangesSince { user, .. }
            | Op::ClaimRecent { user, .. }
            | Op::SetQuota { user, .. }
            | Op::Quota { user }
            | Op::SetMetadata { user, .. }
            | Op::GetMetadata { user, .. }
            | Op::ListMailboxes { user }
            | Op::ListSubscriptions { user } => *user,
        }
    }
}

fn mailbox(rng: &mut Rng) -> String {
    match rng.below(100) {
        0..=2 => (*rng.pick(&ODD_MAILBOXES)).to_string(),
        // Enough further names to reach the mailbox limit (24 in the conformance limits); their
        // superior "Many" is created with the first of them and counts too.
        3..=12 => format!("Many/{}", rng.below(30)),
        _ => (*rng.pick(&MAILBOXES)).to_string(),
    }
}

/// Mostly INBOX and a few others, so messages pile up where flags and searches meet them.
fn busy_mailbox(rng: &mut Rng) -> String {
    if rng.chance(45) {
        "INBOX".into()
    } else {
        mailbox(rng)
    }
}

fn target(rng: &mut Rng) -> Target {
    if rng.chance(12) {
        Target::Seen(rng.index(8))
    } else {
        Target::Name(busy_mailbox(rng))
    }
}

fn flag(rng: &mut Rng) -> String {
    match rng.below(100) {
        0..=54 => (*rng.pick(&SYSTEM_FLAGS)).to_string(),
        // Many distinct keywords reach the per-message (16) and per-mailbox (40) keyword limits.
        55..=69 => format!("kw{}", rng.below(60)),
        // Longer than the longest keyword allowed (64 bytes).
        70 => "x".repeat(65),
        // Never stored (RFC 3501 §2.3.2: \Recent is session state).
        71 => "\\Recent".into(),
        _ => (*rng.pick(&KEYWORDS)).to_string(),
    }
}

fn flags(rng: &mut Rng, most: u32) -> Vec<String> {
    let most = if rng.chance(5) { 20 } else { most };
    (0..rng.small(most + 1)).map(|_| flag(rng)).collect()
}

fn uid(rng: &mut Rng) -> u32 {
    match rng.below(10) {
        0 => 0,
        1 => u32::MAX,
        2 => 1000 + rng.small(100),
        _ => 1 + rng.small(30),
    }
}

/// A UID set with in-range, out-of-range and open-ended (`n:*`, written as `u32::MAX`) parts.
fn uid_set(rng: &mut Rng) -> UidSet {
    if rng.chance(25) {
        return UidSet::from_ranges([(1 + rng.small(5), u32::MAX)]);
    }
    let parts = 1 + rng.small(3);
    UidSet::from_ranges((0..parts).map(|_| {
        let a = uid(rng);
        if rng.chance(50) {
            (a, a)
        } else {
            (a, uid(rng))
        }
    }))
}

fn modseq(rng: &mut Rng) -> ModSeq {
    match rng.below(8) {
        0 => ModSeq(0),
        1 => ModSeq(u64::MAX),
        _ => ModSeq(rng.below(60)),
    }
}

fn day(rng: &mut Rng) -> i32 {
    // Days since the epoch around the messages' dates (1_700_000_000 s is day 19675).
    19_670 + i32::try_from(rng.below(20)).unwrap_or(0)
}

fn text(rng: &mut Rng) -> String {
    (*rng.pick(&[
        "report", "GRÜSSE", "strasse", "Straße", "7", "", "sender 2", "zzz", "even",
    ]))
    .to_string()
}

/// A search program of bounded depth mixing every kind of key.
fn search_key(rng: &mut Rng, depth: u32) -> SearchKey {
    let leaves = 14;
    let kinds = if depth == 0 { leaves } else { leaves + 3 };
    match rng.below(kinds) {
        0 => SearchKey::All,
        1 => SearchKey::Uids(uid_set(rng)),
        2 => SearchKey::Flag(flag(rng)),
        3 => SearchKey::NoFlag(flag(rng)),
        4 => match rng.below(3) {
            0 => SearchKey::Before(day(rng)),
            1 => SearchKey::On(day(rng)),
            _ => SearchKey::Since(day(rng)),
        },
        5 => match rng.below(3) {
            0 => SearchKey::SentBefore(day(rng)),
            1 => SearchKey::SentOn(day(rng)),
            _ => SearchKey::SentSince(day(rng)),
        },
        6 => SearchKey::Larger(rng.below(600)),
        7 => SearchKey::Smaller(rng.below(600)),
        8 => SearchKey::Header(
            (*rng.pick(&["subject", "FROM", "x-tag", "X-Missing"])).to_string(),
            text(rng),
        ),
        9 => SearchKey::Body(text(rng)),
        10 => SearchKey::Text(text(rng)),
        11 => SearchKey::ModSeqAtLeast(modseq(rng)),
        12 => SearchKey::Flag("\\Deleted".into()),
        13 => SearchKey::Uids(UidSet::new()),
        14 => SearchKey::Not(Box::new(search_key(rng, depth - 1))),
        15 => SearchKey::Or(
            Box::new(search_key(rng, depth - 1)),
            Box::new(search_key(rng, depth - 1)),
        ),
        _ => SearchKey::And(
            (0..rng.small(4))
                .map(|_| search_key(rng, depth - 1))
                .collect(),
        ),
    }
}

fn metadata_mailbox(rng: &mut Rng) -> Option<String> {
    if rng.chance(30) {
        None
    } else {
        Some(busy_mailbox(rng))
    }
}

fn metadata_entry(rng: &mut Rng) -> String {
    if rng.chance(4) {
        "/Private/Bad".into()
    } else {
        (*rng.pick(&METADATA_ENTRIES)).to_string()
    }
}

/// One random operation.
pub fn generate(rng: &mut Rng) -> Op {
    let user = if rng.chance(80) { 0 } else { 1 };
    match rng.below(100) {
        0..=5 => Op::Create {
            user,
            name: mailbox(rng),
            special_use: if rng.chance(20) {
                Some(*rng.pick(&[SpecialUse::Trash, SpecialUse::Archive, SpecialUse::Sent]))
            } else {
                None
            },
        },
        6..=8 => Op::Delete {
            user,
            name: mailbox(rng),
        },
        9..=11 => Op::Rename {
            user,
            from: mailbox(rng),
            to: mailbox(rng),
        },
        12..=14 => Op::Subscribe {
            user,
            name: mailbox(rng),
            on: rng.chance(70),
        },
        15..=29 => Op::Append {
            user,
            mailbox: busy_mailbox(rng),
            messages: (0..1 + rng.small(3))
                .map(|_| Message {
                    body: rng.small(BODIES),
                    flags: flags(rng, 3),
                    day: i64::try_from(rng.below(10)).unwrap_or(0),
                })
                .collect(),
        },
        30..=32 => Op::Select {
            user,
            name: busy_mailbox(rng),
        },
        33..=34 => Op::Status {
            user,
            name: mailbox(rng),
        },
        35..=38 => Op::Fetch {
            user,
            target: target(rng),
            uids: uid_set(rng),
            with_summary: rng.chance(50),
        },
        39..=50 => Op::StoreFlags {
            user,
            target: target(rng),
            uids: uid_set(rng),
            op: *rng.pick(&[FlagOp::Add, FlagOp::Remove, FlagOp::Replace]),
            flags: flags(rng, 3),
            unchanged_since: rng.chance(25).then(|| modseq(rng)),
        },
        51..=56 => Op::Copy {
            user,
            target: target(rng),
            uids: uid_set(rng),
            destination: busy_mailbox(rng),
            remove_source: rng.chance(50),
        },
        57..=61 => Op::Expunge {
            user,
            target: target(rng),
            uids: rng.chance(40).then(|| uid_set(rng)),
        },
        62..=68 => Op::Search {
            user,
            target: target(rng),
            key: search_key(rng, 3),
        },
        69..=71 => Op::SearchIndexed {
            user,
            target: target(rng),
            key: search_key(rng, 2),
            projection: IndexProjection {
                headers: match rng.below(3) {
                    0 => Vec::new(),
                    1 => vec!["subject".into()],
                    _ => vec!["From".into(), "X-TAG".into()],
                },
                body_chars: rng.small(12),
            },
        },
        72..=77 => Op::ChangesSince {
            user,
            target: target(rng),
            since: modseq(rng),
        },
        78..=81 => Op::ClaimRecent {
            user,
            target: target(rng),
            up_to: Uid(match rng.below(4) {
                0 => u32::MAX,
                1 => 0,
                _ => 1 + rng.small(30),
            }),
        },
        82..=83 => Op::SetQuota {
            user,
            limits: QuotaLimits {
                storage_bytes: rng.chance(50).then(|| 500 + rng.below(5000)),
                messages: rng.chance(50).then(|| rng.below(25)),
            },
        },
        84..=85 => Op::Quota { user },
        86..=90 => Op::SetMetadata {
            user,
            mailbox: metadata_mailbox(rng),
            entries: (0..1 + rng.small(3))
                .map(|_| {
                    let value = rng
                        .chance(70)
                        .then(|| format!("v{}", rng.below(5)).into_bytes());
                    (metadata_entry(rng), value)
                })
                .collect(),
            max_entries: 2 + rng.small(4),
        },
        91..=94 => Op::GetMetadata {
            user,
            mailbox: metadata_mailbox(rng),
            entries: (0..1 + rng.small(2)).map(|_| metadata_entry(rng)).collect(),
            depth: *rng.pick(&[
                MetadataDepth::Zero,
                MetadataDepth::One,
                MetadataDepth::Infinity,
            ]),
        },
        95..=97 => Op::ListMailboxes { user },
        _ => Op::ListSubscriptions { user },
    }
}
