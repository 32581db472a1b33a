#![cfg(feature = "prometheus-tests")]
//! The whole cost chain against ground truth on the scale-out store: the simulator feeds the
//! real agent runtime, a single-node VictoriaMetrics scrapes its `/metrics` with its built-in
//! scraper, and the allocation engine, `netcost report` and `netcost serve` read it back through
//! its Prometheus query API. Bytes per class must equal the simulator's truth exactly, and the
//! cost what AWS's published prices give for them.
//!
//! A real Prometheus scrapes the same agent alongside, to measure where the two engines'
//! `increase()` differ. MetricsQL's `increase()` does not extrapolate: it takes the last sample
//! before the window as its base, and counts a series' first sample from 0 when that sample is
//! small next to the series' next step. Prometheus extrapolates from the samples inside the
//! window. On a window that holds each series from its birth (the agent exports every series
//! at 0 first) both give the truth to the byte. On a window that starts while bytes flow, they
//! part: VictoriaMetrics gives the counters' exact change between the samples either side of the
//! start, Prometheus an extrapolation of the samples inside, so two adjacent windows add up to
//! the whole on VictoriaMetrics and not on Prometheus, in most runs: when VictoriaMetrics finds no
//! sample before the cut close enough to it, it falls back to counting the series' first sample
//! from 0. The test asserts the whole windows and prints the cut ones (docs/scale.md has the
//! figures).

#[path = "support/sim_agent.rs"]
mod sim_agent;

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use netcost_core::class::{Direction, TrafficClass};
use netcost_cost::pricing::PriceSheet;
use netcost_server::engine::Engine;
use netcost_server::prometheus::PrometheusBackend;
use netcost_server::testing::{Prometheus, VictoriaMetrics, wait_until};
use sim_agent::{
    SimAgent, aws_cost, bytes, pair_truth, report_and_serve_match_the_truth, test_aggregate,
    test_filter, test_window, window_ending,
};

const TOTAL: &str = "sum(kubecost_pod_network_egress_bytes_total) + sum(kubecost_pod_network_ingress_bytes_total) + sum(netcost_node_network_egress_bytes_total) + sum(netcost_node_network_ingress_bytes_total)";

fn engine(url: &str) -> Engine {
    Engine::new(
        Arc::new(PrometheusBackend::new(url, Duration::from_secs(10))),
        PriceSheet::aws(),
    )
}

/// Bytes of every class, both directions, and the cost, the engine gives for `window`.
fn engine_total(engine: &Engine, window: &str) -> (u64, f64) {
    let t = engine
        .allocate(
            &test_window(window),
            &test_aggregate("namespace"),
            &test_filter(""),
            &mut |_, _| {},
        )
        .unwrap_or_else(|e| panic!("{window}: {e}"))
        .total;
    let bytes = [t.in_zone, t.cross_zone, t.cross_region, t.internet]
        .iter()
        .map(|c| c.egress_bytes + c.ingress_bytes)
        .sum();
    (bytes, t.total_cost)
}

