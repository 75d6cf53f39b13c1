//! Command latencies on a large mailbox of realistic mail (issue 10 item 8): a mailbox of
//! `messages` corpus messages (`realistic-<messages>`, made by [`populate`] and reused while it
//! holds that many), then on one connection: `FETCH 1:100 (BODY.PEEK[])` once as the first
//! command after SELECT ("cold": the first read of those bodies since the server started, when
//! it was restarted after populating), then `rounds` rounds of SELECT, the same FETCH again
//! (warm), header fields and BODYSTRUCTURE of 100 messages, `UID FETCH 1:* (FLAGS)`, `UID
//! SEARCH UNSEEN` (every message unseen), `STORE 1:* +FLAGS.SILENT (\Seen)` and the `-FLAGS`
//! that undoes it. Each command is timed from sending it to its tagged answer; backend counters
//! (see [`Probe`]) are read around each one, outside the timing.

use crate::client::Imap;
use crate::corpus;
use crate::fetch::{self, Fetch};
use crate::probe::{Delta, Probe};
use crate::stats::{Latencies, Row};
use std::net::SocketAddr;
use std::time::Instant;

/// Corpus indexes of the large mailbox start here, apart from the users' INBOX messages.
const BASE_INDEX: u64 = 1 << 56;

pub fn mailbox_name(messages: u32) -> String {
    format!("realistic-{messages}")
}

/// Makes `realistic-<messages>` unless it already holds that many, appending over `parallel`
/// connections. Returns the number appended.
pub async fn populate(
    addr: SocketAddr,
    user: &str,
    password: &str,
    messages: u32,
    seed: u64,
    parallel: usize,
) -> u32 {
    let mailbox = mailbox_name(messages);
    let mut imap = Imap::login(addr, user, password).await;
    let existing = imap.run(&format!("SELECT {mailbox}")).await;
    if existing.is_ok() && fetch::exists(&existing) == Some(messages) {
        imap.ok("LOGOUT").await;
        return 0;
    }
    if existing.is_ok() {
        imap.ok("UNSELECT").await;
        imap.ok(&format!("DELETE {mailbox}")).await;
    }
    imap.ok(&format!("CREATE {mailbox}")).await;
    imap.ok("LOGOUT").await;
    let parallel = parallel.max(1) as u32;
    let mut tasks = Vec::new();
    for lane in 0..parallel {
        let (user, password, mailbox) = (user.to_string(), password.to_string(), mailbox.clone());
        tasks.push(tokio::spawn(async move {
            let mut imap = Imap::login(addr, &user, &password).await;
            for i in (lane..messages).step_by(parallel as usize) {
                let m = corpus::generate(seed, BASE_INDEX + u64::from(i));
                let r = imap.append(&mailbox, "", &m.bytes).await;
                assert!(r.is_ok(), "APPEND to {mailbox}: {}", r.status);
            }
            imap.ok("LOGOUT").await;
        }));
    }
    for t in tasks {
        t.await.expect("populate task");
    }
    messages
}

pub struct BigboxConfig {
    pub addr: SocketAddr,
    pub user: String,
    pub password: String,
    pub messages: u32,
    pub rounds: usize,
    pub seed: u64,
}

pub struct BigboxReport {
    pub rows: Vec<Row>,
    /// Answers that were not what the mailbox holds (wrong count, body differing from the
    /// corpus message).
    pub errors: Vec<String>,
}

const FETCH_BODIES: &str = "FETCH 1:100 (BODY.PEEK[])";

