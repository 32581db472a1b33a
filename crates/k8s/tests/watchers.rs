//! The watchers against an in-process list+watch API server: initial list, watch events, a
//! `410 Gone` re-list and a dropped connection, with owner resolution through ReplicaSets and
//! Jobs.

mod support;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use netcost_core::topology::{Endpoint, Topology};
use netcost_k8s::{K8sSettings, TopologyFeed, WatchOptions};
use serde_json::{Value, json};
use support::api_server::ApiServer;

fn node(name: &str, zone: Option<&str>, ip: &str) -> Value {
    let labels = match zone {
        Some(z) => json!({"topology.kubernetes.io/zone": z, "topology.kubernetes.io/region": "r1"}),
        None => json!({}),
    };
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": format!("uid-{name}"), "labels": labels,
                     "managedFields": [{"manager": "kubelet"}]},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    })
}

fn pod(name: &str, node: &str, ip: &str, owner: Option<(&str, &str)>, labels: Value) -> Value {
    let refs: Vec<Value> = owner
        .map(|(kind, owner)| {
            let api = if kind == "Job" { "batch/v1" } else { "apps/v1" };
            json!({"apiVersion": api, "kind": kind, "name": owner, "uid": "o", "controller": true})
        })
        .into_iter()
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
                     "creationTimestamp": "2025-01-01T00:00:00Z", "labels": labels,
                     "ownerReferences": refs},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "192.0.2.1"},
    })
}

fn owned(kind: &str, name: &str, owner_kind: &str, owner: &str) -> Value {
    let api = if kind == "Job" { "batch/v1" } else { "apps/v1" };
    json!({
        "apiVersion": api, "kind": kind,
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
                     "ownerReferences": [{"apiVersion": api, "kind": owner_kind, "name": owner,
                                          "uid": "p", "controller": true}]},
    })
}

fn service(name: &str, ip: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}")},
        "spec": {"clusterIP": ip, "clusterIPs": [ip]},
    })
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn pod_at(topology: &Topology, at: &str) -> Option<String> {
    match topology.lookup(ip(at)) {
        Some(Endpoint::Pod(p)) => Some(p.name.to_string()),
        _ => None,
    }
}

fn owner_of(topology: &Topology, name: &str) -> Option<(String, String)> {
    topology
        .pods()
        .find(|p| &*p.name == name)
        .and_then(|p| p.owner.as_ref())
        .map(|o| (o.kind.to_string(), o.name.to_string()))
}

/// A cluster of two nodes (node-b without zone labels), a Deployment's pod, a CronJob's pod and a
/// Service.
fn cluster() -> ApiServer {
    let server = ApiServer::default();
    server.apply("nodes", node("node-a", Some("z-a"), "192.0.2.1"));
    server.apply("nodes", node("node-b", None, "192.0.2.2"));
    server.apply(
        "replicasets",
        owned("ReplicaSet", "web-5d8f7", "Deployment", "web"),
    );
    server.apply("jobs", owned("Job", "backup-2900", "CronJob", "backup"));
    server.apply(
        "pods",
        pod(
            "web-5d8f7-aaaaa",
            "node-a",
            "10.244.0.5",
            Some(("ReplicaSet", "web-5d8f7")),
            json!({}),
        ),
    );
    server.apply(
        "pods",
        pod(
            "backup-2900-bbbbb",
            "node-b",
            "10.244.1.6",
            Some(("Job", "backup-2900")),
            json!({}),
        ),
    );
    server.apply("services", service("web", "10.96.0.10"));
    server
}

struct Agent {
    feed: TopologyFeed,
    waiter: tokio::runtime::Runtime,
}

impl Agent {
    fn start(server: &ApiServer) -> Agent {
        let url = server.start();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let client = {
            let _entered = runtime.enter();
            let config = kube::Config::new(url.parse().unwrap_or_else(|e| panic!("{e}")));
            kube::Client::try_from(config).unwrap_or_else(|e| panic!("{e}"))
        };
        let mut settings = K8sSettings::new("node-a");
        settings.options = WatchOptions {
            debounce: Duration::from_millis(50),
            waiting_log_period: Duration::from_secs(5),
            ..WatchOptions::default()
        };
        let feed = netcost_k8s::start_with_client(runtime, client, settings)
            .unwrap_or_else(|e| panic!("{e}"));
        let waiter = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        Agent { feed, waiter }
    }

    /// Waits (up to 10 s) for a published topology that satisfies `ok`.
    fn wait_for(&mut self, what: &str, ok: impl Fn(&Topology) -> bool) -> Arc<Topology> {
        support::feed::wait_for(&mut self.feed, &self.waiter, Duration::from_secs(10), ok)
            .unwrap_or_else(|| panic!("no topology where {what} within 10 s"))
    }
}

