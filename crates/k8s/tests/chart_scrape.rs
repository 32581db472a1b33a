#![cfg(feature = "prometheus-tests")]
//! Each way the chart offers to be scraped gives exactly one series per agent in a real
//! Prometheus (Debian's `prometheus`): a second scrape of the same agent under another `job`
//! doubles every cost that OpenCost or Kubecost computes with `sum(increase(...))`.
//!
//! No API server runs here, so `kubernetes_sd_configs` cannot discover anything. Each scenario
//! renders the chart, places its DaemonSet's pods on three nodes (hostNetwork: the pod IP is the
//! node's, 127.0.0.2 to 127.0.0.4), derives the Service's endpoints, and writes for every
//! `kubernetes_sd_configs` entry of the Prometheus config a `file_sd` file holding the targets and
//! `__meta_kubernetes_*` labels that Prometheus' Kubernetes discovery would produce for that role
//! (pod, endpoints, endpointslice; the label names and the targets per port follow
//! prometheus/prometheus discovery/kubernetes/{pod,endpoints,endpointslice}.go), honouring its
//! `namespaces` and `selectors` as the API server would. The relabelling stays Prometheus' own,
//! with the scrape jobs copied verbatim from the community chart and from Kubecost's bundled
//! Prometheus (`tests/scrape/*.yaml`, sources in their headers), and for the Prometheus Operator
//! the job it generates for each rendered ServiceMonitor or PodMonitor.
//!
//! Each agent is a small HTTP server on its node's address and the chart's port, serving one
//! `kubecost_pod_network_egress_bytes_total` series worth 1000 bytes. Every scenario asserts how
//! many series Prometheus holds per job and per agent, and the sum; the negative controls (the
//! pods annotated as well as the Service, as the chart did before; a ServiceMonitor and a
//! PodMonitor together, which the chart now refuses to render; prometheusScrape under Kubecost's
//! bundled Prometheus, whose kubecost-networking job already scrapes the pods) show the doubling
//! the test exists to catch.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use support::chart::{documents, kubecost_carried_over, merge, read, render_with, yaml};

/// Labels of one discovered target, `__address__` included.
type Labels = BTreeMap<String, String>;

const BYTES_PER_AGENT: f64 = 1000.0;

/// The nodes, one agent each: (name, address).
fn nodes() -> Vec<(String, Ipv4Addr)> {
    (0..3u8)
        .map(|i| (format!("node-{i}"), Ipv4Addr::new(127, 0, 0, 2 + i)))
        .collect()
}

/// What agent `i` serves: one series, for a pod of its own node.
fn exposition(i: usize) -> String {
    format!(
        "# HELP kubecost_pod_network_egress_bytes_total Bytes sent by the pod.\n\
         # TYPE kubecost_pod_network_egress_bytes_total counter\n\
         kubecost_pod_network_egress_bytes_total{{pod_name=\"web-{i}\",namespace=\"shop\",uid=\"u-{i}\",internet=\"false\",same_zone=\"false\",same_region=\"true\",service=\"\"}} {BYTES_PER_AGENT}\n"
    )
}

/// Starts one agent per node on the same port (as hostNetwork pods of one DaemonSet are), and
/// returns the port.
fn start_agents() -> u16 {
    let addresses: Vec<Ipv4Addr> = nodes().into_iter().map(|(_, a)| a).collect();
    for _ in 0..20 {
        let first = TcpListener::bind((addresses[0], 0)).unwrap_or_else(|e| panic!("bind: {e}"));
        let port = first.local_addr().map(|a| a.port()).unwrap_or(0);
        let rest: Result<Vec<TcpListener>, _> = addresses[1..]
            .iter()
            .map(|a| TcpListener::bind((*a, port)))
            .collect();
        let Ok(rest) = rest else { continue };
        for (i, listener) in std::iter::once(first).chain(rest).enumerate() {
            let body = exposition(i);
            std::thread::spawn(move || serve(listener, &body));
        }
        return port;
    }
    panic!("no port free on all of {addresses:?}");
}

fn serve(listener: TcpListener, body: &str) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}

/// The objects a scenario's cluster holds: the rendered ones and what the controllers make.
#[derive(Default)]
struct Cluster {
    pods: Vec<Value>,
    services: Vec<Value>,
    service_monitors: Vec<Value>,
    pod_monitors: Vec<Value>,
}

fn map(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn text<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {v}"))
}

