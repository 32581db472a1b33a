//! The Helm chart (`deploy/helm/netcost`) rendered with its defaults and with other values, and
//! the plain manifests (`deploy/kubernetes/netcost.yaml`), checked as Kubernetes objects.
//!
//! The chart is rendered by Helm's own template engine (helm-python-sdk, Helm as a library, in the
//! virtualenv `scripts/install-test-deps.sh` creates; see `support/chart.rs`), and every rendered
//! object is validated by `kubernetes-validate --strict` against Kubernetes' schemas. The plain
//! manifests are the rendering of the defaults: `NETCOST_BLESS=1 cargo test -p netcost-k8s --test
//! chart` rewrites them, and this test fails when they differ, which keeps the two in sync.
//!
//! Strict reading: each object is deserialized into its `k8s-openapi` type and serialized back,
//! and must come back identical, so a misspelt or misplaced field (which serde would silently
//! drop) fails the test.

mod support;

use std::path::Path;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use netcost_core::cloud::Provider;
use netcost_core::config::ClassificationConfig;
use serde_json::{Value, json};
use support::chart::{
    chart, documents, kubecost_carried_over, kubecost_values, lint, read, render, render_files,
    render_with, repo, try_render,
};

/// Deserializes into `T`, serializes back, and requires the same object.
fn strict<T: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value) -> T {
    let typed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{e}: {doc:#}"));
    let back = serde_json::to_value(&typed).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&back, doc, "fields lost or changed by k8s-openapi");
    typed
}

#[derive(Default)]
struct Objects {
    daemon_set: Option<DaemonSet>,
    service: Option<Service>,
    config_map: Option<ConfigMap>,
    /// `netcost serve`'s objects (`ui.enabled`), named <release>-netcost-ui.
    ui_deployment: Option<Deployment>,
    ui_service: Option<Service>,
    ui_config_map: Option<ConfigMap>,
    cluster_role: Option<ClusterRole>,
    namespace: Option<Namespace>,
    monitors: Vec<Value>,
    kinds: Vec<String>,
}

