//! Randomized differential test of the store engines: the same random sequences of store
//! operations run against the embedded (redb) store, the reference, a standalone Redis and a
//! 3-node Redis Cluster; every result and the final state must agree.
//!
//! Ids the stores choose themselves (mailbox ids, UIDVALIDITY, user ids inside blob keys) are
//! compared by order of first appearance rather than by value: the trait only promises that they
//! are unique and stable (RFC 3501 §2.3.1.1), not which number they are. Everything else (UIDs,
//! MODSEQs, flags, counts, errors by class) must be identical.
//!
//! `YUBIN_DIFF_SEED` replays a run (the seed is printed at the start and in every failure),
//! `YUBIN_DIFF_SEQUENCES` and `YUBIN_DIFF_STEPS` size it.

#[path = "differential/ops.rs"]
mod ops;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ops::{Op, Rng, Target, generate};
use yubin_meta_api::{
    AccountStore, BlobKey, Changes, IndexedMessage, MailStore, MailboxId, MailboxInfo,
    MailboxSnapshot, MessageRecord, MetaError, MetaResult, UidSet, UidValidity, UserId,
};
use yubin_meta_store::testing::{RedisCluster, RedisServer};
use yubin_meta_store::{EmbeddedStore, RedisStore, StoreLimits, conformance};

/// Both store traits, as one object type so the three engines sit in one list.
trait Store: MailStore + AccountStore {}
impl<T: MailStore + AccountStore> Store for T {}

/// One engine under test with what it has shown so far, to compare its own ids by order of
/// appearance.
struct Engine {
    name: &'static str,
    store: Box<dyn Store>,
    users: Vec<UserId>,
    /// The account the op at hand acts for: ids are compared per account, as the trait only
    /// makes them unique within one (two accounts may well get the same UIDVALIDITY).
    current: UserId,
    /// Mailbox ids in the order the engine first reported them.
    mailboxes: Vec<(UserId, MailboxId)>,
    /// UIDVALIDITY values in the order the engine first reported them.
    validities: Vec<(UserId, UidValidity)>,
}

impl Engine {
    fn mailbox_ordinal(&mut self, id: MailboxId) -> usize {
        ordinal(&mut self.mailboxes, (self.current, id))
    }

    fn validity_ordinal(&mut self, v: UidValidity) -> usize {
        ordinal(&mut self.validities, (self.current, v))
    }

    /// A blob key without the user id the engine gave the account.
    fn blob(&self, key: &BlobKey) -> String {
        for (slot, user) in self.users.iter().enumerate() {
            if let Some(rest) = key.0.strip_prefix(&BlobKey::user_prefix(*user)) {
                return format!("user{slot}/{rest}");
            }
        }
        format!("foreign:{}", key.0)
    }

    fn info(&mut self, m: &MailboxInfo) -> String {
        format!(
            "{{id#{} {:?} validity#{} uidnext={} hms={} exists={} unseen={} deleted={} size={} use={:?} recent={}}}",
            self.mailbox_ordinal(m.id),
            m.name,
            self.validity_ordinal(m.uid_validity),
            m.uid_next.0,
            m.highest_modseq.0,
            m.exists,
            m.unseen,
            m.deleted,
            m.size,
            m.special_use,
            m.recent
        )
    }

    fn snapshot(&mut self, s: &MailboxSnapshot) -> String {
        let mut keywords = s.keywords.clone();
        keywords.sort();
        // Each message's MODSEQ and flags; flags sorted, as for records (the engines may keep
        // different orders, each answering its own consistently).
        let flags: Vec<String> = (0..s.uids.len())
            .map(|i| match s.flags.get(i) {
                Some((modseq, flags)) => {
                    let mut flags = flags.to_vec();
                    flags.sort();
                    format!("{}:{flags:?}", modseq.0)
                }
                None => "unknown".into(),
            })
            .collect();
        format!(
            "{} uids={:?} first_unseen={:?} keywords={keywords:?} full={} flags={flags:?}",
            self.info(&s.info),
            s.uids.iter().map(|u| u.0).collect::<Vec<_>>(),
            s.first_unseen.map(|u| u.0),
            s.keywords_full
        )
    }

