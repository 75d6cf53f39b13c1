//! Command-line flags. Every flag also reads `YUBIN_<FLAG>`; all are optional here so that a value
//! in the `--config` file applies when neither flag nor variable is given (see `config`).

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use std::path::PathBuf;

mod admin;
pub use admin::{
    AliasArgs, AliasCommand, DomainArgs, DomainCommand, MailboxArgs, MailboxCommand, UserArgs,
    UserCommand,
};

#[derive(Debug, Parser)]
#[command(
    name = "yubin",
    version,
    about = "Yubin: a horizontally scaled IMAP service"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// One value, parsed once at start: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every role in one process on embedded storage (metadata and bodies under --data-dir).
    Dev(DevArgs),
    /// The metadata service on Redis: gRPC for front-ends, admin REST API on --http-listen.
    Meta(MetaArgs),
    /// A stateless IMAP front-end: talks gRPC to meta, keeps bodies in S3.
    Imap(ImapArgs),
    /// LMTP delivery from the MTA (RFC 2033): talks gRPC to meta, keeps bodies in S3.
    Lmtp(LmtpRoleArgs),
    /// Manage accounts through the admin API.
    User(UserArgs),
    /// Manage address aliases through the admin API.
    Alias(AliasArgs),
    /// Manage the installation's mail domains through the admin API.
    Domain(DomainArgs),
    /// Manage an account's mailboxes through the admin API.
    Mailbox(MailboxArgs),
}

/// The admin CLI's subcommands (clients of the admin API, not server roles).
#[derive(Debug)]
pub enum AdminCommand {
    User(UserArgs),
    Alias(AliasArgs),
    Domain(DomainArgs),
    Mailbox(MailboxArgs),
}

/// What a command line asks for: an admin CLI call or a server role.
pub enum Invocation {
    Admin(AdminCommand),
    /// Boxed: the role settings are large and parsed once.
    Role(Box<Command>),
}

impl Command {
    pub fn into_invocation(self) -> Invocation {
        match self {
            Command::User(a) => Invocation::Admin(AdminCommand::User(a)),
            Command::Alias(a) => Invocation::Admin(AdminCommand::Alias(a)),
            Command::Domain(a) => Invocation::Admin(AdminCommand::Domain(a)),
            Command::Mailbox(a) => Invocation::Admin(AdminCommand::Mailbox(a)),
            role => Invocation::Role(Box::new(role)),
        }
    }
}

