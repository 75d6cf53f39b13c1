//! The deployment files checked against the binary they deploy: the Dockerfile, the compose
//! stack in infra/, the Kubernetes manifests in k8s/, the Prometheus alert rules and the Grafana
//! dashboard. Flags and variables are checked against `yubin <role> --help`; the compose file
//! against the compose specification (check-jsonschema) and the manifests against the Kubernetes
//! schemas (kubernetes-validate), both offline, and each against itself (selectors, ports,
//! Secrets, mounts); the Prometheus files with promtool and the alerts' unit tests; label names
//! and values in queries against the code; and every metric the dashboard, the alerts and the
//! autoscaler use against real scrapes of every role after real IMAP and LMTP traffic, while a
//! real Prometheus scrapes the roles and every dashboard panel's query must return data.

#[path = "deploy/access.rs"]
mod access;
mod common;

use common::{YubinProcess, sample_message, yubin_bin, yubin_user};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use yubin_blob::test_server::{TestS3Server, spawn_s3s_fs};
use yubin_loadtest::client::Imap;
use yubin_meta_store::testing::RedisServer;

// ---------------------------------------------------------------------------------------------
// Reading the repository's files
// ---------------------------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn read(rel: &str) -> String {
    let path = repo_root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every YAML document of a file (`---` separated), merge keys (`<<:`) applied, as JSON values.
fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = read(rel);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            let mut v: serde_yaml_ng::Value = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"));
            v.apply_merge()
                .unwrap_or_else(|e| panic!("{rel}: bad merge key: {e}"));
            serde_json::to_value(v).unwrap_or_else(|e| panic!("{rel}: {e}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_doc(rel: &str) -> Value {
    let mut docs = yaml_docs(rel);
    assert_eq!(docs.len(), 1, "{rel} holds one YAML document");
    docs.remove(0)
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// What the binary accepts: `yubin <role> --help`
// ---------------------------------------------------------------------------------------------

/// The flags (`--name`) and environment variables (`[env: NAME=…]`) one role's `--help` lists.
#[derive(Debug, Clone)]
struct RoleHelp {
    flags: BTreeSet<String>,
    env: BTreeSet<String>,
}

fn role_help(role: &str) -> Result<RoleHelp, String> {
    static CACHE: Mutex<Option<HashMap<String, Result<RoleHelp, String>>>> = Mutex::new(None);
    let mut cache = CACHE.lock().expect("help cache");
    let cache = cache.get_or_insert_with(HashMap::new);
    cache
        .entry(role.to_string())
        .or_insert_with(|| {
            let out = Command::new(yubin_bin())
                .args([role, "--help"])
                .env_clear()
                .output()
                .map_err(|e| format!("running yubin {role} --help: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "`yubin {role} --help` failed (is the role implemented?): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let mut help = RoleHelp {
                flags: BTreeSet::new(),
                env: BTreeSet::new(),
            };
            for word in text.split(|c: char| c.is_whitespace() || c == ',') {
                if let Some(flag) = word.strip_prefix("--") {
                    let flag: String = flag
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                        .collect();
                    if !flag.is_empty() {
                        help.flags.insert(format!("--{flag}"));
                    }
                }
            }
            for part in text.split("[env: ").skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                help.env.insert(name);
            }
            Ok(help)
        })
        .clone()
}

/// `YUBIN_*` variables read directly by the code rather than through a flag: each must really
/// be read somewhere under services/ (checked), so this list cannot go stale silently.
const PROCESS_VARIABLES: &[&str] = &["YUBIN_ADMIN_TOKEN", "YUBIN_LOG_FORMAT"];

fn variable_is_read_by_the_code(name: &str) -> bool {
    fn walk(dir: &Path, needle: &str) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == "tests") {
                    continue;
                }
                if walk(&path, needle) {
                    return true;
                }
            } else if path.extension().is_some_and(|e| e == "rs")
                && std::fs::read_to_string(&path).is_ok_and(|t| t.contains(needle))
            {
                return true;
            }
        }
        false
    }
    walk(&repo_root().join("services"), &format!("\"{name}\""))
}

/// Checks a role's command line (flags after the role name) and the environment variables it
/// is given against what that role accepts; returns the problems found.
fn check_invocation(
    what: &str,
    args: &[String],
    env_names: &[String],
    problems: &mut Vec<String>,
) -> Option<String> {
    let Some(role) = args.first() else {
        problems.push(format!("{what}: no role given"));
        return None;
    };
    let help = match role_help(role) {
        Ok(h) => h,
        Err(e) => {
            problems.push(format!("{what}: {e}"));
            return Some(role.clone());
        }
    };
    for arg in &args[1..] {
        if let Some(flag) = arg.strip_prefix("--") {
            let flag = format!("--{}", flag.split('=').next().unwrap_or(flag));
            if !help.flags.contains(&flag) {
                problems.push(format!("{what}: `yubin {role}` has no flag {flag}"));
            }
        }
    }
    for name in env_names {
        if !name.starts_with("YUBIN_") {
            continue;
        }
        if PROCESS_VARIABLES.contains(&name.as_str()) {
            if !variable_is_read_by_the_code(name) {
                problems.push(format!("{what}: {name} is not read anywhere in services/"));
            }
        } else if !help.env.contains(name) {
            problems.push(format!(
                "{what}: `yubin {role}` reads no variable {name} (its --help lists {:?})",
                help.env
            ));
        }
    }
    Some(role.clone())
}

/// The value following `flag` in an argument list.
fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {addr:?}"))
}

// ---------------------------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------------------------