    fn record(&self, r: &MessageRecord) -> String {
        let mut flags = r.flags.clone();
        flags.sort();
        format!(
            "{{uid={} modseq={} flags={flags:?} date={:?} size={} blob={} summary={:?}}}",
            r.uid.0,
            r.modseq.0,
            r.internal_date,
            r.size,
            self.blob(&r.blob),
            r.summary
        )
    }

    fn indexed(&self, m: &IndexedMessage) -> String {
        format!(
            "{{uid={} size={} date={:?} index={:?}}}",
            m.uid.0, m.size, m.internal_date, m.index
        )
    }

    fn changes(&self, c: &Changes) -> String {
        let changed: Vec<String> = c.changed.iter().map(|r| self.record(r)).collect();
        // Below the expunge log's floor (`log_trimmed`) the UIDs left are not an answer: the
        // engines keep different ones among entries of one MODSEQ (Redis orders a sorted
        // set's ties as strings), and no client sees them — the front-end then reports every
        // absent UID (RFC 7162 §3.2.5.2). Whether the log was trimmed must agree.
        let vanished = if c.log_trimmed {
            "trimmed".to_string()
        } else {
            format!("{:?}", c.vanished.iter().map(|u| u.0).collect::<Vec<_>>())
        };
        format!(
            "hms={} uidnext={} exists={} gone={} vanished={vanished} changed={changed:?}",
            c.highest_modseq.0, c.uid_next.0, c.exists, c.mailbox_gone,
        )
    }
}

fn ordinal<T: PartialEq + Copy>(seen: &mut Vec<T>, v: T) -> usize {
    match seen.iter().position(|x| *x == v) {
        Some(i) => i,
        None => {
            seen.push(v);
            seen.len() - 1
        }
    }
}

/// Errors compared by class: the messages are each engine's own wording.
fn error_class(e: &MetaError) -> &'static str {
    match e {
        MetaError::NotFound(_) => "NotFound",
        MetaError::AlreadyExists(_) => "AlreadyExists",
        MetaError::Invalid(_) => "Invalid",
        MetaError::OverQuota(_) => "OverQuota",
        MetaError::Limit(_) => "Limit",
        MetaError::AuthenticationFailed => "AuthenticationFailed",
        MetaError::Unavailable(_) => "Unavailable",
        MetaError::Internal(_) => "Internal",
    }
}

/// Marks an answer that fails the run by itself.
const BROKEN: &str = "<broken>";

fn show<T>(
    engine: &mut Engine,
    r: MetaResult<T>,
    f: impl FnOnce(&mut Engine, T) -> String,
) -> String {
    match r {
        Ok(v) => f(engine, v),
        Err(e) => {
            if matches!(e, MetaError::Unavailable(_) | MetaError::Internal(_)) {
                // Never a legitimate answer (a bug, or a test server gone): in full, and the
                // run fails on it even when every engine says the same.
                format!("Err({e:?}) {BROKEN}")
            } else {
                format!("Err({})", error_class(&e))
            }
        }
    }
}

/// Resolves the mailbox an op addresses in this engine: by name (as a session that selects it
/// would), or the n-th mailbox the engine ever reported (possibly deleted since, as a stale
/// selection is).
async fn resolve(engine: &mut Engine, user: UserId, target: &Target) -> MetaResult<MailboxId> {
    match target {
        Target::Name(name) => {
            let info = engine.store.mailbox_status(user, name).await?;
            engine.mailbox_ordinal(info.id);
            engine.validity_ordinal(info.uid_validity);
            Ok(info.id)
        }
        Target::Seen(n) => Ok(engine
            .mailboxes
            .iter()
            .filter(|(owner, _)| *owner == user)
            .map(|(_, id)| *id)
            .cycle()
            .nth(*n)
            .unwrap_or(MailboxId(u64::MAX))),
    }
}

