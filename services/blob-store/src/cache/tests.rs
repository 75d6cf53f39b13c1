use super::*;
use crate::{FaultPolicy, FaultyBlobStore, FsBlobStore, conformance};
use sha2::{Digest, Sha256};
use yubin_meta_api::UserId;

const KIB: u64 = 1024;

struct Fixture {
    cache: Arc<CachedBlobStore>,
    calls: Arc<FaultPolicy>,
    _dir: tempfile::TempDir,
}

fn fixture(memory: u64, object_max: u64, disk: Option<&Path>) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let faulty = FaultyBlobStore::new(FsBlobStore::new(dir.path().join("store")));
    let calls = faulty.policy();
    let config = BodyCacheConfig {
        memory_bytes: memory,
        object_max_bytes: object_max,
        disk: disk.map(|d| DiskTierConfig {
            dir: d.to_path_buf(),
            max_bytes: 64 * object_max,
        }),
    };
    let cache = CachedBlobStore::new(Arc::new(faulty), &config).expect("cache");
    Fixture {
        cache: Arc::new(cache),
        calls,
        _dir: dir,
    }
}

/// A body and its content-addressed key.
fn body(user: u64, len: usize, seed: u8) -> (BlobKey, Bytes) {
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let key = BlobKey::for_content(UserId(user), &hex::encode(Sha256::digest(&data)));
    (key, Bytes::from(data))
}

#[tokio::test]
async fn passes_the_blob_store_conformance_suite() {
    let f = fixture(4 * 1024 * KIB, 64 * KIB, None);
    conformance::run_all(f.cache.as_ref()).await;
    let disk = tempfile::tempdir().expect("tempdir");
    let f = fixture(4 * 1024 * KIB, 64 * KIB, Some(disk.path()));
    conformance::run_all(f.cache.as_ref()).await;
}

#[tokio::test]
async fn repeated_and_partial_reads_of_one_body_cost_one_get() {
    let f = fixture(1024 * KIB, 256 * KIB, None);
    let (key, data) = body(7, 50_000, 1);
    // Written by another node: only the store has it.
    f.cache.inner.put(&key, data.clone()).await.expect("put");
    let before = f.calls.get_calls();
    // A part, then the header, then the whole body, twice.
    assert_eq!(
        f.cache.get_range(&key, 700..20_000).await.expect("part"),
        data.slice(700..20_000)
    );
    assert_eq!(
        f.cache.get_range(&key, 0..700).await.expect("header"),
        data.slice(0..700)
    );
    assert_eq!(f.cache.get(&key).await.expect("whole"), data);
    assert_eq!(f.cache.get(&key).await.expect("again"), data);
    // Past the end is clamped, as the store does.
    assert_eq!(
        f.cache.get_range(&key, 49_990..60_000).await.expect("tail"),
        data.slice(49_990..)
    );
    assert_eq!(f.calls.get_calls() - before, 1, "one GET for all reads");
}

/// Header reads (the leading bytes) of bodies the cache does not hold fetch and keep only
/// those bytes: listing a mailbox neither downloads nor caches whole bodies. The first read
/// beyond them costs one more GET, after which the body is held whole.
#[tokio::test]
async fn header_reads_fetch_and_keep_only_the_leading_bytes() {
    let f = fixture(4 * 1024 * KIB, 256 * KIB, None);
    let bodies: Vec<_> = (0..20u8).map(|n| body(7, 200_000, n)).collect();
    for (key, data) in &bodies {
        f.cache.inner.put(key, data.clone()).await.expect("put");
    }
    for _ in 0..3 {
        for (key, data) in &bodies {
            assert_eq!(
                f.cache.get_range(key, 0..3000).await.expect("header"),
                data.slice(0..3000)
            );
        }
    }
    assert_eq!(f.calls.get_calls(), 20, "one GET per message, then hits");
    f.cache.settle().await;
    let held = f.cache.memory_bytes();
    assert!(
        held < 20 * (HEADER_READ_BYTES + 1024),
        "{held} bytes held for 20 headers"
    );
    // Opening one message: one GET, then it is held whole.
    let (key, data) = &bodies[3];
    assert_eq!(f.cache.get(key).await.expect("whole"), *data);
    assert_eq!(
        f.cache
            .get_range(key, 150_000..160_000)
            .await
            .expect("part"),
        data.slice(150_000..160_000)
    );
    assert_eq!(f.calls.get_calls(), 21);
    // A part beyond the header of another: one GET, the body is held whole from then on.
    let (key, data) = &bodies[4];
    assert_eq!(
        f.cache
            .get_range(key, 100_000..100_500)
            .await
            .expect("part"),
        data.slice(100_000..100_500)
    );
    assert_eq!(f.cache.get(key).await.expect("whole"), *data);
    assert_eq!(f.calls.get_calls(), 22);
    // A message no longer than the header read is held whole by its first header read.
    let (small, small_data) = body(7, 5_000, 99);
    f.cache
        .inner
        .put(&small, small_data.clone())
        .await
        .expect("put");
    assert_eq!(
        f.cache.get_range(&small, 0..500).await.expect("header"),
        small_data.slice(0..500)
    );
    assert_eq!(f.cache.get(&small).await.expect("whole"), small_data);
    assert_eq!(f.calls.get_calls(), 23);
}

