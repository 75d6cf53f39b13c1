//! The node-wide change notification hub: one `MailStore::watch` stream per user on this node,
//! fanned out to every session of that user.
//!
//! Notifications are hints, MODSEQ is truth: a hint only tells a session to ask
//! `changes_since`. When the stream ends or a subscriber falls behind, subscribers get
//! [`Hint::Resync`] and re-read by MODSEQ, so a lost hint delays a change but never hides it.

use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::task::AbortHandle;
use yubin_meta_api::{ChangeEvent, ChangeKind, MailStore, UserId};

impl Hint {
    /// The account was disabled, deleted or given a new password: the session must end.
    pub(crate) fn revokes_account(&self) -> bool {
        matches!(self, Hint::Changed(ev) if ev.kind == ChangeKind::AccountRevoked)
    }
}

/// Hints buffered per user before a slow subscriber is told to resync instead.
const CHANNEL_CAPACITY: usize = 256;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A stream that lived this long counts as healthy: the next reconnect starts from the minimum
/// backoff again. Shorter-lived streams keep growing it, so a flapping backend is not hammered
/// (and sessions are not told to resync) every few milliseconds.
const HEALTHY_STREAM: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hint {
    Changed(ChangeEvent),
    /// Hints may have been lost: every selected session re-reads its mailbox by MODSEQ.
    Resync,
}

struct Feed {
    tx: broadcast::Sender<Hint>,
    task: AbortHandle,
}

impl Drop for Feed {
    fn drop(&mut self) {
        // The last session of the user on this node is gone: stop watching.
        self.task.abort();
    }
}

pub(crate) struct NotificationHub {
    mail: Arc<dyn MailStore>,
    feeds: Mutex<Feeds>,
}

struct Feeds {
    by_user: HashMap<UserId, Weak<Feed>>,
    /// Map size at which dead entries are swept next (amortised O(1) per subscribe).
    sweep_at: usize,
}

/// One session's receiving end; keeps the user's feed alive.
pub(crate) struct Subscription {
    rx: broadcast::Receiver<Hint>,
    _feed: Arc<Feed>,
}

impl Subscription {
    /// The next hint. A lagging receiver gets `Resync` (it lost hints).
    pub(crate) async fn recv(&mut self) -> Hint {
        match self.rx.recv().await {
            Ok(h) => h,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                crate::telemetry::resync();
                Hint::Resync
            }
            // Cannot happen while `_feed` holds the sender; wait forever rather than spin.
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}

impl NotificationHub {
    pub(crate) fn new(mail: Arc<dyn MailStore>) -> NotificationHub {
        NotificationHub {
            mail,
            feeds: Mutex::new(Feeds {
                by_user: HashMap::new(),
                sweep_at: 64,
            }),
        }
    }

    /// Subscribes to `user`'s hints, starting the user's watch if this is the first session.
    /// Must be called from within a tokio runtime.
    pub(crate) fn subscribe(&self, user: UserId) -> Subscription {
        let mut feeds = match self.feeds.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(feed) = feeds.by_user.get(&user).and_then(Weak::upgrade) {
            return Subscription {
                rx: feed.tx.subscribe(),
                _feed: feed,
            };
        }
        let (tx, rx) = broadcast::channel(CHANNEL_CAPACITY);
        let task = tokio::spawn(run_feed(self.mail.clone(), user, tx.clone())).abort_handle();
        let feed = Arc::new(Feed { tx, task });
        feeds.by_user.insert(user, Arc::downgrade(&feed));
        if feeds.by_user.len() >= feeds.sweep_at {
            feeds.by_user.retain(|_, w| w.strong_count() > 0);
            feeds.sweep_at = feeds.by_user.len() * 2 + 64;
        }
        Subscription { rx, _feed: feed }
    }
}

/// Keeps one watch stream open for `user`, re-establishing it with backoff whenever it ends.
async fn run_feed(mail: Arc<dyn MailStore>, user: UserId, tx: broadcast::Sender<Hint>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        match mail.watch(user).await {
            Ok(mut stream) => {
                // Changes committed before the stream was confirmed sent no hint to it: after a
                // reconnect those are the ones made while it was down, and on the first watch
                // those made between a session's SELECT and now. Either way, re-read by MODSEQ.
                let _ = tx.send(Hint::Resync);
                let opened = tokio::time::Instant::now();
                while let Some(event) = stream.next().await {
                    if event.user == user {
                        let _ = tx.send(Hint::Changed(event));
                    }
                }
                tracing::warn!(user = %user, "change stream ended; re-establishing");
                crate::telemetry::resync();
                let _ = tx.send(Hint::Resync);
                if opened.elapsed() >= HEALTHY_STREAM {
                    backoff = BACKOFF_MIN;
                }
            }
            Err(e) => {
                tracing::warn!(user = %user, error = %e, "cannot watch changes; retrying");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
