#![cfg(all(feature = "root-tests", feature = "prometheus-tests"))]
//! A real Prometheus (Debian's 2.x `prometheus` and a current 3.x, in turn) scrapes a real agent
//! while a transfer runs, and PromQL's `increase()` over the window must give every byte the
//! agent counted.
//!
//! Why this matters: `increase()` ignores the first sample of a series. If a pod's series were
//! born with the bytes of its first cycle in it, a short transfer would vanish from every
//! OpenCost/Kubecost query. The agent creates every local pod's series at zero when the pod
//! appears; this test proves the effect end to end.
//!
//! Needs root and the two Prometheus binaries (`scripts/install-test-deps.sh`); run with
//! `cargo test -p netcost --features root-tests,prometheus-tests --test prometheus_increase`.

#[allow(dead_code)]
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netcost_server::testing::prometheus_servers;
use support::cluster::{AGENT_PORT, AgentOptions, Cluster};
use support::expect::{Class, expect_counts, pod_end};
use support::metrics::http_get;

const NETCOST: &str = env!("CARGO_BIN_EXE_netcost");
const PROMETHEUS_PORT: u16 = 9390;

/// The Prometheus server, killed on drop.
struct Prometheus {
    child: Child,
    ns: String,
    log: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus (the binary `program`) inside `ns`, scraping the agent there every
    /// second.
    fn start(program: &Path, ns: &str, dir: &Path) -> Prometheus {
        let config = dir.join("prometheus.yml");
        fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n- job_name: netcost\n  static_configs:\n  - targets: ['127.0.0.1:{AGENT_PORT}']\n"
            ),
        )
        .unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
        let log = dir.join("prometheus.log");
        let log_file = fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(program)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}"))
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let prometheus = Prometheus {
            child,
            ns: ns.to_owned(),
            log,
        };
        prometheus.wait_until(Duration::from_secs(30), "ready", || {
            matches!(
                http_get(&prometheus.ns, PROMETHEUS_PORT, "/-/ready"),
                Ok((200, _))
            )
        });
        prometheus
    }

    /// An instant query, at `time` (Unix seconds) if given; returns the value of the only series.
    fn query(&self, promql: &str, time: Option<f64>) -> Option<f64> {
        let mut path = format!("/api/v1/query?query={}", percent_encode(promql));
        if let Some(t) = time {
            path += &format!("&time={t:.3}");
        }
        let (status, body) = http_get(&self.ns, PROMETHEUS_PORT, &path)
            .unwrap_or_else(|e| panic!("query {promql}: {e}"));
        assert_eq!(status, 200, "query {promql}: {body}");
        let json: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("query {promql}: {e}: {body}"));
        let result = json["data"]["result"].as_array()?;
        assert!(result.len() <= 1, "{promql} matched several series: {body}");
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    fn wait_until(&self, limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !done() {
            if Instant::now() > deadline {
                let log = fs::read_to_string(&self.log).unwrap_or_default();
                panic!("Prometheus: gave up waiting for {what}; its log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_increase_over_a_transfer_sees_every_byte_the_agent_counted() {
    for (name, program) in prometheus_servers() {
        increase_sees_every_byte(&program, name);
    }
}

fn increase_sees_every_byte(program: &Path, name: &str) {
    let mut cluster = Cluster::build(name);
    cluster.start_agents(NETCOST, AgentOptions::default());
    let node_ns = cluster.node_ns("node-a1");
    let prometheus = Prometheus::start(program, &node_ns, &cluster.dir);

    let series = |direction: &str| {
        format!(
            "kubecost_pod_network_{direction}_bytes_total{{pod_name=\"cli-a\",internet=\"false\",same_zone=\"false\",same_region=\"true\",service=\"\"}}"
        )
    };
    let (egress, ingress) = (series("egress"), series("ingress"));
    // The series exist, at zero, before the first byte: Prometheus has stored a 0 sample.
    prometheus.wait_until(Duration::from_secs(30), "the zero sample of cli-a", || {
        prometheus.query(&egress, None) == Some(0.0)
            && prometheus.query(&ingress, None) == Some(0.0)
    });

    // A short cross-zone transfer (3 MiB up, 1 MiB down): it completes within about one cycle,
    // which is exactly what a series born non-zero would lose.
    let flow = cluster.pod_to_pod("cli-a", "web-b", false).run();
    let ended = Instant::now();
    // The agent's own counters are right (against the bytes sent)...
    expect_counts(
        &cluster,
        ended,
        &pod_end(
            "node-a1",
            "cli-a",
            Class::CrossZone,
            flow.client_to_server(),
            flow.server_to_client(),
        ),
    );
    let scrape = cluster
        .scrape("node-a1")
        .unwrap_or_else(|e| panic!("scrape: {e}"));
    let agent_value = |direction: &str| {
        scrape
            .metric(&format!("kubecost_pod_network_{direction}_bytes_total"))
            .label("pod_name", "cli-a")
            .label("same_zone", "false")
            .label("same_region", "true")
            .label("internet", "false")
            .label("service", "")
            .value()
    };
    let (agent_egress, agent_ingress) = (agent_value("egress"), agent_value("ingress"));
    assert!(
        agent_egress >= flow.client.sent as f64,
        "egress {agent_egress} < sent {}",
        flow.client.sent
    );
    assert!(agent_ingress >= flow.server.sent as f64);

    // ...and Prometheus has caught up with them.
    prometheus.wait_until(Duration::from_secs(30), "the final values", || {
        prometheus.query(&egress, None) == Some(agent_egress)
            && prometheus.query(&ingress, None) == Some(agent_ingress)
    });

    // Evaluated exactly at the last sample, `increase()` does not extrapolate past it; and since
    // the series starts at 0 inside the window, it does not extrapolate before it either. So
    // increase() must equal the counted bytes exactly.
    for (series, counted) in [(&egress, agent_egress), (&ingress, agent_ingress)] {
        let last = prometheus
            .query(&format!("timestamp({series})"), None)
            .unwrap_or_else(|| panic!("no timestamp for {series}"));
        let increase = prometheus
            .query(&format!("increase({series}[5m])"), Some(last))
            .unwrap_or_else(|| panic!("no increase for {series}"));
        assert_eq!(
            increase, counted,
            "{name}: increase({series}[5m]) at {last}"
        );
    }
}
