use crate::{
    AppendResult, ChangeEvent, Changes, CopyResult, FlagOp, MailboxId, MailboxInfo,
    MailboxSnapshot, MessageRecord, MetaResult, ModSeq, NewMessage, SearchKey, SpecialUse,
    StoreResult, Uid, UidSet, UserId,
};
use async_trait::async_trait;
use futures::stream::BoxStream;

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
}

/// Checks credentials; what the front-end and LMTP use (never the hash itself).
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// The user id when `name`/`password` are right; `AuthenticationFailed` otherwise.
    async fn authenticate(&self, name: &str, password: &str) -> MetaResult<UserId>;
    /// The user id of an existing, enabled account (LMTP recipient lookup).
    async fn lookup(&self, name: &str) -> MetaResult<Option<UserId>>;
}
