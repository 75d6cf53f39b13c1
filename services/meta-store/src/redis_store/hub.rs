//! The pub/sub side of [`super::RedisStore::watch`]: one shared subscriber connection per store.
//!
//! Watchers register per user; the first watcher of a user makes the background task
//! SUBSCRIBE to `ev:{u:<id>}`, the last one to leave makes it UNSUBSCRIBE. The task reconnects
//! with backoff when the connection fails (detected by the stream ending, a failed
//! (un)subscribe or an unanswered PING) and then sends every watched user a synthetic resync
//! hint, since hints published meanwhile are lost ("notifications are hints, MODSEQ is truth").

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{broadcast, mpsc, oneshot};
use yubin_meta_api::{ChangeEvent, ChangeKind, ChangeStream, MailboxId, ModSeq, UserId};

use crate::embedded::resync_hint;

/// How long `watch` waits for its SUBSCRIBE to be confirmed before returning anyway (the
/// subscription then happens on reconnect).
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(3);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const PING_EVERY: Duration = Duration::from_secs(15);
const PING_TIMEOUT: Duration = Duration::from_secs(5);
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Hints buffered per user; a watcher further behind gets one resync hint instead.
const PER_USER_CAPACITY: usize = 1024;

enum Cmd {
    Subscribe(UserId, oneshot::Sender<()>),
    Unsubscribe(UserId),
}

struct Watchers {
    count: usize,
    tx: broadcast::Sender<ChangeEvent>,
}

struct Shared {
    watchers: Mutex<HashMap<UserId, Watchers>>,
    cmds: mpsc::UnboundedSender<Cmd>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, Watchers>> {
        // A panic while holding the lock cannot leave the map inconsistent (every update is a
        // single insert/remove/increment), so a poisoned lock is still usable.
        self.watchers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn deliver(&self, ev: ChangeEvent) {
        if let Some(w) = self.lock().get(&ev.user) {
            // No live receiver is fine: hints are best effort.
            let _ = w.tx.send(ev);
        }
    }
}

#[derive(Clone)]
pub(super) struct Hub {
    shared: Arc<Shared>,
}

/// Held by each watcher's stream; dropping the stream leaves.
struct Membership {
    shared: Arc<Shared>,
    user: UserId,
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut map = self.shared.lock();
        if let Some(w) = map.get_mut(&self.user) {
            w.count -= 1;
            if w.count == 0 {
                map.remove(&self.user);
                let _ = self.shared.cmds.send(Cmd::Unsubscribe(self.user));
            }
        }
    }
}

fn channel(user: UserId) -> String {
    format!("ev:{{u:{}}}", user.0)
}

/// Parses `ev:{u:<id>}` + `<mailbox> <modseq> <kind>` (see the key layout in the parent module).
fn parse_event(channel: &str, payload: &[u8]) -> Option<ChangeEvent> {
    let id = channel
        .strip_prefix("ev:{u:")?
        .strip_suffix('}')?
        .parse()
        .ok()?;
    let payload = std::str::from_utf8(payload).ok()?;
    let mut parts = payload.split(' ');
    let mailbox = parts.next()?.parse().ok()?;
    let modseq = parts.next()?.parse().ok()?;
    let kind = match parts.next()? {
        "a" => ChangeKind::Appended,
        "f" => ChangeKind::Flags,
        "e" => ChangeKind::Expunged,
        _ => ChangeKind::MailboxList,
    };
    Some(ChangeEvent {
        user: UserId(id),
        mailbox: MailboxId(mailbox),
        modseq: ModSeq(modseq),
        kind,
    })
}