/// Connection limits shared by the roles that serve IMAP.
#[derive(Debug, Args, Serialize, Default)]
pub struct LimitArgs {
    /// Longest command line accepted, in bytes.
    #[arg(long, env = "YUBIN_MAX_LINE_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_line_bytes: Option<usize>,
    /// Largest literal (e.g. an APPENDed message) accepted, in bytes.
    #[arg(long, env = "YUBIN_MAX_LITERAL_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_literal_bytes: Option<u64>,
    /// APPEND literals larger than this go to a spool file instead of memory, in bytes.
    #[arg(long, env = "YUBIN_MAX_BUFFERED_LITERAL_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_buffered_literal_bytes: Option<usize>,
    /// Deepest nesting of parenthesised lists (SEARCH, BODYSTRUCTURE requests).
    #[arg(long, env = "YUBIN_MAX_NESTING")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_nesting: Option<usize>,
    /// Most simultaneous connections per listener.
    #[arg(long, env = "YUBIN_MAX_CONNECTIONS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Seconds between `* OK Still here` lines sent to IDLE clients (keeps NAT mappings alive).
    #[arg(long, env = "YUBIN_IDLE_KEEPALIVE_SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_keepalive_seconds: Option<u64>,
    /// Failed logins on one connection before it is closed.
    #[arg(long, env = "YUBIN_MAX_AUTH_FAILURES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_auth_failures: Option<u32>,
    /// On SIGTERM, seconds over which connected clients get `* BYE` in batches (so they
    /// reconnect elsewhere spread out, not all at once); 0 says BYE to all at once.
    #[arg(long, env = "YUBIN_DRAIN_SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_seconds: Option<u64>,
    /// THREAD=REFERENCES uses only the last this many ids of a message's References field
    /// (the nearest ancestors).
    #[arg(long, env = "YUBIN_THREAD_MAX_REFERENCES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_max_references: Option<usize>,
    /// SORT and THREAD consider only the first this many bytes of a Subject or address field.
    #[arg(long, env = "YUBIN_SORT_MAX_FIELD_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort_max_field_bytes: Option<usize>,
    /// Most messages in one APPEND (MULTIAPPEND).
    #[arg(long, env = "YUBIN_MAX_APPEND_MESSAGES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_append_messages: Option<usize>,
    /// Most parts of one CATENATE message.
    #[arg(long, env = "YUBIN_MAX_CATENATE_PARTS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_catenate_parts: Option<usize>,
    /// Most keys in one SEARCH / SORT / THREAD program.
    #[arg(long, env = "YUBIN_MAX_SEARCH_KEYS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_search_keys: Option<usize>,
    /// Deepest nesting of SEARCH keys (NOT, OR, parentheses); at most 1000.
    #[arg(long, env = "YUBIN_MAX_SEARCH_DEPTH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_search_depth: Option<usize>,
    /// Most simultaneous connections from one IPv4 address or IPv6 /64 per node; 0: no limit.
    #[arg(long, env = "YUBIN_MAX_CONNECTIONS_PER_ADDRESS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections_per_address: Option<usize>,
    /// Longest line, literal and command accepted before authentication, in bytes.
    #[arg(long, env = "YUBIN_PRE_AUTH_MAX_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_auth_max_bytes: Option<usize>,
    /// Seconds from connecting by which a client must have authenticated.
    #[arg(long, env = "YUBIN_LOGIN_TIMEOUT_SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_timeout_seconds: Option<u64>,
    /// Messages FETCH prepares at once (their bodies read from S3 concurrently).
    #[arg(long, env = "YUBIN_FETCH_PREFETCH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch_prefetch: Option<usize>,
    /// Largest body range FETCH reads ahead, in bytes; larger ones are read in turn.
    #[arg(long, env = "YUBIN_FETCH_PREFETCH_MAX_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch_prefetch_max_bytes: Option<u64>,
    /// Longest one IDLE lasts before the session is logged out, in seconds (RFC 2177: clients
    /// re-issue IDLE within 29 minutes).
    #[arg(long, env = "YUBIN_IDLE_MAX_SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_max_seconds: Option<u64>,
    /// Slowest average rate of a streamed APPEND literal, in bytes per second.
    #[arg(long, env = "YUBIN_LITERAL_MIN_BYTES_PER_SECOND")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub literal_min_bytes_per_second: Option<u64>,
    /// Most flags one STORE or APPEND message may name (more get NO [LIMIT]).
    #[arg(long, env = "YUBIN_MAX_FLAGS_PER_COMMAND")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_flags_per_command: Option<usize>,
    /// Largest METADATA value SETMETADATA accepts, in bytes (RFC 5464 MAXSIZE).
    #[arg(long, env = "YUBIN_METADATA_MAX_VALUE_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_max_value_bytes: Option<u32>,
    /// Most METADATA entries on one mailbox, or on the server (RFC 5464 TOOMANY).
    #[arg(long, env = "YUBIN_METADATA_MAX_ENTRIES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_max_entries: Option<u32>,
}

/// Limits the metadata store enforces (`dev` and `meta`); in the config file under `[store]`.
#[derive(Debug, Args, Serialize, Default)]
pub struct StoreLimitArgs {
    /// Most keywords one message may carry.
    #[arg(long, env = "YUBIN_MAX_KEYWORDS_PER_MESSAGE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_keywords_per_message: Option<u32>,
    /// Most distinct keywords one mailbox may know.
    #[arg(long, env = "YUBIN_MAX_KEYWORDS_PER_MAILBOX")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_keywords_per_mailbox: Option<u32>,
    /// Longest keyword, in bytes.
    #[arg(long, env = "YUBIN_MAX_KEYWORD_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_keyword_bytes: Option<u32>,
    /// Most mailboxes one account may have.
    #[arg(long, env = "YUBIN_MAX_MAILBOXES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_mailboxes: Option<u32>,
    /// Most bytes of METADATA (entry names and values) one account may hold.
    #[arg(long, env = "YUBIN_MAX_METADATA_BYTES_PER_ACCOUNT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_metadata_bytes_per_account: Option<u64>,
    /// Most messages one Redis script call works on (larger STOREs go in batches).
    #[arg(long, env = "YUBIN_REDIS_BATCH_MESSAGES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_batch_messages: Option<u32>,
    /// Most entries one mailbox's expunge log keeps for QRESYNC (older ones are dropped).
    #[arg(long, env = "YUBIN_MAX_EXPUNGE_LOG")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_expunge_log: Option<u32>,
}