fn objects(text: &str) -> Objects {
    let mut o = Objects::default();
    for doc in documents(text) {
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        let ui = doc["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.ends_with("-netcost-ui"));
        match kind.as_str() {
            "DaemonSet" => o.daemon_set = Some(strict(&doc)),
            "Deployment" if ui => o.ui_deployment = Some(strict(&doc)),
            "Service" if ui => o.ui_service = Some(strict(&doc)),
            "ConfigMap" if ui => o.ui_config_map = Some(strict(&doc)),
            "Service" => o.service = Some(strict(&doc)),
            "ConfigMap" => o.config_map = Some(strict(&doc)),
            "ClusterRole" => o.cluster_role = Some(strict(&doc)),
            "ClusterRoleBinding" => drop(strict::<ClusterRoleBinding>(&doc)),
            "ServiceAccount" => drop(strict::<ServiceAccount>(&doc)),
            "Namespace" => o.namespace = Some(strict(&doc)),
            // Prometheus Operator CRDs have no k8s-openapi type; their fields are asserted below.
            "ServiceMonitor" | "PodMonitor" => {
                assert_eq!(doc["apiVersion"], "monitoring.coreos.com/v1");
                o.monitors.push(doc);
            }
            other => panic!("unexpected kind {other:?}"),
        }
        o.kinds.push(kind);
    }
    o
}

fn container(ds: &DaemonSet) -> &Container {
    ds.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .unwrap_or_else(|| panic!("no container"))
}

fn pod_labels(ds: &DaemonSet) -> std::collections::BTreeMap<String, String> {
    ds.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

fn names(list: Option<&[String]>) -> Vec<&str> {
    list.unwrap_or_default()
        .iter()
        .map(String::as_str)
        .collect()
}

/// The capabilities a container adds and drops.
fn capabilities(c: &Container) -> (Vec<&str>, Vec<&str>) {
    let caps = c
        .security_context
        .as_ref()
        .and_then(|sc| sc.capabilities.as_ref())
        .unwrap_or_else(|| panic!("{} has no capabilities", c.name));
    (names(caps.add.as_deref()), names(caps.drop.as_deref()))
}

/// The name and number of a container's first port.
fn first_port(c: &Container) -> (String, i32) {
    let port = c
        .ports
        .as_deref()
        .and_then(|p| p.first())
        .unwrap_or_else(|| panic!("{} has no port", c.name));
    (port.name.clone().unwrap_or_default(), port.container_port)
}

fn env(c: &Container, name: &str) -> Option<String> {
    c.env
        .as_deref()?
        .iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

#[test]
fn the_default_chart_renders_a_least_privilege_host_network_daemon_set() {
    let o = objects(&render(None, "netcost", "netcost"));
    let ds = o.daemon_set.unwrap_or_else(|| panic!("no DaemonSet"));
    let pod = ds.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    let pod = pod.unwrap_or_else(|| panic!("no pod spec"));
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("netcost-network-costs")
    );
    let pod_sc = pod
        .security_context
        .as_ref()
        .unwrap_or_else(|| panic!("no pod securityContext"));
    assert_eq!(pod_sc.run_as_non_root, Some(true));
    assert_eq!(pod_sc.run_as_user, Some(65532));

    let c = container(&ds);
    let sc = c
        .security_context
        .as_ref()
        .unwrap_or_else(|| panic!("no securityContext"));
    assert_eq!(sc.privileged, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(capabilities(c), (vec!["NET_ADMIN"], vec!["ALL"]));

    assert_eq!(first_port(c), ("metrics".into(), 3001));
    assert_eq!(env(c, "HOST_PORT").as_deref(), Some("3001"));
    assert_eq!(env(c, "TRAFFIC_LOGGING_ENABLED").as_deref(), Some("true"));
    assert_eq!(env(c, "MAX_WORKLOAD_PAIRS").as_deref(), Some("2000"));
    assert_eq!(env(c, "RELIABLE_EVENTS").as_deref(), Some("auto"));
    assert_eq!(env(c, "LOG_LEVEL").as_deref(), Some("info"));
    let probe_path = |p: Option<&k8s_openapi::api::core::v1::Probe>| {
        p.and_then(|p| p.http_get.as_ref()).map(|h| {
            let port = match &h.port {
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => i.to_string(),
            };
            (h.path.clone().unwrap_or_default(), port)
        })
    };
    assert_eq!(
        probe_path(c.liveness_probe.as_ref()),
        Some(("/healthz".into(), "metrics".into()))
    );
    assert_eq!(
        probe_path(c.readiness_probe.as_ref()),
        Some(("/readyz".into(), "metrics".into()))
    );
    assert_eq!(
        probe_path(c.startup_probe.as_ref()),
        Some(("/healthz".into(), "metrics".into())),
        "the first list of a large cluster must not trip the liveness probe"
    );
    let requests = c
        .resources
        .as_ref()
        .and_then(|r| r.requests.clone())
        .unwrap_or_default();
    assert_eq!(requests.get("cpu").map(|q| q.0.as_str()), Some("50m"));
    assert_eq!(requests.get("memory").map(|q| q.0.as_str()), Some("20Mi"));
    let limits = c
        .resources
        .as_ref()
        .and_then(|r| r.limits.clone())
        .unwrap_or_default();
    assert_eq!(limits.get("cpu").map(|q| q.0.as_str()), Some("500m"));

    // The state file is the only writable path: an emptyDir by default.
    let mounts = c.volume_mounts.clone().unwrap_or_default();
    let state = mounts
        .iter()
        .find(|m| m.name == "state")
        .unwrap_or_else(|| panic!("no state mount"));
    assert_eq!(state.mount_path, "/var/lib/netcost");
    let volumes = pod.volumes.clone().unwrap_or_default();
    assert!(
        volumes
            .iter()
            .any(|v| v.name == "state" && v.empty_dir.is_some())
    );

    assert_eq!(
        pod_labels(&ds).get("app").map(String::as_str),
        Some("netcost-network-costs"),
        "the pods carry app=<release>-network-costs, as Kubecost's chart labels them"
    );
    assert!(o.monitors.is_empty());

    // hostNetwork pods' sockets: on, with the host's cgroups read-only and nothing else (no
    // hostPID, no capability beyond NET_ADMIN, checked above).
    assert_eq!(env(c, "HOST_NETWORK_SOCKETS").as_deref(), Some("true"));
    assert_eq!(env(c, "HOST_NETWORK_LOOKUP").as_deref(), Some("batch"));
    assert_eq!(
        env(c, "CGROUP_ROOT").as_deref(),
        Some("/host/sys/fs/cgroup")
    );
    assert_eq!(host_cgroup(&ds).as_deref(), Some("/sys/fs/cgroup"));
    assert_eq!(pod.host_pid, None);
}

/// The host path of the read-only cgroup mount at `/host/sys/fs/cgroup`, if the agent has one;
/// panics if it is writable or not a directory volume.
fn host_cgroup(ds: &DaemonSet) -> Option<String> {
    let c = container(ds);
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == "/host/sys/fs/cgroup")?;
    assert_eq!(
        mount.read_only,
        Some(true),
        "the cgroup mount must be read-only"
    );
    let pod = ds.spec.as_ref().and_then(|s| s.template.spec.as_ref())?;
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)?;
    let host_path = volume.host_path.as_ref()?;
    assert_eq!(host_path.type_.as_deref(), Some("Directory"));
    Some(host_path.path.clone())
}

#[test]
fn host_network_sockets_off_mounts_no_cgroup_and_says_so_to_the_agent() {
    let values = json!({"hostNetworkSockets": {"enabled": false}});
    let o = objects(&render_with(&[values], "netcost", "netcost"));
    let ds = o.daemon_set.unwrap_or_else(|| panic!("no DaemonSet"));
    let c = container(&ds);
    assert_eq!(env(c, "HOST_NETWORK_SOCKETS").as_deref(), Some("false"));
    assert_eq!(env(c, "CGROUP_ROOT"), None);
    assert_eq!(host_cgroup(&ds), None);
}

#[test]
fn rbac_allows_only_get_list_and_watch() {
    let o = objects(&render(None, "netcost", "netcost"));
    let role = o.cluster_role.unwrap_or_else(|| panic!("no ClusterRole"));
    let rules = role.rules.unwrap_or_default();
    assert!(!rules.is_empty());
    for rule in &rules {
        assert_eq!(rule.verbs, ["get", "list", "watch"]);
    }
    let resources: Vec<String> = rules
        .iter()
        .flat_map(|r| r.resources.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        resources,
        ["nodes", "pods", "services", "replicasets", "jobs"]
    );
}

#[test]
fn the_config_map_holds_a_config_the_agent_reads() {
    let o = objects(&render(
        Some(&chart().join("ci/full-values.yaml")),
        "netcost",
        "netcost",
    ));
    let cm = o.config_map.unwrap_or_else(|| panic!("no ConfigMap"));
    let text = cm
        .data
        .and_then(|d| d.get("config.yaml").cloned())
        .unwrap_or_default();
    let config = ClassificationConfig::from_yaml_str(&text, Path::new("config.yaml"))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(config.is_listed_internet("203.0.113.9".parse().unwrap_or_else(|e| panic!("{e}"))));
    let defaults = objects(&render(None, "netcost", "netcost"));
    let text = defaults
        .config_map
        .and_then(|c| c.data)
        .and_then(|d| d.get("config.yaml").cloned());
    let text = text.unwrap_or_default();
    ClassificationConfig::from_yaml_str(&text, Path::new("config.yaml"))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
}

#[test]
fn cloud_service_tags_are_on_by_default_as_in_the_binary_and_the_example_config() {
    let o = objects(&render(None, "netcost", "netcost"));
    let text = o
        .config_map
        .and_then(|c| c.data)
        .and_then(|d| d.get("config.yaml").cloned())
        .unwrap_or_default();
    let chart = ClassificationConfig::from_yaml_str(&text, Path::new("config.yaml"))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let example_path = repo().join("examples/config.yaml");
    let example = ClassificationConfig::from_yaml_str(&read(&example_path), &example_path)
        .unwrap_or_else(|e| panic!("{e}"));
    let builtin = ClassificationConfig::kubecost_default();
    for provider in Provider::ALL {
        let switches = [
            chart.provider_enabled(provider),
            example.provider_enabled(provider),
            builtin.provider_enabled(provider),
        ];
        assert_eq!(
            switches, [true; 3],
            "{provider:?} tagging in the chart's values, examples/config.yaml and the built-in \
             default"
        );
    }
}

#[test]
fn the_service_is_headless_on_the_metrics_port() {
    let o = objects(&render(None, "netcost", "netcost"));
    let spec = o
        .service
        .and_then(|s| s.spec)
        .unwrap_or_else(|| panic!("no Service spec"));
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    let port = spec.ports.unwrap_or_default();
    assert_eq!(port.first().map(|p| p.port), Some(3001));
}

#[test]
fn every_value_of_the_full_values_file_reaches_the_objects() {
    let o = objects(&render(
        Some(&chart().join("ci/full-values.yaml")),
        "kubecost",
        "kubecost",
    ));
    let ds = o.daemon_set.unwrap_or_else(|| panic!("no DaemonSet"));
    let labels = pod_labels(&ds);
    assert_eq!(
        labels.get("app").map(String::as_str),
        Some("kubecost-network-costs")
    );
    assert_eq!(labels.get("team").map(String::as_str), Some("finops"));
    let template_meta = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.clone())
        .unwrap_or_default();
    let annotations = template_meta.annotations.unwrap_or_default();
    assert_eq!(
        annotations.get("example.com/owner").map(String::as_str),
        Some("finops")
    );
    assert!(
        !annotations.keys().any(|k| k.starts_with("prometheus.io/")),
        "prometheusScrape annotates the Service only: {annotations:?}"
    );

    let pod = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap_or_default();
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-node-critical")
    );
    assert_eq!(
        pod.node_selector
            .unwrap_or_default()
            .get("kubernetes.io/os")
            .map(String::as_str),
        Some("linux")
    );
    assert_eq!(
        pod.tolerations
            .unwrap_or_default()
            .first()
            .and_then(|t| t.key.clone())
            .as_deref(),
        Some("dedicated")
    );
    assert!(pod.affinity.and_then(|a| a.node_affinity).is_some());
    assert!(pod.volumes.unwrap_or_default().iter().any(|v| {
        v.name == "state"
            && v.host_path
                .as_ref()
                .is_some_and(|h| h.path == "/var/lib/netcost")
    }));

    let c = container(&ds);
    assert_eq!(c.image.as_deref(), Some("registry.example/netcost:9.9.9"));
    assert_eq!(
        c.ports
            .as_deref()
            .and_then(|p| p.first())
            .map(|p| p.container_port),
        Some(3002)
    );
    assert_eq!(env(c, "TRAFFIC_LOGGING_ENABLED").as_deref(), Some("false"));
    assert_eq!(env(c, "MAX_WORKLOAD_PAIRS").as_deref(), Some("500"));
    assert_eq!(env(c, "RELIABLE_EVENTS").as_deref(), Some("on"));
    assert_eq!(env(c, "HOST_NETWORK_LOOKUP").as_deref(), Some("per-flow"));
    assert_eq!(host_cgroup(&ds).as_deref(), Some("/run/host-cgroup2"));
    assert_eq!(env(c, "LOG_LEVEL").as_deref(), Some("debug"));
    assert_eq!(env(c, "ZONE_FROM_CLOUD_METADATA").as_deref(), Some("true"));
    assert!(
        c.args
            .clone()
            .unwrap_or_default()
            .contains(&"--interval=30s".to_owned())
    );
    assert_eq!(
        c.liveness_probe.as_ref().and_then(|p| p.period_seconds),
        Some(20)
    );
    let sc = c
        .security_context
        .as_ref()
        .unwrap_or_else(|| panic!("no securityContext"));
    assert_eq!(
        sc.se_linux_options
            .as_ref()
            .and_then(|s| s.type_.as_deref()),
        Some("spc_t")
    );
    assert_eq!(sc.privileged, Some(false));

    assert_eq!(
        ds.spec
            .as_ref()
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|u| u.rolling_update.as_ref())
            .and_then(|r| r.max_unavailable.clone()),
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("10%".into()))
    );

    let ui = o
        .ui_deployment
        .unwrap_or_else(|| panic!("no ui Deployment"));
    let ui_spec = ui_pod(&ui);
    let ui_c = &ui_spec.containers[0];
    assert_eq!(ui_c.image, c.image, "the agent's image");
    assert_eq!(
        ui_c.args.as_deref().unwrap_or_default(),
        [
            "serve",
            "--prometheus",
            "http://prometheus-operated.monitoring.svc:9090",
            "--query-timeout",
            "1m",
            "--provider",
            "custom",
            "--pricing",
            "/etc/netcost-ui/pricing.yaml",
            "--listen",
            "0.0.0.0:9097",
        ]
    );
    assert_eq!(env(ui_c, "LOG_LEVEL").as_deref(), Some("debug"));
    let ui_requests = ui_c
        .resources
        .clone()
        .and_then(|r| r.requests)
        .unwrap_or_default();
    assert_eq!(ui_requests.get("cpu").map(|q| q.0.as_str()), Some("20m"));
    assert_eq!(
        ui_spec
            .tolerations
            .unwrap_or_default()
            .first()
            .and_then(|t| t.value.clone())
            .as_deref(),
        Some("tools")
    );
    assert!(ui_spec.affinity.and_then(|a| a.node_affinity).is_some());
    assert_eq!(
        ui_spec
            .node_selector
            .unwrap_or_default()
            .get("kubernetes.io/os")
            .map(String::as_str),
        Some("linux")
    );
    let ui_svc = o.ui_service.unwrap_or_else(|| panic!("no ui Service"));
    let ui_ports = ui_svc.spec.and_then(|s| s.ports).unwrap_or_default();
    assert_eq!(ui_ports.first().map(|p| p.port), Some(9097));
    assert!(o.ui_config_map.is_some(), "the pricing file's ConfigMap");

    assert_monitor(&o.monitors, "ServiceMonitor", "endpoints");
    let svc = o.service.unwrap_or_else(|| panic!("no Service"));
    let labels = svc.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("example.com/tier").map(String::as_str),
        Some("metrics")
    );
    let annotations = svc.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations
            .get("example.com/scraped-by")
            .map(String::as_str),
        Some("annotations")
    );
    assert_eq!(
        annotations.get("prometheus.io/scrape").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        annotations.get("prometheus.io/port").map(String::as_str),
        Some("3002")
    );
}

