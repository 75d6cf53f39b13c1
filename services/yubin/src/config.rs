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
        Ok(())
    }

    /// The front-end's configuration; `spool_dir` is where APPEND literals above
    /// `max_buffered_literal_bytes` are written on their way to the blob store.
    pub fn imap_config(
        &self,
        hostname: &str,
        allow_plaintext_auth: bool,
        spool_dir: Option<PathBuf>,
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
            },
            idle_keepalive: std::time::Duration::from_secs(self.idle_keepalive_seconds),
            allow_plaintext_auth,
            max_connections: self.max_connections,
            greeting_hostname: hostname.to_string(),
            max_auth_failures: self.max_auth_failures,
            spool_dir,
        }
    }
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
    fn unknown_keys_are_refused() {
        let f = file("imap_listen = \"127.0.0.1:1\"\nimap_lisen = \"typo\"\n");
        let args = dev_args(&["yubin", "dev"]);
        assert!(load::<_, Settings>(&args, Some(f.path())).is_err());
        let f = file("imap_listen = \"127.0.0.1:1\"\n[limits]\nmax_nestin = 3\n");
        assert!(load::<_, Settings>(&args, Some(f.path())).is_err());
    }

    #[test]
    fn limits_are_validated() {
        let limits = ConnectionLimits {
            idle_keepalive_seconds: 0,
            ..ConnectionLimits::default()
        };
        assert!(limits.validate().is_err());
        assert!(ConnectionLimits::default().validate().is_ok());
    }
}
