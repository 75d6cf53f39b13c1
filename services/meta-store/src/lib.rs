//! Metadata store backends for Yubin.
//!
//! Two implementations of [`yubin_meta_api::MailStore`] and [`yubin_meta_api::AccountStore`]:
//!
//! - [`EmbeddedStore`]: a redb database file for `yubin dev` (one process). Every operation acts
//!   as one redb transaction (concurrent writes share commits: [`GroupCommit`]); change hints
//!   travel on an in-process broadcast channel.
//! - [`RedisStore`]: the distributed backend. Every write is one Lua script confined to the
//!   user's hash slot; change hints travel over Redis pub/sub. See [`redis_store`] for the key
//!   layout.
//!
//! [`conformance`] is the behaviour both must show (and any other `MailStore`, e.g. a gRPC client,
//! can be run against it); [`search`] is the SEARCH evaluator both backends share. With the
//! `testing` feature, `testing::RedisServer` spawns a real `redis-server` for tests.

mod accounts;
mod flags;
mod limits;
mod metadata;
mod names;

pub mod conformance;
pub mod embedded;
pub mod fulltext;
pub mod redis_store;
pub mod search;
#[cfg(feature = "testing")]
pub mod testing;

pub use embedded::{EmbeddedStore, GroupCommit};
pub use limits::StoreLimits;
pub use redis_store::{Durability, RedisStore, RollbackSettings};

use std::time::{SystemTime, UNIX_EPOCH};
use yubin_meta_api::UidValidity;

/// The UIDVALIDITY for a mailbox created now, given the last one handed out to the same user.
///
/// RFC 3501 §2.3.1.1 requires that a mailbox recreated under an old name gets a UIDVALIDITY
/// different from any earlier one; taking the larger of "seconds now" and "previous + 1" per user
/// makes the values strictly ascending per user, even with a clock that steps back.
pub(crate) fn next_uid_validity(last: u32) -> UidValidity {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // UIDVALIDITY is a non-zero 32-bit number (RFC 3501 §9, nz-number).
    let now = u32::try_from(now).unwrap_or(u32::MAX - 1).max(1);
    UidValidity(now.max(last.saturating_add(1)))
}
