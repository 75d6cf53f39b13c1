//! The metadata contract every Yubin role codes against.
//!
//! The gRPC proto (`proto/yubin/meta/v1/meta.proto`) is a wire boundary; on each side of it the code
//! speaks in these domain types. [`MailStore`] is implemented by the Redis and embedded backends, by
//! the gRPC client the front-ends use, and is what the IMAP front-end and LMTP role depend on.

mod error;
mod ids;
mod mailbox;
mod message;
mod metadata;
mod search;
mod store;
mod uidset;

pub use error::{MetaError, MetaResult};
pub use ids::{BlobKey, MailboxId, ModSeq, Uid, UidValidity, UserId};
pub use mailbox::{
    MailboxInfo, MailboxSnapshot, SnapshotFlags, SnapshotFlagsBuilder, SpecialUse,
    is_valid_mailbox_name,
};
pub use message::{
    AppendResult, ChangeEvent, ChangeKind, Changes, CopyResult, FlagOp, IndexProjection,
    IndexedMessage, InternalDate, MessageRecord, NewMessage, SearchIndex, StoreResult,
    canonical_flag, is_system_flag, unix_micros_now,
};
pub use metadata::{MetadataDepth, MetadataEntry, is_valid_metadata_entry};
pub use search::{DayNumber, SearchKey};
pub use store::{
    AccountStore, Alias, Authenticator, ChangeStream, Domain, FailureCounters, MailStore,
    QuotaLimits, QuotaUsage, UidRange, UserRecord, normalize_login_name,
};
pub use uidset::UidSet;

/// The hierarchy delimiter of every mailbox name (RFC 3501 §5.1.1).
pub const HIERARCHY_DELIMITER: char = '/';

/// The default per-mailbox limit on distinct keywords both stores enforce (the meta-store's
/// `StoreLimits::max_keywords_per_mailbox`). An IMAP session that keeps the flags of its view
/// interns at most this many keywords; a mailbox under a raised limit with more keywords than
/// this has the rest read from the store.
pub const DEFAULT_MAX_KEYWORDS_PER_MAILBOX: u32 = 256;