/// A label selector matches `labels` when every one of its pairs is among them.
fn selects(
    selector: &std::collections::BTreeMap<String, String>,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn daemon_set_selector(ds: &DaemonSet) -> std::collections::BTreeMap<String, String> {
    ds.spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default()
}

#[test]
fn opencost_and_kubecost_find_the_pods_of_release_kubecost_with_defaults_and_kubecost_values() {
    for values in [vec![], vec![kubecost_carried_over()]] {
        let o = objects(&render_with(&values, "kubecost", "kubecost"));
        let ds = o.daemon_set.unwrap_or_else(|| panic!("no DaemonSet"));
        let labels = pod_labels(&ds);
        // opencost/opencost modules/collector-source/pkg/scrape/network.go, isNetworkCosts: the
        // collector scrapes only running pods with both labels, and Kubecost's bundled
        // Prometheus (job kubecost-networking, tests/scrape/kubecost.yaml) keeps the same ones.
        assert_eq!(
            (
                labels.get("app.kubernetes.io/name").map(String::as_str),
                labels.get("app.kubernetes.io/instance").map(String::as_str),
            ),
            (Some("network-costs"), Some("kubecost")),
            "values {values:?}: pod labels {labels:?}"
        );
        assert_eq!(
            labels.get("app").map(String::as_str),
            Some("kubecost-network-costs")
        );
    }
}

fn tolerations(ds: &DaemonSet) -> Vec<Value> {
    let pod = ds.spec.as_ref().and_then(|s| s.template.spec.clone());
    let tolerations = pod.and_then(|p| p.tolerations).unwrap_or_default();
    tolerations
        .iter()
        .map(|t| serde_json::to_value(t).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

#[test]
fn the_agent_tolerates_every_taint_by_default_and_kubecosts_values_tolerate_none() {
    // A node without an agent has no network cost for any of its pods, and nothing says so: the
    // default tolerates every taint, so each node that runs pods (which tolerate its taints) also
    // runs the agent, the control plane included (docs/install.md, "Which nodes run the agent").
    let ds = objects(&render(None, "netcost", "netcost"))
        .daemon_set
        .unwrap_or_else(|| panic!("no DaemonSet"));
    assert_eq!(tolerations(&ds), [json!({"operator": "Exists"})]);
    // Kubecost's networkCosts default is `tolerations: []` (cost-analyzer chart 2.3.3): carried
    // over, it replaces this chart's default, and tainted nodes get no agent, as with Kubecost.
    let ds = objects(&render_with(
        &[kubecost_carried_over()],
        "kubecost",
        "kubecost",
    ))
    .daemon_set
    .unwrap_or_else(|| panic!("no DaemonSet"));
    assert_eq!(tolerations(&ds), Vec::<Value>::new());
}

#[test]
fn the_daemon_set_selector_is_pinned_and_selects_the_pods_as_the_service_and_monitors_do() {
    let full = support::chart::yaml(&read(&chart().join("ci/full-values.yaml")), "full values");
    for values in [vec![], vec![kubecost_carried_over()], vec![full]] {
        let o = objects(&render_with(&values, "rel", "ns"));
        let ds = o.daemon_set.unwrap_or_else(|| panic!("no DaemonSet"));
        let selector = daemon_set_selector(&ds);
        // A DaemonSet's selector is immutable: changing it makes `helm upgrade` fail, and needs
        // the DaemonSet deleted first (docs/install.md, "Upgrading").
        assert_eq!(
            selector,
            [
                ("app.kubernetes.io/instance".to_owned(), "rel".to_owned()),
                (
                    "app.kubernetes.io/name".to_owned(),
                    "network-costs".to_owned()
                ),
            ]
            .into(),
            "the selector changed: say in docs/install.md what an upgrade needs"
        );
        let labels = pod_labels(&ds);
        assert!(selects(&selector, &labels), "{selector:?} {labels:?}");
        let service = o.service.unwrap_or_else(|| panic!("no Service"));
        let service_selector = service.spec.and_then(|s| s.selector).unwrap_or_default();
        assert!(
            selects(&service_selector, &labels),
            "{service_selector:?} {labels:?}"
        );
    }
    for (monitor, selected) in [("serviceMonitor", "Service"), ("podMonitor", "pods")] {
        let o = objects(&render_with(
            &[json!({monitor: {"enabled": true}})],
            "rel",
            "ns",
        ));
        let targets = if selected == "pods" {
            pod_labels(
                o.daemon_set
                    .as_ref()
                    .unwrap_or_else(|| panic!("no DaemonSet")),
            )
        } else {
            o.service
                .and_then(|s| s.metadata.labels)
                .unwrap_or_default()
        };
        let selector: std::collections::BTreeMap<String, String> =
            serde_json::from_value(o.monitors[0]["spec"]["selector"]["matchLabels"].clone())
                .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            selects(&selector, &targets),
            "{monitor} selects {selector:?}, the {selected} carry {targets:?}"
        );
    }
}

fn init_containers(ds: &DaemonSet) -> Vec<Container> {
    ds.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.init_containers.clone())
        .unwrap_or_default()
}

#[test]
fn a_host_path_state_directory_is_given_to_the_agents_uid_before_the_agent_starts() {
    let host_path = json!({"stateVolume": {"hostPath": "/var/lib/netcost"}});
    let o = objects(&render_with(
        std::slice::from_ref(&host_path),
        "netcost",
        "netcost",
    ));
    let ds = o.daemon_set.unwrap_or_else(|| panic!("no DaemonSet"));
    let agent = container(&ds);
    let inits = init_containers(&ds);
    assert_eq!(inits.len(), 1, "{inits:?}");
    let init = &inits[0];
    // fsGroup does not apply to hostPath volumes, and DirectoryOrCreate makes the directory
    // root's: only a chown by root makes it the agent's.
    let uid = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.security_context.as_ref())
        .and_then(|sc| sc.run_as_user)
        .unwrap_or_else(|| panic!("no pod runAsUser"));
    let state_mount = |c: &Container| {
        c.volume_mounts
            .as_deref()
            .and_then(|m| m.iter().find(|m| m.name == "state"))
            .map(|m| m.mount_path.clone())
            .unwrap_or_else(|| panic!("{} has no state mount", c.name))
    };
    assert_eq!(
        init.command.as_deref(),
        Some(
            &[
                "chown".to_owned(),
                format!("{uid}:{uid}"),
                state_mount(agent)
            ][..]
        )
    );
    assert_eq!(state_mount(init), state_mount(agent));
    assert_eq!(init.image, agent.image, "no other image by default");
    let sc = init
        .security_context
        .as_ref()
        .unwrap_or_else(|| panic!("no init securityContext"));
    assert_eq!(
        (sc.run_as_user, sc.run_as_non_root, sc.privileged),
        (Some(0), Some(false), Some(false))
    );
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(capabilities(init), (vec!["CHOWN"], vec!["ALL"]));

    let busybox = json!({"stateVolume": {"chownInit": {"image": "busybox:1.36"}}});
    let o = objects(&render_with(
        &[host_path.clone(), busybox],
        "netcost",
        "netcost",
    ));
    let ds = o.daemon_set.unwrap_or_else(|| panic!("no DaemonSet"));
    assert_eq!(
        init_containers(&ds)
            .first()
            .and_then(|c| c.image.as_deref()),
        Some("busybox:1.36")
    );

    let off = json!({"stateVolume": {"chownInit": {"enabled": false}}});
    for (what, values) in [
        ("chownInit off", vec![host_path, off]),
        ("emptyDir", vec![]),
    ] {
        let o = objects(&render_with(&values, "netcost", "netcost"));
        let ds = o.daemon_set.unwrap_or_else(|| panic!("no DaemonSet"));
        assert!(init_containers(&ds).is_empty(), "{what}");
    }
}

