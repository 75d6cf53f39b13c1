//! Write throughput and latency of the embedded store with and without group commit.
//!
//! K tasks, spread over up to 16 users, each loop APPEND (one small message) then STORE
//! `+FLAGS (\Seen)` on the message it just appended, against a redb file in a temporary
//! directory (on the same filesystem as `TMPDIR`; every commit fsyncs). For K = 1, 8, 64 it
//! prints writes per second and the p50/p99 latency of one write, first with one transaction
//! per write (`GroupCommit::OFF`, the behaviour before group commit) then with the default
//! grouping.
//!
//! `cargo bench -p yubin-meta-store --bench group_commit [-- --seconds N]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use yubin_meta_api::{
    AccountStore, BlobKey, FlagOp, InternalDate, MailStore, NewMessage, UidSet, UserId,
};
use yubin_meta_store::{EmbeddedStore, GroupCommit};

const USERS: usize = 16;

fn message(user: UserId, n: u64) -> NewMessage {
    NewMessage {
        blob: BlobKey::for_content(user, &format!("{n:064x}")),
        size: 2_000,
        internal_date: InternalDate {
            unix_seconds: 1_700_000_000,
            tz_offset_minutes: 0,
        },
        flags: Vec::new(),
        summary: Bytes::from(vec![b's'; 600]),
        index: Default::default(),
    }
}

struct Run {
    writes: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

async fn run(settings: GroupCommit, tasks: usize, seconds: f64) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("meta.redb"))
        .await
        .expect("open")
        .with_group_commit(settings);
    let mut users = Vec::new();
    for i in 0..USERS.min(tasks) {
        users.push(
            store
                .create_user(&format!("bench{i}"), "h")
                .await
                .expect("user")
                .id,
        );
    }
    let users = Arc::new(users);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (store, users) = (store.clone(), users.clone());
        handles.push(tokio::spawn(async move {
            let user = users[t % users.len()];
            let mut latencies = Vec::new();
            let mut n = (t as u64) << 32;
            while Instant::now() < deadline {
                n += 1;
                let at = Instant::now();
                let a = store
                    .append(user, "INBOX", vec![message(user, n)])
                    .await
                    .expect("append");
                latencies.push(at.elapsed());
                let at = Instant::now();
                store
                    .store_flags(
                        user,
                        a.mailbox,
                        &UidSet::from_uids(a.uids),
                        FlagOp::Add,
                        &["\\Seen".to_string()],
                        None,
                    )
                    .await
                    .expect("store");
                latencies.push(at.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(h.await.expect("task"));
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Run {
        writes: latencies.len(),
        elapsed,
        latencies,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn main() {
    let mut seconds = 5.0;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--seconds" {
            seconds = args
                .next()
                .and_then(|s| s.parse().ok())
                .expect("--seconds N");
        }
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    println!("| K | mode | writes/s | p50 | p99 |");
    println!("|---|---|---|---|---|");
    for tasks in [1, 8, 64] {
        for (mode, settings) in [
            ("one transaction per write", GroupCommit::OFF),
            ("group commit", GroupCommit::default()),
        ] {
            let r = rt.block_on(run(settings, tasks, seconds));
            println!(
                "| {tasks} | {mode} | {:.0} | {:.2} ms | {:.2} ms |",
                r.writes as f64 / r.elapsed.as_secs_f64(),
                percentile(&r.latencies, 0.50).as_secs_f64() * 1e3,
                percentile(&r.latencies, 0.99).as_secs_f64() * 1e3,
            );
        }
    }
}
