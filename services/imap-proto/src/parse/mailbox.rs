//! Mailbox commands: SELECT/EXAMINE (with CONDSTORE/QRESYNC, RFC 7162 §3.1.8 and §3.2.5),
//! CREATE (CREATE-SPECIAL-USE, RFC 6154 §3), DELETE, RENAME, (UN)SUBSCRIBE, LIST
//! (LIST-EXTENDED RFC 5258, LIST-STATUS RFC 5819), LSUB, STATUS and APPEND (MULTIAPPEND
//! RFC 3502, literal8 RFC 3516).

use super::{Cursor, PResult};
use crate::command::*;

/// `mailbox = "INBOX" / astring`; INBOX's case-insensitivity is the session's business.
pub(super) fn mailbox(c: &mut Cursor<'_>) -> PResult<Vec<u8>> {
    c.astring()
}

/// `select = "SELECT" SP mailbox [select-params]` (RFC 4466 §2.1).
pub(super) fn select(c: &mut Cursor<'_>, examine: bool) -> PResult<CommandBody> {
    c.sp()?;
    let mailbox = mailbox(c)?;
    let mut params = SelectParams::default();
    if c.eat(b' ') {
        c.list(true, |c| {
            if c.eat_keyword("CONDSTORE") {
                params.condstore = true;
                Ok(())
            } else if c.eat_keyword("QRESYNC") {
                c.sp()?;
                params.qresync = Some(qresync(c)?);
                Ok(())
            } else {
                c.fail("unknown SELECT parameter")
            }
        })?;
    }
    Ok(if examine {
        CommandBody::Examine { mailbox, params }
    } else {
        CommandBody::Select { mailbox, params }
    })
}

/// `"(" uidvalidity SP mod-sequence-value [SP known-uids] [SP seq-match-data] ")"`
/// (RFC 7162 §7), `seq-match-data = "(" known-sequence-set SP known-uid-set ")"`.
fn qresync(c: &mut Cursor<'_>) -> PResult<QresyncParams> {
    c.expect(b'(', "expected (")?;
    c.enter()?;
    let uid_validity = c.nz_number()?;
    c.sp()?;
    let modseq = c.number64()?;
    let mut known_uids = None;
    let mut seq_match = None;
    if c.eat(b' ') {
        if c.peek() != Some(b'(') {
            known_uids = Some(c.seq_set()?);
            if c.eat(b' ') {
                seq_match = Some(seq_match_data(c)?);
            }
        } else {
            seq_match = Some(seq_match_data(c)?);
        }
    }
    c.expect(b')', "expected )")?;
    c.leave();
    Ok(QresyncParams {
        uid_validity,
        modseq,
        known_uids,
        seq_match,
    })
}

fn seq_match_data(c: &mut Cursor<'_>) -> PResult<(SequenceSet, SequenceSet)> {
    c.expect(b'(', "expected (")?;
    c.enter()?;
    let seqs = c.seq_set()?;
    c.sp()?;
    let uids = c.seq_set()?;
    c.expect(b')', "expected )")?;
    c.leave();
    Ok((seqs, uids))
}

/// `create = "CREATE" SP mailbox [create-params]`; only `USE (use-attr...)` is known.
pub(super) fn create(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let mailbox = mailbox(c)?;
    let mut special_use = Vec::new();
    if c.eat(b' ') {
        c.list(false, |c| {
            if !c.eat_keyword("USE") {
                return c.fail("unknown CREATE parameter");
            }
            c.sp()?;
            special_use.extend(c.list(false, |c| {
                c.expect(b'\\', "expected special-use attribute")?;
                Ok(format!("\\{}", super::lossy(c.atom()?.to_vec())))
            })?);
            Ok(())
        })?;
    }
    Ok(CommandBody::Create {
        mailbox,
        special_use,
    })
}

pub(super) fn delete(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    Ok(CommandBody::Delete {
        mailbox: mailbox(c)?,
    })
}

pub(super) fn rename(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let from = mailbox(c)?;
    c.sp()?;
    let to = mailbox(c)?;
    Ok(CommandBody::Rename { from, to })
}

pub(super) fn subscribe(c: &mut Cursor<'_>, subscribe: bool) -> PResult<CommandBody> {
    c.sp()?;
    let mailbox = mailbox(c)?;
    Ok(if subscribe {
        CommandBody::Subscribe { mailbox }
    } else {
        CommandBody::Unsubscribe { mailbox }
    })
}

