#![cfg(feature = "prometheus-tests")]
//! The Prometheus backend and the API against a real Prometheus, Debian's 2.x and a current 3.x
//! in turn, which scrapes an exporter whose counters this test sets. Costs are checked against figures computed
//! by hand from the bytes the test exported and the price sheet.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use netcost_cost::edges::cross_zone_edges;
use netcost_cost::pricing::PriceSheet;
use netcost_cost::window::Segment;
use netcost_server::backend::{BackendError, UsageBackend};
use netcost_server::engine::{Engine, EngineError};
use netcost_server::prometheus::PrometheusBackend;
use netcost_server::testing::{Prometheus, free_port, prometheus_servers, wait_until};

const GIB: f64 = 1_073_741_824.0;

/// The counters the fake agent exports: (cross-zone egress, internet egress) of `shop/web-0`.
type Counters = Arc<Mutex<(u64, u64)>>;

fn exposition(counters: &Counters) -> String {
    let (cross_zone, internet) = *counters.lock().unwrap_or_else(|e| e.into_inner());
    let labels = |internet: &str, zone: &str, region: &str| {
        // The internet bytes went through a NAT gateway.
        format!(
            "pod_name=\"web-0\",namespace=\"shop\",uid=\"u-web-0\",internet=\"{internet}\",same_zone=\"{zone}\",same_region=\"{region}\",service=\"\",nat_gateway=\"{internet}\""
        )
    };
    format!(
        "# TYPE kubecost_pod_network_egress_bytes_total counter\n\
         kubecost_pod_network_egress_bytes_total{{{}}} {cross_zone}\n\
         kubecost_pod_network_egress_bytes_total{{{}}} {internet}\n\
         # TYPE netcost_pod_info gauge\n\
         netcost_pod_info{{namespace=\"shop\",pod_name=\"web-0\",uid=\"u-web-0\",node=\"node-a\",region=\"us-east1\",owner_kind=\"Deployment\",owner_name=\"web\"}} 1\n\
         # TYPE kube_pod_labels gauge\n\
         kube_pod_labels{{namespace=\"shop\",pod=\"web-0\",label_app_kubernetes_io_part_of=\"checkout\"}} 1\n",
        labels("false", "false", "true"),
        labels("true", "false", "false"),
    )
}

/// Serves `exposition()` on an ephemeral loopback port, from a thread with its own runtime.
fn start_exporter(counters: Counters) -> SocketAddr {
    serve(move || exposition(&counters))
}

/// Serves what `body` returns at `/metrics` on an ephemeral loopback port.
fn serve(body: impl Fn() -> String + Clone + Send + Sync + 'static) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("bind: {e}"));
            let _ = tx.send(listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
            let app = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let text = body();
                    async move { text }
                }),
            );
            let _ = axum::serve(listener, app).await;
        });
    });
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("exporter did not start: {e}"))
}

#[test]
fn allocation_from_a_real_prometheus_matches_the_bytes_exported_and_the_price_sheet() {
    for (name, program) in prometheus_servers() {
        allocation_matches_the_bytes_exported(&program, name);
    }
}

