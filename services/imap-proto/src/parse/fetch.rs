//! FETCH and UID FETCH (RFC 3501 §6.4.5, RFC 9051 §6.4.5), BINARY (RFC 3516 §4.2), the
//! CHANGEDSINCE / VANISHED modifiers (RFC 7162 §3.1.4, §3.2.6) and the MODSEQ, EMAILID,
//! THREADID (RFC 8474) and SAVEDATE (RFC 8514) items.

use super::{Cursor, PResult};
use crate::command::*;

/// `fetch = "FETCH" SP sequence-set SP ("ALL" / "FULL" / "FAST" / fetch-att /
/// "(" fetch-att *(SP fetch-att) ")") [fetch-modifiers]`.
pub(super) fn fetch(c: &mut Cursor<'_>, uid: bool) -> PResult<CommandBody> {
    c.sp()?;
    let set = c.seq_set()?;
    c.sp()?;
    let items = if c.peek() == Some(b'(') {
        FetchItems::List(c.list(false, attribute)?)
    } else if c.eat_keyword("ALL") {
        FetchItems::All
    } else if c.eat_keyword("FAST") {
        FetchItems::Fast
    } else if c.eat_keyword("FULL") {
        FetchItems::Full
    } else {
        FetchItems::List(vec![attribute(c)?])
    };
    let mut changed_since = None;
    let mut vanished = false;
    if c.eat(b' ') {
        c.list(false, |c| {
            if c.eat_keyword("CHANGEDSINCE") {
                c.sp()?;
                changed_since = Some(c.number64()?);
            } else if c.eat_keyword("VANISHED") {
                vanished = true;
            } else {
                return c.fail("unknown FETCH modifier");
            }
            Ok(())
        })?;
    }
    // RFC 7162 §3.2.6: VANISHED only in UID FETCH and only together with CHANGEDSINCE.
    if vanished && (!uid || changed_since.is_none()) {
        return c.fail("VANISHED needs UID FETCH with CHANGEDSINCE");
    }
    Ok(CommandBody::Fetch {
        uid,
        set,
        items,
        changed_since,
        vanished,
    })
}

/// The item name: letters, digits and dots (`BODY.PEEK`, `RFC822.SIZE`, `BINARY.SIZE`).
fn item_name(c: &mut Cursor<'_>) -> PResult<String> {
    let name = c.take_while(|b| b.is_ascii_alphanumeric() || b == b'.');
    if name.is_empty() {
        return c.fail("expected FETCH item");
    }
    Ok(String::from_utf8_lossy(name).to_ascii_uppercase())
}

fn attribute(c: &mut Cursor<'_>) -> PResult<FetchAttribute> {
    let name = item_name(c)?;
    Ok(match name.as_str() {
        "ENVELOPE" => FetchAttribute::Envelope,
        "FLAGS" => FetchAttribute::Flags,
        "INTERNALDATE" => FetchAttribute::InternalDate,
        "RFC822.SIZE" => FetchAttribute::Rfc822Size,
        "UID" => FetchAttribute::Uid,
        "BODYSTRUCTURE" => FetchAttribute::BodyStructure,
        "RFC822" => FetchAttribute::Rfc822,
        "RFC822.HEADER" => FetchAttribute::Rfc822Header,
        "RFC822.TEXT" => FetchAttribute::Rfc822Text,
        "MODSEQ" => FetchAttribute::ModSeq,
        "EMAILID" => FetchAttribute::EmailId,
        "THREADID" => FetchAttribute::ThreadId,
        "SAVEDATE" => FetchAttribute::SaveDate,
        "PREVIEW" => FetchAttribute::Preview {
            lazy: preview_modifiers(c)?,
        },
        "BODY" if c.peek() != Some(b'[') => FetchAttribute::Body,
        "BODY" | "BODY.PEEK" => {
            let section = section(c)?;
            FetchAttribute::BodySection {
                peek: name == "BODY.PEEK",
                section,
                partial: partial(c)?,
            }
        }
        "BINARY" | "BINARY.PEEK" => {
            let part = binary_part(c)?;
            FetchAttribute::Binary {
                peek: name == "BINARY.PEEK",
                part,
                partial: partial(c)?,
            }
        }
        "BINARY.SIZE" => FetchAttribute::BinarySize {
            part: binary_part(c)?,
        },
        _ => return c.fail("unknown FETCH item"),
    })
}

