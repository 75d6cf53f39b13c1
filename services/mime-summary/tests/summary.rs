//! Table tests over real-looking messages in `tests/fixtures/` (CRLF, byte-exact). Expected
//! ENVELOPE/BODYSTRUCTURE strings were written from RFC 3501 §7.4.2 and checked by hand against
//! the fixture bytes (sizes are octet counts of the encoded content).

use yubin_mime::{
    SectionWhat, Summary, TransferEncoding, decode_transfer_encoding, filter_header_fields,
    summarize,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn section<'a>(raw: &'a [u8], s: &Summary, part: &[u32], what: SectionWhat) -> &'a [u8] {
    let r = s
        .section_range(part, what)
        .unwrap_or_else(|| panic!("no section {part:?} {what:?}"));
    &raw[r.start as usize..r.end as usize]
}

/// Invariants that must hold for any input: ranges inside the message, summary round trip,
/// balanced parentheses in the structure strings (outside strings and literals).
fn check_invariants(raw: &[u8], s: &Summary) {
    let len = raw.len() as u64;
    let mut parts: Vec<Vec<u32>> = vec![vec![]];
    for a in 1..=4 {
        parts.push(vec![a]);
        for b in 1..=3 {
            parts.push(vec![a, b]);
            for c in 1..=2 {
                parts.push(vec![a, b, c]);
            }
        }
    }
    for p in &parts {
        for w in [
            SectionWhat::Full,
            SectionWhat::Header,
            SectionWhat::Text,
            SectionWhat::Mime,
        ] {
            if let Some(r) = s.section_range(p, w) {
                assert!(
                    r.start <= r.end && r.end <= len,
                    "{p:?} {w:?} {r:?} len {len}"
                );
            }
        }
        let _ = s.part_encoding(p);
    }
    assert_eq!(s.section_range(&[], SectionWhat::Full), Some(0..len));
    assert!(s.section_range(&[0], SectionWhat::Full).is_none());
    let back = Summary::from_bytes(&s.to_bytes()).expect("round trip");
    assert_eq!(&back, s);
    for v in [s.envelope(), s.body_structure(), s.body()] {
        assert!(balanced(v.as_bytes()), "unbalanced: {v}");
    }
}