fn allocation_matches_the_bytes_exported(program: &Path, name: &str) {
    let counters: Counters = Arc::new(Mutex::new((0, 0)));
    let exporter = start_exporter(counters.clone());
    let prometheus = Prometheus::start_binary(program, &format!("backend-{name}"), &[exporter]);
    let cross_zone_series =
        "kubecost_pod_network_egress_bytes_total{same_zone=\"false\",same_region=\"true\"}";
    wait_until("the zero samples", || {
        prometheus.instant(cross_zone_series, None) == Some(0.0)
    });

    // 1000 GiB of internet egress: just under GCP's first tier (1 TiB at $0.12/GiB).
    let (cross_zone, internet) = (5_000_000_000_u64, 1_000 * (1_u64 << 30));
    *counters.lock().unwrap_or_else(|e| e.into_inner()) = (cross_zone, internet);
    wait_until("the new values", || {
        prometheus.instant(cross_zone_series, None) == Some(cross_zone as f64)
    });
    // Evaluated at the last sample, with the series born at zero inside the window, increase()
    // neither extrapolates nor misses a byte, so the figures must be exact.
    let last = prometheus
        .instant(&format!("timestamp({cross_zone_series})"), None)
        .unwrap_or_else(|| panic!("no timestamp"));
    let end = Timestamp::from_millisecond((last * 1000.0).round() as i64)
        .unwrap_or_else(|e| panic!("{e}"));
    let start = end
        .checked_sub(jiff::Span::new().seconds(120))
        .unwrap_or_else(|e| panic!("{e}"));
    let window = format!("{start},{end}");

    let backend = Arc::new(PrometheusBackend::new(
        &prometheus.url,
        Duration::from_secs(10),
    ));
    let engine = Engine::new(backend, PriceSheet::gcp());
    let mut progress = Vec::new();
    let result = engine
        .allocate(
            &test_window(&window),
            &test_aggregate("workload"),
            &test_filter(""),
            &mut |done, of| progress.push((done, of)),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        progress.last().map(|p| p.0),
        progress.last().map(|p| p.1),
        "progress reaches the end"
    );
    assert_eq!(result.allocations.len(), 1, "{result:?}");
    let row = &result.allocations[0];
    assert_eq!(
        row.name, "shop/Deployment/web",
        "owner from netcost_pod_info"
    );
    assert_eq!(row.cross_zone.egress_bytes, cross_zone, "{name}");
    assert_eq!(row.internet.egress_bytes, internet, "{name}");
    // GCP: $0.01/GiB across zones; internet free for the month's first GiB, then $0.12/GiB in
    // the first TiB (the month had no internet egress before this window in this Prometheus);
    // Cloud NAT's $0.045/GiB processing on the 1,000 GiB through the gateway.
    let expected = cross_zone as f64 / GIB * 0.01 + 999.0 * 0.12 + 1_000.0 * 0.045;
    assert!(
        (row.total_cost - expected).abs() < 1e-9,
        "{} vs {expected}",
        row.total_cost
    );
    assert!((result.total.total_cost - expected).abs() < 1e-9);

    // OpenCost's own network query over the same data agrees with netcost's bytes.
    let opencost = prometheus.instant(
        "sum(increase(kubecost_pod_network_egress_bytes_total{internet=\"false\",same_zone=\"false\",same_region=\"true\"}[120s])) by (pod_name,namespace)",
        Some(last),
    )
    .unwrap_or_else(|| panic!("OpenCost query returned nothing"));
    assert_eq!(opencost, row.cross_zone.egress_bytes as f64, "{name}");

    // Aggregation by a pod label reads kube-state-metrics' kube_pod_labels.
    let by_label = engine
        .allocate(
            &test_window(&window),
            &test_aggregate("label:app.kubernetes.io/part-of"),
            &test_filter(""),
            &mut |_, _| {},
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(by_label.allocations.len(), 1, "{by_label:?}");
    assert_eq!(
        by_label.allocations[0].name,
        "app.kubernetes.io/part-of=checkout"
    );
    assert_eq!(by_label.allocations[0].cross_zone.egress_bytes, cross_zone);

    // Filters narrow the usage before pricing.
    let none = engine
        .allocate(
            &test_window(&window),
            &test_aggregate("namespace"),
            &test_filter("namespace:other"),
            &mut |_, _| {},
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(none.allocations.is_empty());

    // The rest asks for a window that begins on a sample, which Prometheus 3 leaves out of its
    // range: its increase() estimates the first scrape interval there instead of counting it
    // (windows_that_meet_on_a_sample_split_the_bytes_exactly shows by how much), so the exact
    // figures below hold on 2 only.
    if name == "prometheus-3" {
        return;
    }
    // 100 GiB more: a window from the last sample to the next crosses the 1 TiB bound after
    // 24 GiB, so the month-to-date query must see the first 1000 GiB exactly.
    let more = 100 * (1_u64 << 30);
    *counters.lock().unwrap_or_else(|e| e.into_inner()) = (cross_zone, internet + more);
    let internet_series = "kubecost_pod_network_egress_bytes_total{internet=\"true\"}";
    wait_until("the second step", || {
        prometheus.instant(internet_series, None) == Some((internet + more) as f64)
    });
    let later = prometheus
        .instant(&format!("timestamp({internet_series})"), None)
        .unwrap_or_else(|| panic!("no timestamp"));
    let later = Timestamp::from_millisecond((later * 1000.0).round() as i64)
        .unwrap_or_else(|e| panic!("{e}"));
    let second = engine
        .allocate(
            &test_window(&format!("{end},{later}")),
            &test_aggregate("namespace"),
            &test_filter(""),
            &mut |_, _| {},
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(second.total.internet.egress_bytes, more, "{name}");
    assert_eq!(second.total.nat_gateway.egress_bytes, more, "{name}");
    let tiered = 24.0 * 0.12 + 76.0 * 0.11 + 100.0 * 0.045;
    assert!(
        (second.total.total_cost - tiered).abs() < 1e-9,
        "{} vs {tiered}",
        second.total.total_cost
    );
}

/// The raw samples (Unix seconds, value) Prometheus at `url` holds of `series` in the last
/// `seconds`, oldest first.
fn raw_samples(url: &str, series: &str, seconds: u32) -> Vec<(f64, f64)> {
    let body = ureq::get(format!("{url}/api/v1/query"))
        .query("query", format!("{series}[{seconds}s]"))
        .call()
        .and_then(|mut r| r.body_mut().read_to_string())
        .unwrap_or_else(|e| panic!("raw samples of {series}: {e}"));
    let json: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    json["data"]["result"][0]["values"]
        .as_array()
        .unwrap_or_else(|| panic!("no samples of {series}: {body}"))
        .iter()
        .map(|v| {
            let time = v[0].as_f64().unwrap_or_else(|| panic!("{v}"));
            let value = v[1].as_str().and_then(|s| s.parse().ok());
            (time, value.unwrap_or_else(|| panic!("{v}")))
        })
        .collect()
}

fn at(unix_seconds: f64) -> Timestamp {
    Timestamp::from_millisecond((unix_seconds * 1000.0).round() as i64)
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn windows_that_meet_on_a_sample_split_the_bytes_exactly() {
    for (name, program) in prometheus_servers() {
        windows_meet_on_a_sample(&program, name);
    }
}

/// Two windows that meet exactly on a sample, `t1`, the last one before the counter stepped:
/// [t1 - 120 s, t1] holds the first step and [t1, t2] the second. Prometheus 2 selects both
/// edges of a range and splits the bytes exactly. Prometheus 3 made range selectors left-open,
/// (t1, t2]: without the sample at t1, increase() there sees only samples taken after the
/// step and finds no increase at all, so the second step is in neither window. The window
/// that spans both is exact on both.
fn windows_meet_on_a_sample(program: &Path, name: &str) {
    let counters: Counters = Arc::new(Mutex::new((0, 0)));
    let exporter = start_exporter(counters.clone());
    let prometheus = Prometheus::start_binary(program, &format!("edges-{name}"), &[exporter]);
    let series =
        "kubecost_pod_network_egress_bytes_total{same_zone=\"false\",same_region=\"true\"}";
    wait_until("the zero samples", || {
        prometheus.instant(series, None) == Some(0.0)
    });
    let (first, second) = (7_000_000_u64, 3_000_000_u64);
    let set = |bytes: u64| counters.lock().unwrap_or_else(|e| e.into_inner()).0 = bytes;
    set(first);
    wait_until("the first step", || {
        prometheus.instant(series, None) == Some(first as f64)
    });
    set(first + second);
    let samples_after_the_step = || {
        raw_samples(&prometheus.url, series, 60)
            .iter()
            .filter(|s| s.1 == (first + second) as f64)
            .count()
    };
    wait_until("two samples after the second step", || {
        samples_after_the_step() >= 2
    });
    let samples = raw_samples(&prometheus.url, series, 60);
    let t1 = samples
        .iter()
        .rev()
        .find(|s| s.1 == first as f64)
        .unwrap_or_else(|| panic!("no sample of the first step: {samples:?}"))
        .0;
    let t2 = samples.last().unwrap_or_else(|| panic!("no samples")).0;

    let backend = Arc::new(PrometheusBackend::new(
        &prometheus.url,
        Duration::from_secs(10),
    ));
    let engine = Engine::new(backend, PriceSheet::gcp());
    let bytes = |start: f64, end: f64| {
        engine
            .allocate(
                &test_window(&format!("{},{}", at(start), at(end))),
                &test_aggregate("namespace"),
                &test_filter(""),
                &mut |_, _| {},
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .total
            .cross_zone
            .egress_bytes
    };
    let (before, after) = (bytes(t1 - 120.0, t1), bytes(t1, t2));
    let expected_after = match name {
        "prometheus-3" => 0,
        _ => second,
    };
    assert_eq!(
        (before, after),
        (first, expected_after),
        "{name}: windows meeting on the sample at {t1}; samples {samples:?}"
    );
    assert_eq!(bytes(t1 - 120.0, t2), first + second, "{name}: the whole");
}

/// One agent's exposition: its node, one pod of `workload` in `zone` of `region`, and the
/// bytes it counted on the pair shop/web (us-east-1a) → shop/db (us-east-2a), cross-region.
fn agent_exposition(node: &str, workload: &str, zone: &str, region: &str, bytes: u64) -> String {
    format!(
        "# TYPE netcost_agent_info gauge\n\
         netcost_agent_info{{node=\"{node}\",version=\"test\"}} 1\n\
         # TYPE netcost_pod_info gauge\n\
         netcost_pod_info{{namespace=\"shop\",pod_name=\"{workload}-0\",uid=\"u-{workload}\",node=\"{node}\",zone=\"{zone}\",region=\"{region}\",owner_kind=\"Deployment\",owner_name=\"{workload}\"}} 1\n\
         # TYPE netcost_workload_traffic_bytes_total counter\n\
         netcost_workload_traffic_bytes_total{{src_namespace=\"shop\",src_kind=\"Deployment\",src_workload=\"web\",src_zone=\"us-east-1a\",dst_namespace=\"shop\",dst_kind=\"Deployment\",dst_workload=\"db\",dst_zone=\"us-east-2a\",class=\"cross-region\"}} {bytes}\n"
    )
}

#[test]
fn pairs_from_a_real_prometheus_know_both_ends_regions_and_who_sent_the_bytes() {
    for (name, program) in prometheus_servers() {
        pairs_know_both_ends(&program, name);
    }
}

fn pairs_know_both_ends(program: &Path, name: &str) {
    // AWS's GB: 2^30 bytes.
    const GB: u64 = 1 << 30;
    let sent: Arc<Mutex<(u64, u64)>> = Arc::new(Mutex::new((0, 0)));
    let (a, b) = (sent.clone(), sent.clone());
    let node_a = serve(move || {
        let web = a.lock().unwrap_or_else(|e| e.into_inner()).0;
        agent_exposition("node-a", "web", "us-east-1a", "us-east-1", web)
    });
    let node_b = serve(move || {
        let db = b.lock().unwrap_or_else(|e| e.into_inner()).1;
        agent_exposition("node-b", "db", "us-east-2a", "us-east-2", db)
    });
    let prometheus = Prometheus::start_binary(program, &format!("pairs-{name}"), &[node_a, node_b]);
    let series = "netcost_workload_traffic_bytes_total";
    wait_until("the zero samples", || {
        prometheus.instant(&format!("count({series} == 0)"), None) == Some(2.0)
    });
    // web sends 10 GB to db; db sends 30 GB back.
    *sent.lock().unwrap_or_else(|e| e.into_inner()) = (10 * GB, 30 * GB);
    wait_until("the new values", || {
        prometheus.instant(&format!("sum({series})"), None) == Some(40.0 * GB as f64)
    });
    let last = prometheus
        .instant(&format!("max(timestamp({series}))"), None)
        .unwrap_or_else(|| panic!("no timestamp"));
    let end = Timestamp::from_millisecond((last * 1000.0).round() as i64)
        .unwrap_or_else(|e| panic!("{e}"));
    let start = end
        .checked_sub(jiff::Span::new().seconds(120))
        .unwrap_or_else(|e| panic!("{e}"));
    let backend = PrometheusBackend::new(&prometheus.url, Duration::from_secs(10));
    let segment = Segment {
        start,
        end,
        month_start: start,
    };
    let mut pairs = backend.pairs(&segment).unwrap_or_else(|e| panic!("{e}"));
    pairs.sort_by_key(|p| p.bytes);
    assert_eq!(pairs.len(), 2, "one row per counting agent: {pairs:?}");
    for (pair, counted_in, sent) in [
        (&pairs[0], "us-east-1", 10 * GB),
        (&pairs[1], "us-east-2", 30 * GB),
    ] {
        assert_eq!(pair.client_region.as_deref(), Some("us-east-1"), "{pair:?}");
        assert_eq!(pair.server_region.as_deref(), Some("us-east-2"), "{pair:?}");
        assert_eq!(
            pair.counted_in_region.as_deref(),
            Some(counted_in),
            "{pair:?}"
        );
        // increase() extrapolates towards the end of the window from the agent's last scrape,
        // so a few seconds of samples may read more than was sent, never less.
        assert!(pair.bytes >= sent, "{pair:?}");
    }
    // Each region's price applies to what it sent: web's bytes at $0.05/GB, db's at $0.03/GB.
    let mut by_source = PriceSheet::aws();
    by_source.cross_region.pairs.clear();
    by_source.cross_region.by_source_region =
        [("us-east-1".into(), 0.05), ("us-east-2".into(), 0.03)].into();
    let edges = cross_zone_edges(&pairs, &by_source, 120);
    let expected = pairs[0].bytes as f64 / GIB * 0.05 + pairs[1].bytes as f64 / GIB * 0.03;
    assert!((edges[0].cost - expected).abs() < 1e-9, "{edges:?}");
}

#[test]
fn an_unreachable_prometheus_is_named_in_the_error() {
    let backend = PrometheusBackend::new(
        &format!("http://127.0.0.1:{}", free_port()),
        Duration::from_secs(2),
    );
    let engine = Engine::new(Arc::new(backend), PriceSheet::aws());
    match engine.allocate(
        &test_window("1h"),
        &test_aggregate("namespace"),
        &test_filter(""),
        &mut |_, _| {},
    ) {
        Err(e @ EngineError::Backend(BackendError::Unreachable { .. })) => {
            let message = e.to_string();
            assert!(
                message.starts_with("Prometheus unreachable at http://127.0.0.1:"),
                "{message}"
            );
            assert!(!e.is_client_error());
        }
        other => panic!("expected an unreachable backend, got {other:?}"),
    }
    let backend = PrometheusBackend::new("http://127.0.0.1:9", Duration::from_secs(2));
    assert!(backend.describe().contains("127.0.0.1:9"));
}

/// The engine takes parsed requests; these parse a test's text or fail the test.
fn test_window(text: &str) -> netcost_server::query::Window {
    netcost_server::query::Window::parse(text, jiff::Timestamp::now())
        .unwrap_or_else(|e| panic!("{e}"))
}
fn test_aggregate(text: &str) -> netcost_server::query::Aggregate {
    netcost_server::query::Aggregate::parse(text).unwrap_or_else(|e| panic!("{e}"))
}
fn test_filter(text: &str) -> netcost_server::query::Filter {
    netcost_server::query::Filter::parse(text).unwrap_or_else(|e| panic!("{e}"))
}
