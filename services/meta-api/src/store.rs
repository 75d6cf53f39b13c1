use crate::MetaError;
use crate::{
    AppendResult, ChangeEvent, Changes, CopyResult, FlagOp, MailboxId, MailboxInfo,
    MailboxSnapshot, MessageRecord, MetaResult, ModSeq, NewMessage, SearchKey, SpecialUse,
    StoreResult, Uid, UidSet, UserId,
};
use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

/// A stream of change hints for one user. It may end or lose items (a pub/sub reconnect); the
/// consumer re-reads state with [`MailStore::changes_since`] and never trusts the stream for truth.
/// A hint with `mailbox == MailboxId(0)` and `modseq == ModSeq(0)` means "something may have been
/// missed, resync every selected mailbox" (sent after a reconnect or when a watcher lagged).
pub type ChangeStream = BoxStream<'static, ChangeEvent>;

/// Mailbox and message operations for one user's mail. Every method costs O(1) round trips to the
/// backing store whatever the mailbox size; every write is atomic and allocates UIDs/MODSEQs
/// atomically, correct with any number of concurrent callers on any number of nodes.
///
/// `user` always comes from an authenticated session, never from client input.
#[async_trait]
pub trait MailStore: Send + Sync + 'static {
    /// Every mailbox of the user with its status (subscriptions come from
    /// [`MailStore::list_subscriptions`]). INBOX always exists (it is created with the account).
    async fn list_mailboxes(&self, user: UserId) -> MetaResult<Vec<MailboxInfo>>;

    /// Names of subscribed mailboxes; subscriptions outlive the mailboxes they name.
    async fn list_subscriptions(&self, user: UserId) -> MetaResult<Vec<String>>;

    async fn set_subscribed(&self, user: UserId, name: &str, subscribed: bool) -> MetaResult<()>;

    /// Creates a mailbox with a fresh UIDVALIDITY. `AlreadyExists` when the name is taken.
    async fn create_mailbox(
        &self,
        user: UserId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> MetaResult<MailboxInfo>;

    /// Deletes a mailbox and every message in it (their blobs become unreferenced). INBOX cannot
    /// be deleted.
    async fn delete_mailbox(&self, user: UserId, name: &str) -> MetaResult<()>;

    /// Renames a mailbox and its inferiors, keeping ids and UIDVALIDITY. Renaming INBOX moves its
    /// messages to a new mailbox and leaves INBOX empty (RFC 3501 §6.3.5).
    async fn rename_mailbox(&self, user: UserId, from: &str, to: &str) -> MetaResult<()>;

    /// Status of one mailbox by name.
    async fn mailbox_status(&self, user: UserId, name: &str) -> MetaResult<MailboxInfo>;

    /// Everything SELECT/EXAMINE needs, in one round trip.
    async fn select(&self, user: UserId, name: &str) -> MetaResult<MailboxSnapshot>;

    /// Appends messages (bodies already durable) to the named mailbox atomically, in order.
    async fn append(
        &self,
        user: UserId,
        mailbox: &str,
        messages: Vec<NewMessage>,
    ) -> MetaResult<AppendResult>;

    /// Messages of `uids` that exist, ascending by UID; with summaries when `with_summary`.
    async fn fetch(
        &self,
        user: UserId,
        mailbox: MailboxId,
        uids: &UidSet,
        with_summary: bool,
    ) -> MetaResult<Vec<MessageRecord>>;

    /// Changes the flags of the existing messages in `uids`; each changed message gets a new
    /// MODSEQ. With `unchanged_since`, messages whose modseq is above it are left alone and
    /// reported in `modified` (RFC 7162 §3.1.3).
    async fn store_flags(
        &self,
        user: UserId,
        mailbox: MailboxId,
        uids: &UidSet,
        op: FlagOp,
        flags: &[String],
        unchanged_since: Option<ModSeq>,
    ) -> MetaResult<StoreResult>;

    /// Copies (or moves, when `remove_source`) the existing messages of `uids` to the named
    /// mailbox without copying bytes; a move expunges the sources in the same atomic step.
    async fn copy_messages(
        &self,
        user: UserId,
        source: MailboxId,
        uids: &UidSet,
        destination: &str,
        remove_source: bool,
    ) -> MetaResult<CopyResult>;

    /// Expunges messages carrying `\Deleted` (restricted to `uids` when given, for UID EXPUNGE)
    /// and returns their UIDs ascending.
    async fn expunge(
        &self,
        user: UserId,
        mailbox: MailboxId,
        uids: Option<&UidSet>,
    ) -> MetaResult<Vec<Uid>>;

    /// UIDs of the messages matching `key`, ascending.
    async fn search(
        &self,
        user: UserId,
        mailbox: MailboxId,
        key: &SearchKey,
    ) -> MetaResult<Vec<Uid>>;

    /// What changed after `since`. `mailbox_gone` when the mailbox no longer exists.
    async fn changes_since(
        &self,
        user: UserId,
        mailbox: MailboxId,
        since: ModSeq,
    ) -> MetaResult<Changes>;

    /// Hints of every change to the user's mailboxes from now on.
    async fn watch(&self, user: UserId) -> MetaResult<ChangeStream>;

    /// The account's quota limits and exact current usage (RFC 9208 STORAGE and MESSAGE
    /// resources; one quota root per account). `append` and `copy_messages` refuse with
    /// `OverQuota` when a limit would be exceeded, checked in the same atomic step as the write.
    async fn quota(&self, user: UserId) -> MetaResult<QuotaUsage> {
        let _ = user;
        Err(MetaError::Internal(
            "quota is not implemented by this backend".into(),
        ))
    }

    /// Claims the `\Recent` messages of a mailbox for the calling session (RFC 3501 §2.3.2: a
    /// message is recent in exactly one session). Atomically moves the mailbox's "recent claimed"
    /// mark to its current UIDNEXT and returns the UIDs from the old mark up to (excluding) the new
    /// one: every existing message in that range is recent to the caller and to no one else.
    async fn claim_recent(&self, user: UserId, mailbox: MailboxId) -> MetaResult<UidRange> {
        let _ = (user, mailbox);
        Err(MetaError::Internal(
            "claim_recent is not implemented by this backend".into(),
        ))
    }
}

