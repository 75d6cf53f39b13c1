//! Metrics and spans of the front-end. Metrics go through the `metrics` facade (the binary
//! installs the Prometheus exporter); spans through `tracing` (the binary may add an
//! OpenTelemetry layer). The names are catalogued in docs/metrics.md.

use crate::out::Status;
use opentelemetry::trace::{TraceContextExt, TraceId};
use std::time::Duration;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use yubin_meta_api::{ChangeEvent, unix_micros_now};

/// Counts one connection in `yubin_imap_connections{state,tls}` for as long as it lives, moving
/// it between states (and to `tls="true"` after STARTTLS) as the session changes; while it is in
/// the `idle` state it is also counted in `yubin_imap_idle_sessions`.
pub(crate) struct ConnectionGauge {
    state: &'static str,
    tls: bool,
}

fn tls_label(tls: bool) -> &'static str {
    if tls { "true" } else { "false" }
}

impl ConnectionGauge {
    pub(crate) fn new(state: &'static str, tls: bool) -> ConnectionGauge {
        metrics::counter!("yubin_imap_connections_total", "tls" => tls_label(tls)).increment(1);
        let gauge = ConnectionGauge { state, tls };
        gauge.count(1.0);
        gauge
    }

    pub(crate) fn set(&mut self, state: &'static str, tls: bool) {
        if state != self.state || tls != self.tls {
            self.count(-1.0);
            self.state = state;
            self.tls = tls;
            self.count(1.0);
        }
    }

    pub(crate) fn state(&self) -> &'static str {
        self.state
    }

    fn count(&self, delta: f64) {
        metrics::gauge!(
            "yubin_imap_connections",
            "state" => self.state,
            "tls" => tls_label(self.tls)
        )
        .increment(delta);
        if self.state == "idle" {
            metrics::gauge!("yubin_imap_idle_sessions").increment(delta);
        }
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.count(-1.0);
    }
}

/// The span of one IMAP command. In OpenTelemetry it is the root of its own trace (a connection
/// lives for hours and holds many commands; each command is one trace, continued into meta over
/// gRPC); in the logs it stays inside the connection's span, so lines carry the peer and user,
/// plus the command's `trace_id` when traces are exported.
pub(crate) fn command_span(command: &'static str) -> tracing::Span {
    let span = tracing::info_span!(
        "imap.command",
        otel.name = %format_args!("IMAP {command}"),
        otel.kind = "server",
        command,
        trace_id = tracing::field::Empty,
    );
    // Fails only when no OpenTelemetry layer is installed: then there is no trace to start.
    if span.set_parent(opentelemetry::Context::new()).is_ok() {
        let trace_id = span.context().span().span_context().trace_id();
        if trace_id != TraceId::INVALID {
            span.record("trace_id", tracing::field::display(trace_id));
        }
    }
    span
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

pub(crate) fn bytes_in(n: usize) {
    metrics::counter!("yubin_imap_bytes_in_total").increment(n as u64);
}

pub(crate) fn bytes_out(n: usize) {
    metrics::counter!("yubin_imap_bytes_out_total").increment(n as u64);
}

/// Where an answer had to fall back to every absent UID because the store's expunge log no
/// longer reaches back to the MODSEQ asked about (`Changes::log_trimmed`).
pub(crate) const TRIMMED_CONTEXTS: [&str; 3] = ["select", "fetch", "catch_up"];

pub(crate) fn expunge_log_trimmed(context: &'static str) {
    metrics::counter!("yubin_imap_expunge_log_trimmed_total", "context" => context).increment(1);
}

/// Series that only move on rare events exist from the start (at 0), so dashboards and alerts
/// see them before the first event.
pub(crate) fn register_node_metrics() {
    metrics::counter!("yubin_imap_shutdown_byes_total").increment(0);
    metrics::counter!("yubin_imap_sessions_revoked_total").increment(0);
    metrics::counter!("yubin_imap_thread_references_truncated_total").increment(0);
    for context in TRIMMED_CONTEXTS {
        metrics::counter!("yubin_imap_expunge_log_trimmed_total", "context" => context)
            .increment(0);
    }
    for reason in ["node_limit", "address_limit"] {
        metrics::counter!("yubin_imap_connections_refused_total", "reason" => reason).increment(0);
    }
    for reason in ["login_deadline", "pre_auth_limit"] {
        metrics::counter!("yubin_imap_pre_auth_closed_total", "reason" => reason).increment(0);
    }
    for reason in ["inactive", "idle_max", "literal_too_slow"] {
        metrics::counter!("yubin_imap_autologouts_total", "reason" => reason).increment(0);
    }
    metrics::gauge!("yubin_imap_idle_sessions").increment(0.0);
}

/// A `* BYE` sent because the node is draining (shutdown).
pub(crate) fn shutdown_bye() {
    metrics::counter!("yubin_imap_shutdown_byes_total").increment(1);
}

/// A session ended with `* BYE` because its account was disabled, deleted or given a new
/// password (on this node or another).
pub(crate) fn session_revoked() {
    metrics::counter!("yubin_imap_sessions_revoked_total").increment(1);
}

/// A change hint reached a session: `yubin_notification_lag_seconds` is the time since the store
/// published it (the store's clock against this node's; a clock behind the store's reads as 0).
/// Synthetic hints (resyncs) carry no time and are not measured.
pub(crate) fn notification_delivered(event: &ChangeEvent) {
    if event.published_unix_micros == 0 {
        return;
    }
    let lag = unix_micros_now().saturating_sub(event.published_unix_micros);
    metrics::histogram!("yubin_notification_lag_seconds").record(lag as f64 / 1e6);
}

/// Time from a change hint reaching an idling session to its untagged responses being written.
pub(crate) fn idle_push(elapsed: Duration) {
    metrics::histogram!("yubin_imap_idle_push_seconds").record(elapsed.as_secs_f64());
}

/// A user's change stream ended or a subscriber lagged: sessions resync by MODSEQ.
pub(crate) fn resync() {
    metrics::counter!("yubin_imap_notification_resyncs_total").increment(1);
}

/// Messages whose References field held more ids than THREAD=REFERENCES uses (only the last
/// `SortThreadLimits::max_references` count): many of these mean hostile or very unusual mail.
pub(crate) fn thread_references_truncated(messages: u64) {
    metrics::counter!("yubin_imap_thread_references_truncated_total").increment(messages);
}

/// A connection turned away at accept: `node_limit` (the node's `max_connections`) or
/// `address_limit` (`max_connections_per_address`).
pub(crate) fn connection_refused(reason: &'static str) {
    metrics::counter!("yubin_imap_connections_refused_total", "reason" => reason).increment(1);
}

/// A connection closed before it authenticated: `login_deadline` (not authenticated in time)
/// or `pre_auth_limit` (a line, literal or command over the pre-authentication limit).
pub(crate) fn pre_auth_closed(reason: &'static str) {
    metrics::counter!("yubin_imap_pre_auth_closed_total", "reason" => reason).increment(1);
}

/// An authenticated connection logged out by a timer: `inactive` (no command for
/// `Timeouts::authenticated`, RFC 3501 §5.4), `idle_max` (one IDLE lasted `Timeouts::idle_max`)
/// or `literal_too_slow` (a streamed literal slower than `Timeouts::literal_min_rate`).
pub(crate) fn autologout(reason: &'static str) {
    metrics::counter!("yubin_imap_autologouts_total", "reason" => reason).increment(1);
}
