//! Observability end to end, on the distributed stack (a real redis-server, a real S3 protocol
//! server, `yubin meta` and two `yubin imap` processes):
//! - after real IMAP traffic, every metric of the team's catalogue (docs/metrics.md) is in a
//!   scrape of `/metrics`, with its labels;
//! - with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an in-process OTLP/gRPC collector, one IMAP
//!   command is one trace: the front-end's command span, its gRPC client span, meta's server
//!   span under it, meta's Redis span under that, and the front-end's S3 span;
//! - `/healthz` and `/readyz` answer.

mod common;

use common::{YubinProcess, http_get, sample_message, start_meta, yubin_user};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use yubin_blob::test_server::{TestS3Server, spawn_s3s_fs};
use yubin_loadtest::client::Imap;
use yubin_meta_store::testing::RedisServer;

const BUCKET: &str = "yubin-telemetry";

struct Stack {
    _redis: RedisServer,
    _s3: TestS3Server,
    _s3_dir: tempfile::TempDir,
    meta: YubinProcess,
    nodes: Vec<YubinProcess>,
}

impl Stack {
    /// The stack; `env` is given to meta and the front-ends (e.g. the OTLP endpoint).
    async fn start(env: &[(&str, &str)]) -> Stack {
        let redis = RedisServer::spawn().expect("redis-server");
        let s3_dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(s3_dir.path().join(BUCKET)).expect("bucket dir");
        let s3 = spawn_s3s_fs(s3_dir.path()).await.expect("s3s-fs");
        // Meta publishes the full-text index to the bucket.
        let mut meta_env = vec![
            ("AWS_ENDPOINT_URL_S3", s3.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", s3.access_key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", s3.secret_key.as_str()),
            ("AWS_REGION", "us-east-1"),
        ];
        meta_env.extend_from_slice(env);
        let meta = start_meta(
            &redis.url(),
            "127.0.0.1:0",
            &["--s3-bucket", BUCKET],
            &meta_env,
        );
        let meta_url = format!("http://{}", meta.addr("grpc"));
        let nodes = (0..2)
            .map(|_| {
                let mut node_env = vec![
                    ("AWS_ENDPOINT_URL_S3", s3.endpoint.as_str()),
                    ("AWS_ACCESS_KEY_ID", s3.access_key.as_str()),
                    ("AWS_SECRET_ACCESS_KEY", s3.secret_key.as_str()),
                    ("AWS_REGION", "us-east-1"),
                ];
                node_env.extend_from_slice(env);
                YubinProcess::start(
                    &[
                        "imap",
                        "--meta-url",
                        &meta_url,
                        "--s3-bucket",
                        BUCKET,
                        "--imap-listen",
                        "127.0.0.1:0",
                        "--http-listen",
                        "127.0.0.1:0",
                        "--allow-plaintext-auth",
                        "true",
                    ],
                    &node_env,
                    &["imap", "http"],
                )
            })
            .collect();
        Stack {
            _redis: redis,
            _s3: s3,
            _s3_dir: s3_dir,
            meta,
            nodes,
        }
    }

    fn imap(&self, node: usize) -> SocketAddr {
        self.nodes[node].addr("imap")
    }
}

/// One sample of a Prometheus text exposition.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

fn parse_exposition(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value = value.parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|kv| !kv.is_empty())
                .filter_map(|kv| {
                    let (k, v) = kv.split_once("=\"")?;
                    Some((k.to_string(), v.trim_end_matches('"').to_string()))
                })
                .collect();
            Some(Sample {
                name: name.to_string(),
                labels,
                value,
            })
        })
        .collect()
}

/// The samples of `name` whose labels include every pair of `labels`.
fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// Asserts a series exists and, with `min`, that its value (summed over matches) reaches it.
#[track_caller]
fn expect_series(samples: &[Sample], name: &str, labels: &[(&str, &str)], min: f64) {
    let found = find(samples, name, labels);
    assert!(
        !found.is_empty(),
        "no {name} with {labels:?}; have: {:?}",
        samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| &s.labels)
            .collect::<Vec<_>>()
    );
    let total: f64 = found.iter().map(|s| s.value).sum();
    assert!(
        total >= min,
        "{name} {labels:?} = {total}, expected >= {min}"
    );
}

