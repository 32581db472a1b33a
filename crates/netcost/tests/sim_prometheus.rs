#![cfg(feature = "prometheus-tests")]
//! The whole cost chain against ground truth: the simulator feeds the real agent runtime, a real
//! Prometheus scrapes its `/metrics`, and the allocation engine reads Prometheus back. The bytes
//! per class must equal the simulator's truth exactly, and the cost must equal what the AWS
//! price sheet's published figures give for those bytes, computed here by hand.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use netcost_agent::cloud::CloudSettings;
use netcost_agent::{AgentSettings, SourceKind};
use netcost_core::class::{Direction, TrafficClass};
use netcost_core::config::ClassificationConfig;
use netcost_core::flow::{FlowRecord, FlowSource, ReadStats};
use netcost_core::inventory::Inventory;
use netcost_cost::pricing::PriceSheet;
use netcost_server::engine::Engine;
use netcost_server::prometheus::PrometheusBackend;
use netcost_server::testing::{Prometheus, free_port, wait_until};
use netcost_sim::{Cluster, ClusterSpec, SimError, Simulator, TableSpec};

/// The simulator on a clock the test moves: traffic flows only while the test advances it.
struct TestClock {
    sim: Arc<Mutex<Simulator>>,
    now_ms: Arc<AtomicU64>,
}

impl TestClock {
    fn with<T>(&mut self, read: impl FnOnce(&mut Simulator) -> T) -> T {
        let mut sim = self.sim.lock().unwrap_or_else(|e| e.into_inner());
        sim.advance_to(self.now_ms.load(Ordering::Relaxed));
        read(&mut sim)
    }
}

impl FlowSource for TestClock {
    type Error = SimError;
    fn dump(&mut self, sink: &mut dyn FnMut(&FlowRecord)) -> Result<ReadStats, SimError> {
        self.with(|sim| sim.dump(sink))
    }
    fn drain_destroyed(
        &mut self,
        sink: &mut dyn FnMut(&FlowRecord),
    ) -> Result<ReadStats, SimError> {
        self.with(|sim| sim.drain_destroyed(sink))
    }
}

