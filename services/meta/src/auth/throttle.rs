//! Login throttling: the policy (delays, then refusal) of a failure counter, the counters this
//! process keeps ([`InProcessFailureCounters`]) and the keys an attempt is counted under (name,
//! name and client address, client address).

use async_trait::async_trait;
use sha2::Sha256;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
#[cfg(doc)]
use yubin_meta_api::normalize_login_name;
use yubin_meta_api::{FailureCounters, MetaResult};

#[cfg(doc)]
use super::PasswordAuthenticator;

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
    pub(super) fn verdict(&self, failures: u32) -> Verdict {
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
    pub(super) fn delay_only(&self, failures: u32) -> Verdict {
        match self.verdict(failures) {
            Verdict::Refuse => Verdict::Proceed(self.max_delay),
            proceed => proceed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Check the credentials after waiting this long.
    Proceed(Duration),
    /// Refuse without checking.
    Refuse,
}

impl Verdict {
    /// The stricter of two verdicts.
    pub(super) fn and(self, other: Verdict) -> Verdict {
        match (self, other) {
            (Verdict::Refuse, _) | (_, Verdict::Refuse) => Verdict::Refuse,
            (Verdict::Proceed(a), Verdict::Proceed(b)) => Verdict::Proceed(a.max(b)),
        }
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

    pub(super) fn counts(&self, keys: &[String]) -> Vec<u32> {
        let now = Instant::now();
        let mut c = self.lock();
        keys.iter().map(|k| c.count(k, now)).collect()
    }

    pub(super) fn add(&self, keys: &[String], window: Duration) {
        let now = Instant::now();
        let mut c = self.lock();
        for key in keys {
            c.add(key, window, now);
        }
    }

    pub(super) fn clear(&self, keys: &[String]) {
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
pub(super) struct ThrottleKeys {
    /// The login name alone: its failures only ever delay attempts, from anywhere.
    pub(super) name: Option<String>,
    /// The login name from this client address (or from an unknown one): refused past a limit.
    pub(super) pair: Option<String>,
    /// The client address (IPv6: its /64), when known: refused past a limit.
    pub(super) address: Option<String>,
}

impl ThrottleKeys {
    /// `name` must be normalized ([`normalize_login_name`]). Keys are hashes: bounded in length
    /// whatever the client sent, and no name or address is written to Redis.
    pub(super) fn new(name: Option<&str>, client: Option<IpAddr>) -> ThrottleKeys {
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
    pub(super) fn present(&self) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn address_keys() {
        let key = |s: &str| address_key(s.parse().unwrap());
        assert_eq!(key("192.0.2.1"), "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_eq!(key("2001:db8::1"), key("2001:db8::ffff:1"));
        assert_ne!(key("2001:db8::1"), key("2001:db8:0:1::1"));
    }
}