/// Every label of `name` has one of the allowed names.
#[track_caller]
fn expect_label_names(samples: &[Sample], name: &str, allowed: &[&str]) {
    for s in samples.iter().filter(|s| s.name == name) {
        for k in s.labels.keys() {
            assert!(
                allowed.contains(&k.as_str()),
                "{name} has an unexpected label {k}: {:?}",
                s.labels
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_have_the_catalogue_names_and_labels_after_real_traffic() {
    let stack = Stack::start(&[]).await;
    yubin_user(
        stack.meta.addr("http"),
        &["add", "alice", "--password", "alice-pw"],
    );

    // An IDLE client on node 0, changes made through node 1: fan-out lag is measured.
    let mut watcher = Imap::login(stack.imap(0), "alice", "alice-pw").await;
    watcher.ok("SELECT INBOX").await;
    let idle = watcher.idle().await;
    let mut writer = Imap::login(stack.imap(1), "alice", "alice-pw").await;
    for n in 0..3 {
        let r = writer.append("INBOX", "", &sample_message(n)).await;
        assert!(r.is_ok(), "{r:?}");
    }
    watcher
        .wait_for("EXISTS", Duration::from_secs(10))
        .await
        .expect("the IDLE client sees the appends");
    // CLOSE before SELECT: a command refused by the state gate (BAD).
    assert!(writer.run("CLOSE").await.status.starts_with("BAD"));
    writer.ok("SELECT INBOX").await;
    writer.ok("FETCH 1:* (FLAGS BODY.PEEK[])").await;
    // Node 1 wrote the bodies, so its cache serves them; node 0 reads them from S3 once.
    let mut reader = Imap::login(stack.imap(0), "alice", "alice-pw").await;
    reader.ok("SELECT INBOX").await;
    reader.ok("FETCH 1:* (BODY.PEEK[])").await;
    reader.ok("FETCH 1:* (BODY.PEEK[TEXT])").await;
    writer.ok("STORE 1 +FLAGS (\\Seen)").await;
    let r = Imap::connect(stack.imap(1))
        .await
        .run("LOGIN alice wrong-password")
        .await;
    assert!(!r.is_ok(), "{r:?}");

    // Node 0 while its client idles; node 1 after the commands.
    let node0 = parse_exposition(&http_get(stack.nodes[0].addr("http"), "/metrics").1);
    let node1 = parse_exposition(&http_get(stack.nodes[1].addr("http"), "/metrics").1);
    let meta = parse_exposition(&http_get(stack.meta.addr("http"), "/metrics").1);

    let version = env!("CARGO_PKG_VERSION");
    expect_series(
        &node0,
        "yubin_build_info",
        &[("role", "imap"), ("version", version)],
        1.0,
    );
    expect_series(
        &meta,
        "yubin_build_info",
        &[("role", "meta"), ("version", version)],
        1.0,
    );

    expect_series(
        &node0,
        "yubin_imap_connections",
        &[("state", "idle"), ("tls", "false")],
        1.0,
    );
    expect_series(&node0, "yubin_imap_idle_sessions", &[], 1.0);
    expect_label_names(&node0, "yubin_imap_connections", &["state", "tls"]);
    expect_series(
        &node1,
        "yubin_imap_connections",
        &[("state", "selected"), ("tls", "false")],
        1.0,
    );
    expect_series(
        &node1,
        "yubin_imap_connections_total",
        &[("tls", "false")],
        2.0,
    );

    expect_series(
        &node1,
        "yubin_imap_commands_total",
        &[("command", "APPEND"), ("status", "ok")],
        3.0,
    );
    expect_series(
        &node1,
        "yubin_imap_commands_total",
        &[("command", "FETCH"), ("status", "ok")],
        1.0,
    );
    expect_series(
        &node1,
        "yubin_imap_commands_total",
        &[("command", "CLOSE"), ("status", "bad")],
        1.0,
    );
    expect_series(
        &node1,
        "yubin_imap_commands_total",
        &[("command", "LOGIN"), ("status", "no")],
        1.0,
    );
    expect_series(
        &node1,
        "yubin_imap_command_duration_seconds_bucket",
        &[("command", "APPEND"), ("le", "+Inf")],
        3.0,
    );
    expect_series(
        &node1,
        "yubin_imap_command_duration_seconds_count",
        &[("command", "STORE")],
        1.0,
    );
    expect_series(&node1, "yubin_imap_bytes_in_total", &[], 1000.0);
    expect_series(&node1, "yubin_imap_bytes_out_total", &[], 1000.0);
    expect_series(
        &node1,
        "yubin_imap_auth_total",
        &[("mechanism", "login"), ("result", "success")],
        1.0,
    );
    expect_series(
        &node1,
        "yubin_imap_auth_total",
        &[("mechanism", "login"), ("result", "failure")],
        1.0,
    );
    expect_series(&node1, "yubin_imap_shutdown_byes_total", &[], 0.0);

    expect_series(
        &node0,
        "yubin_notification_lag_seconds_bucket",
        &[("le", "+Inf")],
        1.0,
    );
    expect_series(&node0, "yubin_notification_lag_seconds_count", &[], 1.0);

    expect_series(
        &node1,
        "yubin_grpc_client_requests_total",
        &[("method", "append"), ("code", "OK")],
        3.0,
    );
    expect_series(
        &node1,
        "yubin_grpc_client_duration_seconds_bucket",
        &[("method", "append"), ("le", "+Inf")],
        3.0,
    );
    expect_series(
        &meta,
        "yubin_grpc_server_requests_total",
        &[("method", "append"), ("code", "OK")],
        3.0,
    );
    expect_series(
        &meta,
        "yubin_grpc_server_duration_seconds_bucket",
        &[("method", "changes_since"), ("le", "+Inf")],
        1.0,
    );
    expect_series(
        &meta,
        "yubin_auth_attempts_total",
        &[("result", "failure")],
        1.0,
    );
    // The failed login was counted in Redis, shared by every meta replica, without error.
    expect_series(
        &meta,
        "yubin_redis_command_duration_seconds_count",
        &[("operation", "failure_add")],
        1.0,
    );
    expect_series(&meta, "yubin_auth_shared_counter_errors_total", &[], 0.0);

    expect_series(
        &meta,
        "yubin_redis_command_duration_seconds_bucket",
        &[("operation", "append"), ("le", "+Inf")],
        3.0,
    );
    expect_series(
        &meta,
        "yubin_redis_command_duration_seconds_count",
        &[("operation", "fetch")],
        1.0,
    );
    expect_series(
        &meta,
        "yubin_redis_errors_total",
        &[("operation", "append")],
        0.0,
    );

    expect_series(
        &node1,
        "yubin_s3_request_duration_seconds_bucket",
        &[("operation", "PutObject"), ("le", "+Inf")],
        3.0,
    );
    expect_series(
        &node0,
        "yubin_s3_request_duration_seconds_count",
        &[("operation", "GetObject")],
        3.0,
    );
    expect_series(
        &node0,
        "yubin_body_cache_lookups_total",
        &[("tier", "memory"), ("result", "miss")],
        3.0,
    );
    expect_series(
        &node0,
        "yubin_body_cache_lookups_total",
        &[("tier", "memory"), ("result", "hit")],
        3.0,
    );
    expect_series(
        &node1,
        "yubin_body_cache_lookups_total",
        &[("tier", "memory"), ("result", "hit")],
        3.0,
    );
    expect_series(&node1, "yubin_body_cache_bytes", &[("tier", "memory")], 1.0);
    expect_series(
        &node1,
        "yubin_s3_errors_total",
        &[("operation", "PutObject")],
        0.0,
    );

    // Meta's indexer took the three appended messages into the full-text index (it runs
    // behind the writes: wait for it).
    let deadline = Instant::now() + Duration::from_secs(20);
    let meta = loop {
        let meta = parse_exposition(&http_get(stack.meta.addr("http"), "/metrics").1);
        let indexed: f64 = find(&meta, "yubin_fulltext_indexed_messages_total", &[])
            .iter()
            .map(|s| s.value)
            .sum();
        if indexed >= 3.0 || Instant::now() > deadline {
            break meta;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    expect_series(&meta, "yubin_fulltext_indexed_messages_total", &[], 3.0);
    expect_series(
        &meta,
        "yubin_fulltext_batches_total",
        &[("result", "committed")],
        1.0,
    );
    expect_series(&meta, "yubin_fulltext_batch_seconds_count", &[], 1.0);
    expect_series(
        &meta,
        "yubin_s3_request_duration_seconds_count",
        &[("operation", "PutObject")],
        1.0,
    );

    // A histogram, not a summary: dashboards take quantiles across nodes from the buckets.
    assert!(
        find(
            &node1,
            "yubin_imap_command_duration_seconds_bucket",
            &[("command", "APPEND")]
        )
        .len()
            > 5,
        "latency histograms have buckets"
    );

    // Health and readiness: the front-end reaches meta, Redis (through meta) and S3.
    assert_eq!(http_get(stack.nodes[0].addr("http"), "/healthz").0, 200);
    assert_eq!(http_get(stack.nodes[0].addr("http"), "/readyz").0, 200);
    assert_eq!(http_get(stack.meta.addr("http"), "/readyz").0, 200);
    assert!(watcher.done(&idle).await.is_ok());
}

/// Spans received by the in-process collector, flattened.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
}

#[derive(Default, Clone)]
struct Collector {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut out = self.spans.lock().expect("lock");
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    AnyValue::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for span in ss.spans {
                    out.push(ReceivedSpan {
                        service: service.clone(),
                        name: span.name,
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_imap_command_is_one_trace_across_front_end_meta_redis_and_s3() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind collector");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let stack = Stack::start(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        // Export every 100 ms instead of every 5 s, so the test need not wait long.
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        // Logs as JSON lines at the default level: exercised with tracing on, never asserted.
        ("YUBIN_LOG_FORMAT", "json"),
    ])
    .await;
    yubin_user(
        stack.meta.addr("http"),
        &["add", "carol", "--password", "carol-pw"],
    );
    let mut client = Imap::login(stack.imap(0), "carol", "carol-pw").await;
    let r = client.append("INBOX", "", &sample_message(7)).await;
    assert!(r.is_ok(), "{r:?}");

    // The APPEND's trace: the front-end's command span is its root.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (root, trace) = loop {
        let spans = collector.spans.lock().expect("lock").clone();
        let root = spans
            .iter()
            .find(|s| s.name == "IMAP APPEND" && s.service == "yubin-imap");
        if let Some(root) = root {
            let trace: Vec<ReceivedSpan> = spans
                .iter()
                .filter(|s| s.trace_id == root.trace_id)
                .cloned()
                .collect();
            let complete = trace
                .iter()
                .any(|s| s.service == "yubin-meta" && s.name == "redis append")
                && trace.iter().any(|s| s.name == "S3.PutObject");
            if complete {
                break (root.clone(), trace);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no complete APPEND trace; spans received: {:#?}",
            spans
                .iter()
                .map(|s| (&s.service, &s.name))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        root.parent_span_id.is_empty(),
        "the command span is the trace's root"
    );
    let by_id = |id: &[u8]| trace.iter().find(|s| s.span_id == id);
    let span = |service: &str, name: &str| {
        trace
            .iter()
            .find(|s| s.service == service && s.name == name)
            .unwrap_or_else(|| panic!("no {service} span {name} in {trace:#?}"))
    };
    let client_call = span("yubin-imap", "yubin.meta.v1.Meta/Append");
    let server_call = span("yubin-meta", "yubin.meta.v1.Meta/Append");
    let redis = span("yubin-meta", "redis append");
    let s3 = span("yubin-imap", "S3.PutObject");
    // front-end command → gRPC client → (wire) → meta's server span → Redis script.
    assert_eq!(
        by_id(&server_call.parent_span_id).map(|p| p.name.as_str()),
        Some(client_call.name.as_str()),
        "meta's span continues the front-end's call"
    );
    assert_eq!(
        redis.parent_span_id, server_call.span_id,
        "redis under the RPC"
    );
    let mut ancestor = by_id(&client_call.parent_span_id);
    while let Some(a) = ancestor
        && a.span_id != root.span_id
    {
        ancestor = by_id(&a.parent_span_id);
    }
    assert!(
        ancestor.is_some(),
        "the gRPC call descends from the command span"
    );
    let mut ancestor = by_id(&s3.parent_span_id);
    while let Some(a) = ancestor
        && a.span_id != root.span_id
    {
        ancestor = by_id(&a.parent_span_id);
    }
    assert!(
        ancestor.is_some(),
        "the S3 call descends from the command span"
    );

    // Another command is another trace.
    client.ok("NOOP").await;
    drop(stack);
    server.abort();
}