/// Checks that parentheses balance, skipping quoted strings and `{n}\r\n` literals.
fn balanced(v: &[u8]) -> bool {
    let mut depth = 0i64;
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            b'"' => {
                i += 1;
                while i < v.len() && v[i] != b'"' {
                    if v[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'{' => {
                let close = v[i..].iter().position(|&c| c == b'}').map(|p| p + i);
                let Some(close) = close else { return false };
                let Ok(n) = std::str::from_utf8(&v[i + 1..close])
                    .unwrap_or("x")
                    .parse::<usize>()
                else {
                    return false;
                };
                i = close + 3 + n - 1;
            }
            _ => {}
        }
        i += 1;
    }
    depth == 0
}

#[test]
fn plain_ascii_matches_rfc3501_example() {
    let raw = fixture("plain.eml");
    let (s, idx) = summarize(&raw);
    check_invariants(&raw, &s);
    assert_eq!(
        s.envelope(),
        "(\"Mon, 7 Feb 1994 21:52:25 -0800 (PST)\" \"afternoon meeting\" \
         ((\"Fred Foobar\" NIL \"foobar\" \"Blurdybloop.COM\")) \
         ((\"Fred Foobar\" NIL \"foobar\" \"Blurdybloop.COM\")) \
         ((\"Fred Foobar\" NIL \"foobar\" \"Blurdybloop.COM\")) \
         ((NIL NIL \"mooch\" \"owatagu.siam.edu\")) NIL NIL NIL \
         \"<B27397-0100000@Blurdybloop.COM>\")"
    );
    assert_eq!(
        s.body_structure(),
        "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 55 1 NIL NIL NIL NIL)"
    );
    assert_eq!(
        s.body(),
        "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 55 1)"
    );
    let body: &[u8] = b"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n";
    assert_eq!(section(&raw, &s, &[], SectionWhat::Text), body);
    assert_eq!(section(&raw, &s, &[1], SectionWhat::Full), body);
    let header = section(&raw, &s, &[], SectionWhat::Header);
    assert!(header.starts_with(b"Date: Mon, 7 Feb 1994"));
    assert!(header.ends_with(b"CHARSET=US-ASCII\r\n\r\n"));
    assert_eq!(header.len() + body.len(), raw.len());
    // A non-multipart message has exactly one part, and no HEADER/TEXT below it.
    assert!(s.section_range(&[2], SectionWhat::Full).is_none());
    assert!(s.section_range(&[1, 1], SectionWhat::Full).is_none());
    assert!(s.section_range(&[1], SectionWhat::Header).is_none());
    assert!(s.section_range(&[], SectionWhat::Mime).is_none());
    assert_eq!(s.part_encoding(&[1]), Some(TransferEncoding::SevenBit));
    assert_eq!(s.part_encoding(&[]), None);

    assert_eq!(
        idx.sent_date.map(|d| (d.unix_seconds, d.tz_offset_minutes)),
        Some((760_686_745, -480))
    );
    assert!(idx.headers.contains(&(
        "Message-Id".into(),
        "<B27397-0100000@Blurdybloop.COM>".into()
    )));
    assert_eq!(
        idx.body_text,
        "Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n"
    );
}

#[test]
fn multipart_alternative() {
    let raw = fixture("alternative.eml");
    let (s, idx) = summarize(&raw);
    check_invariants(&raw, &s);
    assert_eq!(
        s.envelope(),
        "(\"Tue, 14 Nov 2023 09:30:00 +0100\" \"Lunch plans\" \
         ((\"Alice Example\" NIL \"alice\" \"example.org\")) \
         ((NIL NIL \"list-bounces\" \"lists.example.org\")) \
         ((\"Alice (work)\" NIL \"alice.work\" \"example.org\")) \
         ((NIL NIL \"bob\" \"example.net\")(\"Carol, C.\" NIL \"carol\" \"example.net\")) \
         ((NIL NIL \"dave\" \"example.com\")) ((NIL NIL \"eve\" \"example.com\")) \
         \"<prev@example.org>\" \"<20231114.1@example.org>\")"
    );
    assert_eq!(
        s.body_structure(),
        "((\"text\" \"plain\" (\"charset\" \"utf-8\" \"format\" \"flowed\") NIL NIL \
         \"QUOTED-PRINTABLE\" 46 1 NIL NIL NIL NIL)\
         (\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 76 0 NIL NIL NIL NIL) \
         \"alternative\" (\"boundary\" \"b1_alt\") NIL NIL NIL)"
    );
    assert_eq!(
        s.body(),
        "((\"text\" \"plain\" (\"charset\" \"utf-8\" \"format\" \"flowed\") NIL NIL \
         \"QUOTED-PRINTABLE\" 46 1)\
         (\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 76 0) \
         \"alternative\")"
    );
    assert_eq!(
        section(&raw, &s, &[1], SectionWhat::Full),
        b"Let's meet at the caf=C3=A9 at noon.\r\nSee you!"
    );
    assert_eq!(
        section(&raw, &s, &[1], SectionWhat::Mime),
        b"Content-Type: text/plain; charset=utf-8; format=flowed\r\n\
          Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    );
    assert_eq!(
        section(&raw, &s, &[2], SectionWhat::Full),
        b"<html><body><p>Let's meet at the <b>caf=C3=A9</b> at noon.</p></body></html>"
    );
    let text = section(&raw, &s, &[], SectionWhat::Text);
    assert!(text.starts_with(b"This is a multi-part message in MIME format.\r\n--b1_alt\r\n"));
    assert!(text.ends_with(b"--b1_alt--\r\n"));
    assert!(s.section_range(&[3], SectionWhat::Full).is_none());
    assert_eq!(
        s.part_encoding(&[1]),
        Some(TransferEncoding::QuotedPrintable)
    );
    let content = section(&raw, &s, &[1], SectionWhat::Full);
    assert_eq!(
        decode_transfer_encoding(content, TransferEncoding::QuotedPrintable).as_deref(),
        Some("Let's meet at the café at noon.\r\nSee you!".as_bytes())
    );
    // The folded Subject is unfolded for the index too.
    assert!(
        idx.headers
            .contains(&("Subject".into(), "Lunch plans".into()))
    );
    assert!(idx.body_text.contains("Let's meet at the café at noon."));
    // The html alternative is reduced to text: no tags in the index.
    assert!(!idx.body_text.contains("<b>"));
}

#[test]
fn multipart_mixed_with_base64_attachment() {
    let raw = fixture("mixed-attachment.eml");
    let (s, idx) = summarize(&raw);
    check_invariants(&raw, &s);
    assert_eq!(
        s.body_structure(),
        "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 34 1 NIL NIL NIL NIL)\
         (\"application\" \"pdf\" (\"name\" \"report.pdf\") \"<part2@example.com>\" \
         \"Monthly report\" \"BASE64\" 134 NIL (\"attachment\" (\"filename\" \"report.pdf\")) \
         (\"en\" \"de\") NIL) \"mixed\" (\"boundary\" \"==MIX==\") NIL NIL NIL)"
    );
    assert_eq!(
        s.body(),
        "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 34 1)\
         (\"application\" \"pdf\" (\"name\" \"report.pdf\") \"<part2@example.com>\" \
         \"Monthly report\" \"BASE64\" 134) \"mixed\")"
    );
    assert_eq!(
        section(&raw, &s, &[1], SectionWhat::Full),
        b"Please find the report attached.\r\n"
    );
    let attachment = section(&raw, &s, &[2], SectionWhat::Full);
    assert_eq!(attachment.len(), 134);
    assert_eq!(s.part_encoding(&[2]), Some(TransferEncoding::Base64));
    let pdf = decode_transfer_encoding(attachment, TransferEncoding::Base64).expect("valid base64");
    assert_eq!(
        pdf,
        b"%PDF-1.4\n% fake pdf for tests\n1 0 obj << /Type /Catalog >> endobj\n\
          trailer << /Root 1 0 R >>\n%%EOF\n"
    );
    let mime = section(&raw, &s, &[2], SectionWhat::Mime);
    assert_eq!(
        filter_header_fields(mime, &["content-disposition".into()], false),
        b"Content-Disposition: attachment; filename=\"report.pdf\"\r\n\r\n"
    );
    // Attachments are not message text.
    assert_eq!(idx.body_text, "Please find the report attached.\r\n");
}

#[test]
fn nested_message_rfc822_sections() {
    let raw = fixture("nested.eml");
    let (s, idx) = summarize(&raw);
    check_invariants(&raw, &s);
    let inner_env = "(\"Wed, 01 Mar 2023 18:00:00 +0000\" \"Original multipart\" \
         ((\"Original\" NIL \"orig\" \"example.net\")) ((\"Original\" NIL \"orig\" \"example.net\")) \
         ((\"Original\" NIL \"orig\" \"example.net\")) ((NIL NIL \"fwd\" \"example.com\")) \
         NIL NIL NIL \"<orig1@example.net>\")";
    let simple_env = "(NIL \"Simple inner\" ((\"Simple\" NIL \"simple\" \"example.net\")) \
         ((\"Simple\" NIL \"simple\" \"example.net\")) ((\"Simple\" NIL \"simple\" \"example.net\")) \
         NIL NIL NIL NIL NIL)";
    assert_eq!(
        s.body_structure(),
        format!(
            "((\"text\" \"plain\" NIL NIL NIL \"7BIT\" 27 0 NIL NIL NIL NIL)\
             (\"message\" \"rfc822\" NIL NIL NIL \"7BIT\" 385 {inner_env} \
             ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 11 0 NIL NIL NIL NIL)\
             (\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 17 0 NIL NIL NIL NIL) \
             \"alternative\" (\"boundary\" \"inner\") NIL NIL NIL) 17 NIL (\"inline\" NIL) NIL NIL)\
             (\"message\" \"rfc822\" NIL NIL NIL \"7BIT\" 100 {simple_env} \
             (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 40 2 NIL NIL NIL NIL) \
             5 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"outer\") NIL NIL NIL)"
        )
    );
    assert_eq!(
        s.body(),
        format!(
            "((\"text\" \"plain\" NIL NIL NIL \"7BIT\" 27 0)\
             (\"message\" \"rfc822\" NIL NIL NIL \"7BIT\" 385 {inner_env} \
             ((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 11 0)\
             (\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 17 0) \
             \"alternative\") 17)\
             (\"message\" \"rfc822\" NIL NIL NIL \"7BIT\" 100 {simple_env} \
             (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 40 2) 5) \"mixed\")"
        )
    );

    let inner_header: &[u8] = b"From: Original <orig@example.net>\r\nTo: fwd@example.com\r\n\
        Subject: Original multipart\r\nDate: Wed, 01 Mar 2023 18:00:00 +0000\r\n\
        Message-ID: <orig1@example.net>\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n";
    let inner_text: &[u8] = b"--inner\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\
        plain inner\r\n--inner\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n\
        <p>html inner</p>\r\n--inner--\r\n";
    let cases: &[(&[u32], SectionWhat, &[u8])] = &[
        (&[1], SectionWhat::Full, b"See the forwarded messages."),
        (&[1], SectionWhat::Mime, b"Content-Type: text/plain\r\n\r\n"),
        (
            &[2],
            SectionWhat::Full,
            &[inner_header, inner_text].concat(),
        ),
        (&[2], SectionWhat::Header, inner_header),
        (&[2], SectionWhat::Text, inner_text),
        (
            &[2],
            SectionWhat::Mime,
            b"Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n",
        ),
        (&[2, 1], SectionWhat::Full, b"plain inner"),
        (
            &[2, 1],
            SectionWhat::Mime,
            b"Content-Type: text/plain; charset=us-ascii\r\n\r\n",
        ),
        (&[2, 2], SectionWhat::Full, b"<p>html inner</p>"),
        (
            &[3],
            SectionWhat::Header,
            b"From: Simple <simple@example.net>\r\nSubject: Simple inner\r\n\r\n",
        ),
        (
            &[3],
            SectionWhat::Text,
            b"simple body line 1\r\nsimple body line 2\r\n",
        ),
        // The encapsulated message is not multipart: its part 1 is its body.
        (
            &[3, 1],
            SectionWhat::Full,
            b"simple body line 1\r\nsimple body line 2\r\n",
        ),
    ];
    for (part, what, expected) in cases {
        assert_eq!(
            section(&raw, &s, part, *what),
            *expected,
            "section {part:?} {what:?}"
        );
    }
    for (part, what) in [
        (&[1][..], SectionWhat::Header),
        (&[1], SectionWhat::Text),
        (&[2, 3], SectionWhat::Full),
        (&[2, 1, 1], SectionWhat::Full),
        (&[3, 2], SectionWhat::Full),
        (&[4], SectionWhat::Full),
        (&[2, 1], SectionWhat::Header),
    ] {
        assert!(
            s.section_range(part, what).is_none(),
            "{part:?} {what:?} should not exist"
        );
    }
    assert_eq!(s.part_encoding(&[2, 2]), Some(TransferEncoding::SevenBit));
    assert_eq!(s.part_encoding(&[2]), Some(TransferEncoding::SevenBit));
    assert_eq!(s.part_encoding(&[]), None);
    assert_eq!(s.part_encoding(&[5]), None);
    // HEADER.FIELDS applied on an encapsulated header.
    assert_eq!(
        filter_header_fields(
            inner_header,
            &["Subject".into(), "message-id".into()],
            false
        ),
        b"Subject: Original multipart\r\nMessage-ID: <orig1@example.net>\r\n\r\n"
    );
    // Forwarded text is searchable.
    assert!(idx.body_text.contains("plain inner"));
    assert!(idx.body_text.contains("simple body line 2"));
}

#[test]
fn utf8_encoded_words_stay_encoded_in_envelope_and_decode_in_index() {
    let raw = fixture("utf8-subject.eml");
    let (s, idx) = summarize(&raw);
    check_invariants(&raw, &s);
    assert_eq!(
        s.envelope(),
        "(\"Fri, 03 Mar 2023 12:00:00 +0100\" \"=?UTF-8?B?R3LDvMOfZSBhdXMgTcO8bmNoZW4=?=\" \
         ((\"=?UTF-8?Q?Ren=C3=A9_Dupont?=\" NIL \"rene\" \"example.fr\")) \
         ((\"=?UTF-8?Q?Ren=C3=A9_Dupont?=\" NIL \"rene\" \"example.fr\")) \
         ((\"=?UTF-8?Q?Ren=C3=A9_Dupont?=\" NIL \"rene\" \"example.fr\")) \
         ((\"=?UTF-8?B?5bGx55Sw5aSq6YOO?=\" NIL \"taro\" \"example.jp\")) NIL NIL NIL \
         \"<utf8@example.fr>\")"
    );
    assert_eq!(
        s.body_structure(),
        "(\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"8BIT\" 40 1 NIL NIL NIL NIL)"
    );
    assert!(
        idx.headers
            .contains(&("Subject".into(), "Grüße aus München".into()))
    );
    assert!(
        idx.headers
            .contains(&("To".into(), "山田太郎 <taro@example.jp>".into()))
    );
    assert!(
        idx.headers
            .contains(&("From".into(), "René Dupont <rene@example.fr>".into()))
    );
    assert_eq!(idx.body_text, "Grüße aus München — naïve café.\r\n");
    assert_eq!(s.part_encoding(&[1]), Some(TransferEncoding::EightBit));
}

#[test]
fn iso_2022_jp_subject_and_body() {
    let raw = fixture("iso2022jp.eml");
    let (s, idx) = summarize(&raw);
    check_invariants(&raw, &s);
    assert!(
        s.envelope()
            .starts_with("(\"Sat, 04 Mar 2023 09:00:00 +0900\" \"=?ISO-2022-JP?B?GyRCRnxLXDhsJE4lRiU5JUgbKEI=?=\" ((\"=?ISO-2022-JP?B?GyRCOzNFREJATzobKEI=?=\" NIL \"yamada\" \"example.jp\"))")
    );
    assert_eq!(
        s.body_structure(),
        "(\"text\" \"plain\" (\"charset\" \"ISO-2022-JP\") NIL NIL \"7BIT\" 46 2 NIL NIL NIL NIL)"
    );
    assert!(
        idx.headers
            .contains(&("Subject".into(), "日本語のテスト".into()))
    );
    assert!(
        idx.headers
            .contains(&("From".into(), "山田太郎 <yamada@example.jp>".into()))
    );
    assert_eq!(idx.body_text, "こんにちは、世界。\r\nテストです。\r\n");
    assert_eq!(
        idx.sent_date.map(|d| (d.unix_seconds, d.tz_offset_minutes)),
        Some((1_677_888_000, 540))
    );
}

#[test]
fn raw_utf8_headers_become_literals() {
    let raw = fixture("raw-utf8-header.eml");
    let (s, _) = summarize(&raw);
    check_invariants(&raw, &s);
    // RFC 6532 headers: 8-bit values cannot be quoted strings for IMAP4rev1 clients.
    assert_eq!(
        s.envelope(),
        "(NIL {7}\r\nGrüße (({7}\r\nJürgen NIL \"juergen\" \"example.de\")) \
         (({7}\r\nJürgen NIL \"juergen\" \"example.de\")) \
         (({7}\r\nJürgen NIL \"juergen\" \"example.de\")) \
         ((NIL NIL {15}\r\nÜnïcode Group NIL)(NIL NIL \"a\" \"example.de\")(NIL NIL NIL NIL)) \
         NIL NIL NIL NIL)"
    );
}

#[test]
fn eight_bit_legacy_charset_body() {
    let raw = fixture("eightbit-latin1.eml");
    let (s, idx) = summarize(&raw);
    check_invariants(&raw, &s);
    assert_eq!(
        s.body_structure(),
        "(\"text\" \"plain\" (\"charset\" \"iso-8859-1\") NIL NIL \"8BIT\" 12 1 NIL NIL NIL NIL)"
    );
    assert_eq!(
        section(&raw, &s, &[1], SectionWhat::Full),
        b"Caf\xe9 cr\xe8me\r\n"
    );
    assert_eq!(idx.body_text, "Café crème\r\n");
}

#[test]
fn missing_headers_are_nil() {
    let raw = fixture("missing-headers.eml");
    let (s, idx) = summarize(&raw);
    check_invariants(&raw, &s);
    assert_eq!(
        s.envelope(),
        "(NIL \"only a subject\" NIL NIL NIL NIL NIL NIL NIL NIL)"
    );
    assert_eq!(
        s.body_structure(),
        "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 18 1 NIL NIL NIL NIL)"
    );
    assert_eq!(idx.sent_date, None);
}

#[test]
fn group_addresses() {
    let raw = fixture("groups.eml");
    let (s, _) = summarize(&raw);
    check_invariants(&raw, &s);
    assert_eq!(
        s.envelope(),
        "(NIL \"groups\" ((NIL NIL \"sender\" \"example.org\")) \
         ((NIL NIL \"sender\" \"example.org\")) ((NIL NIL \"sender\" \"example.org\")) \
         ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) \
         ((NIL NIL \"Friends\" NIL)(\"Ann\" NIL \"ann\" \"example.org\")\
         (NIL NIL \"bob\" \"example.org\")(NIL NIL NIL NIL)(NIL NIL \"solo\" \"example.org\")) \
         NIL NIL NIL)"
    );
}

#[test]
fn malformed_multipart_still_summarized() {
    let raw = fixture("malformed.eml");
    let (s, idx) = summarize(&raw);
    check_invariants(&raw, &s);
    // The broken From yields no address; the unclosed multipart still has its two parts.
    assert_eq!(
        s.envelope(),
        "(NIL \"malformed\" NIL NIL NIL NIL NIL NIL NIL NIL)"
    );
    assert_eq!(
        s.body(),
        "((\"text\" \"plain\" NIL NIL NIL \"BASE64\" 16 0)\
         (\"APPLICATION\" \"OCTET-STREAM\" NIL NIL NIL \"7BIT\" 30) \"mixed\")"
    );
    let bad = section(&raw, &s, &[1], SectionWhat::Full);
    assert_eq!(bad, b"!!!not base64!!!");
    assert_eq!(
        decode_transfer_encoding(bad, TransferEncoding::Base64),
        None
    );
    assert_eq!(idx.headers.len(), 4);
}

#[test]
fn base64_encoded_message_rfc822_is_described_but_not_addressable() {
    let inner = "From: x@example.org\r\nSubject: wrapped\r\n\r\ninner body\r\n";
    let b64 = "RnJvbTogeEBleGFtcGxlLm9yZw0KU3ViamVjdDogd3JhcHBlZA0KDQppbm5lciBib2R5DQo=";
    assert_eq!(
        decode_transfer_encoding(b64.as_bytes(), TransferEncoding::Base64).as_deref(),
        Some(inner.as_bytes())
    );
    let raw = format!(
        "Subject: outer\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
         Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b--\r\n"
    );
    let (s, idx) = summarize(raw.as_bytes());
    check_invariants(raw.as_bytes(), &s);
    assert!(s.body().contains("\"wrapped\""), "{}", s.body());
    assert_eq!(
        section(raw.as_bytes(), &s, &[1], SectionWhat::Full),
        b64.as_bytes()
    );
    assert_eq!(s.part_encoding(&[1]), Some(TransferEncoding::Base64));
    // Its inner offsets are in the decoded copy, not the stored bytes: no sections inside.
    assert!(s.section_range(&[1], SectionWhat::Header).is_none());
    assert!(s.section_range(&[1, 1], SectionWhat::Full).is_none());
    assert!(idx.body_text.contains("inner body"));
}

#[test]
fn odd_inputs_never_panic() {
    let deep = {
        let mut m = String::from("Subject: deep\r\n");
        for i in 0..300 {
            m.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n"
            ));
        }
        m.push_str("\r\nleaf\r\n");
        m.into_bytes()
    };
    let inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\r\n".to_vec(),
        b"\r\n\r\n".to_vec(),
        b"no header at all, just text".to_vec(),
        b"Subject: header only, no blank line\r\n".to_vec(),
        b"Subject: lf only\n\nbody\n".to_vec(),
        b"\x00\xff\xfe garbage \x80\r\n\r\n\x00".to_vec(),
        b"Content-Type: multipart/mixed\r\n\r\n--x\r\n".to_vec(),
        b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n".to_vec(),
        b"Content-Type: message/rfc822\r\n\r\n".to_vec(),
        b"From: \"unterminated <a@b>\r\nTo: (comment <x@y>\r\nCc: a@b, , ,;;:\r\n\r\n".to_vec(),
        b"Subject: =?UTF-8?B?invalid!!?=\r\nDate: not a date\r\n\r\nx".to_vec(),
        b"Subject: \xc3\x28 invalid utf8\r\nFrom: \xff <a@b>\r\n\r\nx".to_vec(),
        deep,
    ];
    for raw in inputs {
        let (s, _idx) = summarize(&raw);
        check_invariants(&raw, &s);
    }
}

