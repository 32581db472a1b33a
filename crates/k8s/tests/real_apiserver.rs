//! The watchers against a real kube-apiserver (and etcd), as the chart's ServiceAccount: the
//! chart is installed with the helm CLI, so its objects are admitted and validated by the server
//! and RBAC is the chart's own ClusterRole; the cluster's objects are created through the API;
//! the expected topology is the objects this test created, never what the code under test says.

mod support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use netcost_core::topology::{Endpoint, Topology};
use netcost_k8s::{K8sSettings, TopologyFeed, WatchOptions};
use serde_json::json;
use support::real_cluster::{self, RealCluster};
use support::scenario::*;

/// How long the watchers may take to follow a change. The machine is small and shared.
const FOLLOW: Duration = Duration::from_secs(60);

/// The watchers of `node-a`'s agent, as the chart's ServiceAccount.
struct Watchers {
    feed: TopologyFeed,
    waiter: tokio::runtime::Runtime,
}

impl Watchers {
    fn start(cluster: &RealCluster, token: &str) -> Watchers {
        let kubeconfig = cluster.write_kubeconfig(CHART_ACCOUNT, token);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let client: Client = real_cluster::client_from(&runtime, &kubeconfig);
        let mut settings = K8sSettings::new("node-a");
        settings.options = WatchOptions {
            debounce: Duration::from_millis(50),
            waiting_log_period: Duration::from_secs(5),
            // Every watch resumes from its resourceVersion after 10 s, as a long-running agent's
            // do every 290 s: a revoked permission shows within the test's patience.
            watch_timeout: Duration::from_secs(10),
        };
        let feed = netcost_k8s::start_with_client(runtime, client, settings)
            .unwrap_or_else(|e| panic!("{e}"));
        let waiter = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        Watchers { feed, waiter }
    }

    /// Waits for a published topology that satisfies `ok`.
    fn wait_for(&mut self, what: &str, ok: impl Fn(&Topology) -> bool) -> Arc<Topology> {
        support::feed::wait_for(&mut self.feed, &self.waiter, FOLLOW, ok).unwrap_or_else(|| {
            panic!(
                "no topology where {what} within {FOLLOW:?}; the last one: {}",
                describe(&self.feed.updates.borrow())
            )
        })
    }
}

/// Pod name -> (IP, owner kind, owner name) and node -> zone, for failure messages.
fn describe(t: &Topology) -> String {
    let pods: Vec<String> = t
        .pods()
        .map(|p| {
            let owner = p
                .owner
                .as_ref()
                .map(|o| format!("{}/{}", o.kind, o.name))
                .unwrap_or_default();
            format!("{} {owner}", p.name)
        })
        .collect();
    let nodes: Vec<String> = t
        .nodes()
        .map(|n| format!("{}={:?}", n.name, n.locality.zone))
        .collect();
    format!("pods [{}] nodes [{}]", pods.join(", "), nodes.join(", "))
}

fn pod_at(t: &Topology, at: &str) -> Option<String> {
    match t.lookup(ip(at)) {
        Some(Endpoint::Pod(p)) => Some(p.name.to_string()),
        _ => None,
    }
}

fn owner_of(t: &Topology, name: &str) -> Option<(String, String)> {
    t.pods()
        .find(|p| &*p.name == name)
        .and_then(|p| p.owner.as_ref())
        .map(|o| (o.kind.to_string(), o.name.to_string()))
}

fn zone_of(t: &Topology, node: &str) -> Option<String> {
    t.node(node)
        .and_then(|n| n.locality.zone.as_deref().map(str::to_owned))
}

fn service_at(t: &Topology, at: &str) -> Option<String> {
    match t.lookup(ip(at)) {
        Some(Endpoint::ServiceIp(s)) => Some(format!("{}/{}", s.namespace, s.name)),
        _ => None,
    }
}

