//! Feeds arbitrary bytes to the LMTP receiver in arbitrary splits, switching to DATA whenever the
//! peer asks for it, and checks that it never panics, that every event is consistent with the
//! mode it was in, and that what it holds stays bounded by its line limit plus one read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yubin_lmtp_proto::{Command, Event, Limits, Receiver, parse_command};

fuzz_target!(|data: &[u8]| {
    let [a, b, rest @ ..] = data else {
        return;
    };
    let limits = Limits {
        max_line: 8 + usize::from(*a) * 4,
    };
    // The command parser on its own, on the whole input as one line.
    let _ = parse_command(rest);

    let mut receiver = Receiver::new(limits);
    let mut seed = u32::from_le_bytes([*a, *b, 0x5a, 0xa5]) | 1;
    let mut input = rest;
    while !input.is_empty() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = 1 + (seed as usize % input.len().min(64));
        receiver.feed(&input[..n]);
        input = &input[n..];
        while let Some(event) = receiver.next() {
            match event {
                // The session answers 354 to DATA, and the message text follows.
                Event::Command(Command::Data) => receiver.start_data(),
                Event::Command(Command::Bdat { .. }) => assert!(!receiver.reading_commands()),
                Event::Body(bytes) => assert!(!bytes.is_empty()),
                Event::DataEnd | Event::ChunkEnd { .. } => assert!(receiver.reading_commands()),
                Event::Command(_) | Event::Invalid(_) => {}
            }
        }
        // One unfinished line (or line prefix of DATA text) plus at most one read.
        assert!(receiver.buffered() <= limits.max_line + 64 + 5);
    }
});
