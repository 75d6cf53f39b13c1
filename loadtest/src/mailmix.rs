//! The mixed workload that reads mail (issue 10 item 9): each client behaves as a mail client
//! with a local cache, session after session on its user's INBOX:
//!
//! connect, LOGIN, SELECT INBOX, `UID FETCH 1:* (FLAGS)` (flag resync), the headers of the
//! newest ≤ 100 messages (`UID FETCH a:b (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM
//! TO CC SUBJECT DATE MESSAGE-ID REFERENCES CONTENT-TYPE)])`), BODYSTRUCTURE and the whole body
//! (`BODY.PEEK[]`) of one of them, `UID STORE +FLAGS (\Seen <keyword>)` on it and sometimes
//! `-FLAGS (\Seen)` on another, and when the INBOX has reached its size `\Deleted` + `UID
//! EXPUNGE` of the oldest, then one APPEND of a corpus message (so mailboxes keep their size),
//! LOGOUT.
//!
//! State errors are answers that contradict what the client knows (see `fetch::Told`): EXISTS
//! going back without EXPUNGE, an EXPUNGE or a FETCH of a message number the session was never
//! told of, a message changing its UID, UIDs not ascending with sequence numbers, a FETCH
//! answering a UID the client did not ask for or know, RFC822.SIZE or `BODY[]` differing from
//! the corpus message its Message-ID names, FLAGS after the client's own STORE lacking a
//! keyword it stored, an APPENDUID not above UIDNEXT. A client that is its user's only client
//! (clients ≤ users) also holds the server to its cache: the next session must find exactly
//! the UIDs and flags the last one left, FLAGS after its STORE must be exactly what it expects,
//! every UID asked for must be answered, UID EXPUNGE must expunge all it names.

use crate::client::{Imap, Response};
use crate::corpus::{self, Rng};
use crate::fetch::{self, Fetch, Told};
use crate::stats::{Latencies, Row};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Corpus index of message `k` of user `u`'s populated INBOX.
pub fn populate_index(user: usize, k: u32) -> u64 {
    ((user as u64 + 1) << 32) | u64::from(k)
}

/// Corpus index of the `n`-th message client `c` appends during the workload.
fn append_index(client: usize, n: u64) -> u64 {
    (1 << 48) + ((client as u64) << 24) + n
}

const HEADER_FIELDS: &str = "BODY.PEEK[HEADER.FIELDS (FROM TO CC SUBJECT DATE MESSAGE-ID \
                             REFERENCES CONTENT-TYPE)]";
const KEYWORDS: [&str; 4] = ["$Work", "$Personal", "$ToDo", "$Later"];

/// APPENDs corpus messages to the INBOX of users `<prefix>0..users` (password = name) until each
/// holds `per_user`; INBOXes that already do are left as they are. Users are filled `parallel`
/// at a time. Returns the number of messages appended.
pub async fn populate(
    addr: SocketAddr,
    user_prefix: &str,
    users: usize,
    per_user: u32,
    seed: u64,
    parallel: usize,
) -> u64 {
    let mut tasks = Vec::new();
    let parallel = parallel.max(1);
    for lane in 0..parallel {
        let prefix = user_prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut appended = 0;
            for u in (lane..users).step_by(parallel) {
                let user = format!("{prefix}{u}");
                let mut imap = Imap::login(addr, &user, &user).await;
                let sel = imap.ok("SELECT INBOX").await;
                let have = fetch::exists(&sel).unwrap_or(0);
                for k in have..per_user {
                    let m = corpus::generate(seed, populate_index(u, k));
                    let r = imap.append("INBOX", "", &m.bytes).await;
                    assert!(r.is_ok(), "APPEND for {user}: {}", r.status);
                    appended += 1;
                }
                imap.ok("LOGOUT").await;
            }
            appended
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("populate task");
    }
    total
}

pub struct MixConfig {
    pub addr: SocketAddr,
    pub user_prefix: String,
    pub users: usize,
    pub clients: usize,
    pub duration: Duration,
    pub seed: u64,
    /// The INBOX size the workload keeps (the populated size).
    pub mailbox_size: u32,
}

