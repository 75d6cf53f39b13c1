//! The full-text index behind both stores (issue: the index out of Redis RAM): the conformance
//! suite with an indexer running behind it, searches that stay exact whatever the indexer did
//! (lagging, down, killed between publishing and committing, on another replica), removals that
//! really remove, and data of a release that kept trigram postings in Redis.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use yubin_blob::{BlobStore, FsBlobStore};
use yubin_meta_api::{
    AccountStore, BlobKey, FlagOp, InternalDate, MailStore, MailboxId, MetaError, MetaResult,
    NewMessage, SearchIndex, SearchKey, Uid, UidSet, UserId,
};
use yubin_meta_store::fulltext::{
    FullText, Generation, IndexQueue, IndexWork, Indexer, IndexerSettings, Nudge,
};
use yubin_meta_store::testing::RedisServer;
use yubin_meta_store::{EmbeddedStore, RedisStore, conformance};
use yubin_text_index::{TextIndexConfig, TextIndexes};

fn indexes(dir: &Path, remote: Option<Arc<dyn BlobStore>>) -> Arc<TextIndexes> {
    Arc::new(
        TextIndexes::open(TextIndexConfig {
            dir: dir.to_path_buf(),
            remote,
            max_open_users: 8,
            writer_memory_bytes: 15_000_000,
        })
        .expect("open the index"),
    )
}

/// Small batches, so that a conformance check meets messages both queued and indexed.
fn settings() -> IndexerSettings {
    IndexerSettings {
        batch_messages: 5,
        batch_removals: 7,
        batch_bytes: 1 << 20,
        lease: Duration::from_millis(300),
        concurrency: 2,
        delay: Duration::from_millis(20),
    }
}

struct Guard {
    _redis: Option<RedisServer>,
    _dir: tempfile::TempDir,
}

