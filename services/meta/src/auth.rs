//! Password hashing and the login check meta answers `Authenticate` with.
//!
//! Passwords are stored as Argon2id PHC strings. Because a verification costs tens of
//! milliseconds of CPU by design, a reconnect storm (every phone of every user re-logging in after
//! a deploy) would otherwise saturate meta: successful verifications are remembered for a while,
//! keyed by a keyed hash of (name, password, stored hash) so that the cache never holds anything
//! a memory dump could turn into a password, and so that a password change invalidates the entry
//! by construction. Failed logins are throttled per login name.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::time::Instant;
use yubin_meta_api::{AccountStore, Authenticator, MetaError, MetaResult, UserId};

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

/// Tuning of [`PasswordAuthenticator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthConfig {
    /// How long a successful verification is remembered; zero disables the cache.
    pub cache_ttl: Duration,
    /// Most remembered verifications; the oldest go first.
    pub cache_capacity: usize,
    /// Failed logins of one name within `failure_window` after which that name is refused
    /// without checking until the window has passed; zero disables throttling.
    pub max_failures: u32,
    pub failure_window: Duration,
    /// Most login names whose failures are tracked at once.
    pub throttle_capacity: usize,
    /// Most Argon2 verifications running at once. Each holds its memory cost (19 MiB by
    /// default) for its duration, so a storm of wrong passwords must queue rather than fan out
    /// over every blocking thread tokio would start.
    pub max_concurrent_verifications: usize,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            cache_ttl: Duration::from_secs(5 * 60),
            cache_capacity: 100_000,
            max_failures: 10,
            failure_window: Duration::from_secs(5 * 60),
            throttle_capacity: 100_000,
            max_concurrent_verifications: std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(2),
        }
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

/// Failed logins per name: (failures, start of the window).
struct Throttle {
    max_failures: u32,
    window: Duration,
    capacity: usize,
    failures: HashMap<String, (u32, Instant)>,
}

impl Throttle {
    fn is_locked(&mut self, name: &str, now: Instant) -> bool {
        if self.max_failures == 0 {
            return false;
        }
        match self.failures.get(name) {
            Some(&(count, start)) if now.duration_since(start) < self.window => {
                count >= self.max_failures
            }
            Some(_) => {
                self.failures.remove(name);
                false
            }
            None => false,
        }
    }

    fn record_failure(&mut self, name: &str, now: Instant) {
        if self.max_failures == 0 {
            return;
        }
        let window = self.window;
        let entry = self.failures.entry(name.to_string()).or_insert((0, now));
        if now.duration_since(entry.1) >= window {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
        if self.failures.len() > self.capacity {
            self.failures
                .retain(|_, &mut (_, start)| now.duration_since(start) < window);
        }
        // Still full of live windows (a spray over many names): forget the oldest windows,
        // which are the closest to expiring anyway.
        while self.failures.len() > self.capacity {
            let oldest = self
                .failures
                .iter()
                .min_by_key(|(_, (_, start))| *start)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.failures.remove(&k),
                None => break,
            };
        }
    }

    fn record_success(&mut self, name: &str) {
        self.failures.remove(name);
    }
}

/// Checks passwords against an [`AccountStore`], with a success cache and per-name throttling.
pub struct PasswordAuthenticator {
    accounts: Arc<dyn AccountStore>,
    /// Per-process key of the cache's HMAC: cache keys mean nothing outside this process.
    secret: [u8; 64],
    cache: Mutex<SuccessCache>,
    throttle: Mutex<Throttle>,
    verifying: tokio::sync::Semaphore,
    verifications: AtomicU64,
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
            throttle: Mutex::new(Throttle {
                max_failures: config.max_failures,
                window: config.failure_window,
                capacity: config.throttle_capacity,
                failures: HashMap::new(),
            }),
            verifying: tokio::sync::Semaphore::new(config.max_concurrent_verifications.max(1)),
            verifications: AtomicU64::new(0),
        }
    }

    /// Argon2 verifications run so far (cache hits are not verifications); a metric, and how
    /// tests see the cache work.
    pub fn verification_count(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
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

    fn lock_throttle(&self) -> std::sync::MutexGuard<'_, Throttle> {
        self.throttle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs Argon2 on a blocking thread so the verification does not stall the async workers.
    async fn verify(&self, password: &str, phc: String) -> MetaResult<bool> {
        let _permit = self
            .verifying
            .acquire()
            .await
            .map_err(|_| MetaError::Internal("verification semaphore closed".into()))?;
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let password = password.to_string();
        tokio::task::spawn_blocking(move || verify_password(&password, &phc))
            .await
            .map_err(|e| MetaError::Internal(format!("password verification task failed: {e}")))?
            .map_err(MetaError::from)
    }
}

