//! Per-mailbox and per-account limits both backends enforce, atomically with the write they
//! refuse (`MetaError::Limit`, IMAP `NO [LIMIT]`, RFC 5530 §3).
//!
//! They bound what one client can make the store hold and what one command makes it do:
//! without them `STORE 1:* +FLAGS (k0 … k11999)` keeps a Redis script (which cannot be killed
//! once it has written) or the redb write transaction busy for every other account.

use serde::{Deserialize, Serialize};
use yubin_meta_api::{MetaError, MetaResult, is_system_flag};

/// The limits of one store; `Default` are the production defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreLimits {
    /// Most keywords (flags other than system flags) one message may carry.
    #[serde(default = "default_keywords_per_message")]
    pub max_keywords_per_message: u32,
    /// Most distinct keywords one mailbox may know. A mailbox remembers every keyword it has
    /// seen (the FLAGS response lists them), so this also bounds FLAGS and PERMANENTFLAGS.
    /// Cyrus has a fixed 128 user flags per mailbox; this is a little more generous.
    #[serde(default = "default_keywords_per_mailbox")]
    pub max_keywords_per_mailbox: u32,
    /// Longest keyword in bytes (Dovecot's `mail_max_keyword_length` is 50).
    #[serde(default = "default_keyword_bytes")]
    pub max_keyword_bytes: u32,
    /// Most mailboxes one account may have (INBOX included); CREATE and RENAME that would
    /// exceed it (superiors they create count too) are refused.
    #[serde(default = "default_mailboxes")]
    pub max_mailboxes: u32,
    /// Most bytes of METADATA (RFC 5464) one account may hold, entry names and values of the
    /// server and of every mailbox together. The front-end's per-mailbox entry count and value
    /// size alone would let an account with 10 000 mailboxes keep gigabytes in Redis RAM; a
    /// SETMETADATA that would grow past it gets `[METADATA TOOMANY]` (RFC 5464 §4.3).
    #[serde(default = "default_metadata_bytes")]
    pub max_metadata_bytes_per_account: u64,
    /// Most messages one Redis script call works on: a STORE over more is done in batches of
    /// this many, so that no call holds Redis (single-threaded, and unable to stop a script
    /// that has written) for long whatever the mailbox size. Each batch is one more round
    /// trip, and with `appendfsync always` one more fsync.
    #[serde(default = "default_redis_batch_messages")]
    pub redis_batch_messages: u32,
    /// Most entries a mailbox's expunge log (the UIDs QRESYNC reports as VANISHED, RFC 7162
    /// §3.2.10) keeps; older ones are dropped, and a client coming back from before them gets
    /// every UID not in the mailbox instead (§3.2.5.2 allows it). Without a cap an
    /// expunge-heavy mailbox grows the log for ever.
    #[serde(default = "default_expunge_log")]
    pub max_expunge_log: u32,
}

fn default_keywords_per_message() -> u32 {
    64
}
fn default_keywords_per_mailbox() -> u32 {
    yubin_meta_api::DEFAULT_MAX_KEYWORDS_PER_MAILBOX
}
fn default_keyword_bytes() -> u32 {
    128
}
fn default_mailboxes() -> u32 {
    10_000
}
fn default_redis_batch_messages() -> u32 {
    // About a millisecond of Redis time for a flag change with the most keywords a message
    // may carry; a STORE over 100 000 messages is 200 calls.
    500
}
fn default_metadata_bytes() -> u64 {
    // Mailbox comments and a client's settings take a few KiB; 1 MiB leaves room for a
    // thousand of them and bounds the worst account to 1 MiB of RAM.
    1024 * 1024
}
fn default_expunge_log() -> u32 {
    100_000
}

impl Default for StoreLimits {
    fn default() -> StoreLimits {
        StoreLimits {
            max_keywords_per_message: default_keywords_per_message(),
            max_keywords_per_mailbox: default_keywords_per_mailbox(),
            max_keyword_bytes: default_keyword_bytes(),
            max_mailboxes: default_mailboxes(),
            max_metadata_bytes_per_account: default_metadata_bytes(),
            redis_batch_messages: default_redis_batch_messages(),
            max_expunge_log: default_expunge_log(),
        }
    }
}

impl StoreLimits {
    /// `Err` with the reason when a limit is unusable.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_keywords_per_message == 0
            || self.max_keywords_per_mailbox < self.max_keywords_per_message
        {
            return Err(
                "max_keywords_per_message must be positive and max_keywords_per_mailbox at least \
                 as large"
                    .into(),
            );
        }
        if self.max_keyword_bytes < 16 {
            return Err("max_keyword_bytes must be at least 16".into());
        }
        // INBOX plus a few special-use mailboxes (RFC 6154) must always fit.
        if self.max_mailboxes < 16 {
            return Err("max_mailboxes must be at least 16".into());
        }
        if !(16..=100_000).contains(&self.redis_batch_messages) {
            return Err("redis_batch_messages must be between 16 and 100000".into());
        }
        // One entry of the largest size a front-end accepts by default must fit.
        if self.max_metadata_bytes_per_account < 64 * 1024 + 1024 {
            return Err("max_metadata_bytes_per_account must be at least 66560 (65 KiB)".into());
        }
        if self.max_expunge_log < 16 {
            return Err("max_expunge_log must be at least 16".into());
        }
        Ok(())
    }

    /// Refuses a flag list a STORE or APPEND hands to the store before any work is done: too
    /// many keywords for one message, or a keyword that is too long. `flags` is normalized
    /// (de-duplicated); a STORE `-FLAGS` is not checked, as it can only shrink a message.
    pub(crate) fn check_given(&self, flags: &[String]) -> MetaResult<()> {
        let mut keywords = 0usize;
        for f in flags.iter().filter(|f| !is_system_flag(f)) {
            if f.len() > self.max_keyword_bytes as usize {
                return Err(MetaError::Limit(format!(
                    "keyword longer than {} bytes",
                    self.max_keyword_bytes
                )));
            }
            keywords += 1;
        }
        if keywords > self.max_keywords_per_message as usize {
            return Err(self.too_many_per_message());
        }
        Ok(())
    }

    pub(crate) fn too_many_per_message(&self) -> MetaError {
        MetaError::Limit(format!(
            "more than {} keywords on one message",
            self.max_keywords_per_message
        ))
    }

    pub(crate) fn too_many_per_mailbox(&self) -> MetaError {
        MetaError::Limit(format!(
            "more than {} keywords in one mailbox",
            self.max_keywords_per_mailbox
        ))
    }

    pub(crate) fn too_many_mailboxes(&self) -> MetaError {
        MetaError::Limit(format!(
            "more than {} mailboxes in one account",
            self.max_mailboxes
        ))
    }

    pub(crate) fn too_much_metadata(&self) -> MetaError {
        // OverQuota: the front-end answers every growth refused by set_metadata with
        // [METADATA TOOMANY] (RFC 5464 §4.3).
        MetaError::OverQuota(format!(
            "more than {} bytes of metadata in one account",
            self.max_metadata_bytes_per_account
        ))
    }

    /// Whether a mailbox knowing `keywords` distinct keywords can take no new one.
    pub(crate) fn keywords_full(&self, keywords: usize) -> bool {
        keywords >= self.max_keywords_per_mailbox as usize
    }
}