impl StoreLimitArgs {
    fn is_empty(&self) -> bool {
        self.max_keywords_per_message.is_none()
            && self.max_keywords_per_mailbox.is_none()
            && self.max_keyword_bytes.is_none()
            && self.max_mailboxes.is_none()
            && self.max_metadata_bytes_per_account.is_none()
            && self.redis_batch_messages.is_none()
            && self.max_expunge_log.is_none()
    }
}

/// Listeners, TLS, spool and limits of the roles that serve IMAP (`dev` and `imap`).
#[derive(Debug, Args, Serialize)]
pub struct FrontEndArgs {
    #[arg(long, env = "YUBIN_IMAP_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imap_listen: Option<String>,
    #[arg(long, env = "YUBIN_IMAPS_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imaps_listen: Option<String>,
    /// Health, metrics (and in `yubin dev` the admin API).
    #[arg(long, env = "YUBIN_HTTP_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_listen: Option<String>,
    /// PEM certificate chain; without it a self-signed certificate is used (`yubin dev` keeps
    /// it in the data dir).
    #[arg(long, env = "YUBIN_TLS_CERT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, env = "YUBIN_TLS_KEY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Where large APPEND literals are spooled on their way to the blob store (default: the
    /// system temporary directory; `yubin dev`: the data dir).
    #[arg(long, env = "YUBIN_SPOOL_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spool_dir: Option<PathBuf>,
    /// Comma-separated login names of the accounts that may set quotas over IMAP with SETQUOTA
    /// (RFC 9208): their own, and other accounts' as root "#user/<name>". Default: nobody.
    #[arg(long, env = "YUBIN_QUOTA_ADMINS", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quota_admins: Vec<String>,
    #[command(flatten)]
    #[serde(rename = "limits")]
    pub limits: LimitArgs,
    #[command(flatten)]
    #[serde(rename = "body_cache", skip_serializing_if = "BodyCacheArgs::is_empty")]
    pub body_cache: BodyCacheArgs,
}

/// The front-end's cache of message bodies; in the config file under `[body_cache]`.
#[derive(Debug, Args, Serialize, Default, PartialEq)]
pub struct BodyCacheArgs {
    /// Bytes of message bodies kept in memory (0: no cache).
    #[arg(
        id = "body_cache_memory_bytes",
        long = "body-cache-memory-bytes",
        env = "YUBIN_BODY_CACHE_MEMORY_BYTES"
    )]
    #[serde(rename = "memory_bytes", skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Bodies up to this size are cached whole; of larger ones only this many leading bytes.
    #[arg(
        id = "body_cache_object_max_bytes",
        long = "body-cache-object-max-bytes",
        env = "YUBIN_BODY_CACHE_OBJECT_MAX_BYTES"
    )]
    #[serde(rename = "object_max_bytes", skip_serializing_if = "Option::is_none")]
    pub object_max_bytes: Option<u64>,
    /// A local directory for a second, larger cache tier on disk (only the cache may use it).
    #[arg(
        id = "body_cache_dir",
        long = "body-cache-dir",
        env = "YUBIN_BODY_CACHE_DIR"
    )]
    #[serde(rename = "dir", skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Bytes of bodies the disk tier keeps (default 10 GiB).
    #[arg(
        id = "body_cache_disk_bytes",
        long = "body-cache-disk-bytes",
        env = "YUBIN_BODY_CACHE_DISK_BYTES"
    )]
    #[serde(rename = "disk_bytes", skip_serializing_if = "Option::is_none")]
    pub disk_bytes: Option<u64>,
}

impl BodyCacheArgs {
    pub fn is_empty(&self) -> bool {
        *self == BodyCacheArgs::default()
    }
}