/// Redis, the index published to a blob store, and an indexer running behind every write.
async fn redis_indexed() -> (Guard, RedisStore) {
    let redis = RedisServer::spawn().expect("spawn redis-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let remote: Arc<dyn BlobStore> = Arc::new(FsBlobStore::new(dir.path().join("remote")));
    let ix = indexes(&dir.path().join("local"), Some(remote));
    let (nudge, nudges) = Nudge::channel();
    let store = RedisStore::connect(&redis.url())
        .await
        .expect("connect")
        .with_limits(conformance::LIMITS)
        .with_full_text(FullText::new(ix.clone(), nudge.clone()));
    Indexer::new(Arc::new(store.clone()), ix, settings()).spawn(nudge, nudges);
    let guard = Guard {
        _redis: Some(redis),
        _dir: dir,
    };
    (guard, store)
}

/// The embedded store with its local index and an indexer running behind every write.
async fn embedded_indexed() -> (Guard, EmbeddedStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ix = indexes(&dir.path().join("index"), None);
    let (nudge, nudges) = Nudge::channel();
    let store = EmbeddedStore::open(dir.path().join("meta.redb"))
        .await
        .expect("open")
        .with_limits(conformance::LIMITS)
        .with_full_text(FullText::new(ix.clone(), nudge.clone()));
    Indexer::new(Arc::new(store.clone()), ix, settings()).spawn(nudge, nudges);
    let guard = Guard {
        _redis: None,
        _dir: dir,
    };
    (guard, store)
}

mod redis_with_indexer {
    use super::redis_indexed;
    yubin_meta_store::conformance_tests!(redis_indexed);
}

mod embedded_with_indexer {
    use super::embedded_indexed;
    yubin_meta_store::conformance_tests!(embedded_indexed);
}

/// A store whose indexer runs only when the test says (`drain`), with nudges going nowhere.
struct Manual<S> {
    store: S,
    indexer: Indexer,
    indexes: Arc<TextIndexes>,
    _keep: (Option<RedisServer>, tempfile::TempDir),
    _nudges: tokio::sync::mpsc::UnboundedReceiver<UserId>,
}

async fn manual_redis(
    redis: Option<RedisServer>,
    url: &str,
    remote_dir: Option<&Path>,
) -> Manual<RedisStore> {
    let dir = tempfile::tempdir().expect("tempdir");
    let remote: Option<Arc<dyn BlobStore>> =
        remote_dir.map(|d| Arc::new(FsBlobStore::new(d.to_path_buf())) as Arc<dyn BlobStore>);
    let ix = indexes(dir.path(), remote);
    let (nudge, nudges) = Nudge::channel();
    let store = RedisStore::connect(url)
        .await
        .expect("connect")
        .with_limits(conformance::LIMITS)
        .with_full_text(FullText::new(ix.clone(), nudge));
    let indexer = Indexer::new(Arc::new(store.clone()), ix.clone(), settings());
    Manual {
        store,
        indexer,
        indexes: ix,
        _keep: (redis, dir),
        _nudges: nudges,
    }
}

async fn drain_with(indexer: &Indexer, user: UserId) {
    indexer.index_account(user).await.expect("index");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_search_is_exact_whatever_the_indexer_did() {
    let redis = RedisServer::spawn().expect("spawn redis-server");
    let url = redis.url();
    let m = manual_redis(Some(redis), &url, None).await;
    conformance::index_lag_stays_exact(&m.store, |u| drain_with(&m.indexer, u)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_search_is_exact_whatever_the_indexer_did() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ix = indexes(&dir.path().join("index"), None);
    let (nudge, _nudges) = Nudge::channel();
    let store = EmbeddedStore::open(dir.path().join("meta.redb"))
        .await
        .expect("open")
        .with_limits(conformance::LIMITS)
        .with_full_text(FullText::new(ix.clone(), nudge));
    let indexer = Indexer::new(Arc::new(store.clone()), ix, settings());
    conformance::index_lag_stays_exact(&store, |u| drain_with(&indexer, u)).await;
}

/// The same, with every SEARCH script call reading one queued text: searches step through the
/// queue while the indexer moves messages out of it between steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_search_in_one_text_steps_is_exact_whatever_the_indexer_did() {
    let redis = RedisServer::spawn().expect("spawn redis-server");
    let url = redis.url();
    let m = manual_redis(Some(redis), &url, None).await;
    let store = m.store.clone().with_search_text_step_bytes(1);
    conformance::index_lag_stays_exact(&store, |u| drain_with(&m.indexer, u)).await;
}

async fn evalsha_calls(url: &str) -> u64 {
    let mut c = redis::Client::open(url)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut c)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .expect("evalsha stats")
        .parse()
        .expect("calls")
}

/// The UIDs a BODY search for `word` finds, and the script calls it made.
async fn counted_body_search(
    store: &RedisStore,
    url: &str,
    user: UserId,
    mailbox: MailboxId,
    word: &str,
) -> (Vec<u32>, u64) {
    let before = evalsha_calls(url).await;
    let found = store
        .search(user, mailbox, &SearchKey::Body(word.into()))
        .await
        .expect("search")
        .into_iter()
        .map(|u| u.0)
        .collect();
    (found, evalsha_calls(url).await - before)
}

/// The attack: with the indexer stopped, a tenant queues megabytes of search text, then
/// searches. Redis hands the texts over in bounded steps (here 128 KiB, of 2.4 MB queued)
/// instead of one reply the size of the lag, and the answer is still exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_reads_a_lagging_queue_in_bounded_steps() {
    let redis = RedisServer::spawn().expect("spawn redis-server");
    let url = redis.url();
    let m = manual_redis(Some(redis), &url, None).await;
    let step = 128 * 1024;
    let store = m.store.clone().with_search_text_step_bytes(step);
    let user = store.create_user("flood", "h").await.expect("user").id;
    let filler = "lorem ipsum dolor sit amet ".repeat(60 * 1024 / 27);
    let mut inbox = None;
    for n in 1..=40u32 {
        let body = if n % 3 == 0 {
            format!("{filler} needle")
        } else {
            filler.clone()
        };
        inbox = Some(
            store
                .append(user, "INBOX", vec![message(user, n, "flood", &body)])
                .await
                .expect("append")
                .mailbox,
        );
    }
    let inbox = inbox.expect("inbox");
    let (found, calls) = counted_body_search(&store, &url, user, inbox, "needle").await;
    assert_eq!(found, (1..=40).filter(|n| n % 3 == 0).collect::<Vec<u32>>());
    let queued = 40 * filler.len();
    assert!(
        calls as usize >= queued / step,
        "{calls} script calls read {queued} bytes of queued text in steps of {step}"
    );
    // Once indexed, the same search is one call again, and still exact.
    m.indexer.index_account(user).await.expect("index");
    let (again, calls) = counted_body_search(&store, &url, user, inbox, "needle").await;
    assert_eq!(again, found);
    assert_eq!(calls, 1);
}

