//! Workloads: an imaptest-like mixed cycle with state checks, sequential APPEND rate, and the
//! latency of a change made through one front-end reaching an IDLE client on another.

use crate::client::Imap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A small real-looking message; `n` makes each one distinct.
pub fn message(n: u64) -> Vec<u8> {
    format!(
        "From: Load Test <load@example.org>\r\nTo: user@example.com\r\nSubject: load {n}\r\n\
Date: Tue, 3 Nov 2026 10:00:00 +0000\r\nMessage-ID: <load{n}@example.org>\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nBody of message {n}.\r\nSecond line.\r\n"
    )
    .into_bytes()
}

#[derive(Debug, Default)]
pub struct MixedReport {
    pub cycles: u64,
    pub commands: u64,
    pub failed_commands: u64,
    /// Responses that contradict what the client was told before (e.g. a UID that did not
    /// ascend, an EXISTS count below what the client itself appended).
    pub state_errors: u64,
    pub elapsed: Duration,
}

/// `clients` concurrent clients over `users` (user i is `<prefix>i`, password = name), each
/// repeating login / select / append / fetch / store / expunge / logout until `duration` is up.
pub async fn mixed(
    addr: SocketAddr,
    user_prefix: &str,
    users: usize,
    clients: usize,
    duration: Duration,
) -> MixedReport {
    let cycles = Arc::new(AtomicU64::new(0));
    let commands = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let state_errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let user = format!("{user_prefix}{}", c % users.max(1));
        let (cycles, commands, failed, state_errors) = (
            cycles.clone(),
            commands.clone(),
            failed.clone(),
            state_errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = (c as u64) << 32;
            let mut last_uid = 0u32;
            while Instant::now() < deadline {
                let mut imap = Imap::connect(addr).await;
                let ok = |r: &crate::client::Response| {
                    commands.fetch_add(1, Ordering::Relaxed);
                    if !r.is_ok() {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                };
                ok(&imap.run(&format!("LOGIN {user} {user}")).await);
                let sel = imap.run("SELECT INBOX").await;
                ok(&sel);
                let before = exists_of(&sel).unwrap_or(0);
                n += 1;
                let app = imap.append("INBOX", "", &message(n)).await;
                ok(&app);
                // UIDs only ascend (RFC 3501 §2.3.1.1): each APPENDUID must exceed the last.
                match appended_uid(&app) {
                    Some(uid) if uid > last_uid => last_uid = uid,
                    _ => {
                        state_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let after = imap.run("NOOP").await;
                ok(&after);
                // The session must have been told of its own new message.
                let told = exists_of(&app).or(exists_of(&after)).unwrap_or(before);
                if told < 1 {
                    state_errors.fetch_add(1, Ordering::Relaxed);
                }
                ok(&imap.run("FETCH 1:* (FLAGS)").await);
                ok(&imap.run("UID FETCH 1:* (UID RFC822.SIZE ENVELOPE)").await);
                ok(&imap.run("STORE 1 +FLAGS.SILENT (\\Seen)").await);
                ok(&imap.run("UID SEARCH UNSEEN").await);
                // Keep mailboxes from growing without bound: delete the oldest when large.
                if before > 50 {
                    ok(&imap.run("STORE 1:10 +FLAGS.SILENT (\\Deleted)").await);
                    ok(&imap.run("EXPUNGE").await);
                }
                ok(&imap.run("LOGOUT").await);
                cycles.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        if t.await.is_err() {
            failed.fetch_add(1, Ordering::Relaxed);
        }
    }
    MixedReport {
        cycles: cycles.load(Ordering::Relaxed),
        commands: commands.load(Ordering::Relaxed),
        failed_commands: failed.load(Ordering::Relaxed),
        state_errors: state_errors.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    }
}

/// The UID from `[APPENDUID uidvalidity uid]` (RFC 4315 §3).
fn appended_uid(r: &crate::client::Response) -> Option<u32> {
    let rest = r.status.split("[APPENDUID ").nth(1)?;
    rest.split([' ', ']']).nth(1)?.parse().ok()
}

/// The highest `* n EXISTS` in a response.
fn exists_of(r: &crate::client::Response) -> Option<u32> {
    r.untagged
        .iter()
        .filter_map(|l| {
            l.text
                .strip_prefix("* ")?
                .strip_suffix(" EXISTS")?
                .parse()
                .ok()
        })
        .max()
}

/// Sequential APPENDs on one connection; returns messages per second.
pub async fn append_rate(addr: SocketAddr, user: &str, password: &str, count: u64) -> f64 {
    let mut imap = Imap::login(addr, user, password).await;
    let started = Instant::now();
    for n in 0..count {
        let r = imap.append("INBOX", "", &message(n)).await;
        assert!(r.is_ok(), "append failed: {r:?}");
    }
    count as f64 / started.elapsed().as_secs_f64()
}

/// For each round, APPEND through `write` and time until the IDLE client on `watch` sees EXISTS.
pub async fn idle_latency(
    watch: SocketAddr,
    write: SocketAddr,
    user: &str,
    password: &str,
    rounds: usize,
) -> Vec<Duration> {
    let mut watcher = Imap::login(watch, user, password).await;
    watcher.ok("SELECT INBOX").await;
    let mut writer = Imap::login(write, user, password).await;
    let mut samples = Vec::with_capacity(rounds);
    for n in 0..rounds {
        let tag = watcher.idle().await;
        let started = Instant::now();
        let r = writer.append("INBOX", "", &message(n as u64)).await;
        assert!(r.is_ok(), "append failed: {r:?}");
        if watcher
            .wait_for("EXISTS", Duration::from_secs(5))
            .await
            .is_some()
        {
            samples.push(started.elapsed());
        }
        watcher.done(&tag).await;
    }
    samples.sort();
    samples
}

/// The q-quantile (0..=1) of sorted samples.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

/// Subject and body word of the one message a [`mailbox_bench`] mailbox holds them in, so the
/// SUBJECT and TEXT searches there have exactly one hit among `messages`.
const NEEDLE_SUBJECT: &str = "quarterly zebra report";
const NEEDLE_TEXT: &str = "xylophonist";

/// One timed command of [`mailbox_bench`]: its median and 90th percentile over the rounds.
#[derive(Debug)]
pub struct Timing {
    pub command: String,
    pub p50: Duration,
    pub p90: Duration,
}

/// The per-command latencies of the "large mailbox" targets: a mailbox of `messages` messages
/// (made once, reused when it already has that many: distinct messages appended, then COPY of
/// the mailbox onto itself to grow it fast, then one message holding the search needles), then
/// `rounds` rounds of SELECT, UID FETCH 1:* (FLAGS), FETCH 1:* (ENVELOPE BODYSTRUCTURE ...),
/// STORE 1:* ±FLAGS.SILENT, and the SEARCH keys, each timed from sending the command to its
/// tagged response. Without `whole_mailbox_commands` only SELECT and the SEARCH keys run (the
/// 100 000-message target is about SELECT).
pub async fn mailbox_bench(
    addr: SocketAddr,
    user: &str,
    password: &str,
    messages: u32,
    rounds: usize,
    whole_mailbox_commands: bool,
) -> Vec<Timing> {
    let mut imap = Imap::login(addr, user, password).await;
    let mailbox = format!("bench-{messages}");
    let existing = imap.run(&format!("SELECT {mailbox}")).await;
    if exists_of(&existing) != Some(messages) {
        if existing.is_ok() {
            imap.ok("UNSELECT").await;
            imap.ok(&format!("DELETE {mailbox}")).await;
        }
        populate(&mut imap, &mailbox, messages).await;
    }
    let mut commands = vec![
        format!("SELECT {mailbox}"),
        "UID FETCH 1:* (FLAGS)".to_string(),
        "FETCH 1:* (ENVELOPE BODYSTRUCTURE RFC822.SIZE INTERNALDATE)".to_string(),
        "STORE 1:* +FLAGS.SILENT (\\Flagged)".to_string(),
        "STORE 1:* -FLAGS.SILENT (\\Flagged)".to_string(),
        "UID SEARCH UNSEEN".to_string(),
        format!("UID SEARCH SUBJECT \"{NEEDLE_SUBJECT}\""),
        format!("UID SEARCH TEXT \"{NEEDLE_TEXT}\""),
        // Needles under three characters cannot use the trigram index: the scan, for comparison.
        "UID SEARCH TEXT \"yl\"".to_string(),
    ];
    if !whole_mailbox_commands {
        commands.retain(|c| c.starts_with("SELECT") || c.starts_with("UID SEARCH"));
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); commands.len()];
    for _ in 0..rounds {
        for (i, command) in commands.iter().enumerate() {
            let started = Instant::now();
            let r = imap.run(command).await;
            samples[i].push(started.elapsed());
            assert!(r.is_ok(), "{command} -> {}", r.status);
            if command.starts_with("UID FETCH") {
                // Every message answered, so the timing is of the whole mailbox.
                assert_eq!(r.count("FETCH ("), messages as usize, "{command}");
            }
        }
    }
    commands
        .into_iter()
        .zip(samples)
        .map(|(command, mut s)| {
            s.sort();
            Timing {
                command,
                p50: quantile(&s, 0.5),
                p90: quantile(&s, 0.9),
            }
        })
        .collect()
}

async fn populate(imap: &mut Imap, mailbox: &str, messages: u32) {
    imap.ok(&format!("CREATE {mailbox}")).await;
    let distinct = messages.saturating_sub(1).min(1000);
    for n in 0..distinct {
        let r = imap.append(mailbox, "", &message(u64::from(n))).await;
        assert!(r.is_ok(), "append failed: {r:?}");
    }
    imap.ok(&format!("SELECT {mailbox}")).await;
    let mut have = distinct;
    while have + 1 < messages {
        // Bounded, so no single COPY (one store transaction or script) runs for long.
        let more = have.min(messages - 1 - have).min(5_000);
        imap.ok(&format!("COPY 1:{more} {mailbox}")).await;
        have += more;
    }
    let needle = format!(
        "From: Bench <bench@example.org>\r\nTo: user@example.com\r\nSubject: {NEEDLE_SUBJECT}\r\n\
Date: Tue, 3 Nov 2026 10:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
Only this message mentions the {NEEDLE_TEXT}.\r\n"
    );
    let r = imap.append(mailbox, "", needle.as_bytes()).await;
    assert!(r.is_ok(), "append failed: {r:?}");
    imap.ok("UNSELECT").await;
}
