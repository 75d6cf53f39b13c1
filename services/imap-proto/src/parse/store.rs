//! Message-set commands: STORE (RFC 3501 §6.4.6, UNCHANGEDSINCE RFC 7162 §3.1.3), COPY,
//! MOVE (RFC 6851) and UID EXPUNGE (RFC 4315 §2.1), in their plain and UID forms.

use super::{Cursor, PResult};
use crate::command::*;

/// `store = "STORE" SP sequence-set [store-modifiers] SP store-att-flags`,
/// `store-att-flags = (["+" / "-"] "FLAGS" [".SILENT"]) SP (flag-list / (flag *(SP flag)))`.
pub(super) fn store(c: &mut Cursor<'_>, uid: bool) -> PResult<CommandBody> {
    c.sp()?;
    let set = c.seq_set()?;
    c.sp()?;
    let mut unchanged_since = None;
    if c.peek() == Some(b'(') {
        c.list(false, |c| {
            if c.eat_keyword("UNCHANGEDSINCE") {
                c.sp()?;
                unchanged_since = Some(c.number64()?);
                Ok(())
            } else {
                c.fail("unknown STORE modifier")
            }
        })?;
        c.sp()?;
    }
    let mode = if c.eat(b'+') {
        StoreMode::Add
    } else if c.eat(b'-') {
        StoreMode::Remove
    } else {
        StoreMode::Replace
    };
    let silent = if c.eat_keyword("FLAGS") {
        false
    } else if c.eat_keyword("FLAGS.SILENT") {
        true
    } else {
        return c.fail("expected FLAGS or FLAGS.SILENT");
    };
    c.sp()?;
    let flags = if c.peek() == Some(b'(') {
        c.flag_list()?
    } else {
        let mut flags = vec![c.flag()?];
        while c.eat(b' ') {
            flags.push(c.flag()?);
        }
        flags
    };
    Ok(CommandBody::Store {
        uid,
        set,
        mode,
        silent,
        flags,
        unchanged_since,
    })
}

/// `copy = "COPY" SP sequence-set SP mailbox`; MOVE has the same shape.
pub(super) fn copy(c: &mut Cursor<'_>, uid: bool, is_move: bool) -> PResult<CommandBody> {
    c.sp()?;
    let set = c.seq_set()?;
    c.sp()?;
    let mailbox = c.astring()?;
    Ok(if is_move {
        CommandBody::Move { uid, set, mailbox }
    } else {
        CommandBody::Copy { uid, set, mailbox }
    })
}

/// `uid-expunge = "UID" SP "EXPUNGE" SP sequence-set`.
pub(super) fn uid_expunge(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    Ok(CommandBody::Expunge {
        uids: Some(c.seq_set()?),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::command::*;

    fn range(a: u32, b: SeqBound) -> SequenceSet {
        SequenceSet::Ranges(vec![(SeqBound::Number(a), b)])
    }

    fn store(
        uid: bool,
        set: SequenceSet,
        mode: StoreMode,
        silent: bool,
        flags: &[&str],
        unchanged_since: Option<u64>,
    ) -> CommandBody {
        CommandBody::Store {
            uid,
            set,
            mode,
            silent,
            flags: flags.iter().map(|f| f.to_string()).collect(),
            unchanged_since,
        }
    }

    #[test]
    fn table() {
        use SeqBound::*;
        let table: Vec<(&str, CommandBody)> = vec![
            (
                "a STORE 2:4 +FLAGS (\\Deleted)",
                store(
                    false,
                    range(2, Number(4)),
                    StoreMode::Add,
                    false,
                    &["\\Deleted"],
                    None,
                ),
            ),
            (
                "a store 1 -flags.silent (\\Seen $Junk)",
                store(
                    false,
                    range(1, Number(1)),
                    StoreMode::Remove,
                    true,
                    &["\\Seen", "$Junk"],
                    None,
                ),
            ),
            (
                "a UID STORE 1:* FLAGS ()",
                store(true, range(1, Star), StoreMode::Replace, false, &[], None),
            ),
            (
                "a STORE 1 +FLAGS \\Seen \\Flagged work",
                store(
                    false,
                    range(1, Number(1)),
                    StoreMode::Add,
                    false,
                    &["\\Seen", "\\Flagged", "work"],
                    None,
                ),
            ),
            (
                "a STORE 1 FLAGS.SILENT \\*",
                store(
                    false,
                    range(1, Number(1)),
                    StoreMode::Replace,
                    true,
                    &["\\*"],
                    None,
                ),
            ),
            (
                "d105 STORE 7,5,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)",
                store(
                    false,
                    SequenceSet::Ranges(vec![
                        (Number(7), Number(7)),
                        (Number(5), Number(5)),
                        (Number(9), Number(9)),
                    ]),
                    StoreMode::Add,
                    true,
                    &["\\Deleted"],
                    Some(320_162_338),
                ),
            ),
            (
                "a UID STORE $ (UNCHANGEDSINCE 0) -FLAGS (\\sEEn)",
                store(
                    true,
                    SequenceSet::Saved,
                    StoreMode::Remove,
                    false,
                    &["\\sEEn"],
                    Some(0),
                ),
            ),
            (
                "a COPY 2:4 MEETING",
                CommandBody::Copy {
                    uid: false,
                    set: range(2, Number(4)),
                    mailbox: b"MEETING".to_vec(),
                },
            ),
            (
                "a UID COPY 1:* \"Saved Items\"",
                CommandBody::Copy {
                    uid: true,
                    set: range(1, Star),
                    mailbox: b"Saved Items".to_vec(),
                },
            ),
            (
                "a MOVE 1 Trash",
                CommandBody::Move {
                    uid: false,
                    set: range(1, Number(1)),
                    mailbox: b"Trash".to_vec(),
                },
            ),
            (
                "a uid move 42:43 Archive",
                CommandBody::Move {
                    uid: true,
                    set: range(42, Number(43)),
                    mailbox: b"Archive".to_vec(),
                },
            ),
            (
                "a UID EXPUNGE 3000:3002",
                CommandBody::Expunge {
                    uids: Some(range(3000, Number(3002))),
                },
            ),
        ];
        for (line, want) in table {
            assert_eq!(body(line), want, "{line}");
        }
    }

    #[test]
    fn errors() {
        for bad in [
            "a STORE",
            "a STORE 1",
            "a STORE 1 FLAGS",
            "a STORE 1 FLAGS ",
            "a STORE 1 +FLAGS (\\Seen",
            "a STORE 1 *FLAGS (\\Seen)",
            "a STORE 1 FLAGSX (\\Seen)",
            "a STORE 1 FLAGS.LOUD (\\Seen)",
            "a STORE 1 (UNCHANGEDSINCE) FLAGS (\\Seen)",
            "a STORE 1 (FOO 1) FLAGS (\\Seen)",
            "a STORE 1 FLAGS (\\Seen) (UNCHANGEDSINCE 1)",
            "a STORE 1 FLAGS \\",
            "a COPY 1",
            "a COPY INBOX",
            "a MOVE 1 a b",
            "a UID EXPUNGE",
            "a UID EXPUNGE x",
            "a UID",
        ] {
            let (tag, _) = parse_err(bad);
            assert_eq!(tag.as_deref(), Some("a"), "{bad}");
        }
    }
}
