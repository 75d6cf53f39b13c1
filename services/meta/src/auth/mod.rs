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

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};
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

/// Longest password accepted, in bytes. Argon2 copes with any length, but there is no reason to
/// hash megabytes a client sends; the admin API refuses to set longer ones so that every password
/// it sets can log in.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest login name looked up; longer ones cannot exist (the admin API allows 64).
const MAX_NAME_BYTES: usize = 256;

/// Errors of password hashing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("stored password hash is malformed: {0}")]
    MalformedHash(String),
}

impl From<PasswordError> for MetaError {
    fn from(err: PasswordError) -> MetaError {
        MetaError::Internal(err.to_string())
    }
}

/// Argon2id cost parameters for new hashes. Existing hashes carry their own parameters, so
/// changing these affects only passwords set afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Degree of parallelism (lanes).
    pub parallelism: u32,
}

impl Default for PasswordParams {
    /// OWASP's recommended Argon2id minimum: 19 MiB, 2 passes, 1 lane.
    fn default() -> PasswordParams {
        PasswordParams {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl PasswordParams {
    /// Checks the parameters against Argon2's rules (RFC 9106 §3.1) and sane upper bounds, so a
    /// typo in the configuration is an error at start-up rather than at the first password set.
    pub fn validate(&self) -> Result<(), PasswordError> {
        if !(1..=64).contains(&self.parallelism) {
            return Err(PasswordError::Params(format!(
                "parallelism must be between 1 and 64, got {}",
                self.parallelism
            )));
        }
        if self.iterations == 0 || self.iterations > 100 {
            return Err(PasswordError::Params(format!(
                "iterations must be between 1 and 100, got {}",
                self.iterations
            )));
        }
        // Argon2 needs 8 KiB per lane; above 4 GiB a single login would exhaust most machines.
        let min_memory = 8 * self.parallelism;
        if self.memory_kib < min_memory || self.memory_kib > 4 * 1024 * 1024 {
            return Err(PasswordError::Params(format!(
                "memory must be between {min_memory} KiB (8 per lane) and 4 GiB, got {} KiB",
                self.memory_kib
            )));
        }
        self.hasher().map(|_| ())
    }

    fn hasher(&self) -> Result<Argon2<'static>, PasswordError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| PasswordError::Params(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Hashes `password` with these parameters and a random salt; returns the PHC string.
    pub fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let salt = SaltString::generate(&mut OsRng);
        self.hasher()?
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    }
}

/// Hashes `password` with the default [`PasswordParams`]; returns the PHC string.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    PasswordParams::default().hash(password)
}

/// Whether `password` matches the PHC string `phc` (with the parameters recorded in it).
pub fn verify_password(password: &str, phc: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(|e| PasswordError::MalformedHash(e.to_string()))?;
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(PasswordError::MalformedHash(e.to_string())),
    }
}

/// When a counter (of a login name, a login name and client address, or a client address) with
/// failed attempts is slowed down and then refused. For a login name alone the refusal is
/// replaced by the maximum delay ([`ThrottlePolicy::delay_only`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures tolerated before attempts are delayed.
    pub free_failures: u32,
    /// Delay of the first delayed attempt; each further failure doubles it, up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Failures after which attempts are refused without being checked; zero disables both
    /// delay and refusal for this kind of key.
    pub max_failures: u32,
    /// How long failures are remembered after the last one (the refusal lasts that long).
    pub window: Duration,
}

impl ThrottlePolicy {
    /// Per login name from one client address (refusal) and per login name alone (delays only):
    /// a few typos are normal, ten wrong passwords are a guesser.
    pub fn per_user() -> ThrottlePolicy {
        ThrottlePolicy {
            free_failures: 1,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            max_failures: 10,
            window: Duration::from_secs(15 * 60),
        }
    }

    /// Per client address: higher limits, since many users may share one address (NAT).
    pub fn per_address() -> ThrottlePolicy {
        ThrottlePolicy {
            free_failures: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            max_failures: 30,
            window: Duration::from_secs(15 * 60),
        }
    }

    /// Checks that the policy can be applied.
    pub fn validate(&self, what: &str) -> Result<(), String> {
        if self.max_failures == 0 {
            return Ok(());
        }
        if self.window.is_zero() {
            return Err(format!("{what}: the failure window must be positive"));
        }
        if self.base_delay > self.max_delay {
            return Err(format!("{what}: the base delay exceeds the maximum delay"));
        }
        // The front-end's call to meta times out after 30 s; a delay must end well before.
        if self.max_delay > Duration::from_secs(10) {
            return Err(format!("{what}: the maximum delay must be at most 10 s"));
        }
        Ok(())
    }

    /// What an attempt of a key with `failures` recent failures gets.
    fn verdict(&self, failures: u32) -> Verdict {
        if self.max_failures == 0 || failures <= self.free_failures.min(self.max_failures - 1) {
            return Verdict::Proceed(Duration::ZERO);
        }
        if failures >= self.max_failures {
            return Verdict::Refuse;
        }
        let doublings = (failures - self.free_failures - 1).min(20);
        Verdict::Proceed(
            self.base_delay
                .saturating_mul(1 << doublings)
                .min(self.max_delay),
        )
    }

