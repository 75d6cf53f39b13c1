//! Failed-login counters shared by every meta replica ([`FailureCounters`]): one string key
//! `thr:{<key>}` per counter, its own hash tag so that counters spread over a cluster's slots
//! and every call is one single-key command or script per counter.

use std::time::Duration;

use async_trait::async_trait;
use futures::future::try_join_all;
use yubin_meta_api::{FailureCounters, MetaError, MetaResult};

use super::call::Call;
use super::{RedisStore, redis_err};

/// Most counters one call may touch: the authenticator asks about three (name, name and
/// address, address); anything more is a caller bug, not a reason to do unbounded work.
const MAX_KEYS_PER_CALL: usize = 8;
/// Longest caller key: a kind and a hex hash.
const MAX_KEY_BYTES: usize = 80;

/// The Redis key of caller key `key`, after checking that the call is bounded and the key
/// opaque (no braces that would change the hash tag, no spaces or control characters).
fn redis_keys(keys: &[String]) -> MetaResult<Vec<String>> {
    if keys.len() > MAX_KEYS_PER_CALL {
        return Err(MetaError::Invalid(format!(
            "at most {MAX_KEYS_PER_CALL} failure counters per call"
        )));
    }
    keys.iter()
        .map(|key| {
            let opaque = !key.is_empty()
                && key.len() <= MAX_KEY_BYTES
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'-');
            if opaque {
                Ok(format!("thr:{{{key}}}"))
            } else {
                Err(MetaError::Invalid(format!(
                    "bad failure counter key {key:?}"
                )))
            }
        })
        .collect()
}

#[async_trait]
impl FailureCounters for RedisStore {
    async fn failure_counts(&self, keys: &[String]) -> MetaResult<Vec<u32>> {
        let keys = redis_keys(keys)?;
        // One GET per key, concurrently: on a cluster the keys live in different slots, and the
        // connection multiplexes them either way.
        try_join_all(keys.iter().map(|key| {
            let mut c = self.conn.clone();
            async move {
                let count: Option<i64> = redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut c)
                    .await
                    .map_err(redis_err)?;
                Ok(u32::try_from(count.unwrap_or(0).max(0)).unwrap_or(u32::MAX))
            }
        }))
        .await
    }

    async fn add_failure(&self, keys: &[String], window: Duration) -> MetaResult<()> {
        let keys = redis_keys(keys)?;
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        try_join_all(keys.iter().map(|key| async move {
            let mut call = Call::new(&self.scripts.failure_add);
            call.key(key).arg(window_ms);
            // A failure count lost in a failover only gives a guesser a few more tries: no WAIT.
            self.invoke_read(&call).await.map(|_| ())
        }))
        .await?;
        Ok(())
    }

    async fn clear_failures(&self, keys: &[String]) -> MetaResult<()> {
        let keys = redis_keys(keys)?;
        try_join_all(keys.iter().map(|key| {
            let mut c = self.conn.clone();
            async move {
                let _: i64 = redis::cmd("DEL")
                    .arg(key)
                    .query_async(&mut c)
                    .await
                    .map_err(redis_err)?;
                Ok::<(), MetaError>(())
            }
        }))
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_and_opaque() {
        assert_eq!(
            redis_keys(&["n:0a1b".to_string()]).unwrap(),
            vec!["thr:{n:0a1b}".to_string()]
        );
        for bad in ["", "a}b", "a b", "{x}", &"x".repeat(81)] {
            assert!(redis_keys(&[bad.to_string()]).is_err(), "{bad:?}");
        }
        assert!(redis_keys(&vec!["a".to_string(); 9]).is_err());
    }
}
