//! Settings for every role. Each setting has a flag, an environment variable `YUBIN_<SETTING>` and
//! a key in the TOML file given with `--config`; a flag beats the variable, which beats the file,
//! which beats the default. Unknown keys in the file are an error, and `validate()` checks what
//! serde cannot.
//!
//! The merge works by serializing the flags that were given (clap already folded the environment
//! variables in) over the file's table, then deserializing the result once into the role's
//! settings struct, so defaults and `deny_unknown_fields` live in exactly one place.

use anyhow::{Context, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Loads a role's settings: `cli` holds the flags/env values that were given (as `Option`s that
/// skip serialization when absent); `file` is the optional TOML file.
pub fn load<C: Serialize, S: DeserializeOwned>(cli: &C, file: Option<&Path>) -> anyhow::Result<S> {
    let mut table = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            toml::from_str::<toml::Table>(&text)
                .with_context(|| format!("parsing config file {}", path.display()))?
        }
        None => toml::Table::new(),
    };
    let given = toml::Table::try_from(cli).context("encoding command-line settings")?;
    merge(&mut table, given);
    let settings = toml::Value::Table(table)
        .try_into()
        .context("invalid settings")?;
    Ok(settings)
}

/// Overlays `top` on `base`, descending into tables so `[limits]` keys merge one by one.
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

pub fn check_addr(name: &str, addr: &str) -> anyhow::Result<SocketAddr> {
    match addr.parse::<SocketAddr>() {
        Ok(a) => Ok(a),
        Err(_) => bail!("{name} must be an IP:port address, got {addr:?}"),
    }
}

/// `quota_admins` must name login names: non-empty, without spaces or control characters (which
/// no account name has), each once.
pub fn check_quota_admins(names: &[String]) -> anyhow::Result<()> {
    let mut seen = std::collections::HashSet::new();
    for name in names {
        if name.is_empty()
            || name.len() > 255
            || name.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            bail!("quota_admins must list account names, got {name:?}");
        }
        if !seen.insert(name.to_lowercase()) {
            bail!("quota_admins lists {name:?} twice");
        }
    }
    Ok(())
}

/// The metadata store's limits (`[store]`).
pub fn check_store_limits(limits: &yubin_meta_store::StoreLimits) -> anyhow::Result<()> {
    limits
        .validate()
        .map_err(|e| anyhow::anyhow!("[store] limits: {e}"))
}

pub fn check_tls_pair(cert: &Option<PathBuf>, key: &Option<PathBuf>) -> anyhow::Result<()> {
    if cert.is_some() != key.is_some() {
        bail!("--tls-cert and --tls-key must be given together");
    }
    Ok(())
}

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
fn default_max_line() -> usize {
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
const MAX_DRAIN_SECONDS: u64 = 600;
fn default_thread_max_references() -> usize {
    yubin_imap::SortThreadLimits::default().max_references
}
fn default_sort_max_field_bytes() -> usize {
    yubin_imap::SortThreadLimits::default().max_sort_field_bytes
}
const MAX_THREAD_REFERENCES: usize = 10_000;
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

/// The authenticator's settings (`[auth]` in the config file; flags in `cli::AuthArgs`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    #[serde(default = "default_argon2_memory")]
    pub argon2_memory_kib: u32,
    #[serde(default = "default_argon2_iterations")]
    pub argon2_iterations: u32,
    #[serde(default = "default_argon2_parallelism")]
    pub argon2_parallelism: u32,
    #[serde(default = "default_auth_cache_seconds")]
    pub auth_cache_seconds: u64,
    #[serde(default = "default_user_max_failures")]
    pub auth_user_max_failures: u32,
    #[serde(default = "default_address_max_failures")]
    pub auth_address_max_failures: u32,
    #[serde(default = "default_failure_window")]
    pub auth_failure_window_seconds: u64,
    #[serde(default = "default_max_delay_ms")]
    pub auth_max_delay_ms: u64,
    #[serde(default)]
    pub oauth_issuer: Option<String>,
    #[serde(default)]
    pub oauth_audience: Option<String>,
    #[serde(default)]
    pub oauth_hs256_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub oauth_rs256_public_key_file: Option<PathBuf>,
    #[serde(default)]
    pub oauth_jwks_file: Option<PathBuf>,
    #[serde(default = "default_user_claim")]
    pub oauth_user_claim: String,
}

