//! The real agent runtime on the network simulator, on a clock the test moves, for the tests
//! that read its counters back through a Prometheus-compatible store; and the simulator's truth
//! priced by hand at AWS's published rates.

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
use netcost_server::testing::{free_port, wait_until};
use netcost_sim::{Cluster, ClusterSpec, SimError, Simulator, TableSpec, Truth};

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

/// The agent running on one simulated node, serving `/metrics` on `listen`.
pub struct SimAgent {
    pub listen: SocketAddr,
    pub node_name: String,
    sim: Arc<Mutex<Simulator>>,
    now_ms: Arc<AtomicU64>,
}

impl SimAgent {
    /// Starts the agent (1 s cycles) on a simulated node of the seeded cluster, and waits for its
    /// first cycle. It runs until the test process ends.
    pub fn start(seed: u64, entries: u32) -> SimAgent {
        let cluster = Cluster::generate(&ClusterSpec {
            seed,
            ..ClusterSpec::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let inventory =
            Inventory::from_yaml_str(&cluster.inventory_yaml(), Path::new("sim-inventory"))
                .unwrap_or_else(|e| panic!("{e}"));
        let config =
            ClassificationConfig::from_yaml_str(&cluster.config_yaml(), Path::new("sim-config"))
                .unwrap_or_else(|e| panic!("{e}"));
        let sim = Simulator::new(
            cluster,
            &TableSpec {
                entries,
                seed,
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
            host_network_sockets: None,
        };
        let source = TestClock {
            sim: sim.clone(),
            now_ms: now_ms.clone(),
        };
        std::thread::spawn(move || {
            netcost_agent::run_with_source(settings, netcost_agent::Hooks::default(), source)
        });
        wait_until("the agent's first cycle", || {
            ureq::get(format!("http://{listen}/readyz")).call().is_ok()
        });
        SimAgent {
            listen,
            node_name,
            sim,
            now_ms,
        }
    }

    /// Moves the simulated clock to `minute` minutes.
    pub fn advance_to_minute(&self, minute: u64) {
        self.now_ms.store(minute * 60_000, Ordering::Relaxed);
    }

    /// What the simulator sent and received so far, per owner, direction, class and service.
    pub fn truth(&self) -> Truth {
        self.sim.lock().unwrap_or_else(|e| e.into_inner()).truth()
    }

    /// The agent's `/metrics` lines that start with `prefix`.
    pub fn lines(&self, prefix: &str) -> Vec<String> {
        let body = ureq::get(format!("http://{}/metrics", self.listen))
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .unwrap_or_default();
        body.lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }

    /// The sum of the agent's samples whose line starts with `name`.
    pub fn metric(&self, name: &str) -> f64 {
        self.lines(name)
            .iter()
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// The truth's bytes in one direction and class.
pub fn bytes(truth: &Truth, d: Direction, c: TrafficClass) -> u64 {
    truth
        .iter()
        .filter(|((_, dd, cc, _, _), _)| *dd == d && *cc == c)
        .map(|(_, b)| b)
        .sum()
}

/// The truth's bytes in one direction and class exchanged with an end tagged as a service:
/// outside the cluster, with no agent to count its side.
pub fn tagged(truth: &Truth, d: Direction, c: TrafficClass) -> u64 {
    truth
        .iter()
        .filter(|((_, dd, cc, service, _), _)| *dd == d && *cc == c && service.is_some())
        .map(|(_, b)| b)
        .sum()
}

/// What the truth costs at AWS prices, read 2026-11-25: $0.01/GB each way across zones, $0.02/GB
/// out across regions, internet out free for the first 100 GB of the month, then $0.09/GB. An
/// end with no agent is billed for its side too: $0.01/GB more across zones, both ways, and
/// $0.02/GB for what it sends across regions (out of its US region). Bytes through the NAT
/// gateway cost $0.045/GB more, both ways ([`through_nat`]).
pub fn aws_cost(truth: &Truth) -> f64 {
    aws_cost_across_regions_at(truth, 0.02)
}

/// [`aws_cost`] with every cross-region byte, whichever way between the simulator's two
/// regions, at `cross_region` per GB instead of $0.02.
pub fn aws_cost_across_regions_at(truth: &Truth, cross_region: f64) -> f64 {
    // AWS's GB is 2^30 bytes (docs/pricing.md, "GB or GiB").
    let gb = |b: u64| b as f64 / 1_073_741_824.0;
    let (e, i) = (Direction::Egress, Direction::Ingress);
    let (cz, cr) = (TrafficClass::CrossZone, TrafficClass::CrossRegion);
    gb(bytes(truth, e, cz) + bytes(truth, i, cz)) * 0.01
        + gb(tagged(truth, e, cz) + tagged(truth, i, cz)) * 0.01
        + gb(bytes(truth, e, cr) + tagged(truth, i, cr)) * cross_region
        + (gb(bytes(truth, e, TrafficClass::Internet)) - 100.0).max(0.0) * 0.09
        + gb(through_nat(truth)) * 0.045
}

/// The truth's bytes, both directions, through the NAT gateway: AWS charges $0.045/GB for NAT
/// gateway data processing, whichever way the bytes go.
pub fn through_nat(truth: &Truth) -> u64 {
    truth
        .iter()
        .filter(|((.., nat), _)| *nat)
        .map(|(_, b)| b)
        .sum()
}

/// Workload pair bytes of a class: an agent adds to a pair what its end sent, and also what it
/// received from an end outside the cluster (every internet byte, and every byte tagged with a
/// service).
pub fn pair_truth(truth: &Truth, class: TrafficClass) -> u64 {
    truth
        .iter()
        .filter(|((_, d, c, service, _), _)| {
            *c == class
                && (*d == Direction::Egress || class == TrafficClass::Internet || service.is_some())
        })
        .map(|(_, b)| b)
        .sum()
}

/// A window `[end - minutes, end]` in the engine's `start,end` form.
pub fn window_ending(end: Timestamp, minutes: i64) -> String {
    let start = end
        .checked_sub(jiff::Span::new().minutes(minutes))
        .unwrap_or_else(|e| panic!("{e}"));
    format!("{start},{end}")
}

/// `netcost report` and `netcost serve`, run as a user would against the store at `url`, print
/// the same allocation over `window`: a total cost of `expected` and, per class and direction,
/// the simulator's truth.
pub fn report_and_serve_match_the_truth(url: &str, window: &str, truth: &Truth, expected: f64) {
    let netcost = env!("CARGO_BIN_EXE_netcost");
    let report = std::process::Command::new(netcost)
        .args(["report", "--prometheus", url, "--window", window])
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
    let mut serve = std::process::Command::new(netcost)
        .args(["serve", "--prometheus", url, "--provider", "aws"])
        .args(["--listen", &format!("127.0.0.1:{served_port}")])
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let api = format!("http://127.0.0.1:{served_port}/api/v1/allocation");
    wait_until("netcost serve", || {
        ureq::get(&api).query("window", "1h").call().is_ok()
    });
    let served = ureq::get(&api)
        .query("window", window)
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
            (TrafficClass::InZone, "in_zone"),
            (TrafficClass::CrossZone, "cross_zone"),
            (TrafficClass::CrossRegion, "cross_region"),
            (TrafficClass::Internet, "internet"),
        ] {
            for (direction, field) in [
                (Direction::Egress, "egress_bytes"),
                (Direction::Ingress, "ingress_bytes"),
            ] {
                assert_eq!(
                    total[key][field].as_u64(),
                    Some(bytes(truth, direction, class)),
                    "{how}: {key} {field}"
                );
            }
        }
    }
}

/// The engine takes parsed requests: a test's window text, parsed relative to now, or the test
/// fails.
pub fn test_window(text: &str) -> netcost_server::query::Window {
    netcost_server::query::Window::parse(text, jiff::Timestamp::now())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A test's aggregate text, parsed.
pub fn test_aggregate(text: &str) -> netcost_server::query::Aggregate {
    netcost_server::query::Aggregate::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

/// A test's filter text, parsed.
pub fn test_filter(text: &str) -> netcost_server::query::Filter {
    netcost_server::query::Filter::parse(text).unwrap_or_else(|e| panic!("{e}"))
}
