#![cfg(feature = "prometheus-tests")]
//! The whole cost chain against ground truth: the simulator feeds the real agent runtime, a real
//! Prometheus scrapes its `/metrics`, and the allocation engine reads Prometheus back. The bytes
//! per class must equal the simulator's truth exactly, and the cost must equal what the AWS
//! price sheet's published figures give for those bytes, computed here by hand.

#[path = "support/sim_agent.rs"]
mod sim_agent;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use netcost_core::class::{Direction, TrafficClass};
use netcost_cost::pricing::PriceSheet;
use netcost_server::engine::Engine;
use netcost_server::prometheus::PrometheusBackend;
use netcost_server::testing::{Prometheus, wait_until};
use sim_agent::{
    SimAgent, aws_cost, aws_cost_across_regions_at, pair_truth, report_and_serve_match_the_truth,
    test_aggregate, test_filter, test_window, window_ending,
};

#[test]
fn costs_read_from_prometheus_match_the_simulators_truth_and_the_aws_price_sheet() {
    let agent = SimAgent::start(5, 400);
    let listen = agent.listen;
    let node_name = agent.node_name.clone();

    let prometheus = Prometheus::start("sim", &[listen]);
    let up = "count(kubecost_pod_network_egress_bytes_total)";
    wait_until("the first scrape", || {
        prometheus.instant(up, None).is_some_and(|n| n > 0.0)
    });

    // Six simulated minutes of traffic, one per wall second, then the clock stops.
    for minute in 1..=6 {
        agent.advance_to_minute(minute);
        std::thread::sleep(Duration::from_secs(1));
    }
    // Wait until the agent has exported everything (new series release their bytes after a
    // scrape) and Prometheus holds the same totals.
    let total = "sum(kubecost_pod_network_egress_bytes_total) + sum(kubecost_pod_network_ingress_bytes_total) + sum(netcost_node_network_egress_bytes_total) + sum(netcost_node_network_ingress_bytes_total)";
    let truth = agent.truth();
    let truth_total: u64 = truth.values().sum();
    wait_until("the agent to export the truth", || {
        let exported =
            agent.metric("kubecost_pod_network_") + agent.metric("netcost_node_network_");
        exported == truth_total as f64
    });
    wait_until("Prometheus to catch up", || {
        prometheus.instant(total, None) == Some(truth_total as f64)
    });
    // Pair series hold their first bytes until a scrape has seen them at zero, a cycle or two
    // after the pod counters: wait until the agent's pair total holds still and Prometheus has it.
    wait_until("the pair counters to settle in Prometheus", || {
        let before = agent.metric("netcost_workload_traffic_bytes_total");
        std::thread::sleep(Duration::from_millis(1_500));
        let after = agent.metric("netcost_workload_traffic_bytes_total");
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
    let window = window_ending(end, 10);

    let engine = Engine::new(
        Arc::new(PrometheusBackend::new(
            &prometheus.url,
            Duration::from_secs(10),
        )),
        PriceSheet::aws(),
    );
    let result = engine
        .allocate(
            &test_window(&window),
            &test_aggregate("namespace"),
            &test_filter(""),
            &mut |_, _| {},
        )
        .unwrap_or_else(|e| panic!("{e}"));

    let bytes = |d: Direction, c: TrafficClass| sim_agent::bytes(&truth, d, c);
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
    let expected = aws_cost(&truth);
    assert!(
        (t.total_cost - expected).abs() < 1e-9,
        "cost {} vs {expected}",
        t.total_cost
    );

    // A region pair's price reaches allocation: the agent names the far region of every
    // cross-region byte it can place, so a sheet that prices both ways between the simulator's
    // two regions at $0.05 prices every cross-region byte there, and the default $0.02 none.
    let (east, west) = ("us-east-1", "us-west-2");
    let paired = PriceSheet::from_yaml_str(
        &format!(
            "provider: aws\ncross_region:\n  pairs:\n    - {{from: {east}, to: {west}, price: 0.05}}\n    - {{from: {west}, to: {east}, price: 0.05}}\n"
        ),
        std::path::Path::new("pairs.yaml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let paired = Engine::new(
        Arc::new(PrometheusBackend::new(
            &prometheus.url,
            Duration::from_secs(10),
        )),
        paired,
    )
    .allocate(
        &test_window(&window),
        &test_aggregate("namespace"),
        &test_filter(""),
        &mut |_, _| {},
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(bytes(Direction::Egress, TrafficClass::CrossRegion) > 0);
    let expected_with_pairs = aws_cost_across_regions_at(&truth, 0.05);
    assert!(
        (paired.total.total_cost - expected_with_pairs).abs() < 1e-9,
        "cost with region pairs {} vs {expected_with_pairs}",
        paired.total.total_cost
    );

    // Workload pairs against the simulator's truth: an agent adds to a pair what its end sent,
    // and also what it received from an end outside the cluster (the internet, the object
    // store, the managed database: every internet byte, and every byte tagged with a service).
    let pair_truth = |class: TrafficClass| pair_truth(&truth, class);
    let window_pairs = engine
        .edges(&test_window(&window), 1_000)
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
        let exported: f64 = agent
            .lines("netcost_workload_traffic_bytes_total{")
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
    let seen = &live.agents[0];
    assert_eq!(seen.node, node_name);
    assert!(seen.up);
    assert_eq!(seen.instance, listen.to_string());
    assert_eq!(
        seen.entries as f64,
        agent.metric("kubecost_network_costs_parsed_entries")
    );
    assert!(
        seen.last_cycle_age_seconds.is_some_and(|age| age < 60.0),
        "{seen:?}"
    );
    assert!(!live.talkers.is_empty());
    assert!(
        live.talkers
            .windows(2)
            .all(|w| w[0].bytes_per_second >= w[1].bytes_per_second)
    );

    // `netcost report` and `netcost serve` give the same figures through the command line and
    // HTTP.
    report_and_serve_match_the_truth(&prometheus.url, &window, &truth, expected);
    assert!(
        t.cross_zone.cost > 0.0 && t.cross_region.cost > 0.0,
        "classes exercised: {t:?}"
    );
}
