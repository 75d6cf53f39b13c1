use crate::{BlobKey, MailboxId, ModSeq, Uid, UidValidity, UserId};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// INTERNALDATE (RFC 3501 §2.3.3): an instant plus the zone it was given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternalDate {
    /// Seconds since the Unix epoch, UTC.
    pub unix_seconds: i64,
    /// Offset of the zone the date was given in, in minutes east of UTC.
    pub tz_offset_minutes: i32,
}

/// The header fields and text SEARCH needs, extracted once at delivery so search never reads the
/// blob store. All strings are MIME-decoded to UTF-8.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchIndex {
    /// Every header field, name as written and decoded value, in message order.
    pub headers: Vec<(String, String)>,
    /// The `Date:` header as seconds since the epoch (UTC) and its zone offset in minutes, if it
    /// parses.
    pub sent_date: Option<InternalDate>,
    /// Decoded text of the text/* body parts (capped at delivery).
    pub body_text: String,
}

/// Which parts of the search index [`crate::MailStore::search_indexed`] returns: SORT and THREAD
/// (RFC 5256) need a few header fields and the sent date, PREVIEW (RFC 8970) the start of the
/// body text. Only what is asked for crosses the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexProjection {
    /// Header field names (matched case-insensitively) whose fields to return.
    pub headers: Vec<String>,
    /// At most this many characters (Unicode scalar values) of the body text; 0 for none.
    pub body_chars: u32,
}

impl SearchIndex {
    /// The parts of this index `projection` asks for: the named header fields in message order,
    /// the sent date, and the body text cut to `body_chars` characters.
    pub fn project(&self, projection: &IndexProjection) -> SearchIndex {
        let headers = self
            .headers
            .iter()
            .filter(|(name, _)| {
                projection
                    .headers
                    .iter()
                    .any(|wanted| wanted.eq_ignore_ascii_case(name))
            })
            .cloned()
            .collect();
        let body_text = match usize::try_from(projection.body_chars) {
            Ok(0) | Err(_) => String::new(),
            Ok(n) => match self.body_text.char_indices().nth(n) {
                Some((cut, _)) => self.body_text[..cut].to_string(),
                None => self.body_text.clone(),
            },
        };
        SearchIndex {
            headers,
            sent_date: self.sent_date,
            body_text,
        }
    }
}

/// A message matching a search, with the parts of its index that were asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedMessage {
    pub uid: Uid,
    /// RFC822.SIZE.
    pub size: u64,
    pub internal_date: InternalDate,
    /// The projected index (see [`SearchIndex::project`]); empty for a message stored without one.
    pub index: SearchIndex,
}

/// A message to be appended: the body is already durable in the blob store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub blob: BlobKey,
    /// RFC822.SIZE: the exact byte length of the stored body.
    pub size: u64,
    pub internal_date: InternalDate,
    /// Initial flags (canonical spelling, see [`canonical_flag`]); `\Recent` is never stored.
    pub flags: Vec<String>,
    /// The precomputed summary (ENVELOPE, BODYSTRUCTURE, part offsets), opaque to meta: produced
    /// and read by the `yubin-mime` crate.
    pub summary: Bytes,
    pub index: SearchIndex,
}

impl NewMessage {
    /// Refuses a message whose body key is not one of `user`'s content keys
    /// ([`BlobKey::is_owned_by`]): the user id comes from the authenticated session, the key
    /// from the caller, and only their agreement keeps one account from reading another's bodies.
    pub fn check_owner(&self, user: UserId) -> crate::MetaResult<()> {
        if self.blob.is_owned_by(user) {
            Ok(())
        } else {
            Err(crate::MetaError::Invalid(format!(
                "blob key {:?} is not a body of user {user} (expected {}<sha256-hex>)",
                self.blob.0,
                BlobKey::user_prefix(user)
            )))
        }
    }
}

