use crate::{MailboxId, ModSeq, Uid, UidValidity};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// SPECIAL-USE attributes (RFC 6154 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SpecialUse {
    All,
    Archive,
    Drafts,
    Flagged,
    Junk,
    Sent,
    Trash,
}

impl SpecialUse {
    /// The attribute as written in LIST responses.
    pub fn as_imap(self) -> &'static str {
        match self {
            SpecialUse::All => "\\All",
            SpecialUse::Archive => "\\Archive",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Flagged => "\\Flagged",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Trash => "\\Trash",
        }
    }

    /// Parses an attribute, case-insensitively, with its backslash.
    pub fn from_imap(s: &str) -> Option<SpecialUse> {
        let all = [
            SpecialUse::All,
            SpecialUse::Archive,
            SpecialUse::Drafts,
            SpecialUse::Flagged,
            SpecialUse::Junk,
            SpecialUse::Sent,
            SpecialUse::Trash,
        ];
        all.into_iter()
            .find(|u| u.as_imap().eq_ignore_ascii_case(s))
    }
}

/// What STATUS, LIST-STATUS and the mailbox list need to know of one mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxInfo {
    pub id: MailboxId,
    /// The full name, UTF-8, `/`-delimited; `INBOX` is always spelled in upper case.
    pub name: String,
    pub uid_validity: UidValidity,
    pub uid_next: Uid,
    pub highest_modseq: ModSeq,
    /// Number of messages.
    pub exists: u32,
    /// Number of messages without `\Seen`.
    pub unseen: u32,
    /// Number of messages with `\Deleted`.
    pub deleted: u32,
    /// Sum of RFC822.SIZE of all messages (STATUS SIZE, RFC 8438).
    pub size: u64,
    pub special_use: Option<SpecialUse>,
    /// Number of messages no session has claimed as `\Recent` yet
    /// ([`crate::MailStore::claim_recent`]): what STATUS RECENT reports (RFC 3501 §6.3.10).
    #[serde(default)]
    pub recent: u32,
}

/// The result of SELECT/EXAMINE: everything the session needs to build its sequence-number view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxSnapshot {
    pub info: MailboxInfo,
    /// Every UID in ascending order; sequence number n is `uids[n - 1]`.
    pub uids: Vec<Uid>,
    /// UID of the first message without `\Seen`, if any (for rev1's `[UNSEEN n]`).
    pub first_unseen: Option<Uid>,
    /// Keywords in use in this mailbox (for the FLAGS response).
    pub keywords: Vec<String>,
    /// The mailbox holds as many distinct keywords as the store allows: a new one would be
    /// refused, so PERMANENTFLAGS leaves out `\*` (RFC 9051 §7.1).
    #[serde(default)]
    pub keywords_full: bool,
    /// Each message's flags and MODSEQ as of `info.highest_modseq`, aligned with `uids`, so that
    /// a session can answer flag reads without reading every message again. Empty when the store
    /// did not send them (a meta service from before they existed): the flags are then unknown.
    #[serde(default)]
    pub flags: SnapshotFlags,
}

/// The flags and MODSEQ of every message of a [`MailboxSnapshot`], position by position.
///
/// Messages share few distinct flag lists (a handful of system-flag combinations, some
/// keywords), so each distinct list is sent once and every message names its list by index:
/// a snapshot of 3 000 messages carries a few lists and 3 000 small numbers rather than 3 000
/// lists. Each list holds the flags exactly as the store's `fetch` returns them, order and
/// spelling included (the session answers FETCH from them byte for byte).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFlags {
    /// The distinct flag lists.
    pub lists: Vec<Vec<String>>,
    /// Per message: the index in `lists` of its flags.
    pub list_of: Vec<u32>,
    /// Per message: its MODSEQ (RFC 7162 §3.1.3).
    pub modseqs: Vec<ModSeq>,
}

impl SnapshotFlags {
    /// Whether these are the flags of exactly `messages` messages: one list index and one MODSEQ
    /// per message, every index naming a list. Anything else (nothing sent, a malformed peer) is
    /// to be treated as flags unknown.
    pub fn covers(&self, messages: usize) -> bool {
        self.list_of.len() == messages
            && self.modseqs.len() == messages
            && self
                .list_of
                .iter()
                .all(|&l| (l as usize) < self.lists.len())
    }

    /// The MODSEQ and flags of message `i` (from 0).
    pub fn get(&self, i: usize) -> Option<(ModSeq, &[String])> {
        let list = self.lists.get(*self.list_of.get(i)? as usize)?;
        Some((*self.modseqs.get(i)?, list))
    }
}

/// Builds [`SnapshotFlags`] message by message, sending each distinct list once.
#[derive(Debug, Default)]
pub struct SnapshotFlagsBuilder {
    flags: SnapshotFlags,
    ids: HashMap<Vec<String>, u32>,
}

impl SnapshotFlagsBuilder {
    /// Appends the next message's state.
    pub fn push(&mut self, modseq: ModSeq, flags: &[String]) {
        let id = match self.ids.get(flags) {
            Some(&id) => id,
            None => {
                // More distinct lists than u32 ids would need more messages than UIDs exist.
                let id = u32::try_from(self.flags.lists.len()).unwrap_or(u32::MAX);
                self.flags.lists.push(flags.to_vec());
                self.ids.insert(flags.to_vec(), id);
                id
            }
        };
        self.flags.list_of.push(id);
        self.flags.modseqs.push(modseq);
    }

    pub fn finish(self) -> SnapshotFlags {
        self.flags
    }
}

/// Whether `name` may be created: non-empty, no empty hierarchy levels, no control characters, no
/// wildcards (RFC 3501 §5.1).
pub fn is_valid_mailbox_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 1024
        && !name.starts_with('/')
        && !name.ends_with('/')
        && !name.contains("//")
        && !name.chars().any(|c| c.is_control() || c == '*' || c == '%')
}