/// The full-text index (meta and `yubin dev`); in the config file under `[index]`.
#[derive(Debug, Args, Serialize, Default, PartialEq)]
pub struct IndexArgs {
    /// Local directory of the full-text index (a cache of the published index on `yubin meta`;
    /// the index itself on `yubin dev`, default: under the data dir). Default for meta: a fresh
    /// temporary directory, removed at exit.
    #[arg(id = "index_dir", long = "index-dir", env = "YUBIN_INDEX_DIR")]
    #[serde(rename = "dir", skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Accounts whose index is kept open at once (least recently used ones are closed).
    #[arg(
        id = "index_max_open_accounts",
        long = "index-max-open-accounts",
        env = "YUBIN_INDEX_MAX_OPEN_ACCOUNTS"
    )]
    #[serde(rename = "max_open_accounts", skip_serializing_if = "Option::is_none")]
    pub max_open_accounts: Option<usize>,
    /// Memory of one index writer (tantivy's arena), in bytes.
    #[arg(
        id = "index_writer_memory_bytes",
        long = "index-writer-memory-bytes",
        env = "YUBIN_INDEX_WRITER_MEMORY_BYTES"
    )]
    #[serde(
        rename = "writer_memory_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub writer_memory_bytes: Option<usize>,
    /// Most queued messages indexed in one generation.
    #[arg(
        id = "index_batch_messages",
        long = "index-batch-messages",
        env = "YUBIN_INDEX_BATCH_MESSAGES"
    )]
    #[serde(rename = "batch_messages", skip_serializing_if = "Option::is_none")]
    pub batch_messages: Option<usize>,
    /// Accounts indexed at once.
    #[arg(
        id = "index_concurrency",
        long = "index-concurrency",
        env = "YUBIN_INDEX_CONCURRENCY"
    )]
    #[serde(rename = "concurrency", skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// Milliseconds a written-to account waits before it is indexed (its writes meanwhile share
    /// one index generation).
    #[arg(
        id = "index_delay_ms",
        long = "index-delay-ms",
        env = "YUBIN_INDEX_DELAY_MS"
    )]
    #[serde(rename = "delay_ms", skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// At start, go through every account once: index what is queued and remove the trigram
    /// postings of releases that kept the index in Redis (the upgrade's migration step).
    #[arg(
        id = "index_all_at_start",
        long = "index-all-at-start",
        env = "YUBIN_INDEX_ALL_AT_START",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    #[serde(rename = "all_at_start", skip_serializing_if = "Option::is_none")]
    pub all_at_start: Option<bool>,
}

impl IndexArgs {
    pub fn is_empty(&self) -> bool {
        *self == IndexArgs::default()
    }
}

/// How LMTP answers a delivery refused for quota (RFC 3463 X.2.2 "mailbox full").
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverQuota {
    /// `552 5.2.2`: the MTA bounces the message.
    Permanent,
    /// `452 4.2.2`: the MTA keeps the message and retries until its queue lifetime ends.
    Temporary,
}

/// LMTP limits; in the config file under `[lmtp]`.
#[derive(Debug, Args, Serialize, Default)]
pub struct LmtpLimitArgs {
    /// Largest message accepted over LMTP, in bytes (advertised as SIZE).
    #[arg(
        id = "lmtp_max_message_bytes",
        long = "lmtp-max-message-bytes",
        env = "YUBIN_LMTP_MAX_MESSAGE_BYTES"
    )]
    #[serde(rename = "max_message_bytes", skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<u64>,
    /// Recipients per LMTP transaction; more get 452 4.5.3 and the MTA sends them again.
    #[arg(
        id = "lmtp_max_recipients",
        long = "lmtp-max-recipients",
        env = "YUBIN_LMTP_MAX_RECIPIENTS"
    )]
    #[serde(rename = "max_recipients", skip_serializing_if = "Option::is_none")]
    pub max_recipients: Option<usize>,
    /// Most simultaneous LMTP connections.
    #[arg(
        id = "lmtp_max_connections",
        long = "lmtp-max-connections",
        env = "YUBIN_LMTP_MAX_CONNECTIONS"
    )]
    #[serde(rename = "max_connections", skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Longest LMTP command line, in bytes.
    #[arg(
        id = "lmtp_max_line_bytes",
        long = "lmtp-max-line-bytes",
        env = "YUBIN_LMTP_MAX_LINE_BYTES"
    )]
    #[serde(rename = "max_line_bytes", skip_serializing_if = "Option::is_none")]
    pub max_line_bytes: Option<usize>,
    /// Messages larger than this are spooled to disk while they arrive, in bytes.
    #[arg(
        id = "lmtp_max_buffered_message_bytes",
        long = "lmtp-max-buffered-message-bytes",
        env = "YUBIN_LMTP_MAX_BUFFERED_MESSAGE_BYTES"
    )]
    #[serde(
        rename = "max_buffered_message_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_buffered_message_bytes: Option<usize>,
    /// Reply to a delivery over quota: permanent (552 5.2.2, bounce) or temporary (452 4.2.2,
    /// the MTA retries).
    #[arg(
        id = "lmtp_over_quota",
        long = "lmtp-over-quota",
        env = "YUBIN_LMTP_OVER_QUOTA"
    )]
    #[serde(rename = "over_quota", skip_serializing_if = "Option::is_none")]
    pub over_quota: Option<OverQuota>,
}