pub async fn run(cfg: &BigboxConfig, probe: &Probe) -> BigboxReport {
    let mailbox = mailbox_name(cfg.messages);
    let mut errors = Vec::new();
    let mut imap = Imap::login(cfg.addr, &cfg.user, &cfg.password).await;
    let mut latencies = Latencies::default();
    let mut deltas: Vec<(String, Delta, usize)> = Vec::new();

    let started = Instant::now();
    let sel = imap.ok(&format!("SELECT {mailbox}")).await;
    latencies.record("SELECT (first)", started.elapsed());
    if fetch::exists(&sel) != Some(cfg.messages) {
        errors.push(format!(
            "{mailbox} holds {:?} messages, not {}: run populate first",
            fetch::exists(&sel),
            cfg.messages
        ));
        return BigboxReport {
            rows: Vec::new(),
            errors,
        };
    }

    let before = probe.snapshot().await;
    let started = Instant::now();
    let cold = imap.ok(FETCH_BODIES).await;
    latencies.record(&format!("{FETCH_BODIES} cold"), started.elapsed());
    let mut delta = Delta::default();
    delta.add(&before, &probe.snapshot().await);
    deltas.push((format!("{FETCH_BODIES} cold"), delta, 1));
    check_bodies(&cold, cfg.seed, &mut errors);

    let commands: Vec<(String, usize)> = vec![
        (format!("SELECT {mailbox}"), 0),
        (FETCH_BODIES.to_string(), 100),
        (
            "UID FETCH 1:100 (BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)])".to_string(),
            100,
        ),
        ("UID FETCH 1:100 (BODYSTRUCTURE)".to_string(), 100),
        ("UID FETCH 1:* (FLAGS)".to_string(), cfg.messages as usize),
        ("UID SEARCH UNSEEN".to_string(), cfg.messages as usize),
        ("STORE 1:* +FLAGS.SILENT (\\Seen)".to_string(), 0),
        ("STORE 1:* -FLAGS.SILENT (\\Seen)".to_string(), 0),
    ];
    let mut sums: Vec<Delta> = vec![Delta::default(); commands.len()];
    for round in 0..cfg.rounds {
        for (i, (command, answers)) in commands.iter().enumerate() {
            let before = probe.snapshot().await;
            let started = Instant::now();
            let r = imap.run(command).await;
            latencies.record(command, started.elapsed());
            sums[i].add(&before, &probe.snapshot().await);
            if !r.is_ok() {
                errors.push(format!("{command} -> {}", r.status));
                continue;
            }
            let got = if command.contains("SEARCH") {
                r.find("* SEARCH")
                    .map_or(0, |l| l.text.split_whitespace().count().saturating_sub(2))
            } else {
                r.count(" FETCH (")
            };
            if *answers > 0 && got != *answers {
                errors.push(format!(
                    "round {round}: {command} answered {got} of {answers}"
                ));
            }
            if round == 0 && command == FETCH_BODIES {
                check_bodies(&r, cfg.seed, &mut errors);
            }
        }
    }
    for ((command, _), delta) in commands.into_iter().zip(sums) {
        deltas.push((command, delta, cfg.rounds));
    }
    imap.ok("LOGOUT").await;

    let mut rows = latencies.rows("mailbox");
    if !probe.is_empty() {
        for (command, delta, n) in deltas {
            rows.extend(delta.rows("mailbox backends", &command, n as f64, "per command"));
        }
    }
    BigboxReport { rows, errors }
}

/// Every `BODY[]` must be the corpus message its Message-ID names.
fn check_bodies(r: &crate::client::Response, seed: u64, errors: &mut Vec<String>) {
    for line in &r.untagged {
        let Some(f) = Fetch::parse(line) else {
            continue;
        };
        let Some(body) = f.bytes("BODY[]") else {
            continue;
        };
        let id = fetch::header_value(&body[..body.len().min(64 * 1024)], "Message-ID")
            .unwrap_or_default();
        match corpus::parse_message_id(&id) {
            Some((s, index)) if s == seed => {
                if let Some(diff) = corpus::difference(&corpus::generate(s, index).bytes, &body) {
                    errors.push(format!("message {}: BODY[] of {id} {diff}", f.seq));
                }
            }
            _ => errors.push(format!("message {}: no corpus Message-ID ({id:?})", f.seq)),
        }
    }
}
