//! Redis work per IMAP command kind, counted (not timed) with `INFO commandstats`: every store
//! call an IMAP command makes is a fixed number of Redis script calls (the store's only round
//! trips for these calls), whatever the number of messages it touches (STORE over a range: one
//! per batch of `--redis-batch-messages`), and no call leaves per-message search data behind
//! once the indexer has run (the Redis-budget issue, item 3). Commands run inside a script are
//! counted by Redis too, so only script calls are compared; a call refused with NOSCRIPT (the
//! first use of a script, then loaded and sent again) is not a round trip of the operation.

use std::sync::Arc;

use yubin_meta_api::{
    AccountStore, BlobKey, FlagOp, IndexProjection, InternalDate, MailStore, MailboxId, NewMessage,
    SearchIndex, SearchKey, UidSet, UserId,
};
use yubin_meta_store::fulltext::{FullText, Indexer, IndexerSettings, Nudge};
use yubin_meta_store::testing::RedisServer;
use yubin_meta_store::{RedisStore, StoreLimits};
use yubin_text_index::{TextIndexConfig, TextIndexes};

const MESSAGES: u32 = 1_200;

/// Script calls that ran (`EVALSHA` calls less those refused, e.g. with NOSCRIPT) since the
/// server started, from `INFO commandstats`.
async fn script_calls(c: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(c)
        .await
        .expect("INFO");
    let Some(line) = info.lines().find(|l| l.starts_with("cmdstat_evalsha:")) else {
        return 0;
    };
    let field = |name: &str| -> u64 {
        line.split([':', ','])
            .find_map(|kv| kv.strip_prefix(name))
            .map_or(0, |v| v.parse().expect("number"))
    };
    field("calls=") - field("failed_calls=") - field("rejected_calls=")
}

/// Script calls `op` made.
async fn counted<F: std::future::Future<Output = ()>>(
    c: &mut redis::aio::MultiplexedConnection,
    op: F,
) -> u64 {
    let before = script_calls(c).await;
    op.await;
    script_calls(c).await - before
}

