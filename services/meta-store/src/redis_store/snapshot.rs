//! The reply of the `select` script as a [`MailboxSnapshot`].

use redis::Value;
use yubin_meta_api::{MailboxSnapshot, MetaResult, ModSeq, SnapshotFlags, Uid};

use super::{bad_reply, next, parse_info, parse_uids, split_flags, v_array, v_num, v_string};
use crate::StoreLimits;

/// The largest mailbox whose SELECT snapshot carries every message's flags. Reading them costs
/// the script about 1 µs of Redis time per message (3.5 ms for 3 000), and one script holds its
/// shard: above this, the snapshot carries none and the session reads flags when a command
/// needs them, as from a store that sends none.
pub(super) const SNAPSHOT_FLAGS_MAX_MESSAGES: usize = 20_000;

/// `{ info, uids, first unseen or false, keywords, flag lists, list per message, modseq per
/// message }` (see `lua/select.lua`); the last three empty above
/// [`SNAPSHOT_FLAGS_MAX_MESSAGES`].
pub(super) fn parse_snapshot(reply: Value, limits: &StoreLimits) -> MetaResult<MailboxSnapshot> {
    let mut it = v_array(reply)?.into_iter();
    let info = parse_info(next(&mut it)?)?;
    let uids = parse_uids(next(&mut it)?)?;
    let first_unseen = match next(&mut it)? {
        Value::Nil => None,
        v => Some(Uid(v_num(v)?)),
    };
    let mut keywords = v_array(next(&mut it)?)?
        .into_iter()
        .map(v_string)
        .collect::<MetaResult<Vec<_>>>()?;
    keywords.sort();
    // The lists are split exactly as `fetch` splits a message's flags, so both answer the same.
    let lists = v_array(next(&mut it)?)?
        .into_iter()
        .map(|l| Ok(split_flags(&v_string(l)?)))
        .collect::<MetaResult<Vec<_>>>()?;
    let list_of = v_array(next(&mut it)?)?
        .into_iter()
        .map(v_int)
        .collect::<MetaResult<Vec<u32>>>()?;
    let modseqs = v_array(next(&mut it)?)?
        .into_iter()
        .map(|v| v_int(v).map(ModSeq))
        .collect::<MetaResult<Vec<_>>>()?;
    let flags = SnapshotFlags {
        lists,
        list_of,
        modseqs,
    };
    let flags = if flags.list_of.is_empty() && flags.modseqs.is_empty() {
        // Not sent (a mailbox over SNAPSHOT_FLAGS_MAX_MESSAGES): the flags are unknown.
        SnapshotFlags::default()
    } else {
        flags
    };
    if !flags.list_of.is_empty() && !flags.covers(uids.len()) {
        return Err(bad_reply("snapshot flags not aligned with its UIDs"));
    }
    Ok(MailboxSnapshot {
        info,
        uids,
        first_unseen,
        keywords_full: limits.keywords_full(keywords.len()),
        keywords,
        flags,
    })
}

/// An integer reply element, read without going through its decimal text (a snapshot has two
/// per message).
fn v_int<T: TryFrom<i64>>(v: Value) -> MetaResult<T> {
    match v {
        Value::Int(i) => T::try_from(i).map_err(|_| bad_reply(&format!("{i} out of range"))),
        other => Err(bad_reply(&format!(
            "{other:?} where an integer was expected"
        ))),
    }
}
