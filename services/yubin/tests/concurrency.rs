//! Randomized concurrent sessions on the distributed stack (the idea of Dovecot's imaptest): many
//! clients on two front-end nodes run random commands against the same mailboxes. Each client keeps
//! a model of its own view (sequence number -> UID, flags, `\Recent`), built only from what the
//! server told it, and every response is checked against that model; a shared ledger of everything
//! the server acknowledged (APPENDUID, COPYUID, STORE, EXPUNGE, MOVE) is checked against the final
//! state. What is checked, by RFC section:
//!
//! - a session's sequence numbers change only when it is told (EXISTS / EXPUNGE), a sequence number
//!   keeps its UID, and UIDs ascend with the sequence numbers (RFC 3501 §2.3.1.1, §2.3.1.2, §7.3.1);
//! - EXPUNGE is never sent outside a command, nor during FETCH, STORE or SEARCH, nor during CLOSE
//!   (§7.4.1, §6.4.2); the UID forms may carry it (§6.4.8);
//! - responses never name a sequence number or UID the session was not told about;
//! - STORE without .SILENT answers the new flags (§6.4.6), UID FETCH / UID STORE carry UID (§6.4.8);
//! - a flag set by one session reaches every session that has the message selected as an untagged
//!   FETCH (§7.4.2), on either node; after the run every session's view equals the mailbox;
//! - `\Recent` (IMAP4rev1) is owned by exactly one read-write session (§2.3.2);
//! - SELECT/STATUS UIDNEXT is above every UID acknowledged before the command, UIDVALIDITY never
//!   changes, APPENDUID/COPYUID UIDs are fresh (RFC 4315 §3);
//! - every acknowledged message is present exactly once at the end unless an acknowledged command
//!   removed it (STORE \Deleted then EXPUNGE/CLOSE, or MOVE, RFC 6851), and nothing else is present.
//!
//! The seed is printed; `YUBIN_CONCURRENCY_SEED` repeats a run's command choices (the interleaving
//! of course differs) and `YUBIN_CONCURRENCY_SECS` changes how long the random phase runs.

mod common;

use common::response::{Untagged, Value, flags_of, parse_untagged, response_code};
use common::stack::Stack;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use yubin_loadtest::client::{Imap, Line};

const USER: &str = "storm";
const PASSWORD: &str = "storm-pw";
const MAILBOXES: [&str; 3] = ["INBOX", "Alpha", "Beta"];
const CLIENTS: usize = 12;
const DEFAULT_RANDOM_PHASE: Duration = Duration::from_secs(20);
const SEED_VAR: &str = "YUBIN_CONCURRENCY_SEED";
const SECS_VAR: &str = "YUBIN_CONCURRENCY_SECS";
/// How many lines of each client's exchange a report shows (default 40).
const TRANSCRIPT_VAR: &str = "YUBIN_CONCURRENCY_TRANSCRIPT";

fn transcript_len() -> usize {
    std::env::var(TRANSCRIPT_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}
/// How long a session may take to be told about a change that must reach it (an expunge it is
/// owed, a flag change made elsewhere); the product target is milliseconds.
const CATCH_UP: Duration = Duration::from_millis(1500);
/// How long `settle_view` may keep fetching newly announced messages before giving up.
const SETTLE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Deterministic randomness (splitmix64): no dependency, and a seed reproduces the choices.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Expands a UID set of a COPYUID code in its stated order (RFC 4315 §3: the n-th source UID was
/// copied to the n-th destination UID).
fn expand_uid_set(set: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in set.split(',') {
        match part.split_once(':') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                let (lo, hi) = (a.min(b), a.max(b));
                if hi - lo > 100_000 {
                    return None;
                }
                out.extend(lo..=hi);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// A sequence set in the compact wire form: `1:3,7`.
fn set_of(numbers: &[u32]) -> String {
    let mut sorted = numbers.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if j > i {
            let _ = write!(out, "{}:{}", sorted[i], sorted[j]);
        } else {
            let _ = write!(out, "{}", sorted[i]);
        }
        i = j + 1;
    }
    out
}

fn keyword(client: usize) -> String {
    format!("$k{client}")
}

// ---------------------------------------------------------------------------------------------
// The shared ledger: what the server acknowledged, to be checked against the final state.

type MessageKey = (String, u32);

struct Acknowledged {
    message_id: String,
    /// The source of a COPY/MOVE: a copy carries the source's flags, `\Deleted` included.
    copied_from: Option<MessageKey>,
    /// Per client: whether its own keyword is set. Only that client stores its keyword, so after
    /// its acknowledged STORE the value is known; None when unknown (after a COPY, or a NO).
    own_keyword: Vec<Option<bool>>,
}

/// A client's selected mailbox after the run: (client, mailbox, UID and flags per message).
type FinalView = (usize, String, Vec<(u32, BTreeSet<String>)>);

#[derive(Default)]
struct Ledger {
    uid_validity: HashMap<String, u32>,
    messages: HashMap<MessageKey, Acknowledged>,
    /// The highest UID an APPEND/COPY/MOVE acknowledged, per mailbox.
    highest_acknowledged: HashMap<String, u32>,
    /// Targets of an acknowledged `+FLAGS (\Deleted)`; nobody ever removes `\Deleted`.
    deleted_stored: HashSet<MessageKey>,
    /// Sources of an acknowledged MOVE.
    moved_away: HashSet<MessageKey>,
    /// Messages that had `\Deleted` (as the session knew) when its EXPUNGE/CLOSE was acknowledged.
    must_be_gone: HashSet<MessageKey>,
    /// Messages some session was told are expunged, and which client was told.
    expunge_told: HashMap<MessageKey, usize>,
    /// `\Recent` as told to read-write sessions: which client owns each message.
    recent_owner: HashMap<MessageKey, usize>,
    /// Each client's view of its selected mailbox after the run: UID and flags per message.
    final_views: Vec<FinalView>,
}

impl Ledger {
    /// Whether an acknowledged command may have removed the message: MOVE, or `\Deleted` set on
    /// it or on the message it was copied from (a copy carries the flags).
    fn removable(&self, key: &MessageKey) -> bool {
        let mut key = key.clone();
        for _ in 0..64 {
            if self.moved_away.contains(&key) || self.deleted_stored.contains(&key) {
                return true;
            }
            match self.messages.get(&key).and_then(|m| m.copied_from.clone()) {
                Some(source) => key = source,
                None => return false,
            }
        }
        false
    }
}

#[derive(Default)]
struct Shared {
    ledger: Mutex<Ledger>,
    violations: Mutex<Vec<String>>,
    commands: Mutex<HashMap<String, u64>>,
}

impl Shared {
    fn violation(&self, text: String) {
        let mut v = self.violations.lock().expect("lock");
        if v.len() < 500 {
            v.push(text);
        }
    }
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().expect("lock")
    }
}

// ---------------------------------------------------------------------------------------------
// A client's model of its selected mailbox.

#[derive(Clone, Copy, Default, PartialEq)]
enum Origin {
    /// In the first EXISTS of the SELECT, the snapshot UIDNEXT describes: UID below UIDNEXT.
    SelectSnapshot,
    /// In a later EXISTS of the same SELECT response (caught up while selecting): no bound.
    DuringSelect,
    /// Announced after the SELECT: UID not below UIDNEXT (RFC 3501 §2.3.1.1: UIDNEXT changes
    /// only when messages are added, so a client may take it as "nothing older is new").
    #[default]
    Later,
}

#[derive(Clone, Default)]
struct Slot {
    uid: Option<u32>,
    flags: Option<BTreeSet<String>>,
    /// `\Recent` as told (fixed for the life of the selection).
    recent: Option<bool>,
    /// When the session was told of it, which bounds its UID by the SELECT's UIDNEXT.
    origin: Origin,
    /// This session knows the message has `\Deleted` (told, or its own acknowledged STORE).
    known_deleted: bool,
}

struct View {
    mailbox: String,
    read_only: bool,
    slots: Vec<Slot>,
    uid_next_at_select: u32,
    /// The SELECT's first EXISTS (its snapshot) has been seen.
    select_snapshot_taken: bool,
    /// UIDs this view was told are expunged: they never come back.
    gone: HashSet<u32>,
    /// UIDs the session must be told are expunged soon (the only legitimate reason for a missing
    /// answer), with why.
    expect_gone: Vec<(u32, String)>,
}

impl View {
    fn seq_of(&self, uid: u32) -> Option<usize> {
        self.slots.iter().position(|s| s.uid == Some(uid))
    }
}

/// What the command in progress allows (RFC 3501 §7.4.1).
#[derive(Clone)]
struct Ctx {
    command: String,
    expunge_allowed: bool,
    /// UIDs whose own-keyword state this command is changing: their FETCH responses are checked
    /// against the STORE, not against the ledger's previous value.
    storing: Vec<u32>,
    /// The SELECT/EXAMINE in progress builds a fresh view.
    selecting: bool,
    /// SEARCH results are UIDs (UID SEARCH).
    uid_results: bool,
}

impl Ctx {
    fn new(command: &str, expunge_allowed: bool) -> Ctx {
        Ctx {
            command: command.to_string(),
            expunge_allowed,
            storing: Vec::new(),
            selecting: false,
            uid_results: false,
        }
    }
}

/// What one untagged response told, with the UID the message had in the view at that moment.
#[derive(Debug)]
enum Event {
    Exists,
    Expunge,
    Fetch {
        uid: Option<u32>,
        has_uid: bool,
        flags: Option<BTreeSet<String>>,
        attrs: Vec<(String, Value)>,
    },
    /// The UIDs of the results the view could map, at the moment the response came, and the
    /// sequence numbers whose UID it did not know yet.
    Search(HashSet<u32>, Vec<u32>),
    Code(String),
    Other,
}

struct Client {
    id: usize,
    /// Whether this client already reported a violation (the first one carries the transcript).
    reported: bool,
    imap: Imap,
    rng: Rng,
    shared: Arc<Shared>,
    view: Option<View>,
    appended: u32,
    seed: u64,
    /// The last exchanges, attached to the first violations for context.
    transcript: VecDeque<String>,
}

struct Outcome {
    events: Vec<Event>,
    status: String,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.status.starts_with("OK")
    }
    fn codes(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Code(c) => Some(c.clone()),
                _ => None,
            })
            .collect();
        out.extend(response_code(
            self.status.split_once(' ').map_or("", |s| s.1),
        ));
        out
    }
    fn code(&self, name: &str) -> Option<String> {
        self.codes()
            .into_iter()
            .find(|c| c.split(' ').next() == Some(name))
    }
}

