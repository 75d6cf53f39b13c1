//! Who may reach what in the deployment files (issue 9 item 3): every role of the compose stack
//! and of the Kubernetes manifests holds the shared gRPC secret as a mounted file, LMTP names
//! the networks it answers, and NetworkPolicies let only the front-ends and LMTP reach meta's
//! gRPC port, only the MTA reach LMTP, only meta reach Redis and only the roles reach MinIO.

use super::*;

/// The roles that speak gRPC: meta demands the secret, the others present it.
const GRPC_ROLES: [&str; 3] = ["meta", "imap", "lmtp"];

#[test]
fn compose_roles_share_the_grpc_secret_and_lmtp_answers_only_the_stack() {
    let compose = yaml_doc(COMPOSE);
    let services = compose["services"].as_object().expect("services");
    let secret = &compose["secrets"]["grpc-secret"];
    let file = secret["file"].as_str().expect("grpc-secret is a file");
    let text = read(&format!("infra/{}", file.trim_start_matches("./")));
    assert!(
        text.trim().len() >= 32,
        "the dev secret is long enough to start the roles"
    );
    let mut seen = BTreeSet::new();
    for (name, service) in services {
        let args = compose_command(service);
        let Some(role) = args.first().filter(|r| GRPC_ROLES.contains(&r.as_str())) else {
            continue;
        };
        seen.insert(role.clone());
        assert!(
            str_list(&service["secrets"]).contains(&"grpc-secret".to_string()),
            "{name} mounts the grpc-secret"
        );
        assert_eq!(
            service["environment"]["YUBIN_GRPC_SECRET_FILE"], "/run/secrets/grpc-secret",
            "{name} reads the mounted secret"
        );
        assert!(
            !args.iter().any(|a| a == "--grpc-insecure"),
            "{name} runs the gRPC link without its secret"
        );
    }
    assert_eq!(seen.len(), GRPC_ROLES.len(), "{seen:?}");

    // LMTP answers only the stack's own network (containers, and the host through the
    // published port), which compose pins so that the flag can name it.
    let lmtp = compose_command(&services["lmtp"]);
    let allow = flag_value(&lmtp, "--lmtp-allow").expect("lmtp names its clients");
    let subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
        .as_str()
        .expect("a fixed subnet for the stack");
    assert_eq!(allow, subnet, "lmtp answers exactly the stack's network");
}

/// The pods a NetworkPolicy peer admits, as the workloads of this deployment it matches; a
/// peer by address block or a namespace-only peer admits strangers and is reported.
fn admitted(peer: &Value, workloads: &[&Object]) -> Result<Vec<String>, String> {
    if peer.get("ipBlock").is_some() {
        return Err(format!(
            "an ipBlock peer admits anything in {}",
            peer["ipBlock"]
        ));
    }
    let Some(selector) = peer.get("podSelector") else {
        return Err(format!(
            "a peer without podSelector admits whole namespaces: {peer}"
        ));
    };
    Ok(workloads
        .iter()
        .filter(|w| {
            labels_match(
                &selector["matchLabels"],
                &w.value["spec"]["template"]["metadata"]["labels"],
            )
        })
        .map(|w| w.name().to_string())
        .collect())
}

/// Who a policy admits on one named port: `None` when some rule admits everyone to it.
fn admitted_on_port(
    policy: &Object,
    port: &str,
    workloads: &[&Object],
    problems: &mut Vec<String>,
) -> Option<BTreeSet<String>> {
    let mut who = BTreeSet::new();
    for rule in policy.value["spec"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let ports = rule["ports"].as_array().cloned().unwrap_or_default();
        if !ports.is_empty() && !ports.iter().any(|p| p["port"] == port) {
            continue;
        }
        // A rule without `from` admits every source.
        for peer in rule["from"].as_array()? {
            match admitted(peer, workloads) {
                Ok(names) => who.extend(names),
                Err(e) => problems.push(format!("NetworkPolicy {}: {e}", policy.name())),
            }
        }
    }
    Some(who)
}

