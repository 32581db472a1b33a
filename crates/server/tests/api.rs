//! The allocation API over HTTP: statuses, JSON errors and CSV. Usage comes from a fixed
//! in-memory backend so the expected costs are computed here from the bytes it holds.

use std::sync::Arc;
use std::time::Duration;

use netcost_core::class::{Direction, TrafficClass};
use netcost_cost::allocate::{PodIdentity, SegmentUsage, Usage};
use netcost_cost::edges::{PairUsage, Workload};
use netcost_cost::pricing::PriceSheet;
use netcost_cost::window::Segment;
use netcost_server::backend::{AgentStatus, BackendError, LiveStatus, Talker, UsageBackend};
use netcost_server::engine::Engine;
use netcost_server::prometheus::PrometheusBackend;
use support::{get, serve};

mod support;

/// In every segment: 2 GB cross-zone egress of shop/web-0, and a pair of shop/web in zone a
/// calling shop/db in zone b with 5 GB (both directions). One agent, one talker. A GB is AWS's,
/// 2^30 bytes.
struct Fixed;

fn workload(name: &str) -> Workload {
    Workload {
        namespace: "shop".into(),
        kind: "Deployment".into(),
        name: name.into(),
    }
}

impl UsageBackend for Fixed {
    fn describe(&self) -> String {
        "fixed".into()
    }
    fn usage(&self, _: &Segment) -> Result<SegmentUsage, BackendError> {
        Ok(SegmentUsage {
            internet_egress_before: 0,
            usages: vec![Usage {
                pod: PodIdentity {
                    namespace: "shop".into(),
                    pod: "web-0".into(),
                    ..PodIdentity::default()
                },
                direction: Direction::Egress,
                class: TrafficClass::CrossZone,
                service: None,
                remote_region: None,
                remote_has_agent: true,
                nat_gateway: false,
                bytes: 2 << 30,
            }],
            ..SegmentUsage::default()
        })
    }
    fn pairs(&self, _: &Segment) -> Result<Vec<PairUsage>, BackendError> {
        Ok(vec![PairUsage {
            client: workload("web"),
            client_zone: "a".into(),
            server: workload("db"),
            server_zone: "b".into(),
            class: TrafficClass::CrossZone,
            bytes: 5 << 30,
            client_region: None,
            server_region: None,
            counted_in_region: None,
        }])
    }
    fn live(&self) -> Result<LiveStatus, BackendError> {
        Ok(LiveStatus {
            agents: vec![AgentStatus {
                node: "node-a".into(),
                instance: "10.0.0.1:3001".into(),
                up: true,
                last_cycle_age_seconds: Some(4.0),
                cycle_ms: 12.5,
                entries: 1234,
                cycle_failures: 0,
                malformed_entries: 2,
                events_lost: 0,
                workload_pairs: 7,
            }],
            talkers: vec![Talker {
                namespace: "shop".into(),
                pod: "web-0".into(),
                bytes_per_second: 1000.0,
                by_class: [("cross-zone", 1000.0)].into_iter().collect(),
            }],
            rate_seconds: 300,
        })
    }
}