#[derive(Debug, Default)]
pub struct MixReport {
    pub latencies: Latencies,
    pub sessions: u64,
    pub commands: u64,
    pub failed_commands: u64,
    pub state_errors: u64,
    /// The first state errors, described.
    pub examples: Vec<String>,
    /// Clients that stopped early: the server closed the connection or did not answer in time.
    pub aborted_clients: u64,
    pub body_bytes: u64,
    pub elapsed: Duration,
}

impl MixReport {
    fn merge(&mut self, other: MixReport) {
        self.latencies.merge(other.latencies);
        self.sessions += other.sessions;
        self.commands += other.commands;
        self.failed_commands += other.failed_commands;
        self.state_errors += other.state_errors;
        self.aborted_clients += other.aborted_clients;
        self.body_bytes += other.body_bytes;
        for e in other.examples {
            if self.examples.len() < 20 {
                self.examples.push(e);
            }
        }
    }

    pub fn rows(&self, section: &str) -> Vec<Row> {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let mut rows = self.latencies.rows(section);
        rows.push(Row::value(
            section,
            "sessions",
            self.sessions as f64 / secs,
            "/s",
        ));
        rows.push(Row::value(
            section,
            "commands",
            self.commands as f64 / secs,
            "/s",
        ));
        rows.push(Row::value(
            section,
            "bodies read",
            self.body_bytes as f64 / secs / 1e6,
            "MB/s",
        ));
        rows.push(Row::value(
            section,
            "failed commands",
            self.failed_commands as f64,
            "",
        ));
        rows.push(Row::value(
            section,
            "state errors",
            self.state_errors as f64,
            "",
        ));
        rows.push(Row::value(
            section,
            "aborted clients",
            self.aborted_clients as f64,
            "",
        ));
        rows
    }
}

/// Runs `clients` mail clients over `users` users for `duration`.
pub async fn run(cfg: &MixConfig) -> MixReport {
    let started = Instant::now();
    let deadline = started + cfg.duration;
    let users = cfg.users.max(1);
    let mut tasks = Vec::new();
    for c in 0..cfg.clients {
        let u = c % users;
        let mut client = Client {
            addr: cfg.addr,
            user: format!("{}{u}", cfg.user_prefix),
            index: c,
            seed: cfg.seed,
            target: cfg.mailbox_size,
            // Only client of its user when no later client maps to the same user.
            exclusive: cfg.clients <= users,
            memory: None,
            uidvalidity: None,
            last_append_uid: 0,
            appended: 0,
            sizes: HashMap::new(),
            rng: Rng::new(cfg.seed ^ 0x00C1_1E27, c as u64),
            report: MixReport::default(),
        };
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                client.session().await;
                client.report.sessions += 1;
            }
            client.report
        }));
    }
    let mut report = MixReport::default();
    for t in tasks {
        match t.await {
            Ok(r) => report.merge(r),
            Err(_) => report.aborted_clients += 1,
        }
    }
    report.elapsed = started.elapsed();
    report
}

struct Client {
    addr: SocketAddr,
    user: String,
    index: usize,
    seed: u64,
    target: u32,
    exclusive: bool,
    /// UID → flags as the last session left them (exclusive clients only).
    memory: Option<BTreeMap<u32, BTreeSet<String>>>,
    uidvalidity: Option<u32>,
    last_append_uid: u32,
    appended: u64,
    /// RFC822.SIZE of corpus messages by index, so each is generated once.
    sizes: HashMap<u64, u64>,
    rng: Rng,
    report: MixReport,
}

/// One connection: the client plus what this session was told.
struct Session<'a> {
    client: &'a mut Client,
    imap: Imap,
    told: Told,
}