#[test]
fn lf_only_message_sections() {
    let raw = b"Subject: lf\nFrom: a@example.org\n\nline one\nline two\n";
    let (s, _) = summarize(raw);
    assert_eq!(
        section(raw, &s, &[], SectionWhat::Header),
        b"Subject: lf\nFrom: a@example.org\n\n"
    );
    assert_eq!(
        section(raw, &s, &[], SectionWhat::Text),
        b"line one\nline two\n"
    );
    assert_eq!(
        s.body(),
        "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 18 2)"
    );
}

#[test]
fn header_only_message_has_empty_text() {
    let raw = b"Subject: no body\r\nFrom: a@example.org\r\n";
    let (s, _) = summarize(raw);
    check_invariants(raw, &s);
    let text = s.section_range(&[], SectionWhat::Text).expect("text");
    assert_eq!(text.end - text.start, 0);
    let header = section(raw, &s, &[], SectionWhat::Header);
    assert_eq!(header, raw);
}

#[test]
fn summary_bytes_reject_garbage() {
    assert!(Summary::from_bytes(b"not json").is_err());
    assert!(Summary::from_bytes(b"{}").is_err());
    assert!(Summary::from_bytes(b"").is_err());
    let (s, _) = summarize(&fixture("plain.eml"));
    let bytes = s.to_bytes();
    // The binary form: a tag byte, then the version (a one-byte integer), then the rest.
    let mut tampered = bytes.to_vec();
    tampered[1] = 99;
    assert!(Summary::from_bytes(&tampered).is_err());
    assert!(Summary::from_bytes(&bytes[..bytes.len() / 2]).is_err());
    let legacy = String::from_utf8(serde_json::to_vec(&s).expect("json"))
        .expect("json")
        .replacen("\"v\":1", "\"v\":99", 1);
    assert!(Summary::from_bytes(legacy.as_bytes()).is_err());
}

