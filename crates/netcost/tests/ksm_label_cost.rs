#![cfg(feature = "prometheus-tests")]
//! Cost by pod label on real kube-state-metrics output: a real kube-apiserver holds labelled
//! pods, kube-state-metrics (built from its Go module by `scripts/install-test-deps.sh`) exports
//! their `kube_pod_labels`, `netcost agent` (the chart's ServiceAccount) counts the bytes of a
//! conntrack table this test writes, and a real Prometheus, Debian's 2.x and a current 3.x in
//! turn, scrapes both. `netcost report --aggregate label:app.kubernetes.io/part-of` must then
//! give each label value the bytes the test put in, priced by hand.

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

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use k8s_openapi::api::core::v1::Pod;
use netcost_server::testing::{Prometheus, prometheus_servers, wait_until};
use serde_json::{Value, json};
use support::real_agent::{Agent, tcp_flow};
use support::real_cluster::{RealCluster, test_bin};
use support::scenario::*;

/// AWS prices bytes between zones at $0.01 per GB each way, its GB being 2^30 bytes
/// (<https://aws.amazon.com/ec2/pricing/on-demand/#Data_Transfer_within_the_same_AWS_Region>;
/// docs/pricing.md shows why the GB is binary).
const AWS_CROSS_ZONE_PER_GIB: f64 = 0.01;
const GIB: f64 = 1_073_741_824.0;
const PART_OF: &str = "app.kubernetes.io/part-of";

/// kube-state-metrics watching the cluster's pods, killed on drop.
struct KubeStateMetrics {
    child: Child,
    addr: SocketAddr,
}

impl KubeStateMetrics {
    /// Exports the pods of `cluster` with the `app.kubernetes.io/part-of` label let through, as
    /// cost by label needs (kube-state-metrics exports no pod label by default).
    fn start(cluster: &RealCluster) -> KubeStateMetrics {
        let port = |what: &str| {
            TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap_or_else(|e| panic!("no free port for {what}: {e}"))
        };
        let (addr, telemetry) = (port("metrics"), port("telemetry"));
        let log = cluster.dir().join("kube-state-metrics.log");
        let bin = test_bin("kube-state-metrics");
        let child = Command::new(&bin)
            .arg(format!(
                "--kubeconfig={}",
                cluster.admin_kubeconfig().display()
            ))
            .args(["--host=127.0.0.1", &format!("--port={}", addr.port())])
            .args([
                "--telemetry-host=127.0.0.1",
                &format!("--telemetry-port={}", telemetry.port()),
            ])
            .arg("--resources=pods")
            .arg(format!("--metric-labels-allowlist=pods=[{PART_OF}]"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}")))
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        KubeStateMetrics { child, addr }
    }
}

impl Drop for KubeStateMetrics {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running pod of `NS` on `node` at `address`, with `labels`.
fn labelled_pod(cluster: &RealCluster, name: &str, node_name: &str, labels: Value, address: &str) {
    let _: Pod = create(
        cluster,
        NS,
        json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": node_name,
                     "containers": [{"name": "app", "image": "registry.example/app:1"}]},
        }),
    );
    set_pod_status(cluster, name, "Running", address);
}