/// The rendering holds exactly one monitor, of `kind`, on the metrics port with the values' labels.
fn assert_monitor(monitors: &[Value], kind: &str, endpoints: &str) {
    assert_eq!(monitors.len(), 1, "{monitors:?}");
    let m = &monitors[0];
    assert_eq!(m["kind"], kind);
    assert_eq!(m["metadata"]["labels"]["release"], "prometheus");
    let first = m["spec"][endpoints]
        .as_array()
        .and_then(|e| e.first())
        .unwrap_or_else(|| panic!("no endpoint: {m}"));
    assert_eq!(first["port"], "metrics");
    assert_eq!(first["interval"], "1m");
    assert_eq!(first["scrapeTimeout"], "10s");
    assert_eq!(first["honorLabels"], true);
    assert_eq!(
        first["relabelings"],
        json!([{"action": "replace", "targetLabel": "cluster", "replacement": "example"}])
    );
    assert_eq!(
        first["metricRelabelings"],
        json!([{
            "action": "drop",
            "sourceLabels": ["__name__"],
            "regex": "netcost_workload_traffic_bytes_total",
        }])
    );
}

#[test]
fn monitors_carry_no_relabeling_rules_unless_given() {
    for (monitor, endpoints) in [
        ("serviceMonitor", "endpoints"),
        ("podMonitor", "podMetricsEndpoints"),
    ] {
        let o = objects(&render_with(
            &[json!({monitor: {"enabled": true}})],
            "netcost",
            "netcost",
        ));
        let m = o.monitors.first().unwrap_or_else(|| panic!("no {monitor}"));
        let first = &m["spec"][endpoints][0];
        assert_eq!(first["port"], "metrics", "{m}");
        assert!(first.get("relabelings").is_none(), "{m}");
        assert!(first.get("scrapeTimeout").is_none(), "{m}");
        assert!(first.get("metricRelabelings").is_none(), "{m}");
    }
}

