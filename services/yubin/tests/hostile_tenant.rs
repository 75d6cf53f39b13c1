//! One hostile tenant runs the attacks of issue 9 all at once against the distributed stack
//! (redis-server with AOF, s3s-fs, `yubin meta`, two `yubin imap`), on the same front-end as a
//! well-behaved user, while another task times that user's Redis reads directly:
//!
//! - THREAD and SORT over a message with 200 000 References and a 1.3 MB Subject;
//! - STORE floods: thousands of keywords at once (refused), and the most keywords the limits
//!   allow set and cleared on every message, over and over;
//! - deliveries with megabytes of encoded-word header text (the search-index flood), copied;
//! - memory bombs: a FETCH naming `1:*` thousands of times, BINARY.SIZE repeated, a SEARCH
//!   nested hundreds deep;
//! - connections that never log in and drip bytes.
//!
//! It holds when no process restarts, every command of the well-behaved user succeeds with its
//! p99 latency under [`USER_P99`], and another tenant's Redis reads keep a p99 under
//! [`REDIS_P99`] (issue 9's bound). The numbers are printed for docs/performance.md.

mod common;

use common::sample_message;
use common::stack::Stack;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use yubin_loadtest::client::Imap;

/// How long the attacks run together.
const ATTACK_TIME: Duration = Duration::from_secs(20);
/// How long the same user and Redis reads run alone first, as the reference.
const BASELINE_TIME: Duration = Duration::from_secs(5);
/// The well-behaved user's bound: every command of a debug build on a shared 2-core machine,
/// with the attacker's commands competing for the same front-end, meta and Redis.
const USER_P99: Duration = Duration::from_secs(2);
/// Issue 9: Redis latency for another tenant while the STORE and index attacks run.
const REDIS_P99: Duration = Duration::from_millis(10);
/// The well-behaved user's mailbox list in Redis (the second account created).
const ALICE_MAILBOXES: &str = "{u:2}:mailboxes";

/// 200 000 References ids and a 1.3 MB Subject: the message that overflowed THREAD's stack.
fn thread_bomb() -> Vec<u8> {
    let mut m = String::from("From: m@evil.example\r\nTo: m@evil.example\r\nReferences:");
    for i in 0..200_000 {
        m.push_str(&format!(" <r{i}@evil.example>"));
        if i % 4 == 3 {
            m.push_str("\r\n");
        }
    }
    m.push_str("\r\nSubject:");
    for _ in 0..100_000 {
        m.push_str(" Re: [x] Fwd:\r\n");
    }
    m.push_str(" bomb\r\nMessage-ID: <bomb@evil.example>\r\n\r\nbody\r\n");
    m.into_bytes()
}

/// Megabytes of pseudo-random encoded-word header text over several fields: far more distinct
/// trigrams than the index keeps for one message.
fn header_flood(n: usize) -> Vec<u8> {
    let flood = yubin_meta_store::conformance::gram_flood(1_200_000 + n);
    let mut m = format!("From: m@evil.example\r\nSubject: flood {n}\r\n");
    for (i, part) in flood.as_bytes().chunks(300_000).enumerate() {
        m.push_str(&format!("X-Flood-{i}: =?utf-8?q?x?="));
        for chunk in part.chunks(60) {
            m.push_str("\r\n =?utf-8?q?");
            m.push_str(std::str::from_utf8(chunk).expect("ascii"));
            m.push_str("?=");
        }
        m.push_str("\r\n");
    }
    m.push_str("\r\nbody\r\n");
    m.into_bytes()
}

