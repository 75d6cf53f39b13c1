use crate::{MailboxId, ModSeq, Uid, UidValidity};
use serde::{Deserialize, Serialize};

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