/// The DaemonSet's pods, one per node, as its controller creates them.
fn daemon_set_pods(ds: &Value) -> Vec<Value> {
    let template = &ds["spec"]["template"];
    assert_eq!(
        template["spec"]["hostNetwork"], true,
        "the agents are placed on node addresses"
    );
    let name = text(&ds["metadata"]["name"], "DaemonSet name");
    let mut labels = map(&template["metadata"]["labels"]);
    labels.insert("controller-revision-hash".into(), json!("7c9d6b5f4"));
    labels.insert("pod-template-generation".into(), json!("1"));
    nodes()
        .into_iter()
        .enumerate()
        .map(|(i, (node, ip))| {
            json!({
                "metadata": {
                    "name": format!("{name}-{}", ["x7k2q", "m4p9z", "b8w3d"][i]),
                    "namespace": ds["metadata"]["namespace"],
                    "uid": format!("uid-agent-{i}"),
                    "labels": labels,
                    "annotations": template["metadata"]["annotations"],
                    "ownerReferences": [{"kind": "DaemonSet", "name": name, "controller": true}],
                },
                "spec": {"nodeName": node, "containers": template["spec"]["containers"]},
                "status": {
                    "phase": "Running",
                    "podIP": ip.to_string(),
                    "hostIP": ip.to_string(),
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            })
        })
        .collect()
}

/// The objects of one or more renderings of the chart (the second adding only its monitors).
fn cluster(renderings: &[String]) -> Cluster {
    let mut c = Cluster::default();
    for (n, rendering) in renderings.iter().enumerate() {
        for doc in documents(rendering) {
            match doc["kind"].as_str().unwrap_or_default() {
                "DaemonSet" if n == 0 => c.pods.extend(daemon_set_pods(&doc)),
                "Service" if n == 0 => c.services.push(doc),
                "ServiceMonitor" => c.service_monitors.push(doc),
                "PodMonitor" => c.pod_monitors.push(doc),
                _ => {}
            }
        }
    }
    c
}

/// Prometheus' `strutil.SanitizeLabelName`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// `addObjectMetaLabels`: the object's name, labels and annotations under `role`.
fn object_meta_labels(meta: &Value, role: &str, out: &mut Labels) {
    let prefix = format!("__meta_kubernetes_{role}_");
    out.insert(
        format!("{prefix}name"),
        text(&meta["name"], "name").to_owned(),
    );
    for (kind, field) in [("label", "labels"), ("annotation", "annotations")] {
        for (k, v) in map(&meta[field]) {
            let k = sanitize(&k);
            out.insert(format!("{prefix}{kind}_{k}"), text(&v, field).to_owned());
            out.insert(format!("{prefix}{kind}present_{k}"), "true".into());
        }
    }
}

/// `podLabels`.
fn pod_labels(pod: &Value) -> Labels {
    let mut l = Labels::new();
    let meta = &pod["metadata"];
    let status = &pod["status"];
    for (label, v) in [
        ("pod_name", &meta["name"]),
        ("pod_ip", &status["podIP"]),
        ("pod_phase", &status["phase"]),
        ("pod_node_name", &pod["spec"]["nodeName"]),
        ("pod_host_ip", &status["hostIP"]),
        ("pod_uid", &meta["uid"]),
    ] {
        l.insert(
            format!("__meta_kubernetes_{label}"),
            text(v, label).to_owned(),
        );
    }
    let ready = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .map(|c| text(&c["status"], "status").to_lowercase());
    l.insert(
        "__meta_kubernetes_pod_ready".into(),
        ready.unwrap_or_else(|| "unknown".into()),
    );
    if let Some(owner) = meta["ownerReferences"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["controller"] == true))
    {
        l.insert(
            "__meta_kubernetes_pod_controller_kind".into(),
            text(&owner["kind"], "kind").to_owned(),
        );
        l.insert(
            "__meta_kubernetes_pod_controller_name".into(),
            text(&owner["name"], "name").to_owned(),
        );
    }
    for (kind, field) in [("label", "labels"), ("annotation", "annotations")] {
        for (k, v) in map(&meta[field]) {
            let k = sanitize(&k);
            l.insert(
                format!("__meta_kubernetes_pod_{kind}_{k}"),
                text(&v, field).to_owned(),
            );
            l.insert(
                format!("__meta_kubernetes_pod_{kind}present_{k}"),
                "true".into(),
            );
        }
    }
    l
}

/// A container port's labels, as the pod role (and the endpoint roles, for a matching port) add.
fn container_port_labels(container: &Value, port: &Value, with_image: bool) -> Labels {
    let mut l = Labels::new();
    let name = |k: &str| format!("__meta_kubernetes_pod_container_{k}");
    l.insert(name("name"), text(&container["name"], "name").to_owned());
    if with_image {
        l.insert(name("image"), text(&container["image"], "image").to_owned());
    }
    l.insert(
        name("port_name"),
        port["name"].as_str().unwrap_or_default().to_owned(),
    );
    l.insert(name("port_number"), port["containerPort"].to_string());
    l.insert(
        name("port_protocol"),
        port["protocol"].as_str().unwrap_or("TCP").to_owned(),
    );
    l
}