#[test]
fn the_pod_monitor_values_file_renders_a_pod_monitor_alone() {
    let o = objects(&render(
        Some(&chart().join("ci/podmonitor-values.yaml")),
        "netcost",
        "netcost",
    ));
    assert_monitor(&o.monitors, "PodMonitor", "podMetricsEndpoints");
}

#[test]
fn prometheus_scrape_annotates_the_service_and_not_the_pods() {
    let o = objects(&render_with(
        &[json!({"prometheusScrape": true})],
        "netcost",
        "netcost",
    ));
    let svc = o.service.unwrap_or_else(|| panic!("no Service"));
    let annotations = svc.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations.get("prometheus.io/scrape").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        annotations.get("prometheus.io/port").map(String::as_str),
        Some("3001")
    );
    let ds = o.daemon_set.unwrap_or_else(|| panic!("no DaemonSet"));
    let pod_annotations = ds
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .unwrap_or_default();
    assert!(
        pod_annotations.is_empty(),
        "the pods must not be annotated too, or the community chart's kubernetes-pods job scrapes \
         every agent a second time: {pod_annotations:?}"
    );
}

#[test]
fn a_service_monitor_and_a_pod_monitor_together_are_refused() {
    let both = json!({"serviceMonitor": {"enabled": true}, "podMonitor": {"enabled": true}});
    let error = try_render(&[both], "netcost", "netcost")
        .err()
        .unwrap_or_else(|| panic!("rendered with both monitors enabled"));
    assert!(
        error.contains("scrape every agent twice and double every cost"),
        "{error}"
    );
    assert!(
        error.contains("netcost/templates/servicemonitor.yaml"),
        "{error}"
    );
}

/// The plain manifests: a Namespace, then the chart's default rendering for release `netcost`.
/// The Namespace enforces the privileged Pod Security level: the baseline level refuses
/// `hostNetwork` and any capability added beyond its default set, `NET_ADMIN` included
/// (kubernetes.io/docs/concepts/security/pod-security-standards, "Host Namespaces" and
/// "Capabilities"), so in a cluster whose default is baseline or restricted the agent's pods
/// would not be admitted.
fn plain_manifests() -> String {
    let mut out = String::from(
        "# Generated from deploy/helm/netcost with its default values (release and namespace\n\
         # \"netcost\"); do not edit. Regenerate: NETCOST_BLESS=1 cargo test -p netcost-k8s --test chart\n\
         ---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: netcost\n  labels:\n\
         \x20   # hostNetwork and NET_ADMIN are refused by the baseline and restricted levels\n\
         \x20   # (kubernetes.io/docs/concepts/security/pod-security-standards).\n\
         \x20   pod-security.kubernetes.io/enforce: privileged\n",
    );
    out.push_str(&render(None, "netcost", "netcost"));
    out
}

