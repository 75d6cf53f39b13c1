use super::*;

const SEED: u64 = 20_261_203;

#[test]
fn the_same_seed_and_index_give_the_same_bytes() {
    for i in 0..40 {
        assert_eq!(
            generate(SEED, i).bytes,
            generate(SEED, i).bytes,
            "message {i}"
        );
    }
    assert_ne!(generate(SEED, 3).bytes, generate(SEED + 1, 3).bytes);
}

#[test]
fn messages_are_well_formed_and_sized_like_real_mail() {
    let mut summary = Summary::default();
    for i in 0..1_000 {
        let m = generate(SEED, i);
        let b = &m.bytes;
        assert!(b.ends_with(b"\r\n"), "message {i} ends in CRLF");
        for (at, &c) in b.iter().enumerate() {
            // CR and LF only as CRLF (RFC 5322 §2.3), no NUL (IMAP literals may not carry it).
            if c == b'\n' {
                assert_eq!(b[at - 1], b'\r', "bare LF in message {i} at {at}");
            }
            if c == b'\r' {
                assert_eq!(
                    b.get(at + 1),
                    Some(&b'\n'),
                    "bare CR in message {i} at {at}"
                );
            }
            assert_ne!(c, 0, "NUL in message {i}");
        }
        assert!(
            b.split(|&c| c == b'\n').all(|l| l.len() <= 998),
            "message {i} has a line over 998 bytes"
        );
        let head_end = b
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("header end");
        let head = std::str::from_utf8(&b[..head_end]).expect("headers are ASCII");
        assert!(head.is_ascii(), "message {i}: headers are 7-bit");
        let id = head
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: "))
            .expect("Message-ID");
        assert_eq!(parse_message_id(id), Some((SEED, i)));
        summary.add(&m);
    }
    let mean = summary.bytes / summary.count;
    assert!((35_000..=70_000).contains(&mean), "mean size {mean}");
    assert_eq!(
        summary.by_kind.len(),
        Kind::ALL.len(),
        "{:?}",
        summary.by_kind
    );
}

#[test]
fn a_mime_parser_reads_what_the_corpus_means() {
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..300 {
        let m = generate(SEED, i);
        let parsed = mail_parser::MessageParser::default()
            .parse(&m.bytes)
            .unwrap_or_else(|| panic!("message {i} parses"));
        let subject = parsed.subject().expect("subject");
        seen.insert(m.kind);
        match m.kind {
            Kind::Japanese => {
                assert!(
                    text::JP_SUBJECTS.iter().any(|s| subject.contains(s)),
                    "message {i}: ISO-2022-JP subject decodes: {subject}"
                );
                let body = parsed.body_text(0).expect("text body");
                assert!(
                    body.contains('様'),
                    "message {i}: ISO-2022-JP body decodes: {body}"
                );
            }
            Kind::Attachments => {
                assert!(parsed.attachment_count() >= 1, "message {i}: attachments");
                let first = parsed.attachment(0).expect("attachment");
                assert!(
                    first.contents().len() >= 10_000,
                    "message {i}: decoded base64"
                );
            }
            Kind::Forwarded => {
                let inner = (0..parsed.attachment_count() as u32)
                    .find_map(|a| parsed.attachment(a)?.message())
                    .unwrap_or_else(|| panic!("message {i}: message/rfc822 part"));
                assert!(
                    inner.subject().is_some(),
                    "message {i}: inner message has headers"
                );
            }
            Kind::Alternative => {
                assert!(parsed.body_html(0).is_some(), "message {i}: HTML part");
                assert!(parsed.body_text(0).is_some(), "message {i}: text part");
            }
            Kind::Utf8 | Kind::Plain => {
                assert!(parsed.body_text(0).is_some(), "message {i}: text body");
            }
        }
        if m.kind != Kind::Japanese && subject.starts_with("Re: ") {
            let refs = parsed.references().as_text_list().expect("References");
            let parent = parsed.in_reply_to().as_text().expect("In-Reply-To");
            assert_eq!(refs.last().map(|r| r.as_ref()), Some(parent), "message {i}");
            let (_, parent_index) = parse_message_id(&format!("<{parent}>")).expect("corpus id");
            assert!(parent_index < i, "message {i} replies to an earlier one");
        }
    }
    assert_eq!(
        seen.len(),
        Kind::ALL.len(),
        "every kind within 300 messages"
    );
}
