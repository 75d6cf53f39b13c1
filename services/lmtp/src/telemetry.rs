//! Prometheus metrics of LMTP delivery (recorded through the `metrics` facade; the binary
//! installs the exporter): `yubin_lmtp_connections`, `yubin_lmtp_deliveries_total{result}`,
//! `yubin_lmtp_delivery_duration_seconds` and `yubin_lmtp_refused_connections_total{reason}`.

use std::time::Duration;

/// The outcome of one recipient's delivery, the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Delivered,
    /// Refused at `RCPT`: no such (enabled) account.
    UnknownUser,
    OverQuota,
    /// A store was unavailable or the spool failed: the MTA retries.
    TempFailure,
    /// Refused for good for another reason (message too large).
    Rejected,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::UnknownUser => "unknown_user",
            Outcome::OverQuota => "over_quota",
            Outcome::TempFailure => "temp_failure",
            Outcome::Rejected => "rejected",
        }
    }
}

pub(crate) fn delivery(outcome: Outcome) {
    metrics::counter!("yubin_lmtp_deliveries_total", "result" => outcome.label()).increment(1);
}

/// Why a connection was refused at greeting time, the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The peer is outside `allowed_clients`.
    ClientNotAllowed,
    /// `max_connections` are open.
    ConnectionLimit,
}

pub(crate) fn refused(reason: Refusal) {
    let reason = match reason {
        Refusal::ClientNotAllowed => "client_not_allowed",
        Refusal::ConnectionLimit => "connection_limit",
    };
    metrics::counter!("yubin_lmtp_refused_connections_total", "reason" => reason).increment(1);
}

/// Time to store one recipient's copy (body, then metadata).
pub(crate) fn delivery_duration(elapsed: Duration) {
    metrics::histogram!("yubin_lmtp_delivery_duration_seconds").record(elapsed.as_secs_f64());
}

/// Counts one connection in `yubin_lmtp_connections` for as long as it lives.
pub(crate) struct ConnectionGauge;

impl ConnectionGauge {
    pub(crate) fn new() -> ConnectionGauge {
        metrics::gauge!("yubin_lmtp_connections").increment(1.0);
        ConnectionGauge
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        metrics::gauge!("yubin_lmtp_connections").decrement(1.0);
    }
}
