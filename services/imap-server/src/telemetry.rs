//! Prometheus metrics of the front-end (recorded through the `metrics` facade; the binary
//! installs the exporter). Names are `yubin_imap_*`.

use crate::out::Status;
use std::time::Duration;

/// Counts one connection in the `yubin_imap_connections{state}` gauge for as long as it lives,
/// moving it between states as the session changes.
pub(crate) struct ConnectionGauge {
    state: &'static str,
}

impl ConnectionGauge {
    pub(crate) fn new(state: &'static str) -> ConnectionGauge {
        metrics::gauge!("yubin_imap_connections", "state" => state).increment(1.0);
        metrics::counter!("yubin_imap_connections_total").increment(1);
        ConnectionGauge { state }
    }

    pub(crate) fn set(&mut self, state: &'static str) {
        if state != self.state {
            metrics::gauge!("yubin_imap_connections", "state" => self.state).decrement(1.0);
            metrics::gauge!("yubin_imap_connections", "state" => state).increment(1.0);
            self.state = state;
        }
    }

    pub(crate) fn state(&self) -> &'static str {
        self.state
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        metrics::gauge!("yubin_imap_connections", "state" => self.state).decrement(1.0);
    }
}

pub(crate) fn command(name: &'static str, status: Status, elapsed: Duration) {
    let status = match status {
        Status::Ok => "ok",
        Status::No => "no",
        Status::Bad => "bad",
    };
    metrics::counter!("yubin_imap_commands_total", "command" => name, "status" => status)
        .increment(1);
    metrics::histogram!("yubin_imap_command_duration_seconds", "command" => name)
        .record(elapsed.as_secs_f64());
}

pub(crate) fn auth_failure() {
    metrics::counter!("yubin_imap_auth_failures_total").increment(1);
}

pub(crate) fn bytes_in(n: usize) {
    metrics::counter!("yubin_imap_bytes_in_total").increment(n as u64);
}

pub(crate) fn bytes_out(n: usize) {
    metrics::counter!("yubin_imap_bytes_out_total").increment(n as u64);
}

/// Time from a change hint reaching an idling session to its untagged responses being written.
pub(crate) fn idle_push(elapsed: Duration) {
    metrics::histogram!("yubin_imap_idle_push_seconds").record(elapsed.as_secs_f64());
}

/// A user's change stream ended or a subscriber lagged: sessions resync by MODSEQ.
pub(crate) fn resync() {
    metrics::counter!("yubin_imap_notification_resyncs_total").increment(1);
}