/// `list = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts]`
/// (RFC 5258 §6).
pub(super) fn list(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let mut selection = Vec::new();
    if c.peek() == Some(b'(') {
        selection = c.list(true, |c| {
            Ok(match c.word()?.as_str() {
                "SUBSCRIBED" => ListSelectOption::Subscribed,
                "REMOTE" => ListSelectOption::Remote,
                "RECURSIVEMATCH" => ListSelectOption::RecursiveMatch,
                "SPECIAL-USE" => ListSelectOption::SpecialUse,
                _ => return c.fail("unknown LIST selection option"),
            })
        })?;
        // RFC 5258 §3.1: RECURSIVEMATCH alone (or with REMOTE only) MUST be answered BAD.
        if selection.contains(&ListSelectOption::RecursiveMatch)
            && selection.iter().all(|o| {
                matches!(
                    o,
                    ListSelectOption::RecursiveMatch | ListSelectOption::Remote
                )
            })
        {
            return c.fail("RECURSIVEMATCH needs another selection option");
        }
        c.sp()?;
    }
    let reference = mailbox(c)?;
    c.sp()?;
    let patterns = if c.peek() == Some(b'(') {
        c.list(false, Cursor::list_mailbox)?
    } else {
        vec![c.list_mailbox()?]
    };
    let mut returns = Vec::new();
    if c.eat(b' ') {
        if !c.eat_keyword("RETURN") {
            return c.fail("expected RETURN");
        }
        c.sp()?;
        returns = c.list(true, |c| {
            Ok(match c.word()?.as_str() {
                "SUBSCRIBED" => ListReturnOption::Subscribed,
                "CHILDREN" => ListReturnOption::Children,
                "SPECIAL-USE" => ListReturnOption::SpecialUse,
                "STATUS" => {
                    c.sp()?;
                    ListReturnOption::Status(status_items(c)?)
                }
                _ => return c.fail("unknown LIST return option"),
            })
        })?;
    }
    Ok(CommandBody::List {
        reference,
        patterns,
        selection,
        returns,
    })
}

pub(super) fn lsub(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let reference = mailbox(c)?;
    c.sp()?;
    let pattern = c.list_mailbox()?;
    Ok(CommandBody::Lsub { reference, pattern })
}

/// `"(" status-att *(SP status-att) ")"` (RFC 9051 §9 plus RFC 7162, 7889, 8474).
pub(super) fn status_items(c: &mut Cursor<'_>) -> PResult<Vec<StatusItem>> {
    c.list(false, |c| {
        Ok(match c.word()?.as_str() {
            "MESSAGES" => StatusItem::Messages,
            "RECENT" => StatusItem::Recent,
            "UIDNEXT" => StatusItem::UidNext,
            "UIDVALIDITY" => StatusItem::UidValidity,
            "UNSEEN" => StatusItem::Unseen,
            "DELETED" => StatusItem::Deleted,
            "SIZE" => StatusItem::Size,
            "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
            "APPENDLIMIT" => StatusItem::AppendLimit,
            "MAILBOXID" => StatusItem::MailboxId,
            "DELETED-STORAGE" => StatusItem::DeletedStorage,
            _ => return c.fail("unknown STATUS item"),
        })
    })
}

pub(super) fn status(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let mailbox = mailbox(c)?;
    c.sp()?;
    let items = status_items(c)?;
    Ok(CommandBody::Status { mailbox, items })
}

/// `append = "APPEND" SP mailbox 1*append-message` (RFC 3502 §6),
/// `append-message = SP [flag-list SP] [date-time SP] (literal / literal8)`.
/// Error text for a MULTIAPPEND over `Limits::max_append_messages` (RFC 9051 §7.1 `LIMIT`).
pub(crate) const TOO_MANY_MESSAGES: &str = "[LIMIT] too many messages in one APPEND";

pub(super) fn append(c: &mut Cursor<'_>) -> PResult<CommandBody> {
    c.sp()?;
    let mailbox = mailbox(c)?;
    let mut messages = Vec::new();
    loop {
        // RFC 3502 sets no bound on the messages of one MULTIAPPEND; each is stored before the
        // one metadata append, so the count bounds what one command makes the server hold.
        if messages.len() >= c.max_append_messages {
            return c.fail(TOO_MANY_MESSAGES);
        }
        messages.push(append_message(c)?);
        if c.at_end() {
            return Ok(CommandBody::Append { mailbox, messages });
        }
    }
}