/// Two metadata replicas on one Redis and one bucket, each with its own local index directory:
/// what one indexes and publishes, the other reads (downloading the generation it lacks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_searches_what_another_indexed() {
    let redis = RedisServer::spawn().expect("spawn redis-server");
    let url = redis.url();
    let bucket = tempfile::tempdir().expect("bucket");
    let writer = manual_redis(Some(redis), &url, Some(bucket.path())).await;
    let reader = manual_redis(None, &url, Some(bucket.path())).await;
    conformance::index_lag_stays_exact(&reader.store, |u| drain_with(&writer.indexer, u)).await;
}

/// Delegates to a store, counting the commits (index generations) asked for; with `crash`, it
/// fails every commit instead: an indexer killed after publishing its generation and before
/// the store recorded it.
struct Watched<Q> {
    store: Q,
    crash: bool,
    commits: Arc<std::sync::atomic::AtomicUsize>,
}

impl<Q> Watched<Q> {
    fn crashing(store: Q) -> Watched<Q> {
        Watched {
            store,
            crash: true,
            commits: Arc::default(),
        }
    }
}

#[async_trait]
impl<Q: IndexQueue> IndexQueue for Watched<Q> {
    async fn claim_index_work(
        &self,
        user: UserId,
        token: &str,
        settings: &IndexerSettings,
    ) -> MetaResult<Option<IndexWork>> {
        self.store.claim_index_work(user, token, settings).await
    }
    async fn migrate_legacy_postings(&self, user: UserId, mailbox: MailboxId) -> MetaResult<u64> {
        self.store.migrate_legacy_postings(user, mailbox).await
    }
    async fn commit_index_work(
        &self,
        user: UserId,
        token: &str,
        work: &IndexWork,
        indexed: &[(MailboxId, Uid)],
        generation: Generation,
    ) -> MetaResult<bool> {
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.crash {
            return Err(MetaError::Unavailable("killed before the commit".into()));
        }
        self.store
            .commit_index_work(user, token, work, indexed, generation)
            .await
    }
}

fn message(user: UserId, n: u32, subject: &str, body: &str) -> NewMessage {
    NewMessage {
        blob: BlobKey::for_content(user, &format!("{n:064x}")),
        size: 100,
        internal_date: InternalDate {
            unix_seconds: 1_700_000_000,
            tz_offset_minutes: 0,
        },
        flags: Vec::new(),
        summary: bytes::Bytes::from_static(b"s"),
        index: SearchIndex {
            headers: vec![("Subject".into(), subject.into())],
            sent_date: None,
            body_text: body.into(),
        },
    }
}

async fn subject_search<S: MailStore>(store: &S, user: UserId, m: MailboxId, v: &str) -> Vec<u32> {
    store
        .search(user, m, &SearchKey::Header("Subject".into(), v.into()))
        .await
        .expect("search")
        .into_iter()
        .map(|u| u.0)
        .collect()
}