impl Default for AuthSettings {
    fn default() -> AuthSettings {
        toml::Value::Table(toml::Table::new())
            .try_into()
            .expect("every auth setting has a default")
    }
}

/// How often the OAuth key file is looked at for changes.
pub const TOKEN_KEY_RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

impl AuthSettings {
    pub fn password_params(&self) -> yubin_meta::PasswordParams {
        yubin_meta::PasswordParams {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: self.argon2_parallelism,
        }
    }

    pub fn auth_config(&self) -> yubin_meta::AuthConfig {
        use std::time::Duration;
        let window = Duration::from_secs(self.auth_failure_window_seconds);
        let max_delay = Duration::from_millis(self.auth_max_delay_ms);
        let base_delay = Duration::from_millis(250).min(max_delay);
        let user = yubin_meta::ThrottlePolicy::per_user();
        let address = yubin_meta::ThrottlePolicy::per_address();
        yubin_meta::AuthConfig {
            password_params: self.password_params(),
            cache_ttl: Duration::from_secs(self.auth_cache_seconds),
            user_throttle: yubin_meta::ThrottlePolicy {
                max_failures: self.auth_user_max_failures,
                free_failures: user.free_failures.min(self.auth_user_max_failures),
                base_delay,
                max_delay,
                window,
            },
            address_throttle: yubin_meta::ThrottlePolicy {
                max_failures: self.auth_address_max_failures,
                free_failures: address.free_failures.min(self.auth_address_max_failures),
                base_delay,
                max_delay,
                window,
            },
            ..yubin_meta::AuthConfig::default()
        }
    }

    /// The bearer-token settings, when an issuer is configured.
    pub fn token_settings(&self) -> anyhow::Result<Option<yubin_meta::TokenSettings>> {
        use yubin_meta::TokenKeySource as K;
        let keys: Vec<K> = [
            self.oauth_hs256_secret_file.clone().map(K::Hs256SecretFile),
            self.oauth_rs256_public_key_file
                .clone()
                .map(K::Rs256PublicKeyFile),
            self.oauth_jwks_file.clone().map(K::JwksFile),
        ]
        .into_iter()
        .flatten()
        .collect();
        let issuer = self.oauth_issuer.clone().filter(|i| !i.is_empty());
        match (issuer, <[K; 1]>::try_from(keys)) {
            (None, Err(keys)) if keys.is_empty() => Ok(None),
            (Some(issuer), Ok([key])) => Ok(Some(yubin_meta::TokenSettings {
                issuer,
                audience: self.oauth_audience.clone().filter(|a| !a.is_empty()),
                key,
                user_claim: self.oauth_user_claim.clone(),
                // RFC 7519 §4.1.4 allows "some small leeway" for clock skew.
                leeway: std::time::Duration::from_secs(60),
            })),
            (None, _) => bail!("an oauth key file is set but oauth_issuer is not"),
            (Some(_), _) => bail!(
                "oauth_issuer needs exactly one of oauth_hs256_secret_file, \
                 oauth_rs256_public_key_file and oauth_jwks_file"
            ),
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.auth_config()
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid auth settings: {e}"))?;
        if self.auth_failure_window_seconds == 0 {
            bail!("auth_failure_window_seconds must be positive");
        }
        self.token_settings()?;
        Ok(())
    }

    /// The authenticator over `accounts`, with the token validator when an issuer is set.
    pub fn authenticator(
        &self,
        accounts: std::sync::Arc<dyn yubin_meta_api::AccountStore>,
    ) -> anyhow::Result<yubin_meta::PasswordAuthenticator> {
        let auth = yubin_meta::PasswordAuthenticator::with_config(accounts, self.auth_config());
        Ok(match self.token_settings()? {
            Some(settings) => {
                let validator = yubin_meta::TokenValidator::load(settings)
                    .context("loading the oauth issuer key")?;
                auth.with_token_validator(validator)
            }
            None => auth,
        })
    }
}

/// Re-reads the OAuth issuer's key file every [`TOKEN_KEY_RELOAD_INTERVAL`] until `shutdown`.
pub fn watch_token_keys(
    auth: std::sync::Arc<yubin_meta::PasswordAuthenticator>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    if auth.token_validator().is_none() {
        return;
    }
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(TOKEN_KEY_RELOAD_INTERVAL) => {}
            }
            let Some(tokens) = auth.token_validator() else {
                return;
            };
            match tokens.reload() {
                Ok(true) => tracing::info!("oauth issuer keys reloaded"),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reload the oauth issuer keys; keeping the current ones")
                }
            }
        }
    });
}