/// `fetch-att =/ "PREVIEW" [SP "(" preview-mod *(SP preview-mod) ")"]`,
/// `preview-mod = "LAZY"` (RFC 8970 §7). True when LAZY was given.
fn preview_modifiers(c: &mut Cursor<'_>) -> PResult<bool> {
    // A space and "(LAZY" open the modifier list. Anything else after the space is the next
    // item or, for a lone `FETCH n PREVIEW (CHANGEDSINCE m)`, the FETCH modifiers (RFC 7162
    // §3.1.4), which share the parenthesized shape.
    let rest = c.rest();
    let opens_modifiers = rest.len() > 6
        && rest.starts_with(b" (")
        && rest[2..6].eq_ignore_ascii_case(b"LAZY")
        && matches!(rest[6], b' ' | b')');
    if !opens_modifiers {
        return Ok(false);
    }
    c.sp()?;
    let mut lazy = false;
    c.list(false, |c| {
        if c.eat_keyword("LAZY") {
            lazy = true;
            Ok(())
        } else {
            c.fail("unknown PREVIEW modifier")
        }
    })?;
    Ok(lazy)
}

/// `section = "[" [section-spec] "]"`,
/// `section-spec = section-msgtext / (section-part ["." section-text])`.
pub(super) fn section(c: &mut Cursor<'_>) -> PResult<Section> {
    c.expect(b'[', "expected [")?;
    let mut section = Section::default();
    if c.eat(b']') {
        return Ok(section);
    }
    // section-part = nz-number *("." nz-number); a dot followed by a letter starts the text.
    let mut want_text = true;
    if c.peek().is_some_and(|b| b.is_ascii_digit()) {
        loop {
            section.part.push(c.nz_number()?);
            if !c.eat(b'.') {
                want_text = false;
                break;
            }
            if !c.peek().is_some_and(|b| b.is_ascii_digit()) {
                break;
            }
        }
    }
    if want_text {
        let word = item_name(c)?;
        section.text = Some(match word.as_str() {
            "HEADER" => SectionText::Header,
            "TEXT" => SectionText::Text,
            "MIME" if !section.part.is_empty() => SectionText::Mime,
            "HEADER.FIELDS" => {
                c.sp()?;
                SectionText::HeaderFields(c.list(false, Cursor::astring_utf8)?)
            }
            "HEADER.FIELDS.NOT" => {
                c.sp()?;
                SectionText::HeaderFieldsNot(c.list(false, Cursor::astring_utf8)?)
            }
            _ => return c.fail("invalid section"),
        });
    }
    c.expect(b']', "expected ]")?;
    Ok(section)
}

/// `section-binary = "[" [section-part] "]"` (RFC 3516 §4.2).
fn binary_part(c: &mut Cursor<'_>) -> PResult<Vec<u32>> {
    c.expect(b'[', "expected [")?;
    let mut part = Vec::new();
    if !c.eat(b']') {
        loop {
            part.push(c.nz_number()?);
            if !c.eat(b'.') {
                break;
            }
        }
        c.expect(b']', "expected ]")?;
    }
    Ok(part)
}