/// Killed between publishing a generation and committing it, an indexer loses nothing: the
/// queue is intact and searches stay exact; once its lease expires another indexer (another
/// token, and a different batch on the same base generation) finishes the work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_indexer_killed_before_its_commit_loses_nothing() {
    let redis = RedisServer::spawn().expect("spawn redis-server");
    let url = redis.url();
    let bucket = tempfile::tempdir().expect("bucket");
    let m = manual_redis(Some(redis), &url, Some(bucket.path())).await;
    let user = m.store.create_user("crash", "h").await.expect("user").id;
    let inbox = m
        .store
        .append(
            user,
            "INBOX",
            (1..=4)
                .map(|n| message(user, n, &format!("report {n}"), "quarterly numbers"))
                .collect(),
        )
        .await
        .expect("append")
        .mailbox;
    let crashing = Indexer::new(
        Arc::new(Watched::crashing(m.store.clone())),
        m.indexes.clone(),
        settings(),
    );
    assert!(
        crashing.index_account(user).await.is_err(),
        "the commit fails"
    );
    assert_eq!(
        subject_search(&m.store, user, inbox, "report").await,
        [1, 2, 3, 4]
    );
    assert_eq!(subject_search(&m.store, user, inbox, "report 3").await, [3]);
    // More mail, so the next batch differs from the one published without a commit.
    m.store
        .append(user, "INBOX", vec![message(user, 5, "report 5", "more")])
        .await
        .expect("append");
    // The crashed indexer's lease runs out; another one takes over.
    tokio::time::sleep(settings().lease + Duration::from_millis(100)).await;
    m.indexer.index_account(user).await.expect("index");
    assert_eq!(
        subject_search(&m.store, user, inbox, "report").await,
        [1, 2, 3, 4, 5]
    );
    let mut c = redis::Client::open(url.as_str())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let queued: u64 = redis::cmd("HLEN")
        .arg(format!("{{u:{}}}:idx:{}", user.0, inbox.0))
        .query_async(&mut c)
        .await
        .expect("hlen");
    assert_eq!(queued, 0, "everything indexed leaves the queue");
}

/// Expunged messages and deleted mailboxes leave the index itself, not only the answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_reach_the_index() {
    let redis = RedisServer::spawn().expect("spawn redis-server");
    let url = redis.url();
    let m = manual_redis(Some(redis), &url, None).await;
    let user = m.store.create_user("forget", "h").await.expect("user").id;
    let inbox = m
        .store
        .append(
            user,
            "INBOX",
            (1..=3)
                .map(|n| message(user, n, &format!("secret {n}"), "body"))
                .collect(),
        )
        .await
        .expect("append")
        .mailbox;
    let other = m
        .store
        .create_mailbox(user, "Other", None)
        .await
        .expect("create")
        .id;
    m.store
        .copy_messages(user, inbox, &UidSet::from_ranges([(1, 3)]), "Other", false)
        .await
        .expect("copy");
    m.indexer.index_account(user).await.expect("index");
    let generation = |c: &mut redis::aio::MultiplexedConnection| {
        let key = format!("{{u:{}}}:ix", user.0);
        let mut c = c.clone();
        async move {
            let g: u64 = redis::cmd("HGET")
                .arg(key)
                .arg("gen")
                .query_async(&mut c)
                .await
                .expect("gen");
            Generation(g)
        }
    };
    let mut c = redis::Client::open(url.as_str())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let docs = |g, mailbox, uids: Vec<Uid>| {
        let ix = m.indexes.clone();
        async move {
            ix.documents(user, g, mailbox, &uids, None)
                .await
                .expect("documents")
                .len()
        }
    };
    let g = generation(&mut c).await;
    assert_eq!(docs(g, inbox, vec![Uid(1), Uid(2), Uid(3)]).await, 3);
    assert_eq!(docs(g, other, vec![Uid(1), Uid(2), Uid(3)]).await, 3);
    m.store
        .store_flags(
            user,
            inbox,
            &UidSet::from_uids([Uid(2)]),
            FlagOp::Add,
            &["\\Deleted".to_string()],
            None,
        )
        .await
        .expect("flag");
    m.store.expunge(user, inbox, None).await.expect("expunge");
    m.store.delete_mailbox(user, "Other").await.expect("delete");
    m.indexer.index_account(user).await.expect("index");
    let g = generation(&mut c).await;
    assert_eq!(
        docs(g, inbox, vec![Uid(1), Uid(2), Uid(3)]).await,
        2,
        "the expunged message's text is gone from the index"
    );
    assert_eq!(
        docs(g, other, vec![Uid(1), Uid(2), Uid(3)]).await,
        0,
        "the deleted mailbox's texts are gone from the index"
    );
}

