use crate::MetaError;
use crate::{
    AppendResult, ChangeEvent, Changes, CopyResult, FlagOp, IndexProjection, IndexedMessage,
    MailboxId, MailboxInfo, MailboxSnapshot, MessageRecord, MetaResult, MetadataDepth,
    MetadataEntry, ModSeq, NewMessage, SearchKey, SpecialUse, StoreResult, Uid, UidSet, UserId,
};
use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

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

    /// Everything SELECT/EXAMINE needs, in one round trip: the UIDs and, read at the same
    /// instant (one transaction), every message's flags and MODSEQ exactly as
    /// [`MailStore::fetch`] returns them ([`crate::SnapshotFlags`]).
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

    /// The messages matching `key`, ascending by UID, each with its size, internal date and the
    /// parts of its search index `projection` names: what SORT and THREAD (RFC 5256) order by and
    /// what PREVIEW (RFC 8970) shows, in the same single round trip as [`MailStore::search`].
    async fn search_indexed(
        &self,
        user: UserId,
        mailbox: MailboxId,
        key: &SearchKey,
        projection: &IndexProjection,
    ) -> MetaResult<Vec<IndexedMessage>>;

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
    async fn quota(&self, user: UserId) -> MetaResult<QuotaUsage>;

    /// Sets the account's limits, as `AccountStore::set_quota` does: an IMAP quota administrator's
    /// SETQUOTA (RFC 9208 §4.1) reaches the store through this trait. `NotFound` for an unknown
    /// account.
    async fn set_account_quota(&self, user: UserId, limits: QuotaLimits) -> MetaResult<()>;

    /// Claims the `\Recent` messages of a mailbox below `up_to` for the calling session (RFC 3501
    /// §2.3.2: a message is recent in exactly one session). Atomically moves the mailbox's
    /// "recent claimed" mark to `max(mark, min(up_to, UIDNEXT))` and returns the UIDs from the
    /// old mark up to (excluding) the new one: every existing message in that range is recent to
    /// the caller and to no one else. A bound at or below the mark claims nothing.
    ///
    /// The bound is what makes the claim exact: a session passes one past the highest UID it is
    /// announcing, so a message committed after the session's catch-up read stays unclaimed for
    /// the session that does announce it. An unbounded claim could take it and the session then
    /// leave without announcing it, and the message would be recent to no session.
    async fn claim_recent(
        &self,
        user: UserId,
        mailbox: MailboxId,
        up_to: Uid,
    ) -> MetaResult<UidRange>;

    /// Reads METADATA entries (RFC 5464 §4.2) of the named mailbox, or of the server (the
    /// account's server entries) when `mailbox` is `None`: every stored entry that `depth`
    /// selects below one of `entries` (lower-cased names, see
    /// [`crate::is_valid_metadata_entry`]), ordered by name, without duplicates. Entries are kept
    /// by mailbox id, so they follow a rename and go with the mailbox. `NotFound` for an unknown
    /// mailbox, `Invalid` for a malformed entry name.
    async fn get_metadata(
        &self,
        user: UserId,
        mailbox: Option<&str>,
        entries: &[String],
        depth: MetadataDepth,
    ) -> MetaResult<Vec<MetadataEntry>>;

    /// Sets (`Some`) or removes (`None`) METADATA entries (RFC 5464 §4.3), all or none. Refuses
    /// with `OverQuota` when the mailbox (or the server) would then hold more than `max_entries`
    /// entries, checked in the same atomic step as the write. `NotFound` for an unknown mailbox,
    /// `Invalid` for a malformed entry name.
    async fn set_metadata(
        &self,
        user: UserId,
        mailbox: Option<&str>,
        entries: &[(String, Option<Vec<u8>>)],
        max_entries: u32,
    ) -> MetaResult<()>;
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

/// The form of a login name that accounts are stored and looked up under: surrounding
/// whitespace dropped, lower-cased. Everything keyed by a login name (the store's lookup and
/// meta's login throttling) goes through this one function, so that `" Alice"` and `"alice "`
/// can never be two names to one part of the system and one to another.
pub fn normalize_login_name(name: &str) -> String {
    name.trim().to_lowercase()
}