/// Counts one login attempt by how it ended: `verified` and `cached` succeeded, the rest failed.
fn outcome(result: &'static str) {
    metrics::counter!("yubin_auth_attempts_total", "result" => result).increment(1);
}

/// A hash of a password nobody has, verified for unknown or disabled accounts so that their
/// failures take as long as a wrong password: response times do not reveal which names exist.
fn decoy_hash() -> Option<&'static str> {
    static DECOY: OnceLock<Option<String>> = OnceLock::new();
    DECOY
        .get_or_init(|| {
            let mut random = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut random);
            hash_password(&hex::encode(random)).ok()
        })
        .as_deref()
}

#[async_trait]
impl Authenticator for PasswordAuthenticator {
    async fn authenticate(&self, name: &str, password: &str) -> MetaResult<UserId> {
        let name = name.to_lowercase();
        if name.is_empty() || name.len() > MAX_NAME_BYTES || password.len() > MAX_PASSWORD_BYTES {
            return Err(MetaError::AuthenticationFailed);
        }
        if self.lock_throttle().is_locked(&name, Instant::now()) {
            tracing::debug!(user = %name, "login refused: too many failures");
            outcome("throttled");
            return Err(MetaError::AuthenticationFailed);
        }

        let record = self
            .accounts
            .user_by_name(&name)
            .await?
            .filter(|r| !r.disabled);
        if let Some(r) = &record {
            let key = self.cache_key(&name, password, &r.password_hash);
            if self.lock_cache().get(&key, Instant::now()) == Some(r.id) {
                self.lock_throttle().record_success(&name);
                outcome("cached");
                return Ok(r.id);
            }
        }

        // Counted as a failure before verifying and forgiven on success, so that a burst of
        // parallel guesses is throttled as it arrives rather than after its verifications end.
        self.lock_throttle().record_failure(&name, Instant::now());

        let Some(record) = record else {
            let decoy = tokio::task::spawn_blocking(decoy_hash).await.ok().flatten();
            if let Some(decoy) = decoy {
                // The outcome is irrelevant; only the time spent matters.
                let _ = self.verify(password, decoy.to_string()).await;
            }
            outcome("unknown_user");
            return Err(MetaError::AuthenticationFailed);
        };

        match self.verify(password, record.password_hash.clone()).await {
            Ok(true) => {
                let key = self.cache_key(&name, password, &record.password_hash);
                self.lock_cache().insert(key, record.id, Instant::now());
                self.lock_throttle().record_success(&name);
                outcome("verified");
                Ok(record.id)
            }
            Ok(false) => {
                outcome("wrong_password");
                Err(MetaError::AuthenticationFailed)
            }
            Err(err) => {
                // A corrupt stored hash is an operator problem; the client only learns that the
                // login failed.
                tracing::error!(user = %name, error = %err, "cannot verify password");
                outcome("error");
                Err(MetaError::AuthenticationFailed)
            }
        }
    }

    async fn lookup(&self, name: &str) -> MetaResult<Option<UserId>> {
        let name = name.to_lowercase();
        if name.is_empty() || name.len() > MAX_NAME_BYTES {
            return Ok(None);
        }
        Ok(self
            .accounts
            .user_by_name(&name)
            .await?
            .filter(|r| !r.disabled)
            .map(|r| r.id))
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
    }

    fn setup(config: AuthConfig) -> (Arc<Accounts>, PasswordAuthenticator) {
        let accounts = Arc::new(Accounts::default());
        let auth = PasswordAuthenticator::with_config(accounts.clone(), config);
        (accounts, auth)
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
        assert_eq!(auth.authenticate("alice", "wonderland").await, Ok(id));
        assert_eq!(auth.authenticate("ALICE", "wonderland").await, Ok(id));
        assert_eq!(
            auth.authenticate("alice", "Wonderland").await,
            Err(MetaError::AuthenticationFailed)
        );
        assert_eq!(
            auth.authenticate("bob", "wonderland").await,
            Err(MetaError::AuthenticationFailed)
        );
        assert_eq!(
            auth.authenticate("mallory", "evil").await,
            Err(MetaError::AuthenticationFailed)
        );
        assert_eq!(
            auth.authenticate("", "").await,
            Err(MetaError::AuthenticationFailed)
        );
        let long = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert_eq!(
            auth.authenticate("alice", &long).await,
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
        assert_eq!(auth.authenticate("alice", "pw").await, Ok(id));
        assert_eq!(auth.verification_count(), 1);
        for _ in 0..5 {
            assert_eq!(auth.authenticate("Alice", "pw").await, Ok(id));
        }
        assert_eq!(auth.verification_count(), 1);
        // A wrong password never hits the cache.
        assert!(auth.authenticate("alice", "wrong").await.is_err());
        assert_eq!(auth.verification_count(), 2);
    }

    #[tokio::test]
    async fn password_change_invalidates_the_cache() {
        let (accounts, auth) = setup(AuthConfig::default());
        let id = accounts.add("alice", "old", false);
        assert_eq!(auth.authenticate("alice", "old").await, Ok(id));
        accounts
            .set_password_hash(id, &FAST.hash("new").unwrap())
            .await
            .unwrap();
        assert_eq!(
            auth.authenticate("alice", "old").await,
            Err(MetaError::AuthenticationFailed)
        );
        assert_eq!(auth.verification_count(), 2);
        assert_eq!(auth.authenticate("alice", "new").await, Ok(id));
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
        assert_eq!(auth.authenticate("alice", "pw").await, Ok(id));
        assert_eq!(auth.authenticate("alice", "pw").await, Ok(id));
        assert_eq!(auth.verification_count(), 1);
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(auth.authenticate("alice", "pw").await, Ok(id));
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
            assert_eq!(auth.authenticate("alice", "pw").await, Ok(id));
        }
        assert_eq!(auth.verification_count(), 3);
    }