/// Applies one op to one engine and returns its normalized result.
async fn apply(engine: &mut Engine, op: &Op) -> String {
    let user = engine.users[op.user()];
    engine.current = user;
    match op {
        Op::Create {
            name, special_use, ..
        } => {
            let r = engine.store.create_mailbox(user, name, *special_use).await;
            show(engine, r, |e, m| e.info(&m))
        }
        Op::Delete { name, .. } => {
            let r = engine.store.delete_mailbox(user, name).await;
            show(engine, r, |_, ()| "ok".into())
        }
        Op::Rename { from, to, .. } => {
            let r = engine.store.rename_mailbox(user, from, to).await;
            show(engine, r, |_, ()| "ok".into())
        }
        Op::Subscribe { name, on, .. } => {
            let r = engine.store.set_subscribed(user, name, *on).await;
            show(engine, r, |_, ()| "ok".into())
        }
        Op::Append {
            mailbox, messages, ..
        } => {
            let msgs = messages.iter().map(|m| m.build(user)).collect();
            let r = engine.store.append(user, mailbox, msgs).await;
            show(engine, r, |e, a| {
                format!(
                    "validity#{} mailbox#{} uids={:?}",
                    e.validity_ordinal(a.uid_validity),
                    e.mailbox_ordinal(a.mailbox),
                    a.uids.iter().map(|u| u.0).collect::<Vec<_>>()
                )
            })
        }
        Op::Select { name, .. } => {
            let r = engine.store.select(user, name).await;
            show(engine, r, |e, s| e.snapshot(&s))
        }
        Op::Status { name, .. } => {
            let r = engine.store.mailbox_status(user, name).await;
            show(engine, r, |e, m| e.info(&m))
        }
        Op::Fetch {
            target,
            uids,
            with_summary,
            ..
        } => {
            let r = async {
                let id = resolve(engine, user, target).await?;
                engine.store.fetch(user, id, uids, *with_summary).await
            }
            .await;
            show(engine, r, |e, v| {
                v.iter().map(|r| e.record(r)).collect::<Vec<_>>().join(" ")
            })
        }
        Op::StoreFlags {
            target,
            uids,
            op,
            flags,
            unchanged_since,
            ..
        } => {
            let r = async {
                let id = resolve(engine, user, target).await?;
                engine
                    .store
                    .store_flags(user, id, uids, *op, flags, *unchanged_since)
                    .await
            }
            .await;
            show(engine, r, |_, s| {
                let updated: Vec<String> = s
                    .updated
                    .iter()
                    .map(|(uid, modseq, flags)| {
                        let mut flags = flags.clone();
                        flags.sort();
                        format!("{}@{}{flags:?}", uid.0, modseq.0)
                    })
                    .collect();
                format!(
                    "updated={updated:?} modified={:?} hms={}",
                    s.modified.iter().map(|u| u.0).collect::<Vec<_>>(),
                    s.highest_modseq.0
                )
            })
        }
        Op::Copy {
            target,
            uids,
            destination,
            remove_source,
            ..
        } => {
            let r = async {
                let id = resolve(engine, user, target).await?;
                engine
                    .store
                    .copy_messages(user, id, uids, destination, *remove_source)
                    .await
            }
            .await;
            show(engine, r, |e, c| {
                format!(
                    "validity#{} destination#{} mapping={:?}",
                    e.validity_ordinal(c.uid_validity),
                    e.mailbox_ordinal(c.destination),
                    c.mapping
                        .iter()
                        .map(|(a, b)| (a.0, b.0))
                        .collect::<Vec<_>>()
                )
            })
        }
        Op::Expunge { target, uids, .. } => {
            let r = async {
                let id = resolve(engine, user, target).await?;
                engine.store.expunge(user, id, uids.as_ref()).await
            }
            .await;
            show(engine, r, |_, v| {
                format!("{:?}", v.iter().map(|u| u.0).collect::<Vec<_>>())
            })
        }
        Op::Search { target, key, .. } => {
            let r = async {
                let id = resolve(engine, user, target).await?;
                engine.store.search(user, id, key).await
            }
            .await;
            show(engine, r, |_, v| {
                format!("{:?}", v.iter().map(|u| u.0).collect::<Vec<_>>())
            })
        }
        Op::SearchIndexed {
            target,
            key,
            projection,
            ..
        } => {
            let r = async {
                let id = resolve(engine, user, target).await?;
                engine.store.search_indexed(user, id, key, projection).await
            }
            .await;
            show(engine, r, |e, v| {
                v.iter().map(|m| e.indexed(m)).collect::<Vec<_>>().join(" ")
            })
        }
        Op::ChangesSince { target, since, .. } => {
            let r = async {
                let id = resolve(engine, user, target).await?;
                engine.store.changes_since(user, id, *since).await
            }
            .await;
            show(engine, r, |e, c| e.changes(&c))
        }
        Op::ClaimRecent { target, up_to, .. } => {
            let r = async {
                let id = resolve(engine, user, target).await?;
                engine.store.claim_recent(user, id, *up_to).await
            }
            .await;
            show(engine, r, |_, range| {
                format!("[{}, {})", range.from.0, range.to.0)
            })
        }
        Op::SetQuota { limits, .. } => {
            let r = engine.store.set_account_quota(user, *limits).await;
            show(engine, r, |_, ()| "ok".into())
        }
        Op::Quota { .. } => {
            let r = engine.store.quota(user).await;
            show(engine, r, |_, q| format!("{q:?}"))
        }
        Op::SetMetadata {
            mailbox,
            entries,
            max_entries,
            ..
        } => {
            let r = engine
                .store
                .set_metadata(user, mailbox.as_deref(), entries, *max_entries)
                .await;
            show(engine, r, |_, ()| "ok".into())
        }
        Op::GetMetadata {
            mailbox,
            entries,
            depth,
            ..
        } => {
            let r = engine
                .store
                .get_metadata(user, mailbox.as_deref(), entries, *depth)
                .await;
            show(engine, r, |_, v| format!("{v:?}"))
        }
        Op::ListMailboxes { .. } => list(engine, user).await,
        Op::ListSubscriptions { .. } => {
            let r = engine.store.list_subscriptions(user).await;
            show(engine, r, |_, mut v| {
                v.sort();
                format!("{v:?}")
            })
        }
    }
}

