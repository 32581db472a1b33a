#![cfg(feature = "prometheus-tests")]
//! Prometheus' own linter on the agent's `/metrics`: `promtool check metrics` (Debian's
//! `prometheus` package) reads a populated agent's exposition from stdin and must report nothing,
//! for every metric family.
//!
//! - On the simulator (`netcost simulate --agent`): pod, node, workload pair, pod info, cycle,
//!   checkpoint and cloud-range families, with samples in every class and service tags.
//! - On the real kernel (`root-tests` as well): the agent with `--source netlink`, whose event
//!   reader adds the `netcost_conntrack_events_*` and `netcost_conntrack_table_fill_ratio`
//!   families, which the simulator's source does not have.
//!
//! promtool's findings name the family and the rule (`counter metrics should have "_total"
//! suffix`, `no help text`, `use base unit "seconds" instead of "milliseconds"`, ...). None is
//! allowed: the Kubecost names the agent must keep (`kubecost_network_costs_parse_time`, a gauge
//! of milliseconds without a unit suffix, and the others) pass promtool 2.42 as they are.

use std::io::Write;
use std::process::{Command, Stdio};

/// promtool's findings on `exposition`, one per line; empty when it has none.
fn promtool_findings(exposition: &str) -> String {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool (Debian's prometheus package, scripts/install-test-deps.sh): {e}")
        });
    child
        .stdin
        .take()
        .unwrap_or_else(|| panic!("promtool's stdin"))
        .write_all(exposition.as_bytes())
        .unwrap_or_else(|e| panic!("writing to promtool: {e}"));
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("promtool: {e}"));
    let mut findings = String::from_utf8_lossy(&out.stdout).into_owned();
    findings.push_str(&String::from_utf8_lossy(&out.stderr));
    if !out.status.success() && findings.trim().is_empty() {
        findings = format!("promtool exited with {} and said nothing", out.status);
    }
    findings.trim().to_owned()
}

/// The families (`# TYPE` lines) of `exposition` that hold at least one sample.
fn families_with_samples(exposition: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            current = rest.split(' ').next().map(str::to_owned);
        } else if !line.starts_with('#')
            && !line.is_empty()
            && let Some(family) = current.take()
        {
            out.push(family);
        }
    }
    out
}

/// The families of `wanted` that have no sample in `exposition`.
fn missing<'a>(wanted: &[&'a str], exposition: &str) -> Vec<&'a str> {
    let present = families_with_samples(exposition);
    wanted
        .iter()
        .filter(|f| !present.iter().any(|p| p == *f))
        .copied()
        .collect()
}

/// Fails with promtool's findings and the exposition it read.
fn assert_lint_clean(what: &str, exposition: &str) {
    let findings = promtool_findings(exposition);
    assert!(
        findings.is_empty(),
        "promtool check metrics on {what}:\n{findings}\n\n--- the exposition ---\n{exposition}"
    );
}

