//! Mailboxes on the wire: a mailbox's status and the SELECT snapshot.

use super::{
    WireError, required, special_use_from_pb, special_use_to_pb, uids_from_pb, uids_to_pb,
};
use crate::pb;
use yubin_meta_api::{
    MailboxId, MailboxInfo, MailboxSnapshot, ModSeq, SnapshotFlags, Uid, UidValidity,
};

impl From<MailboxInfo> for pb::MailboxInfo {
    fn from(m: MailboxInfo) -> pb::MailboxInfo {
        pb::MailboxInfo {
            id: m.id.0,
            name: m.name,
            uid_validity: m.uid_validity.0,
            uid_next: m.uid_next.0,
            highest_modseq: m.highest_modseq.0,
            exists: m.exists,
            unseen: m.unseen,
            deleted: m.deleted,
            size: m.size,
            special_use: special_use_to_pb(m.special_use),
            recent: m.recent,
        }
    }
}

impl TryFrom<pb::MailboxInfo> for MailboxInfo {
    type Error = WireError;

    fn try_from(m: pb::MailboxInfo) -> Result<MailboxInfo, WireError> {
        Ok(MailboxInfo {
            id: MailboxId(m.id),
            name: m.name,
            uid_validity: UidValidity(m.uid_validity),
            uid_next: Uid(m.uid_next),
            highest_modseq: ModSeq(m.highest_modseq),
            exists: m.exists,
            unseen: m.unseen,
            deleted: m.deleted,
            size: m.size,
            special_use: special_use_from_pb(m.special_use)?,
            recent: m.recent,
        })
    }
}

/// A required mailbox field of a response.
pub fn mailbox_info_from_pb(m: Option<pb::MailboxInfo>) -> Result<MailboxInfo, WireError> {
    MailboxInfo::try_from(required(m, "mailbox")?)
}

impl From<MailboxSnapshot> for pb::MailboxSnapshot {
    fn from(s: MailboxSnapshot) -> pb::MailboxSnapshot {
        pb::MailboxSnapshot {
            info: Some(s.info.into()),
            uids: uids_to_pb(&s.uids),
            first_unseen: s.first_unseen.map(|u| u.0),
            keywords: s.keywords,
            keywords_full: s.keywords_full,
            flag_lists: s
                .flags
                .lists
                .into_iter()
                .map(|flags| pb::FlagList { flags })
                .collect(),
            flag_list_of: s.flags.list_of,
            modseqs: s.flags.modseqs.into_iter().map(|m| m.0).collect(),
        }
    }
}

impl TryFrom<pb::MailboxSnapshot> for MailboxSnapshot {
    type Error = WireError;

    fn try_from(s: pb::MailboxSnapshot) -> Result<MailboxSnapshot, WireError> {
        Ok(MailboxSnapshot {
            info: MailboxInfo::try_from(required(s.info, "snapshot info")?)?,
            uids: uids_from_pb(s.uids),
            first_unseen: s.first_unseen.map(Uid),
            keywords: s.keywords,
            keywords_full: s.keywords_full,
            // Taken as sent: a server from before these fields sends none, and the session
            // checks `SnapshotFlags::covers` before trusting them.
            flags: SnapshotFlags {
                lists: s.flag_lists.into_iter().map(|l| l.flags).collect(),
                list_of: s.flag_list_of,
                modseqs: s.modseqs.into_iter().map(ModSeq).collect(),
            },
        })
    }
}
