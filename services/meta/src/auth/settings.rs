//! The tuning of the authenticator ([`AuthConfig`]): hash cost, success cache, throttling,
//! shared counters and concurrent verifications, with its validation.

use std::time::Duration;
#[cfg(doc)]
use yubin_meta_api::FailureCounters;

#[cfg(doc)]
use super::PasswordAuthenticator;
use super::{PasswordParams, ThrottlePolicy};

/// Tuning of [`PasswordAuthenticator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthConfig {
    /// Argon2id parameters of new hashes, and of the decoy hash verified for unknown names so
    /// that they take as long as known ones.
    pub password_params: PasswordParams,
    /// How long a successful verification is remembered; zero disables the cache.
    pub cache_ttl: Duration,
    /// Most remembered verifications; the oldest go first.
    pub cache_capacity: usize,
    /// Throttling of failed attempts per (login name, client address); its delays (never its
    /// refusal) also apply per login name alone.
    pub user_throttle: ThrottlePolicy,
    /// Throttling of failed attempts per client address.
    pub address_throttle: ThrottlePolicy,
    /// Most counters (names, name-address pairs and addresses together) this process tracks
    /// at once; the shared counters in Redis expire by themselves.
    pub throttle_capacity: usize,
    /// How long an attempt waits for the shared counters ([`FailureCounters`]) before it is
    /// judged by this process's counters alone.
    pub shared_counters_timeout: Duration,
    /// Most Argon2 verifications running at once. Each holds its memory cost (19 MiB by
    /// default) for its duration, so a storm of wrong passwords must queue rather than fan out
    /// over every blocking thread tokio would start.
    pub max_concurrent_verifications: usize,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            password_params: PasswordParams::default(),
            cache_ttl: Duration::from_secs(5 * 60),
            cache_capacity: 100_000,
            user_throttle: ThrottlePolicy::per_user(),
            address_throttle: ThrottlePolicy::per_address(),
            throttle_capacity: 300_000,
            shared_counters_timeout: Duration::from_millis(500),
            max_concurrent_verifications: std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(2),
        }
    }
}

impl AuthConfig {
    /// Checks every setting; the message names the offending one.
    pub fn validate(&self) -> Result<(), String> {
        self.password_params.validate().map_err(|e| e.to_string())?;
        self.user_throttle.validate("per-user throttling")?;
        self.address_throttle.validate("per-address throttling")?;
        if self.max_concurrent_verifications == 0 {
            return Err("at least one concurrent verification is needed".into());
        }
        // The front-end's call to meta times out after 30 s: several waits must fit well before.
        if self.shared_counters_timeout.is_zero()
            || self.shared_counters_timeout > Duration::from_secs(5)
        {
            return Err("the shared counters timeout must be between 1 ms and 5 s".into());
        }
        Ok(())
    }
}