    #[tokio::test]
    async fn disabling_an_account_beats_the_cache() {
        let (accounts, auth) = setup(AuthConfig::default());
        let id = accounts.add("alice", "pw", false);
        assert_eq!(auth.authenticate("alice", "pw").await, Ok(id));
        accounts.users.lock().unwrap()[0].disabled = true;
        assert_eq!(
            auth.authenticate("alice", "pw").await,
            Err(MetaError::AuthenticationFailed)
        );
    }

    #[tokio::test]
    async fn repeated_failures_lock_the_name_out() {
        let config = AuthConfig {
            max_failures: 3,
            failure_window: Duration::from_millis(300),
            ..AuthConfig::default()
        };
        let (accounts, auth) = setup(config);
        let alice = accounts.add("alice", "pw", false);
        let bob = accounts.add("bob", "pw", false);
        for _ in 0..3 {
            assert!(auth.authenticate("alice", "guess").await.is_err());
        }
        let before = auth.verification_count();
        // Locked: even the right password is refused, without spending a verification.
        assert_eq!(
            auth.authenticate("Alice", "pw").await,
            Err(MetaError::AuthenticationFailed)
        );
        assert_eq!(auth.verification_count(), before);
        // Other names are not affected.
        assert_eq!(auth.authenticate("bob", "pw").await, Ok(bob));
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(auth.authenticate("alice", "pw").await, Ok(alice));
    }

    #[tokio::test]
    async fn a_parallel_burst_of_guesses_is_throttled_as_it_arrives() {
        let config = AuthConfig {
            max_failures: 3,
            max_concurrent_verifications: 1,
            ..AuthConfig::default()
        };
        let (accounts, auth) = setup(config);
        accounts.add("alice", "pw", false);
        let guesses = (0..20).map(|i| {
            let auth = &auth;
            async move { auth.authenticate("alice", &format!("guess{i}")).await }
        });
        let results = futures::future::join_all(guesses).await;
        assert!(results.iter().all(|r| r.is_err()));
        assert_eq!(auth.verification_count(), 3);
    }

    #[tokio::test]
    async fn success_resets_the_failure_count() {
        let config = AuthConfig {
            max_failures: 2,
            ..AuthConfig::default()
        };
        let (accounts, auth) = setup(config);
        let id = accounts.add("alice", "pw", false);
        assert!(auth.authenticate("alice", "guess").await.is_err());
        assert_eq!(auth.authenticate("alice", "pw").await, Ok(id));
        assert!(auth.authenticate("alice", "guess").await.is_err());
        assert_eq!(auth.authenticate("alice", "pw").await, Ok(id));
    }

    #[tokio::test]
    async fn unknown_names_are_throttled_too() {
        let config = AuthConfig {
            max_failures: 2,
            ..AuthConfig::default()
        };
        let (_accounts, auth) = setup(config);
        assert!(auth.authenticate("ghost", "a").await.is_err());
        assert!(auth.authenticate("ghost", "b").await.is_err());
        let before = auth.verification_count();
        assert!(auth.authenticate("ghost", "c").await.is_err());
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
    fn throttle_is_bounded() {
        let now = Instant::now();
        let mut t = Throttle {
            max_failures: 1,
            window: Duration::from_secs(60),
            capacity: 3,
            failures: HashMap::new(),
        };
        for i in 0..10 {
            t.record_failure(&format!("n{i}"), now + Duration::from_millis(i));
        }
        assert_eq!(t.failures.len(), 3);
        assert!(t.is_locked("n9", now + Duration::from_millis(10)));
        assert!(!t.is_locked("n0", now + Duration::from_millis(10)));
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