/// The LMTP listener and its limits (`dev` and `lmtp`).
#[derive(Debug, Args, Serialize, Default)]
pub struct LmtpArgs {
    /// LMTP listener for the MTA. No authentication: keep it on loopback or a trusted network.
    #[arg(long, env = "YUBIN_LMTP_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lmtp_listen: Option<String>,
    /// Comma-separated networks (CIDR, e.g. 10.0.0.0/8, or single addresses) the MTA connects
    /// from; LMTP has no authentication, so anyone else gets `421` and is disconnected.
    /// Default: loopback only (127.0.0.0/8, ::1).
    #[arg(long, env = "YUBIN_LMTP_ALLOW", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lmtp_allow: Vec<String>,
    /// Serialized only when a limit was given, so roles and tests without LMTP settings never
    /// see an `lmtp` table.
    #[command(flatten)]
    #[serde(rename = "lmtp", skip_serializing_if = "LmtpLimitArgs::is_empty")]
    pub limits: LmtpLimitArgs,
}

impl LmtpLimitArgs {
    fn is_empty(&self) -> bool {
        self.max_message_bytes.is_none()
            && self.max_recipients.is_none()
            && self.max_connections.is_none()
            && self.max_line_bytes.is_none()
            && self.max_buffered_message_bytes.is_none()
            && self.over_quota.is_none()
    }
}

#[derive(Debug, Args, Serialize)]
pub struct LmtpRoleArgs {
    #[arg(long, env = "YUBIN_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// The metadata service's gRPC URL, e.g. http://127.0.0.1:50051.
    #[arg(long, env = "YUBIN_META_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta_url: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub grpc_auth: GrpcAuthArgs,
    /// Bucket for message bodies; endpoint and credentials come from the standard AWS variables.
    #[arg(long, env = "YUBIN_S3_BUCKET")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_bucket: Option<String>,
    /// Health and metrics.
    #[arg(long, env = "YUBIN_HTTP_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_listen: Option<String>,
    /// Where large messages are spooled on their way to the blob store (default: the system
    /// temporary directory).
    #[arg(long, env = "YUBIN_SPOOL_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spool_dir: Option<PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    pub lmtp: LmtpArgs,
}

/// How the roles authenticate to each other on meta's gRPC port (see `service_auth`). Top-level
/// keys in the config file.
#[derive(Debug, Args, Serialize, Default)]
pub struct GrpcAuthArgs {
    /// File holding the secret every role of the installation shares (e.g. `openssl rand -hex
    /// 32`, at least 32 characters): meta demands it as every gRPC call's bearer, the
    /// front-ends and LMTP present it. A file, so that orchestrators mount it as a secret.
    #[arg(long, env = "YUBIN_GRPC_SECRET_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_secret_file: Option<PathBuf>,
    /// Run the gRPC link without the shared secret: anyone who can reach meta's gRPC port reads
    /// and writes every mailbox. For tests and local experiments only.
    #[arg(long, env = "YUBIN_GRPC_INSECURE", num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_insecure: Option<bool>,
}

