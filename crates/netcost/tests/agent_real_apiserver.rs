//! `netcost agent` without `--inventory`, as the chart's ServiceAccount, against a real
//! kube-apiserver into which the chart was installed with the helm CLI: the user's path. The
//! agent finds the API through `KUBECONFIG`, as it would outside a pod, with a token from the
//! TokenRequest API in a file it re-reads, as a projected service-account token is.
//!
//! What is asserted comes from the objects this test created: this node's pods on
//! `netcost_pod_info` (names, zones, regions, owners), and a revoked RBAC verb on
//! `netcost_kubernetes_watch_*` and in the log.

// Each test file uses a part of the shared support.
#[allow(dead_code)]
mod support {
    #[path = "../../../k8s/tests/support/chart.rs"]
    pub mod chart;
    #[path = "../support/real_agent.rs"]
    pub mod real_agent;
    #[path = "../../../k8s/tests/support/real_cluster.rs"]
    pub mod real_cluster;
    #[path = "../../../k8s/tests/support/scenario.rs"]
    pub mod scenario;
}

use std::path::Path;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use support::real_agent::{Agent, value_of};
use support::real_cluster::RealCluster;
use support::scenario::*;

/// The `netcost_pod_info` series of a scrape, sorted.
fn pod_info(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("netcost_pod_info{"))
        .collect();
    lines.sort_unstable();
    lines
}

/// A `netcost_pod_info` series without its uid, which the API server chose.
fn without_uid(line: &str) -> String {
    match (line.find(",uid=\""), line.find("\",node=")) {
        (Some(a), Some(b)) if a < b => format!("{}{}", &line[..a], &line[b + 1..]),
        _ => line.to_owned(),
    }
}

fn log_contains(path: &Path, needle: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle))
}

#[test]
fn the_agent_as_the_charts_service_account_maps_this_nodes_pods_and_reports_a_revoked_verb() {
    let mut cluster = RealCluster::start();
    let token = install_chart(&cluster);
    populate(&cluster);
    let mut agent = Agent::start(&cluster, CHART_ACCOUNT, &token, "node-a");

    // node-a's pods, as created: web's (owned by the Deployment through its ReplicaSet) and one
    // without owner, both in node-a's zone and region.
    let text = agent.wait_for("node-a's two pods are listed", |t| pod_info(t).len() == 2);
    let pods: Vec<String> = pod_info(&text).into_iter().map(without_uid).collect();
    assert_eq!(
        pods,
        [
            "netcost_pod_info{namespace=\"shop\",pod_name=\"debug\",node=\"node-a\",zone=\"us-east-1a\",region=\"us-east-1\",owner_kind=\"\",owner_name=\"\"} 1",
            "netcost_pod_info{namespace=\"shop\",pod_name=\"web-5d8f7-aaaaa\",node=\"node-a\",zone=\"us-east-1a\",region=\"us-east-1\",owner_kind=\"Deployment\",owner_name=\"web\"} 1",
        ],
        "{text}"
    );
    for resource in ["nodes", "pods", "services", "replicasets", "jobs"] {
        assert_eq!(
            value_of(
                &text,
                &format!("netcost_kubernetes_watch_failing{{resource=\"{resource}\"}}")
            ),
            Some(0.0),
            "{text}"
        );
    }
    assert!(
        !text.contains("netcost_kubernetes_watch_failures_total{"),
        "{text}"
    );

    // node-a moves to another zone: its pods follow.
    let nodes: Api<Node> = Api::all(cluster.admin());
    let relabel = json!({"metadata": {"labels": {"topology.kubernetes.io/zone": "us-east-1c"}}});
    cluster
        .block_on(nodes.patch("node-a", &PatchParams::default(), &Patch::Merge(&relabel)))
        .unwrap_or_else(|e| panic!("{e}"));
    agent.wait_for("node-a's pods are in us-east-1c", |t| {
        let pods = pod_info(t);
        pods.len() == 2 && pods.iter().all(|l| l.contains("zone=\"us-east-1c\""))
    });

    // The pods verb revoked. The agent's watches last 290 s; a restart of the API server (an
    // upgrade of the control plane, say) makes them resume now. The failure is on /metrics and
    // in the log, and the pods stay.
    set_pod_verbs(&cluster, &["get", "list"]);
    cluster.stop_apiserver();
    cluster.start_apiserver();
    let text = agent.wait_for("the pods watch is failing as forbidden", |t| {
        value_of(t, "netcost_kubernetes_watch_failing{resource=\"pods\"}") == Some(1.0)
            && value_of(
                t,
                "netcost_kubernetes_watch_failures_total{resource=\"pods\",reason=\"forbidden\"}",
            )
            .is_some_and(|n| n >= 1.0)
    });
    assert_eq!(pod_info(&text).len(), 2, "{text}");
    assert!(
        log_contains(
            &agent.log,
            "forbids this agent's ServiceAccount to list or watch pods"
        ),
        "{}",
        agent.log()
    );
    set_pod_verbs(&cluster, &["get", "list", "watch"]);
    agent.wait_for("the pods watch recovered", |t| {
        value_of(t, "netcost_kubernetes_watch_failing{resource=\"pods\"}") == Some(0.0)
    });
}

/// `/readyz`'s status and body.
fn readyz(agent: &Agent) -> Option<(u16, String)> {
    let mut response = ureq::get(format!("http://{}/readyz", agent.addr))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.body_mut().read_to_string().ok()?))
}

#[test]
fn a_cluster_role_without_a_verb_from_the_start_shows_on_metrics_and_readyz() {
    let cluster = RealCluster::start();
    let token = install_chart(&cluster);
    populate(&cluster);
    // pods may be read one by one but not listed: the first list fails.
    set_pod_verbs(&cluster, &["get"]);
    let mut agent = Agent::start(&cluster, CHART_ACCOUNT, &token, "node-a");
    let text = agent.wait_for("the pods list is failing as forbidden", |t| {
        value_of(t, "netcost_kubernetes_watch_failing{resource=\"pods\"}") == Some(1.0)
            && value_of(
                t,
                "netcost_kubernetes_watch_failures_total{resource=\"pods\",reason=\"forbidden\"}",
            )
            .is_some_and(|n| n >= 1.0)
    });
    // Only pods fail; nothing is counted yet, so there is no pod series.
    assert_eq!(
        value_of(
            &text,
            "netcost_kubernetes_watch_failing{resource=\"nodes\"}"
        ),
        Some(0.0),
        "{text}"
    );
    assert!(pod_info(&text).is_empty(), "{text}");
    let (status, body) = readyz(&agent).unwrap_or_else(|| panic!("no answer on /readyz"));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("pods: forbidden"), "{body}");
    assert!(body.contains("get, list and watch"), "{body}");

    // The ClusterRole fixed: the agent starts for real on the same address.
    set_pod_verbs(&cluster, &["get", "list", "watch"]);
    agent.wait_for("node-a's two pods are listed", |t| pod_info(t).len() == 2);
    let deadline = std::time::Instant::now() + support::real_agent::FOLLOW;
    while readyz(&agent).map(|r| r.0) != Some(200) {
        assert!(
            std::time::Instant::now() < deadline,
            "not ready: {:?}\n{}",
            readyz(&agent),
            agent.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}