#[test]
fn the_plain_manifests_are_the_chart_defaults_and_read_strictly() {
    let path = repo().join("deploy/kubernetes/netcost.yaml");
    let expected = plain_manifests();
    if std::env::var_os("NETCOST_BLESS").is_some() {
        std::fs::write(&path, &expected).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let actual = read(&path);
    assert!(
        actual == expected,
        "deploy/kubernetes/netcost.yaml is not the chart's default rendering; regenerate it with \
         NETCOST_BLESS=1 cargo test -p netcost-k8s --test chart"
    );
    let o = objects(&actual);
    assert_eq!(
        o.kinds,
        [
            "Namespace",
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "DaemonSet",
            "Service",
            "ServiceAccount"
        ]
    );
    let labels = o
        .namespace
        .and_then(|n| n.metadata.labels)
        .unwrap_or_default();
    assert_eq!(
        labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("privileged"),
        "the agent's hostNetwork and NET_ADMIN need the privileged Pod Security level"
    );
}

#[test]
fn helm_lint_strict_finds_no_error_and_no_warning_with_each_values_file() {
    let files = [
        chart().join("ci/full-values.yaml"),
        chart().join("ci/podmonitor-values.yaml"),
    ];
    let sets = [
        ("defaults".to_owned(), json!({})),
        (
            "Kubecost's block carried over".to_owned(),
            kubecost_carried_over(),
        ),
    ]
    .into_iter()
    .chain(files.iter().map(|f| {
        let name = f.display().to_string();
        let values = support::chart::yaml(&read(f), &name);
        (name, values)
    }));
    for (name, values) in sets {
        let report = lint(&values);
        assert_eq!(report["total_charts_linted"], 1, "{name}: {report:#}");
        assert_eq!(report["errors"], json!([]), "{name}: {report:#}");
        let messages = report["messages"].as_array().cloned().unwrap_or_default();
        // Severity 1 is information (Chart.yaml has no icon); 2 is a warning, 3 an error.
        assert!(
            messages.iter().all(|m| m["severity"].as_i64() == Some(1)),
            "{name}: {report:#}"
        );
    }
}

#[test]
#[should_panic(expected = "kubernetes-validate --strict")]
fn kubernetes_validate_rejects_a_field_kubernetes_does_not_have() {
    render_with(
        // affinity is free-form in values.schema.json: Kubernetes' schema is the only check.
        &[json!({"affinity": {"nodeAffinity": {"requiredDuringScheduling": {}}}})],
        "netcost",
        "netcost",
    );
}

/// Helm's error for `values`, which must not render.
fn render_error(values: Value) -> String {
    try_render(std::slice::from_ref(&values), "netcost", "netcost")
        .err()
        .unwrap_or_else(|| panic!("rendered with {values}"))
}

#[test]
fn helm_lint_applies_the_schema_and_the_checks() {
    let report = lint(&json!({"serviceMonitor": {"intervall": "1m"}}));
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("at '/serviceMonitor': additional properties 'intervall' not allowed"),
        "{report:#}"
    );
    let report = lint(&json!({"softMemoryLimit": "1GiB"}));
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("additional properties 'softMemoryLimit' not allowed"),
        "{report:#}"
    );
    // Lint mode turns a template's `fail` into an informational log (Helm's engine, LintMode),
    // so the checks of _checks.tpl show in `helm install` and `helm template` only.
    let verbatim = support::chart::yaml(&read(&kubecost_values()), "Kubecost's values");
    assert_eq!(lint(&verbatim)["errors"], json!([]));
}

#[test]
fn the_schema_refuses_unknown_keys_naming_them_at_every_level_users_write() {
    for (values, expected) in [
        (
            json!({"imagePullPolicyy": "Always"}),
            "at '': additional properties 'imagePullPolicyy' not allowed",
        ),
        (
            json!({"image": {"repo": "registry.example/netcost"}}),
            "at '/image': additional properties 'repo' not allowed",
        ),
        (
            json!({"podMonitor": {"enable": true}}),
            "at '/podMonitor': additional properties 'enable' not allowed",
        ),
        (
            json!({"config": {"destinations": {"in_zone": ["10.0.0.0/8"]}}}),
            "at '/config/destinations': additional properties 'in_zone' not allowed",
        ),
        (
            json!({"config": {"services": {"aws": true}}}),
            "at '/config/services': additional properties 'aws' not allowed",
        ),
        (
            json!({"config": {"destinations": {"direct-classification": [{"zone": "a", "ips": []}]}}}),
            "at '/config/destinations/direct-classification/0': missing property 'region'",
        ),
        (
            json!({"stateVolume": {"chownInit": {"imag": "busybox"}}}),
            "at '/stateVolume/chownInit': additional properties 'imag' not allowed",
        ),
        (
            json!({"healthCheckProbes": {"livenesProbe": {}}}),
            "at '/healthCheckProbes': additional properties 'livenesProbe' not allowed",
        ),
        (
            json!({"ui": {"prometheus": {"URL": "http://p"}}}),
            "at '/ui/prometheus': additional properties 'URL' not allowed",
        ),
        (
            json!({"tolerations": [{"key": "gpu", "efect": "NoSchedule"}]}),
            "at '/tolerations/0': additional properties 'efect' not allowed",
        ),
        // Unquoted, YAML reads `off` as false.
        (json!({"reliableEvents": false}), "at '/reliableEvents'"),
        (
            json!({"port": "3001"}),
            "at '/port': got string, want integer",
        ),
    ] {
        let error = render_error(values.clone());
        assert!(error.contains(expected), "{values}: {error}");
    }
}

#[test]
fn kubecost_keys_with_no_meaning_here_are_refused_by_name() {
    // Kubecost's DaemonSet template reads these, though its values.yaml does not list them: they
    // tune Kubecost's own agent (its /proc mounts and its Go runtime), which this chart does not
    // run. hostNetwork is fixed: the agent reads the node's conntrack table.
    for key in ["hostProc", "softMemoryLimit", "heapMonitor", "hostNetwork"] {
        let error = render_error(json!({key: {}}));
        assert!(
            error.contains(&format!("at '': additional properties '{key}' not allowed")),
            "{key}: {error}"
        );
    }
}