impl Client {
    fn violation(&mut self, ctx: &Ctx, what: &str) {
        let mailbox = self.view.as_ref().map_or("-", |v| v.mailbox.as_str());
        let mut text = format!(
            "client {} [{}] during `{}`: {what}",
            self.id, mailbox, ctx.command
        );
        if !self.reported {
            self.reported = true;
            text.push_str("\n    recent exchanges:");
            for t in &self.transcript {
                let _ = write!(text, "\n      {t}");
            }
        }
        self.shared.violation(text);
    }

    fn note(&mut self, text: String) {
        let mut text = text;
        if text.len() > 400 {
            let mut cut = 400;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        if self.transcript.len() >= transcript_len() {
            self.transcript.pop_front();
        }
        self.transcript.push_back(text);
    }

    fn count(&self, name: &str) {
        *self
            .shared
            .commands
            .lock()
            .expect("lock")
            .entry(name.to_string())
            .or_default() += 1;
    }

    /// Lines the server sent between commands: EXPUNGE is not allowed there (RFC 3501 §7.4.1).
    async fn drain_unsolicited(&mut self) {
        let ctx = Ctx::new("(between commands)", false);
        while let Some(line) = self.imap.unsolicited().await {
            self.note(format!("S(unsolicited): {}", line.text));
            self.absorb(&line, &ctx);
        }
    }

    /// Sends one command, checks every untagged response against the model, returns what it told.
    async fn run(&mut self, ctx: &Ctx) -> Outcome {
        self.drain_unsolicited().await;
        self.note(format!("C: {}", ctx.command));
        let response = self.imap.run(&ctx.command).await;
        self.finish(ctx, response.untagged, response.status)
    }

    fn finish(&mut self, ctx: &Ctx, untagged: Vec<Line>, status: String) -> Outcome {
        let mut events = Vec::new();
        for line in &untagged {
            self.note(format!("S: {}", line.text));
            events.push(self.absorb(line, ctx));
        }
        self.note(format!("S: <tag> {status}"));
        if status.starts_with("BAD") {
            self.violation(ctx, &format!("BAD for a well-formed command: {status}"));
        }
        Outcome { events, status }
    }

    /// Applies one untagged response to the model and checks it.
    fn absorb(&mut self, line: &Line, ctx: &Ctx) -> Event {
        let parsed = match parse_untagged(line) {
            Ok(p) => p,
            Err(e) => {
                self.violation(ctx, &format!("unparsable response {:?}: {e}", line.text));
                return Event::Other;
            }
        };
        match parsed {
            Untagged::Exists(n) => {
                let Some(view) = self.view.as_mut() else {
                    self.violation(ctx, &format!("`{}` with no mailbox selected", line.text));
                    return Event::Other;
                };
                let len = view.slots.len() as u32;
                if n < len {
                    let what = format!(
                        "EXISTS {n} is below the {len} messages the session has (RFC 3501 §7.3.1: \
                         messages leave only by EXPUNGE)"
                    );
                    self.violation(ctx, &what);
                    return Event::Exists;
                }
                let origin = match (ctx.selecting, view.select_snapshot_taken) {
                    (true, false) => Origin::SelectSnapshot,
                    (true, true) => Origin::DuringSelect,
                    (false, _) => Origin::Later,
                };
                view.select_snapshot_taken = true;
                view.slots.extend((len..n).map(|_| Slot {
                    origin,
                    ..Slot::default()
                }));
                Event::Exists
            }
            Untagged::Recent(n) => {
                let len = self.view.as_ref().map_or(0, |v| v.slots.len()) as u32;
                if n > len {
                    self.violation(ctx, &format!("RECENT {n} exceeds EXISTS {len}"));
                }
                Event::Other
            }
            Untagged::Expunge(n) => {
                if !ctx.expunge_allowed {
                    self.violation(
                        ctx,
                        &format!(
                            "`{}` sent where RFC 3501 §7.4.1 forbids EXPUNGE (no command, FETCH, \
                             STORE, SEARCH) or §6.4.2 (CLOSE)",
                            line.text
                        ),
                    );
                }
                let Some(view) = self.view.as_mut() else {
                    self.violation(ctx, &format!("`{}` with no mailbox selected", line.text));
                    return Event::Other;
                };
                if n == 0 || n as usize > view.slots.len() {
                    let len = view.slots.len();
                    self.violation(
                        ctx,
                        &format!("EXPUNGE {n} names no message of the session's {len}"),
                    );
                    return Event::Expunge;
                }
                let slot = view.slots.remove(n as usize - 1);
                if let Some(uid) = slot.uid {
                    view.gone.insert(uid);
                    view.expect_gone.retain(|(u, _)| *u != uid);
                    let key = (view.mailbox.clone(), uid);
                    self.shared.ledger().expunge_told.insert(key, self.id);
                }
                Event::Expunge
            }
            Untagged::Fetch(n, attrs) => self.absorb_fetch(n, attrs, ctx, &line.text),
            Untagged::Search(numbers) => {
                let (matched, unknown_seqs, problems) =
                    self.resolve_search(&numbers, ctx.uid_results);
                for p in problems {
                    self.violation(ctx, &p);
                }
                Event::Search(matched, unknown_seqs)
            }
            Untagged::Cond { kind, code } => {
                if kind != "OK" {
                    self.violation(ctx, &format!("unexpected `{}`", line.text));
                }
                match code {
                    Some(c) => Event::Code(c),
                    None => Event::Other,
                }
            }
            Untagged::Data(word) => {
                let expected = [
                    "FLAGS",
                    "LIST",
                    "LSUB",
                    "STATUS",
                    "CAPABILITY",
                    "ENABLED",
                    "ID",
                    "NAMESPACE",
                ];
                if !expected.contains(&word.as_str()) {
                    // VANISHED, ESEARCH, … need an extension this client never enabled.
                    self.violation(ctx, &format!("response not asked for: `{}`", line.text));
                }
                Event::Other
            }
        }
    }

    fn absorb_fetch(
        &mut self,
        n: u32,
        attrs: Vec<(String, Value)>,
        ctx: &Ctx,
        text: &str,
    ) -> Event {
        let id = self.id;
        let mut problems = Vec::new();
        let Some(view) = self.view.as_mut() else {
            self.violation(ctx, &format!("`{text}` with no mailbox selected"));
            return Event::Other;
        };
        if n == 0 || n as usize > view.slots.len() {
            let len = view.slots.len();
            self.violation(
                ctx,
                &format!("FETCH for message {n}, but the session was told of {len}"),
            );
            return Event::Other;
        }
        let idx = n as usize - 1;
        let told_uid = attrs
            .iter()
            .find(|(k, _)| k == "UID")
            .and_then(|(_, v)| match v {
                Value::Atom(a) => a.parse::<u32>().ok(),
                _ => None,
            });
        let flags = attrs
            .iter()
            .find(|(k, _)| k == "FLAGS")
            .and_then(|(_, v)| flags_of(v));
        let mut newly_known_uid = None;
        if let Some(uid) = told_uid {
            match view.slots[idx].uid {
                Some(known) if known != uid => problems.push(format!(
                    "message {n} had UID {known} and is now told UID {uid} (RFC 3501 §2.3.1.1)"
                )),
                Some(_) => {}
                None => {
                    let below = view.slots[..idx].iter().rev().find_map(|s| s.uid);
                    let above = view.slots[idx + 1..].iter().find_map(|s| s.uid);
                    if below.is_some_and(|b| b >= uid) || above.is_some_and(|a| a <= uid) {
                        problems.push(format!(
                            "UID {uid} of message {n} breaks ascending order (neighbours \
                             {below:?}, {above:?})"
                        ));
                    }
                    if view.gone.contains(&uid) {
                        problems.push(format!("UID {uid} was expunged and is back as message {n}"));
                    }
                    let slot = &view.slots[idx];
                    if slot.origin == Origin::SelectSnapshot && uid >= view.uid_next_at_select {
                        problems.push(format!(
                            "UID {uid} of a message counted in SELECT's EXISTS is not below that \
                             SELECT's UIDNEXT {}",
                            view.uid_next_at_select
                        ));
                    }
                    if slot.origin == Origin::Later && uid < view.uid_next_at_select {
                        problems.push(format!(
                            "UID {uid} of a message announced after SELECT is below that SELECT's \
                             UIDNEXT {}",
                            view.uid_next_at_select
                        ));
                    }
                    view.slots[idx].uid = Some(uid);
                    newly_known_uid = Some(uid);
                }
            }
        }
        let slot_uid = view.slots[idx].uid;
        if let Some(flags) = &flags {
            let slot = &mut view.slots[idx];
            let recent = flags.contains("\\Recent");
            if let Some(was) = slot.recent
                && was != recent
            {
                problems.push(format!(
                    "\\Recent of message {n} changed from {was} to {recent} within one selection \
                     (RFC 3501 §2.3.2)"
                ));
            }
            slot.recent = Some(recent);
            let deleted = flags.contains("\\Deleted");
            if slot.known_deleted && !deleted {
                problems.push(format!(
                    "message {n} lost \\Deleted, which nobody removes in this test"
                ));
            }
            slot.known_deleted |= deleted;
            slot.flags = Some(flags.clone());
        }
        let mailbox = view.mailbox.clone();
        let read_only = view.read_only;
        let recent = view.slots[idx].recent;
        // Own keyword: only this client stores it, so the server must agree with the ledger.
        if let (Some(uid), Some(flags)) = (slot_uid, &flags)
            && !ctx.storing.contains(&uid)
        {
            let ledger = self.shared.ledger();
            if let Some(Some(set)) = ledger
                .messages
                .get(&(mailbox.clone(), uid))
                .map(|m| m.own_keyword[id])
            {
                let has = flags.contains(&keyword(id));
                if has != set {
                    problems.push(format!(
                        "UID {uid} told with {} {} although this client's acknowledged STORE/APPEND \
                         left it {}",
                        keyword(id),
                        if has { "set" } else { "unset" },
                        if set { "set" } else { "unset" }
                    ));
                }
            }
        }
        // `\Recent` ownership (RFC 3501 §2.3.2): only read-write sessions claim.
        if let (Some(uid), Some(true), false) = (slot_uid, recent, read_only)
            && (newly_known_uid.is_some() || flags.is_some())
        {
            let mut ledger = self.shared.ledger();
            let owner = *ledger.recent_owner.entry((mailbox, uid)).or_insert(id);
            if owner != id {
                problems.push(format!(
                    "UID {uid} is \\Recent here and was \\Recent to client {owner} too"
                ));
            }
        }
        for p in problems {
            self.violation(ctx, &p);
        }
        Event::Fetch {
            uid: slot_uid,
            has_uid: told_uid.is_some(),
            flags,
            attrs,
        }
    }

    /// Keeps only the expectations that are still open: a UID left the view, or never was in it.
    fn resolve_expectations(&mut self) {
        if let Some(view) = self.view.as_mut() {
            let present: HashSet<u32> = view.slots.iter().filter_map(|s| s.uid).collect();
            view.expect_gone.retain(|(uid, _)| present.contains(uid));
        }
    }

    /// Waits (NOOP by NOOP, bounded) for the expunges the session is owed; what is still open
    /// after CATCH_UP is an inconsistency.
    async fn settle_expectations(&mut self) {
        let started = Instant::now();
        loop {
            self.resolve_expectations();
            let open = self.view.as_ref().map_or(0, |v| v.expect_gone.len());
            if open == 0 {
                return;
            }
            if started.elapsed() > CATCH_UP {
                break;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
            self.run(&Ctx::new("NOOP", true)).await;
        }
        let open = self
            .view
            .as_mut()
            .map(|v| std::mem::take(&mut v.expect_gone))
            .unwrap_or_default();
        let ctx = Ctx::new("(settling)", true);
        for (uid, why) in open {
            self.violation(
                &ctx,
                &format!(
                    "UID {uid} is still in the session {CATCH_UP:?} later, but {why}; the server \
                     must have announced its expunge or answered for it"
                ),
            );
        }
    }

    /// Before a selection ends: collect owed expunges, then learn the UID and flags of every
    /// message (which also tells which ones are this session's `\Recent`).
    async fn settle_view(&mut self) {
        if self.view.is_none() {
            return;
        }
        self.run(&Ctx::new("NOOP", true)).await;
        self.settle_expectations().await;
        // Each FETCH's catch-up may announce messages that arrived meanwhile (claiming them as
        // this session's `\Recent`), so a fixed number of rounds can leave some unlearned and
        // their `\Recent` unattributed. Fetch until none is left, bounded in time.
        let started = Instant::now();
        let mut previous_first = None;
        loop {
            let Some(view) = self.view.as_ref() else {
                return;
            };
            let first_unknown = view
                .slots
                .iter()
                .position(|s| s.uid.is_none() || s.flags.is_none());
            let Some(first) = first_unknown else {
                return;
            };
            if started.elapsed() > SETTLE {
                let left = view.slots[first..]
                    .iter()
                    .filter(|s| s.uid.is_none() || s.flags.is_none())
                    .count();
                self.violation(
                    &Ctx::new("(settling)", true),
                    &format!(
                        "{left} announced messages still without UID and FLAGS after \
                         {SETTLE:?} of FETCH (UID FLAGS)"
                    ),
                );
                return;
            }
            if previous_first == Some(first) {
                // No progress: the message was expunged elsewhere and FETCH answers nothing for
                // it (RFC 2180 §4.1.2); a NOOP may send the EXPUNGE that removes it, which
                // shifts the sequence numbers: look again before the next FETCH.
                self.run(&Ctx::new("NOOP", true)).await;
                previous_first = None;
                continue;
            }
            previous_first = Some(first);
            self.run(&Ctx::new(
                &format!("FETCH {}:* (UID FLAGS)", first + 1),
                false,
            ))
            .await;
        }
    }

    // -----------------------------------------------------------------------------------------
    // Commands.

    fn random_other_mailbox(&mut self) -> String {
        let current = self.view.as_ref().map(|v| v.mailbox.clone());
        loop {
            let m = self.rng.pick(&MAILBOXES).to_string();
            if Some(&m) != current.as_ref() {
                return m;
            }
        }
    }

    /// Up to `max` messages of the view whose UID the session knows: (sequence number, UID).
    fn known_targets(&mut self, max: usize) -> Vec<(u32, u32)> {
        let Some(view) = self.view.as_ref() else {
            return Vec::new();
        };
        let known: Vec<(u32, u32)> = view
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.uid.map(|u| (i as u32 + 1, u)))
            .collect();
        if known.is_empty() {
            return known;
        }
        let want = 1 + self.rng.below(max);
        let mut chosen: Vec<(u32, u32)> = (0..want).map(|_| *self.rng.pick(&known)).collect();
        chosen.sort_unstable();
        chosen.dedup();
        chosen
    }

    async fn select(&mut self, mailbox: &str, read_only: bool) {
        self.settle_view().await;
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        self.count(verb);
        let floor = self.highest_acknowledged(mailbox);
        // Whatever the server sent for the old selection belongs to it, not to the new one.
        self.drain_unsolicited().await;
        self.view = Some(View {
            mailbox: mailbox.to_string(),
            read_only,
            slots: Vec::new(),
            uid_next_at_select: 0,
            select_snapshot_taken: false,
            gone: HashSet::new(),
            expect_gone: Vec::new(),
        });
        let mut ctx = Ctx::new(&format!("{verb} {mailbox}"), true);
        ctx.selecting = true;
        let out = self.run(&ctx).await;
        if !out.ok() {
            self.violation(&ctx, &format!("{verb} failed: {}", out.status));
            self.view = None;
            return;
        }
        let saw_exists = out.events.iter().any(|e| matches!(e, Event::Exists));
        if !saw_exists {
            self.violation(&ctx, "no EXISTS (RFC 3501 §6.3.1 requires it)");
        }
        let expected_access = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        if out.code(expected_access).is_none() {
            self.violation(&ctx, &format!("tagged OK without [{expected_access}]"));
        }
        self.check_uid_validity(&ctx, mailbox, out.code("UIDVALIDITY").as_deref());
        match out
            .code("UIDNEXT")
            .and_then(|c| c.split(' ').nth(1).and_then(|n| n.parse::<u32>().ok()))
        {
            Some(next) => {
                if next <= floor {
                    self.violation(
                        &ctx,
                        &format!(
                            "UIDNEXT {next} is not above UID {floor}, acknowledged before the \
                             SELECT began"
                        ),
                    );
                }
                if let Some(view) = self.view.as_mut() {
                    view.uid_next_at_select = next;
                }
            }
            None => self.violation(&ctx, "no [UIDNEXT] (RFC 3501 §6.3.1)"),
        }
        if self.rng.chance(70) && self.view.as_ref().is_some_and(|v| !v.slots.is_empty()) {
            self.fetch_all().await;
        }
    }

    fn highest_acknowledged(&self, mailbox: &str) -> u32 {
        self.shared
            .ledger()
            .highest_acknowledged
            .get(mailbox)
            .copied()
            .unwrap_or(0)
    }

    fn check_uid_validity(&mut self, ctx: &Ctx, mailbox: &str, code: Option<&str>) {
        let Some(value) = code
            .and_then(|c| c.split(' ').next_back())
            .and_then(|v| v.parse::<u32>().ok())
        else {
            self.violation(ctx, "no UIDVALIDITY");
            return;
        };
        let known = *self
            .shared
            .ledger()
            .uid_validity
            .entry(mailbox.to_string())
            .or_insert(value);
        if known != value {
            self.violation(
                ctx,
                &format!(
                    "UIDVALIDITY {value}, but it was {known}: the mailbox was never recreated"
                ),
            );
        }
    }

    async fn fetch_all(&mut self) {
        // `1:*` names no message in an empty mailbox (RFC 3501 §9 seq-number); not asked then.
        if self.view.as_ref().is_none_or(|v| v.slots.is_empty()) {
            return self.noop().await;
        }
        self.count("FETCH");
        self.run(&Ctx::new("FETCH 1:* (UID FLAGS)", false)).await;
    }

    async fn close(&mut self) {
        self.settle_view().await;
        self.count("CLOSE");
        let Some(view) = self.view.as_ref() else {
            return;
        };
        let deleted: Vec<MessageKey> = if view.read_only {
            Vec::new()
        } else {
            view.slots
                .iter()
                .filter(|s| s.known_deleted)
                .filter_map(|s| s.uid.map(|u| (view.mailbox.clone(), u)))
                .collect()
        };
        // RFC 3501 §6.4.2: CLOSE expunges silently, no EXPUNGE responses.
        let out = self.run(&Ctx::new("CLOSE", false)).await;
        if out.ok() {
            self.shared.ledger().must_be_gone.extend(deleted);
        } else {
            self.violation(
                &Ctx::new("CLOSE", false),
                &format!("CLOSE failed: {}", out.status),
            );
        }
        self.view = None;
    }

    async fn status(&mut self) {
        self.count("STATUS");
        let mailbox = self.rng.pick(&MAILBOXES).to_string();
        let floor = self.highest_acknowledged(&mailbox);
        let ctx = Ctx::new(
            &format!("STATUS {mailbox} (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)"),
            true,
        );
        self.drain_unsolicited().await;
        self.note(format!("C: {}", ctx.command));
        let response = self.imap.run(&ctx.command).await;
        let status_line = response
            .untagged
            .iter()
            .find(|l| l.text.starts_with("* STATUS"))
            .map(|l| l.text.clone());
        let out = self.finish(&ctx, response.untagged, response.status);
        if !out.ok() {
            self.violation(&ctx, &format!("STATUS failed: {}", out.status));
            return;
        }
        let Some(line) = status_line else {
            self.violation(&ctx, "no untagged STATUS");
            return;
        };
        let items: Vec<&str> = line
            .rsplit_once('(')
            .map_or("", |(_, r)| r.trim_end_matches(')'))
            .split(' ')
            .collect();
        let item = |name: &str| {
            items
                .chunks(2)
                .find(|c| c[0].eq_ignore_ascii_case(name))
                .and_then(|c| c.get(1))
                .and_then(|v| v.parse::<u32>().ok())
        };
        match item("UIDNEXT") {
            Some(next) if next <= floor => self.violation(
                &ctx,
                &format!(
                    "STATUS UIDNEXT {next} is not above UID {floor}, acknowledged before it began"
                ),
            ),
            Some(_) => {}
            None => self.violation(&ctx, "STATUS without UIDNEXT"),
        }
        let validity = item("UIDVALIDITY").map(|v| format!("UIDVALIDITY {v}"));
        self.check_uid_validity(&ctx, &mailbox, validity.as_deref());
    }

    async fn append(&mut self) {
        self.count("APPEND");
        let mailbox = self.rng.pick(&MAILBOXES).to_string();
        self.appended += 1;
        let message_id = format!("<c{}.{}.{}@storm.test>", self.id, self.appended, self.seed);
        let with_keyword = self.rng.chance(40);
        let mut flags = Vec::new();
        if with_keyword {
            flags.push(keyword(self.id));
        }
        if self.rng.chance(30) {
            flags.push("\\Flagged".to_string());
        }
        if self.rng.chance(30) {
            flags.push("\\Seen".to_string());
        }
        let padding = "x".repeat(self.rng.below(400));
        let body = format!(
            "From: storm{id} <c{id}@storm.test>\r\nTo: {USER}@storm.test\r\nSubject: storm {id} \
             {n}\r\nMessage-ID: {message_id}\r\nDate: Tue, 3 Nov 2026 10:00:00 +0000\r\n\r\nbody \
             {n}\r\n{padding}\r\n",
            id = self.id,
            n = self.appended
        );
        let floor = self.highest_acknowledged(&mailbox);
        let ctx = Ctx::new(
            &format!("APPEND {mailbox} ({}) {{…}}", flags.join(" ")),
            true,
        );
        self.drain_unsolicited().await;
        self.note(format!("C: {}", ctx.command));
        let response = self
            .imap
            .append(&mailbox, &flags.join(" "), body.as_bytes())
            .await;
        let out = self.finish(&ctx, response.untagged, response.status);
        if !out.ok() {
            self.violation(&ctx, &format!("APPEND refused: {}", out.status));
            return;
        }
        let Some(code) = out.code("APPENDUID") else {
            self.violation(&ctx, "tagged OK without [APPENDUID] (RFC 4315 §3)");
            return;
        };
        let parts: Vec<&str> = code.split(' ').collect();
        let (Some(validity), Some(uid)) = (
            parts.get(1).and_then(|v| v.parse::<u32>().ok()),
            parts.get(2).and_then(|v| v.parse::<u32>().ok()),
        ) else {
            self.violation(&ctx, &format!("malformed [{code}]"));
            return;
        };
        self.check_uid_validity(&ctx, &mailbox, Some(&format!("UIDVALIDITY {validity}")));
        if uid <= floor {
            self.violation(
                &ctx,
                &format!("APPENDUID {uid} is not above UID {floor}, acknowledged before"),
            );
        }
        let mut own_keyword = vec![Some(false); CLIENTS];
        own_keyword[self.id] = Some(with_keyword);
        self.acknowledge(&ctx, &mailbox, uid, message_id, None, own_keyword);
    }

    /// Records a message the server acknowledged (APPENDUID / COPYUID destination).
    fn acknowledge(
        &mut self,
        ctx: &Ctx,
        mailbox: &str,
        uid: u32,
        message_id: String,
        copied_from: Option<MessageKey>,
        own_keyword: Vec<Option<bool>>,
    ) {
        let mut ledger = self.shared.ledger();
        let key = (mailbox.to_string(), uid);
        let reused = ledger.messages.contains_key(&key);
        ledger.messages.insert(
            key,
            Acknowledged {
                message_id,
                copied_from,
                own_keyword,
            },
        );
        let high = ledger
            .highest_acknowledged
            .entry(mailbox.to_string())
            .or_insert(0);
        *high = (*high).max(uid);
        drop(ledger);
        if reused {
            self.violation(ctx, &format!("UID {uid} of {mailbox} was given out twice"));
        }
    }

    async fn fetch(&mut self, by_uid: bool) {
        let Some(view) = self.view.as_ref() else {
            return;
        };
        let len = view.slots.len() as u32;
        if len == 0 {
            return self.noop().await;
        }
        let with_header = self.rng.chance(15);
        let items = if with_header {
            "(UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"
        } else if self.rng.chance(20) {
            "(FLAGS)"
        } else {
            "(UID FLAGS)"
        };
        let (set, targets): (String, Vec<u32>) = if by_uid {
            let t = self.known_targets(5);
            if t.is_empty() || self.rng.chance(15) {
                ("1:*".into(), Vec::new())
            } else {
                (
                    set_of(&t.iter().map(|x| x.1).collect::<Vec<_>>()),
                    t.iter().map(|x| x.1).collect(),
                )
            }
        } else if self.rng.chance(25) {
            ("1:*".into(), Vec::new())
        } else {
            let a = 1 + self.rng.below(len as usize) as u32;
            let b = (a + self.rng.below(4) as u32).min(len);
            (set_of(&(a..=b).collect::<Vec<_>>()), Vec::new())
        };
        let requested_seqs: Vec<u32> = if by_uid {
            Vec::new()
        } else if set == "1:*" {
            (1..=len).collect()
        } else {
            set.split(',')
                .flat_map(|p| match p.split_once(':') {
                    Some((a, b)) => {
                        let (a, b): (u32, u32) = (a.parse().unwrap_or(1), b.parse().unwrap_or(1));
                        (a..=b).collect::<Vec<_>>()
                    }
                    None => vec![p.parse().unwrap_or(1)],
                })
                .collect()
        };
        let requested_uids: Vec<u32> = if by_uid {
            targets
        } else {
            let view = self.view.as_ref().expect("selected");
            requested_seqs
                .iter()
                .filter_map(|&s| view.slots.get(s as usize - 1).and_then(|x| x.uid))
                .collect()
        };
        let verb = if by_uid { "UID FETCH" } else { "FETCH" };
        self.count(verb);
        // RFC 3501 §7.4.1: no EXPUNGE during FETCH; UID FETCH may carry one (§6.4.8).
        let ctx = Ctx::new(&format!("{verb} {set} {items}"), by_uid);
        let out = self.run(&ctx).await;
        if !(out.ok() || out.status.starts_with("NO")) {
            return;
        }
        let mut answered: HashMap<u32, bool> = HashMap::new();
        for e in &out.events {
            if let Event::Fetch {
                uid: Some(uid),
                has_uid,
                attrs,
                ..
            } = e
            {
                *answered.entry(*uid).or_default() |= *has_uid;
                if let Some((_, Value::Bytes(header))) = attrs
                    .iter()
                    .find(|(k, _)| k.starts_with("BODY[HEADER.FIELDS"))
                {
                    self.check_message_id(&ctx, *uid, header);
                }
            }
        }
        let view_uids: HashSet<u32> = self
            .view
            .as_ref()
            .map(|v| v.slots.iter().filter_map(|s| s.uid).collect())
            .unwrap_or_default();
        for uid in requested_uids {
            if !view_uids.contains(&uid) {
                continue;
            }
            match answered.get(&uid) {
                None => self.expect_gone(uid, format!("`{}` returned nothing for it", ctx.command)),
                Some(false) if by_uid => self.violation(
                    &ctx,
                    &format!("FETCH response for UID {uid} without UID (RFC 3501 §6.4.8)"),
                ),
                Some(_) => {}
            }
        }
    }

    fn check_message_id(&mut self, ctx: &Ctx, uid: u32, header: &[u8]) {
        let Some(mailbox) = self.view.as_ref().map(|v| v.mailbox.clone()) else {
            return;
        };
        let told = String::from_utf8_lossy(header);
        let expected = self
            .shared
            .ledger()
            .messages
            .get(&(mailbox, uid))
            .map(|m| m.message_id.clone());
        if let Some(expected) = expected
            && !told.contains(&expected)
        {
            self.violation(
                ctx,
                &format!("UID {uid} has header {told:?}, but {expected} was acknowledged there"),
            );
        }
    }

    fn expect_gone(&mut self, uid: u32, why: String) {
        if let Some(view) = self.view.as_mut()
            && !view.expect_gone.iter().any(|(u, _)| *u == uid)
        {
            view.expect_gone.push((uid, why));
        }
    }

    async fn store(&mut self, by_uid: bool) {
        let targets = self.known_targets(4);
        if targets.is_empty() {
            return self.fetch_all().await;
        }
        let own = keyword(self.id);
        let (flag, add) = match self.rng.below(10) {
            0..=2 => (own.clone(), true),
            3..=4 => (own.clone(), false),
            5 => ("\\Flagged".to_string(), true),
            6 => ("\\Flagged".to_string(), false),
            7 => ("\\Seen".to_string(), true),
            _ => ("\\Deleted".to_string(), true),
        };
        let silent = self.rng.chance(25);
        let set = if by_uid {
            set_of(&targets.iter().map(|t| t.1).collect::<Vec<_>>())
        } else {
            set_of(&targets.iter().map(|t| t.0).collect::<Vec<_>>())
        };
        let verb = if by_uid { "UID STORE" } else { "STORE" };
        self.count(verb);
        let mut ctx = Ctx::new(
            &format!(
                "{verb} {set} {}FLAGS{} ({flag})",
                if add { '+' } else { '-' },
                if silent { ".SILENT" } else { "" }
            ),
            by_uid,
        );
        let uids: Vec<u32> = targets.iter().map(|t| t.1).collect();
        if flag == own {
            ctx.storing = uids.clone();
        }
        let (mailbox, read_only) = {
            let v = self.view.as_ref().expect("selected");
            (v.mailbox.clone(), v.read_only)
        };
        let out = self.run(&ctx).await;
        if read_only {
            if out.ok() {
                self.violation(&ctx, "STORE in a read-only (EXAMINE) selection succeeded");
            }
            return;
        }
        if !out.ok() {
            // A NO may leave part of it applied (e.g. a message expunged meanwhile).
            let mut ledger = self.shared.ledger();
            for &uid in &uids {
                if let Some(m) = ledger.messages.get_mut(&(mailbox.clone(), uid))
                    && flag == own
                {
                    m.own_keyword[self.id] = None;
                }
                if flag == "\\Deleted" {
                    ledger.deleted_stored.insert((mailbox.clone(), uid));
                }
            }
            return;
        }
        {
            let mut ledger = self.shared.ledger();
            for &uid in &uids {
                let key = (mailbox.clone(), uid);
                if flag == own
                    && let Some(m) = ledger.messages.get_mut(&key)
                {
                    m.own_keyword[self.id] = Some(add);
                }
                if flag == "\\Deleted" {
                    ledger.deleted_stored.insert(key);
                }
            }
        }
        let mut told: HashMap<u32, (Option<BTreeSet<String>>, bool)> = HashMap::new();
        for e in &out.events {
            if let Event::Fetch {
                uid: Some(uid),
                flags,
                has_uid,
                ..
            } = e
            {
                let entry = told.entry(*uid).or_insert((None, false));
                if flags.is_some() {
                    entry.0 = flags.clone();
                }
                entry.1 |= *has_uid;
            }
        }
        for &uid in &uids {
            let Some(seq) = self.view.as_ref().and_then(|v| v.seq_of(uid)) else {
                continue;
            };
            if silent {
                // The session knows its own change; the server owes no FETCH for it.
                let view = self.view.as_mut().expect("selected");
                let slot = &mut view.slots[seq];
                if let Some(f) = slot.flags.as_mut() {
                    if add {
                        f.insert(flag.clone());
                    } else {
                        f.remove(&flag);
                    }
                }
                if flag == "\\Deleted" {
                    slot.known_deleted = true;
                }
                continue;
            }
            match told.get(&uid) {
                None | Some((None, _)) => self.expect_gone(
                    uid,
                    format!(
                        "`{}` answered OK without its FETCH (RFC 3501 §6.4.6)",
                        ctx.command
                    ),
                ),
                Some((Some(flags), has_uid)) => {
                    // Only this client changes its keyword, and nobody removes \Seen or
                    // \Deleted, so those must show the STORE; \Flagged is set and cleared by
                    // everyone and may already show another session's later change.
                    if flag != "\\Flagged" && flags.contains(&flag) != add {
                        self.violation(
                            &ctx,
                            &format!("FETCH after the STORE shows UID {uid} with FLAGS {flags:?}"),
                        );
                    }
                    if by_uid && !has_uid {
                        self.violation(
                            &ctx,
                            &format!("FETCH for UID {uid} without UID (RFC 3501 §6.4.8)"),
                        );
                    }
                }
            }
        }
    }

    /// Maps SEARCH results to UIDs of the view as it is when the response arrives (a UID SEARCH
    /// may be followed by EXPUNGEs in the same response); results the session cannot know are
    /// inconsistencies.
    fn resolve_search(
        &self,
        results: &[u32],
        by_uid: bool,
    ) -> (HashSet<u32>, Vec<u32>, Vec<String>) {
        let mut matched_uids = HashSet::new();
        // Sequence numbers whose UID the session does not know yet.
        let mut unknown_seqs = Vec::new();
        let mut problems = Vec::new();
        let Some(view) = self.view.as_ref() else {
            problems.push("SEARCH results with no mailbox selected".to_string());
            return (matched_uids, unknown_seqs, problems);
        };
        for &r in results {
            if by_uid {
                if view.seq_of(r).is_some() {
                    matched_uids.insert(r);
                } else if view.gone.contains(&r) {
                    problems.push(format!("UID {r} in the result was expunged from this view"));
                } else {
                    // An unknown UID must fit a message whose UID the session has not learned.
                    let fits = view.slots.iter().enumerate().any(|(i, s)| {
                        s.uid.is_none()
                            && view.slots[..i]
                                .iter()
                                .rev()
                                .find_map(|x| x.uid)
                                .is_none_or(|b| b < r)
                            && view.slots[i + 1..]
                                .iter()
                                .find_map(|x| x.uid)
                                .is_none_or(|a| a > r)
                    });
                    if fits {
                        // Its sequence number may be learned later in this very response.
                        matched_uids.insert(r);
                    } else {
                        problems.push(format!(
                            "UID {r} in the result is no message the session was told of"
                        ));
                    }
                }
            } else if r == 0 || r as usize > view.slots.len() {
                problems.push(format!(
                    "message {r} in the result, but the session was told of {}",
                    view.slots.len()
                ));
            } else {
                match view.slots[r as usize - 1].uid {
                    Some(uid) => {
                        matched_uids.insert(uid);
                    }
                    None => unknown_seqs.push(r),
                }
            }
        }
        (matched_uids, unknown_seqs, problems)
    }

    async fn search(&mut self, by_uid: bool) {
        let Some(view) = self.view.as_ref() else {
            return;
        };
        let len = view.slots.len() as u32;
        let own = keyword(self.id);
        let key = match self.rng.below(7) {
            0 => "ALL".to_string(),
            1 => format!("KEYWORD {own}"),
            2 => format!("UNKEYWORD {own}"),
            3 => "DELETED".to_string(),
            4 => "UNSEEN FLAGGED".to_string(),
            5 if len > 0 => format!("{}:*", 1 + self.rng.below(len as usize)),
            _ => "OR SEEN NOT SEEN".to_string(),
        };
        let verb = if by_uid { "UID SEARCH" } else { "SEARCH" };
        self.count(verb);
        let mut ctx = Ctx::new(&format!("{verb} {key}"), by_uid);
        ctx.uid_results = by_uid;
        let out = self.run(&ctx).await;
        if !out.ok() {
            return;
        }
        let mut matched_uids: HashSet<u32> = HashSet::new();
        for e in &out.events {
            if let Event::Search(uids, unknown_seqs) = e {
                matched_uids.extend(uids);
                // A non-UID SEARCH carries no EXPUNGE (RFC 3501 §7.4.1), so its sequence
                // numbers still name the same messages, whose UIDs may be known by now.
                let view = self.view.as_ref().expect("selected");
                matched_uids.extend(
                    unknown_seqs
                        .iter()
                        .filter_map(|&s| view.slots.get(s as usize - 1).and_then(|x| x.uid)),
                );
            }
        }
        if out
            .events
            .iter()
            .filter(|e| matches!(e, Event::Search(..)))
            .count()
            != 1
        {
            self.violation(&ctx, "not exactly one untagged SEARCH (RFC 3501 §6.4.4)");
        }
        let view = self.view.as_ref().expect("selected");
        let mailbox = view.mailbox.clone();
        let mut problems = Vec::new();
        // What the session knows for certain must match: its own keyword, `\Deleted`, ALL.
        let ledger = self.shared.ledger();
        let mut owed = Vec::new();
        for slot in &view.slots {
            let Some(uid) = slot.uid else { continue };
            let own_set = ledger
                .messages
                .get(&(mailbox.clone(), uid))
                .and_then(|m| m.own_keyword[self.id]);
            let must_match = match key.as_str() {
                "ALL" | "OR SEEN NOT SEEN" => Some(true),
                "DELETED" if slot.known_deleted => Some(true),
                k if k == format!("KEYWORD {own}") => own_set,
                k if k == format!("UNKEYWORD {own}") => own_set.map(|s| !s),
                _ => None,
            };
            match (must_match, matched_uids.contains(&uid)) {
                (Some(true), false) => owed.push(uid),
                (Some(false), true) => problems.push(format!(
                    "UID {uid} matched `{key}` although this client's acknowledged STORE says it \
                     cannot"
                )),
                _ => {}
            }
        }
        drop(ledger);
        for p in problems {
            self.violation(&ctx, &p);
        }
        for uid in owed {
            self.expect_gone(uid, format!("`{}` did not match it", ctx.command));
        }
    }

    async fn expunge(&mut self, by_uid: bool) {
        let Some(view) = self.view.as_ref() else {
            return;
        };
        if view.read_only {
            return self.noop().await;
        }
        let mailbox = view.mailbox.clone();
        let (command, scope): (String, Option<Vec<u32>>) = if by_uid {
            let mut targets: Vec<u32> = view
                .slots
                .iter()
                .filter(|s| s.known_deleted)
                .filter_map(|s| s.uid)
                .collect();
            let extra = self.known_targets(3);
            targets.extend(extra.iter().map(|t| t.1));
            if targets.is_empty() {
                return self.noop().await;
            }
            (format!("UID EXPUNGE {}", set_of(&targets)), Some(targets))
        } else {
            ("EXPUNGE".to_string(), None)
        };
        self.count(if by_uid { "UID EXPUNGE" } else { "EXPUNGE" });
        let view = self.view.as_ref().expect("selected");
        let deleted: Vec<u32> = view
            .slots
            .iter()
            .filter(|s| s.known_deleted)
            .filter_map(|s| s.uid)
            .filter(|u| scope.as_ref().is_none_or(|s| s.contains(u)))
            .collect();
        let ctx = Ctx::new(&command, true);
        let out = self.run(&ctx).await;
        if !out.ok() {
            self.violation(&ctx, &format!("refused: {}", out.status));
            return;
        }
        self.shared
            .ledger()
            .must_be_gone
            .extend(deleted.iter().map(|&u| (mailbox.clone(), u)));
        for uid in deleted {
            self.expect_gone(
                uid,
                format!(
                    "it had \\Deleted and `{}` was acknowledged (RFC 3501 §6.4.3)",
                    ctx.command
                ),
            );
        }
    }

    async fn copy_or_move(&mut self, moving: bool, by_uid: bool) {
        let Some(view) = self.view.as_ref() else {
            return;
        };
        if moving && view.read_only {
            return self.noop().await;
        }
        let source = view.mailbox.clone();
        let targets = self.known_targets(3);
        if targets.is_empty() {
            return self.fetch_all().await;
        }
        let destination = if !moving && self.rng.chance(20) {
            source.clone()
        } else {
            self.random_other_mailbox()
        };
        let set = if by_uid {
            set_of(&targets.iter().map(|t| t.1).collect::<Vec<_>>())
        } else {
            set_of(&targets.iter().map(|t| t.0).collect::<Vec<_>>())
        };
        let verb = match (moving, by_uid) {
            (false, false) => "COPY",
            (false, true) => "UID COPY",
            (true, false) => "MOVE",
            (true, true) => "UID MOVE",
        };
        self.count(verb);
        let floor = self.highest_acknowledged(&destination);
        let ctx = Ctx::new(&format!("{verb} {set} {destination}"), true);
        let out = self.run(&ctx).await;
        if !out.ok() {
            // NO is legitimate when a message was expunged meanwhile (RFC 3501 §6.4.7): then the
            // session is owed that expunge.
            if out.status.starts_with("NO") {
                for t in &targets {
                    self.expect_gone(t.1, format!("`{}` answered {}", ctx.command, out.status));
                }
            }
            return;
        }
        let Some(code) = out.code("COPYUID") else {
            // Legitimate only when nothing was copied because every source had been expunged
            // meanwhile: then the session is owed those expunges (RFC 4315 §3 asks COPYUID of
            // every successful copy).
            for t in &targets {
                self.expect_gone(
                    t.1,
                    format!(
                        "`{}` answered OK without [COPYUID], copying nothing",
                        ctx.command
                    ),
                );
            }
            return;
        };
        let parts: Vec<&str> = code.split(' ').collect();
        let (Some(validity), Some(from), Some(to)) = (
            parts.get(1).and_then(|v| v.parse::<u32>().ok()),
            parts.get(2).and_then(|s| expand_uid_set(s)),
            parts.get(3).and_then(|s| expand_uid_set(s)),
        ) else {
            self.violation(&ctx, &format!("malformed [{code}]"));
            return;
        };
        self.check_uid_validity(&ctx, &destination, Some(&format!("UIDVALIDITY {validity}")));
        if from.len() != to.len() {
            self.violation(
                &ctx,
                &format!("[{code}] pairs {} with {}", from.len(), to.len()),
            );
            return;
        }
        let target_uids: Vec<u32> = targets.iter().map(|t| t.1).collect();
        for &uid in &target_uids {
            if !from.contains(&uid) {
                self.expect_gone(
                    uid,
                    format!(
                        "[{code}] of `{}` leaves it out, so it was expunged",
                        ctx.command
                    ),
                );
            }
        }
        for (&src, &dst) in from.iter().zip(&to) {
            if !target_uids.contains(&src) {
                self.violation(
                    &ctx,
                    &format!("[{code}] names source UID {src}, not asked for"),
                );
                continue;
            }
            if dst <= floor {
                self.violation(
                    &ctx,
                    &format!("COPYUID gives UID {dst}, not above {floor} acknowledged before"),
                );
            }
            let message_id = self
                .shared
                .ledger()
                .messages
                .get(&(source.clone(), src))
                .map(|m| m.message_id.clone())
                .unwrap_or_default();
            // A copy carries the flags of the moment; the keywords are unknown until stored again.
            self.acknowledge(
                &ctx,
                &destination,
                dst,
                message_id,
                Some((source.clone(), src)),
                vec![None; CLIENTS],
            );
        }
        if moving {
            {
                let mut ledger = self.shared.ledger();
                for &src in &from {
                    ledger.moved_away.insert((source.clone(), src));
                }
            }
            for &src in &from {
                self.expect_gone(
                    src,
                    format!(
                        "`{}` moved it (RFC 6851 §3.3: EXPUNGE for each)",
                        ctx.command
                    ),
                );
            }
        }
    }

    async fn noop(&mut self) {
        self.count("NOOP");
        self.run(&Ctx::new("NOOP", true)).await;
    }

    async fn idle(&mut self) {
        self.count("IDLE");
        self.drain_unsolicited().await;
        let ctx = Ctx::new("IDLE", true);
        self.note("C: IDLE".into());
        let tag = self.imap.idle().await;
        let until = Instant::now() + Duration::from_millis(50 + self.rng.below(350) as u64);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let Some(line) = self.imap.read_line_within(left).await else {
                break;
            };
            self.note(format!("S: {}", line.text));
            self.absorb(&line, &ctx);
        }
        self.note("C: DONE".into());
        let response = self.imap.done(&tag).await;
        self.finish(&ctx, response.untagged, response.status);
    }