fn containers(pod: &Value) -> Vec<Value> {
    pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn ports(container: &Value) -> Vec<Value> {
    container["ports"].as_array().cloned().unwrap_or_default()
}

/// An equality-based label selector (`a=b,c=d`) against an object's labels.
fn selects(selector: &str, labels: &Value) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v) = term
            .split_once('=')
            .unwrap_or_else(|| panic!("only k=v selectors are emulated: {term:?}"));
        assert!(
            !k.ends_with('!'),
            "only k=v selectors are emulated: {term:?}"
        );
        labels[k].as_str() == Some(v)
    })
}

/// One endpoint of a Service: a ready pod it selects, on one of its ports.
struct Endpoint<'a> {
    pod: &'a Value,
    port_name: String,
    port: u64,
    protocol: String,
}

/// The Service's endpoints, as the endpoints (and EndpointSlice) controller derives them.
fn endpoints<'a>(svc: &Value, pods: &'a [Value]) -> Vec<Endpoint<'a>> {
    let selector = map(&svc["spec"]["selector"]);
    let mut out = Vec::new();
    if selector.is_empty() {
        return out;
    }
    let members = pods.iter().filter(|p| {
        p["metadata"]["namespace"] == svc["metadata"]["namespace"]
            && selector
                .iter()
                .all(|(k, v)| p["metadata"]["labels"][k] == *v)
    });
    for pod in members {
        for sp in svc["spec"]["ports"].as_array().cloned().unwrap_or_default() {
            let target = match &sp["targetPort"] {
                Value::String(name) => containers(pod)
                    .iter()
                    .flat_map(ports)
                    .find(|p| p["name"] == name.as_str())
                    .and_then(|p| p["containerPort"].as_u64()),
                Value::Number(n) => n.as_u64(),
                _ => sp["port"].as_u64(),
            };
            let Some(port) = target else { continue };
            out.push(Endpoint {
                pod,
                port_name: sp["name"].as_str().unwrap_or_default().to_owned(),
                port,
                protocol: sp["protocol"].as_str().unwrap_or("TCP").to_owned(),
            });
        }
    }
    out
}

/// The labels that Kubernetes' endpoints and EndpointSlice controllers give the objects they
/// derive from a Service: the Service's own, plus a marker for headless Services.
fn derived_labels(svc: &Value) -> Value {
    let mut labels = map(&svc["metadata"]["labels"]);
    if svc["spec"]["clusterIP"] == "None" {
        labels.insert("service.kubernetes.io/headless".into(), json!(""));
    }
    Value::Object(labels)
}

