//! The allocation API over HTTP: statuses, JSON errors and CSV. Usage comes from a fixed
//! in-memory backend so the expected costs are computed here from the bytes it holds.

use std::sync::Arc;
use std::time::Duration;

use netcost_core::class::{Direction, TrafficClass};
use netcost_cost::allocate::{PodIdentity, SegmentUsage, Usage};
use netcost_cost::pricing::PriceSheet;
use netcost_cost::window::Segment;
use netcost_server::api::standalone as router;
use netcost_server::backend::{BackendError, UsageBackend};
use netcost_server::engine::Engine;
use netcost_server::prometheus::PrometheusBackend;

/// 2 GB cross-zone egress of shop/web-0 in every segment.
struct Fixed;

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
                bytes: 2_000_000_000,
            }],
        })
    }
}

fn serve(engine: Engine) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let _ = tx.send(listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
            let _ = axum::serve(listener, router(engine)).await;
        });
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    format!("http://{addr}")
}

fn get(url: &str) -> (u16, String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    (status, kind, body)
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
        2_000_000_000_u64
    );
    let cost = json["total"]["total_cost"].as_f64().unwrap_or_default();
    assert!((cost - 2.0 * 0.01).abs() < 1e-12, "AWS $0.01/GB: {cost}");
    assert_eq!(json["unit"], "GB");

    let (status, kind, csv) = get(&format!("{base}/api/v1/allocation.csv?window=1h"));
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/csv"));
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("name,in_zone_egress_bytes"));
    assert!(
        lines[1].starts_with("shop,0,0,2000000000,0,0.020000,"),
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