/// One row of `netcost report --output csv`: (cross-zone egress, ingress, cost).
fn row<'a>(csv: &'a str, name: &str) -> (u64, u64, f64) {
    let fields: Vec<&'a str> = csv
        .lines()
        .find(|l| l.split(',').next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{csv}"))
        .split(',')
        .collect();
    let number = |i: usize| -> f64 {
        fields[i]
            .parse()
            .unwrap_or_else(|e| panic!("{name}: field {i}: {e}"))
    };
    (number(3) as u64, number(4) as u64, number(5))
}

fn report(prometheus: &Prometheus, window: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_netcost"))
        .args([
            "report",
            "--prometheus",
            &prometheus.url,
            "--provider",
            "aws",
        ])
        .args([
            "--window",
            window,
            "--aggregate",
            &format!("label:{PART_OF}"),
        ])
        .args(["--output", "csv"])
        .output()
        .unwrap_or_else(|e| panic!("netcost report: {e}"));
    assert!(
        out.status.success(),
        "netcost report: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rfc3339(unix_seconds: f64) -> String {
    let t = jiff::Timestamp::from_millisecond((unix_seconds * 1000.0).round() as i64)
        .unwrap_or_else(|e| panic!("{e}"));
    t.to_string()
}

fn check_cost_by_label(program: &Path, name: &str) {
    let cluster = RealCluster::start();
    let token = install_chart(&cluster);
    namespace(&cluster, NS);
    node(&cluster, "node-a", "us-east-1a", "us-east-1", "192.0.2.1");
    node(&cluster, "node-b", "us-east-1b", "us-east-1", "192.0.2.2");
    labelled_pod(
        &cluster,
        "cart",
        "node-a",
        json!({PART_OF: "checkout"}),
        "10.244.0.5",
    );
    labelled_pod(
        &cluster,
        "search",
        "node-a",
        json!({PART_OF: "catalog"}),
        "10.244.0.6",
    );
    labelled_pod(
        &cluster,
        "debug",
        "node-a",
        json!({"app": "debug"}),
        "10.244.0.9",
    );
    labelled_pod(
        &cluster,
        "db",
        "node-b",
        json!({PART_OF: "storage"}),
        "10.244.1.5",
    );

    let mut agent = Agent::start(&cluster, CHART_ACCOUNT, &token, "node-a");
    let ksm = KubeStateMetrics::start(&cluster);
    let agent_addr: SocketAddr = agent.addr.parse().unwrap_or_else(|e| panic!("{e}"));
    let prometheus = Prometheus::start_binary(program, name, &[agent_addr, ksm.addr]);
    let egress = "kubecost_pod_network_egress_bytes_total";
    // Every local pod's series exist at zero before the first byte, and kube-state-metrics has
    // exported the labels.
    agent.wait_for("node-a's three pods are listed", |t| {
        t.lines()
            .filter(|l| l.starts_with("netcost_pod_info{"))
            .count()
            == 3
    });
    wait_until("the zero samples and the pod labels", || {
        prometheus.instant(
            &format!("count(count by (pod_name) ({egress}{{namespace=\"{NS}\"}} == 0))"),
            None,
        ) == Some(3.0)
            && prometheus.instant(
                &format!("count(kube_pod_labels{{namespace=\"{NS}\",label_app_kubernetes_io_part_of!=\"\"}})"),
                None,
            ) == Some(3.0)
    });

    // What the pods of node-a exchanged with db, in node-b's zone: (sent, received).
    let flows = [
        ("10.244.0.5", 3_000_000_u64, 1_000_000_u64),
        ("10.244.0.6", 5_000_000, 2_000_000),
        ("10.244.0.9", 700_000, 300_000),
    ];
    let lines: Vec<String> = flows
        .iter()
        .zip(40_000_u16..)
        .map(|((src, sent, received), port)| tcp_flow(src, "10.244.1.5", port, *sent, *received))
        .collect();
    agent.write_table(&lines);
    let sent: u64 = flows.iter().map(|f| f.1).sum();
    let received: u64 = flows.iter().map(|f| f.2).sum();
    wait_until("Prometheus to hold the bytes", || {
        prometheus.instant(&format!("sum({egress}{{namespace=\"{NS}\"}})"), None)
            == Some(sent as f64)
            && prometheus.instant(
                &format!("sum(kubecost_pod_network_ingress_bytes_total{{namespace=\"{NS}\"}})"),
                None,
            ) == Some(received as f64)
    });
    // A window ending on the agent's last sample: with the series born at zero inside it,
    // increase() neither extrapolates nor misses a byte.
    let last = prometheus
        .instant(
            &format!("max(timestamp({egress}{{namespace=\"{NS}\"}}))"),
            None,
        )
        .unwrap_or_else(|| panic!("no timestamp"));
    let csv = report(
        &prometheus,
        &format!("{},{}", rfc3339(last - 120.0), rfc3339(last)),
    );

    for (label, (sent, received)) in [
        ("app.kubernetes.io/part-of=checkout", (3_000_000, 1_000_000)),
        ("app.kubernetes.io/part-of=catalog", (5_000_000, 2_000_000)),
        // debug has no part-of label; db's bytes were counted by no agent (none runs on node-b).
        ("__unallocated__", (700_000, 300_000)),
    ] {
        let (egress, ingress, cost) = row(&csv, label);
        assert_eq!(
            (egress, ingress),
            (sent, received),
            "{name}, {label}:\n{csv}"
        );
        let expected = (sent + received) as f64 / GIB * AWS_CROSS_ZONE_PER_GIB;
        // The CSV prints costs to six decimals.
        assert!(
            (cost - expected).abs() < 1e-6,
            "{name}, {label}: {cost} vs {expected}:\n{csv}"
        );
    }
    assert!(!csv.contains("part-of=storage"), "{name}:\n{csv}");
}

#[test]
fn cost_by_pod_label_from_real_kube_state_metrics_matches_the_bytes_put_in() {
    for (name, program) in prometheus_servers() {
        check_cost_by_label(&program, &format!("ksm-{name}"));
    }
}