/// Password hashing, login throttling and bearer tokens: what the authenticator of `meta` (and
/// of `dev`, which contains it) does. In the config file these keys go under `[auth]`.
#[derive(Debug, Args, Serialize, Default, PartialEq)]
pub struct AuthArgs {
    /// Argon2id memory cost of new password hashes, in KiB.
    #[arg(long, env = "YUBIN_ARGON2_MEMORY_KIB")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argon2_memory_kib: Option<u32>,
    /// Argon2id passes of new password hashes.
    #[arg(long, env = "YUBIN_ARGON2_ITERATIONS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argon2_iterations: Option<u32>,
    /// Argon2id lanes of new password hashes.
    #[arg(long, env = "YUBIN_ARGON2_PARALLELISM")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argon2_parallelism: Option<u32>,
    /// How long a successful password check is remembered (0 disables the cache), in seconds.
    #[arg(long, env = "YUBIN_AUTH_CACHE_SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_cache_seconds: Option<u64>,
    /// Failed logins of one name after which it is refused until the window passes (0: never).
    #[arg(long, env = "YUBIN_AUTH_USER_MAX_FAILURES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_user_max_failures: Option<u32>,
    /// Failed logins from one client address (IPv6: one /64) after which it is refused until
    /// the window passes (0: never).
    #[arg(long, env = "YUBIN_AUTH_ADDRESS_MAX_FAILURES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_address_max_failures: Option<u32>,
    /// How long failures are remembered after the last one, in seconds.
    #[arg(long, env = "YUBIN_AUTH_FAILURE_WINDOW_SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_failure_window_seconds: Option<u64>,
    /// Longest delay imposed on an attempt after failures (they double up to it), in ms.
    #[arg(long, env = "YUBIN_AUTH_MAX_DELAY_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_max_delay_ms: Option<u64>,
    /// The `iss` of accepted OAuth bearer tokens (JWT); enables OAUTHBEARER and XOAUTH2 together
    /// with one of the three key settings below.
    #[arg(long, env = "YUBIN_OAUTH_ISSUER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth_issuer: Option<String>,
    /// When set, tokens must list it in `aud`.
    #[arg(long, env = "YUBIN_OAUTH_AUDIENCE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth_audience: Option<String>,
    /// File holding the issuer's shared HS256 secret.
    #[arg(long, env = "YUBIN_OAUTH_HS256_SECRET_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth_hs256_secret_file: Option<PathBuf>,
    /// PEM file holding the issuer's RS256 public key.
    #[arg(long, env = "YUBIN_OAUTH_RS256_PUBLIC_KEY_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth_rs256_public_key_file: Option<PathBuf>,
    /// JWKS file with the issuer's keys (RS256, ES256), re-read when it changes.
    #[arg(long, env = "YUBIN_OAUTH_JWKS_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth_jwks_file: Option<PathBuf>,
    /// The token claim naming the account (default `sub`; e.g. `email`).
    #[arg(long, env = "YUBIN_OAUTH_USER_CLAIM")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth_user_claim: Option<String>,
}

impl AuthArgs {
    /// No auth flag given: nothing to lay over the config file (and no `[auth]` table for the
    /// roles that have none).
    pub fn is_empty(&self) -> bool {
        *self == AuthArgs::default()
    }
}

#[derive(Debug, Args, Serialize)]
pub struct DevArgs {
    /// TOML file with settings (flags and YUBIN_* variables take precedence).
    #[arg(long, env = "YUBIN_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Where metadata and message bodies are kept.
    #[arg(long, env = "YUBIN_DATA_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Most concurrent writes that share one transaction (and one fsync) of the embedded
    /// store; 1: one transaction per write.
    #[arg(long, env = "YUBIN_GROUP_COMMIT_MAX_CALLS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_commit_max_calls: Option<usize>,
    /// No further write joins a transaction once its writes have taken this long, in ms.
    #[arg(long, env = "YUBIN_GROUP_COMMIT_MAX_WORK_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_commit_max_work_ms: Option<u64>,
    /// Also serve the metadata gRPC API here (so separate front-ends can join); needs
    /// --grpc-secret-file (or --grpc-insecure) like `yubin meta`.
    #[arg(long, env = "YUBIN_GRPC_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_listen: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub grpc_auth: GrpcAuthArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub front_end: FrontEndArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub lmtp: LmtpArgs,
    #[command(flatten)]
    #[serde(rename = "store", skip_serializing_if = "StoreLimitArgs::is_empty")]
    pub store: StoreLimitArgs,
    #[command(flatten)]
    #[serde(rename = "auth", skip_serializing_if = "AuthArgs::is_empty")]
    pub auth: AuthArgs,
    #[command(flatten)]
    #[serde(rename = "index", skip_serializing_if = "IndexArgs::is_empty")]
    pub index: IndexArgs,
}