#[test]
fn kubernetes_roles_share_the_grpc_secret_and_network_policies_guard_every_port() {
    let (objects, overlay) = overlay_objects();
    let mut problems = Vec::new();
    let workloads: Vec<&Object> = objects
        .iter()
        .filter(|o| ["Deployment", "StatefulSet", "Job"].contains(&o.kind()))
        .collect();
    let generated: BTreeMap<String, BTreeSet<String>> = overlay["secretGenerator"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| {
            let keys = str_list(&g["literals"])
                .iter()
                .map(|l| l.split('=').next().unwrap_or_default().to_string())
                .collect();
            (g["name"].as_str().unwrap_or_default().to_string(), keys)
        })
        .collect();

    // Every yubin role reads the secret from a file mounted from a Secret key that exists.
    for deployment in objects.iter().filter(|o| o.kind() == "Deployment") {
        let what = format!("Deployment {}", deployment.name());
        let spec = &deployment.value["spec"]["template"]["spec"];
        let container = &spec["containers"][0];
        let args = str_list(&container["args"]);
        if !args
            .first()
            .is_some_and(|r| GRPC_ROLES.contains(&r.as_str()))
        {
            continue;
        }
        if args.iter().any(|a| a == "--grpc-insecure") {
            problems.push(format!("{what}: runs the gRPC link without its secret"));
        }
        let Some(path) = container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == "YUBIN_GRPC_SECRET_FILE")
            .and_then(|e| e["value"].as_str())
        else {
            problems.push(format!("{what}: YUBIN_GRPC_SECRET_FILE is not set"));
            continue;
        };
        let Some(mount) = container["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| {
                m["mountPath"]
                    .as_str()
                    .is_some_and(|dir| path.starts_with(&format!("{dir}/")))
            })
        else {
            problems.push(format!("{what}: nothing is mounted at {path}"));
            continue;
        };
        let file = &path[mount["mountPath"].as_str().unwrap_or_default().len() + 1..];
        let volume = spec["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == mount["name"]);
        let secret = volume.map(|v| &v["secret"]);
        let secret_name = secret.and_then(|s| s["secretName"].as_str());
        let key = secret.and_then(|s| {
            s["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|i| i["path"] == file)
                .and_then(|i| i["key"].as_str())
        });
        match (secret_name, key) {
            (Some(name), Some(key)) if generated.get(name).is_some_and(|k| k.contains(key)) => {}
            _ => problems.push(format!(
                "{what}: {path} is not a key of a Secret the overlay provides \
                 ({secret_name:?}, {key:?})"
            )),
        }
    }

    // The policies: who reaches which port of which workload.
    let policies: Vec<&Object> = objects
        .iter()
        .filter(|o| o.kind() == "NetworkPolicy")
        .collect();
    let guarding = |workload: &str| -> Vec<&Object> {
        let target = workloads
            .iter()
            .find(|w| w.name() == workload)
            .unwrap_or_else(|| panic!("workload {workload}"));
        policies
            .iter()
            .copied()
            .filter(|p| {
                str_list(&p.value["spec"]["policyTypes"]).contains(&"Ingress".to_string())
                    && labels_match(
                        &p.value["spec"]["podSelector"]["matchLabels"],
                        &target.value["spec"]["template"]["metadata"]["labels"],
                    )
            })
            .collect()
    };
    for policy in &policies {
        let selects_something = workloads.iter().any(|w| {
            labels_match(
                &policy.value["spec"]["podSelector"]["matchLabels"],
                &w.value["spec"]["template"]["metadata"]["labels"],
            )
        });
        if !selects_something {
            problems.push(format!(
                "NetworkPolicy {} selects no workload",
                policy.name()
            ));
        }
    }
    let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    for (workload, port, expected) in [
        ("yubin-meta", "grpc", set(&["yubin-imap", "yubin-lmtp"])),
        ("yubin-redis", "redis", set(&["yubin-meta"])),
        (
            "yubin-minio",
            "s3",
            set(&[
                "yubin-imap",
                "yubin-lmtp",
                "yubin-meta",
                "yubin-minio-create-bucket",
            ]),
        ),
    ] {
        let guards = guarding(workload);
        if guards.is_empty() {
            problems.push(format!("no NetworkPolicy guards {workload}"));
        }
        // Policies add up: the pods admitted are the union over every policy selecting it.
        let mut who = BTreeSet::new();
        for policy in guards {
            match admitted_on_port(policy, port, &workloads, &mut problems) {
                Some(names) => who.extend(names),
                None => problems.push(format!(
                    "NetworkPolicy {} admits everyone to {workload}'s {port} port",
                    policy.name()
                )),
            }
        }
        if who != expected {
            problems.push(format!(
                "{workload}'s {port} port admits {who:?}, expected {expected:?}"
            ));
        }
    }

    // LMTP: only pods carrying the documented MTA label, whatever their namespace.
    let operations = read("docs/operations.md");
    let lmtp_guards = guarding("yubin-lmtp");
    if lmtp_guards.is_empty() {
        problems.push("no NetworkPolicy guards yubin-lmtp".into());
    }
    for policy in lmtp_guards {
        for rule in policy.value["spec"]["ingress"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let ports = rule["ports"].as_array().cloned().unwrap_or_default();
            if !ports.is_empty() && !ports.iter().any(|p| p["port"] == "lmtp") {
                continue;
            }
            let peers = rule["from"].as_array().cloned().unwrap_or_default();
            if peers.is_empty() {
                problems.push(format!(
                    "NetworkPolicy {} admits everyone to LMTP",
                    policy.name()
                ));
            }
            for peer in peers {
                let labels = peer["podSelector"]["matchLabels"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                if labels.get("yubin/lmtp-client").and_then(Value::as_str) != Some("true") {
                    problems.push(format!(
                        "NetworkPolicy {}: LMTP peer {peer} is not the MTA label",
                        policy.name()
                    ));
                }
            }
        }
    }
    if !operations.contains("yubin/lmtp-client") {
        problems.push("docs/operations.md does not document the MTA label".into());
    }
    // LMTP on a pod network must name that network, or it refuses the MTA (default loopback).
    let config = objects
        .iter()
        .find(|o| o.kind() == "ConfigMap" && o.name() == "yubin-config")
        .expect("yubin-config");
    if config.value["data"]["YUBIN_LMTP_ALLOW"].as_str().is_none() {
        problems.push("yubin-config has no YUBIN_LMTP_ALLOW".into());
    }
    assert!(
        problems.is_empty(),
        "access problems:\n{}",
        problems.join("\n")
    );
}
