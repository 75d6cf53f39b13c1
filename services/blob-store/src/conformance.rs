//! The behaviour every [`BlobStore`] must have, as one reusable test suite.
//!
//! Public (not `cfg(test)`) so other crates can run it against their own implementations and
//! wrappers. It panics on the first violation, like any test assertion. It works in a fresh key
//! space per run (user ids derived from the clock), so it can share a store with other data, and
//! it deletes what it wrote.

use crate::{BlobError, BlobResult, BlobStore};
use bytes::Bytes;
use std::fmt::Debug;
use std::time::{SystemTime, UNIX_EPOCH};
use yubin_meta_api::{BlobKey, UserId};

/// Runs every check below against `store`.
pub async fn run_all(store: &dyn BlobStore) {
    let base = fresh_user_base();
    missing_keys(store, base).await;
    round_trip_and_ranges(store, base).await;
    overwrite_same_content(store, base).await;
    empty_blob(store, base).await;
    list_by_prefix(store, base).await;
    large_blob(store, base).await;
    put_from_file(store, base).await;
}

/// A user id no earlier run used, with room for a sibling id (`base * 10`) that shares its
/// decimal prefix.
fn fresh_user_base() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // Below 10^15 so that base * 10 stays far from overflow; never 0.
    (nanos % 1_000_000_000_000_000) as u64 + 1
}

fn key(user: u64, n: u64) -> BlobKey {
    BlobKey::for_content(UserId(user), &format!("{n:064x}"))
}

#[track_caller]
fn ok<T, E: Debug>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error {e:?}"),
    }
}

#[track_caller]
fn not_found<T: Debug>(r: BlobResult<T>, what: &str) {
    match r {
        Err(BlobError::NotFound(_)) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), so large blobs are not trivially compressible
/// or all zeros.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&v.to_le_bytes()[..take]);
    }
    out
}

/// Reading, probing and deleting what does not exist.
pub async fn missing_keys(store: &dyn BlobStore, base: u64) {
    let k = key(base, 0xdead);
    not_found(store.get(&k).await, "get of a missing blob");
    not_found(
        store.get_range(&k, 0..10).await,
        "get_range of a missing blob",
    );
    assert!(
        !ok(store.exists(&k).await, "exists of a missing blob"),
        "a missing blob exists"
    );
    ok(
        store.delete(&k).await,
        "deleting a missing blob is not an error",
    );
}

/// put, get, exists and get_range with clamping, then delete.
pub async fn round_trip_and_ranges(store: &dyn BlobStore, base: u64) {
    let k = key(base, 1);
    let data = Bytes::from_static(b"Subject: hello\r\n\r\nworld\r\n");
    let len = data.len() as u64;
    ok(store.put(&k, data.clone()).await, "put");
    assert_eq!(
        ok(store.get(&k).await, "get"),
        data,
        "get returns what put stored"
    );
    assert!(ok(store.exists(&k).await, "exists"), "a stored blob exists");

    let cases: [(std::ops::Range<u64>, &[u8]); 7] = [
        (0..7, b"Subject"),
        (9..14, b"hello"),
        // The end is clamped to the length.
        (18..1000, b"world\r\n"),
        (0..len, &data),
        (0..u64::MAX, &data),
        // Starting at or past the end, or empty: nothing.
        (len..len + 10, b""),
        (5..5, b""),
    ];
    for (range, expected) in cases {
        let got = ok(
            store.get_range(&k, range.clone()).await,
            &format!("get_range {range:?}"),
        );
        assert_eq!(&got[..], expected, "get_range {range:?}");
    }
    let far = ok(
        store.get_range(&k, len + 100..len + 200).await,
        "get_range past the end",
    );
    assert!(far.is_empty(), "a range past the end is empty");

    ok(store.delete(&k).await, "delete");
    not_found(store.get(&k).await, "get after delete");
    assert!(
        !ok(store.exists(&k).await, "exists after delete"),
        "a deleted blob still exists"
    );
    ok(store.delete(&k).await, "deleting twice");
}

/// Content-addressed keys get written twice (a retried delivery): harmless.
pub async fn overwrite_same_content(store: &dyn BlobStore, base: u64) {
    let k = key(base, 2);
    let data = Bytes::from(pattern(4096, 2));
    ok(store.put(&k, data.clone()).await, "first put");
    ok(
        store.put(&k, data.clone()).await,
        "second put of the same content",
    );
    assert_eq!(ok(store.get(&k).await, "get after overwrite"), data);
    ok(store.delete(&k).await, "cleanup");
}