fn seconds(t: Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

#[test]
fn costs_read_from_victoriametrics_match_the_simulators_truth_and_the_aws_price_sheet() {
    let began = Instant::now();
    let agent = SimAgent::start(5, 400);
    let vm = VictoriaMetrics::start("sim", &[agent.listen]);
    let prometheus = Prometheus::start("sim-vs-vm", &[agent.listen]);
    let up = "count(kubecost_pod_network_egress_bytes_total)";
    wait_until("the first scrape by VictoriaMetrics", || {
        vm.instant(up, None).is_some_and(|n| n > 0.0)
    });
    wait_until("the first scrape by Prometheus", || {
        prometheus.instant(up, None).is_some_and(|n| n > 0.0)
    });

    // Six simulated minutes of traffic, one per wall second, then the clock stops.
    let mut steps = Vec::new();
    for minute in 1..=6 {
        steps.push(Timestamp::now());
        agent.advance_to_minute(minute);
        std::thread::sleep(Duration::from_secs(1));
    }
    let truth = agent.truth();
    let truth_total: u64 = truth.values().sum();
    wait_until("the agent to export the truth", || {
        agent.metric("kubecost_pod_network_") + agent.metric("netcost_node_network_")
            == truth_total as f64
    });
    wait_until("both stores to catch up", || {
        vm.instant(TOTAL, None) == Some(truth_total as f64)
            && prometheus.instant(TOTAL, None) == Some(truth_total as f64)
    });
    // Pair series hold their first bytes until a scrape has seen them at zero.
    wait_until("the pair counters to settle in both stores", || {
        let before = agent.metric("netcost_workload_traffic_bytes_total");
        std::thread::sleep(Duration::from_millis(1_500));
        let after = agent.metric("netcost_workload_traffic_bytes_total");
        let pairs = "sum(netcost_workload_traffic_bytes_total)";
        before == after
            && vm.instant(pairs, None) == Some(after)
            && prometheus.instant(pairs, None) == Some(after)
    });
    // One scrape later every series has a sample at or after now, in both stores.
    std::thread::sleep(Duration::from_secs(2));
    let end = Timestamp::now();
    let window = window_ending(end, 10);

    let vm_engine = engine(&vm.url);
    let result = vm_engine
        .allocate(
            &test_window(&window),
            &test_aggregate("namespace"),
            &test_filter(""),
            &mut |_, _| {},
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let t = &result.total;
    for (class, got) in [
        (TrafficClass::InZone, t.in_zone),
        (TrafficClass::CrossZone, t.cross_zone),
        (TrafficClass::CrossRegion, t.cross_region),
        (TrafficClass::Internet, t.internet),
    ] {
        assert_eq!(
            got.egress_bytes,
            bytes(&truth, Direction::Egress, class),
            "{class:?} egress"
        );
        assert_eq!(
            got.ingress_bytes,
            bytes(&truth, Direction::Ingress, class),
            "{class:?} ingress"
        );
    }
    let expected = aws_cost(&truth);
    assert!(
        (t.total_cost - expected).abs() < 1e-9,
        "cost {} vs {expected}",
        t.total_cost
    );
    assert!(
        t.cross_zone.cost > 0.0 && t.cross_region.cost > 0.0,
        "classes exercised: {t:?}"
    );

    let window_pairs = vm_engine
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
        let expected = pair_truth(&truth, class);
        assert!(expected > 0, "the simulator sends {class:?} traffic");
        assert_eq!(in_edges, expected, "{class:?} pair bytes");
    }

    // The live view: VictoriaMetrics' scraper writes `up` and `instance` as Prometheus does.
    let live = vm_engine.live().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(live.agents.len(), 1, "{live:?}");
    let status = &live.agents[0];
    assert_eq!(status.node, agent.node_name);
    assert!(status.up, "{status:?}");
    assert_eq!(status.instance, agent.listen.to_string());
    assert_eq!(
        status.entries as f64,
        agent.metric("kubecost_network_costs_parsed_entries")
    );
    assert!(!live.talkers.is_empty());

    // `netcost report` and `netcost serve` against VictoriaMetrics.
    report_and_serve_match_the_truth(&vm.url, &window, &truth, expected);

    // Prometheus against VictoriaMetrics on the same samples: the whole window ending now
    // (between two scrapes), the whole window ending on the store's last scrape (as the
    // Prometheus test asks it), a window that starts halfway through the traffic, and the whole
    // window cut there in two.
    let mid = steps[3]
        .checked_add(jiff::SignedDuration::from_millis(500))
        .unwrap_or_else(|e| panic!("{e}"));
    let start = end
        .checked_sub(jiff::Span::new().minutes(10))
        .unwrap_or_else(|e| panic!("{e}"));
    let prom_engine = engine(&prometheus.url);
    eprintln!(
        "truth: {truth_total} bytes, ${expected:.6}; window cut {:.1} s into the traffic",
        (mid.as_millisecond() - steps[0].as_millisecond()) as f64 / 1000.0
    );
    let last_scrape = "max(timestamp({__name__=~\"kubecost_pod_network_egress_bytes_total|netcost_node_network_egress_bytes_total\"}))";
    let mut measured = Vec::new();
    for (name, store, engine) in [
        ("prometheus", prometheus.url.as_str(), &prom_engine),
        ("victoriametrics", vm.url.as_str(), &vm_engine),
    ] {
        let at = |q: &str, t: Timestamp| {
            netcost_server::testing::instant_at(store, q, seconds(t)).unwrap_or(0.0)
        };
        let last = at(last_scrape, end);
        let last = Timestamp::from_millisecond((last * 1000.0).round() as i64)
            .unwrap_or_else(|e| panic!("{e}"));
        // What the store's raw samples say moved between the two ends of the late window.
        let raw_late = (at(TOTAL, end) - at(TOTAL, mid)) as u64;
        let m = Measured {
            whole_now: engine_total(engine, &window),
            whole_at_scrape: engine_total(engine, &window_ending(last, 10)),
            early: engine_total(engine, &format!("{start},{mid}")),
            late: engine_total(engine, &format!("{mid},{end}")),
        };
        eprintln!(
            "{name}: last scrape {:.3} s before the end; whole window ending now {} bytes (${:.6}), ending on the last scrape {} bytes (${:.6}); late window {} bytes (${:.6}), raw samples {raw_late}; early {} bytes, early + late {} ({:+} against the truth)",
            (end.as_millisecond() - last.as_millisecond()) as f64 / 1000.0,
            m.whole_now.0,
            m.whole_now.1,
            m.whole_at_scrape.0,
            m.whole_at_scrape.1,
            m.late.0,
            m.late.1,
            m.early.0,
            m.early.0 + m.late.0,
            (m.early.0 + m.late.0) as i64 - truth_total as i64,
        );
        measured.push(m);
    }
    let (p, v) = (&measured[0], &measured[1]);
    assert_eq!(
        p.whole_at_scrape.0, truth_total,
        "Prometheus, window ending on a scrape"
    );
    // A window cut while bytes flow is measured, not asserted: in most runs VictoriaMetrics gives
    // the samples' exact change, but in some it counted a series from 0 at the cut (the late
    // window +33 %), and Prometheus extrapolates (docs/scale.md has both).
    for (what, got) in [
        ("window ending now", v.whole_now.0),
        ("window ending on a scrape", v.whole_at_scrape.0),
    ] {
        assert_eq!(got, truth_total, "VictoriaMetrics: {what}");
    }
    eprintln!("run time {:.1} s", began.elapsed().as_secs_f64());
}

/// One store's figures: (bytes, cost) per window.
struct Measured {
    whole_now: (u64, f64),
    whole_at_scrape: (u64, f64),
    early: (u64, f64),
    late: (u64, f64),
}