    /// One random step, weighted like a busy mail client.
    async fn step(&mut self) {
        if self.view.is_none() {
            match self.rng.below(10) {
                0..=5 => {
                    let m = self.rng.pick(&MAILBOXES).to_string();
                    self.select(&m, false).await
                }
                6 => {
                    let m = self.rng.pick(&MAILBOXES).to_string();
                    self.select(&m, true).await
                }
                7..=8 => self.append().await,
                _ => self.status().await,
            }
            return;
        }
        match self.rng.below(100) {
            0..=9 => self.append().await,
            10..=19 => self.fetch(false).await,
            20..=27 => self.fetch(true).await,
            28..=40 => self.store(false).await,
            41..=50 => self.store(true).await,
            51..=55 => self.search(false).await,
            56..=60 => self.search(true).await,
            61..=64 => self.expunge(false).await,
            65..=67 => self.expunge(true).await,
            68..=70 => {
                let by_uid = self.rng.chance(50);
                self.copy_or_move(false, by_uid).await
            }
            71..=74 => {
                let by_uid = self.rng.chance(50);
                self.copy_or_move(true, by_uid).await
            }
            75..=80 => self.noop().await,
            81..=84 => self.idle().await,
            85..=86 => self.close().await,
            87..=91 => {
                let m = self.random_other_mailbox();
                self.select(&m, false).await
            }
            92 => {
                let m = self.random_other_mailbox();
                self.select(&m, true).await
            }
            _ => self.status().await,
        }
    }

