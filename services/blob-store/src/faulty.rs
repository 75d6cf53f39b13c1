//! A fault-injecting wrapper for tests: makes a working store fail on demand, to check that
//! callers turn blob-store outages into `NO [UNAVAILABLE]` / 451 and never into lost mail.

use crate::{BlobError, BlobResult, BlobStore};
use async_trait::async_trait;
use bytes::Bytes;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use yubin_meta_api::BlobKey;

/// When to fail, shared between the wrapper and the test driving it, plus call counters.
#[derive(Debug, Default)]
pub struct FaultPolicy {
    fail_next_puts: AtomicU64,
    fail_next_gets: AtomicU64,
    fail_all: AtomicBool,
    puts: AtomicU64,
    gets: AtomicU64,
    others: AtomicU64,
    injected: AtomicU64,
}

impl FaultPolicy {
    /// The next `n` puts fail (on top of any already scheduled).
    pub fn fail_next_puts(&self, n: u64) {
        self.fail_next_puts.fetch_add(n, Ordering::SeqCst);
    }

    /// The next `n` reads (`get` or `get_range`) fail.
    pub fn fail_next_gets(&self, n: u64) {
        self.fail_next_gets.fetch_add(n, Ordering::SeqCst);
    }

    /// While set, every operation fails: a total outage.
    pub fn set_fail_all(&self, fail: bool) {
        self.fail_all.store(fail, Ordering::SeqCst);
    }

    /// Cancels scheduled failures and the outage (counters are kept).
    pub fn heal(&self) {
        self.fail_next_puts.store(0, Ordering::SeqCst);
        self.fail_next_gets.store(0, Ordering::SeqCst);
        self.fail_all.store(false, Ordering::SeqCst);
    }

    /// Number of `put` calls, failed ones included.
    pub fn put_calls(&self) -> u64 {
        self.puts.load(Ordering::SeqCst)
    }

    /// Number of `get` and `get_range` calls, failed ones included.
    pub fn get_calls(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }

    /// Number of `exists`, `delete` and `list` calls.
    pub fn other_calls(&self) -> u64 {
        self.others.load(Ordering::SeqCst)
    }

    /// Number of failures injected so far.
    pub fn injected_failures(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// Consumes one scheduled failure from `budget` if any: decrement-if-positive, atomically, so
    /// concurrent callers fail exactly `n` times in total.
    fn take(budget: &AtomicU64) -> bool {
        budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    fn check(&self, op: &str, counter: &AtomicU64, budget: Option<&AtomicU64>) -> BlobResult<()> {
        counter.fetch_add(1, Ordering::SeqCst);
        let fail = self.fail_all.load(Ordering::SeqCst) || budget.is_some_and(FaultPolicy::take);
        if fail {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err(BlobError::Unavailable(format!("injected failure ({op})")));
        }
        Ok(())
    }
}

/// Wraps a store and fails its operations as its [`FaultPolicy`] says, always as
/// [`BlobError::Unavailable`], without touching the inner store.
#[derive(Debug)]
pub struct FaultyBlobStore<S> {
    inner: S,
    policy: Arc<FaultPolicy>,
}

impl<S: BlobStore> FaultyBlobStore<S> {
    pub fn new(inner: S) -> FaultyBlobStore<S> {
        FaultyBlobStore {
            inner,
            policy: Arc::new(FaultPolicy::default()),
        }
    }

    /// The shared policy, to keep a handle after the store is moved into an `Arc<dyn BlobStore>`.
    pub fn policy(&self) -> Arc<FaultPolicy> {
        self.policy.clone()
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    pub fn fail_next_puts(&self, n: u64) {
        self.policy.fail_next_puts(n);
    }

    pub fn fail_next_gets(&self, n: u64) {
        self.policy.fail_next_gets(n);
    }

    pub fn set_fail_all(&self, fail: bool) {
        self.policy.set_fail_all(fail);
    }

    pub fn put_calls(&self) -> u64 {
        self.policy.put_calls()
    }

    pub fn get_calls(&self) -> u64 {
        self.policy.get_calls()
    }
}

#[async_trait]
impl<S: BlobStore> BlobStore for FaultyBlobStore<S> {
    async fn put(&self, key: &BlobKey, data: Bytes) -> BlobResult<()> {
        let p = &self.policy;
        p.check("put", &p.puts, Some(&p.fail_next_puts))?;
        self.inner.put(key, data).await
    }

    async fn put_file(&self, key: &BlobKey, path: &Path, size: u64) -> BlobResult<()> {
        // A put like any other: same counter, same scheduled failures.
        let p = &self.policy;
        p.check("put", &p.puts, Some(&p.fail_next_puts))?;
        self.inner.put_file(key, path, size).await
    }

    async fn get(&self, key: &BlobKey) -> BlobResult<Bytes> {
        let p = &self.policy;
        p.check("get", &p.gets, Some(&p.fail_next_gets))?;
        self.inner.get(key).await
    }

    async fn get_range(&self, key: &BlobKey, range: Range<u64>) -> BlobResult<Bytes> {
        let p = &self.policy;
        p.check("get_range", &p.gets, Some(&p.fail_next_gets))?;
        self.inner.get_range(key, range).await
    }

    async fn exists(&self, key: &BlobKey) -> BlobResult<bool> {
        let p = &self.policy;
        p.check("exists", &p.others, None)?;
        self.inner.exists(key).await
    }

    async fn delete(&self, key: &BlobKey) -> BlobResult<()> {
        let p = &self.policy;
        p.check("delete", &p.others, None)?;
        self.inner.delete(key).await
    }

    async fn list(&self, prefix: &str) -> BlobResult<Vec<BlobKey>> {
        let p = &self.policy;
        p.check("list", &p.others, None)?;
        self.inner.list(prefix).await
    }
}