#[derive(Debug, Args, Serialize)]
pub struct MetaArgs {
    #[arg(long, env = "YUBIN_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Redis URL, e.g. redis://127.0.0.1:6379; with --redis-cluster, a comma-separated list of
    /// seed nodes, e.g. redis://10.0.0.1:6379,redis://10.0.0.2:6379.
    #[arg(long, env = "YUBIN_REDIS_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// Treat --redis-url as the seed nodes of a Redis Cluster.
    #[arg(long, env = "YUBIN_REDIS_CLUSTER", num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_cluster: Option<bool>,
    /// Acknowledge a write only once this many replicas have it (Redis WAIT); 0 = off. A write
    /// the replicas do not confirm in time fails as unavailable (it may still have happened).
    #[arg(long, env = "YUBIN_REDIS_WAIT_REPLICAS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_wait_replicas: Option<u32>,
    /// Also require each write in the AOF on disk (WAITAOF, Redis 7.2 or later), on the primary
    /// and on --redis-wait-replicas replicas.
    #[arg(long, env = "YUBIN_REDIS_WAITAOF", num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_waitaof: Option<bool>,
    /// How long a write waits for WAIT/WAITAOF, in milliseconds.
    #[arg(long, env = "YUBIN_REDIS_WAIT_TIMEOUT_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_wait_timeout_ms: Option<u64>,
    /// Start even though Redis does not report its maxmemory-policy (INFO memory), asserting
    /// that it is noeviction. A reported policy other than noeviction is always refused.
    #[arg(long, env = "YUBIN_REDIS_ASSUME_NOEVICTION", num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_assume_noeviction: Option<bool>,
    /// Mailboxes whose highest UIDNEXT / HIGHESTMODSEQ meta remembers to detect writes Redis
    /// lost in a failover (least recently used ones are forgotten).
    #[arg(long, env = "YUBIN_REDIS_HIGH_WATER_MAILBOXES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_high_water_mailboxes: Option<usize>,
    /// How often meta compares Redis' run_id and replication id to notice a failover, in
    /// milliseconds; 0 = never.
    #[arg(long, env = "YUBIN_REDIS_FAILOVER_CHECK_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_failover_check_ms: Option<u64>,
    #[arg(long, env = "YUBIN_GRPC_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_listen: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub grpc_auth: GrpcAuthArgs,
    /// Health, metrics and the admin API.
    #[arg(long, env = "YUBIN_HTTP_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_listen: Option<String>,
    /// Bucket of the message bodies, for deleting an account's mail through the admin API
    /// (the front-ends' bucket); endpoint and credentials come from the standard AWS variables.
    #[arg(long, env = "YUBIN_S3_BUCKET")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_bucket: Option<String>,
    #[command(flatten)]
    #[serde(rename = "store", skip_serializing_if = "StoreLimitArgs::is_empty")]
    pub store: StoreLimitArgs,
    #[command(flatten)]
    #[serde(rename = "auth", skip_serializing_if = "AuthArgs::is_empty")]
    pub auth: AuthArgs,
    #[command(flatten)]
    #[serde(rename = "index", skip_serializing_if = "IndexArgs::is_empty")]
    pub index: IndexArgs,
}

#[derive(Debug, Args, Serialize)]
pub struct ImapArgs {
    #[arg(long, env = "YUBIN_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// The metadata service's gRPC URL, e.g. http://127.0.0.1:50051.
    #[arg(long, env = "YUBIN_META_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta_url: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub grpc_auth: GrpcAuthArgs,
    /// Bucket for message bodies; endpoint and credentials come from the standard AWS variables.
    #[arg(long, env = "YUBIN_S3_BUCKET")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_bucket: Option<String>,
    /// Allow LOGIN and AUTHENTICATE on unencrypted connections (off: LOGINDISABLED, RFC 3501
    /// §6.2.3); passwords and tokens then cross the network in the clear.
    #[arg(long, env = "YUBIN_ALLOW_PLAINTEXT_AUTH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_plaintext_auth: Option<bool>,
    #[command(flatten)]
    #[serde(flatten)]
    pub front_end: FrontEndArgs,
}