#[tokio::test]
async fn a_body_written_here_is_read_without_a_get() {
    let f = fixture(1024 * KIB, 256 * KIB, None);
    let (key, data) = body(7, 30_000, 2);
    f.cache.put(&key, data.clone()).await.expect("put");
    assert_eq!(f.cache.get(&key).await.expect("get"), data);
    assert_eq!(
        f.cache.get_range(&key, 100..200).await.expect("range"),
        data.slice(100..200)
    );
    assert_eq!(f.calls.get_calls(), 0);
    assert_eq!(
        f.calls.put_calls(),
        1,
        "the store still gets the body first"
    );
}

/// `reads` reads of `key` at once: whole when `whole(i)`, else its first 1000 bytes.
async fn read_at_once(f: &Fixture, key: &BlobKey, data: &Bytes, whole: fn(usize) -> bool) {
    let reads: Vec<_> = (0..20)
        .map(|i| {
            let (cache, key) = (f.cache.clone(), key.clone());
            tokio::spawn(async move {
                if whole(i) {
                    cache.get(&key).await
                } else {
                    cache.get_range(&key, 0..1000).await
                }
            })
        })
        .collect();
    for (i, r) in reads.into_iter().enumerate() {
        let got = r.await.expect("task").expect("read");
        let want = if whole(i) {
            data.clone()
        } else {
            data.slice(0..1000)
        };
        assert_eq!(got, want);
    }
}

#[tokio::test]
async fn concurrent_misses_of_one_body_make_one_get() {
    let f = fixture(1024 * KIB, 256 * KIB, None);
    let (key, data) = body(7, 80_000, 3);
    f.cache.inner.put(&key, data.clone()).await.expect("put");
    read_at_once(&f, &key, &data, |_| true).await;
    assert_eq!(f.calls.get_calls(), 1, "whole reads");
    let (key, data) = body(7, 80_000, 4);
    f.cache.inner.put(&key, data.clone()).await.expect("put");
    read_at_once(&f, &key, &data, |_| false).await;
    assert_eq!(f.calls.get_calls(), 2, "header reads");
    // Whole reads of a body whose header is held: one upgrade for all of them.
    read_at_once(&f, &key, &data, |_| true).await;
    assert_eq!(f.calls.get_calls(), 3, "whole reads after header reads");
    // Both at once: the header's GET, if it came first, and one whole GET.
    let (key, data) = body(7, 80_000, 5);
    f.cache.inner.put(&key, data.clone()).await.expect("put");
    read_at_once(&f, &key, &data, |i| i % 2 == 0).await;
    assert!(f.calls.get_calls() - 3 <= 2, "mixed reads");
}

#[tokio::test]
async fn large_bodies_keep_only_their_start() {
    let f = fixture(1024 * KIB, 16 * KIB, None);
    let (key, data) = body(7, 100_000, 4);
    f.cache.inner.put(&key, data.clone()).await.expect("put");
    // The header of a large body: one GET of the first 16 KiB, then hits.
    for _ in 0..3 {
        assert_eq!(
            f.cache.get_range(&key, 0..2000).await.expect("header"),
            data.slice(0..2000)
        );
    }
    assert_eq!(f.calls.get_calls(), 1);
    // Beyond what is kept: straight to the store, every time.
    assert_eq!(
        f.cache
            .get_range(&key, 50_000..60_000)
            .await
            .expect("middle"),
        data.slice(50_000..60_000)
    );
    assert_eq!(f.cache.get(&key).await.expect("whole"), data);
    assert_eq!(f.calls.get_calls(), 3);
    assert!(f.cache.memory_bytes() <= 1024 * KIB);
}

#[tokio::test]
async fn memory_stays_within_its_bound() {
    let f = fixture(256 * KIB, 32 * KIB, None);
    for n in 0..64u8 {
        let (key, data) = body(7, 30_000, n);
        f.cache.put(&key, data.clone()).await.expect("put");
        assert_eq!(f.cache.get(&key).await.expect("get"), data);
    }
    f.cache.settle().await;
    let held = f.cache.memory_bytes();
    assert!(held <= 256 * KIB, "{held} bytes held");
    assert!(held > 0);
}