impl Session<'_> {
    async fn run(&mut self, kind: &str, command: &str) -> Response {
        let started = Instant::now();
        let r = self.imap.run(command).await;
        self.finish(kind, started, r)
    }

    async fn append(&mut self, message: &[u8]) -> Response {
        let started = Instant::now();
        let r = self.imap.append("INBOX", "", message).await;
        self.finish("APPEND", started, r)
    }

    fn finish(&mut self, kind: &str, started: Instant, r: Response) -> Response {
        let report = &mut self.client.report;
        report.latencies.record(kind, started.elapsed());
        report.commands += 1;
        if !r.is_ok() {
            report.failed_commands += 1;
        }
        for e in self.told.observe(&r) {
            self.client.state_error(format!("{kind}: {e}"));
        }
        r
    }
}

impl Client {
    fn state_error(&mut self, what: String) {
        self.report.state_errors += 1;
        if self.report.examples.len() < 20 {
            self.report
                .examples
                .push(format!("{} (client {}): {what}", self.user, self.index));
        }
    }

    /// The size of the corpus message a Message-ID names, if it names one.
    fn expected_size(&mut self, message_id: &str) -> Option<u64> {
        let (seed, index) = corpus::parse_message_id(message_id)?;
        if seed != self.seed {
            return None;
        }
        Some(
            *self
                .sizes
                .entry(index)
                .or_insert_with(|| corpus::generate(seed, index).bytes.len() as u64),
        )
    }

