//! The authenticator's settings (`[auth]`).

use anyhow::{Context, bail};
use std::path::PathBuf;

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