fn error_of(body: &str) -> (String, String) {
    let json: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (
        json["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        json["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[test]
fn the_allocation_endpoint_prices_usage_as_json_and_csv() {
    let base = serve(Engine::new(Arc::new(Fixed), PriceSheet::aws()));
    let (status, kind, body) = get(&format!(
        "{base}/api/v1/allocation?window=1h&aggregate=namespace"
    ));
    assert_eq!(status, 200, "{body}");
    assert_eq!(kind, "application/json");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json["allocations"][0]["name"], "shop");
    assert_eq!(
        json["allocations"][0]["cross_zone"]["egress_bytes"],
        2_u64 << 30
    );
    let cost = json["total"]["total_cost"].as_f64().unwrap_or_default();
    assert!((cost - 2.0 * 0.01).abs() < 1e-12, "AWS $0.01/GB: {cost}");
    assert_eq!(json["unit"], "GiB");
    // The figures say what they assume: the cluster is priced as the whole account.
    let notes = json["notes"].as_array().cloned().unwrap_or_default();
    assert_eq!(notes.len(), 1, "{body}");
    assert!(
        notes[0]
            .as_str()
            .is_some_and(|n| n.contains("as if the cluster were the whole account")),
        "{body}"
    );

    let (status, kind, csv) = get(&format!("{base}/api/v1/allocation.csv?window=1h"));
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/csv"));
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("name,in_zone_egress_bytes"));
    assert!(
        lines[1].starts_with("shop,0,0,2147483648,0,0.020000,"),
        "{csv}"
    );
    assert!(lines[2].starts_with("__total__,"));
    let (status, _, same) = get(&format!("{base}/api/v1/allocation?window=1h&format=csv"));
    assert_eq!((status, same), (200, csv));
}

#[test]
fn bad_requests_get_a_json_error_with_status_400() {
    let base = serve(Engine::new(Arc::new(Fixed), PriceSheet::aws()));
    for (query, code, needle) in [
        ("window=yesterday", "bad_window", "yesterday"),
        ("aggregate=team", "bad_aggregate", "team"),
        ("filter=nope", "bad_filter", "key:value"),
        ("format=xml", "bad_format", "xml"),
        ("windw=1h", "bad_parameter", "windw"),
    ] {
        let (status, kind, body) = get(&format!("{base}/api/v1/allocation?{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(kind, "application/json");
        let (got_code, message) = error_of(&body);
        assert_eq!(got_code, code, "{query}");
        assert!(message.contains(needle), "{query}: {message}");
    }
}

#[test]
fn an_unreachable_prometheus_is_a_502_that_names_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("http://127.0.0.1:{port}");
    let backend = PrometheusBackend::new(&url, Duration::from_secs(2));
    let base = serve(Engine::new(Arc::new(backend), PriceSheet::aws()));
    let (status, _, body) = get(&format!("{base}/api/v1/allocation?window=1h"));
    assert_eq!(status, 502, "{body}");
    let (code, message) = error_of(&body);
    assert_eq!(code, "backend_unreachable");
    assert!(
        message.contains(&format!("Prometheus unreachable at {url}")),
        "{message}"
    );
}

#[test]
fn the_time_series_prices_each_step_and_refuses_too_many() {
    let base = serve(Engine::new(Arc::new(Fixed), PriceSheet::aws()));
    let (status, kind, body) = get(&format!(
        "{base}/api/v1/allocation/timeseries?window=1h&step=15m"
    ));
    assert_eq!((status, kind.as_str()), (200, "application/json"), "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json["step_seconds"], 900);
    let steps = json["steps"].as_array().cloned().unwrap_or_default();
    // Boundaries sit on multiples of 15 minutes, so a 1h window that does not start on one has
    // five steps (four only if it does).
    assert!((4..=5).contains(&steps.len()), "{body}");
    // The fixed backend answers 2 GB for any window: each step is priced on its own.
    for step in &steps {
        let cost = step["cross_zone"]["cost"].as_f64().unwrap_or_default();
        assert!((cost - 0.02).abs() < 1e-12, "{step}");
    }
    for (query, code) in [
        ("window=7d&step=1m", "bad_step"),
        ("window=1h&step=soon", "bad_step"),
        ("window=1h&aggregate=pod", "bad_parameter"),
    ] {
        let (status, _, body) = get(&format!("{base}/api/v1/allocation/timeseries?{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(error_of(&body).0, code, "{query}");
    }
}

#[test]
fn the_web_ui_is_served_at_the_root_and_needs_nothing_from_outside() {
    let base = serve(Engine::new(Arc::new(Fixed), PriceSheet::aws()));
    for (path, kind) in [
        ("/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
    ] {
        let (status, got, body) = get(&format!("{base}{path}"));
        assert_eq!(status, 200, "{path}");
        assert!(got.starts_with(kind), "{path}: {got}");
        // Offline: no CDN, no web fonts, no absolute links anywhere in the page. The SVG
        // namespace is a name, never fetched.
        let body = body.replace("http://www.w3.org/2000/svg", "");
        for outside in ["http://", "https://", "//cdn", "@import", "@font-face"] {
            assert!(!body.contains(outside), "{path} refers to {outside}");
        }
    }
    let (status, _, body) = get(&format!("{base}/api/v1/info"));
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (json["backend"].as_str(), json["unit"].as_str()),
        (Some("fixed"), Some("GiB"))
    );
}

#[test]
fn the_edges_endpoint_prices_cross_zone_pairs_and_advises() {
    let base = serve(Engine::new(Arc::new(Fixed), PriceSheet::aws()));
    let (status, kind, body) = get(&format!("{base}/api/v1/edges?window=1h"));
    assert_eq!((status, kind.as_str()), (200, "application/json"), "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    let edge = &json["edges"][0];
    assert_eq!(edge["client"]["name"], "web");
    assert_eq!(edge["server"]["name"], "db");
    assert_eq!(edge["class"], "cross-zone");
    // 5 GB × ($0.01 + $0.01) over one hour; 730 hours a month.
    let cost = edge["cost"].as_f64().unwrap_or_default();
    assert!((cost - 0.1).abs() < 1e-12, "{cost}");
    let monthly = edge["monthly_cost"].as_f64().unwrap_or_default();
    assert!((monthly - 73.0).abs() < 1e-9, "{monthly}");
    // db runs only in zone b, web calls from zone a.
    assert_eq!(edge["recommendation"]["kind"], "co-location");
    assert_eq!(json["edges_total"], 1);
    assert_eq!(json["has_pair_data"], true);

    for (query, code) in [
        ("limit=0", "bad_limit"),
        ("limit=x", "bad_limit"),
        ("window=soon", "bad_window"),
        ("top=3", "bad_parameter"),
    ] {
        let (status, _, body) = get(&format!("{base}/api/v1/edges?{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(error_of(&body).0, code, "{query}");
    }
}

#[test]
fn the_live_endpoint_serves_agents_and_talkers() {
    let base = serve(Engine::new(Arc::new(Fixed), PriceSheet::aws()));
    let (status, _, body) = get(&format!("{base}/api/v1/live"));
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json["agents"][0]["node"], "node-a");
    assert_eq!(json["agents"][0]["entries"], 1234);
    assert_eq!(json["talkers"][0]["pod"], "web-0");
    assert_eq!(json["rate_seconds"], 300);
    let (status, _, body) = get(&format!("{base}/api/v1/live?window=1h"));
    assert_eq!(status, 400, "{body}");
    let (code, message) = error_of(&body);
    assert_eq!(code, "bad_parameter");
    assert!(message.contains("takes none"), "{message}");
}

/// In every segment: shop/catalog in us-east-1 received 90 GiB from S3 and sent it 10 GiB,
/// through the NAT gateway; its pods and shop/web's run in three zones of the region.
struct CatalogReadsS3;

impl UsageBackend for CatalogReadsS3 {
    fn describe(&self) -> String {
        "catalog reads s3".into()
    }
    fn usage(&self, _: &Segment) -> Result<SegmentUsage, BackendError> {
        let usage = |direction, gib: u64| Usage {
            pod: PodIdentity {
                namespace: "shop".into(),
                pod: "catalog-5c8d7-p9x2w".into(),
                node: Some("node-a".into()),
                region: Some("us-east-1".into()),
                workload: Some(("Deployment".into(), "catalog".into())),
                ..PodIdentity::default()
            },
            direction,
            class: TrafficClass::InZone,
            service: Some("aws-s3".into()),
            remote_region: None,
            remote_has_agent: false,
            nat_gateway: true,
            bytes: gib << 30,
        };
        Ok(SegmentUsage {
            usages: vec![usage(Direction::Ingress, 90), usage(Direction::Egress, 10)],
            ..SegmentUsage::default()
        })
    }
    fn pairs(&self, _: &Segment) -> Result<Vec<PairUsage>, BackendError> {
        Ok(Vec::new())
    }
    fn live(&self) -> Result<LiveStatus, BackendError> {
        Err(BackendError::Store("no live data".into()))
    }
}

#[test]
fn the_endpoint_advice_endpoint_prices_nat_traffic_to_s3_and_the_gateway_endpoint() {
    let base = serve(Engine::new(Arc::new(CatalogReadsS3), PriceSheet::aws()));
    // 73 hours inside one month: a tenth of a 730-hour month.
    let window = "2026-11-01T00:00:00Z,2026-11-04T01:00:00Z";
    let (status, kind, body) = get(&format!("{base}/api/v1/endpoint-advice?window={window}"));
    assert_eq!(status, 200, "{body}");
    assert!(kind.starts_with("application/json"));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    let advice = json["advice"].as_array().cloned().unwrap_or_default();
    assert_eq!(advice.len(), 1, "{body}");
    let a = &advice[0];
    assert_eq!(a["workload"]["name"], "catalog");
    assert_eq!(a["service"], "aws-s3");
    assert_eq!(a["endpoint"], "gateway");
    // 100 GiB in a tenth of a month is 1,000 GiB a month; AWS NAT processing is $0.045/GB, a
    // gateway endpoint is free.
    assert_eq!(a["monthly_bytes"].as_u64(), Some(1_000 << 30));
    for (field, want) in [
        ("nat_cost_per_month", 45.0),
        ("endpoint_cost_per_month", 0.0),
        ("saving_per_month", 45.0),
    ] {
        let got = a[field].as_f64().unwrap_or(-1.0);
        assert!((got - want).abs() < 1e-9, "{field}: {got}");
    }
    assert!((json["total_saving_per_month"].as_f64().unwrap_or(-1.0) - 45.0).abs() < 1e-9);
    assert_eq!(json["nat_gateway_price"].as_f64(), Some(0.045));
    assert_eq!(json["window"], window);

    for (query, code) in [("window=soon", "bad_window"), ("limit=3", "bad_parameter")] {
        let (status, _, body) = get(&format!("{base}/api/v1/endpoint-advice?{query}"));
        assert_eq!((status, error_of(&body).0.as_str()), (400, code), "{body}");
    }
}

#[test]
fn the_zones_and_peers_endpoints_price_the_pair_counters() {
    let base = serve(Engine::new(Arc::new(Fixed), PriceSheet::aws()));
    let (status, kind, body) = get(&format!("{base}/api/v1/zones?window=1h"));
    assert_eq!((status, kind.as_str()), (200, "application/json"), "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json["zones"], serde_json::json!(["a", "b"]));
    let cell = &json["cells"][0];
    assert_eq!(
        (&cell["client_zone"], &cell["server_zone"]),
        (&"a".into(), &"b".into())
    );
    assert_eq!(cell["bytes"], 5u64 << 30);
    // 5 GB × ($0.01 + $0.01) over one hour.
    let cost = cell["cost"].as_f64().unwrap_or_default();
    assert!((cost - 0.1).abs() < 1e-12, "{cost}");
    assert_eq!(json["has_pair_data"], true);

    // shop/db is the server of the one pair; shop/api has none.
    let (status, _, body) = get(&format!(
        "{base}/api/v1/peers?window=1h&workload=shop/Deployment/db"
    ));
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json["edges"][0]["client"]["name"], "web");
    let total = json["total_cost"].as_f64().unwrap_or_default();
    assert!((total - 0.1).abs() < 1e-12, "{total}");
    assert!(
        json["note"]
            .as_str()
            .unwrap_or("")
            .contains("per pair of workloads")
    );
    let (_, _, body) = get(&format!(
        "{base}/api/v1/peers?window=1h&workload=shop/Deployment/api"
    ));
    assert!(body.contains("\"edges\":[]"), "{body}");

    for (path, code) in [
        ("zones?window=soon", "bad_window"),
        ("zones?limit=3", "bad_parameter"),
        ("peers?workload=shop/web", "bad_workload"),
        ("peers", "bad_workload"),
        (
            "peers?workload=shop/Deployment/web&window=soon",
            "bad_window",
        ),
    ] {
        let (status, _, body) = get(&format!("{base}/api/v1/{path}"));
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(error_of(&body).0, code, "{path}");
    }
}
