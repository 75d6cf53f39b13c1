//! Limits of the roles that serve IMAP (`[limits]`) and LMTP (`[lmtp]`).

use anyhow::bail;
use std::path::PathBuf;

/// Limits a front-end applies to each connection (RFC 3501 leaves them to the server).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionLimits {
    #[serde(default = "default_max_line")]
    pub max_line_bytes: usize,
    #[serde(default = "default_max_literal")]
    pub max_literal_bytes: u64,
    #[serde(default = "default_max_buffered_literal")]
    pub max_buffered_literal_bytes: usize,
    #[serde(default = "default_max_nesting")]
    pub max_nesting: usize,
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    #[serde(default = "default_idle_keepalive")]
    pub idle_keepalive_seconds: u64,
    #[serde(default = "default_max_auth_failures")]
    pub max_auth_failures: u32,
    #[serde(default = "default_drain_seconds")]
    pub drain_seconds: u64,
    #[serde(default = "default_thread_max_references")]
    pub thread_max_references: usize,
    #[serde(default = "default_sort_max_field_bytes")]
    pub sort_max_field_bytes: usize,
    #[serde(default = "default_max_append_messages")]
    pub max_append_messages: usize,
    #[serde(default = "default_max_catenate_parts")]
    pub max_catenate_parts: usize,
    #[serde(default = "default_max_search_keys")]
    pub max_search_keys: usize,
    #[serde(default = "default_max_search_depth")]
    pub max_search_depth: usize,
    #[serde(default = "default_max_connections_per_address")]
    pub max_connections_per_address: usize,
    #[serde(default = "default_pre_auth_max_bytes")]
    pub pre_auth_max_bytes: usize,
    #[serde(default = "default_login_timeout")]
    pub login_timeout_seconds: u64,
    #[serde(default = "default_idle_max")]
    pub idle_max_seconds: u64,
    #[serde(default = "default_literal_min_rate")]
    pub literal_min_bytes_per_second: u64,
    #[serde(default = "default_max_flags_per_command")]
    pub max_flags_per_command: usize,
    #[serde(default = "default_fetch_prefetch")]
    pub fetch_prefetch: usize,
    #[serde(default = "default_fetch_prefetch_max_bytes")]
    pub fetch_prefetch_max_bytes: u64,
    #[serde(default = "default_metadata_max_value_bytes")]
    pub metadata_max_value_bytes: u32,
    #[serde(default = "default_metadata_max_entries")]
    pub metadata_max_entries: u32,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            max_line_bytes: default_max_line(),
            max_literal_bytes: default_max_literal(),
            max_buffered_literal_bytes: default_max_buffered_literal(),
            max_nesting: default_max_nesting(),
            max_connections: default_max_connections(),
            idle_keepalive_seconds: default_idle_keepalive(),
            max_auth_failures: default_max_auth_failures(),
            drain_seconds: default_drain_seconds(),
            thread_max_references: default_thread_max_references(),
            sort_max_field_bytes: default_sort_max_field_bytes(),
            max_append_messages: default_max_append_messages(),
            max_catenate_parts: default_max_catenate_parts(),
            max_search_keys: default_max_search_keys(),
            max_search_depth: default_max_search_depth(),
            max_connections_per_address: default_max_connections_per_address(),
            pre_auth_max_bytes: default_pre_auth_max_bytes(),
            login_timeout_seconds: default_login_timeout(),
            idle_max_seconds: default_idle_max(),
            literal_min_bytes_per_second: default_literal_min_rate(),
            max_flags_per_command: default_max_flags_per_command(),
            fetch_prefetch: default_fetch_prefetch(),
            fetch_prefetch_max_bytes: default_fetch_prefetch_max_bytes(),
            metadata_max_value_bytes: default_metadata_max_value_bytes(),
            metadata_max_entries: default_metadata_max_entries(),
        }
    }
}