#[test]
fn the_first_topology_holds_the_initial_list_with_workloads_resolved() {
    let server = cluster();
    let agent = Agent::start(&server);
    let t = agent.feed.initial.clone();
    assert_eq!(pod_at(&t, "10.244.0.5").as_deref(), Some("web-5d8f7-aaaaa"));
    assert_eq!(
        owner_of(&t, "web-5d8f7-aaaaa"),
        Some(("Deployment".into(), "web".into())),
        "a ReplicaSet's pod belongs to the ReplicaSet's Deployment"
    );
    assert_eq!(
        owner_of(&t, "backup-2900-bbbbb"),
        Some(("CronJob".into(), "backup".into())),
        "a Job's pod belongs to the Job's CronJob"
    );
    assert!(
        matches!(t.lookup(ip("10.96.0.10")), Some(Endpoint::ServiceIp(s)) if &*s.name == "web")
    );
    assert!(
        matches!(t.lookup(ip("192.0.2.2")), Some(Endpoint::Node(n)) if n.locality.zone.is_none())
    );
    assert_eq!(t.pods_on_node("node-a").count(), 1);
}

#[test]
fn watch_events_add_and_remove_pods_and_a_reused_ip_goes_to_the_new_pod() {
    let server = cluster();
    let mut agent = Agent::start(&server);
    server.apply(
        "pods",
        pod(
            "web-5d8f7-ccccc",
            "node-a",
            "10.244.0.7",
            Some(("ReplicaSet", "web-5d8f7")),
            json!({}),
        ),
    );
    agent.wait_for("the added pod is indexed", |t| {
        pod_at(t, "10.244.0.7").as_deref() == Some("web-5d8f7-ccccc")
    });
    // The old pod goes, and a new pod of another workload gets its IP.
    server.delete("pods", "shop", "web-5d8f7-aaaaa");
    let t = agent.wait_for("the deleted pod left the index", |t| {
        t.pods().all(|p| &*p.name != "web-5d8f7-aaaaa")
    });
    assert_eq!(pod_at(&t, "10.244.0.5"), None);
    server.apply(
        "pods",
        pod("other", "node-b", "10.244.0.5", None, json!({})),
    );
    agent.wait_for("the reused IP names the new pod", |t| {
        pod_at(t, "10.244.0.5").as_deref() == Some("other")
    });
}

#[test]
fn a_replica_set_seen_after_its_pod_still_names_the_deployment() {
    let server = cluster();
    let mut agent = Agent::start(&server);
    // A ReplicaSet of a non-Deployment controller, whose pod arrives first: no hash label, so
    // the name heuristic cannot help; the ReplicaSet's own ownerReference must.
    server.apply(
        "pods",
        pod(
            "canary-7c9-ddddd",
            "node-a",
            "10.244.0.8",
            Some(("ReplicaSet", "canary-7c9")),
            json!({}),
        ),
    );
    agent.wait_for("the pod is indexed with its ReplicaSet", |t| {
        owner_of(t, "canary-7c9-ddddd") == Some(("ReplicaSet".into(), "canary-7c9".into()))
    });
    server.apply(
        "replicasets",
        owned("ReplicaSet", "canary-7c9", "Rollout", "canary"),
    );
    agent.wait_for("the pod names the ReplicaSet's controller", |t| {
        owner_of(t, "canary-7c9-ddddd") == Some(("Rollout".into(), "canary".into()))
    });
}

#[test]
fn a_410_gone_makes_the_watcher_relist_and_drop_what_vanished_meanwhile() {
    let server = cluster();
    let mut agent = Agent::start(&server);
    server.wait_for_watches("pods", 1);
    let lists_before = server.list_requests("pods");
    // While the watch is behind, web's pod is replaced without any event reaching us.
    server.replace_silently(
        "pods",
        vec![pod(
            "web-5d8f7-eeeee",
            "node-a",
            "10.244.0.9",
            Some(("ReplicaSet", "web-5d8f7")),
            json!({}),
        )],
    );
    server.expire_watches("pods");
    let t = agent.wait_for("the re-list replaced the pods", |t| {
        pod_at(t, "10.244.0.9").is_some() && pod_at(t, "10.244.0.5").is_none()
    });
    assert!(
        server.list_requests("pods") > lists_before,
        "a 410 must re-list"
    );
    assert!(t.pods().all(|p| &*p.name != "backup-2900-bbbbb"));
    assert_eq!(
        owner_of(&t, "web-5d8f7-eeeee"),
        Some(("Deployment".into(), "web".into()))
    );
}

#[test]
fn a_dropped_watch_resumes_and_delivers_what_happened_while_it_was_down() {
    let server = cluster();
    let mut agent = Agent::start(&server);
    server.wait_for_watches("pods", 1);
    let watches_before = server.watch_requests("pods");
    server.disconnect("pods");
    // Recorded in the server's history; the reconnecting watch asks for it by resourceVersion.
    server.apply(
        "pods",
        pod("late", "node-a", "10.244.0.11", None, json!({})),
    );
    agent.wait_for("the pod added during the outage arrives", |t| {
        pod_at(t, "10.244.0.11").as_deref() == Some("late")
    });
    assert!(
        server.watch_requests("pods") > watches_before,
        "the watch must reconnect"
    );
    // The last topology was never replaced by an empty one in between.
    let t = agent.wait_for("the other pods are still there", |t| {
        pod_at(t, "10.244.0.5").is_some()
    });
    assert!(pod_at(&t, "10.244.1.6").is_some());
}
