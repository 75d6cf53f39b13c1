//! Tests of the authenticator as a whole: passwords, the success cache, throttling (alone and
//! shared between replicas) and bearer tokens, over an in-memory account store.

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
    let keys =
        |name: &str, client: &str| ThrottleKeys::new(Some(&normalize_login_name(name)), ip(client));
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