fn agent_lines(addr: SocketAddr, prefix: &str) -> Vec<String> {
    let body = ureq::get(format!("http://{addr}/metrics"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default();
    body.lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

fn agent_metric(addr: SocketAddr, name: &str) -> f64 {
    agent_lines(addr, name)
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn costs_read_from_prometheus_match_the_simulators_truth_and_the_aws_price_sheet() {
    let cluster = Cluster::generate(&ClusterSpec {
        seed: 5,
        ..ClusterSpec::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let inventory = Inventory::from_yaml_str(&cluster.inventory_yaml(), Path::new("sim-inventory"))
        .unwrap_or_else(|e| panic!("{e}"));
    let config =
        ClassificationConfig::from_yaml_str(&cluster.config_yaml(), Path::new("sim-config"))
            .unwrap_or_else(|e| panic!("{e}"));
    let sim = Simulator::new(
        cluster,
        &TableSpec {
            entries: 400,
            seed: 5,
            ..TableSpec::default()
        },
    );
    let node_name = sim.node_name().to_owned();
    let sim = Arc::new(Mutex::new(sim));
    let now_ms = Arc::new(AtomicU64::new(0));

    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let settings = AgentSettings {
        node_name: node_name.clone(),
        listen,
        interval: Duration::from_secs(1),
        event_drain_period: Duration::from_millis(200),
        source: SourceKind::Netlink,
        state_file: None,
        traffic_log_interval: None,
        topology: Arc::new(inventory.topology().unwrap_or_else(|e| panic!("{e}"))),
        config,
        topology_updates: None,
        cloud: CloudSettings::default(),
        reliable_events: netcost_conntrack::ReliableEvents::default(),
        max_workload_pairs: netcost_core::aggregate::DEFAULT_PAIR_LIMIT,
    };
    let source = TestClock {
        sim: sim.clone(),
        now_ms: now_ms.clone(),
    };
    // The agent runs until the test process ends.
    std::thread::spawn(move || {
        netcost_agent::run_with_source(settings, netcost_agent::Hooks::default(), source)
    });
    wait_until("the agent's first cycle", || {
        ureq::get(format!("http://{listen}/readyz")).call().is_ok()
    });

    let prometheus = Prometheus::start("sim", &[listen]);
    let up = "count(kubecost_pod_network_egress_bytes_total)";
    wait_until("the first scrape", || {
        prometheus.instant(up, None).is_some_and(|n| n > 0.0)
    });

    // Six simulated minutes of traffic, one per wall second, then the clock stops.
    for minute in 1..=6 {
        now_ms.store(minute * 60_000, Ordering::Relaxed);
        std::thread::sleep(Duration::from_secs(1));
    }
    // Wait until the agent has exported everything (new series release their bytes after a
    // scrape) and Prometheus holds the same totals.
    let total = "sum(kubecost_pod_network_egress_bytes_total) + sum(kubecost_pod_network_ingress_bytes_total) + sum(netcost_node_network_egress_bytes_total) + sum(netcost_node_network_ingress_bytes_total)";
    let truth = sim.lock().unwrap_or_else(|e| e.into_inner()).truth();
    let truth_total: u64 = truth.values().sum();
    wait_until("the agent to export the truth", || {
        let exported = agent_metric(listen, "kubecost_pod_network_")
            + agent_metric(listen, "netcost_node_network_");
        exported == truth_total as f64
    });
    wait_until("Prometheus to catch up", || {
        prometheus.instant(total, None) == Some(truth_total as f64)
    });
    // Pair series hold their first bytes until a scrape has seen them at zero, a cycle or two
    // after the pod counters: wait until the agent's pair total holds still and Prometheus has it.
    wait_until("the pair counters to settle in Prometheus", || {
        let before = agent_metric(listen, "netcost_workload_traffic_bytes_total");
        std::thread::sleep(Duration::from_millis(1_500));
        let after = agent_metric(listen, "netcost_workload_traffic_bytes_total");
        before == after
            && prometheus.instant("sum(netcost_workload_traffic_bytes_total)", None) == Some(after)
    });
    let last = prometheus
        .instant(
            "max(timestamp({__name__=~\"kubecost_pod_network_egress_bytes_total|netcost_node_network_egress_bytes_total\"}))",
            None,
        )
        .unwrap_or_else(|| panic!("no timestamp"));
    // One scrape later every series has a sample at or after the freeze.
    std::thread::sleep(Duration::from_secs(2));
    let end = Timestamp::from_millisecond((last * 1000.0).round() as i64)
        .unwrap_or_else(|e| panic!("{e}"));
    let window = format!(
        "{},{end}",
        end.checked_sub(jiff::Span::new().minutes(10))
            .unwrap_or_else(|e| panic!("{e}"))
    );

    let engine = Engine::new(
        Arc::new(PrometheusBackend::new(
            &prometheus.url,
            Duration::from_secs(10),
        )),
        PriceSheet::aws(),
    );
    let result = engine
        .allocate(&window, "namespace", "", Timestamp::now(), &mut |_, _| {})
        .unwrap_or_else(|e| panic!("{e}"));

    let bytes = |d: Direction, c: TrafficClass| -> u64 {
        truth
            .iter()
            .filter(|((_, dd, cc, _), _)| *dd == d && *cc == c)
            .map(|(_, b)| b)
            .sum()
    };
    let t = &result.total;
    for (class, got) in [
        (TrafficClass::InZone, t.in_zone),
        (TrafficClass::CrossZone, t.cross_zone),
        (TrafficClass::CrossRegion, t.cross_region),
        (TrafficClass::Internet, t.internet),
    ] {
        assert_eq!(
            got.egress_bytes,
            bytes(Direction::Egress, class),
            "{class:?} egress"
        );
        assert_eq!(
            got.ingress_bytes,
            bytes(Direction::Ingress, class),
            "{class:?} ingress"
        );
    }
    // Bytes exchanged with an end tagged as a service: outside the cluster, with no agent to
    // count its side (here the managed database).
    let tagged = |d: Direction, c: TrafficClass| -> u64 {
        truth
            .iter()
            .filter(|((_, dd, cc, service), _)| *dd == d && *cc == c && service.is_some())
            .map(|(_, b)| b)
            .sum()
    };
    // AWS, read 2026-11-25: $0.01/GB each way across zones, $0.02/GB out across regions,
    // internet out free for the first 100 GB of the month, then $0.09/GB. An end with no agent
    // is billed for its side too: $0.01/GB more across zones, both ways, and $0.02/GB for what
    // it sends across regions (out of its US region).
    let gb = |b: u64| b as f64 / 1e9;
    let expected = gb(bytes(Direction::Egress, TrafficClass::CrossZone)
        + bytes(Direction::Ingress, TrafficClass::CrossZone))
        * 0.01
        + gb(tagged(Direction::Egress, TrafficClass::CrossZone)
            + tagged(Direction::Ingress, TrafficClass::CrossZone))
            * 0.01
        + gb(bytes(Direction::Egress, TrafficClass::CrossRegion)
            + tagged(Direction::Ingress, TrafficClass::CrossRegion))
            * 0.02
        + (gb(bytes(Direction::Egress, TrafficClass::Internet)) - 100.0).max(0.0) * 0.09;
    assert!(
        (t.total_cost - expected).abs() < 1e-9,
        "cost {} vs {expected}",
        t.total_cost
    );

    // Workload pairs against the simulator's truth: an agent adds to a pair what its end sent,
    // and also what it received from an end outside the cluster (the internet, the object
    // store, the managed database: every internet byte, and every byte tagged with a service).
    let pair_truth = |class: TrafficClass| -> u64 {
        truth
            .iter()
            .filter(|((_, d, c, service), _)| {
                *c == class
                    && (*d == Direction::Egress
                        || class == TrafficClass::Internet
                        || service.is_some())
            })
            .map(|(_, b)| b)
            .sum()
    };
    let window_pairs = engine
        .edges(&window, 1_000, Timestamp::now())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(window_pairs.has_pair_data);
    for class in [TrafficClass::CrossZone, TrafficClass::CrossRegion] {
        let in_edges: u64 = window_pairs
            .edges
            .iter()
            .filter(|e| e.class == class.as_str())
            .map(|e| e.bytes)
            .sum();
        let expected = pair_truth(class);
        assert!(expected > 0, "the simulator sends {class:?} traffic");
        assert_eq!(in_edges, expected, "{class:?} pair bytes");
    }
    // The agent's exported pair counters hold the in-zone and internet truth too.
    for class in [TrafficClass::InZone, TrafficClass::Internet] {
        let exported: f64 = agent_lines(listen, "netcost_workload_traffic_bytes_total{")
            .iter()
            .filter(|l| l.contains(&format!("class=\"{}\"", class.as_str())))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert_eq!(exported, pair_truth(class) as f64, "{class:?} pair bytes");
    }
    assert!(
        window_pairs
            .edges
            .iter()
            .any(|e| e.recommendation.is_some()),
        "the simulated cluster has cross-zone edges a rule applies to: {:?}",
        window_pairs.edges.first()
    );

    // The live view: this one agent, its last dump, and the busiest pods of the last minutes.
    let live = engine.live().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(live.agents.len(), 1, "{live:?}");
    let agent = &live.agents[0];
    assert_eq!(agent.node, node_name);
    assert!(agent.up);
    assert_eq!(agent.instance, listen.to_string());
    assert_eq!(
        agent.entries as f64,
        agent_metric(listen, "kubecost_network_costs_parsed_entries")
    );
    assert!(
        agent.last_cycle_age_seconds.is_some_and(|age| age < 60.0),
        "{agent:?}"
    );
    assert!(!live.talkers.is_empty());
    assert!(
        live.talkers
            .windows(2)
            .all(|w| w[0].bytes_per_second >= w[1].bytes_per_second)
    );

    // `netcost report` and `netcost serve` give the same figures through the command line and
    // HTTP.
    let report = std::process::Command::new(env!("CARGO_BIN_EXE_netcost"))
        .args([
            "report",
            "--prometheus",
            &prometheus.url,
            "--window",
            &window,
        ])
        .args([
            "--aggregate",
            "namespace",
            "--output",
            "json",
            "--provider",
            "aws",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let served_port = free_port();
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_netcost"))
        .args([
            "serve",
            "--prometheus",
            &prometheus.url,
            "--provider",
            "aws",
        ])
        .args(["--listen", &format!("127.0.0.1:{served_port}")])
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let api = format!("http://127.0.0.1:{served_port}/api/v1/allocation");
    wait_until("netcost serve", || {
        ureq::get(&api).query("window", "1h").call().is_ok()
    });
    let served = ureq::get(&api)
        .query("window", &window)
        .query("aggregate", "namespace")
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default();
    let _ = serve.kill();
    let _ = serve.wait();
    let printed = String::from_utf8_lossy(&report.stdout).into_owned();
    for (how, text) in [("report", printed), ("serve", served)] {
        let json: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{how}: {e}: {text}"));
        let total = &json["total"];
        let cost = total["total_cost"].as_f64().unwrap_or(-1.0);
        assert!(
            (cost - expected).abs() < 1e-9,
            "{how}: cost {cost} vs {expected}"
        );
        for (class, key) in [
            (TrafficClass::CrossZone, "cross_zone"),
            (TrafficClass::CrossRegion, "cross_region"),
            (TrafficClass::Internet, "internet"),
        ] {
            assert_eq!(
                total[key]["egress_bytes"].as_u64(),
                Some(bytes(Direction::Egress, class)),
                "{how}: {key}"
            );
        }
    }
    assert!(
        t.cross_zone.cost > 0.0 && t.cross_region.cost > 0.0,
        "classes exercised: {t:?}"
    );
}