#[test]
fn dockerfile_is_multi_stage_small_and_runs_as_non_root() {
    let text = read("Dockerfile");
    // Join continuation lines so each instruction is one line.
    let joined = text.replace("\\\n", " ");
    let instructions: Vec<&str> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let stages: Vec<(usize, &str)> = instructions
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("FROM "))
        .map(|(i, l)| (i, *l))
        .collect();
    assert!(
        stages.len() >= 2,
        "a build stage and a runtime stage: {stages:?}"
    );

    let rust_version = read("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("rust-version in Cargo.toml");
    let (build_at, build_from) = stages[0];
    assert!(
        build_from.contains(&format!("rust:{rust_version}")),
        "the builder uses the workspace's pinned toolchain {rust_version}: {build_from}"
    );
    let build_name = build_from
        .split_whitespace()
        .skip_while(|w| !w.eq_ignore_ascii_case("AS"))
        .nth(1)
        .expect("the build stage is named (FROM … AS name)");
    let (runtime_at, runtime_from) = *stages.last().expect("runtime stage");
    assert!(
        !runtime_from.contains("rust:"),
        "the runtime image carries no toolchain: {runtime_from}"
    );
    let build_stage = &instructions[build_at..runtime_at];
    assert!(
        build_stage
            .iter()
            .any(|l| l.starts_with("RUN") && l.contains("cargo build --release --locked -p yubin")),
        "the builder builds the locked release binary"
    );

    let runtime = &instructions[runtime_at..];
    let copies: Vec<&&str> = runtime.iter().filter(|l| l.starts_with("COPY")).collect();
    assert_eq!(
        copies.len(),
        1,
        "the runtime stage copies only the binary: {copies:?}"
    );
    assert!(
        copies[0].contains(&format!("--from={build_name}")) && copies[0].contains("yubin"),
        "{copies:?}"
    );
    assert!(
        runtime.iter().any(|l| l.contains("ca-certificates")),
        "CA certificates for TLS to S3 and OTLP endpoints"
    );
    let user = runtime
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    let uid = user.trim().split(':').next().unwrap_or_default();
    assert!(
        uid != "0" && uid != "root",
        "the container runs as a non-root user, got USER {user}"
    );
    // Kubernetes' runAsNonRoot can only verify a numeric user.
    assert!(uid.parse::<u32>().is_ok(), "USER is numeric: {user}");
    let entrypoint = runtime
        .iter()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("ENTRYPOINT");
    let entrypoint: Vec<String> = serde_json::from_str(entrypoint).expect("exec-form ENTRYPOINT");
    assert!(entrypoint[0].ends_with("/yubin"), "{entrypoint:?}");

    let ignore = read(".dockerignore");
    for must in ["target/", ".git/"] {
        assert!(
            ignore.lines().any(|l| l.trim() == must),
            ".dockerignore keeps {must} out of the build context"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// infra/: the compose stack, Prometheus, Grafana provisioning, the collector
// ---------------------------------------------------------------------------------------------

const COMPOSE: &str = "infra/docker-compose.yml";

/// A compose service's `command` as a list of words.
fn compose_command(service: &Value) -> Vec<String> {
    match &service["command"] {
        Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
        other => str_list(other),
    }
}

#[test]
fn compose_stack_runs_every_role_with_flags_the_binary_accepts() {
    let compose = yaml_doc(COMPOSE);
    let services = compose["services"].as_object().expect("services");
    let mut problems = Vec::new();
    let mut roles: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Scrape targets Prometheus needs: host:port of every yubin role's HTTP port.
    let mut http_targets = BTreeSet::new();
    for (name, service) in services {
        if let Some(deps) = service["depends_on"].as_object() {
            for dep in deps.keys() {
                if !services.contains_key(dep) {
                    problems.push(format!("{name} depends on unknown service {dep}"));
                }
            }
        }
        for volume in str_list(&service["volumes"]) {
            if let Some(rel) = volume.strip_prefix("./") {
                let host = rel.split(':').next().unwrap_or(rel);
                if !repo_root().join("infra").join(host).exists() {
                    problems.push(format!("{name} mounts missing file infra/{host}"));
                }
            }
        }
        if service["image"].as_str() != Some("yubin:dev") {
            continue;
        }
        let args = compose_command(service);
        let env: Vec<String> = service["environment"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        if let Some(role) = check_invocation(&format!("compose {name}"), &args, &env, &mut problems)
        {
            roles.entry(role).or_default().push(name.clone());
        }
        match flag_value(&args, "--http-listen") {
            Some(addr) => {
                http_targets.insert(format!("{name}:{}", port_of(addr)));
            }
            None => problems.push(format!("{name}: no --http-listen (metrics unreachable)")),
        }
        if !env.iter().any(|e| e == "OTEL_EXPORTER_OTLP_ENDPOINT") {
            problems.push(format!("{name}: traces are not sent to the collector"));
        }
        if args[0] != "meta" {
            for key in [
                "AWS_ENDPOINT_URL_S3",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
            ] {
                if !env.iter().any(|e| e == key) {
                    problems.push(format!("{name}: {key} missing (S3 comes from AWS_*)"));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "compose problems:\n{}",
        problems.join("\n")
    );
    assert_eq!(
        roles.get("meta").map(Vec::len),
        Some(1),
        "one meta: {roles:?}"
    );
    assert_eq!(
        roles.get("imap").map(Vec::len),
        Some(2),
        "two imap: {roles:?}"
    );
    assert_eq!(
        roles.get("lmtp").map(Vec::len),
        Some(1),
        "one lmtp: {roles:?}"
    );
    // One build serves every yubin service.
    assert!(
        services
            .values()
            .filter(|s| s["image"] == "yubin:dev")
            .any(|s| s["build"]["dockerfile"] == "Dockerfile" && s["build"]["context"] == ".."),
        "the yubin image is built from the repository's Dockerfile"
    );

    // Redis keeps an fsynced AOF; MinIO's bucket is created before the roles start.
    let redis = compose_command(&services["redis"]).join(" ");
    assert!(
        redis.contains("--appendonly yes") && redis.contains("--appendfsync always"),
        "{redis}"
    );
    let bucket = flag_value(&compose_command(&services["imap-1"]), "--s3-bucket")
        .expect("imap bucket")
        .to_string();
    let init = compose_command(&services["minio-init"]).join(" ");
    assert!(
        init.contains(&format!("mc mb --ignore-existing local/{bucket}")),
        "{init}"
    );
    for role_service in ["imap-1", "imap-2", "lmtp"] {
        assert_eq!(
            services[role_service]["depends_on"]["minio-init"]["condition"],
            "service_completed_successfully",
            "{role_service} starts after the bucket exists"
        );
    }
    for required in ["prometheus", "grafana", "otel-collector", "jaeger"] {
        assert!(services.contains_key(required), "compose runs {required}");
    }

    // Prometheus scrapes every role's HTTP port.
    let prometheus = yaml_doc("infra/prometheus/prometheus.yml");
    let scraped: BTreeSet<String> = prometheus["scrape_configs"]
        .as_array()
        .expect("scrape_configs")
        .iter()
        .flat_map(|job| {
            job["static_configs"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|sc| str_list(&sc["targets"]))
        .collect();
    assert_eq!(
        scraped, http_targets,
        "Prometheus scrapes exactly the roles' HTTP ports"
    );
    for rule_file in str_list(&prometheus["rule_files"]) {
        let mounted = str_list(&services["prometheus"]["volumes"])
            .iter()
            .any(|v| v.ends_with(&format!("/etc/prometheus/{rule_file}:ro")));
        assert!(mounted, "rule file {rule_file} is mounted into Prometheus");
    }

    // Traces: the roles' OTLP endpoint is the collector's gRPC receiver, whose pipeline uses
    // only components it defines.
    let collector = yaml_doc("infra/otel-collector/config.yaml");
    let grpc = collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
        .as_str()
        .expect("OTLP gRPC receiver");
    for service in services.values().filter(|s| s["image"] == "yubin:dev") {
        let endpoint = service["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
            .as_str()
            .expect("endpoint");
        assert_eq!(
            endpoint,
            format!("http://otel-collector:{}", port_of(grpc)),
            "roles send traces to the collector's gRPC receiver"
        );
    }
    let pipelines = collector["service"]["pipelines"]
        .as_object()
        .expect("pipelines");
    assert!(pipelines.contains_key("traces"), "a traces pipeline");
    for (pipeline, spec) in pipelines {
        for kind in ["receivers", "processors", "exporters"] {
            for component in str_list(&spec[kind]) {
                assert!(
                    collector[kind].get(&component).is_some(),
                    "collector pipeline {pipeline} uses undefined {kind} {component}"
                );
            }
        }
    }

    // Grafana: the Prometheus datasource the dashboard refers to exists, and the dashboard
    // provider's folder is where compose mounts the dashboards.
    let datasources = yaml_doc("infra/grafana/provisioning/datasources/datasources.yml");
    let uids: Vec<&str> = datasources["datasources"]
        .as_array()
        .expect("datasources")
        .iter()
        .filter_map(|d| d["uid"].as_str())
        .collect();
    let dashboard = dashboard();
    let default_ds = dashboard["templating"]["list"]
        .as_array()
        .and_then(|l| l.iter().find(|v| v["type"] == "datasource"))
        .and_then(|v| v["current"]["value"].as_str())
        .expect("the dashboard's datasource variable");
    assert!(
        uids.contains(&default_ds),
        "datasource {default_ds} in {uids:?}"
    );
    let providers = yaml_doc("infra/grafana/provisioning/dashboards/dashboards.yml");
    let path = providers["providers"][0]["options"]["path"]
        .as_str()
        .expect("provider path");
    assert!(
        str_list(&services["grafana"]["volumes"])
            .iter()
            .any(|v| v == &format!("./grafana/dashboards:{path}:ro")),
        "Grafana finds the dashboard at {path}"
    );
}

/// A schema tool from PyPI that scripts/test.sh installs (into a virtualenv under target/).
fn schema_tool(name: &'static str) -> &'static str {
    let found = Command::new(name).arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "{name} not found on PATH: `pip install {name}` (scripts/test.sh installs it into a \
         virtualenv under target/test-tools)"
    );
    name
}

#[test]
fn compose_file_passes_the_compose_specification_schema() {
    // check-jsonschema bundles the compose-spec schema, so this runs offline.
    let tool = schema_tool("check-jsonschema");
    let out = Command::new(tool)
        .args(["--builtin-schema", "vendor.compose-spec"])
        .arg(repo_root().join(COMPOSE))
        .output()
        .expect("check-jsonschema");
    assert!(
        out.status.success(),
        "compose schema check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn promtool() -> String {
    let found = Command::new("promtool").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "promtool not found: install Debian's `prometheus` package (scripts/test.sh does)"
    );
    "promtool".to_string()
}

#[test]
fn prometheus_config_and_alert_rules_pass_promtool_and_their_unit_tests() {
    let promtool = promtool();
    let dir = repo_root().join("infra/prometheus");
    // `check config` also checks every rule file the config lists.
    let out = Command::new(&promtool)
        .args(["check", "config", "prometheus.yml"])
        .current_dir(&dir)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool check config: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The alerts' unit tests: each fires on the series it is about, and not before its `for`.
    let out = Command::new(&promtool)
        .args(["test", "rules", "alerts_test.yml"])
        .current_dir(&dir)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rules = yaml_doc("infra/prometheus/alerts.yml");
    let alerts: Vec<&Value> = rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .collect();
    assert!(
        alerts.len() >= 10,
        "a useful set of alerts: {}",
        alerts.len()
    );
    for alert in alerts {
        let name = alert["alert"].as_str().expect("every rule is an alert");
        for key in ["summary", "description"] {
            assert!(
                alert["annotations"][key].is_string(),
                "alert {name} has a {key}"
            );
        }
        assert!(
            alert["labels"]["severity"].is_string(),
            "alert {name} has a severity"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// k8s/: kustomize base, test-cluster pieces, the example overlay
// ---------------------------------------------------------------------------------------------

/// A Kubernetes object with the file it came from.
struct Object {
    file: String,
    value: Value,
}

impl Object {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }
    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }
}

/// Follows `resources:` of a kustomization directory (recursively into directories) and returns
/// every object, failing on a listed file or directory that does not exist.
fn kustomize_objects(dir: &str, out: &mut Vec<Object>, visited: &mut BTreeSet<PathBuf>) {
    let path = repo_root().join(dir);
    let canonical = path
        .canonicalize()
        .unwrap_or_else(|e| panic!("kustomization dir {dir}: {e}"));
    if !visited.insert(canonical) {
        return;
    }
    let kustomization = yaml_doc(&format!("{dir}/kustomization.yaml"));
    assert_eq!(kustomization["kind"], "Kustomization", "{dir}");
    for resource in str_list(&kustomization["resources"]) {
        let target = path.join(&resource);
        let rel = format!("{dir}/{resource}");
        if target.is_dir() {
            assert!(
                target.join("kustomization.yaml").exists(),
                "{rel} is a directory without kustomization.yaml"
            );
            let normalized = target
                .canonicalize()
                .expect("dir")
                .strip_prefix(repo_root())
                .expect("inside the repository")
                .to_string_lossy()
                .into_owned();
            kustomize_objects(&normalized, out, visited);
        } else {
            assert!(
                target.is_file(),
                "{dir}/kustomization.yaml lists missing {resource}"
            );
            for value in yaml_docs(&rel) {
                out.push(Object {
                    file: rel.clone(),
                    value,
                });
            }
        }
    }
}

fn overlay_objects() -> (Vec<Object>, Value) {
    let mut objects = Vec::new();
    kustomize_objects("k8s/overlays/example", &mut objects, &mut BTreeSet::new());
    let overlay = yaml_doc("k8s/overlays/example/kustomization.yaml");
    (objects, overlay)
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    let Some(selector) = selector.as_object() else {
        return false;
    };
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[test]
fn kubernetes_manifests_are_consistent_with_each_other_and_the_binary() {
    let (objects, overlay) = overlay_objects();
    let mut problems = Vec::new();
    let by_kind =
        |kind: &str| -> Vec<&Object> { objects.iter().filter(|o| o.kind() == kind).collect() };
    let config = by_kind("ConfigMap")
        .into_iter()
        .find(|o| o.name() == "yubin-config")
        .expect("ConfigMap yubin-config");
    let config_data = config.value["data"]
        .as_object()
        .expect("config data")
        .clone();

    // Secrets: generated by the overlay (with their keys) or provided by the operator as
    // docs/operations.md tells.
    let mut secret_keys: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for generator in overlay["secretGenerator"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let keys = str_list(&generator["literals"])
            .iter()
            .map(|l| l.split('=').next().unwrap_or_default().to_string())
            .collect();
        secret_keys.insert(generator["name"].as_str().expect("name").to_string(), keys);
    }
    let operations = read("docs/operations.md");

    let workloads: Vec<&Object> = objects
        .iter()
        .filter(|o| ["Deployment", "StatefulSet", "Job"].contains(&o.kind()))
        .collect();
    let deployments = by_kind("Deployment");
    let mut roles = BTreeMap::new();
    for object in &workloads {
        let what = format!("{} {} ({})", object.kind(), object.name(), object.file);
        let spec = &object.value["spec"]["template"]["spec"];
        let pod_labels = &object.value["spec"]["template"]["metadata"]["labels"];
        if object.kind() != "Job"
            && !labels_match(&object.value["spec"]["selector"]["matchLabels"], pod_labels)
        {
            problems.push(format!("{what}: selector does not match its pod labels"));
        }
        let pod_security = &spec["securityContext"];
        if pod_security["runAsNonRoot"] != true
            || pod_security["runAsUser"].as_u64().is_none_or(|u| u == 0)
        {
            problems.push(format!("{what}: pods must run as a non-root numeric user"));
        }
        // Every Secret/ConfigMap key a pod reads exists.
        let containers = spec["containers"].as_array().cloned().unwrap_or_default();
        for container in &containers {
            let cname = format!("{what} container {}", container["name"]);
            if container["resources"]["requests"]
                .as_object()
                .is_none_or(|m| m.is_empty())
                || container["resources"]["limits"]
                    .as_object()
                    .is_none_or(|m| m.is_empty())
            {
                problems.push(format!("{cname}: resource requests and limits"));
            }
            let security = &container["securityContext"];
            if security["allowPrivilegeEscalation"] != false
                || !str_list(&security["capabilities"]["drop"]).contains(&"ALL".to_string())
            {
                problems.push(format!(
                    "{cname}: no privilege escalation, capabilities dropped"
                ));
            }
            for env in container["env"].as_array().cloned().unwrap_or_default() {
                let from = &env["valueFrom"];
                if let Some(r) = from.get("configMapKeyRef") {
                    let key = r["key"].as_str().unwrap_or_default();
                    if r["name"] != "yubin-config" {
                        problems.push(format!("{cname}: unknown ConfigMap {}", r["name"]));
                    } else if !config_data.contains_key(key) && r["optional"] != true {
                        problems.push(format!("{cname}: yubin-config has no key {key}"));
                    }
                }
                if let Some(r) = from.get("secretKeyRef") {
                    let secret = r["name"].as_str().unwrap_or_default();
                    let key = r["key"].as_str().unwrap_or_default();
                    match secret_keys.get(secret) {
                        Some(keys) if keys.contains(key) => {}
                        _ => problems.push(format!("{cname}: secret {secret} has no key {key}")),
                    }
                }
            }
        }
        for volume in spec["volumes"].as_array().cloned().unwrap_or_default() {
            if let Some(secret) = volume["secret"]["secretName"].as_str()
                && !secret_keys.contains_key(secret)
                && !operations.contains(&format!("create secret tls {secret}"))
            {
                problems.push(format!(
                    "{what}: Secret {secret} is neither generated nor documented in docs/operations.md"
                ));
            }
        }
    }

    // The yubin roles: flags, variables, ports, probes and the termination path.
    for object in &deployments {
        let what = format!("Deployment {}", object.name());
        let spec = &object.value["spec"]["template"]["spec"];
        let container = &spec["containers"][0];
        if container["image"] != "yubin" {
            problems.push(format!(
                "{what}: image must be `yubin` (set by kustomize images:)"
            ));
            continue;
        }
        let args = str_list(&container["args"]);
        let env_names: Vec<String> = container["env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let Some(role) = check_invocation(&what, &args, &env_names, &mut problems) else {
            continue;
        };
        roles.insert(role.clone(), object.name().to_string());
        let ports: BTreeMap<String, u64> = container["ports"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| {
                        (
                            p["name"].as_str().unwrap_or_default().to_string(),
                            p["containerPort"].as_u64().unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        for (flag, port_name) in [
            ("--http-listen", "http"),
            ("--imap-listen", "imap"),
            ("--imaps-listen", "imaps"),
            ("--lmtp-listen", "lmtp"),
            ("--grpc-listen", "grpc"),
        ] {
            if let Some(addr) = flag_value(&args, flag) {
                if !addr.starts_with("0.0.0.0:") && !addr.starts_with("[::]:") {
                    problems.push(format!(
                        "{what}: {flag} {addr} is not reachable from outside the pod"
                    ));
                }
                if ports.get(port_name) != Some(&u64::from(port_of(addr))) {
                    problems.push(format!(
                        "{what}: port {port_name} does not match {flag} {addr}"
                    ));
                }
            }
        }
        for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
            let get = &container[probe]["httpGet"];
            if get["path"] != path || get["port"] != "http" {
                problems.push(format!("{what}: {probe} must GET {path} on the http port"));
            }
        }
        if !ports.contains_key("http") {
            problems.push(format!("{what}: no http port (probes, metrics)"));
        }
        let annotations = &object.value["spec"]["template"]["metadata"]["annotations"];
        if annotations["prometheus.io/port"]
            .as_str()
            .and_then(|p| p.parse::<u64>().ok())
            != ports.get("http").copied()
        {
            problems.push(format!("{what}: prometheus.io/port is not the http port"));
        }
        // preStop delay + the binary's drain window must end before the kubelet's SIGKILL.
        // The delay runs `sleep` inside the image, so the runtime stage must ship coreutils.
        let pre_stop_command = str_list(&container["lifecycle"]["preStop"]["exec"]["command"]);
        if pre_stop_command.first().map(String::as_str) == Some("sleep") {
            let runtime_base = read("Dockerfile")
                .lines()
                .rev()
                .find_map(|l| l.trim().strip_prefix("FROM ").map(str::to_string))
                .unwrap_or_default();
            if !runtime_base.starts_with("debian:") {
                problems.push(format!(
                    "{what}: preStop runs `sleep`, which the runtime image {runtime_base} lacks"
                ));
            }
        }
        let pre_stop: u64 = str_list(&container["lifecycle"]["preStop"]["exec"]["command"])
            .get(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                problems.push(format!("{what}: preStop sleeps before SIGTERM"));
                0
            });
        let drain: u64 = if env_names.iter().any(|n| n == "YUBIN_DRAIN_SECONDS") {
            config_data["YUBIN_DRAIN_SECONDS"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("YUBIN_DRAIN_SECONDS is a number")
        } else {
            0
        };
        if role == "imap" && drain == 0 {
            problems.push(format!("{what}: the IMAP front-end gets a drain window"));
        }
        let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
        if grace < pre_stop + drain + 10 {
            problems.push(format!(
                "{what}: terminationGracePeriodSeconds {grace} leaves under 10 s after preStop \
                 {pre_stop} s + drain {drain} s"
            ));
        }
    }
    for role in ["meta", "imap", "lmtp"] {
        if !roles.contains_key(role) {
            problems.push(format!("no Deployment runs `yubin {role}`"));
        }
    }

    // Services select a workload's pods and target ports that container declares.
    for service in by_kind("Service") {
        let selector = &service.value["spec"]["selector"];
        let Some(target) = workloads
            .iter()
            .find(|w| labels_match(selector, &w.value["spec"]["template"]["metadata"]["labels"]))
        else {
            problems.push(format!("Service {} selects no workload", service.name()));
            continue;
        };
        let container_ports: Vec<Value> = target.value["spec"]["template"]["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
            .collect();
        for port in service.value["spec"]["ports"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let tp = &port["targetPort"];
            if !container_ports
                .iter()
                .any(|p| &p["name"] == tp || &p["containerPort"] == tp)
            {
                problems.push(format!(
                    "Service {}: targetPort {tp} not on {}",
                    service.name(),
                    target.name()
                ));
            }
        }
    }
    let imap_service = by_kind("Service")
        .into_iter()
        .find(|s| s.name() == "yubin-imap")
        .expect("Service yubin-imap");
    assert_eq!(imap_service.value["spec"]["type"], "LoadBalancer");
    let imap_ports: Vec<u64> = imap_service.value["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(|p| p["port"].as_u64())
        .collect();
    assert_eq!(
        imap_ports,
        vec![143, 993],
        "IMAP on the standard ports (RFC 9051 §2.1, RFC 8314)"
    );

    // Disruption budgets and the autoscaler point at existing Deployments.
    for pdb in by_kind("PodDisruptionBudget") {
        if !deployments.iter().any(|d| {
            labels_match(
                &pdb.value["spec"]["selector"]["matchLabels"],
                &d.value["spec"]["template"]["metadata"]["labels"],
            )
        }) {
            problems.push(format!(
                "PodDisruptionBudget {} selects no Deployment",
                pdb.name()
            ));
        }
    }
    for role in ["meta", "imap", "lmtp"] {
        let deployment = roles.get(role).cloned().unwrap_or_default();
        let covered = by_kind("PodDisruptionBudget").iter().any(|pdb| {
            deployments.iter().any(|d| {
                d.name() == deployment
                    && labels_match(
                        &pdb.value["spec"]["selector"]["matchLabels"],
                        &d.value["spec"]["template"]["metadata"]["labels"],
                    )
            })
        });
        if !covered {
            problems.push(format!("no PodDisruptionBudget covers {role}"));
        }
    }
    let hpas = by_kind("HorizontalPodAutoscaler");
    assert_eq!(hpas.len(), 1, "one HPA (imap)");
    let hpa = &hpas[0].value["spec"];
    assert_eq!(hpa["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(
        hpa["scaleTargetRef"]["name"].as_str(),
        roles.get("imap").map(String::as_str),
        "the HPA scales the IMAP front-ends"
    );
    let metrics = hpa["metrics"].as_array().expect("HPA metrics");
    assert!(
        metrics
            .iter()
            .any(|m| m["type"] == "Resource" && m["resource"]["name"] == "cpu"),
        "HPA on CPU"
    );
    assert!(
        metrics.iter().any(|m| m["type"] == "Pods"
            && m["pods"]["metric"]["name"] == "yubin_imap_connections"),
        "HPA on connections per pod"
    );
    assert!(hpa["minReplicas"].as_u64() < hpa["maxReplicas"].as_u64());

    // The test cluster brings its own Redis (with AOF) and MinIO; the overlay's image and
    // replica overrides name things that exist.
    let statefulsets: Vec<&str> = by_kind("StatefulSet").iter().map(|o| o.name()).collect();
    assert!(statefulsets.contains(&"yubin-redis") && statefulsets.contains(&"yubin-minio"));
    let redis = by_kind("StatefulSet")
        .into_iter()
        .find(|o| o.name() == "yubin-redis")
        .expect("redis");
    let redis_args =
        str_list(&redis.value["spec"]["template"]["spec"]["containers"][0]["args"]).join(" ");
    assert!(redis_args.contains("--appendonly yes") && redis_args.contains("--appendfsync always"));
    assert!(
        config_data["YUBIN_REDIS_URL"]
            .as_str()
            .is_some_and(|u| u.starts_with("redis://yubin-redis:")),
        "the example points meta at the test cluster's Redis"
    );
    for image in overlay["images"].as_array().cloned().unwrap_or_default() {
        assert!(
            deployments.iter().any(
                |d| d.value["spec"]["template"]["spec"]["containers"][0]["image"] == image["name"]
            ),
            "overlay image {} is used",
            image["name"]
        );
    }
    for replicas in overlay["replicas"].as_array().cloned().unwrap_or_default() {
        assert!(
            deployments.iter().any(|d| d.name() == replicas["name"]),
            "overlay replicas for unknown {}",
            replicas["name"]
        );
    }
    for patch in overlay["patches"].as_array().cloned().unwrap_or_default() {
        let target = &patch["target"];
        assert!(
            objects
                .iter()
                .any(|o| o.kind() == target["kind"] && o.name() == target["name"]),
            "overlay patch targets a missing {target}"
        );
    }
    assert!(
        problems.is_empty(),
        "k8s problems:\n{}",
        problems.join("\n")
    );
}

#[test]
fn kubernetes_manifests_pass_the_kubernetes_schemas() {
    // kubernetes-validate bundles the Kubernetes OpenAPI schemas, so this runs offline.
    let tool = schema_tool("kubernetes-validate");
    let (objects, _) = overlay_objects();
    let files: BTreeSet<PathBuf> = objects.iter().map(|o| repo_root().join(&o.file)).collect();
    assert!(files.len() >= 6, "{files:?}");
    let out = Command::new(tool)
        .args(["--strict", "--quiet"])
        .args(&files)
        .output()
        .expect("kubernetes-validate");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schema check failed:\n{report}");
    assert!(!report.contains("ERROR"), "{report}");
}

// ---------------------------------------------------------------------------------------------
// Metrics: the dashboard, the alert rules and the autoscaler against real scrapes
// ---------------------------------------------------------------------------------------------

fn dashboard() -> Value {
    serde_json::from_str(&read("infra/grafana/dashboards/yubin.json"))
        .expect("the dashboard is valid JSON")
}

/// Every panel, the panels nested in collapsed rows included.
fn all_panels(panels: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in panels.as_array().into_iter().flatten() {
        out.push(panel);
        out.extend(all_panels(&panel["panels"]));
    }
    out
}

/// (panel title, its PromQL queries) for every panel that queries.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, Vec<String>)> {
    all_panels(&dashboard["panels"])
        .into_iter()
        .filter(|p| p["type"] != "row")
        .map(|p| {
            let exprs = p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["expr"].as_str().map(str::to_string))
                .collect();
            (p["title"].as_str().unwrap_or_default().to_string(), exprs)
        })
        .collect()
}

/// The PromQL inside the dashboard's template variables: `label_values(<selector>, <label>)`.
fn variable_queries(dashboard: &Value) -> Vec<String> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let q = v["definition"].as_str().expect("variable definition");
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or_else(|| panic!("unexpected variable query {q}"));
            inner
                .rsplit_once(',')
                .map_or(inner, |(selector, _label)| selector)
                .to_string()
        })
        .collect()
}

fn alert_exprs() -> Vec<(String, String)> {
    let rules = yaml_doc("infra/prometheus/alerts.yml");
    rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .map(|r| {
            (
                r["alert"].as_str().unwrap_or_default().to_string(),
                r["expr"].as_str().expect("expr").to_string(),
            )
        })
        .collect()
}

/// PromQL words that are never metric names: aggregations, keywords and modifiers.
const PROMQL_WORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
    "inf",
    "nan",
];

/// Clauses whose parenthesised list holds label names, not expressions.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Skips from an opening bracket at `i` to just past its match, stepping over string literals.
fn skip_balanced(chars: &[char], mut i: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => i = skip_string(chars, i),
            c if c == open => {
                depth += 1;
                i += 1;
            }
            c if c == close => {
                depth -= 1;
                i += 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    panic!(
        "unbalanced {open}{close} in {}",
        chars.iter().collect::<String>()
    );
}

fn skip_string(chars: &[char], i: usize) -> usize {
    let quote = chars[i];
    let mut j = i + 1;
    while j < chars.len() && chars[j] != quote {
        if chars[j] == '\\' {
            j += 1;
        }
        j += 1;
    }
    j + 1
}

/// The metric names a PromQL expression selects: identifiers outside strings, label matchers
/// (`{…}`), ranges (`[…]`) and label lists (`by (…)`), that are neither functions (followed by
/// `(`) nor PromQL words.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '{' {
            i = skip_balanced(&chars, i, '{', '}');
        } else if c == '[' {
            i = skip_balanced(&chars, i, '[', ']');
        } else if c == '$' {
            // A Grafana variable ($job, $__rate_interval).
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c.is_ascii_digit() || c == '.' {
            // Numbers and durations (0.99, 5m, 1e3).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let lower = word.to_ascii_lowercase();
            if LABEL_LISTS.contains(&lower.as_str()) {
                if chars.get(next) == Some(&'(') {
                    i = skip_balanced(&chars, next, '(', ')');
                }
            } else if chars.get(next) == Some(&'(') || PROMQL_WORDS.contains(&lower.as_str()) {
                // A function call or an aggregation.
            } else {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_are_found_in_promql() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (command, le) (rate(yubin_imap_command_duration_seconds_bucket{job=~"$job", status!="}"}[$__rate_interval]))) / on (instance) group_left (version) yubin_build_info > bool 0.5"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "yubin_build_info",
            "yubin_imap_command_duration_seconds_bucket"
        ]
    );
    assert_eq!(
        metric_names("sum(up) without (job) or absent(x_total offset 5m)")
            .into_iter()
            .collect::<Vec<_>>(),
        ["up", "x_total"]
    );
}

/// Metrics Prometheus makes itself (not exported by the code) that alert rules may use.
const PROMETHEUS_MADE: &[&str] = &["up"];

/// Every metric name the deployment files rely on, with who relies on it.
fn metrics_in_use() -> BTreeMap<String, BTreeSet<String>> {
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let dashboard = dashboard();
    for (title, exprs) in dashboard_queries(&dashboard) {
        assert!(!exprs.is_empty(), "panel {title:?} has no query");
        for expr in exprs {
            for name in metric_names(&expr) {
                used.entry(name)
                    .or_default()
                    .insert(format!("panel {title:?}"));
            }
        }
    }
    for expr in variable_queries(&dashboard) {
        for name in metric_names(&expr) {
            used.entry(name)
                .or_default()
                .insert("dashboard variable".into());
        }
    }
    for (alert, expr) in alert_exprs() {
        for name in metric_names(&expr) {
            if !PROMETHEUS_MADE.contains(&name.as_str()) {
                used.entry(name)
                    .or_default()
                    .insert(format!("alert {alert}"));
            }
        }
    }
    for doc in yaml_docs("k8s/base/imap-hpa.yaml") {
        for metric in doc["spec"]["metrics"].as_array().into_iter().flatten() {
            if let Some(name) = metric["pods"]["metric"]["name"].as_str() {
                used.entry(name.to_string())
                    .or_default()
                    .insert("HorizontalPodAutoscaler yubin-imap".into());
            }
        }
    }
    used
}

/// One HTTP/1.0 GET (no chunked encoding in the answer); returns the status and the body.
async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::other("timed out"))??;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    Ok((status, body.to_string()))
}

/// The series names in a Prometheus text exposition.
async fn scrape(addr: SocketAddr) -> BTreeSet<String> {
    let (status, body) = http_get(addr, "/metrics").await.expect("GET /metrics");
    assert_eq!(status, 200, "/metrics on {addr}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_string())
        .collect()
}

/// Delivers `message` over LMTP (RFC 2033) to `recipients`; returns each recipient's reply
/// after DATA (or its RCPT reply when RCPT was refused).
async fn lmtp_deliver(addr: SocketAddr, recipients: &[&str], message: &[u8]) -> Vec<String> {
    let stream = TcpStream::connect(addr).await.expect("connect lmtp");
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    async fn reply(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(20), read.read_line(&mut line))
                .await
                .expect("lmtp reply in time")
                .expect("read lmtp");
            assert!(n > 0, "lmtp server closed the connection");
            // Multi-line replies continue with "250-" (RFC 5321 §4.2.1).
            if line.as_bytes().get(3) != Some(&b'-') {
                return line.trim_end().to_string();
            }
        }
    }
    let greeting = reply(&mut read).await;
    assert!(greeting.starts_with("220"), "{greeting}");
    write
        .write_all(b"LHLO deploy.test\r\n")
        .await
        .expect("write");
    assert!(reply(&mut read).await.starts_with("250"));
    write
        .write_all(b"MAIL FROM:<sender@example.org>\r\n")
        .await
        .expect("write");
    assert!(reply(&mut read).await.starts_with("250"));
    let mut answers = vec![String::new(); recipients.len()];
    let mut accepted = Vec::new();
    for (i, rcpt) in recipients.iter().enumerate() {
        write
            .write_all(format!("RCPT TO:<{rcpt}>\r\n").as_bytes())
            .await
            .expect("write");
        let r = reply(&mut read).await;
        if r.starts_with("250") {
            accepted.push(i);
        } else {
            answers[i] = r;
        }
    }
    if !accepted.is_empty() {
        write.write_all(b"DATA\r\n").await.expect("write");
        let r = reply(&mut read).await;
        assert!(r.starts_with("354"), "{r}");
        let mut data = Vec::new();
        for line in message.split_inclusive(|b| *b == b'\n') {
            if line.starts_with(b".") {
                data.push(b'.');
            }
            data.extend_from_slice(line);
        }
        data.extend_from_slice(b".\r\n");
        write.write_all(&data).await.expect("write");
        // One reply per accepted recipient (RFC 2033 §4.2).
        for i in accepted {
            answers[i] = reply(&mut read).await;
        }
    }
    write.write_all(b"QUIT\r\n").await.expect("write");
    answers
}

/// A mix of IMAP commands through `a` with an IDLE watcher on `b`: logins that fail and succeed,
/// SELECT, APPEND, FETCH (bodies too), SEARCH, STORE, a NO, a BAD, IDLE seeing an APPEND.
async fn imap_traffic(a: SocketAddr, b: SocketAddr, user: &str, password: &str) {
    let mut bad_login = Imap::connect(a).await;
    let r = bad_login
        .run(&format!("LOGIN {user} wrong-{password}"))
        .await;
    assert!(r.status.starts_with("NO"), "{r:?}");

    let mut client = Imap::login(a, user, password).await;
    client.ok("SELECT INBOX").await;
    let mut watcher = Imap::login(b, user, password).await;
    watcher.ok("SELECT INBOX").await;
    let idle = watcher.idle().await;
    for n in 0..3 {
        let r = client.append("INBOX", "", &sample_message(n)).await;
        assert!(r.is_ok(), "{r:?}");
    }
    watcher
        .wait_for("EXISTS", Duration::from_secs(10))
        .await
        .expect("the IDLE client sees the APPEND");
    assert!(watcher.done(&idle).await.is_ok());
    client.ok("NOOP").await;
    client
        .ok("FETCH 1:* (FLAGS ENVELOPE BODYSTRUCTURE RFC822.SIZE)")
        .await;
    client.ok("FETCH 1 BODY.PEEK[]").await;
    client.ok("SEARCH UNSEEN").await;
    client.ok("UID SEARCH SUBJECT report").await;
    client.ok("STORE 1 +FLAGS (\\Seen)").await;
    client.ok("STATUS INBOX (MESSAGES UNSEEN)").await;
    client.ok("LIST \"\" \"*\"").await;
    let r = client.run("FROBNICATE").await;
    assert!(r.status.starts_with("BAD"), "{r:?}");
    let r = client.run("SELECT no-such-mailbox").await;
    assert!(r.status.starts_with("NO"), "{r:?}");
    let _ = client.run("LOGOUT").await;
    let _ = watcher.run("LOGOUT").await;
}

/// One round of traffic on every role: IMAP on `yubin dev` and across the two front-ends,
/// LMTP deliveries (one known, one unknown recipient) where LMTP runs.
async fn traffic_round(
    dev: &YubinProcess,
    dev_has_lmtp: bool,
    nodes: &[YubinProcess],
    lmtp: Option<&YubinProcess>,
) {
    imap_traffic(dev.addr("imap"), dev.addr("imap"), "demo", "demo").await;
    imap_traffic(
        nodes[0].addr("imap"),
        nodes[1].addr("imap"),
        "alice",
        "alice-pw",
    )
    .await;
    let message = sample_message(42);
    let mut deliveries = Vec::new();
    if dev_has_lmtp {
        deliveries.push((dev.addr("lmtp"), "demo@example.com"));
    }
    if let Some(lmtp) = lmtp {
        deliveries.push((lmtp.addr("lmtp"), "alice@example.com"));
    }
    for (addr, known) in deliveries {
        let r = lmtp_deliver(addr, &[known, "nobody-here@example.com"], &message).await;
        assert!(r[0].starts_with("250"), "{r:?}");
        assert!(r[1].starts_with('5'), "unknown user refused: {r:?}");
    }
}

/// An LMTP session left open after LHLO (what the connections gauge counts).
async fn lmtp_open(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect lmtp");
    let mut greeting = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut greeting))
        .await
        .expect("greeting in time")
        .expect("read greeting");
    assert!(greeting[..n].starts_with(b"220"), "LMTP greeting");
    stream
        .write_all(b"LHLO deploy.test\r\n")
        .await
        .expect("write");
    stream
}

const BUCKET: &str = "yubin-deploy-test";

fn s3_env(s3: &TestS3Server) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL_S3", s3.endpoint.clone()),
        ("AWS_ACCESS_KEY_ID", s3.access_key.clone()),
        ("AWS_SECRET_ACCESS_KEY", s3.secret_key.clone()),
        ("AWS_REGION", "us-east-1".to_string()),
    ]
}

fn start_role(args: &[&str], env: &[(&'static str, String)], expect: &[&str]) -> YubinProcess {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    YubinProcess::start(args, &env, expect)
}

/// A real Prometheus server scraping the roles every second; killed on drop.
struct Prometheus {
    child: std::process::Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(jobs: &[(&str, Vec<SocketAddr>)]) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
        );
        for (job, targets) in jobs {
            let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ));
        }
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("write config");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus not found: install Debian's `prometheus` package (scripts/test.sh does)");
        let prometheus = Prometheus {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = http_get(addr, "/-/ready").await {
                break;
            }
            assert!(Instant::now() < deadline, "prometheus did not become ready");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        prometheus
    }

    /// Waits until Prometheus has scraped every one of `targets` successfully after this call
    /// began, so a counter moved before the call is in its data. A fixed sleep is not enough on
    /// a loaded runner: a scrape that times out (1 s) leaves a hole, and a rate over a series
    /// with one sample is 0.
    async fn scraped_after_now(&self, targets: &[SocketAddr]) {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        let deadline = Instant::now() + Duration::from_secs(60);
        for target in targets {
            loop {
                // `timestamp()` of a plain selector is the scrape's time (of any other
                // expression it is the evaluation time), so success is asked apart.
                let selector = format!("up{{instance=\"{target}\"}}");
                let value = |result: Vec<Value>| {
                    result
                        .first()
                        .and_then(|s| s["value"][1].as_str())
                        .and_then(|v| v.parse::<f64>().ok())
                };
                let last = value(self.query(&format!("timestamp({selector})")).await);
                if last.is_some_and(|t| t > since)
                    && value(self.query(&selector).await) == Some(1.0)
                {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "prometheus did not scrape {target} within 60 s"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// An instant query; returns the result vector.
    async fn query(&self, promql: &str) -> Vec<Value> {
        let encoded: String = promql
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let (status, body) = http_get(self.addr, &format!("/api/v1/query?query={encoded}"))
            .await
            .expect("query prometheus");
        let answer: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(status, 200, "query {promql}: {body}");
        assert_eq!(answer["status"], "success", "query {promql}: {body}");
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Grafana's variables replaced so a panel query runs as is against Prometheus.
fn as_prometheus_query(expr: &str) -> String {
    // The whole test fits in two minutes, so every rate sees all of its traffic.
    expr.replace("$__rate_interval", "2m")
        .replace("$job", ".*")
        .replace("$instance", ".*")
}

/// Runs every role (`yubin dev`; `yubin meta`, two `yubin imap` and `yubin lmtp` on a real
/// redis-server and S3 server), a real Prometheus scraping them, real IMAP and LMTP traffic,
/// a drain of one front-end and induced Redis and S3 failures. Then every metric the dashboard,
/// the alerts and the HPA use must be in a scrape, and every dashboard panel's query must
/// return data from Prometheus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_alerts_and_autoscaler_use_is_exported_after_real_traffic() {
    let used = metrics_in_use();
    assert!(
        used.len() >= 20,
        "the dashboard, alerts and HPA use the metrics of every part: {:?}",
        used.keys()
    );
    let mut problems = Vec::new();

    // --- yubin dev: every role in one process (LMTP too when the role serves it) ---------------
    let dev_dir = tempfile::tempdir().expect("tempdir");
    let dev_data = dev_dir.path().to_str().expect("utf-8").to_string();
    let dev_has_lmtp = role_help("dev").is_ok_and(|h| h.flags.contains("--lmtp-listen"));
    let mut dev_args = vec![
        "dev",
        "--data-dir",
        &dev_data,
        "--imap-listen",
        "127.0.0.1:0",
        "--imaps-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
    ];
    let mut dev_expect = vec!["imap", "http"];
    if dev_has_lmtp {
        dev_args.extend(["--lmtp-listen", "127.0.0.1:0"]);
        dev_expect.push("lmtp");
    }
    let dev = start_role(&dev_args, &[], &dev_expect);

    // --- the distributed stack -------------------------------------------------------------
    let redis = RedisServer::spawn_with_aof().expect("redis-server");
    let s3_dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(s3_dir.path().join(BUCKET)).expect("bucket dir");
    let s3 = spawn_s3s_fs(s3_dir.path()).await.expect("s3s-fs");
    let meta = start_role(
        &[
            "meta",
            "--redis-url",
            &redis.url(),
            "--grpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ],
        &[],
        &["grpc", "http"],
    );
    let meta_url = format!("http://{}", meta.addr("grpc"));
    let drain_flag = role_help("imap").is_ok_and(|h| h.flags.contains("--drain-seconds"));
    if !drain_flag {
        problems.push("`yubin imap` has no --drain-seconds flag (k8s and compose set it)".into());
    }
    let mut imap_args = vec![
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
    ];
    if drain_flag {
        imap_args.extend(["--drain-seconds", "4"]);
    }
    let nodes: Vec<YubinProcess> = (0..2)
        .map(|_| start_role(&imap_args, &s3_env(&s3), &["imap", "http"]))
        .collect();
    let lmtp = match role_help("lmtp") {
        Ok(_) => Some(start_role(
            &[
                "lmtp",
                "--meta-url",
                &meta_url,
                "--s3-bucket",
                BUCKET,
                "--lmtp-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ],
            &s3_env(&s3),
            &["lmtp", "http"],
        )),
        Err(e) => {
            problems.push(e);
            None
        }
    };
    yubin_user(
        meta.addr("http"),
        &["add", "alice", "--password", "alice-pw"],
    );

    let mut jobs = vec![
        ("yubin-dev", vec![dev.addr("http")]),
        ("yubin-meta", vec![meta.addr("http")]),
        ("yubin-imap", nodes.iter().map(|n| n.addr("http")).collect()),
    ];
    if let Some(lmtp) = &lmtp {
        jobs.push(("yubin-lmtp", vec![lmtp.addr("http")]));
    }
    let prometheus = Prometheus::start(&jobs).await;
    let all_targets: Vec<SocketAddr> = jobs.iter().flat_map(|(_, t)| t.clone()).collect();
    // Let the first scrape of every target land before the traffic, so rates have a base.
    prometheus.scraped_after_now(&all_targets).await;

    // --- traffic ---------------------------------------------------------------------------
    // Gauges show what is open: one IDLE client per front-end, connected before the traffic so
    // that the node already watches its user and every change reaches it as a timed hint.
    let mut holders = Vec::new();
    for (addr, user, password) in [
        (dev.addr("imap"), "demo", "demo"),
        (nodes[0].addr("imap"), "alice", "alice-pw"),
    ] {
        let mut idler = Imap::login(addr, user, password).await;
        idler.ok("SELECT INBOX").await;
        let tag = idler.idle().await;
        holders.push((idler, tag));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Two rounds: the first creates every series, the second moves them while Prometheus
    // watches, so rates and quantiles have real values.
    for round in 0..2 {
        traffic_round(&dev, dev_has_lmtp, &nodes, lmtp.as_ref()).await;
        if round == 0 {
            // Every series the first round created is in Prometheus before the second moves it.
            prometheus.scraped_after_now(&all_targets).await;
        }
    }
    let mut lmtp_sessions = Vec::new();
    if dev_has_lmtp {
        lmtp_sessions.push(lmtp_open(dev.addr("lmtp")).await);
    }
    if let Some(lmtp) = &lmtp {
        lmtp_sessions.push(lmtp_open(lmtp.addr("lmtp")).await);
    }

    // Failures, each twice with Prometheus scrapes in between, so the error counters move
    // while it watches. S3: the S3 server goes away, so a body FETCH makes failing GETs (a
    // missing key would be an answer, not an S3 failure). Redis: redis-server goes away, so
    // meta's calls fail.
    // The message FETCHed is one node 0 never read or wrote, so its body cache cannot answer
    // for S3.
    let mut writer = Imap::login(nodes[1].addr("imap"), "alice", "alice-pw").await;
    let appended = writer.append("INBOX", "", &sample_message(77)).await;
    assert!(appended.is_ok(), "{appended:?}");
    let _ = writer.run("LOGOUT").await;
    let mut reader = Imap::login(nodes[0].addr("imap"), "alice", "alice-pw").await;
    reader.ok("SELECT INBOX").await;
    let mut late = Imap::login(nodes[0].addr("imap"), "alice", "alice-pw").await;
    drop(s3);
    for attempt in 0..2 {
        let r = reader.run("FETCH * BODY.PEEK[]").await;
        assert!(
            !r.is_ok(),
            "a body missing from S3 cannot be fetched: {r:?}"
        );
        if attempt == 0 {
            prometheus.scraped_after_now(&[nodes[0].addr("http")]).await;
        }
    }
    let _ = reader.run("LOGOUT").await;

    // A drain: node 1 gets SIGTERM with IDLE clients connected; it sends their BYEs in batches
    // over its drain window, and its HTTP port is scraped meanwhile.
    let mut idlers = Vec::new();
    for _ in 0..4 {
        let mut idler = Imap::login(nodes[1].addr("imap"), "alice", "alice-pw").await;
        idler.ok("SELECT INBOX").await;
        let tag = idler.idle().await;
        idlers.push((idler, tag));
    }
    let mut nodes = nodes;
    let draining = nodes.pop().expect("node 1");
    let draining_http = draining.addr("http");
    let stopper = std::thread::spawn(move || draining.stop());
    let mut scraped = BTreeSet::new();
    for (n, (idler, _)) in idlers.iter_mut().enumerate() {
        let bye = idler.wait_for("BYE", Duration::from_secs(10)).await;
        assert!(
            bye.is_some(),
            "IDLE client {n} on the draining node gets a BYE"
        );
        if n == 0 {
            match http_get(draining_http, "/metrics").await {
                Ok((200, body)) => scraped.extend(
                    body.lines()
                        .filter(|l| !l.starts_with('#'))
                        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_string)),
                ),
                other => problems.push(format!(
                    "a draining front-end stops serving /metrics (got {other:?}): its \
                     shutdown BYEs are never scraped"
                )),
            }
        }
    }

    drop(redis);
    for attempt in 0..2 {
        let r = late.run("SELECT INBOX").await;
        assert!(!r.is_ok(), "SELECT without Redis fails: {r:?}");
        if attempt == 0 {
            prometheus.scraped_after_now(&[meta.addr("http")]).await;
        }
    }
    // --- every metric in use exists in a scrape ---------------------------------------------
    let mut targets = vec![dev.addr("http"), meta.addr("http"), nodes[0].addr("http")];
    if let Some(lmtp) = &lmtp {
        targets.push(lmtp.addr("http"));
    }
    // Rates need a scrape of every live target after the last change (the drained node is
    // gone; its last scrapes came while it drained).
    prometheus.scraped_after_now(&targets).await;
    for target in targets {
        scraped.extend(scrape(target).await);
    }
    for (metric, users) in &used {
        if !metric.starts_with("yubin_") {
            problems.push(format!(
                "{metric} (used by {users:?}) is not a Yubin metric"
            ));
        } else if !scraped.contains(metric) {
            problems.push(format!(
                "{metric} is used by {users:?} but no role exports it"
            ));
        }
    }

    // --- every dashboard panel has data in Prometheus ---------------------------------------
    for (title, exprs) in dashboard_queries(&dashboard()) {
        for expr in exprs {
            let query = as_prometheus_query(&expr);
            let result = prometheus.query(&query).await;
            // A panel has data when some series has a real, non-zero value (NaN is what
            // histogram_quantile gives for buckets that did not move).
            let shown = result.iter().find(|sample| {
                sample["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .is_some_and(|v| v.is_finite() && v != 0.0)
            });
            match shown {
                Some(sample) => println!(
                    "panel {title:?}: {query}\n    {} series, e.g. {} = {}",
                    result.len(),
                    sample["metric"],
                    sample["value"][1]
                ),
                None => problems.push(format!(
                    "panel {title:?} shows no data: {query}\n    got {}",
                    Value::Array(result.clone())
                )),
            }
        }
    }
    drop(holders);
    drop(lmtp_sessions);
    let status = stopper.join().expect("stopper");
    assert!(status.success(), "a drained node exits 0: {status:?}");
    assert!(problems.is_empty(), "problems:\n{}", problems.join("\n"));
}

/// Labels Prometheus adds itself (targets, histogram buckets), not the code.
const PROMETHEUS_LABELS: &[&str] = &["job", "instance", "le", "__name__"];

/// Every `.rs` file under services/*/src, concatenated: what the code can emit.
fn service_sources() -> String {
    fn walk(dir: &Path, out: &mut String) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == "tests") {
                    continue;
                }
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    let mut out = String::new();
    walk(&repo_root().join("services"), &mut out);
    out
}

/// The label matchers (`name op value`) and grouping labels (`by (…)`) of a PromQL expression.
fn labels_used(expr: &str) -> (Vec<(String, String, String)>, BTreeSet<String>) {
    let chars: Vec<char> = expr.chars().collect();
    let mut matchers = Vec::new();
    let mut grouping = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '"' || chars[i] == '\'' || chars[i] == '`' {
            i = skip_string(&chars, i);
        } else if chars[i] == '{' {
            let end = skip_balanced(&chars, i, '{', '}');
            let inner: String = chars[i + 1..end - 1].iter().collect();
            // Matchers are `name op "value"` separated by commas outside the quotes.
            let mut rest = inner.as_str();
            while let Some(q) = rest.find('"') {
                let head = rest[..q].trim().trim_start_matches(',').trim();
                let op_at = head
                    .find(['=', '!'])
                    .unwrap_or_else(|| panic!("matcher without operator in {expr}"));
                let name = head[..op_at].trim().to_string();
                let op = head[op_at..].trim().to_string();
                let after = &rest[q + 1..];
                let close = after.find('"').expect("closing quote");
                matchers.push((name, op, after[..close].to_string()));
                rest = &after[close + 1..];
            }
            i = end;
        } else if chars[i].is_ascii_alphabetic() || chars[i] == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if LABEL_LISTS.contains(&word.as_str()) {
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                if chars.get(next) == Some(&'(') {
                    let end = skip_balanced(&chars, next, '(', ')');
                    let list: String = chars[next + 1..end - 1].iter().collect();
                    grouping.extend(
                        list.split(',')
                            .map(|l| l.trim().to_string())
                            .filter(|l| !l.is_empty()),
                    );
                    i = end;
                }
            }
        } else {
            i += 1;
        }
    }
    (matchers, grouping)
}

/// A label name or value the dashboard or an alert filters on must be one the code emits,
/// or the panel or alert silently never matches (a `result="failed"` for "failure", say).
/// Values that only appear on rare events (throttling, temporary delivery failures) cannot be
/// produced on demand by the traffic test, so they are checked against the code's label literals.
#[test]
fn dashboard_and_alert_labels_are_ones_the_code_emits() {
    let sources = service_sources();
    let mut exprs: Vec<(String, String)> = dashboard_queries(&dashboard())
        .into_iter()
        .flat_map(|(title, exprs)| {
            exprs
                .into_iter()
                .map(move |e| (format!("panel {title:?}"), e))
        })
        .collect();
    exprs.extend(
        alert_exprs()
            .into_iter()
            .map(|(alert, e)| (format!("alert {alert}"), e)),
    );
    let mut problems = Vec::new();
    let mut checked = 0;
    for (who, expr) in &exprs {
        let (matchers, grouping) = labels_used(expr);
        let names = matchers
            .iter()
            .map(|(n, _, _)| n.clone())
            .chain(grouping.iter().cloned());
        for name in names {
            if PROMETHEUS_LABELS.contains(&name.as_str()) {
                continue;
            }
            checked += 1;
            if !sources.contains(&format!("\"{name}\" =>")) {
                problems.push(format!("{who}: no metric of the code has a label {name}"));
            }
        }
        for (name, op, value) in matchers {
            if PROMETHEUS_LABELS.contains(&name.as_str()) || value.starts_with('$') {
                continue;
            }
            let literals: Vec<&str> = if op.contains('~') {
                value.split('|').collect()
            } else {
                vec![value.as_str()]
            };
            for literal in literals {
                assert!(
                    literal
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'),
                    "{who}: matcher {name}{op}\"{value}\" should list plain values"
                );
                checked += 1;
                if !sources.contains(&format!("\"{literal}\"")) {
                    problems.push(format!(
                        "{who}: {name}{op}\"{value}\": the code never emits {name}=\"{literal}\""
                    ));
                }
            }
        }
    }
    assert!(checked >= 30, "labels were found in the queries: {checked}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