    /// The same delays, but never a refusal: what a login name's failures from every address
    /// together make of an attempt. Guesses from elsewhere slow the owner down by at most
    /// `max_delay`; they cannot lock them out.
    fn delay_only(&self, failures: u32) -> Verdict {
        match self.verdict(failures) {
            Verdict::Refuse => Verdict::Proceed(self.max_delay),
            proceed => proceed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Check the credentials after waiting this long.
    Proceed(Duration),
    /// Refuse without checking.
    Refuse,
}

impl Verdict {
    /// The stricter of two verdicts.
    fn and(self, other: Verdict) -> Verdict {
        match (self, other) {
            (Verdict::Refuse, _) | (_, Verdict::Refuse) => Verdict::Refuse,
            (Verdict::Proceed(a), Verdict::Proceed(b)) => Verdict::Proceed(a.max(b)),
        }
    }
}

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

type CacheKey = [u8; 32];

/// Successful verifications, expiring in insertion order (the TTL is the same for all).
struct SuccessCache {
    ttl: Duration,
    capacity: usize,
    entries: HashMap<CacheKey, (UserId, Instant)>,
    /// (key, expiry) in insertion order; an item is stale when the map holds a later expiry.
    order: VecDeque<(CacheKey, Instant)>,
}

impl SuccessCache {
    fn new(ttl: Duration, capacity: usize) -> SuccessCache {
        SuccessCache {
            ttl,
            capacity,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn get(&self, key: &CacheKey, now: Instant) -> Option<UserId> {
        match self.entries.get(key) {
            Some(&(user, expires)) if expires > now => Some(user),
            _ => None,
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((key, expires)) = self.order.pop_front()
            && self.entries.get(&key).is_some_and(|e| e.1 == expires)
        {
            self.entries.remove(&key);
        }
    }

    fn insert(&mut self, key: CacheKey, user: UserId, now: Instant) {
        if self.ttl.is_zero() || self.capacity == 0 {
            return;
        }
        while self
            .order
            .front()
            .is_some_and(|&(_, expires)| expires <= now)
        {
            self.pop_oldest();
        }
        while !self.order.is_empty()
            && (self.entries.len() >= self.capacity || self.order.len() >= 2 * self.capacity)
        {
            self.pop_oldest();
        }
        let expires = now + self.ttl;
        self.entries.insert(key, (user, expires));
        self.order.push_back((key, expires));
    }
}

/// Recent failures of one counter.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    /// A failure window after the last failure.
    expires: Instant,
}

/// Failure counters of this process (names, name-address pairs and addresses alike), each
/// forgotten a window after its last failure; at most `capacity` at once.
struct LocalCounters {
    capacity: usize,
    failures: HashMap<String, Failures>,
}

impl LocalCounters {
    fn new(capacity: usize) -> LocalCounters {
        LocalCounters {
            capacity: capacity.max(1),
            failures: HashMap::new(),
        }
    }

    /// Recent failures of `key` (an expired entry is dropped on the way).
    fn count(&mut self, key: &str, now: Instant) -> u32 {
        match self.failures.get(key) {
            Some(f) if f.expires > now => f.count,
            Some(_) => {
                self.failures.remove(key);
                0
            }
            None => 0,
        }
    }

    fn add(&mut self, key: &str, window: Duration, now: Instant) {
        let count = self.count(key, now);
        self.failures.insert(
            key.to_string(),
            Failures {
                count: count.saturating_add(1),
                expires: now + window,
            },
        );
        if self.failures.len() > self.capacity {
            self.shrink(now);
        }
    }

    fn clear(&mut self, key: &str) {
        self.failures.remove(key);
    }

    /// Over capacity (a spray over many names or addresses): drops expired entries, then the
    /// tenth that expire first, so the work is amortised over many inserts.
    fn shrink(&mut self, now: Instant) {
        self.failures.retain(|_, f| f.expires > now);
        if self.failures.len() <= self.capacity {
            return;
        }
        let target = self.capacity - self.capacity / 10;
        let excess = self.failures.len() - target;
        let mut expiries: Vec<Instant> = self.failures.values().map(|f| f.expires).collect();
        let (_, cutoff, _) = expiries.select_nth_unstable(excess - 1);
        let cutoff = *cutoff;
        let mut to_drop = excess;
        self.failures.retain(|_, f| {
            if to_drop > 0 && f.expires <= cutoff {
                to_drop -= 1;
                false
            } else {
                true
            }
        });
    }
}

/// [`FailureCounters`] kept in memory. Every [`PasswordAuthenticator`] keeps one: its only
/// counters under `yubin dev` (one process), its fallback beside shared counters under
/// `yubin meta`. Authenticators of one process can also share one as their shared counters.
pub struct InProcessFailureCounters(Mutex<LocalCounters>);

impl InProcessFailureCounters {
    /// Counters for at most `capacity` keys at once (the oldest are forgotten first).
    pub fn new(capacity: usize) -> InProcessFailureCounters {
        InProcessFailureCounters(Mutex::new(LocalCounters::new(capacity)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LocalCounters> {
        // A panic while holding the lock leaves counters that are still consistent enough.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn counts(&self, keys: &[String]) -> Vec<u32> {
        let now = Instant::now();
        let mut c = self.lock();
        keys.iter().map(|k| c.count(k, now)).collect()
    }

    fn add(&self, keys: &[String], window: Duration) {
        let now = Instant::now();
        let mut c = self.lock();
        for key in keys {
            c.add(key, window, now);
        }
    }

    fn clear(&self, keys: &[String]) {
        let mut c = self.lock();
        for key in keys {
            c.clear(key);
        }
    }
}

#[async_trait]
impl FailureCounters for InProcessFailureCounters {
    async fn failure_counts(&self, keys: &[String]) -> MetaResult<Vec<u32>> {
        Ok(self.counts(keys))
    }
    async fn add_failure(&self, keys: &[String], window: Duration) -> MetaResult<()> {
        self.add(keys, window);
        Ok(())
    }
    async fn clear_failures(&self, keys: &[String]) -> MetaResult<()> {
        self.clear(keys);
        Ok(())
    }
}

/// The counters one attempt is judged by and counted against.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ThrottleKeys {
    /// The login name alone: its failures only ever delay attempts, from anywhere.
    name: Option<String>,
    /// The login name from this client address (or from an unknown one): refused past a limit.
    pair: Option<String>,
    /// The client address (IPv6: its /64), when known: refused past a limit.
    address: Option<String>,
}

impl ThrottleKeys {
    /// `name` must be normalized ([`normalize_login_name`]). Keys are hashes: bounded in length
    /// whatever the client sent, and no name or address is written to Redis.
    fn new(name: Option<&str>, client: Option<IpAddr>) -> ThrottleKeys {
        let address = client.map(|ip| address_key(ip).to_string());
        // A client without a known address shares the pair counters of every such client, but
        // no address counter: refusing them all together would lock out every such caller.
        let at = address.as_deref().unwrap_or("-");
        ThrottleKeys {
            name: name.map(|n| counter_key("n", &[n])),
            pair: name.map(|n| counter_key("p", &[n, at])),
            address: address.as_deref().map(|a| counter_key("a", &[a])),
        }
    }

    /// The keys that are present, in the order name, pair, address.
    fn present(&self) -> Vec<String> {
        [&self.name, &self.pair, &self.address]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

/// `<kind>:<first 128 bits of SHA-256 over the length-prefixed parts, hex>`.
fn counter_key(kind: &str, parts: &[&str]) -> String {
    let mut hash = <Sha256 as sha2::Digest>::new();
    for part in std::iter::once(kind).chain(parts.iter().copied()) {
        sha2::Digest::update(&mut hash, (part.len() as u64).to_be_bytes());
        sha2::Digest::update(&mut hash, part.as_bytes());
    }
    let digest = sha2::Digest::finalize(hash);
    format!("{kind}:{}", hex::encode(&digest[..16]))
}

/// The throttling key of a client address: IPv4 as is, IPv6 by its /64 prefix (what one
/// subscriber usually gets, RFC 6177), an IPv4-mapped IPv6 address as the IPv4 address.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use yubin_meta_api::UserRecord;

    /// Cheap parameters: the tests are about the logic, not the cost.
    const FAST: PasswordParams = PasswordParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[derive(Default)]
    struct Accounts {
        users: Mutex<Vec<UserRecord>>,
    }

    impl Accounts {
        fn add(&self, name: &str, password: &str, disabled: bool) -> UserId {
            let mut users = self.users.lock().unwrap();
            let id = UserId(users.len() as u64 + 1);
            users.push(UserRecord {
                id,
                name: name.to_string(),
                password_hash: FAST.hash(password).unwrap(),
                disabled,
            });
            id
        }
    }

    #[async_trait]
    impl AccountStore for Accounts {
        async fn create_user(&self, _name: &str, _hash: &str) -> MetaResult<UserRecord> {
            unreachable!("not used by the authenticator")
        }
        async fn user_by_name(&self, name: &str) -> MetaResult<Option<UserRecord>> {
            Ok(self
                .users
                .lock()
                .unwrap()
                .iter()
                .find(|u| u.name == name)
                .cloned())
        }
        async fn set_password_hash(&self, user: UserId, hash: &str) -> MetaResult<()> {
            let mut users = self.users.lock().unwrap();
            let u = users.iter_mut().find(|u| u.id == user).unwrap();
            u.password_hash = hash.to_string();
            Ok(())
        }
        async fn list_users(&self) -> MetaResult<Vec<UserRecord>> {
            Ok(self.users.lock().unwrap().clone())
        }
        /// Account names only: aliases and domains are the stores' business (their
        /// conformance suite covers the rules).
        async fn resolve_address(&self, address: &str) -> MetaResult<Option<UserId>> {
            Ok(self
                .users
                .lock()
                .unwrap()
                .iter()
                .find(|u| u.name == address && !u.disabled)
                .map(|u| u.id))
        }
        async fn list_users_page(
            &self,
            _after: Option<&str>,
            _limit: usize,
        ) -> MetaResult<Vec<UserRecord>> {
            unreachable!("not used by the authenticator")
        }
        async fn user_by_id(&self, _user: UserId) -> MetaResult<Option<UserRecord>> {
            unreachable!("not used by the authenticator")
        }
        async fn set_disabled(&self, _user: UserId, _disabled: bool) -> MetaResult<()> {
            unreachable!("not used by the authenticator")
        }
        async fn delete_user(&self, _user: UserId) -> MetaResult<()> {
            unreachable!("not used by the authenticator")
        }
        async fn set_quota(
            &self,
            _user: UserId,
            _limits: yubin_meta_api::QuotaLimits,
        ) -> MetaResult<()> {
            unreachable!("not used by the authenticator")
        }
        async fn put_alias(&self, _alias: &yubin_meta_api::Alias) -> MetaResult<()> {
            unreachable!("not used by the authenticator")
        }
        async fn delete_alias(&self, _address: &str) -> MetaResult<()> {
            unreachable!("not used by the authenticator")
        }
        async fn list_aliases(&self) -> MetaResult<Vec<yubin_meta_api::Alias>> {
            unreachable!("not used by the authenticator")
        }
        async fn put_domain(&self, _domain: &yubin_meta_api::Domain) -> MetaResult<()> {
            unreachable!("not used by the authenticator")
        }
        async fn delete_domain(&self, _name: &str) -> MetaResult<()> {
            unreachable!("not used by the authenticator")
        }
        async fn list_domains(&self) -> MetaResult<Vec<yubin_meta_api::Domain>> {
            unreachable!("not used by the authenticator")
        }
    }

    fn setup(config: AuthConfig) -> (Arc<Accounts>, PasswordAuthenticator) {
        let accounts = Arc::new(Accounts::default());
        let config = AuthConfig {
            password_params: FAST,
            ..config
        };
        let auth = PasswordAuthenticator::with_config(accounts.clone(), config);
        (accounts, auth)
    }

    /// Refusal after `max_failures` within `window`, without delays.
    fn lockout(max_failures: u32, window: Duration) -> ThrottlePolicy {
        ThrottlePolicy {
            free_failures: max_failures,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            max_failures,
            window,
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn hashes_are_argon2id_phc_strings_with_random_salt() {
        let a = hash_password("secret").unwrap();
        let b = hash_password("secret").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b);
        assert!(verify_password("secret", &a).unwrap());
        assert!(!verify_password("Secret", &a).unwrap());
        assert!(verify_password("secret", "not a hash").is_err());
        let bad = PasswordParams {
            memory_kib: 0,
            ..PasswordParams::default()
        };
        assert!(matches!(bad.hash("x"), Err(PasswordError::Params(_))));
    }

    #[tokio::test]
    async fn good_and_bad_passwords() {
        let (accounts, auth) = setup(AuthConfig::default());
        let id = accounts.add("alice", "wonderland", false);
        accounts.add("mallory", "evil", true);
        assert_eq!(auth.authenticate("alice", "wonderland", None).await, Ok(id));
        assert_eq!(auth.authenticate("ALICE", "wonderland", None).await, Ok(id));
        assert_eq!(
            auth.authenticate("alice", "Wonderland", None).await,
            Err(MetaError::AuthenticationFailed)
        );
        assert_eq!(
            auth.authenticate("bob", "wonderland", None).await,
            Err(MetaError::AuthenticationFailed)
        );
        assert_eq!(
            auth.authenticate("mallory", "evil", None).await,
            Err(MetaError::AuthenticationFailed)
        );
        assert_eq!(
            auth.authenticate("", "", None).await,
            Err(MetaError::AuthenticationFailed)
        );
        let long = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert_eq!(
            auth.authenticate("alice", &long, None).await,
            Err(MetaError::AuthenticationFailed)
        );
    }

    #[tokio::test]
    async fn lookup_finds_enabled_users_only() {
        let (accounts, auth) = setup(AuthConfig::default());
        let id = accounts.add("alice", "pw", false);
        accounts.add("mallory", "pw", true);
        assert_eq!(auth.lookup("Alice").await, Ok(Some(id)));
        assert_eq!(auth.lookup("mallory").await, Ok(None));
        assert_eq!(auth.lookup("nobody").await, Ok(None));
        assert_eq!(auth.lookup("").await, Ok(None));
    }

    #[tokio::test]
    async fn cache_hit_avoids_rehashing() {
        let (accounts, auth) = setup(AuthConfig::default());
        let id = accounts.add("alice", "pw", false);
        assert_eq!(auth.authenticate("alice", "pw", None).await, Ok(id));
        assert_eq!(auth.verification_count(), 1);
        for _ in 0..5 {
            assert_eq!(auth.authenticate("Alice", "pw", None).await, Ok(id));
        }
        assert_eq!(auth.verification_count(), 1);
        // A wrong password never hits the cache.
        assert!(auth.authenticate("alice", "wrong", None).await.is_err());
        assert_eq!(auth.verification_count(), 2);
    }

    #[tokio::test]
    async fn password_change_invalidates_the_cache() {
        let (accounts, auth) = setup(AuthConfig::default());
        let id = accounts.add("alice", "old", false);
        assert_eq!(auth.authenticate("alice", "old", None).await, Ok(id));
        accounts
            .set_password_hash(id, &FAST.hash("new").unwrap())
            .await
            .unwrap();
        assert_eq!(
            auth.authenticate("alice", "old", None).await,
            Err(MetaError::AuthenticationFailed)
        );
        assert_eq!(auth.verification_count(), 2);
        assert_eq!(auth.authenticate("alice", "new", None).await, Ok(id));
        assert_eq!(auth.verification_count(), 3);
    }

    #[tokio::test]
    async fn cache_entries_expire() {
        let config = AuthConfig {
            cache_ttl: Duration::from_millis(50),
            ..AuthConfig::default()
        };
        let (accounts, auth) = setup(config);
        let id = accounts.add("alice", "pw", false);
        assert_eq!(auth.authenticate("alice", "pw", None).await, Ok(id));
        assert_eq!(auth.authenticate("alice", "pw", None).await, Ok(id));
        assert_eq!(auth.verification_count(), 1);
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(auth.authenticate("alice", "pw", None).await, Ok(id));
        assert_eq!(auth.verification_count(), 2);
    }

    #[tokio::test]
    async fn disabled_cache_always_verifies() {
        let config = AuthConfig {
            cache_ttl: Duration::ZERO,
            ..AuthConfig::default()
        };
        let (accounts, auth) = setup(config);
        let id = accounts.add("alice", "pw", false);
        for _ in 0..3 {
            assert_eq!(auth.authenticate("alice", "pw", None).await, Ok(id));
        }
        assert_eq!(auth.verification_count(), 3);
    }

    #[tokio::test]
    async fn disabling_an_account_beats_the_cache() {
        let (accounts, auth) = setup(AuthConfig::default());
        let id = accounts.add("alice", "pw", false);
        assert_eq!(auth.authenticate("alice", "pw", None).await, Ok(id));
        accounts.users.lock().unwrap()[0].disabled = true;
        assert_eq!(
            auth.authenticate("alice", "pw", None).await,
            Err(MetaError::AuthenticationFailed)
        );
    }

    #[tokio::test]
    async fn repeated_failures_lock_the_name_out_from_that_address_only() {
        let config = AuthConfig {
            user_throttle: lockout(3, Duration::from_millis(300)),
            ..AuthConfig::default()
        };
        let (accounts, auth) = setup(config);
        let alice = accounts.add("alice", "pw", false);
        let bob = accounts.add("bob", "pw", false);
        let guesser = ip("203.0.113.9");
        for _ in 0..3 {
            assert!(auth.authenticate("alice", "guess", guesser).await.is_err());
        }
        let before = auth.verification_count();
        // Locked: even the right password is refused there, without spending a verification.
        assert_eq!(
            auth.authenticate("Alice", "pw", guesser).await,
            Err(MetaError::AuthenticationFailed)
        );
        assert_eq!(auth.verification_count(), before);
        // Other names from there, and the name from elsewhere, are not refused.
        assert_eq!(auth.authenticate("bob", "pw", guesser).await, Ok(bob));
        assert_eq!(
            auth.authenticate("alice", "pw", ip("198.51.100.4")).await,
            Ok(alice)
        );
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(auth.authenticate("alice", "pw", guesser).await, Ok(alice));
    }

    /// The "done when": a lock-out of a user by someone else's guesses is impossible.
    /// Fifty wrong passwords for alice from one address, and the same spread over many
    /// addresses, with the default policies: alice from her own address, with the right
    /// password, gets in after at most the maximum delay, every time; the guesser is refused.
    #[tokio::test]
    async fn guesses_elsewhere_never_lock_the_owner_out() {
        let config = AuthConfig {
            cache_ttl: Duration::ZERO,
            user_throttle: ThrottlePolicy {
                base_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(20),
                ..ThrottlePolicy::per_user()
            },
            address_throttle: ThrottlePolicy {
                base_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(20),
                ..ThrottlePolicy::per_address()
            },
            ..AuthConfig::default()
        };
        let (accounts, auth) = setup(config);
        let alice = accounts.add("alice", "pw", false);
        let guesser = ip("203.0.113.9");
        for i in 0..50 {
            let _ = auth
                .authenticate("alice", &format!("guess{i}"), guesser)
                .await;
        }
        // A botnet: one guess from each of 40 addresses, below every per-address limit.
        for i in 0..40 {
            let bot = ip(&format!("10.1.{}.{}", i / 250, i % 250));
            let _ = auth.authenticate(" ALICE", &format!("bot{i}"), bot).await;
        }
        let stats = auth.stats();
        assert_eq!(stats.failure, 10 + 40, "{stats:?}");
        assert_eq!(stats.throttled, 40, "{stats:?}");
        let home = ip("198.51.100.4");
        for _ in 0..3 {
            let started = std::time::Instant::now();
            assert_eq!(auth.authenticate("alice ", "pw", home).await, Ok(alice));
            // Delayed (the name has failures everywhere), but by no more than the maximum.
            let took = started.elapsed();
            assert!(took >= Duration::from_millis(20), "{took:?}");
            assert!(
                took < Duration::from_millis(20) + Duration::from_secs(1),
                "{took:?}"
            );
        }
        // The guesser stays refused, right password or not.
        assert_eq!(
            auth.authenticate("alice", "pw", guesser).await,
            Err(MetaError::AuthenticationFailed)
        );
    }

    #[test]
    fn throttle_keys_use_the_lookup_normalization() {
        let keys = |name: &str, client: &str| {
            ThrottleKeys::new(Some(&normalize_login_name(name)), ip(client))
        };
        let alice = keys("alice", "192.0.2.1");
        assert_eq!(keys(" alice", "192.0.2.1"), alice);
        assert_eq!(keys("ALICE ", "::ffff:192.0.2.1"), alice);
        assert_ne!(keys("bob", "192.0.2.1").name, alice.name);
        let elsewhere = keys("alice", "192.0.2.2");
        assert_eq!(elsewhere.name, alice.name);
        assert_ne!(elsewhere.pair, alice.pair);
        assert_ne!(elsewhere.address, alice.address);
        // Without an address: a pair with "unknown", no address counter.
        let unknown = ThrottleKeys::new(Some("alice"), None);
        assert_eq!(unknown.name, alice.name);
        assert!(unknown.pair.is_some() && unknown.pair != alice.pair);
        assert_eq!(unknown.address, None);
        // Bounded, opaque keys whatever the name.
        let long = ThrottleKeys::new(Some(&"x".repeat(256)), ip("2001:db8::1"));
        for key in long.present() {
            assert!(key.len() <= 40 && !key.contains('x'), "{key}");
        }
    }

    #[test]
    fn a_name_alone_only_ever_delays() {
        let policy = ThrottlePolicy::per_user();
        assert_eq!(policy.delay_only(0), Verdict::Proceed(Duration::ZERO));
        for failures in [policy.max_failures, 1000, u32::MAX] {
            assert_eq!(policy.verdict(failures), Verdict::Refuse);
            assert_eq!(
                policy.delay_only(failures),
                Verdict::Proceed(policy.max_delay)
            );
        }
    }

    /// Two authenticators (two meta replicas) over the same shared counters give a guesser one
    /// budget, not two.
    #[tokio::test]
    async fn replicas_sharing_counters_share_one_budget() {
        let config = AuthConfig {
            user_throttle: lockout(4, Duration::from_secs(60)),
            ..AuthConfig::default()
        };
        let accounts = Arc::new(Accounts::default());
        let alice = accounts.add("alice", "pw", false);
        let shared: Arc<dyn FailureCounters> = Arc::new(InProcessFailureCounters::new(100));
        let replica = || {
            PasswordAuthenticator::with_config(
                accounts.clone(),
                AuthConfig {
                    password_params: FAST,
                    ..config
                },
            )
            .with_shared_counters(shared.clone())
        };
        let (a, b) = (replica(), replica());
        let guesser = ip("203.0.113.9");
        for i in 0..10 {
            let replica = if i % 2 == 0 { &a } else { &b };
            let _ = replica.authenticate("alice", "guess", guesser).await;
        }
        let failures = a.stats().failure + b.stats().failure;
        assert_eq!(failures, 4, "one budget of 4 between the two replicas");
        assert_eq!(a.stats().throttled + b.stats().throttled, 6);
        assert_eq!(
            b.authenticate("alice", "pw", ip("198.51.100.4")).await,
            Ok(alice)
        );
    }

    /// Shared counters that fail do not stop logins, and this process's counters still refuse.
    #[tokio::test]
    async fn failing_shared_counters_fall_back_to_the_process() {
        struct Down;
        #[async_trait]
        impl FailureCounters for Down {
            async fn failure_counts(&self, _keys: &[String]) -> MetaResult<Vec<u32>> {
                Err(MetaError::Unavailable("redis is down".into()))
            }
            async fn add_failure(&self, _keys: &[String], _w: Duration) -> MetaResult<()> {
                // Slower than the timeout.
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(())
            }
            async fn clear_failures(&self, _keys: &[String]) -> MetaResult<()> {
                Err(MetaError::Unavailable("redis is down".into()))
            }
        }
        let accounts = Arc::new(Accounts::default());
        let alice = accounts.add("alice", "pw", false);
        let auth = PasswordAuthenticator::with_config(
            accounts.clone(),
            AuthConfig {
                password_params: FAST,
                user_throttle: lockout(2, Duration::from_secs(60)),
                shared_counters_timeout: Duration::from_millis(50),
                ..AuthConfig::default()
            },
        )
        .with_shared_counters(Arc::new(Down));
        let guesser = ip("203.0.113.9");
        assert_eq!(auth.authenticate("alice", "pw", guesser).await, Ok(alice));
        for _ in 0..3 {
            assert!(auth.authenticate("alice", "guess", guesser).await.is_err());
        }
        let stats = auth.stats();
        assert_eq!((stats.failure, stats.throttled), (2, 1), "{stats:?}");
        assert!(stats.shared_counter_errors >= 4, "{stats:?}");
    }

    #[tokio::test]
    async fn a_parallel_burst_of_guesses_is_throttled_as_it_arrives() {
        let config = AuthConfig {
            user_throttle: lockout(3, Duration::from_secs(60)),
            max_concurrent_verifications: 1,
            ..AuthConfig::default()
        };
        let (accounts, auth) = setup(config);
        accounts.add("alice", "pw", false);
        let guesses = (0..20).map(|i| {
            let auth = &auth;
            async move { auth.authenticate("alice", &format!("guess{i}"), None).await }
        });
        let results = futures::future::join_all(guesses).await;
        assert!(results.iter().all(|r| r.is_err()));
        assert_eq!(auth.verification_count(), 3);
    }

    #[tokio::test]
    async fn success_resets_the_failure_count() {
        let config = AuthConfig {
            user_throttle: lockout(2, Duration::from_secs(60)),
            ..AuthConfig::default()
        };
        let (accounts, auth) = setup(config);
        let id = accounts.add("alice", "pw", false);
        assert!(auth.authenticate("alice", "guess", None).await.is_err());
        assert_eq!(auth.authenticate("alice", "pw", None).await, Ok(id));
        assert!(auth.authenticate("alice", "guess", None).await.is_err());
        assert_eq!(auth.authenticate("alice", "pw", None).await, Ok(id));
    }

    #[tokio::test]
    async fn unknown_names_are_throttled_too() {
        let config = AuthConfig {
            user_throttle: lockout(2, Duration::from_secs(60)),
            ..AuthConfig::default()
        };
        let (_accounts, auth) = setup(config);
        assert!(auth.authenticate("ghost", "a", None).await.is_err());
        assert!(auth.authenticate("ghost", "b", None).await.is_err());
        let before = auth.verification_count();
        assert!(auth.authenticate("ghost", "c", None).await.is_err());
        assert_eq!(auth.verification_count(), before);
    }

    #[test]
    fn cache_is_bounded_and_evicts_oldest() {
        let now = Instant::now();
        let mut cache = SuccessCache::new(Duration::from_secs(60), 2);
        cache.insert([1; 32], UserId(1), now);
        cache.insert([2; 32], UserId(2), now);
        cache.insert([3; 32], UserId(3), now);
        assert_eq!(cache.get(&[1; 32], now), None);
        assert_eq!(cache.get(&[2; 32], now), Some(UserId(2)));
        assert_eq!(cache.get(&[3; 32], now), Some(UserId(3)));
        assert!(cache.entries.len() <= 2 && cache.order.len() <= 4);
        let later = now + Duration::from_secs(61);
        assert_eq!(cache.get(&[3; 32], later), None);
        cache.insert([4; 32], UserId(4), later);
        assert_eq!(cache.entries.len(), 1);
    }

    #[test]
    fn local_counters_are_bounded() {
        let now = Instant::now();
        let window = Duration::from_secs(60);
        let mut t = LocalCounters::new(10);
        for i in 0..100u64 {
            t.add(&format!("n{i}"), window, now + Duration::from_millis(i));
            assert!(t.failures.len() <= 10);
        }
        let later = now + Duration::from_millis(100);
        // The newest are kept, the oldest forgotten.
        assert_eq!(t.count("n99", later), 1);
        assert_eq!(t.count("n0", later), 0);
        // Expired entries go first.
        let much_later = now + Duration::from_secs(61);
        t.add("fresh", window, much_later);
        assert_eq!(t.count("n99", much_later), 0);
        assert_eq!(t.count("fresh", much_later), 1);
    }

    #[test]
    fn delays_double_then_attempts_are_refused() {
        let policy = ThrottlePolicy {
            free_failures: 2,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            max_failures: 8,
            window: Duration::from_secs(60),
        };
        let expected = [
            Verdict::Proceed(Duration::ZERO),
            Verdict::Proceed(Duration::ZERO),
            Verdict::Proceed(Duration::ZERO),
            Verdict::Proceed(Duration::from_millis(100)),
            Verdict::Proceed(Duration::from_millis(200)),
            Verdict::Proceed(Duration::from_millis(400)),
            Verdict::Proceed(Duration::from_millis(500)),
            Verdict::Proceed(Duration::from_millis(500)),
            Verdict::Refuse,
            Verdict::Refuse,
        ];
        for (failures, want) in expected.iter().enumerate() {
            assert_eq!(
                policy.verdict(failures as u32),
                *want,
                "{failures} failures"
            );
        }
        let off = ThrottlePolicy {
            max_failures: 0,
            ..policy
        };
        assert_eq!(off.verdict(1000), Verdict::Proceed(Duration::ZERO));
        assert!(policy.validate("x").is_ok());
        let slow = ThrottlePolicy {
            max_delay: Duration::from_secs(60),
            ..policy
        };
        assert!(slow.validate("x").is_err());
        let inverted = ThrottlePolicy {
            base_delay: Duration::from_secs(1),
            ..policy
        };
        assert!(inverted.validate("x").is_err());
    }

    #[tokio::test]
    async fn failed_attempts_slow_down_the_next_ones() {
        let config = AuthConfig {
            user_throttle: ThrottlePolicy {
                free_failures: 1,
                base_delay: Duration::from_millis(150),
                max_delay: Duration::from_millis(150),
                max_failures: 10,
                window: Duration::from_secs(60),
            },
            ..AuthConfig::default()
        };
        let (accounts, auth) = setup(config);
        let id = accounts.add("alice", "pw", false);
        let started = std::time::Instant::now();
        assert!(auth.authenticate("alice", "guess", None).await.is_err());
        assert!(auth.authenticate("alice", "guess", None).await.is_err());
        assert!(started.elapsed() < Duration::from_millis(150));
        // Two failures: the next attempt waits, right password or not.
        let started = std::time::Instant::now();
        assert_eq!(auth.authenticate("alice", "pw", None).await, Ok(id));
        assert!(started.elapsed() >= Duration::from_millis(150));
        // Success cleared the name's failures.
        let started = std::time::Instant::now();
        assert_eq!(auth.authenticate("alice", "pw", None).await, Ok(id));
        assert!(started.elapsed() < Duration::from_millis(150));
    }

    /// The "done when": 100 wrong passwords in a row from one address are throttled,
    /// even when each name is tried only a few times; the right password from that address is
    /// then refused without a verification until the window passes, while another address is
    /// not affected.
    #[tokio::test]
    async fn a_hundred_wrong_passwords_from_one_address_are_throttled() {
        let config = AuthConfig {
            user_throttle: lockout(5, Duration::from_secs(60)),
            address_throttle: lockout(20, Duration::from_millis(600)),
            ..AuthConfig::default()
        };
        let (accounts, auth) = setup(config);
        let mut ids = Vec::new();
        for i in 0..50 {
            ids.push(accounts.add(&format!("user{i}"), "right", false));
        }
        let bot = ip("203.0.113.7");
        for i in 0..100 {
            let name = format!("user{}", i % 50);
            assert_eq!(
                auth.authenticate(&name, "wrong", bot).await,
                Err(MetaError::AuthenticationFailed)
            );
        }
        let stats = auth.stats();
        assert_eq!(stats.failure, 20, "{stats:?}");
        assert_eq!(stats.throttled, 80, "{stats:?}");
        assert_eq!(stats.verifications, 20, "{stats:?}");
        // Refused quickly, whatever the password.
        let started = std::time::Instant::now();
        assert_eq!(
            auth.authenticate("user7", "right", bot).await,
            Err(MetaError::AuthenticationFailed)
        );
        assert!(started.elapsed() < Duration::from_millis(100));
        assert_eq!(auth.stats().verifications, 20);
        // Another address, and a user that the bot tried (twice, below the per-name limit).
        assert_eq!(
            auth.authenticate("user7", "right", ip("198.51.100.1"))
                .await,
            Ok(ids[7])
        );
        // The same /64 is the same client for IPv6; another /64 is not.
        for i in 0..20 {
            let _ = auth
                .authenticate(&format!("user{}", 10 + i), "wrong", ip("2001:db8:1:2::1"))
                .await;
        }
        assert!(
            auth.authenticate("user2", "right", ip("2001:db8:1:2:ffff::9"))
                .await
                .is_err()
        );
        assert_eq!(
            auth.authenticate("user2", "right", ip("2001:db8:1:3::1"))
                .await,
            Ok(ids[2])
        );
        // The failures are forgotten a window after the last one.
        tokio::time::sleep(Duration::from_millis(650)).await;
        assert_eq!(auth.authenticate("user7", "right", bot).await, Ok(ids[7]));
    }

    /// The "done when": a reconnect storm of 1 000 logins of the same users costs one
    /// Argon2 verification per user, even when every user's logins arrive at once.
    #[tokio::test]
    async fn a_reconnect_storm_verifies_each_user_once() {
        let (accounts, auth) = setup(AuthConfig::default());
        let mut ids = Vec::new();
        for i in 0..20 {
            ids.push(accounts.add(&format!("user{i}"), &format!("pw{i}"), false));
        }
        let logins = (0..1000).map(|n| {
            let auth = &auth;
            let i = n % 20;
            async move {
                auth.authenticate(
                    &format!("user{i}"),
                    &format!("pw{i}"),
                    ip(&format!("10.0.{}.{}", i, n % 7)),
                )
                .await
            }
        });
        let results = futures::future::join_all(logins).await;
        for (n, r) in results.iter().enumerate() {
            assert_eq!(*r, Ok(ids[n % 20]));
        }
        let stats = auth.stats();
        assert_eq!(stats.verifications, 20, "{stats:?}");
        assert_eq!(stats.success, 20, "{stats:?}");
        assert_eq!(stats.cached, 980, "{stats:?}");
        assert!(auth.in_flight.lock().unwrap().is_empty());
    }

    #[test]
    fn address_keys() {
        let key = |s: &str| address_key(s.parse().unwrap());
        assert_eq!(key("192.0.2.1"), "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_eq!(key("2001:db8::1"), key("2001:db8::ffff:1"));
        assert_ne!(key("2001:db8::1"), key("2001:db8:0:1::1"));
    }

    #[test]
    fn password_params_are_validated() {
        assert!(PasswordParams::default().validate().is_ok());
        assert!(FAST.validate().is_ok());
        for bad in [
            PasswordParams {
                parallelism: 0,
                ..FAST
            },
            PasswordParams {
                iterations: 0,
                ..FAST
            },
            PasswordParams {
                memory_kib: 7,
                ..FAST
            },
            PasswordParams {
                memory_kib: 16,
                parallelism: 4,
                ..FAST
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert!(AuthConfig::default().validate().is_ok());
    }

    #[tokio::test]
    async fn bearer_tokens_name_enabled_accounts() {
        use jsonwebtoken::{EncodingKey, Header};
        let dir = tempfile::tempdir().unwrap();
        let secret = b"a test-only HS256 secret of more than 32 bytes";
        std::fs::write(dir.path().join("secret"), secret).unwrap();
        let tokens = TokenValidator::load(crate::token::TokenSettings {
            issuer: "https://id.test".into(),
            audience: None,
            key: crate::token::TokenKeySource::Hs256SecretFile(dir.path().join("secret")),
            user_claim: "sub".into(),
            leeway: Duration::from_secs(5),
        })
        .unwrap();
        let config = AuthConfig {
            address_throttle: lockout(3, Duration::from_secs(60)),
            ..AuthConfig::default()
        };
        let (accounts, auth) = setup(config);
        let auth = auth.with_token_validator(tokens);
        let alice = accounts.add("alice", "pw", false);
        accounts.add("mallory", "pw", true);
        let token = |sub: &str| {
            let exp = jsonwebtoken::get_current_timestamp() + 60;
            let claims = serde_json::json!({"iss": "https://id.test", "sub": sub, "exp": exp});
            jsonwebtoken::encode(
                &Header::default(),
                &claims,
                &EncodingKey::from_secret(secret),
            )
            .unwrap()
        };
        assert_eq!(auth.accepts_bearer_tokens().await, Ok(true));
        let here = ip("192.0.2.10");
        assert_eq!(
            auth.authenticate_bearer(&token("alice"), None, here).await,
            Ok(alice)
        );
        assert_eq!(
            auth.authenticate_bearer(&token("alice"), Some("ALICE"), here)
                .await,
            Ok(alice)
        );
        let failed = Err(MetaError::AuthenticationFailed);
        let there = ip("192.0.2.99");
        assert_eq!(
            auth.authenticate_bearer(&token("alice"), Some("bob"), there)
                .await,
            failed
        );
        assert_eq!(
            auth.authenticate_bearer(&token("mallory"), None, there)
                .await,
            failed
        );
        assert_eq!(
            auth.authenticate_bearer(&token("nobody"), None, there)
                .await,
            failed
        );
        // Three failures from that address: even a good token is refused there now.
        assert_eq!(
            auth.authenticate_bearer(&token("alice"), None, there).await,
            failed
        );
        assert_eq!(auth.stats().throttled, 1);
        assert_eq!(
            auth.authenticate_bearer(&token("alice"), None, here).await,
            Ok(alice)
        );
    }

    #[tokio::test]
    async fn bearer_tokens_fail_without_a_validator() {
        let (accounts, auth) = setup(AuthConfig::default());
        accounts.add("alice", "pw", false);
        assert_eq!(auth.accepts_bearer_tokens().await, Ok(false));
        assert_eq!(
            auth.authenticate_bearer("token", None, None).await,
            Err(MetaError::AuthenticationFailed)
        );
    }

    #[test]
    fn cache_keys_separate_fields() {
        let accounts = Arc::new(Accounts::default());
        let auth = PasswordAuthenticator::new(accounts);
        assert_ne!(
            auth.cache_key("ab", "c", "h"),
            auth.cache_key("a", "bc", "h")
        );
        assert_ne!(
            auth.cache_key("a", "b", "h1"),
            auth.cache_key("a", "b", "h2")
        );
        assert_eq!(auth.cache_key("a", "b", "h"), auth.cache_key("a", "b", "h"));
    }
}