impl ConnectionLimits {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_line_bytes < 1024 {
            bail!("max_line_bytes must be at least 1024 (RFC 7162 §4 asks for 8192)");
        }
        if self.max_buffered_literal_bytes < 1024 {
            bail!("max_buffered_literal_bytes must be at least 1024");
        }
        if self.max_literal_bytes == 0 || self.max_nesting == 0 || self.max_connections == 0 {
            bail!("max_literal_bytes, max_nesting and max_connections must be positive");
        }
        if self.idle_keepalive_seconds == 0 || self.idle_keepalive_seconds > 29 * 60 {
            // RFC 2177: clients re-issue IDLE at least every 29 minutes; a keepalive must come
            // sooner than NAT tables forget the flow.
            bail!("idle_keepalive_seconds must be between 1 and 1740");
        }
        if self.thread_max_references == 0 || self.thread_max_references > MAX_THREAD_REFERENCES {
            // At least the parent (RFC 5256 §4 step 1 B); the cap keeps THREAD's work per
            // message bounded whatever a message's References holds.
            bail!("thread_max_references must be between 1 and {MAX_THREAD_REFERENCES}");
        }
        if self.sort_max_field_bytes < 256 || self.sort_max_field_bytes > MAX_SORT_FIELD_BYTES {
            bail!("sort_max_field_bytes must be between 256 and {MAX_SORT_FIELD_BYTES}");
        }
        if self.max_append_messages == 0
            || self.max_catenate_parts == 0
            || self.max_search_keys == 0
        {
            bail!("max_append_messages, max_catenate_parts and max_search_keys must be positive");
        }
        if self.max_search_depth == 0 || self.max_search_depth > MAX_SEARCH_DEPTH {
            // The parser's own ceiling: deeper trees are walked recursively downstream.
            bail!("max_search_depth must be between 1 and {MAX_SEARCH_DEPTH}");
        }
        if self.pre_auth_max_bytes < 1024 {
            // LOGIN with a long password, AUTHENTICATE with a bearer token (RFC 7628).
            bail!("pre_auth_max_bytes must be at least 1024");
        }
        if self.login_timeout_seconds == 0 || self.login_timeout_seconds > 3600 {
            bail!("login_timeout_seconds must be between 1 and 3600");
        }
        if self.idle_max_seconds < 60 || self.idle_max_seconds > 24 * 3600 {
            bail!("idle_max_seconds must be between 60 and 86400");
        }
        if self.literal_min_bytes_per_second == 0 {
            bail!("literal_min_bytes_per_second must be positive");
        }
        if self.fetch_prefetch == 0 || self.fetch_prefetch > 256 {
            bail!("fetch_prefetch must be between 1 and 256");
        }
        if self.fetch_prefetch_max_bytes < 4096 {
            bail!("fetch_prefetch_max_bytes must be at least 4096");
        }
        if self.max_flags_per_command < 16 {
            // The five system flags and a handful of keywords must always fit.
            bail!("max_flags_per_command must be at least 16");
        }
        if !(1024..=MAX_METADATA_VALUE_BYTES).contains(&self.metadata_max_value_bytes) {
            // RFC 5464 §4.3 expects room for at least a short comment; the ceiling keeps one
            // GETMETADATA answer within what the store's per-account budget can hold anyway.
            bail!("metadata_max_value_bytes must be between 1024 and {MAX_METADATA_VALUE_BYTES}");
        }
        if !(1..=MAX_METADATA_ENTRIES).contains(&self.metadata_max_entries) {
            bail!("metadata_max_entries must be between 1 and {MAX_METADATA_ENTRIES}");
        }
        if self.drain_seconds > MAX_DRAIN_SECONDS {
            // The drain must end well before any orchestrator's kill deadline is reasonable.
            bail!("drain_seconds must be at most {MAX_DRAIN_SECONDS}");
        }
        Ok(())
    }

    /// The front-end's configuration; `spool_dir` is where APPEND literals above
    /// `max_buffered_literal_bytes` are written on their way to the blob store, `quota_admins`
    /// the accounts allowed to SETQUOTA.
    pub fn imap_config(
        &self,
        hostname: &str,
        allow_plaintext_auth: bool,
        spool_dir: Option<PathBuf>,
        quota_admins: Vec<String>,
    ) -> yubin_imap::ImapConfig {
        yubin_imap::ImapConfig {
            limits: yubin_imap_proto::Limits {
                max_line: self.max_line_bytes,
                max_literal: self.max_literal_bytes,
                max_command: self
                    .max_literal_bytes
                    .saturating_add(self.max_line_bytes as u64),
                max_nesting: self.max_nesting,
                max_buffered_literal: self.max_buffered_literal_bytes,
                max_append_messages: self.max_append_messages,
                max_catenate_parts: self.max_catenate_parts,
                max_search_keys: self.max_search_keys,
                max_search_depth: self.max_search_depth,
            },
            idle_keepalive: std::time::Duration::from_secs(self.idle_keepalive_seconds),
            allow_plaintext_auth,
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            // Local peers (a proxy, health checks) are not remote hosts to cap.
            limit_loopback_per_address: false,
            pre_auth_max_bytes: self.pre_auth_max_bytes,
            greeting_hostname: hostname.to_string(),
            max_auth_failures: self.max_auth_failures,
            spool_dir,
            drain_window: std::time::Duration::from_secs(self.drain_seconds),
            metadata: yubin_imap::MetadataLimits {
                max_entry_size: self.metadata_max_value_bytes,
                max_entries: self.metadata_max_entries,
            },
            sort_thread: yubin_imap::SortThreadLimits {
                max_references: self.thread_max_references,
                max_sort_field_bytes: self.sort_max_field_bytes,
            },
            max_flags_per_command: self.max_flags_per_command,
            fetch_prefetch: self.fetch_prefetch,
            fetch_prefetch_max_bytes: self.fetch_prefetch_max_bytes,
            quota_admins,
        }
    }

    /// The front-end's connection timers: login deadline, IDLE length and literal rate from
    /// here, the rest defaults.
    pub fn timeouts(&self) -> yubin_imap::Timeouts {
        yubin_imap::Timeouts {
            login: std::time::Duration::from_secs(self.login_timeout_seconds),
            idle_max: std::time::Duration::from_secs(self.idle_max_seconds),
            literal_min_rate: self.literal_min_bytes_per_second,
            ..yubin_imap::Timeouts::default()
        }
    }
}