    /// After the random phase: catch up with everything, then publish the final view.
    async fn finish_run(&mut self) {
        if self.view.is_some() {
            self.noop().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.settle_view().await;
            let view = self.view.as_ref().expect("selected");
            let mut messages = Vec::new();
            let mut unknown = false;
            for slot in &view.slots {
                match (slot.uid, &slot.flags) {
                    (Some(uid), Some(flags)) => messages.push((uid, flags.clone())),
                    _ => unknown = true,
                }
            }
            let mailbox = view.mailbox.clone();
            if unknown {
                self.violation(
                    &Ctx::new("(final view)", true),
                    "FETCH 1:* (UID FLAGS) left messages without UID or FLAGS",
                );
            }
            self.shared
                .ledger()
                .final_views
                .push((self.id, mailbox, messages));
        }
        self.drain_unsolicited().await;
        self.imap.run("LOGOUT").await;
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_sessions_on_two_nodes_never_contradict_the_server() {
    let seed = std::env::var(SEED_VAR)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let random_phase = std::env::var(SECS_VAR)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(DEFAULT_RANDOM_PHASE, Duration::from_secs);
    println!(
        "concurrency seed {seed} (repeat with {SEED_VAR}={seed}), random phase {random_phase:?}"
    );

    let stack = Stack::start().await;
    stack.add_user(USER, PASSWORD);
    let mut setup = Imap::login(stack.imap(0), USER, PASSWORD).await;
    for m in &MAILBOXES[1..] {
        setup.ok(&format!("CREATE {m}")).await;
    }
    setup.run("LOGOUT").await;

    let shared = Arc::new(Shared::default());
    let deadline = Instant::now() + random_phase;
    let arrived = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for id in 0..CLIENTS {
        let addr = stack.imap(id % 2);
        let shared = shared.clone();
        let arrived = arrived.clone();
        tasks.push(tokio::spawn(async move {
            // Counts this client as done with the random phase even when it panics, so the
            // others never wait for it in vain.
            let mut arrival = Arrival(Some(arrived.clone()));
            let imap = Imap::login(addr, USER, PASSWORD).await;
            let mut client = Client {
                id,
                reported: false,
                imap,
                rng: Rng(seed ^ (id as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F)),
                shared,
                view: None,
                appended: 0,
                seed,
                transcript: VecDeque::new(),
            };
            while Instant::now() < deadline {
                client.step().await;
            }
            // Everyone has stopped changing things; then every session catches up.
            arrival.arrive();
            let waiting = Instant::now();
            while arrived.load(Ordering::SeqCst) < CLIENTS {
                assert!(
                    waiting.elapsed() < Duration::from_secs(60),
                    "clients never finished the random phase"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(CATCH_UP).await;
            client.finish_run().await;
        }));
    }
    for t in tasks {
        let joined = tokio::time::timeout(random_phase + Duration::from_secs(180), t)
            .await
            .unwrap_or_else(|_| panic!("seed {seed}: a client hung"));
        if let Err(e) = joined {
            let violations = shared.violations.lock().expect("lock").clone();
            panic!(
                "seed {seed}: a client failed: {e}\nrecorded so far:\n{}",
                violations.join("\n")
            );
        }
    }

    final_checks(&stack, &shared).await;

    let counts = shared.commands.lock().expect("lock").clone();
    let mut listed: Vec<_> = counts.iter().collect();
    listed.sort();
    println!("commands run: {listed:?}");
    let violations = shared.violations.lock().expect("lock").clone();
    assert!(
        violations.is_empty(),
        "seed {seed}: {} inconsistencies (repeat with {SEED_VAR}={seed}):\n{}",
        violations.len(),
        violations.join("\n")
    );
    // A run that exercised nothing proves nothing.
    for (command, at_least) in [
        ("APPEND", 50),
        ("STORE", 50),
        ("UID STORE", 30),
        ("EXPUNGE", 10),
        ("MOVE", 3),
        ("IDLE", 10),
        ("SEARCH", 10),
    ] {
        let n = counts.get(command).copied().unwrap_or(0);
        assert!(
            n >= at_least,
            "seed {seed}: only {n} {command} commands ran"
        );
    }
}

/// Marks a client as past the random phase, when it gets there or when it dies on the way.
struct Arrival(Option<Arc<AtomicUsize>>);

impl Arrival {
    fn arrive(&mut self) {
        if let Some(count) = self.0.take() {
            count.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Arrival {
    fn drop(&mut self) {
        self.arrive();
    }
}

/// The end state against the ledger and against every client's last view.
async fn final_checks(stack: &Stack, shared: &Shared) {
    let mut checker = Imap::login(stack.imap(1), USER, PASSWORD).await;
    // mailbox -> UID -> (flags, Message-ID header)
    let mut present: HashMap<String, Vec<(u32, BTreeSet<String>, String)>> = HashMap::new();
    let mut problems = Vec::new();
    for mailbox in MAILBOXES {
        checker.ok(&format!("SELECT {mailbox}")).await;
        let r = checker
            .ok("UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            .await;
        let mut messages = Vec::new();
        for line in &r.untagged {
            let Ok(Untagged::Fetch(_, attrs)) = parse_untagged(line) else {
                continue;
            };
            let uid = attrs
                .iter()
                .find(|(k, _)| k == "UID")
                .and_then(|(_, v)| match v {
                    Value::Atom(a) => a.parse::<u32>().ok(),
                    _ => None,
                });
            let flags = attrs
                .iter()
                .find(|(k, _)| k == "FLAGS")
                .and_then(|(_, v)| flags_of(v));
            let header = attrs
                .iter()
                .find(|(k, _)| k.starts_with("BODY[HEADER.FIELDS"))
                .and_then(|(_, v)| match v {
                    Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
                    _ => None,
                });
            match (uid, flags, header) {
                (Some(uid), Some(flags), Some(header)) => messages.push((uid, flags, header)),
                _ => problems.push(format!("final FETCH line incomplete: {}", line.text)),
            }
        }
        if !messages.windows(2).all(|w| w[0].0 < w[1].0) {
            problems.push(format!("{mailbox}: UIDs do not ascend in the final FETCH"));
        }
        present.insert(mailbox.to_string(), messages);
    }

    let ledger = shared.ledger();
    let mut present_keys = HashSet::new();
    for (mailbox, messages) in &present {
        for (uid, flags, header) in messages {
            let key = (mailbox.clone(), *uid);
            present_keys.insert(key.clone());
            match ledger.messages.get(&key) {
                None => problems.push(format!(
                    "{mailbox} UID {uid} ({}) was never acknowledged by APPEND/COPY/MOVE",
                    header.trim()
                )),
                Some(ack) => {
                    if !header.contains(&ack.message_id) {
                        problems.push(format!(
                            "{mailbox} UID {uid} holds {:?}, acknowledged as {}",
                            header.trim(),
                            ack.message_id
                        ));
                    }
                    for (client, known) in ack.own_keyword.iter().enumerate() {
                        if let Some(set) = known
                            && flags.contains(&keyword(client)) != *set
                        {
                            problems.push(format!(
                                "{mailbox} UID {uid}: {} is {} but client {client}'s acknowledged \
                                 STORE/APPEND left it {}",
                                keyword(client),
                                if *set { "missing" } else { "present" },
                                if *set { "set" } else { "unset" }
                            ));
                        }
                    }
                }
            }
            if ledger.deleted_stored.contains(&key) && !flags.contains("\\Deleted") {
                problems.push(format!(
                    "{mailbox} UID {uid}: an acknowledged STORE set \\Deleted, the message lacks it"
                ));
            }
            if ledger.moved_away.contains(&key) {
                problems.push(format!(
                    "{mailbox} UID {uid} was moved away and is still here"
                ));
            }
            if ledger.must_be_gone.contains(&key) {
                problems.push(format!(
                    "{mailbox} UID {uid} had \\Deleted when an EXPUNGE/CLOSE was acknowledged, \
                     and survived it"
                ));
            }
            if let Some(client) = ledger.expunge_told.get(&key) {
                problems.push(format!(
                    "{mailbox} UID {uid} was announced expunged to client {client} and is still \
                     here"
                ));
            }
        }
    }
    for key in ledger.messages.keys() {
        if !present_keys.contains(key) && !ledger.removable(key) {
            problems.push(format!(
                "{} UID {} was acknowledged and is gone without an acknowledged \\Deleted or MOVE",
                key.0, key.1
            ));
        }
    }
    for (key, client) in &ledger.expunge_told {
        if !ledger.removable(key) {
            problems.push(format!(
                "{} UID {} was announced expunged to client {client} without an acknowledged \
                 \\Deleted or MOVE",
                key.0, key.1
            ));
        }
    }

    // Every session that stayed selected must have caught up with the mailbox exactly.
    for (client, mailbox, view) in &ledger.final_views {
        let truth = &present[mailbox];
        let strip = |f: &BTreeSet<String>| {
            let mut f = f.clone();
            f.remove("\\Recent");
            f
        };
        let view_uids: Vec<u32> = view.iter().map(|m| m.0).collect();
        let truth_uids: Vec<u32> = truth.iter().map(|m| m.0).collect();
        if view_uids != truth_uids {
            problems.push(format!(
                "client {client} ends with {mailbox} UIDs {view_uids:?}, the mailbox has \
                 {truth_uids:?}"
            ));
            continue;
        }
        for ((uid, seen), (_, actual, _)) in view.iter().zip(truth) {
            if strip(seen) != strip(actual) {
                problems.push(format!(
                    "client {client} was last told {mailbox} UID {uid} has {seen:?}, it has \
                     {actual:?} (a flag change never reached it)"
                ));
            }
        }
    }

    // `\Recent` (RFC 3501 §2.3.2): every message is recent to exactly one read-write session. The
    // clients had logged out before this checker selected, so it is the first session to see what
    // nobody was told about, and must see exactly those as `\Recent`.
    for (mailbox, messages) in &present {
        for (uid, flags, _) in messages {
            let owner = ledger.recent_owner.get(&(mailbox.clone(), *uid));
            match (owner, flags.contains("\\Recent")) {
                (Some(client), true) => problems.push(format!(
                    "{mailbox} UID {uid} was \\Recent to client {client} and again to a later session"
                )),
                (None, false) => problems.push(format!(
                    "{mailbox} UID {uid} was \\Recent to no session"
                )),
                _ => {}
            }
        }
    }
    drop(ledger);
    for p in problems {
        shared.violation(p);
    }
}