/// One `kubernetes_sd_configs` entry's targets in this cluster.
fn discover(sd: &Value, c: &Cluster) -> Vec<Labels> {
    let role = text(&sd["role"], "role");
    let namespaces: Option<Vec<Value>> = sd["namespaces"]["names"].as_array().cloned();
    let in_namespace = |meta: &Value| {
        namespaces
            .as_ref()
            .is_none_or(|n| n.contains(&meta["namespace"]))
    };
    let selector = |of: &str| -> String {
        let mut s = String::new();
        for sel in sd["selectors"].as_array().cloned().unwrap_or_default() {
            assert!(sel["field"].is_null(), "field selectors are not emulated");
            if sel["role"] == of {
                s = text(&sel["label"], "label").to_owned();
            }
        }
        s
    };
    let mut out = Vec::new();
    match role {
        "pod" => {
            let sel = selector("pod");
            for pod in &c.pods {
                let meta = &pod["metadata"];
                if !in_namespace(meta) || !selects(&sel, &meta["labels"]) {
                    continue;
                }
                let mut group = pod_labels(pod);
                group.insert(
                    "__meta_kubernetes_namespace".into(),
                    text(&meta["namespace"], "namespace").to_owned(),
                );
                let ip = text(&pod["status"]["podIP"], "podIP");
                for container in containers(pod) {
                    for port in ports(&container) {
                        let mut t = group.clone();
                        t.extend(container_port_labels(&container, &port, false));
                        t.insert(
                            "__address__".into(),
                            format!("{ip}:{}", port["containerPort"]),
                        );
                        out.push(t);
                    }
                }
            }
        }
        "endpoints" | "endpointslice" => {
            let slice = role == "endpointslice";
            let (own_sel, svc_sel, pod_sel) =
                (selector(role), selector("service"), selector("pod"));
            for svc in &c.services {
                let meta = &svc["metadata"];
                let labels = derived_labels(svc);
                if !in_namespace(meta) || !selects(&own_sel, &labels) {
                    continue;
                }
                let namespace = text(&meta["namespace"], "namespace");
                let name = text(&meta["name"], "name");
                let mut group = Labels::new();
                group.insert("__meta_kubernetes_namespace".into(), namespace.to_owned());
                let mut own = json!({"name": name, "labels": labels});
                if slice {
                    own["name"] = json!(format!("{name}-k4v7s"));
                    own["labels"]["kubernetes.io/service-name"] = json!(name);
                    own["labels"]["endpointslice.kubernetes.io/managed-by"] =
                        json!("endpointslice-controller.k8s.io");
                    group.insert(
                        "__meta_kubernetes_endpointslice_address_type".into(),
                        "IPv4".into(),
                    );
                }
                object_meta_labels(&own, role, &mut group);
                if selects(&svc_sel, &meta["labels"]) {
                    object_meta_labels(meta, "service", &mut group);
                }
                let eps = endpoints(svc, &c.pods);
                let mut seen: Vec<(&Value, Vec<u64>)> = Vec::new();
                for ep in &eps {
                    let pod = ep.pod;
                    let ip = text(&pod["status"]["podIP"], "podIP");
                    let node = text(&pod["spec"]["nodeName"], "nodeName");
                    let pod_name = text(&pod["metadata"]["name"], "pod name");
                    let mut t = group.clone();
                    t.insert("__address__".into(), format!("{ip}:{}", ep.port));
                    let e = |k: &str| {
                        if slice {
                            format!("__meta_kubernetes_endpointslice_{k}")
                        } else {
                            format!("__meta_kubernetes_endpoint_{k}")
                        }
                    };
                    t.insert(e("port_name"), ep.port_name.clone());
                    t.insert(e("port_protocol"), ep.protocol.clone());
                    t.insert(e("address_target_kind"), "Pod".into());
                    t.insert(e("address_target_name"), pod_name.to_owned());
                    if slice {
                        t.insert(e("port"), ep.port.to_string());
                        for cond in ["ready", "serving"] {
                            t.insert(e(&format!("endpoint_conditions_{cond}")), "true".into());
                        }
                        t.insert(e("endpoint_conditions_terminating"), "false".into());
                    } else {
                        t.insert(e("ready"), "true".into());
                        t.insert(e("node_name"), node.to_owned());
                    }
                    if selects(&pod_sel, &pod["metadata"]["labels"]) {
                        t.extend(pod_labels(pod));
                        for container in containers(pod) {
                            if let Some(port) = ports(&container)
                                .into_iter()
                                .find(|p| p["containerPort"].as_u64() == Some(ep.port))
                            {
                                t.extend(container_port_labels(&container, &port, true));
                            }
                        }
                        match seen.iter_mut().find(|(p, _)| std::ptr::eq(*p, pod)) {
                            Some((_, ports)) => ports.push(ep.port),
                            None => seen.push((pod, vec![ep.port])),
                        }
                    }
                    out.push(t);
                }
                // Container ports that no Service port covers get targets of their own.
                for (pod, covered) in seen {
                    let ip = text(&pod["status"]["podIP"], "podIP");
                    for container in containers(pod) {
                        for port in ports(&container) {
                            let number = port["containerPort"].as_u64().unwrap_or(0);
                            if covered.contains(&number) {
                                continue;
                            }
                            let mut t = group.clone();
                            t.extend(pod_labels(pod));
                            t.extend(container_port_labels(&container, &port, true));
                            t.insert("__address__".into(), format!("{ip}:{number}"));
                            out.push(t);
                        }
                    }
                }
            }
        }
        other => panic!("role {other:?} is not emulated"),
    }
    out
}