fn default_idle_max() -> u64 {
    yubin_imap::Timeouts::default().idle_max.as_secs()
}
fn default_literal_min_rate() -> u64 {
    yubin_imap::Timeouts::default().literal_min_rate
}
fn default_max_append_messages() -> usize {
    yubin_imap_proto::Limits::default().max_append_messages
}
fn default_max_catenate_parts() -> usize {
    yubin_imap_proto::Limits::default().max_catenate_parts
}
fn default_max_search_keys() -> usize {
    yubin_imap_proto::Limits::default().max_search_keys
}
fn default_max_search_depth() -> usize {
    yubin_imap_proto::Limits::default().max_search_depth
}
/// The IMAP parser's hard ceiling on search nesting.
const MAX_SEARCH_DEPTH: usize = 1000;
fn default_max_connections_per_address() -> usize {
    yubin_imap::ImapConfig::default().max_connections_per_address
}
fn default_pre_auth_max_bytes() -> usize {
    yubin_imap::ImapConfig::default().pre_auth_max_bytes
}
fn default_login_timeout() -> u64 {
    yubin_imap::Timeouts::default().login.as_secs()
}

/// Ceilings of the METADATA settings: a value of 16 MiB, 10 000 entries per mailbox (the
/// store's per-account byte budget bounds them together).
const MAX_METADATA_VALUE_BYTES: u32 = 16 * 1024 * 1024;
const MAX_METADATA_ENTRIES: u32 = 10_000;
fn default_metadata_max_value_bytes() -> u32 {
    yubin_imap::MetadataLimits::default().max_entry_size
}
fn default_metadata_max_entries() -> u32 {
    yubin_imap::MetadataLimits::default().max_entries
}
fn default_fetch_prefetch() -> usize {
    yubin_imap::ImapConfig::default().fetch_prefetch
}
fn default_fetch_prefetch_max_bytes() -> u64 {
    yubin_imap::ImapConfig::default().fetch_prefetch_max_bytes
}
fn default_max_flags_per_command() -> usize {
    yubin_imap::ImapConfig::default().max_flags_per_command
}
pub(super) fn default_max_line() -> usize {
    64 * 1024
}
fn default_max_literal() -> u64 {
    64 * 1024 * 1024
}
fn default_max_buffered_literal() -> usize {
    256 * 1024
}
fn default_max_nesting() -> usize {
    64
}
fn default_max_connections() -> usize {
    20_000
}
fn default_idle_keepalive() -> u64 {
    120
}
fn default_max_auth_failures() -> u32 {
    3
}
/// Long enough that a node's reconnecting clients do not arrive at the others as one burst,
/// short enough to fit Kubernetes' default 30 s termination grace period.
fn default_drain_seconds() -> u64 {
    10
}
pub(super) const MAX_DRAIN_SECONDS: u64 = 600;
fn default_thread_max_references() -> usize {
    yubin_imap::SortThreadLimits::default().max_references
}
fn default_sort_max_field_bytes() -> usize {
    yubin_imap::SortThreadLimits::default().max_sort_field_bytes
}
pub(super) const MAX_THREAD_REFERENCES: usize = 10_000;
const MAX_SORT_FIELD_BYTES: usize = 1024 * 1024;