/// Summaries stored by releases that wrote JSON are still read, and the binary form that
/// replaced it is smaller.
#[test]
fn summaries_stored_as_json_are_still_read() {
    for name in [
        "plain.eml",
        "alternative.eml",
        "mixed-attachment.eml",
        "nested.eml",
        "iso2022jp.eml",
    ] {
        let (s, _) = summarize(&fixture(name));
        let legacy = serde_json::to_vec(&s).expect("json");
        assert_eq!(Summary::from_bytes(&legacy).expect("legacy"), s, "{name}");
        let binary = s.to_bytes();
        assert!(
            binary.len() < legacy.len(),
            "{name}: {} vs {}",
            binary.len(),
            legacy.len()
        );
    }
}

#[test]
fn body_text_is_capped() {
    let mut raw = b"Subject: big\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n".to_vec();
    for _ in 0..30_000 {
        raw.extend_from_slice("日本\r\n".as_bytes());
    }
    let (_, idx) = summarize(&raw);
    assert!(idx.body_text.len() <= 64 * 1024);
    assert!(idx.body_text.len() > 60 * 1024);
}

#[test]
fn digest_parts_default_to_message_rfc822() {
    // RFC 2046 §5.1.5: in multipart/digest, a part without Content-Type is message/rfc822.
    let raw = b"Subject: digest\r\nContent-Type: multipart/digest; boundary=d\r\n\r\n\
        --d\r\n\r\nFrom: a@example.org\r\nSubject: one\r\n\r\nbody one\r\n\
        --d--\r\n";
    let (s, _) = summarize(raw);
    check_invariants(raw, &s);
    assert_eq!(
        s.body(),
        "((\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 45 (NIL \"one\" \
         ((NIL NIL \"a\" \"example.org\")) ((NIL NIL \"a\" \"example.org\")) \
         ((NIL NIL \"a\" \"example.org\")) NIL NIL NIL NIL NIL) \
         (\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 8 0) 3) \"digest\")"
    );
    assert_eq!(
        section(raw, &s, &[1], SectionWhat::Header),
        b"From: a@example.org\r\nSubject: one\r\n\r\n"
    );
    assert_eq!(section(raw, &s, &[1, 1], SectionWhat::Full), b"body one");
}

/// A malformed nesting (found by the `mime` fuzz target) makes mail-parser list parts under
/// more than one parent: the summary names each part once, so a 900-byte message yields a
/// small summary at once instead of minutes of work and hundreds of MB.
#[test]
fn parts_listed_twice_are_summarized_once() {
    let raw = fixture("parts-listed-twice.eml");
    let (s, _) = summarize(&raw);
    check_invariants(&raw, &s);
    assert!(
        s.body_structure().len() < 16 * 1024,
        "{}",
        s.body_structure().len()
    );
}