async fn list(engine: &mut Engine, user: UserId) -> String {
    let r = engine.store.list_mailboxes(user).await;
    show(engine, r, |e, mut v| {
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v.iter().map(|m| e.info(m)).collect::<Vec<_>>().join("\n")
    })
}

/// Everything an account holds, normalized: mailboxes with their status, every message with
/// flags and MODSEQ, subscriptions, quota and the server's metadata.
async fn final_state(engine: &mut Engine, slot: usize) -> String {
    let user = engine.users[slot];
    engine.current = user;
    let mut out = list(engine, user).await;
    let names: Vec<String> = engine
        .store
        .list_mailboxes(user)
        .await
        .map(|v| v.into_iter().map(|m| m.name).collect())
        .unwrap_or_default();
    let mut names = names;
    names.sort();
    let all = UidSet::from_ranges([(1, u32::MAX)]);
    for name in &names {
        let r = async {
            let s = engine.store.select(user, name).await?;
            let f = engine.store.fetch(user, s.info.id, &all, true).await?;
            Ok((s, f))
        }
        .await;
        let shown = show(engine, r, |e, (s, f)| {
            let records: Vec<String> = f.iter().map(|r| e.record(r)).collect();
            format!("{}\n  {}", e.snapshot(&s), records.join("\n  "))
        });
        let _ = write!(out, "\n{name}: {shown}");
    }
    let subs = engine.store.list_subscriptions(user).await;
    let subs = show(engine, subs, |_, mut v| {
        v.sort();
        format!("{v:?}")
    });
    let quota = engine.store.quota(user).await;
    let quota = show(engine, quota, |_, q| format!("{q:?}"));
    let entries = vec!["/private".to_string(), "/shared".to_string()];
    let meta = engine
        .store
        .get_metadata(
            user,
            None,
            &entries,
            yubin_meta_api::MetadataDepth::Infinity,
        )
        .await;
    let meta = show(engine, meta, |_, v| format!("{v:?}"));
    let _ = write!(
        out,
        "\nsubscriptions: {subs}\nquota: {quota}\nserver metadata: {meta}"
    );
    for name in &names {
        let m = engine
            .store
            .get_metadata(
                user,
                Some(name),
                &entries,
                yubin_meta_api::MetadataDepth::Infinity,
            )
            .await;
        let m = show(engine, m, |_, v| format!("{v:?}"));
        let _ = write!(out, "\nmetadata {name}: {m}");
    }
    out
}