    async fn session(&mut self) {
        let started = Instant::now();
        let imap = Imap::connect(self.addr).await;
        self.report
            .latencies
            .record("connect + greeting", started.elapsed());
        let exclusive = self.exclusive;
        let user = self.user.clone();
        let mut s = Session {
            client: self,
            imap,
            told: Told::default(),
        };
        if !s
            .run("LOGIN", &format!("LOGIN {user} {user}"))
            .await
            .is_ok()
        {
            return;
        }
        let sel = s.run("SELECT", "SELECT INBOX").await;
        if !sel.is_ok() {
            s.run("LOGOUT", "LOGOUT").await;
            return;
        }
        let uidnext = fetch::code_number(&sel, "UIDNEXT").unwrap_or(0);
        let validity = fetch::code_number(&sel, "UIDVALIDITY");
        if s.client.uidvalidity.is_some() && validity != s.client.uidvalidity {
            s.client.state_error(format!(
                "INBOX UIDVALIDITY changed from {:?} to {validity:?}",
                s.client.uidvalidity
            ));
            s.client.memory = None;
        }
        s.client.uidvalidity = validity;

        // Flag resync: every UID with its flags (the session's `Told` checks the sequence
        // numbers); what was announced expunged meanwhile is gone.
        let r = s
            .run("UID FETCH 1:* (FLAGS)", "UID FETCH 1:* (FLAGS)")
            .await;
        let mut view: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
        for f in r.untagged.iter().filter_map(Fetch::parse) {
            if let (Some(uid), Some(flags)) = (f.uid(), f.flags()) {
                view.insert(uid, flags);
            }
        }
        for uid in &s.told.expunged {
            view.remove(uid);
        }
        let diff = match &s.client.memory {
            Some(memory) if exclusive => first_difference(memory, &view),
            _ => None,
        };
        if let Some(diff) = diff {
            s.client
                .state_error(format!("INBOX is not as the last session left it: {diff}"));
        }

        // Headers of the newest ≤ 100 messages.
        let uids: Vec<u32> = view.keys().copied().collect();
        let newest = &uids[uids.len().saturating_sub(100)..];
        let mut listed = Vec::new();
        if let (Some(&lo), Some(&hi)) = (newest.first(), newest.last()) {
            let command = format!("UID FETCH {lo}:{hi} (UID FLAGS RFC822.SIZE {HEADER_FIELDS})");
            let r = s
                .run("UID FETCH ≤100 (FLAGS SIZE HEADER.FIELDS)", &command)
                .await;
            for line in &r.untagged {
                let Some(f) = Fetch::parse(line) else {
                    continue;
                };
                let Some(header) = f.bytes("BODY[HEADER.FIELDS") else {
                    continue;
                };
                let uid = f.uid().unwrap_or(0);
                if !view.contains_key(&uid) {
                    s.client
                        .state_error(format!("UID FETCH {lo}:{hi} answered unknown UID {uid}"));
                    continue;
                }
                if exclusive && f.flags().as_ref() != view.get(&uid) {
                    s.client.state_error(format!(
                        "UID {uid}: FLAGS {:?}, resync said {:?}",
                        f.flags(),
                        view.get(&uid)
                    ));
                }
                let id = fetch::header_value(&header, "Message-ID").unwrap_or_default();
                if let Some(want) = s.client.expected_size(&id)
                    && f.number("RFC822.SIZE") != Some(want)
                {
                    s.client.state_error(format!(
                        "UID {uid} {id}: RFC822.SIZE {:?}, the message has {want}",
                        f.number("RFC822.SIZE")
                    ));
                }
                listed.push((uid, id));
            }
            if exclusive && listed.len() != newest.len() {
                s.client.state_error(format!(
                    "UID FETCH {lo}:{hi}: {} of {} messages answered",
                    listed.len(),
                    newest.len()
                ));
            }
        }

        // Open one message: structure, then the whole body.
        if !listed.is_empty() {
            let (uid, id) = listed[s.client.rng.below(listed.len() as u64) as usize].clone();
            let r = s
                .run(
                    "UID FETCH 1 (BODYSTRUCTURE)",
                    &format!("UID FETCH {uid} (BODYSTRUCTURE)"),
                )
                .await;
            let answered = r
                .untagged
                .iter()
                .filter_map(Fetch::parse)
                .any(|f| f.uid() == Some(uid) && f.get("BODYSTRUCTURE").is_some());
            // Another session may have expunged it; only a client alone on its user knows.
            if !answered && exclusive {
                s.client
                    .state_error(format!("UID FETCH {uid} (BODYSTRUCTURE) answered nothing"));
            }
            let r = s
                .run(
                    "UID FETCH 1 (BODY.PEEK[])",
                    &format!("UID FETCH {uid} (BODY.PEEK[])"),
                )
                .await;
            let body = r
                .untagged
                .iter()
                .filter_map(Fetch::parse)
                .filter(|f| f.uid() == Some(uid))
                .find_map(|f| f.bytes("BODY[]"));
            // Expunged meanwhile by another session: RFC 2180 §4.1 lets the server send any
            // data then, which Dovecot does (an empty BODY[] and OK [EXPUNGEISSUED]).
            let gone = !exclusive && r.status.contains("[EXPUNGEISSUED]");
            match body {
                Some(_) if gone => {}
                Some(body) => {
                    s.client.report.body_bytes += body.len() as u64;
                    if let Some((seed, index)) = corpus::parse_message_id(&id)
                        && seed == s.client.seed
                        && let Some(diff) =
                            corpus::difference(&corpus::generate(seed, index).bytes, &body)
                    {
                        s.client
                            .state_error(format!("UID {uid} {id}: BODY[] {diff} ({})", r.status));
                    }
                }
                None if exclusive => s
                    .client
                    .state_error(format!("UID FETCH {uid} (BODY.PEEK[]) answered nothing")),
                None => {}
            }

            // Mark it read with a keyword; sometimes mark another unread.
            let kw = *s.client.rng.pick(&KEYWORDS);
            let added = ["\\seen".to_string(), kw.to_ascii_lowercase()];
            let r = s
                .run(
                    "UID STORE +FLAGS (\\Seen kw)",
                    &format!("UID STORE {uid} +FLAGS (\\Seen {kw})"),
                )
                .await;
            s.check_store(&r, uid, &mut view, &added, &[]);
            if listed.len() > 1 && s.client.rng.percent(30) {
                let (other, _) = listed[s.client.rng.below(listed.len() as u64) as usize].clone();
                if other != uid {
                    let r = s
                        .run(
                            "UID STORE -FLAGS (\\Seen)",
                            &format!("UID STORE {other} -FLAGS (\\Seen)"),
                        )
                        .await;
                    s.check_store(&r, other, &mut view, &[], &["\\seen".to_string()]);
                }
            }
        }

        // Keep the INBOX at its size: expunge the oldest before adding one.
        if view.len() as u32 >= s.client.target && !view.is_empty() {
            let n = (view.len() + 1 - s.client.target as usize).clamp(1, 10);
            let oldest: Vec<u32> = view.keys().take(n).copied().collect();
            let set = oldest
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",");
            s.run(
                "UID STORE +FLAGS.SILENT (\\Deleted)",
                &format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)"),
            )
            .await;
            let r = s.run("UID EXPUNGE", &format!("UID EXPUNGE {set}")).await;
            // With other clients on the user, their expunges may be announced here too.
            let gone = fetch::expunges(&r);
            if exclusive && gone != n {
                s.client
                    .state_error(format!("UID EXPUNGE of {n} messages expunged {gone}"));
            }
            for uid in oldest {
                view.remove(&uid);
            }
        }

        let n = s.client.appended;
        s.client.appended += 1;
        let message = corpus::generate(s.client.seed, append_index(s.client.index, n));
        let r = s.append(&message.bytes).await;
        if r.is_ok() {
            match fetch::append_uid(&r) {
                Some((v, uid)) => {
                    if Some(v) != s.client.uidvalidity
                        || uid < uidnext
                        || uid <= s.client.last_append_uid
                    {
                        s.client.state_error(format!(
                            "APPENDUID {v} {uid} after UIDVALIDITY {:?}, UIDNEXT {uidnext}, last \
                             APPENDUID {}",
                            s.client.uidvalidity, s.client.last_append_uid
                        ));
                    }
                    s.client.last_append_uid = uid;
                    view.insert(uid, BTreeSet::new());
                }
                None => s.client.state_error("APPEND without APPENDUID".to_string()),
            }
        }
        s.run("LOGOUT", "LOGOUT").await;
        if exclusive {
            s.client.memory = Some(view);
        }
    }
}

