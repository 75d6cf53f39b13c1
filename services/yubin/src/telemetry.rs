//! Logs, traces and metrics of every server role.
//!
//! - Logs: structured, to stderr; `YUBIN_LOG_FORMAT=json` for JSON lines, `RUST_LOG` filters
//!   (default `info`). Lines inside an IMAP command or an RPC carry its `trace_id` when traces
//!   are exported. Passwords and message contents are never logged (the spans and events of
//!   the crates record names, ids, sizes and outcomes only).
//! - Traces: OpenTelemetry over OTLP/gRPC, configured by the standard `OTEL_*` variables and
//!   off unless an OTLP endpoint is given (`OTEL_EXPORTER_OTLP_ENDPOINT` or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); `OTEL_SDK_DISABLED=true` or
//!   `OTEL_TRACES_EXPORTER=none` turn them off, `OTEL_SERVICE_NAME` (default `yubin-<role>`),
//!   `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_BSP_*` and
//!   `OTEL_EXPORTER_OTLP_{HEADERS,TIMEOUT}` are honoured by the SDK. Spans of Yubin's own crates
//!   at INFO and above are exported, whatever `RUST_LOG` says about the logs.
//! - Metrics: the process-wide Prometheus recorder behind `/metrics` (names in
//!   docs/metrics.md); every `*_seconds` series is a histogram with the buckets below.

use anyhow::{Context, bail};
use metrics_exporter_prometheus::Matcher;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::OnceLock;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

static PROMETHEUS: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();

/// Latency buckets (seconds) of every `*_seconds` histogram: from 100 µs (a Redis round trip on
/// one box) to 30 s (the call timeout), roughly ×2.5 apart.
const LATENCY_BUCKETS: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// What must be shut down at exit: the trace exporter flushes its last batch.
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the trace exporter. Call from outside the runtime's tasks but while the
    /// runtime still exists (the exporter's gRPC channel runs on it).
    pub fn shutdown(self) {
        if let Some(provider) = self.traces
            && let Err(e) = provider.shutdown()
        {
            eprintln!("flushing traces failed: {e}");
        }
    }
}

/// Sets up logs, traces and metrics for `role`; must run inside the Tokio runtime (the OTLP
/// exporter's channel is spawned on it).
pub fn init(role: &'static str) -> anyhow::Result<Telemetry> {
    // W3C Trace Context across gRPC (see yubin_meta::trace); harmless when nothing is exported.
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    let log_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("YUBIN_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let logs = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .with_filter(log_filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(log_filter)
            .boxed()
    };

    let provider = if otlp_enabled()? {
        Some(tracer_provider(role)?)
    } else {
        None
    };
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("yubin"))
            // Yubin's own spans (the `yubin*` crates): commands, RPCs, Redis and S3 calls.
            .with_filter(Targets::new().with_target("yubin", Level::INFO))
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .context("installing the log subscriber")?;

    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
        .context("histogram buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    let _ = PROMETHEUS.set(handle);
    metrics::gauge!(
        "yubin_build_info",
        "role" => role,
        "version" => env!("CARGO_PKG_VERSION")
    )
    .set(1.0);
    if provider.is_some() {
        tracing::info!("exporting traces over otlp");
    }
    Ok(Telemetry { traces: provider })
}

/// Whether the `OTEL_*` variables ask for trace export (see the module documentation).
fn otlp_enabled() -> anyhow::Result<bool> {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(false);
    }
    match var("OTEL_TRACES_EXPORTER").as_deref() {
        Some("none") => return Ok(false),
        None | Some("otlp") => {}
        Some(other) => bail!("OTEL_TRACES_EXPORTER={other} is not supported (otlp or none)"),
    }
    let protocol =
        var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"));
    let enabled = var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        || var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some();
    if enabled && let Some(protocol) = protocol.filter(|p| p != "grpc") {
        bail!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported: Yubin exports OTLP over \
             gRPC (set it to grpc, endpoint e.g. http://collector:4317)"
        );
    }
    Ok(enabled)
}

fn tracer_provider(role: &'static str) -> anyhow::Result<SdkTracerProvider> {
    // Endpoint, headers and timeout come from OTEL_EXPORTER_OTLP_[TRACES_]* (read by the builder).
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .context("configuring the otlp trace exporter")?;
    // The default resource reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(format!("yubin-{role}"));
    }
    let resource = resource
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The Prometheus text exposition of every metric recorded so far.
pub fn render_metrics() -> String {
    PROMETHEUS.get().map(|h| h.render()).unwrap_or_default()
}
