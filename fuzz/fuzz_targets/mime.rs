//! Summarizes arbitrary bytes as a delivered message (what APPEND and LMTP do with whatever a
//! client or a sender on the Internet sends) and checks that it never panics, that every section
//! range it computes lies inside the message, and that the stored encoding round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yubin_mime::{SectionWhat, Summary, summarize};

fuzz_target!(|raw: &[u8]| {
    let (summary, _index) = summarize(raw);
    let len = raw.len() as u64;
    let whats = [
        SectionWhat::Full,
        SectionWhat::Header,
        SectionWhat::Text,
        SectionWhat::Mime,
    ];
    // Part numbers up to three levels deep, as FETCH BODY[a.b.c] would name them.
    let mut paths: Vec<Vec<u32>> = vec![Vec::new()];
    for a in 1..=4 {
        paths.push(vec![a]);
        for b in 1..=3 {
            paths.push(vec![a, b]);
            paths.push(vec![a, b, 1]);
        }
    }
    for path in &paths {
        for what in whats {
            if let Some(r) = summary.section_range(path, what) {
                assert!(
                    r.start <= r.end && r.end <= len,
                    "{path:?} {what:?} {r:?} of {len}"
                );
            }
        }
        let _ = summary.part_encoding(path);
    }
    let again = Summary::from_bytes(&summary.to_bytes()).expect("a stored summary reads back");
    assert_eq!(again.envelope(), summary.envelope());
    assert_eq!(again.body_structure(), summary.body_structure());
});