/// A half-open range of UIDs `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidRange {
    pub from: Uid,
    pub to: Uid,
}

impl UidRange {
    pub fn contains(&self, uid: Uid) -> bool {
        self.from <= uid && uid < self.to
    }

    pub fn is_empty(&self) -> bool {
        self.to <= self.from
    }
}

/// An account's limits; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaLimits {
    /// Sum of RFC822.SIZE of every message, in bytes (RFC 9208 STORAGE is reported in KiB).
    pub storage_bytes: Option<u64>,
    /// Number of messages in all mailboxes (RFC 9208 MESSAGE).
    pub messages: Option<u64>,
}

/// Limits plus exact usage of one account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaUsage {
    pub limits: QuotaLimits,
    pub storage_bytes: u64,
    pub messages: u64,
}

/// A mail domain served by this installation. An alias domain maps every address
/// `local@name` to `local@alias_of`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    /// Lower-cased domain name.
    pub name: String,
    pub alias_of: Option<String>,
}

/// An address alias: mail for `address` goes to the account `target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alias {
    /// Lower-cased full address (`local@domain`).
    pub address: String,
    pub target: UserId,
}

/// A stored account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: UserId,
    /// Login name, lower-cased.
    pub name: String,
    /// PHC string of the Argon2id hash; never a plaintext password.
    pub password_hash: String,
    pub disabled: bool,
}

/// Account records, used by meta's authentication and admin API.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Creates an account with an INBOX. `AlreadyExists` when the name is taken.
    async fn create_user(&self, name: &str, password_hash: &str) -> MetaResult<UserRecord>;
    async fn user_by_name(&self, name: &str) -> MetaResult<Option<UserRecord>>;
    async fn set_password_hash(&self, user: UserId, password_hash: &str) -> MetaResult<()>;
    async fn list_users(&self) -> MetaResult<Vec<UserRecord>>;

    // The methods below carry temporary "not implemented" defaults while the backends gain them
    // (issue 4); each backend overrides all of them and the defaults are then removed.

    /// One page of accounts ordered by name, starting after `after`.
    async fn list_users_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> MetaResult<Vec<UserRecord>> {
        let _ = (after, limit);
        Err(MetaError::Internal(
            "list_users_page is not implemented by this backend".into(),
        ))
    }
    async fn user_by_id(&self, user: UserId) -> MetaResult<Option<UserRecord>> {
        let _ = user;
        Err(MetaError::Internal(
            "user_by_id is not implemented by this backend".into(),
        ))
    }
    /// A disabled account cannot log in and receives no mail; its data is kept.
    async fn set_disabled(&self, user: UserId, disabled: bool) -> MetaResult<()> {
        let _ = (user, disabled);
        Err(MetaError::Internal(
            "set_disabled is not implemented by this backend".into(),
        ))
    }
    /// Deletes the account's metadata (mailboxes, messages, aliases pointing at it). The caller
    /// then deletes its blobs (everything under [`crate::BlobKey::user_prefix`]).
    async fn delete_user(&self, user: UserId) -> MetaResult<()> {
        let _ = user;
        Err(MetaError::Internal(
            "delete_user is not implemented by this backend".into(),
        ))
    }
    async fn set_quota(&self, user: UserId, limits: QuotaLimits) -> MetaResult<()> {
        let _ = (user, limits);
        Err(MetaError::Internal(
            "set_quota is not implemented by this backend".into(),
        ))
    }
    async fn put_alias(&self, alias: &Alias) -> MetaResult<()> {
        let _ = alias;
        Err(MetaError::Internal(
            "put_alias is not implemented by this backend".into(),
        ))
    }
    async fn delete_alias(&self, address: &str) -> MetaResult<()> {
        let _ = address;
        Err(MetaError::Internal(
            "delete_alias is not implemented by this backend".into(),
        ))
    }
    async fn list_aliases(&self) -> MetaResult<Vec<Alias>> {
        Err(MetaError::Internal(
            "list_aliases is not implemented by this backend".into(),
        ))
    }
    async fn put_domain(&self, domain: &Domain) -> MetaResult<()> {
        let _ = domain;
        Err(MetaError::Internal(
            "put_domain is not implemented by this backend".into(),
        ))
    }
    async fn delete_domain(&self, name: &str) -> MetaResult<()> {
        let _ = name;
        Err(MetaError::Internal(
            "delete_domain is not implemented by this backend".into(),
        ))
    }
    async fn list_domains(&self) -> MetaResult<Vec<Domain>> {
        Err(MetaError::Internal(
            "list_domains is not implemented by this backend".into(),
        ))
    }
}

/// Checks credentials; what the front-end and LMTP use (never the hash itself).
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// The user id when `name`/`password` are right; `AuthenticationFailed` otherwise.
    async fn authenticate(&self, name: &str, password: &str) -> MetaResult<UserId>;
    /// The user id of an existing, enabled account (LMTP recipient lookup).
    async fn lookup(&self, name: &str) -> MetaResult<Option<UserId>>;
}