pub async fn empty_blob(store: &dyn BlobStore, base: u64) {
    let k = key(base, 3);
    ok(store.put(&k, Bytes::new()).await, "put of an empty blob");
    assert!(ok(store.get(&k).await, "get of an empty blob").is_empty());
    assert!(ok(store.exists(&k).await, "exists of an empty blob"));
    assert!(ok(store.get_range(&k, 0..10).await, "range of an empty blob").is_empty());
    ok(store.delete(&k).await, "cleanup");
}

/// `list` returns exactly the keys under a prefix: all of them (30, more than one page on a store
/// configured with small pages), and not those of a user whose id merely starts with the same
/// digits.
pub async fn list_by_prefix(store: &dyn BlobStore, base: u64) {
    let user = base;
    let sibling = base * 10;
    let mut expected: Vec<BlobKey> = (0..30).map(|i| key(user, 100 + i)).collect();
    let others: Vec<BlobKey> = (0..3).map(|i| key(sibling, 200 + i)).collect();
    for (i, k) in expected.iter().chain(&others).enumerate() {
        ok(
            store.put(k, Bytes::from(format!("blob {i}"))).await,
            "put for list",
        );
    }
    let prefix = BlobKey::user_prefix(UserId(user));
    let mut listed = ok(store.list(&prefix).await, "list");
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected, "list({prefix}) returns exactly its keys");

    let mut listed_sibling = ok(
        store.list(&BlobKey::user_prefix(UserId(sibling))).await,
        "list sibling",
    );
    listed_sibling.sort();
    let mut others_sorted = others.clone();
    others_sorted.sort();
    assert_eq!(listed_sibling, others_sorted);

    // A partial last component is a plain string prefix, as in S3.
    let partial = format!(
        "{prefix}{}",
        &expected[0].as_str()[prefix.len()..prefix.len() + 63]
    );
    let listed_partial = ok(store.list(&partial).await, "list with a partial name");
    assert!(
        listed_partial.contains(&expected[0]) && listed_partial.len() < expected.len(),
        "list({partial}) gave {listed_partial:?}"
    );

    let nobody = BlobKey::user_prefix(UserId(base + 1));
    assert!(
        ok(store.list(&nobody).await, "list of an empty prefix").is_empty(),
        "no keys under an unused prefix"
    );

    for k in expected.iter().chain(&others) {
        ok(store.delete(k).await, "cleanup");
    }
    assert!(
        ok(store.list(&prefix).await, "list after delete").is_empty(),
        "deleted keys are no longer listed"
    );
}

/// An 8 MiB body survives byte for byte, and ranges inside it are exact.
pub async fn large_blob(store: &dyn BlobStore, base: u64) {
    let k = key(base, 4);
    let data = Bytes::from(pattern(8 * 1024 * 1024, base));
    ok(store.put(&k, data.clone()).await, "put 8 MiB");
    let got = ok(store.get(&k).await, "get 8 MiB");
    assert_eq!(got.len(), data.len(), "length of the large blob");
    assert!(got == data, "the large blob differs from what was stored");
    let mid = 3 * 1024 * 1024 + 7;
    let r = ok(
        store
            .get_range(&k, mid as u64..(mid + 100_000) as u64)
            .await,
        "range in the large blob",
    );
    assert!(
        r[..] == data[mid..mid + 100_000],
        "range in the large blob differs"
    );
    ok(store.delete(&k).await, "cleanup");
}

/// `put_file`: an 8 MiB file round trip, the file left in place; a file whose length is not the
/// announced size stores nothing.
pub async fn put_from_file(store: &dyn BlobStore, base: u64) {
    let k = key(base, 5);
    let data = pattern(8 * 1024 * 1024, base ^ 0x5eed);
    // Plain std rather than a temp-file crate: this module is part of the library.
    let path = std::env::temp_dir().join(format!(
        "yubin-blob-conformance-{base}-{}",
        std::process::id()
    ));
    ok(std::fs::write(&path, &data), "write the source file");
    ok(
        store.put_file(&k, &path, data.len() as u64).await,
        "put_file 8 MiB",
    );
    let got = ok(store.get(&k).await, "get after put_file");
    assert_eq!(got.len(), data.len(), "length after put_file");
    assert!(got[..] == data[..], "put_file stored different bytes");
    assert!(path.exists(), "put_file leaves its source in place");
    ok(store.delete(&k).await, "cleanup");

    let short = key(base, 6);
    assert!(
        store
            .put_file(&short, &path, data.len() as u64 + 1)
            .await
            .is_err(),
        "a file shorter than announced is refused"
    );
    assert!(
        !ok(
            store.exists(&short).await,
            "exists after a refused put_file"
        ),
        "a refused put_file stores nothing"
    );
    ok(std::fs::remove_file(&path), "remove the source file");
}
