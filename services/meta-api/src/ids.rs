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

    /// Length of a SHA-256 digest in hex.
    const DIGEST_HEX_LEN: usize = 64;

    /// Whether this is a key [`BlobKey::for_content`] makes for `user`: exactly
    /// `u/<user-id>/<64 lowercase hex digits>`. Meta accepts no other key in a message, so a
    /// caller cannot point a message at another account's body (or, with `..` or a second `/`,
    /// at a path outside the account's prefix) and then read it through FETCH.
    pub fn is_owned_by(&self, user: UserId) -> bool {
        let Some(digest) = self.0.strip_prefix(&BlobKey::user_prefix(user)) else {
            return false;
        };
        digest.len() == Self::DIGEST_HEX_LEN
            && digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_content_keys_of_the_user_are_owned_by_them() {
        let digest = "0123456789abcdef".repeat(4);
        assert!(BlobKey::for_content(UserId(7), &digest).is_owned_by(UserId(7)));
        for foreign in [
            BlobKey::for_content(UserId(8), &digest),
            BlobKey::for_content(UserId(77), &digest),
            BlobKey(format!("u/07/{digest}")),
            BlobKey(format!("u/7/../8/{}", &digest[..58])),
            BlobKey(format!("u/7/{}", digest.to_uppercase())),
            BlobKey(format!("u/7/{digest}0")),
            BlobKey(format!("u/7/{}", &digest[..63])),
            BlobKey(format!("u/7/x/{}", &digest[..62])),
            BlobKey("u/7/".into()),
            BlobKey(String::new()),
        ] {
            assert!(!foreign.is_owned_by(UserId(7)), "{foreign}");
        }
    }
}
