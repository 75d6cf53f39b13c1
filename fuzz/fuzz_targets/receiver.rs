//! Feeds arbitrary bytes to the command receiver in arbitrary splits and drains it, checking
//! that it never panics and that what it holds stays within its limits.
//!
//! Run with `cargo fuzz run receiver` (nightly, or `RUSTC_BOOTSTRAP=1`). On a stable toolchain
//! the same instrumentation works without cargo-fuzz: build with `--release --target
//! <host triple>` and `RUSTFLAGS="-Cpasses=sancov-module
//! -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
//! -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares
//! -Cdebug-assertions -Coverflow-checks"`, then run the binary with a corpus directory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yubin_imap_proto::{Limits, Received, Receiver};

fuzz_target!(|data: &[u8]| {
    // The first bytes choose the limits (small, so that every limit path is reachable) and
    // seed the split sizes; the rest is the client's byte stream.
    let [a, b, c, d, rest @ ..] = data else {
        return;
    };
    let limits = Limits {
        max_line: 16 + usize::from(*a),
        max_literal: u64::from(*b) * 4,
        max_command: 64 + u64::from(*c) * 8,
        max_nesting: usize::from(*d % 32),
        max_search_depth: usize::from(*d % 32),
        ..Limits::default()
    };
    let bound = limits.max_line + 1 + 2 * limits.max_command as usize;
    let mut receiver = Receiver::new(limits);
    let mut seed = u32::from_le_bytes([*a, *b, *c, *d]) | 1;
    let mut input = rest;
    while !input.is_empty() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = 1 + (seed as usize % input.len().min(64));
        receiver.feed(&input[..n]);
        input = &input[n..];
        loop {
            // Now and then read the way IDLE and SASL exchanges do.
            if seed % 7 == 0 {
                let _ = receiver.take_line();
            }
            match receiver.next() {
                Received::NeedMoreData => break,
                Received::Error { fatal: true, .. } => return,
                _ => {}
            }
        }
        assert!(receiver.buffered() <= bound);
    }
});
