//! Password hashing and the login checks meta answers `Authenticate` and `AuthenticateBearer`
//! with.
//!
//! Passwords are stored as Argon2id PHC strings. Because a verification costs tens of
//! milliseconds of CPU by design, a reconnect storm (every phone of every user re-logging in after
//! a deploy) would otherwise saturate meta: successful verifications are remembered for a while,
//! keyed by a keyed hash of (name, password, stored hash) so that the cache never holds anything
//! a memory dump could turn into a password, and so that a password change invalidates the entry
//! by construction (Dovecot's auth cache works the same way).
//!
//! Failed attempts are counted per login name, per (login name, client address) and per client
//! address (IPv6 per /64, the block a single host usually gets). Once a counter has failures,
//! further attempts are delayed before they are checked, the delay doubling with each failure.
//! Past a limit, attempts of the same name from the same address, and attempts from the same
//! address, are refused without being checked until the failures are forgotten a while after
//! the last one. A name's failures from everywhere together only ever *delay* its attempts
//! (by at most the policy's maximum delay), never refuse them: otherwise anyone could lock a
//! user out by guessing their password, and the owner, from an address that was not failing,
//! with the right password, always gets in. Throttled attempts get the same answer as wrong
//! passwords, and unknown names are counted like known ones, so neither the answer nor its
//! timing tells whether an account exists.
//!
//! The login name of every counter is the one the account lookup uses
//! ([`normalize_login_name`]), so `" alice"` and `"ALICE "` share alice's budget. The counters
//! live in this process and, when meta runs on Redis, also in Redis ([`FailureCounters`]) so
//! that all meta replicas share one budget; when Redis does not answer in time the process's
//! own counters still apply (see [`PasswordAuthenticator::with_shared_counters`]).
//!
//! Bearer tokens (OAUTHBEARER / XOAUTH2) are checked by a [`TokenValidator`] when one is
//! configured; their failures count against the client address.

use async_trait::async_trait;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::time::Instant;
use yubin_meta_api::{
    AccountStore, Authenticator, FailureCounters, MetaError, MetaResult, UserId,
    normalize_login_name,
};

use crate::token::TokenValidator;

mod cache;
mod password;
mod settings;
#[cfg(test)]
mod tests;
mod throttle;

use cache::{CacheKey, SuccessCache};
pub use password::{PasswordError, PasswordParams, hash_password, verify_password};
pub use settings::AuthConfig;
pub use throttle::{InProcessFailureCounters, ThrottlePolicy};
use throttle::{ThrottleKeys, Verdict};

/// Longest password accepted, in bytes. Argon2 copes with any length, but there is no reason to
/// hash megabytes a client sends; the admin API refuses to set longer ones so that every password
/// it sets can log in.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest login name looked up; longer ones cannot exist (the admin API allows 64).
const MAX_NAME_BYTES: usize = 256;

/// Counts of login attempts by outcome since start, for tests and diagnostics (the same
/// numbers go to `yubin_auth_attempts_total{result}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthStats {
    /// Argon2 verifications run (decoys for unknown names included); cache hits are none.
    pub verifications: u64,
    /// Successful logins that needed a verification (or a token check).
    pub success: u64,
    /// Successful logins answered from the cache.
    pub cached: u64,
    /// Wrong password, unknown or disabled account, invalid token.
    pub failure: u64,
    /// Refused without checking because the name from that address, or the address, had too
    /// many failures.
    pub throttled: u64,
    /// Calls to the shared failure counters that failed or timed out (the attempt was judged
    /// by this process's counters alone).
    pub shared_counter_errors: u64,
}

#[derive(Default)]
struct Counters {
    verifications: AtomicU64,
    success: AtomicU64,
    cached: AtomicU64,
    failure: AtomicU64,
    throttled: AtomicU64,
    shared_counter_errors: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Success,
    Cached,
    Failure,
    Throttled,
}