/// Serves a TLS certificate from files, re-read when they change.
pub fn reloading_tls(
    cert: &Path,
    key: &Path,
    shutdown: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<std::sync::Arc<rustls::ServerConfig>> {
    let reloading = yubin_imap::tls::ReloadingCert::load(cert, key)?;
    let config = reloading.server_config()?;
    reloading.watch(yubin_imap::tls::DEFAULT_RELOAD_INTERVAL, shutdown.clone());
    Ok(config)
}

fn default_argon2_memory() -> u32 {
    yubin_meta::PasswordParams::default().memory_kib
}
fn default_argon2_iterations() -> u32 {
    yubin_meta::PasswordParams::default().iterations
}
fn default_argon2_parallelism() -> u32 {
    yubin_meta::PasswordParams::default().parallelism
}
fn default_auth_cache_seconds() -> u64 {
    yubin_meta::AuthConfig::default().cache_ttl.as_secs()
}
fn default_user_max_failures() -> u32 {
    yubin_meta::ThrottlePolicy::per_user().max_failures
}
fn default_address_max_failures() -> u32 {
    yubin_meta::ThrottlePolicy::per_address().max_failures
}
fn default_failure_window() -> u64 {
    yubin_meta::ThrottlePolicy::per_user().window.as_secs()
}
fn default_max_delay_ms() -> u64 {
    yubin_meta::ThrottlePolicy::per_user().max_delay.as_millis() as u64
}
fn default_user_claim() -> String {
    "sub".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        imap_listen: String,
        #[serde(default)]
        http_listen: Option<String>,
        #[serde(default)]
        limits: ConnectionLimits,
    }

    fn dev_args(argv: &[&str]) -> crate::cli::DevArgs {
        match Cli::try_parse_from(argv).expect("parse").command {
            Command::Dev(args) => args,
            _ => unreachable!("dev subcommand"),
        }
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(f.path(), text).expect("write");
        f
    }

    #[test]
    fn a_flag_beats_the_file_and_limits_merge_key_by_key() {
        let f = file(
            "imap_listen = \"127.0.0.1:1\"\nhttp_listen = \"127.0.0.1:2\"\n\
             [limits]\nmax_nesting = 7\nmax_connections = 9\n",
        );
        let args = dev_args(&[
            "yubin",
            "dev",
            "--imap-listen",
            "127.0.0.1:3",
            "--max-nesting",
            "5",
        ]);
        let s: Settings = load(&args, Some(f.path())).expect("load");
        assert_eq!(s.imap_listen, "127.0.0.1:3");
        assert_eq!(s.http_listen.as_deref(), Some("127.0.0.1:2"));
        assert_eq!(s.limits.max_nesting, 5);
        assert_eq!(s.limits.max_connections, 9);
        assert_eq!(s.limits.max_line_bytes, default_max_line());
    }

    #[test]
    fn quota_admins_come_from_the_flag_or_the_file() {
        #[derive(Debug, Deserialize)]
        struct WithAdmins {
            #[serde(default)]
            quota_admins: Vec<String>,
        }
        let f = file("quota_admins = [\"root\"]\n");
        let s: WithAdmins = load(&dev_args(&["yubin", "dev"]), Some(f.path())).expect("load");
        assert_eq!(s.quota_admins, ["root"]);
        let args = dev_args(&["yubin", "dev", "--quota-admins", "alice,bob"]);
        let s: WithAdmins = load(&args, Some(f.path())).expect("load");
        assert_eq!(s.quota_admins, ["alice", "bob"]);
        check_quota_admins(&s.quota_admins).expect("valid names");
        let config = ConnectionLimits::default().imap_config("h", false, None, s.quota_admins);
        assert_eq!(config.quota_admins, ["alice", "bob"]);
        assert!(check_quota_admins(&["".to_string()]).is_err());
        assert!(check_quota_admins(&["a b".to_string()]).is_err());
        assert!(check_quota_admins(&["Ann".to_string(), "ann".to_string()]).is_err());
    }

    #[test]
    fn lmtp_limits_merge_from_flags_and_file() {
        #[derive(Debug, Deserialize)]
        struct LmtpSettings {
            #[serde(default)]
            lmtp_listen: Option<String>,
            #[serde(default)]
            lmtp: LmtpLimits,
        }
        let f = file(
            "lmtp_listen = \"127.0.0.1:24\"\n[lmtp]\nmax_recipients = 500\nover_quota = \"temporary\"\n",
        );
        let args = dev_args(&["yubin", "dev", "--lmtp-max-message-bytes", "2048"]);
        let s: LmtpSettings = load(&args, Some(f.path())).expect("load");
        assert_eq!(s.lmtp_listen.as_deref(), Some("127.0.0.1:24"));
        assert_eq!(s.lmtp.max_recipients, 500);
        assert_eq!(s.lmtp.max_message_bytes, 2048);
        assert_eq!(s.lmtp.over_quota, crate::cli::OverQuota::Temporary);
        let config = s.lmtp.lmtp_config("mx", None);
        assert_eq!(config.over_quota, yubin_lmtp::OverQuotaReply::Temporary);
        let args = dev_args(&["yubin", "dev", "--lmtp-over-quota", "permanent"]);
        let s: LmtpSettings = load(&args, Some(f.path())).expect("load");
        assert_eq!(s.lmtp.over_quota, crate::cli::OverQuota::Permanent);
        let f = file("[lmtp]\nmax_recipients = 5\n");
        let s: LmtpSettings = load(&dev_args(&["yubin", "dev"]), Some(f.path())).expect("load");
        assert!(
            s.lmtp.validate().is_err(),
            "RFC 5321 asks for 100 recipients"
        );
        let f = file("[lmtp]\nmax_recipient = 500\n");
        assert!(load::<_, LmtpSettings>(&dev_args(&["yubin", "dev"]), Some(f.path())).is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let f = file("imap_listen = \"127.0.0.1:1\"\nimap_lisen = \"typo\"\n");
        let args = dev_args(&["yubin", "dev"]);
        assert!(load::<_, Settings>(&args, Some(f.path())).is_err());
        let f = file("imap_listen = \"127.0.0.1:1\"\n[limits]\nmax_nestin = 3\n");
        assert!(load::<_, Settings>(&args, Some(f.path())).is_err());
    }

    #[test]
    fn hostile_client_limits_reach_the_front_end() {
        let limits: ConnectionLimits = toml::from_str(
            "max_append_messages = 5\nmax_catenate_parts = 6\nmax_search_keys = 7\n\
             max_search_depth = 8\nmax_connections_per_address = 9\n\
             pre_auth_max_bytes = 2048\nlogin_timeout_seconds = 11\nidle_max_seconds = 600\n\
             literal_min_bytes_per_second = 100\n",
        )
        .expect("parses");
        limits.validate().expect("valid");
        let config = limits.imap_config("h", false, None, Vec::new());
        assert_eq!(
            (
                config.limits.max_append_messages,
                config.limits.max_catenate_parts,
                config.limits.max_search_keys,
                config.limits.max_search_depth,
            ),
            (5, 6, 7, 8)
        );
        assert_eq!(config.max_connections_per_address, 9);
        assert_eq!(config.pre_auth_max_bytes, 2048);
        assert_eq!(limits.timeouts().login, std::time::Duration::from_secs(11));
        assert_eq!(
            limits.timeouts().idle_max,
            std::time::Duration::from_secs(600)
        );
        assert_eq!(limits.timeouts().literal_min_rate, 100);
        for bad in [
            "max_search_depth = 1001",
            "pre_auth_max_bytes = 100",
            "login_timeout_seconds = 0",
            "idle_max_seconds = 59",
            "literal_min_bytes_per_second = 0",
            "max_append_messages = 0",
        ] {
            let limits: ConnectionLimits = toml::from_str(bad).expect("parses");
            assert!(limits.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_are_validated() {
        let limits = ConnectionLimits {
            idle_keepalive_seconds: 0,
            ..ConnectionLimits::default()
        };
        assert!(limits.validate().is_err());
        assert!(ConnectionLimits::default().validate().is_ok());
        let limits = ConnectionLimits {
            drain_seconds: MAX_DRAIN_SECONDS + 1,
            ..ConnectionLimits::default()
        };
        assert!(limits.validate().is_err());
    }

    #[test]
    fn sort_and_thread_limits_reach_the_front_end() {
        for bad in [
            ConnectionLimits {
                thread_max_references: 0,
                ..ConnectionLimits::default()
            },
            ConnectionLimits {
                thread_max_references: MAX_THREAD_REFERENCES + 1,
                ..ConnectionLimits::default()
            },
            ConnectionLimits {
                sort_max_field_bytes: 255,
                ..ConnectionLimits::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let f = file(
            "imap_listen = \"127.0.0.1:1\"\n[limits]\nthread_max_references = 16\nsort_max_field_bytes = 1024\n",
        );
        let args = dev_args(&["yubin", "dev", "--thread-max-references", "8"]);
        let s: Settings = load(&args, Some(f.path())).expect("load");
        let config = s.limits.imap_config("localhost", false, None, Vec::new());
        assert_eq!(
            config.sort_thread,
            yubin_imap::SortThreadLimits {
                max_references: 8,
                max_sort_field_bytes: 1024,
            }
        );
        let f = file("imap_listen = \"127.0.0.1:1\"\n");
        let s: Settings = load(&dev_args(&["yubin", "dev"]), Some(f.path())).expect("load");
        assert_eq!(
            s.limits
                .imap_config("localhost", false, None, Vec::new())
                .sort_thread,
            yubin_imap::SortThreadLimits::default()
        );
    }

    #[test]
    fn metadata_limits_come_from_the_flag_or_the_file() {
        let f = file(
            "imap_listen = \"127.0.0.1:1\"\n[limits]\nmetadata_max_entries = 16\n\
             [store]\nmax_metadata_bytes_per_account = 200000\n",
        );
        #[derive(Debug, Deserialize)]
        struct WithStore {
            #[serde(default)]
            limits: ConnectionLimits,
            #[serde(default)]
            store: yubin_meta_store::StoreLimits,
        }
        let args = dev_args(&["yubin", "dev", "--metadata-max-value-bytes", "4096"]);
        let s: WithStore = load(&args, Some(f.path())).expect("load");
        s.limits.validate().expect("valid");
        assert_eq!(
            s.limits
                .imap_config("localhost", false, None, Vec::new())
                .metadata,
            yubin_imap::MetadataLimits {
                max_entry_size: 4096,
                max_entries: 16,
            }
        );
        assert_eq!(s.store.max_metadata_bytes_per_account, 200_000);
        check_store_limits(&s.store).expect("valid store limits");
        let bad = |limits: ConnectionLimits| limits.validate().is_err();
        assert!(bad(ConnectionLimits {
            metadata_max_value_bytes: 10,
            ..ConnectionLimits::default()
        }));
        assert!(bad(ConnectionLimits {
            metadata_max_entries: 0,
            ..ConnectionLimits::default()
        }));
    }

    #[test]
    fn the_drain_window_comes_from_the_flag_or_the_file() {
        let f = file("imap_listen = \"127.0.0.1:1\"\n[limits]\ndrain_seconds = 25\n");
        let s: Settings = load(&dev_args(&["yubin", "dev"]), Some(f.path())).expect("load");
        assert_eq!(s.limits.drain_seconds, 25);
        let args = dev_args(&["yubin", "dev", "--drain-seconds", "3"]);
        let s: Settings = load(&args, Some(f.path())).expect("load");
        let config = s.limits.imap_config("localhost", false, None, Vec::new());
        assert_eq!(config.drain_window, std::time::Duration::from_secs(3));
        let f = file("imap_listen = \"127.0.0.1:1\"\n");
        let s: Settings = load(&dev_args(&["yubin", "dev"]), Some(f.path())).expect("load");
        assert_eq!(s.limits.drain_seconds, 10, "the default");
    }

    #[test]
    fn auth_settings_merge_and_validate() {
        #[derive(Debug, Deserialize)]
        struct WithAuth {
            #[serde(default)]
            auth: AuthSettings,
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "a shared secret of at least thirty-two bytes\n").expect("write");
        let f = file(&format!(
            "[auth]\nargon2_memory_kib = 65536\nauth_cache_seconds = 60\n\
             oauth_issuer = \"https://id.test\"\noauth_hs256_secret_file = {:?}\n",
            secret.display().to_string()
        ));
        let args = dev_args(&["yubin", "dev", "--argon2-iterations", "3"]);
        let s: WithAuth = load(&args, Some(f.path())).expect("load");
        assert_eq!(s.auth.argon2_memory_kib, 65536);
        assert_eq!(s.auth.argon2_iterations, 3);
        assert_eq!(s.auth.argon2_parallelism, 1);
        s.auth.validate().expect("valid");
        let config = s.auth.auth_config();
        assert_eq!(config.cache_ttl, std::time::Duration::from_secs(60));
        assert_eq!(config.user_throttle.max_failures, 10);
        assert!(s.auth.token_settings().expect("tokens").is_some());

        // Defaults without any auth setting: no bearer tokens.
        let s: WithAuth = load(&dev_args(&["yubin", "dev"]), None).expect("load");
        s.auth.validate().expect("defaults are valid");
        assert!(s.auth.token_settings().expect("tokens").is_none());

        let bad = |auth: AuthSettings| auth.validate().is_err();
        assert!(bad(AuthSettings {
            argon2_memory_kib: 4,
            ..AuthSettings::default()
        }));
        assert!(bad(AuthSettings {
            argon2_parallelism: 0,
            ..AuthSettings::default()
        }));
        assert!(bad(AuthSettings {
            auth_max_delay_ms: 60_000,
            ..AuthSettings::default()
        }));
        assert!(bad(AuthSettings {
            oauth_issuer: Some("https://id.test".into()),
            ..AuthSettings::default()
        }));
        assert!(bad(AuthSettings {
            oauth_jwks_file: Some(secret.clone()),
            ..AuthSettings::default()
        }));
        assert!(bad(AuthSettings {
            oauth_issuer: Some("https://id.test".into()),
            oauth_jwks_file: Some(secret.clone()),
            oauth_hs256_secret_file: Some(secret),
            ..AuthSettings::default()
        }));
        let f = file("[auth]\nargon2_memory = 1\n");
        assert!(load::<_, WithAuth>(&dev_args(&["yubin", "dev"]), Some(f.path())).is_err());
    }
}
