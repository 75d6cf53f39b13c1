//! The cache of successful verifications ([`SuccessCache`]): bounded, expiring in insertion
//! order.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;
use yubin_meta_api::UserId;

pub(super) type CacheKey = [u8; 32];

/// Successful verifications, expiring in insertion order (the TTL is the same for all).
pub(super) struct SuccessCache {
    ttl: Duration,
    capacity: usize,
    entries: HashMap<CacheKey, (UserId, Instant)>,
    /// (key, expiry) in insertion order; an item is stale when the map holds a later expiry.
    order: VecDeque<(CacheKey, Instant)>,
}

impl SuccessCache {
    pub(super) fn new(ttl: Duration, capacity: usize) -> SuccessCache {
        SuccessCache {
            ttl,
            capacity,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub(super) fn get(&self, key: &CacheKey, now: Instant) -> Option<UserId> {
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

    pub(super) fn insert(&mut self, key: CacheKey, user: UserId, now: Instant) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
