//! Acknowledging a write only once Redis replicas (and optionally the AOF) hold it.
//!
//! Redis replicates asynchronously: a primary answers a write before any replica has it, so a
//! failover to a replica can lose writes the store already reported as done. With
//! [`Durability::wait_replicas`] set, every write is sent in one pipeline together with
//! `WAIT <replicas> <timeout>` (or `WAITAOF <local> <replicas> <timeout>`, Redis 7.2), and the
//! write is reported only when enough replicas acknowledged it.
//!
//! WAIT waits for the replication offset of the *connection's* last write. The store's
//! connection is multiplexed (every task shares it), so WAIT covers this write and possibly
//! writes of other tasks sent before it: never less than this write. Sending the write and WAIT
//! in one pipeline keeps both on the same connection even when the connection manager
//! reconnects between calls (a WAIT on a fresh connection would have nothing to wait for and
//! succeed at once). On a Redis Cluster the pipeline goes to the node owning the first key's
//! slot (the user's anchor key), which is the node that took the write: WAIT on its own would
//! be sent to every primary by the cluster client.
//!
//! A WAIT that times out does not undo the write: the caller gets a retryable
//! [`MetaError::Unavailable`], and the write may or may not survive a failover. IMAP clients
//! retry an APPEND that failed, so a message may be stored twice, never lost once acknowledged.

use std::time::Duration;

use redis::{Cmd, Value};
use yubin_meta_api::{MetaError, MetaResult};

/// What a write waits for before it is acknowledged. The default waits for nothing (a write is
/// acknowledged as soon as the primary applied it), as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Durability {
    /// Replicas that must have received a write before it is acknowledged (`WAIT`); 0 = off.
    pub wait_replicas: u32,
    /// Also require the write in the primary's own AOF on disk (`WAITAOF 1 <replicas> …`,
    /// Redis 7.2 or later, `appendonly yes`); with replicas > 0 they must have it in their AOF too.
    pub waitaof: bool,
    /// How long a write waits for the acknowledgements before it fails as unavailable.
    pub wait_timeout: Duration,
}

impl Durability {
    /// Whether writes wait at all.
    pub fn enabled(&self) -> bool {
        self.wait_replicas > 0 || self.waitaof
    }

    /// `Err` with the reason when the settings cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled() {
            return Ok(());
        }
        // WAIT 0 blocks for ever; an hour-long wait would hold a client's command as long.
        let ms = self.wait_timeout.as_millis();
        if ms == 0 || ms > 10_000 {
            return Err("redis_wait_timeout_ms must be between 1 and 10000".into());
        }
        Ok(())
    }

    /// The command sent after each write: `WAIT` or `WAITAOF`.
    pub(super) fn command(&self) -> Cmd {
        let timeout = u64::try_from(self.wait_timeout.as_millis()).unwrap_or(u64::MAX);
        if self.waitaof {
            let mut cmd = redis::cmd("WAITAOF");
            cmd.arg(1).arg(self.wait_replicas).arg(timeout);
            cmd
        } else {
            let mut cmd = redis::cmd("WAIT");
            cmd.arg(self.wait_replicas).arg(timeout);
            cmd
        }
    }

    /// Checks the reply of [`Self::command`]: `WAIT` answers the number of replicas that have
    /// the write, `WAITAOF` the pair (local AOFs, replica AOFs).
    pub(super) fn check(&self, reply: Value) -> MetaResult<()> {
        let (local, replicas) = match reply {
            Value::Int(n) => (None, n),
            Value::Array(v) if v.len() == 2 => match (&v[0], &v[1]) {
                (Value::Int(l), Value::Int(r)) => (Some(*l), *r),
                _ => return Err(unexpected(&v)),
            },
            other => return Err(unexpected(&other)),
        };
        let local_short = self.waitaof && local.is_some_and(|l| l < 1);
        if replicas < i64::from(self.wait_replicas) || local_short {
            metrics::counter!("yubin_redis_wait_shortfalls_total").increment(1);
            return Err(MetaError::Unavailable(format!(
                "redis acknowledged the write on {replicas} of {} replicas{} within {} ms; it \
                 may or may not have been kept",
                self.wait_replicas,
                if local_short { ", not in its AOF" } else { "" },
                self.wait_timeout.as_millis()
            )));
        }
        Ok(())
    }
}

fn unexpected(v: &dyn std::fmt::Debug) -> MetaError {
    MetaError::Internal(format!("unexpected reply to WAIT/WAITAOF: {v:?}"))
}
