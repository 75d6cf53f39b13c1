//! Command-line flags. Every flag also reads `YUBIN_<FLAG>`; all are optional here so that a value
//! in the `--config` file applies when neither flag nor variable is given (see `config`).

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use std::path::PathBuf;

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every role in one process on embedded storage (metadata and bodies under --data-dir).
    Dev(DevArgs),
    /// The metadata service on Redis: gRPC for front-ends, admin REST API on --http-listen.
    Meta(MetaArgs),
    /// A stateless IMAP front-end: talks gRPC to meta, keeps bodies in S3.
    Imap(ImapArgs),
    /// Manage accounts through the admin API.
    User(UserArgs),
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
    #[command(flatten)]
    #[serde(rename = "limits")]
    pub limits: LimitArgs,
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
    /// Also serve the metadata gRPC API here (so separate front-ends can join).
    #[arg(long, env = "YUBIN_GRPC_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_listen: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub front_end: FrontEndArgs,
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
    #[arg(long, env = "YUBIN_GRPC_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_listen: Option<String>,
    /// Health, metrics and the admin API.
    #[arg(long, env = "YUBIN_HTTP_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_listen: Option<String>,
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
    /// Bucket for message bodies; endpoint and credentials come from the standard AWS variables.
    #[arg(long, env = "YUBIN_S3_BUCKET")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_bucket: Option<String>,
    /// Allow LOGIN/AUTHENTICATE PLAIN on unencrypted connections (off: LOGINDISABLED, RFC 3501 §6.2.3).
    #[arg(long, env = "YUBIN_ALLOW_PLAINTEXT_AUTH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_plaintext_auth: Option<bool>,
    #[command(flatten)]
    #[serde(flatten)]
    pub front_end: FrontEndArgs,
}

#[derive(Debug, Args)]
pub struct UserArgs {
    /// The admin API's base URL (meta's HTTP port, or `yubin dev`'s).
    #[arg(
        long,
        env = "YUBIN_ADMIN",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub admin: String,
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account.
    Add {
        name: String,
        #[arg(long, conflicts_with = "password_stdin")]
        password: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set an account's password.
    Passwd {
        name: String,
        #[arg(long, conflicts_with = "password_stdin")]
        password: Option<String>,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts.
    List,
}