/// The first line where two renderings differ, with a little context.
fn first_difference(reference: &str, other: &str) -> String {
    let a: Vec<&str> = reference.lines().collect();
    let b: Vec<&str> = other.lines().collect();
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (
            a.get(i).copied().unwrap_or(""),
            b.get(i).copied().unwrap_or(""),
        );
        if x != y {
            // Long lines (a whole STORE result) are cut to where they start to differ.
            let at = x
                .char_indices()
                .zip(y.chars())
                .find(|((_, cx), cy)| cx != cy)
                .map_or(x.len().min(y.len()), |((i, _), _)| i);
            let from = x[..at.min(x.len())]
                .char_indices()
                .rev()
                .nth(40)
                .map_or(0, |(i, _)| i);
            let cut = |s: &str| {
                s.get(from..)
                    .unwrap_or(s)
                    .chars()
                    .take(120)
                    .collect::<String>()
            };
            return format!(
                "line {i}, from byte {from}:\n  embedded: {}\n  other:    {}",
                cut(x),
                cut(y)
            );
        }
    }
    "identical".into()
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

async fn engines(
    dir: &tempfile::TempDir,
    server: &RedisServer,
    cluster: &RedisCluster,
    sequence: u64,
) -> Vec<Engine> {
    // Redis takes one MODSEQ per batch of `redis_batch_messages` messages of a STORE (each
    // batch is its own script call, and a later batch cannot reuse a MODSEQ a client may
    // already have read as HIGHESTMODSEQ), the embedded store one per STORE. Both are what RFC
    // 7162 allows; the universe here stays within one batch so the engines' MODSEQs compare
    // exactly, and the conformance case `store_in_batches` checks the batched form.
    let limits = StoreLimits {
        redis_batch_messages: 100_000,
        ..conformance::LIMITS
    };
    let embedded = EmbeddedStore::open(dir.path().join(format!("meta-{sequence}.redb")))
        .await
        .expect("open embedded store")
        .with_limits(limits);
    let redis = RedisStore::connect(&server.url())
        .await
        .expect("connect to redis")
        .with_limits(limits);
    let clustered = RedisStore::connect_cluster(&cluster.urls())
        .await
        .expect("connect to the cluster")
        .with_limits(limits);
    let stores: Vec<(&'static str, Box<dyn Store>)> = vec![
        ("embedded", Box::new(embedded)),
        ("redis", Box::new(redis)),
        ("redis-cluster", Box::new(clustered)),
    ];
    let mut out = Vec::new();
    for (name, store) in stores {
        let mut users = Vec::new();
        for slot in 0..ops::USERS {
            // Names unique per sequence: the Redis servers live for the whole run.
            let login = format!("diff-{sequence}-{slot}");
            users.push(
                store
                    .create_user(&login, "hash")
                    .await
                    .expect("create user")
                    .id,
            );
        }
        out.push(Engine {
            name,
            store,
            current: users[0],
            users,
            mailboxes: Vec::new(),
            validities: Vec::new(),
        });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_agree_on_random_operation_sequences() {
    let seed = match std::env::var("YUBIN_DIFF_SEED") {
        Ok(_) => env_number("YUBIN_DIFF_SEED", 0),
        Err(_) => Rng::from_clock().next(),
    };
    let sequences = env_number("YUBIN_DIFF_SEQUENCES", 20);
    let steps = env_number("YUBIN_DIFF_STEPS", 200);
    // How many of the ops before a divergence its report lists.
    let history_shown = usize::try_from(env_number("YUBIN_DIFF_HISTORY", 12)).unwrap_or(12);
    println!(
        "store differential: seed {seed}, {sequences} sequences x {steps} steps (replay with YUBIN_DIFF_SEED={seed})"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let server = RedisServer::spawn().expect("spawn redis-server");
    let cluster = RedisCluster::spawn().expect("spawn redis cluster");
    let mut ops_run = 0u64;
    // Answers of the reference by class: shows that the run reached refusals as well as writes.
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    for sequence in 0..sequences {
        let mut rng = Rng::new(seed ^ sequence.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut engines = engines(&dir, &server, &cluster, sequence).await;
        let mut history: Vec<String> = Vec::new();
        for step in 0..steps {
            let op = generate(&mut rng);
            history.push(format!("{step}: {op:?}"));
            let mut results = Vec::new();
            for engine in engines.iter_mut() {
                let result = apply(engine, &op).await;
                // The account's mailbox list after every op too, so that a divergence in state
                // an op leaves behind (a MODSEQ, a counter) is reported at the op that caused it.
                let user = engine.users[op.user()];
                let after = list(engine, user).await;
                results.push(format!("{result}\nmailboxes after:\n{after}"));
            }
            ops_run += 1;
            let outcome = match results[0].split_once(')') {
                Some((err, _)) if err.starts_with("Err(") => format!("{err})"),
                _ => "Ok".to_string(),
            };
            *outcomes.entry(outcome).or_default() += 1;
            for (engine, result) in engines.iter().zip(&results) {
                assert!(
                    !result.contains(BROKEN),
                    "sequence {sequence} step {step}: {} failed on {op:?}: {result}\n\
                     replay with YUBIN_DIFF_SEED={seed}",
                    engine.name
                );
            }
            for (engine, result) in engines.iter().zip(&results).skip(1) {
                if *result != results[0] {
                    let recent = history[history.len().saturating_sub(history_shown)..].join("\n");
                    panic!(
                        "sequence {sequence} step {step}: {} disagrees with embedded on {op:?}\n\
                         embedded: {}\n{}: {result}\n{}\nlast ops:\n{recent}\n\
                         replay with YUBIN_DIFF_SEED={seed}",
                        engine.name,
                        results[0],
                        engine.name,
                        first_difference(&results[0], result),
                    );
                }
            }
        }
        for slot in 0..ops::USERS {
            let mut states = Vec::new();
            for engine in engines.iter_mut() {
                states.push(final_state(engine, slot).await);
            }
            for (engine, state) in engines.iter().zip(&states) {
                assert!(
                    !state.contains(BROKEN),
                    "sequence {sequence}: {} failed reading the final state: {state}\n\
                     replay with YUBIN_DIFF_SEED={seed}",
                    engine.name
                );
            }
            for (engine, state) in engines.iter().zip(&states).skip(1) {
                assert!(
                    *state == states[0],
                    "sequence {sequence}: final state of user {slot} differs in {}: {}\n\
                     embedded:\n{}\n{}:\n{state}\nreplay with YUBIN_DIFF_SEED={seed}",
                    engine.name,
                    first_difference(&states[0], state),
                    states[0],
                    engine.name,
                );
            }
        }
    }
    println!("store differential: {ops_run} ops agreed; answers: {outcomes:?}");
}