#[test]
fn every_key_of_values_yaml_is_typed_by_the_schema_and_objects_refuse_unknown_keys() {
    let values = support::chart::yaml(&read(&chart().join("values.yaml")), "values.yaml");
    let schema: Value = serde_json::from_str(&read(&chart().join("values.schema.json")))
        .unwrap_or_else(|e| panic!("values.schema.json: {e}"));
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    fn walk(values: &Value, schema: &Value, path: &str, checked: &mut Vec<String>) {
        let Some(map) = values.as_object() else {
            return;
        };
        let properties = &schema["properties"];
        if !properties.is_object() {
            // A free-form map (resources, affinity, nodeSelector, a pricing file).
            return;
        }
        assert_eq!(
            schema["additionalProperties"],
            json!(false),
            "{path}: unknown keys must be refused"
        );
        for (key, value) in map {
            let sub = &properties[key.as_str()];
            let here = format!("{path}/{key}");
            assert!(
                sub.get("type").is_some() || sub.get("enum").is_some(),
                "{here} is in values.yaml but has no type in values.schema.json"
            );
            walk(value, sub, &here, checked);
            checked.push(here);
        }
    }
    let mut checked = Vec::new();
    walk(&values, &schema, "", &mut checked);
    // The walk goes down every level, to the free-form maps.
    for path in [
        "/config/destinations/direct-classification",
        "/config/services/azure-cloud-services",
        "/stateVolume/chownInit/image",
        "/healthCheckProbes/startupProbe",
        "/ui/prometheus/url",
        "/ui/resources",
    ] {
        assert!(
            checked.iter().any(|c| c == path),
            "{path} not reached: {checked:?}"
        );
    }
}

#[test]
fn kubecosts_block_copied_verbatim_is_refused_with_what_to_change() {
    let error = render_error(support::chart::yaml(
        &read(&kubecost_values()),
        "Kubecost's values",
    ));
    assert!(
        error.contains(
            "enabled is false (the default of Kubecost's networkCosts block), but without the \
             agent this chart has nothing to install"
        ),
        "{error}"
    );
    assert!(
        error.contains(
            "image.repository is Kubecost's network-costs image \
             (gcr.io/kubecost1/kubecost-network-costs)"
        ),
        "{error}"
    );
    // Older Kubecost charts: the image as one string, and a PodSecurityPolicy switch.
    let error = render_error(json!({
        "image": "gcr.io/kubecost1/kubecost-network-costs:v16.0",
        "podSecurityPolicy": {"enabled": true},
    }));
    assert!(
        error.contains(
            "image is a string (gcr.io/kubecost1/kubecost-network-costs:v16.0), the form of older \
             Kubecost charts"
        ),
        "{error}"
    );
    assert!(
        error.contains("Kubernetes removed PodSecurityPolicy in 1.25"),
        "{error}"
    );
}

#[test]
fn kubecosts_block_carried_over_renders_with_netcosts_image_and_its_own_choices() {
    let carried = kubecost_carried_over();
    let o = objects(&render_with(
        std::slice::from_ref(&carried),
        "kubecost",
        "kubecost",
    ));
    let ds = o.daemon_set.unwrap_or_else(|| panic!("no DaemonSet"));
    let c = container(&ds);
    assert_eq!(c.image.as_deref(), Some("ghcr.io/netcost/netcost:0.1.0"));
    assert_eq!(
        ds.spec
            .as_ref()
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|u| u.type_.as_deref()),
        Some("RollingUpdate")
    );
    assert_eq!(env(c, "HOST_PORT").as_deref(), Some("3001"));
    // Kubecost's `healthCheckProbes: {}` merges into this chart's probes instead of removing them.
    assert!(c.startup_probe.is_some() && c.liveness_probe.is_some());
    // Kubecost's `tolerations: []` is honoured, and Helm's notes say what it costs.
    assert_eq!(tolerations(&ds), Vec::<Value>::new());
    let files = render_files(&[carried], "kubecost", "kubecost").unwrap_or_else(|e| panic!("{e}"));
    let notes = files
        .get("netcost/templates/NOTES.txt")
        .unwrap_or_else(|| panic!("no NOTES.txt: {:?}", files.keys()));
    assert!(
        notes.contains("tolerations is empty, so no agent runs on a tainted node"),
        "{notes}"
    );
    let defaults = render_files(&[], "netcost", "netcost").unwrap_or_else(|e| panic!("{e}"));
    let notes = defaults
        .get("netcost/templates/NOTES.txt")
        .cloned()
        .unwrap_or_default();
    assert!(!notes.contains("tolerations is empty"), "{notes}");
    // The older keys accepted when they ask for nothing this chart lacks.
    objects(&render_with(
        &[json!({"podSecurityPolicy": {"enabled": false}, "enabled": true})],
        "netcost",
        "netcost",
    ));
}

/// `ui.enabled` with the community Prometheus chart's Service.
fn ui_values() -> Value {
    json!({"ui": {"enabled": true, "prometheus": {"url": "http://prometheus-server.prometheus.svc"}}})
}

fn ui_pod(d: &Deployment) -> k8s_openapi::api::core::v1::PodSpec {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap_or_else(|| panic!("no pod spec"))
}

#[test]
fn the_ui_is_off_by_default() {
    let files = render_files(&[], "netcost", "netcost").unwrap_or_else(|e| panic!("{e}"));
    for template in ["ui-deployment.yaml", "ui-service.yaml", "ui-configmap.yaml"] {
        let text = files
            .get(&format!("netcost/templates/{template}"))
            .cloned()
            .unwrap_or_default();
        assert!(text.trim().is_empty(), "{template}: {text}");
    }
    let o = objects(&render(None, "netcost", "netcost"));
    assert!(o.ui_deployment.is_none() && o.ui_service.is_none());
    assert!(!o.kinds.iter().any(|k| k == "Deployment"), "{:?}", o.kinds);
}