impl Session<'_> {
    /// After the client's own `UID STORE uid ±FLAGS`: the answer must show the change, and an
    /// exclusive client knows the whole flag set to expect.
    fn check_store(
        &mut self,
        r: &Response,
        uid: u32,
        view: &mut BTreeMap<u32, BTreeSet<String>>,
        added: &[String],
        removed: &[String],
    ) {
        // The last FETCH of the message: an earlier one may be another session's change.
        let flags = r
            .untagged
            .iter()
            .filter_map(Fetch::parse)
            .filter(|f| f.uid() == Some(uid))
            .filter_map(|f| f.flags())
            .next_back();
        let exclusive = self.client.exclusive;
        let before = view.get(&uid).cloned().unwrap_or_default();
        let mut want = before.clone();
        want.extend(added.iter().cloned());
        for f in removed {
            want.remove(f);
        }
        let Some(flags) = flags else {
            // Servers differ on a STORE that changes nothing: Yubin answers with the FLAGS
            // anyway, Dovecot sends no FETCH. Only a change must be reported.
            if exclusive && want != before {
                self.client
                    .state_error(format!("UID STORE {uid}: no FETCH with the new FLAGS"));
            }
            return;
        };
        // With other clients on the user, only keywords are certain: they add them too but
        // never remove them, while \Seen is also cleared and set by them.
        let wrong = if exclusive {
            flags != want
        } else {
            !added
                .iter()
                .filter(|f| *f != "\\seen")
                .all(|f| flags.contains(f))
        };
        if wrong {
            self.client.state_error(format!(
                "UID STORE {uid} (+{added:?} -{removed:?}): FLAGS {flags:?}, expected {want:?}"
            ));
        }
        view.insert(uid, flags);
    }
}

/// The first way `now` differs from `before`, described.
fn first_difference(
    before: &BTreeMap<u32, BTreeSet<String>>,
    now: &BTreeMap<u32, BTreeSet<String>>,
) -> Option<String> {
    for (uid, flags) in before {
        match now.get(uid) {
            None => return Some(format!("UID {uid} is gone")),
            Some(f) if f != flags => {
                return Some(format!(
                    "UID {uid} has FLAGS {f:?}, was left with {flags:?}"
                ));
            }
            _ => {}
        }
    }
    now.keys()
        .find(|uid| !before.contains_key(uid))
        .map(|uid| format!("UID {uid} appeared"))
}