#[test]
fn promtool_finds_nothing_in_the_metrics_of_the_agent_on_the_simulator() {
    use netcost_server::testing::{free_port, wait_until};

    /// Kills the agent when the test ends, pass or fail.
    struct Agent(std::process::Child);
    impl Drop for Agent {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    // Every family must be there with samples before the lint counts: a family that is not
    // rendered yet would not be checked.
    const POPULATED: &[&str] = &[
        "kubecost_pod_network_egress_bytes_total",
        "kubecost_pod_network_ingress_bytes_total",
        "kubecost_network_costs_parsed_entries",
        "kubecost_network_costs_parse_time",
        "netcost_node_network_egress_bytes_total",
        "netcost_node_network_ingress_bytes_total",
        "netcost_workload_traffic_bytes_total",
        "netcost_workload_pairs",
        "netcost_workload_pairs_over_limit_total",
        "netcost_pod_info",
        "netcost_agent_info",
        "netcost_cycles_total",
        "netcost_conntrack_destroy_events_total",
        "netcost_unattributed_bytes_total",
    ];

    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let _agent = Agent(
        Command::new(env!("CARGO_BIN_EXE_netcost"))
            .args(["simulate", "--agent", "--entries", "3000"])
            .args(["--interval", "1s", "--churn-per-min", "50%", "--listen"])
            .arg(addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("netcost simulate: {e}")),
    );
    let scrape = || {
        ureq::get(format!("http://{addr}/metrics"))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .unwrap_or_default()
    };
    let mut exposition = String::new();
    wait_until("every family to have samples", || {
        exposition = scrape();
        let tagged = exposition.lines().any(|l| {
            l.starts_with("kubecost_pod_network_egress_bytes_total{") && !l.contains("service=\"\"")
        });
        tagged && missing(POPULATED, &exposition).is_empty()
    });
    assert_lint_clean("the agent on the simulator", &exposition);
}

#[cfg(feature = "root-tests")]
#[allow(dead_code)]
mod support;

#[cfg(feature = "root-tests")]
#[test]
fn promtool_finds_nothing_in_the_metrics_of_the_agent_on_the_kernel_with_its_event_reader() {
    use std::time::{Duration, Instant};

    use support::cluster::{AGENT_PORT, AgentOptions, Cluster};

    let mut cluster = Cluster::build("promtool");
    // All three providers tagged: GCP's and Azure's built-in tables and AWS's from a file, which
    // is removed once the agents run, so its refreshes fail and are counted.
    std::fs::write(
        cluster.dir.join("config.yaml"),
        "destinations:\n  in-zone: [\"10.0.0.0/8\", \"192.168.0.0/16\"]\nservices:\n  \
         amazon-web-services: true\n  google-cloud-services: true\n  azure-cloud-services: true\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let aws = cluster.dir.join("aws-ip-ranges.json");
    let repo_aws = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/cloud-ip-ranges/aws-ip-ranges.json"
    );
    std::fs::copy(repo_aws, &aws).unwrap_or_else(|e| panic!("{repo_aws}: {e}"));
    cluster.start_agents(
        env!("CARGO_BIN_EXE_netcost"),
        AgentOptions {
            extra_args: vec![
                "--cloud-ranges".into(),
                format!("aws={}", aws.display()),
                "--cloud-ranges-refresh".into(),
                "1s".into(),
            ],
            ..AgentOptions::default()
        },
    );
    std::fs::remove_file(&aws).unwrap_or_else(|e| panic!("{}: {e}", aws.display()));
    cluster.pod_to_pod("cli-a", "web-b", false).run();

    // The event reader's and the cloud ranges' families, and the flow's bytes on the client.
    const POPULATED: &[&str] = &[
        "netcost_conntrack_events_mode",
        "netcost_conntrack_events_reliable",
        "netcost_conntrack_events_degraded_seconds_total",
        "netcost_conntrack_events_valve_trips_total",
        "netcost_conntrack_events_dropped_total",
        "netcost_conntrack_table_fill_ratio",
        "netcost_cloud_ranges_timestamp_seconds",
        "netcost_cloud_ranges_prefixes",
        "netcost_cloud_ranges_refresh_failures_total",
        "kubecost_pod_network_egress_bytes_total",
        "netcost_node_network_egress_bytes_total",
        "netcost_workload_traffic_bytes_total",
        "netcost_pod_info",
    ];
    let ns = cluster.node_ns("node-a1");
    let deadline = Instant::now() + Duration::from_secs(30);
    let exposition = loop {
        let body = support::metrics::http_get(&ns, AGENT_PORT, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default();
        let counted = body.lines().any(|l| {
            l.starts_with("kubecost_pod_network_egress_bytes_total{")
                && l.contains("pod_name=\"cli-a\"")
                && !l.ends_with(" 0")
        });
        let missing = missing(POPULATED, &body);
        if counted && missing.is_empty() {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the agent on node-a1 did not export {missing:?} (or cli-a's bytes) within 30 s\n{body}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_lint_clean("the agent on the kernel (node-a1)", &exposition);
}

#[test]
fn promtool_reports_what_the_test_must_catch() {
    // A counter without `_total` and a non-base unit: if promtool stopped reporting these (a
    // missing binary, a changed command line), the tests above would pass on anything.
    let findings = promtool_findings(
        "# HELP x_milliseconds Bad.\n# TYPE x_milliseconds counter\nx_milliseconds 1\n",
    );
    assert!(findings.contains("\"_total\" suffix"), "{findings}");
    assert!(findings.contains("base unit"), "{findings}");
}
