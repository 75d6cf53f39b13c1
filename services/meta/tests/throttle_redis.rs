//! Login throttling across meta replicas: two authenticators, each over its own connection to
//! one real `redis-server`, share their failure counters there (issue: N replicas must not give
//! a guesser N budgets, and nobody's guesses may lock the owner out).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use yubin_meta::auth::{AuthConfig, PasswordAuthenticator, PasswordParams, ThrottlePolicy};
use yubin_meta_api::{AccountStore, Authenticator, MetaError, UserId};
use yubin_meta_store::RedisStore;
use yubin_meta_store::testing::RedisServer;

const FAST: PasswordParams = PasswordParams {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};
const MAX_DELAY: Duration = Duration::from_millis(100);

/// The default policies (10 failures per name and address, 30 per address), with short delays.
fn config() -> AuthConfig {
    let fast = |policy: ThrottlePolicy| ThrottlePolicy {
        base_delay: Duration::from_millis(10),
        max_delay: MAX_DELAY,
        ..policy
    };
    AuthConfig {
        password_params: FAST,
        // Every right password is verified: no replica answers it from memory.
        cache_ttl: Duration::ZERO,
        user_throttle: fast(ThrottlePolicy::per_user()),
        address_throttle: fast(ThrottlePolicy::per_address()),
        ..AuthConfig::default()
    }
}

/// A meta replica: its own connection, its own process-local counters, the shared ones in Redis.
async fn replica(server: &RedisServer) -> PasswordAuthenticator {
    let store = Arc::new(RedisStore::connect(&server.url()).await.expect("connect"));
    PasswordAuthenticator::with_config(store.clone(), config()).with_shared_counters(store)
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().expect("ip"))
}

struct Replicas {
    a: PasswordAuthenticator,
    b: PasswordAuthenticator,
}

impl Replicas {
    /// Alternates between the replicas, as a load balancer would.
    fn pick(&self, i: usize) -> &PasswordAuthenticator {
        if i.is_multiple_of(2) {
            &self.a
        } else {
            &self.b
        }
    }

    fn failures(&self) -> u64 {
        self.a.stats().failure + self.b.stats().failure
    }

    fn throttled(&self) -> u64 {
        self.a.stats().throttled + self.b.stats().throttled
    }
}

async fn setup() -> (RedisServer, Replicas, UserId) {
    let server = RedisServer::spawn().expect("spawn redis-server");
    let store = RedisStore::connect(&server.url()).await.expect("connect");
    let alice = store
        .create_user("alice", &FAST.hash("right").expect("hash"))
        .await
        .expect("create alice")
        .id;
    store
        .create_user("bob", &FAST.hash("right").expect("hash"))
        .await
        .expect("create bob");
    let replicas = Replicas {
        a: replica(&server).await,
        b: replica(&server).await,
    };
    (server, replicas, alice)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_from_one_address_never_lock_the_owner_out() {
    let (server, r, alice) = setup().await;
    let guesser = ip("203.0.113.7");
    for i in 0..50 {
        assert_eq!(
            r.pick(i)
                .authenticate("alice", &format!("guess{i}"), guesser)
                .await,
            Err(MetaError::AuthenticationFailed)
        );
    }
    // One budget of ten for the two replicas together, the rest refused unchecked.
    assert_eq!((r.failures(), r.throttled()), (10, 40));

    // Alice from her own address, with the right password, on either replica: in, after at
    // most the maximum delay.
    for i in 0..4 {
        let started = Instant::now();
        assert_eq!(
            r.pick(i)
                .authenticate("alice", "right", ip("198.51.100.20"))
                .await,
            Ok(alice)
        );
        let took = started.elapsed();
        assert!(
            took >= MAX_DELAY,
            "the name's failures slow it down: {took:?}"
        );
        assert!(took < MAX_DELAY + Duration::from_secs(2), "{took:?}");
    }

    // The guesser stays refused on both replicas, right password or not.
    for i in 0..2 {
        assert_eq!(
            r.pick(i).authenticate("alice", "right", guesser).await,
            Err(MetaError::AuthenticationFailed)
        );
    }
    assert_eq!(r.throttled(), 42);

    // The counters are hashed keys with an expiry; no name or address is written to Redis.
    let client = redis::Client::open(server.url()).expect("client");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("thr:*")
        .query_async(&mut c)
        .await
        .expect("KEYS");
    assert!(!keys.is_empty());
    for key in &keys {
        assert!(
            !key.contains("alice") && !key.contains("203.0.113"),
            "{key}"
        );
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut c)
            .await
            .expect("PTTL");
        assert!(ttl > 0, "{key} expires: {ttl}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spellings_of_a_name_share_its_budget() {
    let (_server, r, alice) = setup().await;
    let guesser = ip("2001:db8:7::1");
    let spellings = [" alice", "ALICE ", "Alice", "\talice\n"];
    for i in 0..20 {
        // Another host of the same /64 is the same client.
        let from = ip(&format!("2001:db8:7::{:x}", i + 1));
        let _ = r
            .pick(i)
            .authenticate(spellings[i % spellings.len()], "guess", from)
            .await;
    }
    assert_eq!((r.failures(), r.throttled()), (10, 10));
    for (i, spelling) in spellings.iter().enumerate() {
        assert_eq!(
            r.pick(i).authenticate(spelling, "right", guesser).await,
            Err(MetaError::AuthenticationFailed),
            "{spelling:?} is refused like alice"
        );
    }
    // Bob from there is not refused (the address is below its own limit), nor alice elsewhere.
    assert!(r.a.authenticate("bob", "right", guesser).await.is_ok());
    assert_eq!(
        r.b.authenticate(" Alice ", "right", ip("2001:db8:8::1"))
            .await,
        Ok(alice)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_spraying_names_has_one_budget_across_replicas() {
    let (_server, r, _alice) = setup().await;
    let sprayer = ip("192.0.2.66");
    for i in 0..90 {
        // Three tries per name: below the per-name limit, so only the address counter refuses.
        let _ = r
            .pick(i)
            .authenticate(&format!("user{}", i / 3), "guess", sprayer)
            .await;
    }
    assert_eq!((r.failures(), r.throttled()), (30, 60));
    assert_eq!(
        r.a.authenticate("bob", "right", sprayer).await,
        Err(MetaError::AuthenticationFailed)
    );
    assert!(
        r.b.authenticate("bob", "right", ip("192.0.2.67"))
            .await
            .is_ok()
    );
}
