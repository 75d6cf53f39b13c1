//! Group commit: one thread applies every write call, many calls to one redb transaction.
//!
//! redb runs one write transaction at a time and each commit fsyncs, so with one transaction
//! per call every write waits for every earlier write's fsync. Here the calls queue for one
//! writer thread, which takes those waiting (up to [`GroupCommit::max_calls`], or until it has
//! worked [`GroupCommit::max_work`]), applies them in order inside one `WriteTransaction`,
//! commits once, then answers each caller and publishes each call's hints. Nothing is answered
//! as a success, and no hint leaves, before the commit that holds it has returned; the calls
//! that arrive during a commit's fsync form the next group.
//!
//! Each call keeps the meaning of its own transaction:
//!
//! - A call that fails before writing anything (the common case: a missing mailbox, a quota
//!   or a limit refused up front) is dropped alone; its neighbours go on in the same
//!   transaction.
//! - A call that fails after writing, or panics, cannot be undone inside the transaction: redb
//!   2 takes an ephemeral savepoint only in a transaction that has not opened a table yet, so
//!   there is no savepoint between two calls. The writer then drops (aborts) the whole
//!   transaction, answers that call with its error, and applies the calls before it again, by
//!   themselves, in a new transaction: every write closure may run more than once and must
//!   only act through its `W` (the closures are `Fn`, and nothing is answered before the run
//!   that commits). Committing that replay by itself, before taking more calls, bounds the
//!   repeated work to one replay per call.
//! - If the commit fails, every call of the group gets the error (those that failed on their
//!   own keep their own error).
//!
//! Reads are untouched: they open their own read transactions, which see committed data only.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::Database;
use tokio::sync::{broadcast, oneshot};
use yubin_meta_api::{ChangeEvent, MetaError, MetaResult};

use super::tables::db_err;
use super::txn::W;

/// How many write calls may share one transaction (and its fsync).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommit {
    /// At most this many calls per transaction; 1 is one transaction per call (no grouping).
    pub max_calls: usize,
    /// No further call joins a transaction once the writer has spent this long applying its
    /// calls, so one group cannot keep readers waiting for its results, nor its callers for
    /// their answers, much longer than its own work takes.
    pub max_work: Duration,
}

impl GroupCommit {
    /// One transaction, and one fsync, per call.
    pub const OFF: GroupCommit = GroupCommit {
        max_calls: 1,
        max_work: Duration::ZERO,
    };
}

impl Default for GroupCommit {
    /// 256 calls or 20 ms of work: far above what one fsync (a few milliseconds) lets queue up
    /// under load, so the bound only matters for unusually large calls.
    fn default() -> Self {
        GroupCommit {
            max_calls: 256,
            max_work: Duration::from_millis(20),
        }
    }
}

/// What became of one call applied in the group's transaction.
enum Applied {
    /// It returned `Ok`, or an error without having written: the transaction stays good.
    Kept,
    /// It wrote and then failed, or panicked: the transaction must be dropped.
    Spoiled,
}