fn message(user: UserId, n: u32) -> NewMessage {
    NewMessage {
        blob: BlobKey::for_content(user, &format!("{n:064x}")),
        size: 2_000,
        internal_date: InternalDate {
            unix_seconds: 1_700_000_000 + i64::from(n),
            tz_offset_minutes: 0,
        },
        flags: Vec::new(),
        summary: bytes::Bytes::from(vec![7u8; 300]),
        index: SearchIndex {
            headers: vec![
                ("Subject".into(), format!("quarterly report {n}")),
                ("From".into(), format!("sender{} <s@example.org>", n % 7)),
            ],
            sent_date: None,
            body_text: format!("numbers for week {n} are in the attached sheet"),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_command_kind_is_a_fixed_number_of_redis_calls() {
    let redis = RedisServer::spawn().expect("redis-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let indexes = Arc::new(
        TextIndexes::open(TextIndexConfig {
            dir: dir.path().to_path_buf(),
            remote: None,
            max_open_users: 4,
            writer_memory_bytes: 15_000_000,
        })
        .expect("index"),
    );
    let (nudge, _nudges) = Nudge::channel();
    let store = RedisStore::connect(&redis.url())
        .await
        .expect("connect")
        .with_limits(StoreLimits::default())
        .with_full_text(FullText::new(indexes.clone(), nudge));
    let indexer = Indexer::new(
        Arc::new(store.clone()),
        indexes,
        IndexerSettings {
            batch_messages: 5_000,
            ..IndexerSettings::default()
        },
    );
    let mut c = redis::Client::open(redis.url().as_str())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let user = store.create_user("budget", "h").await.expect("user").id;
    store.select(user, "INBOX").await.expect("select");

    // APPEND of one message (what an IMAP APPEND or an LMTP delivery is): one script.
    let ops = counted(&mut c, async {
        store
            .append(user, "INBOX", vec![message(user, 0)])
            .await
            .expect("append");
    })
    .await;
    assert_eq!(ops, 1, "APPEND");
    // A MULTIAPPEND of many: still one.
    let ops = counted(&mut c, async {
        store
            .append(
                user,
                "INBOX",
                (1..MESSAGES).map(|n| message(user, n)).collect(),
            )
            .await
            .expect("append");
    })
    .await;
    assert_eq!(ops, 1, "MULTIAPPEND");
    // The indexer: a claim and a commit per batch; afterwards no search text stays in Redis.
    let ops = counted(&mut c, async {
        indexer.index_account(user).await.expect("index");
    })
    .await;
    assert!(ops <= 4, "indexing: {ops} script calls");
    let idx: u64 = redis::cmd("EXISTS")
        .arg(format!("{{u:{}}}:idx:1", user.0))
        .query_async(&mut c)
        .await
        .expect("exists");
    assert_eq!(idx, 0, "the queue is empty once indexed");

    let inbox = MailboxId(1);
    let all = UidSet::from_ranges([(1, u32::MAX)]);
    let cases: Vec<(&str, u64)> = vec![
        ("SELECT", 1),
        ("FETCH 1:* (FLAGS ENVELOPE)", 1),
        (
            "STORE 1:* +FLAGS (\\Seen)",
            1 + u64::from(MESSAGES) / 500 + 1,
        ),
        ("SEARCH UNSEEN", 1),
        ("SEARCH SUBJECT", 1),
        ("SEARCH TEXT + FLAG", 1),
        ("SORT (SUBJECT)", 1),
        ("COPY 1:*", 1),
        ("MOVE 1:100", 1),
        ("EXPUNGE", 1),
        ("CHANGES SINCE", 1),
    ];
    for (what, budget) in cases {
        let ops = counted(&mut c, async {
            match what {
                "SELECT" => drop(store.select(user, "INBOX").await.expect("select")),
                "FETCH 1:* (FLAGS ENVELOPE)" => {
                    drop(store.fetch(user, inbox, &all, true).await.expect("fetch"))
                }
                "STORE 1:* +FLAGS (\\Seen)" => drop(
                    store
                        .store_flags(user, inbox, &all, FlagOp::Add, &["\\Seen".into()], None)
                        .await
                        .expect("store"),
                ),
                "SEARCH UNSEEN" => drop(
                    store
                        .search(user, inbox, &SearchKey::NoFlag("\\Seen".into()))
                        .await
                        .expect("search"),
                ),
                "SEARCH SUBJECT" => {
                    let got = store
                        .search(
                            user,
                            inbox,
                            &SearchKey::Header("Subject".into(), "report 1199".into()),
                        )
                        .await
                        .expect("search");
                    assert_eq!(got.len(), 1);
                }
                "SEARCH TEXT + FLAG" => drop(
                    store
                        .search(
                            user,
                            inbox,
                            &SearchKey::And(vec![
                                SearchKey::Text("week 7".into()),
                                SearchKey::Flag("\\Seen".into()),
                            ]),
                        )
                        .await
                        .expect("search"),
                ),
                "SORT (SUBJECT)" => drop(
                    store
                        .search_indexed(
                            user,
                            inbox,
                            &SearchKey::All,
                            &IndexProjection {
                                headers: vec!["Subject".into()],
                                body_chars: 0,
                            },
                        )
                        .await
                        .expect("sort"),
                ),
                "COPY 1:*" => {
                    store
                        .create_mailbox(user, "Archive", None)
                        .await
                        .expect("create");
                    // The CREATE is its own command: the COPY is counted below.
                }
                "MOVE 1:100" => drop(
                    store
                        .copy_messages(
                            user,
                            inbox,
                            &UidSet::from_ranges([(1, 100)]),
                            "Archive",
                            true,
                        )
                        .await
                        .expect("move"),
                ),
                "EXPUNGE" => {
                    store
                        .store_flags(
                            user,
                            inbox,
                            &UidSet::from_ranges([(101, 200)]),
                            FlagOp::Add,
                            &["\\Deleted".into()],
                            None,
                        )
                        .await
                        .expect("flag");
                    // The STORE is its own command: the EXPUNGE is counted below.
                }
                "CHANGES SINCE" => drop(
                    store
                        .changes_since(user, inbox, yubin_meta_api::ModSeq(1))
                        .await
                        .expect("changes"),
                ),
                other => unreachable!("{other}"),
            }
        })
        .await;
        assert!(ops <= budget, "{what}: {ops} script calls > {budget}");
        if what == "COPY 1:*" {
            let ops = counted(&mut c, async {
                store
                    .copy_messages(user, inbox, &all, "Archive", false)
                    .await
                    .expect("copy");
            })
            .await;
            assert_eq!(ops, 1, "COPY 1:*");
        }
        if what == "EXPUNGE" {
            let ops = counted(&mut c, async {
                store.expunge(user, inbox, None).await.expect("expunge");
            })
            .await;
            assert_eq!(ops, 1, "EXPUNGE");
        }
    }
    // Searches stay one call while the indexer lags: what is queued comes in the same script.
    store
        .append(user, "INBOX", vec![message(user, 5_000)])
        .await
        .expect("append");
    let ops = counted(&mut c, async {
        let got = store
            .search(
                user,
                inbox,
                &SearchKey::Header("Subject".into(), "report 5000".into()),
            )
            .await
            .expect("search");
        assert_eq!(got.len(), 1);
    })
    .await;
    assert_eq!(ops, 1, "SEARCH with a lag");
}