/// `matchLabels` as the operator writes it into a discovery selector.
fn label_selector(selector: &Value) -> String {
    assert!(
        selector["matchExpressions"].is_null(),
        "matchExpressions are not emulated"
    );
    let labels: BTreeMap<String, Value> = map(&selector["matchLabels"]).into_iter().collect();
    labels
        .iter()
        .map(|(k, v)| format!("{k}={}", text(v, k)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The sharding rules that end every job the operator generates, for one shard.
fn operator_sharding() -> Vec<Value> {
    serde_json::from_value(json!([
        {"source_labels": ["__address__", "__tmp_hash"], "target_label": "__tmp_hash",
         "regex": "(.+);", "replacement": "$1", "action": "replace"},
        {"source_labels": ["__tmp_hash"], "target_label": "__tmp_hash", "modulus": 1,
         "action": "hashmod"},
        {"source_labels": ["__tmp_hash", "__tmp_disable_sharding"],
         "regex": "0;|.+;.+", "action": "keep"},
    ]))
    .unwrap_or_default()
}

/// A monitor endpoint's `relabelings` or `metricRelabelings` (the Operator's `RelabelConfig`,
/// camelCase keys) as Prometheus' relabel configs, as the Operator writes them (its
/// pkg/prometheus/promcfg.go, `generateRelabelConfig`: the keys in snake_case, the action in lower
/// case).
fn operator_relabel_configs(rules: &Value) -> Vec<Value> {
    let rename = |k: &str| match k {
        "sourceLabels" => "source_labels".to_owned(),
        "targetLabel" => "target_label".to_owned(),
        other => other.to_owned(),
    };
    rules
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|rule| {
            let mut out = serde_json::Map::new();
            for (k, v) in rule.as_object().cloned().unwrap_or_default() {
                let v = match (k.as_str(), v.as_str()) {
                    ("action", Some(a)) => json!(a.to_lowercase()),
                    _ => v,
                };
                out.insert(rename(&k), v);
            }
            Value::Object(out)
        })
        .collect()
}

/// The scrape jobs the Prometheus Operator generates for the cluster's monitors, one per
/// endpoint: the shape of its golden files `ServiceMonitorObjectWithMatchLabelSelector.golden` and
/// `PodMonitorObjectWithMatchLabelSelector.golden` (prometheus-operator/prometheus-operator,
/// pkg/prometheus/testdata, commit 6adcebc5076c34f4f55f8f5f7b1e528929373ac7), with the `$(SHARD)`
/// that its config reloader fills in set to shard 0 of 1.
fn operator_jobs(c: &Cluster) -> Vec<Value> {
    let mut jobs = Vec::new();
    for m in &c.service_monitors {
        let ns = text(&m["metadata"]["namespace"], "namespace");
        let name = text(&m["metadata"]["name"], "name");
        let selector = label_selector(&m["spec"]["selector"]);
        assert!(
            m["spec"]["namespaceSelector"].is_null(),
            "namespaceSelector is not emulated"
        );
        for (i, ep) in m["spec"]["endpoints"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let port = text(&ep["port"], "port");
            let mut relabel: Vec<Value> = serde_json::from_value(json!([
                {"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"},
                {"action": "keep", "source_labels": ["__meta_kubernetes_endpoint_port_name"],
                 "regex": port},
                {"source_labels": ["__meta_kubernetes_endpoint_address_target_kind",
                                   "__meta_kubernetes_endpoint_address_target_name"],
                 "separator": ";", "regex": "Node;(.*)", "replacement": "${1}",
                 "target_label": "node"},
                {"source_labels": ["__meta_kubernetes_endpoint_address_target_kind",
                                   "__meta_kubernetes_endpoint_address_target_name"],
                 "separator": ";", "regex": "Pod;(.*)", "replacement": "${1}",
                 "target_label": "pod"},
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                {"source_labels": ["__meta_kubernetes_pod_container_name"],
                 "target_label": "container"},
                {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"],
                 "regex": "(Failed|Succeeded)"},
                {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job",
                 "replacement": "${1}"},
                {"target_label": "endpoint", "replacement": port},
            ]))
            .unwrap_or_default();
            relabel.extend(operator_relabel_configs(&ep["relabelings"]));
            relabel.extend(operator_sharding());
            jobs.push(json!({
                "job_name": format!("serviceMonitor/{ns}/{name}/{i}"),
                "honor_labels": ep["honorLabels"].as_bool().unwrap_or(false),
                "kubernetes_sd_configs": [{
                    "role": "endpoints",
                    "namespaces": {"names": [ns]},
                    "selectors": [
                        {"role": "endpoints", "label": selector},
                        {"role": "service", "label": selector},
                    ],
                }],
                "scrape_interval": ep["interval"],
                "relabel_configs": relabel,
                "metric_relabel_configs": operator_relabel_configs(&ep["metricRelabelings"]),
            }));
        }
    }
    for m in &c.pod_monitors {
        let ns = text(&m["metadata"]["namespace"], "namespace");
        let name = text(&m["metadata"]["name"], "name");
        let selector = label_selector(&m["spec"]["selector"]);
        assert!(
            m["spec"]["namespaceSelector"].is_null(),
            "namespaceSelector is not emulated"
        );
        for (i, ep) in m["spec"]["podMetricsEndpoints"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let port = text(&ep["port"], "port");
            let mut relabel: Vec<Value> = serde_json::from_value(json!([
                {"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"},
                {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"],
                 "regex": "(Failed|Succeeded)"},
                {"action": "keep", "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                 "regex": port},
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": ["__meta_kubernetes_pod_container_name"],
                 "target_label": "container"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                {"target_label": "job", "replacement": format!("{ns}/{name}")},
                {"target_label": "endpoint", "replacement": port},
            ]))
            .unwrap_or_default();
            relabel.extend(operator_relabel_configs(&ep["relabelings"]));
            relabel.extend(operator_sharding());
            jobs.push(json!({
                "job_name": format!("podMonitor/{ns}/{name}/{i}"),
                "honor_labels": ep["honorLabels"].as_bool().unwrap_or(false),
                "kubernetes_sd_configs": [{
                    "role": "pod",
                    "namespaces": {"names": [ns]},
                    "selectors": [{"role": "pod", "label": selector}],
                }],
                "scrape_interval": ep["interval"],
                "relabel_configs": relabel,
                "metric_relabel_configs": operator_relabel_configs(&ep["metricRelabelings"]),
            }));
        }
    }
    jobs
}

fn scrape_file(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scrape")
        .join(name);
    yaml(&read(&path), name)
}

/// The community chart's jobs, as its templates/cm.yaml writes them into prometheus.yml.
fn community_jobs() -> Vec<Value> {
    map(&scrape_file("community.yaml")["scrapeConfigs"])
        .into_iter()
        .filter(|(_, job)| job["enabled"] != false)
        .map(|(key, mut job)| {
            let name = match job["job_name"].as_str() {
                Some(n) if !n.is_empty() => n.to_owned(),
                _ => key.clone(),
            };
            let fields = job
                .as_object_mut()
                .unwrap_or_else(|| panic!("{key}: not a map"));
            fields.remove("enabled");
            fields.remove("job_name");
            let mut out = Map::new();
            out.insert("job_name".into(), json!(name));
            out.extend(fields.clone());
            Value::Object(out)
        })
        .collect()
}

/// The jobs of Kubecost's bundled Prometheus that can reach network-cost pods.
fn kubecost_jobs() -> Vec<Value> {
    let file = scrape_file("kubecost.yaml");
    ["serverFiles", "extraScrapeConfigs"]
        .iter()
        .flat_map(|k| file[*k].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Which Prometheus scrapes the cluster.
#[derive(Clone, Copy, Debug)]
enum Prom {
    /// The prometheus-community/prometheus chart's config.
    Community,
    /// The Prometheus bundled with Kubecost's chart.
    Kubecost,
    /// A Prometheus Operator's Prometheus that selects the chart's monitors.
    Operator,
}

/// `GET http://127.0.0.1:{port}{path}?{query}`: the body of a 200 answer.
fn http_get(port: u16, path: &str, query: &[(&str, &str)]) -> Option<String> {
    let encode = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let query: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    let target = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    };
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {target} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    (head.split_whitespace().nth(1) == Some("200")).then(|| body.to_owned())
}

/// A Prometheus server on loopback with a config of its own; killed and cleaned up on drop.
struct Prometheus {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Prometheus {
    /// Writes the jobs' targets as file_sd files, starts Prometheus, and returns it with the
    /// number of targets it should discover.
    fn start(name: &str, jobs: Vec<Value>, c: &Cluster) -> (Prometheus, usize) {
        let dir =
            std::env::temp_dir().join(format!("netcost-scrape-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut total = 0;
        let mut configs = Vec::new();
        for (j, mut job) in jobs.into_iter().enumerate() {
            let sds = job["kubernetes_sd_configs"]
                .as_array()
                .cloned()
                .unwrap_or_else(|| panic!("not a Kubernetes job: {job}"));
            let mut files = Vec::new();
            for (s, sd) in sds.iter().enumerate() {
                let groups: Vec<Value> = discover(sd, c)
                    .into_iter()
                    .map(|mut labels| {
                        let address = labels.remove("__address__").unwrap_or_default();
                        json!({"targets": [address], "labels": labels})
                    })
                    .collect();
                total += groups.len();
                let file = dir.join(format!("job{j}-sd{s}.json"));
                std::fs::write(&file, Value::Array(groups).to_string())
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                files.push(file.display().to_string());
            }
            let Some(fields) = job.as_object_mut() else {
                panic!("a job is not a map")
            };
            fields.remove("kubernetes_sd_configs");
            fields.insert("file_sd_configs".into(), json!([{"files": files}]));
            configs.push(job);
        }
        // JSON is YAML: Prometheus reads this as its YAML config.
        let config = json!({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": configs,
        });
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config.to_string()).unwrap_or_else(|e| panic!("{e}"));
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        let log = std::fs::File::create(dir.join("log")).unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start prometheus (apt-get install prometheus): {e}")
            });
        let p = Prometheus { child, port, dir };
        p.wait_until("to answer", || http_get(p.port, "/-/ready", &[]).is_some());
        (p, total)
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> Option<Value> {
        serde_json::from_str(&http_get(self.port, path, query)?).ok()
    }

    /// Polls `done` for up to 60 s, then fails naming `what` with the end of Prometheus' log.
    fn wait_until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                panic!(
                    "gave up waiting for Prometheus {what}; its log ends:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until every written target is discovered (kept or dropped) and every kept one has
    /// been scraped successfully.
    fn settle(&self, expected_targets: usize) {
        self.wait_until(
            &format!("to discover {expected_targets} targets and scrape the kept ones"),
            || {
                let Some(t) = self.get("/api/v1/targets", &[]) else {
                    return false;
                };
                let active = t["data"]["activeTargets"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let dropped = t["data"]["droppedTargets"].as_array().map_or(0, Vec::len);
                active.len() + dropped == expected_targets
                    && active.iter().all(|a| a["health"] == "up")
            },
        );
    }

    /// An instant vector query's result as (the value of `by`, the sample value).
    fn by(&self, promql: &str, by: &str) -> BTreeMap<String, f64> {
        let json = self
            .get("/api/v1/query", &[("query", promql)])
            .unwrap_or_else(|| panic!("query failed: {promql}"));
        json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|r| {
                let key = r["metric"][by].as_str().unwrap_or_default().to_owned();
                let value = r["value"][1].as_str().and_then(|v| v.parse().ok());
                (key, value.unwrap_or(f64::NAN))
            })
            .collect()
    }
}

/// What one scenario's Prometheus ends up holding.
#[derive(Debug, PartialEq)]
struct Seen {
    /// Series of the egress counter per `job`.
    per_job: BTreeMap<String, usize>,
    /// Series per agent (each agent reports its own pod).
    per_agent: BTreeMap<String, usize>,
    /// The counters' sum: what a cost is computed from.
    bytes: f64,
}

fn scrape(name: &str, prom: Prom, renderings: &[String]) -> Seen {
    let c = cluster(renderings);
    let jobs = match prom {
        Prom::Community => community_jobs(),
        Prom::Kubecost => kubecost_jobs(),
        Prom::Operator => operator_jobs(&c),
    };
    let (p, targets) = Prometheus::start(name, jobs, &c);
    p.settle(targets);
    let metric = "kubecost_pod_network_egress_bytes_total";
    let count = |by: &str| -> BTreeMap<String, usize> {
        p.by(&format!("count by ({by}) ({metric})"), by)
            .into_iter()
            .map(|(k, v)| (k, v as usize))
            .collect()
    };
    Seen {
        per_job: count("job"),
        per_agent: count("pod_name"),
        bytes: p
            .by(&format!("sum({metric})"), "")
            .values()
            .fold(0.0, |a, b| a + b),
    }
}

/// Every agent's series once per job of `jobs`.
fn expected(jobs: &[&str]) -> Seen {
    let agents = nodes().len();
    Seen {
        per_job: jobs.iter().map(|j| ((*j).to_owned(), agents)).collect(),
        per_agent: (0..agents)
            .map(|i| (format!("web-{i}"), jobs.len()))
            .filter(|_| !jobs.is_empty())
            .collect(),
        bytes: BYTES_PER_AGENT * (agents * jobs.len()) as f64,
    }
}

#[test]
fn each_way_of_scraping_the_chart_scrapes_every_agent_exactly_once() {
    let port = start_agents();
    // The operator's first scrape of a target waits up to one interval: keep it short here.
    let base = json!({
        "port": port,
        "serviceMonitor": {"interval": "1s"},
        "podMonitor": {"interval": "1s"},
    });
    let render = |v: Value, release: &str| render_with(&[base.clone(), v], release, release);
    let scrape_on = json!({"prometheusScrape": true});
    let service_monitor = json!({"serviceMonitor": {"enabled": true}});
    let pod_monitor = json!({"podMonitor": {"enabled": true}});
    // What the chart rendered for prometheusScrape before: the pods annotated as well.
    let mut old = scrape_on.clone();
    merge(
        &mut old,
        json!({"annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": port.to_string()}}),
    );

    let endpoints_job = "kubernetes-service-endpoints";
    let networking_job = "kubecost-networking";
    let kubecost_values = kubecost_carried_over();
    let drop_egress = json!({
        "action": "drop",
        "sourceLabels": ["__name__"],
        "regex": "kubecost_pod_network_egress_bytes_total",
    });
    let service_monitor_job = "netcost-network-costs";
    let pod_monitor_job = "netcost/netcost-network-costs";
    let scenarios: Vec<(&str, Prom, Vec<String>, Seen)> = vec![
        (
            "defaults",
            Prom::Community,
            vec![render(json!({}), "netcost")],
            expected(&[]),
        ),
        (
            "prometheusScrape",
            Prom::Community,
            vec![render(scrape_on.clone(), "netcost")],
            expected(&[endpoints_job]),
        ),
        // Kubecost's bundled Prometheus: its kubecost-networking job keeps the pods labelled
        // app.kubernetes.io/name=network-costs and app.kubernetes.io/instance=kubecost, which
        // release kubecost's are, with the chart's defaults and with Kubecost's own values carried over.
        (
            "defaults-release-kubecost",
            Prom::Kubecost,
            vec![render(json!({}), "kubecost")],
            expected(&[networking_job]),
        ),
        (
            "kubecost-values-release-kubecost",
            Prom::Kubecost,
            vec![render_with(
                &[kubecost_values, base.clone()],
                "kubecost",
                "kubecost",
            )],
            expected(&[networking_job]),
        ),
        // Its kubernetes-service-endpoints job keeps only the endpoints of an annotated Service
        // named kubecost-network-costs, and the pods carry instance=<release>: another release
        // name is not scraped at all.
        (
            "prometheusScrape-release-netcost",
            Prom::Kubecost,
            vec![render(scrape_on.clone(), "netcost")],
            expected(&[]),
        ),
        (
            "serviceMonitor",
            Prom::Operator,
            vec![render(service_monitor.clone(), "netcost")],
            expected(&[service_monitor_job]),
        ),
        (
            "podMonitor",
            Prom::Operator,
            vec![render(pod_monitor.clone(), "netcost")],
            expected(&[pod_monitor_job]),
        ),
        // A monitor's rules reach the scrape: metricRelabelings that drop the counters leave
        // none, and relabelings that rename the job rename every agent's series.
        (
            "serviceMonitor-metricRelabelings-drop",
            Prom::Operator,
            vec![render(
                json!({"serviceMonitor": {"enabled": true, "metricRelabelings": [drop_egress]}}),
                "netcost",
            )],
            expected(&[]),
        ),
        (
            "podMonitor-metricRelabelings-drop",
            Prom::Operator,
            vec![render(
                json!({"podMonitor": {"enabled": true, "metricRelabelings": [drop_egress]}}),
                "netcost",
            )],
            expected(&[]),
        ),
        (
            "serviceMonitor-relabelings-job",
            Prom::Operator,
            vec![render(
                json!({"serviceMonitor": {"enabled": true, "relabelings": [
                    {"action": "replace", "targetLabel": "job", "replacement": "netcost"},
                ]}}),
                "netcost",
            )],
            expected(&["netcost"]),
        ),
        // Negative controls: the doubling this test exists to catch. prometheusScrape under
        // Kubecost's bundled Prometheus adds the Service's endpoints to the pods that
        // kubecost-networking already scrapes (Kubecost's values.yaml warns of the same).
        (
            "prometheusScrape-release-kubecost",
            Prom::Kubecost,
            vec![render(scrape_on.clone(), "kubecost")],
            expected(&[networking_job, endpoints_job]),
        ),
        (
            "pods-and-service-annotated",
            Prom::Community,
            vec![render(old, "netcost")],
            expected(&["kubernetes-pods", endpoints_job]),
        ),
        (
            "serviceMonitor-and-podMonitor",
            Prom::Operator,
            vec![
                render(service_monitor, "netcost"),
                render(pod_monitor, "netcost"),
            ],
            expected(&[service_monitor_job, pod_monitor_job]),
        ),
    ];

    let started = Instant::now();
    let seen: Vec<Seen> = std::thread::scope(|s| {
        let handles: Vec<_> = scenarios
            .iter()
            .map(|(name, prom, renderings, _)| s.spawn(move || scrape(name, *prom, renderings)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| panic!("a scenario panicked")))
            .collect()
    });
    let mut report = String::new();
    for ((name, prom, _, _), got) in scenarios.iter().zip(&seen) {
        report.push_str(&format!(
            "{name} ({prom:?}): {} series, by job {:?}, {} bytes\n",
            got.per_job.values().sum::<usize>(),
            got.per_job,
            got.bytes
        ));
    }
    eprintln!("{report}({:.1?})", started.elapsed());
    for ((name, prom, _, want), got) in scenarios.iter().zip(&seen) {
        assert_eq!(got, want, "{name} under {prom:?}\n{report}");
    }
}