/// One queued write call, its type erased.
trait Call: Send {
    /// Runs the call against `w`, keeping its result and hints for the answer.
    fn apply(&mut self, w: &mut W<'_>) -> Applied;
    /// The hints of a successful run (empty after a failure).
    fn take_events(&mut self) -> Vec<ChangeEvent>;
    /// Answers the caller: the kept result, or `err` (the commit's) in place of a success.
    fn answer(self: Box<Self>, err: Option<&MetaError>);
}

struct TypedCall<T, F> {
    f: F,
    outcome: Option<MetaResult<T>>,
    events: Vec<ChangeEvent>,
    reply: oneshot::Sender<MetaResult<T>>,
}

impl<T, F> Call for TypedCall<T, F>
where
    T: Send + 'static,
    F: for<'t> Fn(&mut W<'t>) -> MetaResult<T> + Send + 'static,
{
    fn apply(&mut self, w: &mut W<'_>) -> Applied {
        w.begin_call();
        let run = catch_unwind(AssertUnwindSafe(|| (self.f)(w)));
        let (outcome, applied) = match run {
            Ok(Ok(value)) => {
                self.events = std::mem::take(&mut w.events);
                (Ok(value), Applied::Kept)
            }
            Ok(Err(e)) if !w.wrote() => (Err(e), Applied::Kept),
            Ok(Err(e)) => (Err(e), Applied::Spoiled),
            Err(panic) => (
                Err(MetaError::Internal(format!(
                    "embedded store: a write panicked: {}",
                    panic_message(panic.as_ref())
                ))),
                Applied::Spoiled,
            ),
        };
        if outcome.is_err() {
            // A failed call publishes nothing.
            self.events.clear();
            w.events.clear();
        }
        self.outcome = Some(outcome);
        applied
    }

    fn take_events(&mut self) -> Vec<ChangeEvent> {
        std::mem::take(&mut self.events)
    }

    fn answer(self: Box<Self>, err: Option<&MetaError>) {
        let outcome = match (self.outcome, err) {
            (Some(Ok(_)), Some(e)) => Err(e.clone()),
            (Some(outcome), _) => outcome,
            (None, Some(e)) => Err(e.clone()),
            (None, None) => Err(MetaError::Internal(
                "embedded store: a write was answered before it ran".into(),
            )),
        };
        // The caller may have gone away (its future dropped); the write stands regardless.
        let _ = self.reply.send(outcome);
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// The bounds, shared with the thread so that [`Writer::configure`] applies to the next group.
struct Bounds {
    max_calls: AtomicUsize,
    max_work_micros: AtomicU64,
    /// Tests hold this to keep the writer from starting a group, so that calls queue up.
    #[cfg(test)]
    pause: std::sync::Mutex<()>,
    /// Transactions committed (tests tell from it how calls were grouped).
    commits: AtomicU64,
}

/// The handle on the writer thread. Dropping it (with the last store clone) lets the thread
/// finish the calls already queued, and waits for it, so the database file is closed when the
/// store is gone and can be opened again at once.
pub(super) struct Writer {
    queue: Option<mpsc::Sender<Box<dyn Call>>>,
    thread: Option<JoinHandle<()>>,
    bounds: Arc<Bounds>,
}

impl Writer {
    pub(super) fn start(
        db: Arc<Database>,
        events: broadcast::Sender<ChangeEvent>,
    ) -> MetaResult<Writer> {
        let (tx, rx) = mpsc::channel();
        let bounds = Arc::new(Bounds {
            max_calls: AtomicUsize::new(0),
            max_work_micros: AtomicU64::new(0),
            #[cfg(test)]
            pause: std::sync::Mutex::new(()),
            commits: AtomicU64::new(0),
        });
        let thread = std::thread::Builder::new()
            .name("yubin-meta-writer".into())
            .spawn({
                let bounds = bounds.clone();
                move || run(&db, &rx, &events, &bounds)
            })
            .map_err(|e| MetaError::Internal(format!("starting the embedded store writer: {e}")))?;
        let writer = Writer {
            queue: Some(tx),
            thread: Some(thread),
            bounds,
        };
        writer.configure(GroupCommit::default());
        Ok(writer)
    }

    pub(super) fn configure(&self, settings: GroupCommit) {
        self.bounds
            .max_calls
            .store(settings.max_calls.max(1), Ordering::Relaxed);
        let micros = u64::try_from(settings.max_work.as_micros()).unwrap_or(u64::MAX);
        self.bounds.max_work_micros.store(micros, Ordering::Relaxed);
    }

    /// Queues `f`; the answer comes once the transaction holding it has committed.
    pub(super) async fn write<T, F>(&self, f: F) -> MetaResult<T>
    where
        T: Send + 'static,
        F: for<'t> Fn(&mut W<'t>) -> MetaResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let call = Box::new(TypedCall {
            f,
            outcome: None,
            events: Vec::new(),
            reply,
        });
        self.queue
            .as_ref()
            .and_then(|q| q.send(call).ok())
            .ok_or_else(stopped)?;
        answer.await.map_err(|_| stopped())?
    }
}

#[cfg(test)]
impl Writer {
    /// Keeps the writer from starting another group until the guard is dropped.
    pub(super) fn pause(&self) -> std::sync::MutexGuard<'_, ()> {
        self.bounds.pause.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Transactions committed so far.
    pub(super) fn commits(&self) -> u64 {
        self.bounds.commits.load(Ordering::SeqCst)
    }
}

fn stopped() -> MetaError {
    MetaError::Internal("embedded store: the writer stopped".into())
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has committed what is queued.
        self.queue = None;
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }
}