/// A burst of writes to one account within the indexer's delay is indexed as one generation
/// (one tantivy commit), not one per write, and every message of it is searchable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_writes_shares_one_generation() {
    let redis = RedisServer::spawn().expect("spawn redis-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let ix = indexes(&dir.path().join("local"), None);
    let (nudge, nudges) = Nudge::channel();
    let store = RedisStore::connect(&redis.url())
        .await
        .expect("connect")
        .with_limits(conformance::LIMITS)
        .with_full_text(FullText::new(ix.clone(), nudge.clone()));
    let delayed = IndexerSettings {
        delay: Duration::from_millis(400),
        ..settings()
    };
    let commits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let queue = Watched {
        store: store.clone(),
        crash: false,
        commits: commits.clone(),
    };
    Indexer::new(Arc::new(queue), ix, delayed).spawn(nudge, nudges);
    let user = store.create_user("burst", "h").await.expect("user").id;
    let mut inbox = None;
    for n in 1..=4 {
        let appended = store
            .append(
                user,
                "INBOX",
                vec![message(user, n, &format!("burst {n}"), "b")],
            )
            .await
            .expect("append");
        inbox = Some(appended.mailbox);
    }
    let inbox = inbox.expect("appended");
    let mut waited = 0;
    while commits.load(std::sync::atomic::Ordering::SeqCst) == 0 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    // Another delay's worth: a second generation would have come by now.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        commits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "four appends within the delay, one generation"
    );
    assert_eq!(
        subject_search(&store, user, inbox, "burst").await,
        vec![1, 2, 3, 4]
    );
}

/// Data of a release that kept trigram postings in Redis (sets `g:`, lists `gl:`, `ug:`, the
/// mailbox field `grams`) and the text of every message in `idx:`: the indexer removes the
/// postings in bounded steps and indexes the texts; searches are exact before and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_postings_are_migrated() {
    let redis = RedisServer::spawn().expect("spawn redis-server");
    let url = redis.url();
    let m = manual_redis(Some(redis), &url, None).await;
    let user = m.store.create_user("legacy", "h").await.expect("user").id;
    let inbox = m
        .store
        .append(
            user,
            "INBOX",
            (1..=40)
                .map(|n| message(user, n, &format!("old {n}"), "kept"))
                .collect(),
        )
        .await
        .expect("append")
        .mailbox;
    let p = format!("{{u:{}}}:", user.0);
    let mut c = redis::Client::open(url.as_str())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    // What the old release wrote beside each message.
    for uid in 1..=40u32 {
        let grams = ["6f6c64", "6c6420", format!("20{uid:x}").as_str()].join(" ");
        let _: () = redis::cmd("HSET")
            .arg(format!("{p}gl:{}", inbox.0))
            .arg(uid)
            .arg(&grams)
            .query_async(&mut c)
            .await
            .expect("gl");
        for g in grams.split(' ') {
            let _: () = redis::cmd("SADD")
                .arg(format!("{p}g:{}:{g}", inbox.0))
                .arg(uid)
                .query_async(&mut c)
                .await
                .expect("g");
        }
    }
    let _: () = redis::cmd("SADD")
        .arg(format!("{p}ug:{}", inbox.0))
        .arg(41)
        .query_async(&mut c)
        .await
        .expect("ug");
    let _: () = redis::cmd("HSET")
        .arg(format!("{p}mb:{}", inbox.0))
        .arg("grams")
        .arg("1")
        .query_async(&mut c)
        .await
        .expect("grams");
    assert_eq!(subject_search(&m.store, user, inbox, "old 17").await, [17]);
    m.indexer.index_account(user).await.expect("index");
    assert_eq!(subject_search(&m.store, user, inbox, "old 17").await, [17]);
    assert_eq!(
        subject_search(&m.store, user, inbox, "old").await,
        (1..=40).collect::<Vec<u32>>()
    );
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{p}g*"))
        .query_async(&mut c)
        .await
        .expect("keys");
    assert!(left.is_empty(), "legacy postings remain: {left:?}");
    let ug: u8 = redis::cmd("EXISTS")
        .arg(format!("{p}ug:{}", inbox.0))
        .query_async(&mut c)
        .await
        .expect("exists");
    assert_eq!(ug, 0);
    let grams: Option<String> = redis::cmd("HGET")
        .arg(format!("{p}mb:{}", inbox.0))
        .arg("grams")
        .query_async(&mut c)
        .await
        .expect("hget");
    assert_eq!(grams, None);
}