#[test]
fn the_ui_without_a_prometheus_url_is_refused() {
    let error = render_error(json!({"ui": {"enabled": true}}));
    assert!(
        error.contains(
            "ui.enabled is true but ui.prometheus.url is empty: netcost serve reads the agents' \
             counters from the Prometheus that scrapes them"
        ),
        "{error}"
    );
}

#[test]
fn the_ui_is_a_least_privilege_deployment_behind_a_cluster_ip_service() {
    let o = objects(&render_with(&[ui_values()], "netcost", "monitoring"));
    let d = o.ui_deployment.unwrap_or_else(|| panic!("no Deployment"));
    assert_eq!(d.metadata.name.as_deref(), Some("netcost-netcost-ui"));
    assert_eq!(d.metadata.namespace.as_deref(), Some("monitoring"));
    let pod = ui_pod(&d);
    assert_eq!(pod.host_network, None, "serve needs no host network");
    assert_eq!(pod.automount_service_account_token, Some(false));
    let pod_sc = pod.security_context.clone().unwrap_or_default();
    assert_eq!(
        (pod_sc.run_as_non_root, pod_sc.run_as_user),
        (Some(true), Some(65532))
    );
    let c = pod
        .containers
        .first()
        .unwrap_or_else(|| panic!("no container"));
    assert_eq!(c.image.as_deref(), Some("ghcr.io/netcost/netcost:0.1.0"));
    assert_eq!(
        c.args.as_deref().unwrap_or_default(),
        [
            "serve",
            "--prometheus",
            "http://prometheus-server.prometheus.svc",
            "--query-timeout",
            "30s",
            "--provider",
            "aws",
            "--listen",
            "0.0.0.0:9095",
        ]
    );
    let sc = c.security_context.clone().unwrap_or_default();
    assert_eq!(sc.privileged, Some(false));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    // The image's capability-free copy of the binary: no capability is needed to execute it.
    assert_eq!(
        c.command.as_deref(),
        Some(&["/usr/local/bin/netcost-ui".to_owned()][..])
    );
    assert_eq!(capabilities(c), (vec![], vec!["ALL"]));
    assert_eq!(first_port(c), ("http".into(), 9095));
    for probe in [&c.liveness_probe, &c.readiness_probe] {
        let http = probe
            .as_ref()
            .and_then(|p| p.http_get.clone())
            .unwrap_or_else(|| panic!("no httpGet probe"));
        assert_eq!(http.path.as_deref(), Some("/healthz"));
        assert_eq!(
            http.port,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("http".into())
        );
    }

    let svc = o.ui_service.unwrap_or_else(|| panic!("no ui Service"));
    let spec = svc.spec.unwrap_or_default();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.cluster_ip, None, "not headless");
    let ports = spec.ports.unwrap_or_default();
    assert_eq!(
        ports.iter().map(|p| p.port).collect::<Vec<_>>(),
        [9095],
        "not OpenCost's 9003 or 9090"
    );
    let labels = d
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    assert!(selects(&spec.selector.unwrap_or_default(), &labels));
    // OpenCost and Kubecost scrape pods labelled app.kubernetes.io/name=network-costs as agents;
    // nor may the agents' own Service and DaemonSet select this pod.
    assert_eq!(
        labels.get("app.kubernetes.io/name").map(String::as_str),
        Some("netcost-ui")
    );
    let ds = o.daemon_set.unwrap_or_else(|| panic!("no DaemonSet"));
    assert!(!selects(&daemon_set_selector(&ds), &labels));
    let agent_selector = o.service.and_then(|s| s.spec).and_then(|s| s.selector);
    assert!(!selects(&agent_selector.unwrap_or_default(), &labels));
    assert!(o.ui_config_map.is_none(), "no pricing file given");

    let files =
        render_files(&[ui_values()], "netcost", "monitoring").unwrap_or_else(|e| panic!("{e}"));
    let notes = files
        .get("netcost/templates/NOTES.txt")
        .cloned()
        .unwrap_or_default();
    assert!(
        notes.contains("kubectl -n monitoring port-forward svc/netcost-netcost-ui 9095:9095"),
        "{notes}"
    );
}

#[test]
fn a_ui_pricing_file_is_mounted_from_a_config_map_and_passed_to_serve() {
    let pricing = json!({"provider": "gcp", "cross_zone": {"egress": 0.02}});
    let o = objects(&render_with(
        &[
            ui_values(),
            json!({"ui": {"pricing": pricing, "port": 9096, "provider": "gcp",
                          "nodeSelector": {"kubernetes.io/os": "linux"}}}),
        ],
        "netcost",
        "netcost",
    ));
    let cm = o
        .ui_config_map
        .unwrap_or_else(|| panic!("no pricing ConfigMap"));
    let text = cm
        .data
        .and_then(|d| d.get("pricing.yaml").cloned())
        .unwrap_or_default();
    assert_eq!(support::chart::yaml(&text, "pricing.yaml"), pricing);
    let d = o.ui_deployment.unwrap_or_else(|| panic!("no Deployment"));
    let pod = ui_pod(&d);
    let c = &pod.containers[0];
    let args = c.args.clone().unwrap_or_default();
    let at = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    assert_eq!(
        at("--pricing").as_deref(),
        Some("/etc/netcost-ui/pricing.yaml")
    );
    assert_eq!(at("--listen").as_deref(), Some("0.0.0.0:9096"));
    assert_eq!(at("--provider").as_deref(), Some("gcp"));
    let mount = c
        .volume_mounts
        .as_deref()
        .and_then(|m| m.first())
        .unwrap_or_else(|| panic!("no mount"));
    assert_eq!(mount.mount_path, "/etc/netcost-ui");
    let volume = pod
        .volumes
        .as_deref()
        .and_then(|v| v.iter().find(|v| v.name == mount.name))
        .and_then(|v| v.config_map.as_ref())
        .map(|c| c.name.clone());
    assert_eq!(volume, cm.metadata.name);
    assert_eq!(
        pod.node_selector
            .unwrap_or_default()
            .get("kubernetes.io/os")
            .map(String::as_str),
        Some("linux")
    );
    let checksum = d
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .and_then(|a| a.get("checksum/pricing").cloned())
        .unwrap_or_default();
    assert_eq!(checksum.len(), 64, "a pricing change must roll the pod");
}
