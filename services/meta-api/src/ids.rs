use serde::{Deserialize, Serialize};
use std::fmt;

/// An account's internal id. It comes from the authenticated session, never from client input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UserId(pub u64);

/// A mailbox's internal id; stable across RENAME, new on every CREATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MailboxId(pub u64);

/// A message UID (RFC 3501 §2.3.1.1): strictly ascending per mailbox, never reused under one
/// UIDVALIDITY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Uid(pub u32);

/// A modification sequence (RFC 7162 §3): strictly ascending per mailbox.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub struct ModSeq(pub u64);

/// UIDVALIDITY (RFC 3501 §2.3.1.1); changes only when a mailbox is really recreated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UidValidity(pub u32);

/// Where a message body lives in the blob store: `u/<user-id>/<sha256-hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlobKey(pub String);

impl BlobKey {
    /// The content-addressed key of a body owned by `user` whose SHA-256 is `sha256_hex`.
    pub fn for_content(user: UserId, sha256_hex: &str) -> BlobKey {
        BlobKey(format!("u/{}/{}", user.0, sha256_hex))
    }

    /// The prefix under which every blob of `user` lives.
    pub fn user_prefix(user: UserId) -> String {
        format!("u/{}/", user.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! display_inner {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}
display_inner!(UserId, MailboxId, Uid, ModSeq, UidValidity, BlobKey);
