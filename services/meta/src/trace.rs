//! Trace context across the gRPC boundary, so one IMAP command is one trace from the front-end
//! through meta down to its Redis calls.
//!
//! The client side ([`inject`], called by the client's interceptor
//! [`crate::service_auth::CallCredentials`]) writes the context of the span the call runs in
//! into the request metadata (W3C Trace Context `traceparent`/`tracestate`, through whatever
//! propagator the process installed with `opentelemetry::global::set_text_map_propagator`); the
//! server side ([`server_span`], given to tonic's `Server::trace_fn`) reads it back and makes the
//! request's span a child of the caller's. Without an OpenTelemetry layer in the process both are
//! cheap no-ops: nothing is injected, and the span is an ordinary `tracing` span for the logs.

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{TraceContextExt, TraceId};
use tonic::codegen::http;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Writes the current span's trace context into `metadata`.
pub fn inject(metadata: &mut MetadataMap) {
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&cx, &mut MetadataInjector(metadata));
    });
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // Propagators only emit lower-case ASCII names and header-safe values; anything else
        // is dropped rather than sent malformed.
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The span of one incoming RPC (`grpc.server`, named after the method in OpenTelemetry), the
/// child of the caller's span when the request carries a trace context.
pub fn server_span(request: &http::Request<()>) -> tracing::Span {
    // Paths are `/yubin.meta.v1.Meta/<Method>` (gRPC over HTTP/2, "Path" in the spec).
    let path = request.uri().path();
    let method = path.rsplit('/').next().unwrap_or(path);
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.method = %method,
        trace_id = tracing::field::Empty,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(request.headers()))
    });
    // Fails only without an OpenTelemetry layer, when there is nothing to link anyway.
    if span.set_parent(parent).is_ok() {
        // Log lines of this RPC carry the trace id (the front-end's command logs the same one).
        let trace_id = span.context().span().span_context().trace_id();
        if trace_id != TraceId::INVALID {
            span.record("trace_id", tracing::field::display(trace_id));
        }
    }
    span
}

/// The span of one outgoing RPC (`grpc.client`); the interceptor propagates its context.
/// `method` is the metric label (`changes_since`); the span is named like the server's
/// (`yubin.meta.v1.Meta/ChangesSince`).
pub fn client_span(method: &'static str) -> tracing::Span {
    tracing::info_span!(
        "grpc.client",
        otel.name = %format_args!("yubin.meta.v1.Meta/{}", rpc_name(method)),
        otel.kind = "client",
        rpc.system = "grpc",
        rpc.method = method,
    )
}

/// `changes_since` → `ChangesSince`: the proto's method name from the metric label.
fn rpc_name(label: &str) -> String {
    label
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_names_follow_the_proto() {
        assert_eq!(rpc_name("changes_since"), "ChangesSince");
        assert_eq!(rpc_name("append"), "Append");
    }

    #[test]
    fn the_injector_keeps_valid_entries_and_drops_malformed_ones() {
        let mut metadata = MetadataMap::new();
        MetadataInjector(&mut metadata).set(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        );
        MetadataInjector(&mut metadata).set("bad key", "x".into());
        assert_eq!(
            metadata.get("traceparent").and_then(|v| v.to_str().ok()),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        assert_eq!(metadata.len(), 1);
    }
}