impl Hub {
    pub(super) fn start(client: redis::Client) -> Hub {
        let (cmds, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            watchers: Mutex::new(HashMap::new()),
            cmds,
        });
        tokio::spawn(run(client, Arc::downgrade(&shared), rx));
        Hub { shared }
    }

    pub(super) async fn watch(&self, user: UserId) -> ChangeStream {
        let (rx, ack) = {
            let mut map = self.shared.lock();
            match map.get_mut(&user) {
                Some(w) => {
                    w.count += 1;
                    (w.tx.subscribe(), None)
                }
                None => {
                    let (tx, rx) = broadcast::channel(PER_USER_CAPACITY);
                    map.insert(user, Watchers { count: 1, tx });
                    let (ack_tx, ack_rx) = oneshot::channel();
                    let _ = self.shared.cmds.send(Cmd::Subscribe(user, ack_tx));
                    (rx, Some(ack_rx))
                }
            }
        };
        let membership = Membership {
            shared: self.shared.clone(),
            user,
        };
        if let Some(ack) = ack {
            // Returning after the SUBSCRIBE is confirmed makes "from now on" hold for hints
            // published after `watch` returns; if Redis is down, the task subscribes later.
            let _ = tokio::time::timeout(SUBSCRIBE_WAIT, ack).await;
        }
        futures::stream::unfold((rx, membership), |(mut rx, m)| async move {
            match rx.recv().await {
                Ok(ev) => Some((ev, (rx, m))),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let hint = resync_hint(m.user);
                    Some((hint, (rx, m)))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
        .boxed()
    }
}

/// Sleeps for `delay` while answering commands (acks are dropped: the subscription happens
/// on reconnect). Returns `true` when the store is gone.
async fn pause(rx: &mut mpsc::UnboundedReceiver<Cmd>, delay: Duration) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut sleep => return false,
            cmd = rx.recv() => if cmd.is_none() { return true },
        }
    }
}

async fn run(client: redis::Client, shared: Weak<Shared>, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let mut backoff = MIN_BACKOFF;
    let mut connected_before = false;
    loop {
        let pubsub = match tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await {
            Ok(Ok(p)) => p,
            _ => {
                if pause(&mut rx, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let users: Vec<UserId> = match shared.upgrade() {
            Some(s) => s.lock().keys().copied().collect(),
            None => return,
        };
        if !users.is_empty() {
            let channels: Vec<String> = users.iter().copied().map(channel).collect();
            if sink.subscribe(channels).await.is_err() {
                if pause(&mut rx, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        }
        backoff = MIN_BACKOFF;
        if connected_before {
            // Hints published while we were away are lost: make every watcher resync.
            if let Some(s) = shared.upgrade() {
                for u in &users {
                    s.deliver(resync_hint(*u));
                }
            }
        }
        connected_before = true;
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    None => return,
                    Some(Cmd::Subscribe(user, ack)) => {
                        if sink.subscribe(channel(user)).await.is_err() {
                            break;
                        }
                        let _ = ack.send(());
                    }
                    Some(Cmd::Unsubscribe(user)) => {
                        // A new watcher may have arrived since; its Subscribe came after.
                        let still = shared
                            .upgrade()
                            .is_some_and(|s| s.lock().contains_key(&user));
                        if !still && sink.unsubscribe(channel(user)).await.is_err() {
                            break;
                        }
                    }
                },
                msg = stream.next() => match msg {
                    None => break,
                    Some(msg) => {
                        if let (Some(ev), Some(s)) = (
                            parse_event(msg.get_channel_name(), msg.get_payload_bytes()),
                            shared.upgrade(),
                        ) {
                            s.deliver(ev);
                        }
                    }
                },
                _ = ping.tick() => {
                    let pong = tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events() {
        let ev = parse_event("ev:{u:42}", b"7 19 a").expect("event");
        assert_eq!(ev.user, UserId(42));
        assert_eq!(ev.mailbox, MailboxId(7));
        assert_eq!(ev.modseq, ModSeq(19));
        assert_eq!(ev.kind, ChangeKind::Appended);
        assert!(parse_event("other", b"1 2 a").is_none());
        assert!(parse_event("ev:{u:1}", b"x").is_none());
        assert_eq!(channel(UserId(5)), "ev:{u:5}");
    }
}
