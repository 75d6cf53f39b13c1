//! Issue 9's memory bombs, measured: the heap this process allocates (the front-end, its
//! embedded store and the test client) is tracked by a counting allocator, and the peak while a
//! hostile command runs is compared with the peak of its harmless form on the same data.
//!
//! The stated bound (docs/operations.md, "Limits"): what one command of one connection holds
//! does not grow with how often it repeats a sequence range or a FETCH item — at most its own
//! text (under `max_command`), the messages it answers, and one decoded copy of a part per
//! message. Before the fixes, `FETCH 1:*,1:*,…` expanded every range (12 000 × 300 messages
//! here) and each repeated `BINARY.SIZE[2]` decoded its own copy of the part (4 000 × 1.5 MiB).
//!
//! One test function runs every case in turn, so nothing else in this binary allocates
//! meanwhile.

mod common;

use common::*;
use peak_alloc::PeakAlloc;

/// The system allocator, counting the bytes live now and the most live since the last reset.
#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

const MIB: usize = 1024 * 1024;

fn reset_peak() -> usize {
    ALLOCATOR.reset_peak_usage();
    ALLOCATOR.current_usage()
}

/// Runs `command` and returns how far the heap rose above where it stood when it was sent.
async fn peak_of(c: &mut Raw, command: &str) -> usize {
    let before = reset_peak();
    let lines = c.cmd(command).await;
    assert!(
        lines.last().is_some_and(|l| l.starts_with("T OK")),
        "{:?}",
        lines.last()
    );
    drop(lines);
    ALLOCATOR.peak_usage().saturating_sub(before)
}

/// Base64 of `n` bytes, in 76-column lines (RFC 2045 §6.8).
fn base64_lines(n: usize) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(n * 4 / 3 + n / 38 + 8);
    let mut col = 0;
    let mut x: u32 = 0x9e37_79b9;
    for _ in 0..n.div_ceil(3) {
        // Any bytes do; a xorshift keeps them from compressing into a pattern.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        for shift in [18, 12, 6, 0] {
            out.push(ALPHABET[((x >> shift) & 63) as usize] as char);
        }
        col += 4;
        if col == 76 {
            out.push_str("\r\n");
            col = 0;
        }
    }
    out.push_str("\r\n");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bombs_cost_what_their_harmless_forms_cost() {
    let h = start().await;
    let mut c = Raw::login(h.addr, "alice", "wonderland").await;
    c.timeout = std::time::Duration::from_secs(120);

    // A message with a 1.5 MiB attachment (2 MiB of base64).
    let part = base64_lines(1536 * 1024);
    let msg = format!(
        "Subject: big\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n\
         --b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         {part}--b--\r\n"
    );
    assert!(
        append(&mut c, "INBOX", "", msg.as_bytes())
            .await
            .starts_with("A OK")
    );
    drop((part, msg));
    for n in 0..299 {
        let small = format!("Subject: m{n}\r\n\r\nbody {n}\r\n");
        assert!(
            append(&mut c, "INBOX", "", small.as_bytes())
                .await
                .starts_with("A OK")
        );
    }
    assert!(
        c.cmd("SELECT INBOX")
            .await
            .last()
            .is_some_and(|l| l.starts_with("T OK"))
    );
    // Warm up whatever the first FETCH of a session allocates once (caches, the view).
    peak_of(&mut c, "FETCH 1 (BINARY.SIZE[2])").await;
    peak_of(&mut c, "FETCH 1:* (FLAGS)").await;

    // A repeated FETCH item: one decode, whatever the repetition.
    let once = peak_of(&mut c, "FETCH 1 (BINARY.SIZE[2])").await;
    let items = vec!["BINARY.SIZE[2]"; 4000].join(" ");
    let repeated = peak_of(&mut c, &format!("FETCH 1 ({items})")).await;
    println!(
        "BINARY.SIZE[2] once: {:.1} MiB, × 4000: {:.1} MiB",
        once as f64 / MIB as f64,
        repeated as f64 / MIB as f64
    );
    // The command's own text is 60 KB; decoding 4 000 copies would be 6 GiB.
    assert!(
        repeated < once + 4 * MIB,
        "repeating an item costs no more than once: {repeated} vs {once}"
    );
    assert!(once < 16 * MIB, "one decode of a 1.5 MiB part: {once}");

    // A sequence set naming every message 12 000 times.
    let once = peak_of(&mut c, "FETCH 1:* (FLAGS)").await;
    let seqs = vec!["1:*"; 12_000].join(",");
    let repeated = peak_of(&mut c, &format!("FETCH {seqs} (FLAGS)")).await;
    println!(
        "FETCH 1:* once: {:.2} MiB, × 12 000: {:.2} MiB",
        once as f64 / MIB as f64,
        repeated as f64 / MIB as f64
    );
    // Expanded before merging, the set would be 3.6 million UIDs (14 MiB) and as many
    // responses.
    assert!(
        repeated < once + 2 * MIB,
        "a repeated range costs what one costs: {repeated} vs {once}"
    );
    let once = peak_of(&mut c, "UID SEARCH UID 1:*").await;
    let repeated = peak_of(&mut c, &format!("UID SEARCH UID {seqs}")).await;
    assert!(
        repeated < once + 2 * MIB,
        "a repeated range in SEARCH too: {repeated} vs {once}"
    );
}