/// Account records, used by meta's authentication and admin API.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Creates an account with an INBOX. `AlreadyExists` when the name is taken.
    async fn create_user(&self, name: &str, password_hash: &str) -> MetaResult<UserRecord>;
    /// The account whose name is `name` after [`normalize_login_name`].
    async fn user_by_name(&self, name: &str) -> MetaResult<Option<UserRecord>>;
    async fn set_password_hash(&self, user: UserId, password_hash: &str) -> MetaResult<()>;
    async fn list_users(&self) -> MetaResult<Vec<UserRecord>>;

    /// Up to `limit` accounts ordered by (lower-cased) name, those after `after` (compared
    /// case-insensitively) when given: the admin API's paging.
    async fn list_users_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> MetaResult<Vec<UserRecord>>;
    async fn user_by_id(&self, user: UserId) -> MetaResult<Option<UserRecord>>;
    /// A disabled account cannot log in and receives no mail; its data is kept. `NotFound` for
    /// an unknown account.
    async fn set_disabled(&self, user: UserId, disabled: bool) -> MetaResult<()>;
    /// Deletes the account's metadata: mailboxes, messages, subscriptions, quota, the aliases
    /// pointing at it and its name (free for a new account, which gets a new id; ids are never
    /// reused). A half-deleted account can never log in or receive mail. The caller then
    /// deletes its blobs (everything under [`crate::BlobKey::user_prefix`]). `NotFound` for an
    /// unknown account.
    async fn delete_user(&self, user: UserId) -> MetaResult<()>;
    /// Sets the account's limits (`MailStore::quota` reads them with the usage). A limit below
    /// the current usage is allowed: it only refuses further growth. `NotFound` for an unknown
    /// account.
    async fn set_quota(&self, user: UserId, limits: QuotaLimits) -> MetaResult<()>;
    /// Creates the alias or re-points it (stored lower-cased). `Invalid` for an address that is
    /// not `local@domain`, `NotFound` for an unknown target, `AlreadyExists` when an account
    /// has that name (the account would always win, rule 1 of `resolve_address`).
    async fn put_alias(&self, alias: &Alias) -> MetaResult<()>;
    /// `NotFound` when there is no such alias.
    async fn delete_alias(&self, address: &str) -> MetaResult<()>;
    /// Every alias, by address.
    async fn list_aliases(&self) -> MetaResult<Vec<Alias>>;
    /// Adds or changes a domain (stored lower-cased). `Invalid` for a bad name, and for an
    /// alias domain whose target is not a configured non-alias domain, or that other domains
    /// alias: alias domains never chain.
    async fn put_domain(&self, domain: &Domain) -> MetaResult<()>;
    /// `NotFound` when there is no such domain, `Invalid` while alias domains point at it.
    async fn delete_domain(&self, name: &str) -> MetaResult<()>;
    /// Every domain, by name.
    async fn list_domains(&self) -> MetaResult<Vec<Domain>>;
    /// The enabled account mail for `address` is delivered to, or `None` (LMTP `550 5.1.1`).
    ///
    /// Matching ignores case. The rules, first match wins:
    ///
    /// 1. an account whose login name is the whole address (`alice` or `alice@example.org`);
    /// 2. an [`Alias`] for the whole address;
    /// 3. when the domain is an alias domain ([`Domain::alias_of`]), the address is rewritten to
    ///    the target domain and rules 1 and 2 are tried again (once: alias domains never chain);
    /// 4. when the (rewritten) domain is one of the installation's domains, or no domains are
    ///    configured at all, an account whose login name is the local part alone.
    ///
    /// A disabled account (or an alias pointing at one) resolves to `None`, ending the search.
    /// A `+detail` sub-address is stripped by the LMTP role before it asks, not here.
    async fn resolve_address(&self, address: &str) -> MetaResult<Option<UserId>>;
}

/// Checks credentials; what the front-end and LMTP use (never the hash itself).
///
/// `client` is the address the attempt came from (the IMAP client's, not the front-end's), when
/// known: failed attempts are throttled per login name and per client address, so it must be
/// passed whenever there is one.
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// The user id when `name`/`password` are right; `AuthenticationFailed` otherwise, also when
    /// the name or the address is throttled after repeated failures (the answer never tells
    /// whether an account of that name exists).
    async fn authenticate(
        &self,
        name: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> MetaResult<UserId>;

    /// The user id named by a bearer token (an OAuth 2.0 access token, RFC 6750, as carried by
    /// the SASL mechanisms OAUTHBEARER and XOAUTH2) when the token is valid and its account exists
    /// and is enabled; `authzid`, when given, must name that same account. `AuthenticationFailed`
    /// otherwise. Without a configured token issuer every token fails.
    async fn authenticate_bearer(
        &self,
        token: &str,
        authzid: Option<&str>,
        client: Option<IpAddr>,
    ) -> MetaResult<UserId> {
        let _ = (token, authzid, client);
        Err(MetaError::AuthenticationFailed)
    }

    /// Whether [`Authenticator::authenticate_bearer`] can succeed at all (a token issuer is
    /// configured); the front-end advertises AUTH=OAUTHBEARER and AUTH=XOAUTH2 only then.
    async fn accepts_bearer_tokens(&self) -> MetaResult<bool> {
        Ok(false)
    }

    /// The user id of an existing, enabled account (LMTP recipient lookup).
    async fn lookup(&self, name: &str) -> MetaResult<Option<UserId>>;
}

/// Counters of failed logins that every meta replica shares, so that N replicas give a guesser
/// one budget, not N (meta's login throttling; see `yubin_meta::auth`). Keys are short opaque
/// strings the caller builds (hashes: no login name or address is stored); each counter is
/// forgotten `window` after its last increment.
///
/// Every call does a bounded amount of work: at most a handful of keys, one single-key command
/// or script each.
#[async_trait]
pub trait FailureCounters: Send + Sync + 'static {
    /// The current count of each key, in order (0 for a key without recent failures).
    async fn failure_counts(&self, keys: &[String]) -> MetaResult<Vec<u32>>;
    /// Adds one failure to each key and makes it expire `window` from now.
    async fn add_failure(&self, keys: &[String], window: std::time::Duration) -> MetaResult<()>;
    /// Forgets the keys' failures.
    async fn clear_failures(&self, keys: &[String]) -> MetaResult<()>;
}