#[test]
fn the_charts_service_account_watches_a_real_api_server_and_follows_every_change() {
    let mut cluster = RealCluster::start();
    let token = install_chart(&cluster);
    assert_granted_rules(&cluster);
    populate(&cluster);
    let mut watchers = Watchers::start(&cluster, &token);

    let t = watchers.feed.initial.clone();
    let expected_pods = [
        ("10.244.0.5", "web-5d8f7-aaaaa"),
        ("10.244.1.5", "web-5d8f7-bbbbb"),
        ("10.244.1.6", "backup-29000-ccccc"),
        ("10.244.0.9", "debug"),
    ];
    for (at, name) in expected_pods {
        assert_eq!(pod_at(&t, at).as_deref(), Some(name), "{}", describe(&t));
    }
    assert_eq!(t.pods().count(), expected_pods.len(), "{}", describe(&t));
    let deployment = Some(("Deployment".to_owned(), "web".to_owned()));
    assert_eq!(owner_of(&t, "web-5d8f7-aaaaa"), deployment);
    assert_eq!(owner_of(&t, "web-5d8f7-bbbbb"), deployment);
    assert_eq!(
        owner_of(&t, "backup-29000-ccccc"),
        Some(("CronJob".into(), "backup".into()))
    );
    assert_eq!(owner_of(&t, "debug"), None);
    assert_eq!(zone_of(&t, "node-a").as_deref(), Some("us-east-1a"));
    assert_eq!(zone_of(&t, "node-b").as_deref(), Some("us-east-1b"));
    assert_eq!(
        t.node("node-b").and_then(|n| n.locality.region.as_deref()),
        Some("us-east-1")
    );
    assert_eq!(service_at(&t, "10.96.0.50").as_deref(), Some("shop/web"));
    // The API server's own Service, which it made itself: the first address of the range.
    assert_eq!(
        service_at(&t, "10.96.0.1").as_deref(),
        Some("default/kubernetes")
    );
    assert_eq!(t.pods_on_node("node-a").count(), 2);

    // A pod added, and one deleted as the kubelet confirms it.
    let rs: ReplicaSet = cluster
        .block_on(Api::<ReplicaSet>::namespaced(cluster.admin(), NS).get("web-5d8f7"))
        .unwrap_or_else(|e| panic!("{e}"));
    let rs_uid = uid(&rs);
    let web = Some(("ReplicaSet", "web-5d8f7", rs_uid.as_str()));
    pod(
        &cluster,
        "web-5d8f7-ddddd",
        "node-a",
        web,
        "Running",
        "10.244.0.7",
    );
    watchers.wait_for("the added pod is indexed", |t| {
        pod_at(t, "10.244.0.7").as_deref() == Some("web-5d8f7-ddddd")
    });
    delete_pod(&cluster, "web-5d8f7-aaaaa");
    let t = watchers.wait_for("the deleted pod left", |t| {
        t.pods().all(|p| &*p.name != "web-5d8f7-aaaaa")
    });
    assert_eq!(pod_at(&t, "10.244.0.5"), None);

    // Its IP is reused by a pod of another owner.
    pod(&cluster, "reuser", "node-b", None, "Running", "10.244.0.5");
    watchers.wait_for("the reused IP names the new pod", |t| {
        pod_at(t, "10.244.0.5").as_deref() == Some("reuser")
    });

    // The Job's pod completes and keeps its IP in its status, while a new pod gets that IP: the
    // IP is the new pod's.
    set_pod_status(&cluster, "backup-29000-ccccc", "Succeeded", "10.244.1.6");
    pod(&cluster, "late", "node-b", None, "Running", "10.244.1.6");
    watchers.wait_for("the finished pod's IP names the running pod", |t| {
        pod_at(t, "10.244.1.6").as_deref() == Some("late")
    });

    // A node's zone label changes.
    let nodes: Api<Node> = Api::all(cluster.admin());
    let relabel = json!({"metadata": {"labels": {"topology.kubernetes.io/zone": "us-east-1c"}}});
    cluster
        .block_on(nodes.patch("node-b", &PatchParams::default(), &Patch::Merge(&relabel)))
        .unwrap_or_else(|e| panic!("{e}"));
    watchers.wait_for("node-b is in its new zone", |t| {
        zone_of(t, "node-b").as_deref() == Some("us-east-1c")
    });

    // The API server goes away mid-watch (killed, as in a crash) and comes back; meanwhile the
    // last topology stays, and afterwards changes arrive again.
    cluster.stop_apiserver();
    std::thread::sleep(Duration::from_secs(2));
    let t = watchers.feed.updates.borrow().clone();
    assert_eq!(pod_at(&t, "10.244.0.7").as_deref(), Some("web-5d8f7-ddddd"));
    cluster.start_apiserver();
    pod(
        &cluster,
        "after-restart",
        "node-a",
        None,
        "Running",
        "10.244.0.20",
    );
    let t = watchers.wait_for("a pod created after the restart is indexed", |t| {
        pod_at(t, "10.244.0.20").as_deref() == Some("after-restart")
    });
    assert_eq!(pod_at(&t, "10.244.0.7").as_deref(), Some("web-5d8f7-ddddd"));
    assert_eq!(zone_of(&t, "node-b").as_deref(), Some("us-east-1c"));
}