fn keywords(prefix: &str, n: usize, len: usize) -> String {
    (0..n)
        .map(|i| {
            let k = format!("{prefix}{i}");
            format!("{k}{}", "k".repeat(len.saturating_sub(k.len())))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Latencies of one phase: the well-behaved user's commands, another tenant's Redis reads.
struct Phase {
    user: Vec<Duration>,
    redis: Vec<Duration>,
}

impl Phase {
    /// Prints the phase's numbers and returns the user's p99.
    fn report(&self, name: &str) -> Duration {
        let (p50, p99, max) = (
            percentile(&self.user, 0.5),
            percentile(&self.user, 0.99),
            percentile(&self.user, 1.0),
        );
        println!(
            "{name}: well-behaved user {} commands, p50 {p50:?}, p99 {p99:?}, max {max:?}",
            self.user.len()
        );
        println!(
            "{name}: another tenant's Redis reads {}, p50 {:?}, p99 {:?}, max {:?}",
            self.redis.len(),
            percentile(&self.redis, 0.5),
            self.redis_p99(),
            percentile(&self.redis, 1.0),
        );
        p99
    }

    fn redis_p99(&self) -> Duration {
        percentile(&self.redis, 0.99)
    }
}

/// For `time`: a mail client's commands as the well-behaved user (who has SELECTed INBOX),
/// timed one by one, and meanwhile another tenant's Redis read (alice's mailbox list, account
/// 2) every 2 ms on a connection of its own, from a thread on Redis's CPU when `redis_cpu` is
/// given (so the number is Redis's latency, not the wait of a reader starved by the attacks on
/// the other CPUs).
async fn timed_phase(
    alice: &mut Imap,
    redis: &redis::Client,
    redis_cpu: Option<usize>,
    time: Duration,
) -> Phase {
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let mut conn = redis.get_connection().expect("redis connection");
    let reads = std::thread::spawn(move || {
        if let Some(cpu) = redis_cpu {
            pin_this_thread(cpu);
        }
        let mut samples = Vec::new();
        while !st.load(Ordering::Relaxed) {
            let started = Instant::now();
            let _: Option<String> = redis::cmd("HGET")
                .arg(ALICE_MAILBOXES)
                .arg("INBOX")
                .query(&mut conn)
                .expect("HGET");
            samples.push(started.elapsed());
            std::thread::sleep(Duration::from_millis(2));
        }
        samples
    });
    let mut user = Vec::new();
    let started = Instant::now();
    let mut i = 0usize;
    while started.elapsed() < time {
        let n = i % 30 + 1;
        let commands = [
            "NOOP".to_string(),
            "FETCH 1:20 (FLAGS UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])"
                .to_string(),
            format!("FETCH {n} BODY.PEEK[]"),
            format!("STORE {n} +FLAGS (\\Seen)"),
            "UID SEARCH UNSEEN".to_string(),
            format!("STORE {n} -FLAGS (\\Seen)"),
            "STATUS INBOX (MESSAGES UNSEEN UIDNEXT)".to_string(),
        ];
        for command in &commands {
            let t = Instant::now();
            alice.ok(command).await;
            user.push(t.elapsed());
        }
        i += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let mut redis = reads.join().expect("redis reads");
    user.sort();
    redis.sort();
    Phase { user, redis }
}

/// Moves the calling thread to `cpu` (best effort: `taskset` on this thread's id).
fn pin_this_thread(cpu: usize) {
    let tid = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    if let Some(tid) = tid {
        let _ = std::process::Command::new("taskset")
            .args(["-p", "-c", &cpu.to_string(), &tid])
            .stdout(std::process::Stdio::null())
            .status();
    }
}

/// A connection that never logs in: it starts a huge literal and drips one byte at a time.
async fn dripper(addr: SocketAddr, stop: Arc<AtomicBool>) {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return;
    };
    let _ = s.write_all(b"a LOGIN {50000000+}\r\n").await;
    while !stop.load(Ordering::Relaxed) {
        if s.write_all(b"x").await.is_err() {
            // The server closed it: the pre-auth limit did its job.
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hostile_tenant_does_not_hurt_a_well_behaved_one() {
    let mut stack = Stack::start().await;
    // Redis on a CPU of its own, as in production; everything else (the attacker's front-end
    // work included) shares the rest.
    let redis_cpu = stack.pin_redis_to_own_cpu();
    println!("redis-server on a CPU of its own: {redis_cpu:?}");
    stack.add_user("mallory", "mallory-pw");
    stack.add_user("alice", "alice-pw");
    let node = stack.imap(0);

    // The victim's mailbox: ordinary mail.
    let mut alice = Imap::login(node, "alice", "alice-pw").await;
    for n in 0..30 {
        assert!(alice.append("INBOX", "", &sample_message(n)).await.is_ok());
    }
    // The attacker's: ordinary mail, the THREAD bomb, and a mailbox for keyword floods.
    let mut setup = Imap::login(node, "mallory", "mallory-pw").await;
    for n in 0..30 {
        assert!(setup.append("INBOX", "", &sample_message(n)).await.is_ok());
    }
    let r = setup.append("INBOX", "", &thread_bomb()).await;
    assert!(r.is_ok(), "the bomb is delivered: {r:?}");
    setup.ok("CREATE flood").await;
    setup.ok("CREATE flood-copy").await;

    // Redis as another tenant sees it: alice's mailbox list, read directly.
    let redis = redis::Client::open(format!("redis://127.0.0.1:{}/", stack.redis_port()))
        .expect("redis client");
    let mut rc = redis
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let inbox: Option<String> = redis::cmd("HGET")
        .arg(ALICE_MAILBOXES)
        .arg("INBOX")
        .query_async(&mut rc)
        .await
        .expect("HGET");
    assert!(inbox.is_some(), "alice is account 2 with an INBOX");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(REDIS_P99.as_micros().to_string())
        .query_async(&mut rc)
        .await
        .expect("slowlog threshold");
    let _: () = redis::cmd("SLOWLOG")
        .arg("RESET")
        .query_async(&mut rc)
        .await
        .expect("slowlog reset");

    // The reference: the same user and the same Redis reads before any attack.
    alice.ok("SELECT INBOX").await;
    let baseline = timed_phase(&mut alice, &redis, redis_cpu, BASELINE_TIME).await;
    baseline.report("baseline");

    let stop = Arc::new(AtomicBool::new(false));
    let mut attacks = Vec::new();
    let mut counters = Vec::new();
    let mut spawn_attack = |name: &'static str, task: tokio::task::JoinHandle<()>| {
        attacks.push((name, task));
    };

    // 1. THREAD and SORT over the bomb.
    let rounds = Arc::new(AtomicUsize::new(0));
    counters.push(("thread/sort", rounds.clone()));
    let st = stop.clone();
    spawn_attack(
        "thread/sort",
        tokio::spawn(async move {
            let mut c = Imap::login(node, "mallory", "mallory-pw").await;
            c.ok("SELECT INBOX").await;
            while !st.load(Ordering::Relaxed) {
                c.ok("THREAD REFERENCES UTF-8 ALL").await;
                c.ok("SORT (SUBJECT REVERSE DATE) UTF-8 ALL").await;
                c.ok("THREAD ORDEREDSUBJECT UTF-8 ALL").await;
                rounds.fetch_add(1, Ordering::Relaxed);
            }
        }),
    );

    // 2. STORE floods: 8 000 keywords at once (refused by the front-end before the store),
    // then the most the store allows (64 keywords of 128 bytes) on every message, and off.
    let rounds = Arc::new(AtomicUsize::new(0));
    counters.push(("store flood", rounds.clone()));
    let st = stop.clone();
    spawn_attack(
        "store flood",
        tokio::spawn(async move {
            let mut c = Imap::login(node, "mallory", "mallory-pw").await;
            c.ok("SELECT INBOX").await;
            let flood = keywords("f", 8_000, 0);
            let most = keywords("m", 64, 128);
            while !st.load(Ordering::Relaxed) {
                let r = c.run(&format!("STORE 1:* +FLAGS.SILENT ({flood})")).await;
                assert!(!r.is_ok(), "8 000 keywords are refused: {}", r.status);
                c.ok(&format!("STORE 1:* +FLAGS.SILENT ({most})")).await;
                c.ok(&format!("STORE 1:* -FLAGS.SILENT ({most})")).await;
                rounds.fetch_add(1, Ordering::Relaxed);
            }
        }),
    );

    // 3. The search-index flood: megabytes of header text per message, copied.
    let rounds = Arc::new(AtomicUsize::new(0));
    counters.push(("index flood", rounds.clone()));
    let st = stop.clone();
    spawn_attack(
        "index flood",
        tokio::spawn(async move {
            let mut c = Imap::login(node, "mallory", "mallory-pw").await;
            c.ok("SELECT flood").await;
            let mut n = 0;
            while !st.load(Ordering::Relaxed) {
                n += 1;
                let r = c.append("flood", "", &header_flood(n)).await;
                assert!(r.is_ok(), "{}", r.status);
                c.ok("COPY 1:* flood-copy").await;
                // Keep the mailboxes small so that the flood stays an index flood.
                c.ok("STORE 1:* +FLAGS.SILENT (\\Deleted)").await;
                c.ok("EXPUNGE").await;
                rounds.fetch_add(1, Ordering::Relaxed);
            }
        }),
    );

    // 4. Memory bombs: a sequence set naming `1:*` thousands of times, a repeated FETCH item,
    // a SEARCH nested hundreds deep.
    let rounds = Arc::new(AtomicUsize::new(0));
    counters.push(("memory bombs", rounds.clone()));
    let st = stop.clone();
    spawn_attack(
        "memory bombs",
        tokio::spawn(async move {
            let mut c = Imap::login(node, "mallory", "mallory-pw").await;
            c.ok("SELECT INBOX").await;
            let seqs = vec!["1:*"; 4_000].join(",");
            let items = vec!["BINARY.SIZE[2]"; 400].join(" ");
            // Within the nesting limit (each level is a NOT and a parenthesis), and far past it.
            let nested = format!("{}ALL{}", "NOT (".repeat(200), ")".repeat(200));
            let too_deep = format!("{}ALL{}", "NOT (".repeat(5_000), ")".repeat(5_000));
            while !st.load(Ordering::Relaxed) {
                c.ok(&format!("FETCH {seqs} (FLAGS)")).await;
                c.ok(&format!("FETCH 1:5 ({items})")).await;
                c.ok(&format!("SEARCH {nested}")).await;
                let r = c.run(&format!("SEARCH {too_deep}")).await;
                assert!(r.status.starts_with("BAD"), "too deep: {}", &r.status[..40]);
                rounds.fetch_add(1, Ordering::Relaxed);
            }
        }),
    );

    // 5. Connections that never log in.
    for _ in 0..30 {
        let st = stop.clone();
        spawn_attack("dripper", tokio::spawn(dripper(node, st)));
    }

    let attacked = timed_phase(&mut alice, &redis, redis_cpu, ATTACK_TIME).await;
    stop.store(true, Ordering::Relaxed);
    for (name, task) in attacks {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .unwrap_or_else(|_| panic!("the {name} attack ends"))
            .unwrap_or_else(|e| panic!("the {name} attack: {e}"));
    }

    assert!(
        stack.all_running(),
        "no process exited or restarted under attack"
    );
    for (name, rounds) in &counters {
        let rounds = rounds.load(Ordering::Relaxed);
        println!("attack {name}: {rounds} rounds");
        assert!(rounds > 0, "the {name} attack ran");
    }

    let (user_p99, redis_p99) = (attacked.report("under attack"), attacked.redis_p99());
    let baseline_redis_p99 = baseline.redis_p99();
    let slow: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(20)
        .query_async(&mut rc)
        .await
        .expect("slowlog");
    println!("Redis commands slower than {REDIS_P99:?}: {}", slow.len());
    for entry in &slow {
        if let redis::Value::Array(fields) = entry
            && let (Some(redis::Value::Int(micros)), Some(redis::Value::Array(args))) =
                (fields.get(2), fields.get(3))
        {
            let args: Vec<String> = args
                .iter()
                .take(7)
                .map(|a| match a {
                    redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    other => format!("{other:?}"),
                })
                .collect();
            println!("  {micros} µs: {}", args.join(" "));
        }
    }

    assert!(
        user_p99 < USER_P99,
        "the well-behaved user's p99 {user_p99:?}"
    );
    // Issue 9's 10 ms, or the p99 the same reads had before the attacks on this machine when
    // the machine alone is slower than that (a CPU-starved CI runner): the attacks may not
    // make another tenant's Redis reads slower than 2× what they were without them.
    let redis_bound = REDIS_P99.max(baseline_redis_p99 * 2);
    assert!(
        redis_p99 < redis_bound,
        "another tenant's Redis p99 {redis_p99:?} (bound {redis_bound:?})"
    );

    // The attacker's keywords stayed within the limits: FLAGS lists at most 256.
    let mut c = Imap::login(node, "mallory", "mallory-pw").await;
    let r = c.ok("SELECT INBOX").await;
    let flags = r.find("* FLAGS").expect("FLAGS");
    assert!(flags.text.split(' ').count() < 300, "{}", flags.text);
}