/// One message as FETCH needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub uid: Uid,
    pub modseq: ModSeq,
    pub flags: Vec<String>,
    pub internal_date: InternalDate,
    pub size: u64,
    pub blob: BlobKey,
    /// Present only when asked for.
    pub summary: Option<Bytes>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    pub uid_validity: UidValidity,
    /// The UIDs given to the messages, in the order they were passed.
    pub uids: Vec<Uid>,
    pub mailbox: MailboxId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreResult {
    /// Messages whose flags changed (or, for a replace, were written), with their new state.
    pub updated: Vec<(Uid, ModSeq, Vec<String>)>,
    /// Messages not changed because their modseq was above UNCHANGEDSINCE (RFC 7162 §3.1.3).
    pub modified: Vec<Uid>,
    pub highest_modseq: ModSeq,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyResult {
    pub uid_validity: UidValidity,
    /// (source UID, destination UID) for every message copied, in ascending source order.
    pub mapping: Vec<(Uid, Uid)>,
    pub destination: MailboxId,
}

/// Everything that changed in a mailbox after a MODSEQ: the catch-up answer that makes
/// notifications mere hints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    pub highest_modseq: ModSeq,
    pub uid_next: Uid,
    pub exists: u32,
    /// Messages whose modseq is above the given one (new ones included), ascending by UID,
    /// without summaries.
    pub changed: Vec<MessageRecord>,
    /// UIDs expunged with a modseq above the given one, ascending.
    pub vanished: Vec<Uid>,
    /// The expunge log was trimmed past the given MODSEQ (`StoreLimits::max_expunge_log`):
    /// `vanished` may miss UIDs, and every UID below `uid_next` that is not in the mailbox may
    /// have been expunged since (RFC 7162 §3.2.5.2 lets the server report them all).
    pub log_trimmed: bool,
    /// The mailbox was deleted or recreated: the session must end its selection.
    pub mailbox_gone: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    Appended,
    Flags,
    Expunged,
    /// Created, deleted, renamed or subscription changed.
    MailboxList,
    /// The account was disabled or deleted, or its password changed (mailbox and modseq 0):
    /// every session of the account ends. The store publishes it in the same write as the
    /// account change, so no admin path can change an account without ending its sessions.
    AccountRevoked,
}

/// A hint that something changed; consumers call `changes_since` to learn what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEvent {
    pub user: UserId,
    pub mailbox: MailboxId,
    pub modseq: ModSeq,
    pub kind: ChangeKind,
    /// When the store published the hint, in microseconds since the Unix epoch by the store's
    /// clock (Redis `TIME` inside the writing script; the embedded store's clock); 0 for
    /// synthetic hints (resyncs). Only for the notification-lag metric: never for ordering.
    pub published_unix_micros: u64,
}

/// The current time in microseconds since the Unix epoch, as [`ChangeEvent`] carries it.
pub fn unix_micros_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

const SYSTEM_FLAGS: [&str; 6] = [
    "\\Seen",
    "\\Answered",
    "\\Flagged",
    "\\Deleted",
    "\\Draft",
    "\\Recent",
];

/// The canonical spelling of a flag: system flags are matched case-insensitively (RFC 3501 §2.3.2)
/// and written as the RFC writes them; keywords are kept as given.
pub fn canonical_flag(flag: &str) -> String {
    SYSTEM_FLAGS
        .iter()
        .find(|f| f.eq_ignore_ascii_case(flag))
        .map(|f| (*f).to_string())
        .unwrap_or_else(|| flag.to_string())
}

/// Whether `flag` is one of RFC 3501's system flags (in canonical spelling).
pub fn is_system_flag(flag: &str) -> bool {
    SYSTEM_FLAGS.contains(&flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_keeps_only_what_is_asked_for() {
        let ix = SearchIndex {
            headers: vec![
                ("Subject".into(), "hi".into()),
                ("X-Other".into(), "no".into()),
                ("from".into(), "a@b".into()),
            ],
            sent_date: Some(InternalDate {
                unix_seconds: 5,
                tz_offset_minutes: 0,
            }),
            body_text: "Grüße, world".into(),
        };
        let p = ix.project(&IndexProjection {
            headers: vec!["FROM".into(), "subject".into()],
            body_chars: 5,
        });
        assert_eq!(
            p.headers,
            vec![
                ("Subject".to_string(), "hi".to_string()),
                ("from".to_string(), "a@b".to_string())
            ]
        );
        assert_eq!(p.body_text, "Grüße");
        assert_eq!(p.sent_date, ix.sent_date);
        let none = ix.project(&IndexProjection::default());
        assert!(none.headers.is_empty() && none.body_text.is_empty());
        let all_body = ix.project(&IndexProjection {
            headers: vec![],
            body_chars: 1000,
        });
        assert_eq!(all_body.body_text, ix.body_text);
    }
}