/// Checks passwords against an [`AccountStore`] (and bearer tokens with a [`TokenValidator`]),
/// with a success cache and throttling per name, per name and client address, and per client
/// address.
pub struct PasswordAuthenticator {
    accounts: Arc<dyn AccountStore>,
    /// Per-process key of the cache's HMAC: cache keys mean nothing outside this process.
    secret: [u8; 64],
    config: AuthConfig,
    cache: Mutex<SuccessCache>,
    /// This process's failure counters: the only ones without shared counters, the fallback
    /// with them.
    local: InProcessFailureCounters,
    /// Failure counters shared with the other meta replicas (Redis), when configured.
    shared: Option<Arc<dyn FailureCounters>>,
    verifying: tokio::sync::Semaphore,
    counters: Counters,
    tokens: Option<TokenValidator>,
    /// One gate per cache key being verified: concurrent logins with the same credentials (a
    /// user's devices reconnecting together) wait for the first verification and then hit the
    /// cache instead of each running Argon2.
    in_flight: Mutex<HashMap<CacheKey, Arc<tokio::sync::Mutex<()>>>>,
    /// A hash of a random password nobody knows, made with `config.password_params`.
    decoy: OnceLock<Option<String>>,
}

impl PasswordAuthenticator {
    pub fn new(accounts: Arc<dyn AccountStore>) -> PasswordAuthenticator {
        PasswordAuthenticator::with_config(accounts, AuthConfig::default())
    }

    pub fn with_config(
        accounts: Arc<dyn AccountStore>,
        config: AuthConfig,
    ) -> PasswordAuthenticator {
        let mut secret = [0u8; 64];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        PasswordAuthenticator {
            accounts,
            secret,
            cache: Mutex::new(SuccessCache::new(config.cache_ttl, config.cache_capacity)),
            local: InProcessFailureCounters::new(config.throttle_capacity),
            shared: None,
            verifying: tokio::sync::Semaphore::new(config.max_concurrent_verifications.max(1)),
            counters: Counters::default(),
            tokens: None,
            in_flight: Mutex::new(HashMap::new()),
            decoy: OnceLock::new(),
            config,
        }
    }

    /// Also accepts bearer tokens this validator approves (OAUTHBEARER, XOAUTH2).
    pub fn with_token_validator(mut self, tokens: TokenValidator) -> PasswordAuthenticator {
        self.tokens = Some(tokens);
        self
    }

    /// Also counts failures in `shared`, which every meta replica of the installation uses
    /// (Redis), so that N replicas give a guesser one budget rather than N.
    ///
    /// This process keeps counting too. When the shared counters fail or do not answer within
    /// `shared_counters_timeout`, an attempt is judged by this process's counters alone (fail
    /// open: logins keep working while Redis is unreachable, with per-replica budgets), and
    /// `yubin_auth_shared_counter_errors_total` counts the lapse.
    pub fn with_shared_counters(
        mut self,
        shared: Arc<dyn FailureCounters>,
    ) -> PasswordAuthenticator {
        // At 0 from the start, so that a rate alert works before the first lapse.
        metrics::counter!("yubin_auth_shared_counter_errors_total").increment(0);
        self.shared = Some(shared);
        self
    }

    /// The token validator, when bearer tokens are accepted (to reload its keys).
    pub fn token_validator(&self) -> Option<&TokenValidator> {
        self.tokens.as_ref()
    }

    /// Argon2 verifications run so far (cache hits are not verifications).
    pub fn verification_count(&self) -> u64 {
        self.counters.verifications.load(Ordering::Relaxed)
    }

    /// Attempts by outcome since start.
    pub fn stats(&self) -> AuthStats {
        let c = &self.counters;
        AuthStats {
            verifications: c.verifications.load(Ordering::Relaxed),
            success: c.success.load(Ordering::Relaxed),
            cached: c.cached.load(Ordering::Relaxed),
            failure: c.failure.load(Ordering::Relaxed),
            throttled: c.throttled.load(Ordering::Relaxed),
            shared_counter_errors: c.shared_counter_errors.load(Ordering::Relaxed),
        }
    }