#[tokio::test]
async fn an_outage_fails_reads_it_cannot_serve_and_spares_cached_ones() {
    let f = fixture(1024 * KIB, 256 * KIB, None);
    let (cached, cached_data) = body(7, 10_000, 5);
    let (cold, cold_data) = body(7, 10_000, 6);
    f.cache
        .put(&cached, cached_data.clone())
        .await
        .expect("put");
    f.cache
        .inner
        .put(&cold, cold_data.clone())
        .await
        .expect("put");
    f.calls.set_fail_all(true);
    assert_eq!(f.cache.get(&cached).await.expect("cached"), cached_data);
    assert!(matches!(
        f.cache.get(&cold).await,
        Err(BlobError::Unavailable(_))
    ));
    assert!(matches!(
        f.cache.get_range(&cold, 0..10).await,
        Err(BlobError::Unavailable(_))
    ));
    // A failed load is not remembered: once the store is back, the read succeeds.
    f.calls.heal();
    assert_eq!(f.cache.get(&cold).await.expect("healed"), cold_data);
}

#[tokio::test]
async fn deleted_bodies_leave_the_cache() {
    let disk = tempfile::tempdir().expect("tempdir");
    let f = fixture(1024 * KIB, 256 * KIB, Some(disk.path()));
    let (key, data) = body(7, 10_000, 7);
    f.cache.put(&key, data).await.expect("put");
    f.cache.settle().await;
    assert!(f.cache.disk_bytes() > 0);
    f.cache.delete(&key).await.expect("delete");
    f.cache.settle().await;
    assert!(matches!(
        f.cache.get(&key).await,
        Err(BlobError::NotFound(_))
    ));
    assert!(!disk.path().join("7").join(&key.as_str()[4..]).exists());
}

#[tokio::test]
async fn the_disk_tier_survives_a_restart_and_never_serves_damaged_files() {
    let disk = tempfile::tempdir().expect("tempdir");
    let store_dir = tempfile::tempdir().expect("tempdir");
    let config = BodyCacheConfig {
        memory_bytes: 1024 * KIB,
        object_max_bytes: 256 * KIB,
        disk: Some(DiskTierConfig {
            dir: disk.path().to_path_buf(),
            max_bytes: 4 * 1024 * KIB,
        }),
    };
    let (good, good_data) = body(9, 40_000, 8);
    let (bad, bad_data) = body(9, 40_000, 9);
    {
        let inner = FsBlobStore::new(store_dir.path().to_path_buf());
        let cache = CachedBlobStore::new(Arc::new(inner), &config).expect("cache");
        cache.put(&good, good_data.clone()).await.expect("put");
        cache.put(&bad, bad_data.clone()).await.expect("put");
        cache.settle().await;
    }
    // Damage one file while the node is down; leave a stray file too.
    let bad_file = disk.path().join("9").join(&bad.as_str()[4..]);
    let mut damaged = std::fs::read(&bad_file).expect("cached file");
    damaged[100] ^= 0xff;
    std::fs::write(&bad_file, damaged).expect("damage");
    std::fs::write(disk.path().join("stray"), b"x").expect("stray");

    let faulty = FaultyBlobStore::new(FsBlobStore::new(store_dir.path().to_path_buf()));
    let calls = faulty.policy();
    let cache = CachedBlobStore::new(Arc::new(faulty), &config).expect("reopen");
    assert!(!disk.path().join("stray").exists(), "strays are removed");
    assert_eq!(cache.get(&good).await.expect("from disk"), good_data);
    assert_eq!(calls.get_calls(), 0, "served from the disk tier");
    assert_eq!(cache.get(&bad).await.expect("from the store"), bad_data);
    assert_eq!(calls.get_calls(), 1, "the damaged file was a miss");
}

#[test]
fn settings_are_checked() {
    let ok = BodyCacheConfig {
        memory_bytes: 1024,
        object_max_bytes: 512,
        disk: None,
    };
    assert!(ok.validate().is_ok());
    let zero = BodyCacheConfig {
        object_max_bytes: 0,
        ..ok.clone()
    };
    assert!(zero.validate().is_err());
    let too_big = BodyCacheConfig {
        object_max_bytes: 2048,
        ..ok.clone()
    };
    assert!(too_big.validate().is_err());
    let disk_only = BodyCacheConfig {
        memory_bytes: 0,
        disk: Some(DiskTierConfig {
            dir: PathBuf::from("cache"),
            max_bytes: 1 << 20,
        }),
        ..ok
    };
    assert!(disk_only.validate().is_err());
}

#[tokio::test]
async fn the_size_it_reports_is_what_it_holds() {
    let f = fixture(256 * KIB, 32 * KIB, None);
    for n in 0..40u8 {
        let (key, data) = body(7, 20_000, n);
        f.cache.put(&key, data.clone()).await.expect("put");
        // Replacing an entry does not count it twice.
        f.cache.put(&key, data).await.expect("put again");
    }
    f.cache.settle().await;
    assert_eq!(
        f.cache.held.load(Ordering::Relaxed),
        f.cache.memory_bytes() as i64
    );
    let (key, _) = body(7, 20_000, 39);
    f.cache.delete(&key).await.expect("delete");
    f.cache.settle().await;
    assert_eq!(
        f.cache.held.load(Ordering::Relaxed),
        f.cache.memory_bytes() as i64
    );
}