/// LMTP limits (`[lmtp]` in the file); the defaults are `yubin_lmtp::LmtpConfig`'s.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LmtpLimits {
    #[serde(default = "default_lmtp_max_message")]
    pub max_message_bytes: u64,
    #[serde(default = "default_lmtp_max_recipients")]
    pub max_recipients: usize,
    #[serde(default = "default_lmtp_max_connections")]
    pub max_connections: usize,
    #[serde(default = "default_lmtp_max_line")]
    pub max_line_bytes: usize,
    #[serde(default = "default_lmtp_max_buffered")]
    pub max_buffered_message_bytes: usize,
    #[serde(default = "default_lmtp_over_quota")]
    pub over_quota: crate::cli::OverQuota,
}

impl Default for LmtpLimits {
    fn default() -> LmtpLimits {
        LmtpLimits {
            max_message_bytes: default_lmtp_max_message(),
            max_recipients: default_lmtp_max_recipients(),
            max_connections: default_lmtp_max_connections(),
            max_line_bytes: default_lmtp_max_line(),
            max_buffered_message_bytes: default_lmtp_max_buffered(),
            over_quota: default_lmtp_over_quota(),
        }
    }
}

impl LmtpLimits {
    pub fn validate(&self) -> anyhow::Result<()> {
        // RFC 5321 §4.5.3.1: at least 512-octet command lines and 100 recipients must be taken.
        if self.max_line_bytes < 512 {
            bail!("lmtp max_line_bytes must be at least 512 (RFC 5321 §4.5.3.1.4)");
        }
        if self.max_recipients < 100 {
            bail!("lmtp max_recipients must be at least 100 (RFC 5321 §4.5.3.1.8)");
        }
        if self.max_message_bytes == 0 || self.max_connections == 0 {
            bail!("lmtp max_message_bytes and max_connections must be positive");
        }
        if self.max_buffered_message_bytes < 1024 {
            bail!("lmtp max_buffered_message_bytes must be at least 1024");
        }
        Ok(())
    }

    pub fn lmtp_config(
        &self,
        hostname: &str,
        spool_dir: Option<PathBuf>,
    ) -> yubin_lmtp::LmtpConfig {
        yubin_lmtp::LmtpConfig {
            hostname: hostname.to_string(),
            max_message_bytes: self.max_message_bytes,
            max_recipients: self.max_recipients,
            max_line_bytes: self.max_line_bytes,
            max_connections: self.max_connections,
            max_buffered_message_bytes: self.max_buffered_message_bytes,
            spool_dir,
            over_quota: match self.over_quota {
                crate::cli::OverQuota::Permanent => yubin_lmtp::OverQuotaReply::Permanent,
                crate::cli::OverQuota::Temporary => yubin_lmtp::OverQuotaReply::Temporary,
            },
            ..yubin_lmtp::LmtpConfig::default()
        }
    }
}

fn default_lmtp_max_message() -> u64 {
    yubin_lmtp::LmtpConfig::default().max_message_bytes
}
fn default_lmtp_max_recipients() -> usize {
    yubin_lmtp::LmtpConfig::default().max_recipients
}
fn default_lmtp_max_connections() -> usize {
    yubin_lmtp::LmtpConfig::default().max_connections
}
fn default_lmtp_max_line() -> usize {
    yubin_lmtp::LmtpConfig::default().max_line_bytes
}
fn default_lmtp_max_buffered() -> usize {
    yubin_lmtp::LmtpConfig::default().max_buffered_message_bytes
}
fn default_lmtp_over_quota() -> crate::cli::OverQuota {
    crate::cli::OverQuota::Permanent
}