    fn count(&self, outcome: Outcome) {
        let (counter, label) = match outcome {
            Outcome::Success => (&self.counters.success, "success"),
            Outcome::Cached => (&self.counters.cached, "cached"),
            Outcome::Failure => (&self.counters.failure, "failure"),
            Outcome::Throttled => (&self.counters.throttled, "throttled"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("yubin_auth_attempts_total", "result" => label).increment(1);
    }

    fn cache_key(&self, name: &str, password: &str, stored_hash: &str) -> CacheKey {
        // Length prefixes keep ("ab","c") and ("a","bc") apart.
        // A key of exactly one SHA-256 block: HMAC uses it as is, and construction cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new(&self.secret.into());
        for part in [name, password, stored_hash] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, SuccessCache> {
        // A panic while holding the lock leaves a cache that is still consistent enough to use.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A call to the shared counters, bounded in time; `None` (counted, logged) when they fail.
    async fn shared_call<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = MetaResult<T>>,
    ) -> Option<T> {
        let error = match tokio::time::timeout(self.config.shared_counters_timeout, call).await {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_string(),
        };
        self.counters
            .shared_counter_errors
            .fetch_add(1, Ordering::Relaxed);
        metrics::counter!("yubin_auth_shared_counter_errors_total").increment(1);
        tracing::warn!(%error, what, "shared login failure counters unavailable; using this process's");
        None
    }

    /// Recent failures of each present key: the larger of this process's count and the shared
    /// one (the shared one includes this process's failures unless it lost them, e.g. while
    /// Redis was unreachable).
    async fn failure_counts(&self, keys: &[String]) -> Vec<u32> {
        let mut counts = self.local.counts(keys);
        if let Some(shared) = &self.shared
            && let Some(shared) = self.shared_call("read", shared.failure_counts(keys)).await
        {
            for (count, other) in counts.iter_mut().zip(shared) {
                *count = (*count).max(other);
            }
        }
        counts
    }

    /// What the recent failures make of an attempt: refusal by the name from this address or by
    /// the address, only a delay by the name alone. Failures are counted when they happen,
    /// never in advance, so that a burst of right passwords (a reconnect storm behind one NAT
    /// address) is never mistaken for guessing; a burst of wrong ones is caught because the
    /// verdict is asked again right before each Argon2 verification, and those run a few at a
    /// time.
    async fn verdict(&self, keys: &ThrottleKeys) -> (Verdict, bool) {
        let present = keys.present();
        let mut counts = self.failure_counts(&present).await.into_iter();
        let mut next = |key: &Option<String>| match key {
            Some(_) => counts.next().unwrap_or(0),
            None => 0,
        };
        let (name, pair, address) = (next(&keys.name), next(&keys.pair), next(&keys.address));
        let user = self.config.user_throttle;
        let mut verdict = user.delay_only(name);
        if keys.pair.is_some() {
            verdict = verdict.and(user.verdict(pair));
        }
        if keys.address.is_some() {
            verdict = verdict.and(self.config.address_throttle.verdict(address));
        }
        (verdict, pair > 0)
    }

    async fn record_failure(&self, keys: &ThrottleKeys) {
        let user = self.config.user_throttle;
        let address = self.config.address_throttle;
        let mut by_window: Vec<(Duration, Vec<String>)> = Vec::new();
        if user.max_failures > 0 {
            let named: Vec<String> = [&keys.name, &keys.pair]
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            by_window.push((user.window, named));
        }
        if address.max_failures > 0
            && let Some(a) = &keys.address
        {
            match by_window.iter_mut().find(|(w, _)| *w == address.window) {
                Some((_, keys)) => keys.push(a.clone()),
                None => by_window.push((address.window, vec![a.clone()])),
            }
        }
        for (window, keys) in by_window.into_iter().filter(|(_, k)| !k.is_empty()) {
            self.local.add(&keys, window);
            if let Some(shared) = &self.shared {
                self.shared_call("add", shared.add_failure(&keys, window))
                    .await;
            }
        }
        self.count(Outcome::Failure);
    }

    /// A right password clears the failures of the name from this address (`had_failures`
    /// tells whether there are any, so that a reconnect storm writes nothing). The name's own
    /// count stays, so an owner logging in does not hand a guesser elsewhere a fresh budget of
    /// undelayed attempts; the address's stays too, as other users may share it, and so may
    /// whoever made them.
    async fn record_success(&self, keys: &ThrottleKeys, had_failures: bool, outcome: Outcome) {
        if had_failures && let Some(pair) = &keys.pair {
            let pair = std::slice::from_ref(pair);
            self.local.clear(pair);
            if let Some(shared) = &self.shared {
                self.shared_call("clear", shared.clear_failures(pair)).await;
            }
        }
        self.count(outcome);
    }

    /// Runs Argon2 on a blocking thread so the verification does not stall the async workers,
    /// unless the name or the address became throttled while this attempt waited for its turn.
    async fn verify(
        &self,
        password: &str,
        phc: String,
        name: &str,
        keys: &ThrottleKeys,
    ) -> MetaResult<Checked> {
        let _permit = self
            .verifying
            .acquire()
            .await
            .map_err(|_| MetaError::Internal("verification semaphore closed".into()))?;
        if self.verdict(keys).await.0 == Verdict::Refuse {
            return Ok(Checked::Throttled);
        }
        self.counters.verifications.fetch_add(1, Ordering::Relaxed);
        let password = password.to_string();
        let matched = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
            .await
            .map_err(|e| MetaError::Internal(format!("password verification task failed: {e}")))?;
        Ok(match matched {
            Ok(true) => Checked::Match,
            Ok(false) => Checked::Mismatch,
            Err(err) => {
                // A corrupt stored hash is an operator problem; the client only learns that the
                // login failed.
                tracing::error!(user = %name, error = %err, "cannot verify password");
                Checked::Mismatch
            }
        })
    }

    /// A hash of a password nobody has, verified for unknown or disabled accounts so that their
    /// failures take as long as a wrong password: response times do not reveal which names
    /// exist. Made once, on the first unknown name.
    async fn decoy_hash(&self) -> Option<String> {
        if let Some(decoy) = self.decoy.get() {
            return decoy.clone();
        }
        let params = self.config.password_params;
        let made = tokio::task::spawn_blocking(move || {
            let mut random = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut random);
            params.hash(&hex::encode(random)).ok()
        })
        .await
        .ok()
        .flatten();
        self.decoy.get_or_init(|| made).clone()
    }

    /// Verifies the password of an existing account once per set of credentials at a time: the
    /// first of several concurrent identical logins verifies, the others then find its result
    /// in the cache.
    async fn check_account(
        &self,
        name: &str,
        password: &str,
        record: &yubin_meta_api::UserRecord,
        key: CacheKey,
        keys: &ThrottleKeys,
    ) -> MetaResult<Checked> {
        let gate = self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .clone();
        let result = {
            let _turn = gate.lock().await;
            if self.lock_cache().get(&key, Instant::now()) == Some(record.id) {
                Ok(Checked::Cached)
            } else {
                let checked = self
                    .verify(password, record.password_hash.clone(), name, keys)
                    .await;
                if let Ok(Checked::Match) = checked {
                    self.lock_cache().insert(key, record.id, Instant::now());
                }
                checked
            }
        };
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        // Only the map and this task hold the gate: nobody else waits on it.
        if Arc::strong_count(&gate) == 2 {
            in_flight.remove(&key);
        }
        result
    }
}

/// How a password check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checked {
    Match,
    /// Matched a remembered verification.
    Cached,
    Mismatch,
    /// Not checked: too many failures of the name or the address.
    Throttled,
}

#[async_trait]
impl Authenticator for PasswordAuthenticator {
    async fn authenticate(
        &self,
        name: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> MetaResult<UserId> {
        // The lookup's normalization, for the lookup and every counter alike.
        let name = normalize_login_name(name);
        if name.is_empty() || name.len() > MAX_NAME_BYTES || password.len() > MAX_PASSWORD_BYTES {
            self.count(Outcome::Failure);
            return Err(MetaError::AuthenticationFailed);
        }
        let keys = ThrottleKeys::new(Some(&name), client);
        let (delay, had_failures) = match self.verdict(&keys).await {
            (Verdict::Refuse, _) => {
                tracing::info!(user = %name, ?client, "login refused: too many failures");
                self.count(Outcome::Throttled);
                return Err(MetaError::AuthenticationFailed);
            }
            (Verdict::Proceed(delay), had_failures) => (delay, had_failures),
        };
        let record = self
            .accounts
            .user_by_name(&name)
            .await?
            .filter(|r| !r.disabled);
        let key = record
            .as_ref()
            .map(|r| (self.cache_key(&name, password, &r.password_hash), r.id));
        if let Some((key, id)) = key
            && self.lock_cache().get(&key, Instant::now()) == Some(id)
        {
            // Only the right password hits the cache; slowing it down would protect nothing.
            self.record_success(&keys, had_failures, Outcome::Cached)
                .await;
            return Ok(id);
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let checked = match (&record, key) {
            (Some(record), Some((key, _))) => {
                self.check_account(&name, password, record, key, &keys)
                    .await?
            }
            _ => match self.decoy_hash().await {
                // Only the time spent matters: it is the same as for a real account.
                Some(decoy) => match self.verify(password, decoy, &name, &keys).await? {
                    Checked::Throttled => Checked::Throttled,
                    _ => Checked::Mismatch,
                },
                None => Checked::Mismatch,
            },
        };
        match (checked, record) {
            (Checked::Match, Some(record)) => {
                self.record_success(&keys, had_failures, Outcome::Success)
                    .await;
                Ok(record.id)
            }
            (Checked::Cached, Some(record)) => {
                self.record_success(&keys, had_failures, Outcome::Cached)
                    .await;
                Ok(record.id)
            }
            (Checked::Throttled, _) => {
                tracing::info!(user = %name, ?client, "login refused: too many failures");
                self.count(Outcome::Throttled);
                Err(MetaError::AuthenticationFailed)
            }
            _ => {
                tracing::info!(user = %name, ?client, "login failed");
                self.record_failure(&keys).await;
                Err(MetaError::AuthenticationFailed)
            }
        }
    }

    async fn authenticate_bearer(
        &self,
        token: &str,
        authzid: Option<&str>,
        client: Option<IpAddr>,
    ) -> MetaResult<UserId> {
        let Some(tokens) = &self.tokens else {
            self.count(Outcome::Failure);
            return Err(MetaError::AuthenticationFailed);
        };
        // A token names its account itself: only the address's failures count.
        let keys = ThrottleKeys::new(None, client);
        match self.verdict(&keys).await.0 {
            Verdict::Refuse => {
                tracing::info!(?client, "token login refused: too many failures");
                self.count(Outcome::Throttled);
                return Err(MetaError::AuthenticationFailed);
            }
            Verdict::Proceed(delay) if !delay.is_zero() => tokio::time::sleep(delay).await,
            Verdict::Proceed(_) => {}
        }
        let name = match tokens.account_name(token) {
            Ok(name) => normalize_login_name(&name),
            Err(rejected) => {
                tracing::info!(?client, reason = %rejected, "bearer token refused");
                self.record_failure(&keys).await;
                return Err(MetaError::AuthenticationFailed);
            }
        };
        if authzid.is_some_and(|a| normalize_login_name(a) != name) {
            tracing::info!(user = %name, ?client, "bearer token of another account than the authzid");
            self.record_failure(&keys).await;
            return Err(MetaError::AuthenticationFailed);
        }
        match self
            .accounts
            .user_by_name(&name)
            .await?
            .filter(|r| !r.disabled)
        {
            Some(record) => {
                self.count(Outcome::Success);
                Ok(record.id)
            }
            None => {
                tracing::info!(user = %name, ?client, "bearer token of no enabled account");
                self.record_failure(&keys).await;
                Err(MetaError::AuthenticationFailed)
            }
        }
    }

    async fn accepts_bearer_tokens(&self) -> MetaResult<bool> {
        Ok(self.tokens.is_some())
    }

    async fn lookup(&self, name: &str) -> MetaResult<Option<UserId>> {
        let name = normalize_login_name(name);
        if name.is_empty() || name.len() > MAX_NAME_BYTES {
            return Ok(None);
        }
        // Account names, aliases and domains: the rules are `AccountStore::resolve_address`'s.
        self.accounts.resolve_address(&name).await
    }
}
