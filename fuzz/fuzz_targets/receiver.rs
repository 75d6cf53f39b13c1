//! Feeds arbitrary bytes to the IMAP command receiver in arbitrary splits and drains it, checking
//! that it never panics and that what it holds stays within its limits.
//!
//! `scripts/fuzz.sh` builds and runs every target on a stable toolchain for a bounded time (the
//! test script calls it); `cargo fuzz run receiver` works too where a nightly toolchain is at hand.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yubin_imap_proto::{Limits, LiteralChunk, Received, Receiver};

fuzz_target!(|data: &[u8]| {
    // The first bytes choose the limits (small, so that every limit path is reachable) and
    // seed the split sizes; the rest is the client's byte stream.
    let [a, b, c, d, e, rest @ ..] = data else {
        return;
    };
    let limits = Limits {
        max_line: 16 + usize::from(*a),
        max_literal: u64::from(*b) * 4,
        max_command: 64 + u64::from(*c) * 8,
        max_nesting: usize::from(*d % 32),
        max_buffered_literal: usize::from(*e),
        max_search_depth: usize::from(*d % 32),
        max_append_messages: 1 + usize::from(*e % 8),
        max_catenate_parts: 1 + usize::from(*c % 8),
        max_search_keys: 1 + usize::from(*a),
        // Limits added later keep their defaults, so the target keeps building.
        ..Limits::default()
    };
    let bound = limits.max_line + 1 + 2 * limits.max_command as usize;
    let mut receiver = Receiver::new(limits);
    let mut seed = u32::from_le_bytes([*a, *b, *c, *d]) | 1;
    let mut input = rest;
    let mut streaming = false;
    while !input.is_empty() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = 1 + (seed as usize % input.len().min(64));
        receiver.feed(&input[..n]);
        input = &input[n..];
        loop {
            if streaming {
                // An APPEND literal over the buffered limit: drain it the way the server spools it.
                match receiver.take_literal_chunk(1 + (seed as usize % 300)) {
                    LiteralChunk::Data(_) => continue,
                    LiteralChunk::NeedMoreData => break,
                    LiteralChunk::Done => streaming = false,
                }
            }
            // Now and then read the way IDLE and SASL exchanges do.
            if seed % 7 == 0 {
                let _ = receiver.take_line();
            }
            match receiver.next() {
                Received::NeedMoreData => break,
                Received::LiteralStream { .. } => streaming = true,
                Received::Error { fatal: true, .. } => return,
                _ => {}
            }
        }
        assert!(receiver.buffered() <= bound);
    }
});
