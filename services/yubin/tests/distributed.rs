//! The distributed setup end to end: a real redis-server, a real S3 protocol server (s3s-fs),
//! `yubin meta` and two `yubin imap` front-ends, driven over IMAP.

mod common;

use common::sample_message;
use common::stack::Stack;
use std::time::{Duration, Instant};
use yubin_loadtest::client::Imap;

fn literal_of<'a>(r: &'a yubin_loadtest::client::Response, needle: &str) -> &'a [u8] {
    let line = r
        .find(needle)
        .unwrap_or_else(|| panic!("no {needle} in {r:?}"));
    &line.literals[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_on_one_node_sees_append_flags_and_expunge_from_the_other() {
    let stack = Stack::start().await;
    stack.add_user("alice", "alice-pw");

    let mut watcher = Imap::login(stack.imap(0), "alice", "alice-pw").await;
    watcher.ok("SELECT INBOX").await;
    let idle = watcher.idle().await;

    let mut writer = Imap::login(stack.imap(1), "alice", "alice-pw").await;
    let message = sample_message(1);
    let started = Instant::now();
    let r = writer.append("INBOX", "", &message).await;
    assert!(r.is_ok(), "{r:?}");
    let exists = watcher
        .wait_for("EXISTS", Duration::from_secs(5))
        .await
        .expect("IDLE client on node 1 sees EXISTS for an APPEND on node 2");
    let latency = started.elapsed();
    assert_eq!(exists.text, "* 1 EXISTS");
    println!("cross-node APPEND -> EXISTS latency: {latency:?}");

    writer.ok("SELECT INBOX").await;
    writer.ok("STORE 1 +FLAGS.SILENT (\\Flagged)").await;
    let flags = watcher
        .wait_for("FETCH", Duration::from_secs(5))
        .await
        .expect("IDLE client sees the flag change");
    assert!(flags.has("\\Flagged"), "{flags:?}");

    writer.ok("STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    writer.ok("EXPUNGE").await;
    let expunge = watcher
        .wait_for("EXPUNGE", Duration::from_secs(5))
        .await
        .expect("IDLE client sees the expunge");
    assert_eq!(expunge.text, "* 1 EXPUNGE");
    assert!(watcher.done(&idle).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_round_trip_through_s3_byte_identical_and_users_are_isolated() {
    let stack = Stack::start().await;
    stack.add_user("alice", "pw-a");
    stack.add_user("bob", "pw-b");

    let mut alice = Imap::login(stack.imap(0), "alice", "pw-a").await;
    let mut sent = Vec::new();
    for n in 0..5 {
        let m = sample_message(n);
        assert!(alice.append("INBOX", "\\Seen", &m).await.is_ok());
        sent.push(m);
    }
    // Read back on the other node: the body comes from S3, the metadata from meta.
    let mut again = Imap::login(stack.imap(1), "alice", "pw-a").await;
    again.ok("SELECT INBOX").await;
    for (i, m) in sent.iter().enumerate() {
        let r = again.ok(&format!("FETCH {} BODY.PEEK[]", i + 1)).await;
        assert_eq!(literal_of(&r, "FETCH"), m.as_slice(), "message {i}");
    }

    let mut bob = Imap::login(stack.imap(1), "bob", "pw-b").await;
    let r = bob.ok("SELECT INBOX").await;
    assert!(
        r.find("* 0 EXISTS").is_some(),
        "bob sees none of alice's mail: {r:?}"
    );
    let r = bob.ok("LIST \"\" \"*\"").await;
    assert_eq!(r.untagged.len(), 1, "bob has only his INBOX: {r:?}");
    assert!(
        !Imap::connect(stack.imap(0))
            .await
            .run("LOGIN bob pw-a")
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_restart_keeps_everything_and_idle_clients_catch_up() {
    let mut stack = Stack::start().await;
    stack.add_user("carol", "pw-c");
    let mut c = Imap::login(stack.imap(0), "carol", "pw-c").await;
    c.ok("CREATE Work").await;
    assert!(
        c.append("Work", "\\Flagged", &sample_message(7))
            .await
            .is_ok()
    );

    let mut watcher = Imap::login(stack.imap(0), "carol", "pw-c").await;
    watcher.ok("SELECT Work").await;
    let idle = watcher.idle().await;

    // The event stream from meta to node 0 breaks here; changes made while it is down and after
    // it comes back must still reach the IDLE client (notifications are hints, MODSEQ is truth).
    stack.restart_meta();
    let mut writer = Imap::login(stack.imap(1), "carol", "pw-c").await;
    assert!(writer.append("Work", "", &sample_message(8)).await.is_ok());
    let line = watcher
        .wait_for("EXISTS", Duration::from_secs(10))
        .await
        .expect("IDLE client catches up after the event stream broke");
    assert_eq!(line.text, "* 2 EXISTS");
    assert!(watcher.done(&idle).await.is_ok());

    let r = writer.ok("STATUS Work (MESSAGES)").await;
    assert!(r.find("MESSAGES 2").is_some(), "{r:?}");
    let r = writer.ok("SELECT Work").await;
    assert!(r.find("2 EXISTS").is_some(), "{r:?}");
    let r = writer.ok("FETCH 1 FLAGS").await;
    assert!(r.find("\\Flagged").is_some(), "{r:?}");
}

/// Nothing acknowledged is lost: APPENDs run through both front-ends while meta is killed and
/// restarted; every APPEND that got a tagged OK must be in the mailbox afterwards, exactly once,
/// with strictly ascending UIDs. APPENDs made while meta is down must fail cleanly (NO), never hang
/// or be acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_crash_during_appends_loses_nothing_acknowledged() {
    use std::sync::{Arc, Mutex};
    let mut stack = Stack::start().await;
    stack.add_user("dora", "pw-d");
    let acknowledged = Arc::new(Mutex::new(Vec::<u64>::new()));
    let refused = Arc::new(Mutex::new(0u32));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let addr = stack.imap((w % 2) as usize);
        let (acknowledged, refused, stop) = (acknowledged.clone(), refused.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut imap = Imap::login(addr, "dora", "pw-d").await;
            let mut n = w * 1_000_000;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let r = imap
                    .append("INBOX", "", &yubin_loadtest::workload::message(n))
                    .await;
                if r.is_ok() {
                    acknowledged.lock().expect("lock").push(n);
                } else {
                    assert!(r.status.starts_with("NO"), "{r:?}");
                    *refused.lock().expect("lock") += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    stack.crash_meta();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stack.start_meta_again();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() > 20,
        "appends succeeded before and after the crash"
    );
    println!(
        "acknowledged {} appends, {} refused while meta was down",
        acknowledged.len(),
        refused.lock().expect("lock")
    );

    let mut check = Imap::login(stack.imap(0), "dora", "pw-d").await;
    check.ok("SELECT INBOX").await;
    let r = check
        .ok("UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        .await;
    let mut uids = Vec::new();
    let mut present = Vec::new();
    for line in &r.untagged {
        let uid: u32 = line
            .text
            .split("UID ")
            .nth(1)
            .and_then(|t| t.split([' ', ')']).next())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no UID in {line:?}"));
        uids.push(uid);
        let header = String::from_utf8_lossy(&line.literals[0]).into_owned();
        let n: u64 = header
            .trim()
            .strip_prefix("Subject: load ")
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("unexpected header {header:?}"));
        present.push(n);
    }
    assert!(
        uids.windows(2).all(|w| w[0] < w[1]),
        "UIDs strictly ascend: {uids:?}"
    );
    let mut sorted = present.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), present.len(), "no message stored twice");
    for n in &acknowledged {
        assert!(present.contains(n), "acknowledged APPEND {n} was lost");
    }
}

/// Benchmark, not a test (run it with `cargo test --release -p yubin --test distributed --
/// --ignored --nocapture`): cross-node IDLE latency, sequential APPEND rate and the mixed
/// workload on the distributed stack. Numbers are recorded in docs/performance.md.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark; run explicitly in release mode"]
async fn benchmark_distributed() {
    let stack = Stack::start().await;
    stack.add_user("bench", "bench");
    let samples =
        yubin_loadtest::workload::idle_latency(stack.imap(0), stack.imap(1), "bench", "bench", 300)
            .await;
    let q = |x| yubin_loadtest::workload::quantile(&samples, x);
    println!(
        "APPEND on node 2 -> EXISTS on IDLE node 1 ({} rounds): p50 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        q(0.5),
        q(0.99),
        q(1.0)
    );
    let rate = yubin_loadtest::workload::append_rate(stack.imap(0), "bench", "bench", 2000).await;
    println!("sequential APPEND through one front-end: {rate:.0}/s");
    for (messages, rounds, whole) in [(3_000, 20, true), (100_000, 10, false)] {
        println!("{messages}-message mailbox, p50 / p90:");
        let timings = yubin_loadtest::workload::mailbox_bench(
            stack.imap(0),
            "bench",
            "bench",
            messages,
            rounds,
            whole,
        )
        .await;
        for t in timings {
            println!("  {:?} / {:?}  {}", t.p50, t.p90, t.command);
        }
    }
    for i in 0..50 {
        let name = format!("load{i}");
        stack.add_user(&name, &name);
    }
    let r = yubin_loadtest::workload::mixed(stack.imap(0), "load", 50, 50, Duration::from_secs(20))
        .await;
    println!(
        "mixed workload, 50 users / 50 clients on one front-end: {:.0} cycles/s, {:.0} commands/s, \
         {} failed, {} state errors",
        r.cycles as f64 / r.elapsed.as_secs_f64(),
        r.commands as f64 / r.elapsed.as_secs_f64(),
        r.failed_commands,
        r.state_errors
    );
}

/// Benchmark, not a test (`cargo test --release -p yubin --test distributed --
/// benchmark_fetch_bodies --ignored --nocapture`): `FETCH 1:100 (BODY.PEEK[])` on the distributed
/// stack, one S3 GetObject per message. It exposed the 40 ms delayed-ACK stalls of the S3 test
/// server (docs/performance.md, "S3 request latency").
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark; run explicitly in release mode"]
async fn benchmark_fetch_bodies() {
    let stack = Stack::start().await;
    stack.add_user("bodies", "bodies");
    let mut imap = Imap::login(stack.imap(0), "bodies", "bodies").await;
    let mut bytes = 0;
    for n in 0..100 {
        let message = sample_message(n);
        bytes += message.len();
        assert!(imap.append("INBOX", "", &message).await.is_ok());
    }
    imap.ok("SELECT INBOX").await;
    let mut samples = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let r = imap.ok("FETCH 1:100 (BODY.PEEK[])").await;
        samples.push(started.elapsed());
        assert_eq!(r.count("FETCH"), 100, "every body answered");
    }
    samples.sort_unstable();
    println!(
        "FETCH 1:100 (BODY.PEEK[]) of {} KB in all, 10 rounds: p50 {:?}, max {:?}",
        bytes / 1024,
        samples[samples.len() / 2],
        samples[samples.len() - 1]
    );
}

/// Waits for `* BYE` on a session whose account was revoked, then for the connection to close.
async fn expect_revoked(session: &mut Imap, what: &str) {
    let bye = session
        .wait_for("* BYE", Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("{what}: no BYE within 5 s"));
    assert!(bye.has("revoked"), "{what}: {bye:?}");
    assert!(
        session
            .read_line_within(Duration::from_secs(5))
            .await
            .is_none(),
        "{what}: the connection closes after BYE"
    );
}

/// Issue 9 item 4: disabling, deleting or re-passwording an account ends its sessions on every
/// node within seconds, whether idling in a mailbox or sitting authenticated between commands;
/// other accounts' sessions stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_an_account_ends_its_sessions_on_every_node() {
    let stack = Stack::start().await;
    stack.add_user("dora", "pw-d");
    stack.add_user("erik", "pw-e");
    let mut bystander = Imap::login(stack.imap(0), "erik", "pw-e").await;

    // (what, the password the sessions logged in with, the admin command that revokes)
    for (step, password, revoke) in [
        ("disable", "pw-d", vec!["disable", "dora"]),
        (
            "password change",
            "pw-d",
            vec!["passwd", "dora", "--password", "pw-d2"],
        ),
        ("delete", "pw-d2", vec!["delete", "dora", "--yes"]),
    ] {
        if step == "password change" {
            stack.user(&["enable", "dora"]);
        }
        // Node 0: selected and idling. Node 1: authenticated, between commands.
        let mut idler = Imap::login(stack.imap(0), "dora", password).await;
        idler.ok("SELECT INBOX").await;
        let _idle = idler.idle().await;
        let mut quiet = Imap::login(stack.imap(1), "dora", password).await;
        quiet.ok("NOOP").await;

        let started = Instant::now();
        stack.user(&revoke);
        expect_revoked(&mut idler, step).await;
        expect_revoked(&mut quiet, step).await;
        println!("{step}: BYE on both nodes after {:?}", started.elapsed());

        // The old credentials no longer open a session anywhere.
        for node in 0..2 {
            let mut again = Imap::connect(stack.imap(node)).await;
            let r = again.run(&format!("LOGIN dora {password}")).await;
            assert!(!r.is_ok(), "{step}: login with the old credentials: {r:?}");
        }
    }
    // Someone else's session was never touched.
    bystander.ok("NOOP").await;
}