/// The writer thread: a group per transaction until the queue closes.
fn run(
    db: &Database,
    rx: &mpsc::Receiver<Box<dyn Call>>,
    events: &broadcast::Sender<ChangeEvent>,
    bounds: &Bounds,
) {
    let mut pending: VecDeque<Box<dyn Call>> = VecDeque::new();
    let mut replay = None;
    loop {
        if pending.is_empty() {
            match rx.recv() {
                Ok(call) => pending.push_back(call),
                Err(mpsc::RecvError) => return,
            }
        }
        let max_calls = bounds.max_calls.load(Ordering::Relaxed);
        let max_work = Duration::from_micros(bounds.max_work_micros.load(Ordering::Relaxed));
        let limit = replay.take().unwrap_or(max_calls);
        #[cfg(test)]
        drop(bounds.pause.lock().unwrap_or_else(|e| e.into_inner()));
        // Panics of the calls are caught where they run; this catches one of redb's or the
        // writer's own, so that the thread stays up. Calls taken by the group then lost are
        // answered by their dropped reply channel ("the writer stopped"), and nothing of them
        // was committed unless the panic came after the commit.
        match catch_unwind(AssertUnwindSafe(|| {
            group(db, rx, events, &mut pending, limit, max_work, bounds)
        })) {
            Ok(next) => replay = next,
            Err(panic) => tracing::error!(
                panic = panic_message(panic.as_ref()),
                "embedded store writer: a group failed"
            ),
        }
    }
}

/// Applies up to `limit` calls (the queued ones, then any that arrive meanwhile) in one
/// transaction and commits them. Returns how many calls at the front of `pending` must be
/// replayed by themselves, when a call spoiled the transaction.
fn group(
    db: &Database,
    rx: &mpsc::Receiver<Box<dyn Call>>,
    events: &broadcast::Sender<ChangeEvent>,
    pending: &mut VecDeque<Box<dyn Call>>,
    limit: usize,
    max_work: Duration,
    bounds: &Bounds,
) -> Option<usize> {
    let started = Instant::now();
    let txn = match db.begin_write().map_err(db_err) {
        Ok(txn) => txn,
        Err(e) => {
            fail(pending.drain(..limit.min(pending.len())), &e);
            return None;
        }
    };
    let mut applied: Vec<Box<dyn Call>> = Vec::new();
    let spoiled = {
        let mut w = match W::open(&txn) {
            Ok(w) => w,
            Err(e) => {
                fail(pending.drain(..limit.min(pending.len())), &e);
                return None;
            }
        };
        loop {
            if applied.len() >= limit || (!applied.is_empty() && started.elapsed() >= max_work) {
                break None;
            }
            let Some(mut call) = pending.pop_front().or_else(|| rx.try_recv().ok()) else {
                break None;
            };
            match call.apply(&mut w) {
                Applied::Kept => applied.push(call),
                Applied::Spoiled => break Some(call),
            }
        }
    };
    if let Some(call) = spoiled {
        // Dropping the transaction aborts it: nothing of this group reaches the database.
        drop(txn);
        call.answer(None);
        let replay = applied.len();
        for call in applied.into_iter().rev() {
            pending.push_front(call);
        }
        return (replay > 0).then_some(replay);
    }
    let commit_started = Instant::now();
    let committed = txn.commit().map_err(db_err);
    metrics::histogram!("yubin_meta_embedded_commit_seconds")
        .record(commit_started.elapsed().as_secs_f64());
    metrics::histogram!("yubin_meta_embedded_group_calls").record(applied.len() as f64);
    bounds.commits.fetch_add(1, Ordering::SeqCst);
    let err = committed.err();
    if let Some(e) = &err {
        tracing::error!(error = %e, calls = applied.len(), "embedded store: group commit failed");
    }
    let published_unix_micros = yubin_meta_api::unix_micros_now();
    for mut call in applied {
        if err.is_none() {
            for ev in call.take_events() {
                // No receiver is not an error: hints are best effort.
                let _ = events.send(ChangeEvent {
                    published_unix_micros,
                    ..ev
                });
            }
        }
        call.answer(err.as_ref());
    }
    None
}

fn fail(calls: impl Iterator<Item = Box<dyn Call>>, e: &MetaError) {
    for call in calls {
        call.answer(Some(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(outcome: MetaResult<u32>, commit: Option<&MetaError>) -> MetaResult<u32> {
        let (reply, mut answer) = oneshot::channel();
        let call: Box<dyn Call> = Box::new(TypedCall {
            f: |_: &mut W<'_>| Ok(1u32),
            outcome: Some(outcome),
            events: Vec::new(),
            reply,
        });
        call.answer(commit);
        answer.try_recv().expect("answered")
    }

    // A commit cannot be made to fail on a healthy file, so the rule is checked here: when the
    // commit fails, a success becomes its error and a call's own error stays.
    #[test]
    fn a_failed_commit_is_every_successful_calls_error() {
        let disk = MetaError::Unavailable("disk gone".into());
        let own = MetaError::Invalid("own".into());
        assert_eq!(answered(Ok(1), Some(&disk)), Err(disk.clone()));
        assert_eq!(answered(Err(own.clone()), Some(&disk)), Err(own));
        assert_eq!(answered(Ok(1), None), Ok(1));
    }
}
