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

mod auth;
mod body_cache;
mod index;
mod limits;
pub use auth::{AuthSettings, watch_token_keys};
pub use body_cache::BodyCacheSettings;
pub use index::IndexSettings;
pub use limits::{ConnectionLimits, LmtpLimits};

#[cfg(test)]
mod tests;