/// `partial = "<" number "." nz-number ">"`: (first octet, octet count).
fn partial(c: &mut Cursor<'_>) -> PResult<Option<(u64, u64)>> {
    if !c.eat(b'<') {
        return Ok(None);
    }
    let start = c.number64()?;
    c.expect(b'.', "expected . in partial")?;
    let count = c.number64()?;
    if count == 0 {
        return c.fail("partial length must not be zero");
    }
    c.expect(b'>', "expected >")?;
    Ok(Some((start, count)))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::command::*;

    fn items(line: &str) -> FetchItems {
        match body(line) {
            CommandBody::Fetch { items, .. } => items,
            other => panic!("{other:?}"),
        }
    }

    fn section(part: &[u32], text: Option<SectionText>) -> Section {
        Section {
            part: part.to_vec(),
            text,
        }
    }

    fn body_section(peek: bool, s: Section, partial: Option<(u64, u64)>) -> FetchAttribute {
        FetchAttribute::BodySection {
            peek,
            section: s,
            partial,
        }
    }

    #[test]
    fn single_items() {
        use FetchAttribute::*;
        let table: Vec<(&str, FetchAttribute)> = vec![
            ("ENVELOPE", Envelope),
            ("flags", Flags),
            ("INTERNALDATE", InternalDate),
            ("RFC822.SIZE", Rfc822Size),
            ("UID", Uid),
            ("BODY", Body),
            ("BODYSTRUCTURE", BodyStructure),
            ("RFC822", Rfc822),
            ("RFC822.HEADER", Rfc822Header),
            ("rfc822.text", Rfc822Text),
            ("MODSEQ", ModSeq),
            ("EMAILID", EmailId),
            ("THREADID", ThreadId),
            ("SAVEDATE", SaveDate),
            ("BODY[]", body_section(false, section(&[], None), None)),
            (
                "body.peek[]<0.1024>",
                body_section(true, section(&[], None), Some((0, 1024))),
            ),
            ("BODY[3]", body_section(false, section(&[3], None), None)),
            (
                "BODY[1.2]",
                body_section(false, section(&[1, 2], None), None),
            ),
            (
                "BODY[HEADER]",
                body_section(false, section(&[], Some(SectionText::Header)), None),
            ),
            (
                "BODY[TEXT]<5.10>",
                body_section(false, section(&[], Some(SectionText::Text)), Some((5, 10))),
            ),
            (
                "BODY[1.MIME]",
                body_section(false, section(&[1], Some(SectionText::Mime)), None),
            ),
            (
                "BODY[4.2.TEXT]",
                body_section(false, section(&[4, 2], Some(SectionText::Text)), None),
            ),
            (
                "BODY.PEEK[1.2.HEADER.FIELDS (From To)]",
                body_section(
                    true,
                    section(
                        &[1, 2],
                        Some(SectionText::HeaderFields(vec!["From".into(), "To".into()])),
                    ),
                    None,
                ),
            ),
            (
                "BODY[HEADER.FIELDS.NOT (\"Received\" X-Spam)]",
                body_section(
                    false,
                    section(
                        &[],
                        Some(SectionText::HeaderFieldsNot(vec![
                            "Received".into(),
                            "X-Spam".into(),
                        ])),
                    ),
                    None,
                ),
            ),
            (
                "BINARY[]",
                Binary {
                    peek: false,
                    part: vec![],
                    partial: None,
                },
            ),
            (
                "BINARY.PEEK[1.2]<0.100>",
                Binary {
                    peek: true,
                    part: vec![1, 2],
                    partial: Some((0, 100)),
                },
            ),
            ("BINARY.SIZE[3]", BinarySize { part: vec![3] }),
        ];
        for (item, want) in table {
            let line = format!("a FETCH 1 {item}");
            assert_eq!(items(&line), FetchItems::List(vec![want.clone()]), "{line}");
            let line = format!("a FETCH 1 ({item} UID)");
            assert_eq!(items(&line), FetchItems::List(vec![want, Uid]), "{line}");
        }
    }

    #[test]
    fn macros_and_modifiers() {
        assert_eq!(items("a FETCH 1 ALL"), FetchItems::All);
        assert_eq!(items("a FETCH 1 fast"), FetchItems::Fast);
        assert_eq!(items("a FETCH 1 FULL"), FetchItems::Full);
        assert_eq!(
            body("s100 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)"),
            CommandBody::Fetch {
                uid: true,
                set: SequenceSet::Ranges(vec![(SeqBound::Number(300), SeqBound::Number(500))]),
                items: FetchItems::List(vec![FetchAttribute::Flags]),
                changed_since: Some(12345),
                vanished: true,
            }
        );
        assert_eq!(
            body("a FETCH 1:* FAST (CHANGEDSINCE 7)"),
            CommandBody::Fetch {
                uid: false,
                set: SequenceSet::Ranges(vec![(SeqBound::Number(1), SeqBound::Star)]),
                items: FetchItems::Fast,
                changed_since: Some(7),
                vanished: false,
            }
        );
        assert_eq!(
            body("a UID FETCH $ (UID MODSEQ)"),
            CommandBody::Fetch {
                uid: true,
                set: SequenceSet::Saved,
                items: FetchItems::List(vec![FetchAttribute::Uid, FetchAttribute::ModSeq]),
                changed_since: None,
                vanished: false,
            }
        );
        // A literal header field name.
        assert_eq!(
            wire_body(b"a FETCH 2 BODY[HEADER.FIELDS ({4}\r\nFrom)]\r\n"),
            CommandBody::Fetch {
                uid: false,
                set: SequenceSet::Ranges(vec![(SeqBound::Number(2), SeqBound::Number(2))]),
                items: FetchItems::List(vec![body_section(
                    false,
                    section(&[], Some(SectionText::HeaderFields(vec!["From".into()]))),
                    None
                )]),
                changed_since: None,
                vanished: false,
            }
        );
    }

    #[test]
    fn preview_and_lazy_modifier() {
        // RFC 8970 §5 examples, plus the modifier list's case and its neighbours.
        let lazy = FetchAttribute::Preview { lazy: true };
        let eager = FetchAttribute::Preview { lazy: false };
        assert_eq!(
            items("A1 FETCH 1 (PREVIEW)"),
            FetchItems::List(vec![eager.clone()])
        );
        assert_eq!(
            items("B1 FETCH 1:4 (PREVIEW (LAZY))"),
            FetchItems::List(vec![lazy.clone()])
        );
        assert_eq!(
            items("a UID FETCH 1:* (UID PREVIEW (lazy) FLAGS)"),
            FetchItems::List(vec![
                FetchAttribute::Uid,
                lazy.clone(),
                FetchAttribute::Flags
            ])
        );
        assert_eq!(
            items("a FETCH 1 PREVIEW (LAZY)"),
            FetchItems::List(vec![lazy])
        );
        // A lone PREVIEW followed by FETCH modifiers: the list is CHANGEDSINCE's, not PREVIEW's.
        assert_eq!(
            body("a FETCH 1 PREVIEW (CHANGEDSINCE 5)"),
            CommandBody::Fetch {
                uid: false,
                set: SequenceSet::Ranges(vec![(SeqBound::Number(1), SeqBound::Number(1))]),
                items: FetchItems::List(vec![eager.clone()]),
                changed_since: Some(5),
                vanished: false,
            }
        );
        for bad in [
            "a FETCH 1 (PREVIEW (FOO))",
            "a FETCH 1 (PREVIEW (LAZY FOO))",
            "a FETCH 1 (PREVIEW ())",
            "a FETCH 1 (PREVIEW (LAZY)",
        ] {
            let (tag, _) = parse_err(bad);
            assert_eq!(tag.as_deref(), Some("a"), "{bad}");
        }
    }

    #[test]
    fn errors() {
        for bad in [
            "a FETCH",
            "a FETCH 1",
            "a FETCH 1 ",
            "a FETCH 1 FOO",
            "a FETCH 1 ()",
            "a FETCH 1 (ALL)",
            "a FETCH 1 (FLAGS",
            "a FETCH 1 BODY[",
            "a FETCH 1 BODY[MIME]",
            "a FETCH 1 BODY[0]",
            "a FETCH 1 BODY[1.]",
            "a FETCH 1 BODY[1.FOO]",
            "a FETCH 1 BODY[HEADER.FIELDS]",
            "a FETCH 1 BODY[HEADER.FIELDS ()]",
            "a FETCH 1 BODY.PEEK",
            "a FETCH 1 BODY[]<0>",
            "a FETCH 1 BODY[]<0.0>",
            "a FETCH 1 BODY[]<x.1>",
            "a FETCH 1 BINARY[TEXT]",
            "a FETCH 1 BINARY.SIZE",
            "a FETCH 1 BINARY[1.]",
            "a FETCH 1 FLAGS (FOO)",
            "a FETCH 1 FLAGS (VANISHED)",
            "a FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)",
            "a UID FETCH 1 FLAGS (VANISHED)",
            "a FETCH 1 FLAGS ()",
            "a FETCH x FLAGS",
        ] {
            let (tag, _) = parse_err(bad);
            assert_eq!(tag.as_deref(), Some("a"), "{bad}");
        }
    }
}