/// One `append-message = SP [flag-list SP] [date-time SP] (literal / literal8)`: the shape APPEND
/// (RFC 3502 §6) and REPLACE (RFC 8508 §6) share. Its literal may be streamed by the receiver.
pub(super) fn append_message(c: &mut Cursor<'_>) -> PResult<AppendMessage> {
    c.sp()?;
    let flags = if c.peek() == Some(b'(') {
        let f = c.flag_list()?;
        c.sp()?;
        f
    } else {
        Vec::new()
    };
    let internal_date = if c.peek() == Some(b'"') {
        let d = c.date_time()?;
        c.sp()?;
        Some(d)
    } else {
        None
    };
    if c.eat_keyword("CATENATE") {
        c.sp()?;
        return Ok(AppendMessage {
            flags,
            internal_date,
            message: super::catenate::catenate(c)?,
            binary: false,
        });
    }
    let (message, binary) = c.literal(true).map_err(|mut e| {
        // Tells the receiver that this literal may be streamed rather than buffered.
        e.pending_message = e.incomplete;
        e
    })?;
    Ok(AppendMessage {
        flags,
        internal_date,
        message,
        binary,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::command::*;
    use bytes::Bytes;

    fn v(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    fn set(ranges: &[(u32, u32)]) -> SequenceSet {
        SequenceSet::Ranges(
            ranges
                .iter()
                .map(|&(a, b)| (SeqBound::Number(a), SeqBound::Number(b)))
                .collect(),
        )
    }

    #[test]
    fn select_examine() {
        let table: Vec<(&str, CommandBody)> = vec![
            (
                "a SELECT INBOX",
                CommandBody::Select {
                    mailbox: v("INBOX"),
                    params: SelectParams::default(),
                },
            ),
            (
                "a examine \"Sent Items\"",
                CommandBody::Examine {
                    mailbox: v("Sent Items"),
                    params: SelectParams::default(),
                },
            ),
            (
                "a SELECT INBOX (CONDSTORE)",
                CommandBody::Select {
                    mailbox: v("INBOX"),
                    params: SelectParams {
                        condstore: true,
                        qresync: None,
                    },
                },
            ),
            (
                "a SELECT INBOX (QRESYNC (67890007 20050715194045000))",
                CommandBody::Select {
                    mailbox: v("INBOX"),
                    params: SelectParams {
                        condstore: false,
                        qresync: Some(QresyncParams {
                            uid_validity: 67_890_007,
                            modseq: 20_050_715_194_045_000,
                            known_uids: None,
                            seq_match: None,
                        }),
                    },
                },
            ),
            (
                "a SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541))",
                CommandBody::Select {
                    mailbox: v("INBOX"),
                    params: SelectParams {
                        condstore: false,
                        qresync: Some(QresyncParams {
                            uid_validity: 67_890_007,
                            modseq: 90_060_115_194_045_000,
                            known_uids: Some(set(&[(41, 211), (214, 541)])),
                            seq_match: None,
                        }),
                    },
                },
            ),
            (
                "B202 EXAMINE INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 15000,22500,27000,29970,29973,29976:29979)))",
                CommandBody::Examine {
                    mailbox: v("INBOX"),
                    params: SelectParams {
                        condstore: false,
                        qresync: Some(QresyncParams {
                            uid_validity: 67_890_007,
                            modseq: 90_060_115_194_045_000,
                            known_uids: Some(set(&[(1, 29997)])),
                            seq_match: Some((
                                set(&[(5000, 5000), (7500, 7500), (9000, 9000), (9990, 9999)]),
                                set(&[
                                    (15000, 15000),
                                    (22500, 22500),
                                    (27000, 27000),
                                    (29970, 29970),
                                    (29973, 29973),
                                    (29976, 29979),
                                ]),
                            )),
                        }),
                    },
                },
            ),
            (
                "a SELECT x (QRESYNC (1 2 (1 5)) CONDSTORE)",
                CommandBody::Select {
                    mailbox: v("x"),
                    params: SelectParams {
                        condstore: true,
                        qresync: Some(QresyncParams {
                            uid_validity: 1,
                            modseq: 2,
                            known_uids: None,
                            seq_match: Some((set(&[(1, 1)]), set(&[(5, 5)]))),
                        }),
                    },
                },
            ),
        ];
        for (line, want) in table {
            assert_eq!(body(line), want, "{line}");
        }
        for bad in [
            "a SELECT",
            "a SELECT INBOX (FOO)",
            "a SELECT INBOX (QRESYNC)",
            "a SELECT INBOX (QRESYNC (0 1))",
            "a SELECT INBOX (QRESYNC (1))",
            "a SELECT INBOX (QRESYNC (1 2 3 4))",
            "a SELECT INBOX CONDSTORE",
        ] {
            parse_err(bad);
        }
    }

    #[test]
    fn create_delete_rename_subscribe() {
        let table: Vec<(&str, CommandBody)> = vec![
            (
                "a CREATE foo/bar",
                CommandBody::Create {
                    mailbox: v("foo/bar"),
                    special_use: vec![],
                },
            ),
            (
                "a CREATE MySpecial (USE (\\Drafts \\Sent))",
                CommandBody::Create {
                    mailbox: v("MySpecial"),
                    special_use: vec!["\\Drafts".into(), "\\Sent".into()],
                },
            ),
            ("a DELETE \"\"", CommandBody::Delete { mailbox: v("") }),
            (
                "a RENAME old \"new one\"",
                CommandBody::Rename {
                    from: v("old"),
                    to: v("new one"),
                },
            ),
            (
                "a SUBSCRIBE &AOk-t&AOk-",
                CommandBody::Subscribe {
                    mailbox: v("&AOk-t&AOk-"),
                },
            ),
            (
                "a unsubscribe x]y",
                CommandBody::Unsubscribe { mailbox: v("x]y") },
            ),
        ];
        for (line, want) in table {
            assert_eq!(body(line), want, "{line}");
        }
        for bad in [
            "a CREATE",
            "a CREATE x (USE ())",
            "a CREATE x (FOO (\\Sent))",
            "a CREATE x (USE (Sent))",
            "a DELETE a b",
            "a RENAME a",
            "a SUBSCRIBE a%",
        ] {
            parse_err(bad);
        }
    }

    #[test]
    fn list_lsub() {
        use ListReturnOption as R;
        use ListSelectOption as S;
        let table: Vec<(&str, CommandBody)> = vec![
            (
                "a LIST \"\" *",
                CommandBody::List {
                    reference: v(""),
                    patterns: vec![v("*")],
                    selection: vec![],
                    returns: vec![],
                },
            ),
            (
                "a LIST ~/Mail/ %]x",
                CommandBody::List {
                    reference: v("~/Mail/"),
                    patterns: vec![v("%]x")],
                    selection: vec![],
                    returns: vec![],
                },
            ),
            (
                "a LIST (SUBSCRIBED REMOTE RECURSIVEMATCH SPECIAL-USE) \"\" (pat1 \"pat 2\") RETURN (SUBSCRIBED CHILDREN SPECIAL-USE STATUS (MESSAGES UNSEEN))",
                CommandBody::List {
                    reference: v(""),
                    patterns: vec![v("pat1"), v("pat 2")],
                    selection: vec![S::Subscribed, S::Remote, S::RecursiveMatch, S::SpecialUse],
                    returns: vec![
                        R::Subscribed,
                        R::Children,
                        R::SpecialUse,
                        R::Status(vec![StatusItem::Messages, StatusItem::Unseen]),
                    ],
                },
            ),
            (
                "a list () \"\" % return ()",
                CommandBody::List {
                    reference: v(""),
                    patterns: vec![v("%")],
                    selection: vec![],
                    returns: vec![],
                },
            ),
            (
                "a LSUB \"#news.\" comp.mail.*",
                CommandBody::Lsub {
                    reference: v("#news."),
                    pattern: v("comp.mail.*"),
                },
            ),
        ];
        for (line, want) in table {
            assert_eq!(body(line), want, "{line}");
        }
        for bad in [
            "a LIST",
            "a LIST \"\"",
            "a LIST (FOO) \"\" *",
            "a LIST (RECURSIVEMATCH) \"\" *",
            "a LIST (REMOTE RECURSIVEMATCH) \"\" *",
            "a LIST \"\" () ",
            "a LIST \"\" ()",
            "a LIST \"\" * RETURN (FOO)",
            "a LIST \"\" * (CHILDREN)",
            "a LIST \"\" * RETURN (STATUS ())",
            "a LSUB \"\"",
        ] {
            parse_err(bad);
        }
    }

    #[test]
    fn status() {
        use StatusItem::*;
        assert_eq!(
            body(
                "a STATUS blurdybloop (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ APPENDLIMIT mailboxid)"
            ),
            CommandBody::Status {
                mailbox: v("blurdybloop"),
                items: vec![
                    Messages,
                    Recent,
                    UidNext,
                    UidValidity,
                    Unseen,
                    Deleted,
                    Size,
                    HighestModSeq,
                    AppendLimit,
                    MailboxId
                ],
            }
        );
        for bad in [
            "a STATUS x",
            "a STATUS x ()",
            "a STATUS x (FOO)",
            "a STATUS x MESSAGES",
        ] {
            parse_err(bad);
        }
    }

    #[test]
    fn append() {
        let date = DateTime {
            unix_seconds: 1_720_096_496,
            tz_offset_minutes: 120,
        };
        let table: Vec<(&[u8], CommandBody)> = vec![
            (
                b"a APPEND saved-messages {5}\r\nhello\r\n",
                CommandBody::Append {
                    mailbox: v("saved-messages"),
                    messages: vec![AppendMessage {
                        flags: vec![],
                        internal_date: None,
                        message: AppendBody::Inline(Bytes::from_static(b"hello")),
                        binary: false,
                    }],
                },
            ),
            (
                b"a APPEND INBOX (\\Seen $Forwarded) \"04-Jul-2024 14:34:56 +0200\" {3+}\r\nabc\r\n",
                CommandBody::Append {
                    mailbox: v("INBOX"),
                    messages: vec![AppendMessage {
                        flags: vec!["\\Seen".into(), "$Forwarded".into()],
                        internal_date: Some(date),
                        message: AppendBody::Inline(Bytes::from_static(b"abc")),
                        binary: false,
                    }],
                },
            ),
            (
                b"a APPEND INBOX () ~{3}\r\n\0\r\n\r\n",
                CommandBody::Append {
                    mailbox: v("INBOX"),
                    messages: vec![AppendMessage {
                        flags: vec![],
                        internal_date: None,
                        message: AppendBody::Inline(Bytes::from_static(b"\0\r\n")),
                        binary: true,
                    }],
                },
            ),
            (
                b"A003 APPEND saved-messages (\\Seen) {3}\r\none \"04-Jul-2024 14:34:56 +0200\" ~{3+}\r\ntwo {0}\r\n\r\n",
                CommandBody::Append {
                    mailbox: v("saved-messages"),
                    messages: vec![
                        AppendMessage {
                            flags: vec!["\\Seen".into()],
                            internal_date: None,
                            message: AppendBody::Inline(Bytes::from_static(b"one")),
                            binary: false,
                        },
                        AppendMessage {
                            flags: vec![],
                            internal_date: Some(date),
                            message: AppendBody::Inline(Bytes::from_static(b"two")),
                            binary: true,
                        },
                        AppendMessage {
                            flags: vec![],
                            internal_date: None,
                            message: AppendBody::Inline(Bytes::new()),
                            binary: false,
                        },
                    ],
                },
            ),
        ];
        for (input, want) in table {
            assert_eq!(
                wire_body(input),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        for bad in [
            "a APPEND INBOX",
            "a APPEND INBOX \"text\"",
            "a APPEND INBOX (\\Seen)",
            "a APPEND INBOX (\\Seen) \"04-Jul-2024 14:34:56 +0200\"",
        ] {
            parse_err(bad);
        }
        // Trailing junk after the literal, or a missing SP before the next message.
        for bad in [
            &b"a APPEND INBOX {1}\r\nx x\r\n"[..],
            b"a APPEND INBOX {1}\r\nx{1}\r\ny\r\n",
            b"a APPEND INBOX \"x\" {1}\r\ny\r\n",
        ] {
            let out = wire(bad);
            assert!(
                matches!(
                    out.last(),
                    Some(crate::Received::Error { fatal: false, .. })
                ),
                "{out:?}"
            );
        }
    }
}