/// The chart's ClusterRole as the API server stored it: read-only, the five kinds the watchers
/// list and watch, and nothing more.
fn assert_granted_rules(cluster: &RealCluster) {
    let role: ClusterRole = cluster
        .block_on(Api::<ClusterRole>::all(cluster.admin()).get(CHART_ACCOUNT))
        .unwrap_or_else(|e| panic!("the chart's ClusterRole: {e}"));
    let mut granted: Vec<String> = Vec::new();
    for rule in role.rules.unwrap_or_default() {
        for group in rule.api_groups.unwrap_or_default() {
            for resource in rule.resources.clone().unwrap_or_default() {
                for verb in &rule.verbs {
                    granted.push(format!("{group}/{resource}:{verb}"));
                }
            }
        }
    }
    granted.sort();
    let mut expected: Vec<String> = Vec::new();
    for (group, resource) in [
        ("", "nodes"),
        ("", "pods"),
        ("", "services"),
        ("apps", "replicasets"),
        ("batch", "jobs"),
    ] {
        for verb in ["get", "list", "watch"] {
            expected.push(format!("{group}/{resource}:{verb}"));
        }
    }
    expected.sort();
    assert_eq!(granted, expected);
    let status = cluster.helm(&["status", RELEASE, "--namespace", RELEASE_NAMESPACE]);
    assert!(status.contains("STATUS: deployed"), "{status}");
}

/// Waits for the watchers' health of `resource` to satisfy `ok`.
fn wait_for_health(
    watchers: &Watchers,
    resource: &str,
    what: &str,
    ok: impl Fn(&netcost_k8s::ResourceHealth) -> bool,
) -> netcost_k8s::ResourceHealth {
    let deadline = std::time::Instant::now() + FOLLOW;
    loop {
        let health = watchers
            .feed
            .health
            .snapshot()
            .into_iter()
            .find(|(r, _)| *r == resource)
            .map(|(_, h)| h)
            .unwrap_or_else(|| panic!("no health for {resource}"));
        if ok(&health) {
            return health;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{resource}: {what} not seen within {FOLLOW:?}: {health:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_revoked_watch_verb_is_reported_as_forbidden_and_the_last_pods_stay() {
    let cluster = RealCluster::start();
    let token = install_chart(&cluster);
    populate(&cluster);
    let mut watchers = Watchers::start(&cluster, &token);
    assert_eq!(watchers.feed.initial.pods().count(), 4);
    assert!(
        watchers
            .feed
            .health
            .snapshot()
            .iter()
            .all(|(_, h)| !h.failing && h.failures.is_empty()),
        "{:?}",
        watchers.feed.health.snapshot()
    );

    // The pods watch is refused when it resumes (every 10 s here).
    set_pod_verbs(&cluster, &["get", "list"]);
    let health = wait_for_health(&watchers, "pods", "a forbidden failure", |h| {
        h.failing && h.failures.get("forbidden").copied().unwrap_or(0) > 0
    });
    assert_eq!(
        health.failures.keys().copied().collect::<Vec<_>>(),
        ["forbidden"],
        "{health:?}"
    );
    let t = watchers.feed.updates.borrow().clone();
    assert_eq!(t.pods().count(), 4, "the last pods stay: {}", describe(&t));
    for resource in ["nodes", "services", "replicasets", "jobs"] {
        wait_for_health(&watchers, resource, "not failing", |h| !h.failing);
    }

    // Granted again, the watch comes back and delivers what happened meanwhile.
    pod(
        &cluster,
        "meanwhile",
        "node-a",
        None,
        "Running",
        "10.244.0.30",
    );
    set_pod_verbs(&cluster, &["get", "list", "watch"]);
    watchers.wait_for("the pod created while forbidden is indexed", |t| {
        pod_at(t, "10.244.0.30").as_deref() == Some("meanwhile")
    });
    wait_for_health(&watchers, "pods", "recovered", |h| !h.failing);
}
