//! The web UI driven in headless Chromium (Debian's `chromium`), behind the `browser-tests`
//! feature. The server runs in this process over an embedded store filled with known bytes, so
//! the expected rows come from the API itself and from the bytes put in; Chromium loads each view
//! with `--dump-dom` (after the page's scripts ran, under `--virtual-time-budget`) and the test
//! reads the rows the page drew. Screenshots go to `test-artifacts/browser/`.
//!
//! What it does not test: clicks (the page's state lives in its URL, so each view is loaded by
//! address, which is also what a bookmark does).
#![cfg(feature = "browser-tests")]

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netcost_cost::edges::Workload;
use netcost_cost::pricing::PriceSheet;
use netcost_server::backend::AgentStatus;
use netcost_server::engine::Engine;
use netcost_server::prometheus::PrometheusBackend;
use netcost_server::store::{
    DEFAULT_RETENTION_MINUTES, PairSeriesKey, SeriesKey, SharedStore, Store,
};
use support::{get, serve};

mod support;

/// One pod's counter: who, which direction and class, and how many bytes it grows per minute.
struct Flow {
    namespace: &'static str,
    pod: &'static str,
    node: &'static str,
    workload: (&'static str, &'static str),
    direction: &'static str,
    class: &'static str,
    per_minute: u64,
}

const FLOWS: &[Flow] = &[
    Flow {
        namespace: "shop",
        pod: "web-0",
        node: "node-a",
        workload: ("Deployment", "web"),
        direction: "egress",
        class: "cross-zone",
        per_minute: 300_000_000,
    },
    Flow {
        namespace: "shop",
        pod: "web-1",
        node: "node-b",
        workload: ("Deployment", "web"),
        direction: "egress",
        class: "internet",
        per_minute: 40_000_000,
    },
    Flow {
        namespace: "shop",
        pod: "db-0",
        node: "node-b",
        workload: ("StatefulSet", "db"),
        direction: "egress",
        class: "cross-region",
        per_minute: 90_000_000,
    },
    Flow {
        namespace: "batch",
        pod: "etl-7xk2p",
        node: "node-a",
        workload: ("Job", "etl"),
        direction: "egress",
        class: "internet",
        per_minute: 3_000_000_000,
    },
    Flow {
        namespace: "batch",
        pod: "etl-7xk2p",
        node: "node-a",
        workload: ("Job", "etl"),
        direction: "ingress",
        class: "cross-zone",
        per_minute: 50_000_000,
    },
    Flow {
        namespace: "monitoring",
        pod: "prometheus-0",
        node: "node-c",
        workload: ("StatefulSet", "prometheus"),
        direction: "ingress",
        class: "in-zone",
        per_minute: 120_000_000,
    },
];

/// One workload pair counter: client and server (in namespace `shop`, as Deployments) with
/// their zones, the class, and its growth per minute.
const PAIRS: &[(&str, &str, &str, &str, &str, u64)] = &[
    // web calls api from both zones and api runs in both: topology-aware routing applies.
    ("web", "a", "api", "b", "cross-zone", 200_000_000),
    ("web", "b", "api", "a", "cross-zone", 100_000_000),
    ("web", "a", "api", "a", "in-zone", 500_000_000),
    // web calls db, which runs only in zone b: co-location applies.
    ("web", "a", "db", "b", "cross-zone", 60_000_000),
    ("web", "b", "db", "b", "in-zone", 60_000_000),
];

/// Minutes of history recorded, ending two minutes before now (inside a 1h window).
const MINUTES: i64 = 45;

/// A store holding [`FLOWS`] over the last [`MINUTES`] minutes; returns it and the bytes put in.
fn filled_store() -> (SharedStore, u64) {
    let now_minute = jiff::Timestamp::now().as_second().div_euclid(60);
    let mut store = Store::in_memory(DEFAULT_RETENTION_MINUTES);
    for (i, minute) in (now_minute - 2 - MINUTES..now_minute - 2).enumerate() {
        let series = FLOWS.iter().map(|f| {
            let key = SeriesKey {
                namespace: f.namespace.into(),
                pod: f.pod.into(),
                node: f.node.into(),
                region: "us-east-1".into(),
                workload: Some((f.workload.0.into(), f.workload.1.into())),
                direction: f.direction.into(),
                class: f.class.into(),
                service: String::new(),
                remote_region: String::new(),
                nat_gateway: false,
            };
            (key, f.per_minute * (i as u64 + 1))
        });
        store
            .record(minute, series)
            .unwrap_or_else(|e| panic!("recording minute {minute}: {e}"));
        let deployment = |name: &str| Workload {
            namespace: "shop".into(),
            kind: "Deployment".into(),
            name: name.into(),
        };
        let pairs = PAIRS
            .iter()
            .map(|(client, cz, server, sz, class, per_minute)| {
                let key = PairSeriesKey {
                    pair_node: format!("node-{cz}"),
                    client: deployment(client),
                    client_zone: (*cz).into(),
                    server: deployment(server),
                    server_zone: (*sz).into(),
                    class: (*class).into(),
                };
                (key, per_minute * (i as u64 + 1))
            });
        store
            .record(minute, pairs)
            .unwrap_or_else(|e| panic!("recording pairs at minute {minute}: {e}"));
    }
    for (node, entries, malformed) in [("node-a", 1_200, 0), ("node-b", 900, 3)] {
        store.set_agent(
            AgentStatus {
                node: node.into(),
                instance: String::new(),
                up: true,
                last_cycle_age_seconds: None,
                cycle_ms: 4.2,
                entries,
                cycle_failures: 0,
                malformed_entries: malformed,
                events_lost: 0,
                workload_pairs: 3,
            },
            Some(jiff::Timestamp::now().as_millisecond() - 5_000),
        );
    }
    let put_in = FLOWS.iter().map(|f| f.per_minute).sum::<u64>() * MINUTES as u64;
    (SharedStore(Arc::new(Mutex::new(store))), put_in)
}

fn get_json(url: &str) -> serde_json::Value {
    let (status, _, body) = get(url);
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test-artifacts/browser");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// Runs headless Chromium on `url` with `mode` (`--dump-dom` or `--screenshot=FILE`) and
/// returns its standard output; killed after 90 s so a hung browser fails the test, not CI.
fn chromium(mode: &str, url: &str) -> String {
    let profile = std::env::temp_dir().join(format!(
        "netcost-chromium-{}-{}",
        std::process::id(),
        PROFILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            // CI runs as root, where Chromium refuses its sandbox.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1400,900",
            // Virtual time runs the page's scripts to completion (network fetches included)
            // before the DOM is dumped or the picture taken.
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(mode)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start chromium (apt-get install chromium): {e}"));
    let mut stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not finish {mode} {url} within 90 s");
            }
        }
    }
    let text = reader.join().unwrap_or_default();
    let _ = std::fs::remove_dir_all(&profile);
    text
}

static PROFILES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn dom(url: &str) -> String {
    let dom = chromium("--dump-dom", url);
    assert!(
        dom.contains("<body"),
        "chromium dumped no page for {url}: {dom}"
    );
    dom
}

fn screenshot(url: &str, name: &str) {
    let file = artifacts().join(name);
    let _ = std::fs::remove_file(&file);
    chromium(&format!("--screenshot={}", file.display()), url);
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} is {size} bytes",
        file.display()
    );
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// The value of attribute `name` in the tag `tag` (its text from `<` to `>`).
fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = start + tag[start..].find('"')?;
    Some(unescape(&tag[start..end]))
}

/// The opening tags that contain `needle`, in document order.
fn tags_with<'a>(dom: &'a str, needle: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(at) = rest.find(needle) {
        let open = rest[..at].rfind('<').unwrap_or(0);
        let close = at + rest[at..].find('>').unwrap_or(rest.len() - at);
        out.push(&rest[open..close]);
        rest = &rest[close..];
    }
    out
}

/// The table rows the page drew: (name, total cost).
fn page_rows(dom: &str) -> Vec<(String, f64)> {
    tags_with(dom, "<tr data-name=")
        .into_iter()
        .map(|tag| {
            let name = attr(tag, "data-name").unwrap_or_else(|| panic!("no name: {tag}"));
            let cost = attr(tag, "data-cost")
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| panic!("no cost: {tag}"));
            (name, cost)
        })
        .collect()
}

fn api_rows(json: &serde_json::Value) -> Vec<(String, f64)> {
    json["allocations"]
        .as_array()
        .unwrap_or_else(|| panic!("no allocations: {json}"))
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_owned(),
                r["total_cost"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect()
}

fn assert_same_rows(page: &[(String, f64)], api: &[(String, f64)], view: &str) {
    let names = |rows: &[(String, f64)]| rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(page),
        names(api),
        "{view}: the page's rows are not the API's"
    );
    for ((name, shown), (_, cost)) in page.iter().zip(api) {
        assert!(
            (shown - cost).abs() < 1e-9,
            "{view} {name}: page {shown}, API {cost}"
        );
    }
}

fn state(dom: &str) -> String {
    tags_with(dom, "<body")
        .first()
        .and_then(|tag| attr(tag, "data-state"))
        .unwrap_or_default()
}

#[test]
fn the_allocation_view_shows_the_apis_rows_switches_aggregation_and_links_the_csv() {
    let (store, put_in) = filled_store();
    let base = serve(Engine::new(Arc::new(store), PriceSheet::aws()));

    // The API first: every byte put in is in the window, and the cross-zone cost is AWS's
    // $0.01 per GB on each side.
    let by_namespace = get_json(&format!(
        "{base}/api/v1/allocation?window=1h&aggregate=namespace"
    ));
    let total = &by_namespace["total"];
    let class_bytes = |class: &str| {
        total[class]["egress_bytes"].as_u64().unwrap_or(0)
            + total[class]["ingress_bytes"].as_u64().unwrap_or(0)
    };
    let bytes: u64 = ["in_zone", "cross_zone", "cross_region", "internet"]
        .iter()
        .map(|c| class_bytes(c))
        .sum();
    assert_eq!(bytes, put_in);
    let cross_zone_cost = total["cross_zone"]["cost"].as_f64().unwrap_or(f64::NAN);
    // AWS's GB: 2^30 bytes.
    let expected = class_bytes("cross_zone") as f64 / 1_073_741_824.0 * 0.01;
    assert!(
        (cross_zone_cost - expected).abs() < 1e-9,
        "{cross_zone_cost} != {expected}"
    );

    // The namespace view: the page's rows are the API's, in the API's order (cost, highest first).
    let url = format!("{base}/?window=1h&aggregate=namespace");
    let page = dom(&url);
    assert_eq!(state(&page), "ready", "{page}");
    let rows = page_rows(&page);
    assert_same_rows(&rows, &api_rows(&by_namespace), "namespace view");
    let mut names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["batch", "monitoring", "shop"]);
    let total_tag = tags_with(&page, "id=\"total-row\"");
    let shown_total: f64 = total_tag
        .first()
        .and_then(|t| attr(t, "data-cost"))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no total row: {page}"));
    let api_total = total["total_cost"].as_f64().unwrap_or(f64::NAN);
    assert!((shown_total - api_total).abs() < 1e-9);
    // Over AWS's 100 GB free allowance (the store holds nothing earlier this month), internet
    // egress is billed at the first tier, so the chart has all three priced classes.
    let internet_cost = total["internet"]["cost"].as_f64().unwrap_or(f64::NAN);
    let internet_egress = total["internet"]["egress_bytes"].as_u64().unwrap_or(0);
    let expected = (internet_egress as f64 / 1_073_741_824.0 - 100.0) * 0.09;
    assert!(
        (internet_cost - expected).abs() < 1e-9,
        "{internet_cost} != {expected}"
    );
    // The chart drew stacked bars for the three priced classes.
    for class in ["cross_zone", "cross_region", "internet"] {
        assert!(
            page.contains(&format!("data-class=\"{class}\"")),
            "no {class} bars in the chart: {page}"
        );
    }
    screenshot(&url, "allocation-namespace.png");

    // Switching aggregation changes the rows, and they still match the API.
    let url = format!("{base}/?window=1h&aggregate=workload");
    let page = dom(&url);
    let by_workload = get_json(&format!(
        "{base}/api/v1/allocation?window=1h&aggregate=workload"
    ));
    let rows = page_rows(&page);
    assert_same_rows(&rows, &api_rows(&by_workload), "workload view");
    assert_eq!(rows.len(), 4, "web, db, etl, prometheus: {rows:?}");
    assert!(
        rows.iter().any(|r| r.0 == "shop/Deployment/web"),
        "{rows:?}"
    );
    screenshot(&url, "allocation-workload.png");

    // The CSV link carries the view's parameters, and the CSV has the same rows.
    let link = tags_with(&page, "id=\"csv\"");
    let href = link
        .first()
        .and_then(|t| attr(t, "href"))
        .unwrap_or_else(|| panic!("no CSV link: {page}"));
    assert!(href.starts_with("/api/v1/allocation.csv?"), "{href}");
    assert!(
        href.contains("aggregate=workload") && href.contains("window=1h"),
        "{href}"
    );
    let (status, _, csv) = get(&format!("{base}{href}"));
    assert_eq!(status, 200, "{csv}");
    let csv_names: Vec<&str> = csv
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with("__total__,"))
        .filter_map(|l| l.split(',').next())
        .collect();
    let page_names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(csv_names, page_names);

    // The pod and node views load too.
    for aggregate in ["pod", "node"] {
        let page = dom(&format!("{base}/?window=1h&aggregate={aggregate}"));
        let api = get_json(&format!(
            "{base}/api/v1/allocation?window=1h&aggregate={aggregate}"
        ));
        assert_same_rows(&page_rows(&page), &api_rows(&api), aggregate);
    }
}

#[test]
fn the_time_series_cuts_the_window_into_steps_that_add_up() {
    let (store, put_in) = filled_store();
    let base = serve(Engine::new(Arc::new(store), PriceSheet::aws()));
    let series = get_json(&format!(
        "{base}/api/v1/allocation/timeseries?window=1h&step=5m"
    ));
    assert_eq!(series["step_seconds"], 300);
    let steps = series["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("{series}"));
    assert!((12..=13).contains(&steps.len()), "{} steps", steps.len());
    let bytes: u64 = steps
        .iter()
        .flat_map(|s| {
            ["in_zone", "cross_zone", "cross_region", "internet"].map(|c| {
                s[c]["egress_bytes"].as_u64().unwrap_or(0)
                    + s[c]["ingress_bytes"].as_u64().unwrap_or(0)
            })
        })
        .sum();
    assert_eq!(bytes, put_in);
    let (status, _, body) = get(&format!(
        "{base}/api/v1/allocation/timeseries?window=7d&step=1m"
    ));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad_step"), "{body}");
}

#[test]
fn empty_and_error_states_say_what_is_wrong_and_how_to_fix_it() {
    let (store, _) = filled_store();
    let base = serve(Engine::new(Arc::new(store), PriceSheet::aws()));

    // A filter that matches nothing: no data, and what to do about it.
    let page = dom(&format!("{base}/?window=1h&filter=namespace:nothing-here"));
    assert_eq!(state(&page), "empty", "{page}");
    assert!(page.contains("No traffic in this window"), "{page}");
    assert!(page.contains("Clear the filter"), "{page}");
    assert!(page_rows(&page).is_empty());

    // A bad filter: the API's own message.
    let (status, _, body) = get(&format!("{base}/api/v1/allocation?filter=nope"));
    assert_eq!(status, 400);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}"));
    let message = json["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let page = dom(&format!("{base}/?window=1h&filter=nope"));
    assert_eq!(state(&page), "error", "{page}");
    assert!(
        page.contains(&unescape_free(&message)),
        "no {message:?} in {page}"
    );

    // Prometheus down: the page names its address and the fix.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{e}"));
    let prometheus = format!("http://{closed}");
    let backend = PrometheusBackend::new(&prometheus, Duration::from_secs(2));
    let base = serve(Engine::new(Arc::new(backend), PriceSheet::aws()));
    let url = format!("{base}/?window=1h");
    let page = dom(&url);
    assert_eq!(state(&page), "error", "{page}");
    assert!(
        page.contains(&format!("Prometheus unreachable at {prometheus}")),
        "{page}"
    );
    assert!(page.contains("--prometheus URL"), "{page}");
    screenshot(&url, "prometheus-unreachable.png");
    // The cross-zone and live views say the same.
    for view in ["edges", "live"] {
        let page = dom(&format!("{base}/?view={view}"));
        assert_eq!(state(&page), "error", "{view}: {page}");
        assert!(
            page.contains(&format!("Prometheus unreachable at {prometheus}")),
            "{view}: {page}"
        );
    }
}

#[test]
fn the_cross_zone_view_lists_the_apis_edges_with_their_recommendations() {
    let (store, _) = filled_store();
    let base = serve(Engine::new(Arc::new(store), PriceSheet::aws()));
    let api = get_json(&format!("{base}/api/v1/edges?window=1h&limit=50"));
    let edges = api["edges"].as_array().unwrap_or_else(|| panic!("{api}"));
    // Only the cross-zone pairs, summed per client → server over zones, costliest first.
    let minutes = MINUTES as u64;
    let expected: Vec<(&str, u64)> = vec![
        ("web → api", 300_000_000 * minutes),
        ("web → db", 60_000_000 * minutes),
    ];
    let got: Vec<(String, u64)> = edges
        .iter()
        .map(|e| {
            (
                format!(
                    "{} → {}",
                    e["client"]["name"].as_str().unwrap_or(""),
                    e["server"]["name"].as_str().unwrap_or("")
                ),
                e["bytes"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let got_ref: Vec<(&str, u64)> = got.iter().map(|(n, b)| (n.as_str(), *b)).collect();
    assert_eq!(got_ref, expected);
    // AWS bills a cross-zone GB $0.01 on each side.
    let cost = edges[0]["cost"].as_f64().unwrap_or(f64::NAN);
    assert!(
        (cost - (300_000_000 * minutes) as f64 / 1_073_741_824.0 * 0.02).abs() < 1e-9,
        "{cost}"
    );
    assert_eq!(edges[0]["recommendation"]["kind"], "topology-aware-routing");
    assert_eq!(edges[1]["recommendation"]["kind"], "co-location");

    let url = format!("{base}/?view=edges&window=1h");
    let page = dom(&url);
    assert_eq!(state(&page), "ready", "{page}");
    let rows: Vec<(String, u64, f64)> = tags_with(&page, "<tr data-client=")
        .into_iter()
        .map(|tag| {
            (
                format!(
                    "{} → {}",
                    attr(tag, "data-client").unwrap_or_default(),
                    attr(tag, "data-server").unwrap_or_default()
                ),
                attr(tag, "data-bytes")
                    .and_then(|b| b.parse().ok())
                    .unwrap_or(0),
                attr(tag, "data-monthly")
                    .and_then(|b| b.parse().ok())
                    .unwrap_or(f64::NAN),
            )
        })
        .collect();
    assert_eq!(rows.len(), 2, "{page}");
    for (row, edge) in rows.iter().zip(edges) {
        assert_eq!(row.1, edge["bytes"].as_u64().unwrap_or(0));
        assert!((row.2 - edge["monthly_cost"].as_f64().unwrap_or(f64::NAN)).abs() < 1e-9);
    }
    assert_eq!(rows[0].0, "shop/web (Deployment) → shop/api (Deployment)");
    for kind in ["topology-aware-routing", "co-location"] {
        assert!(
            page.contains(&format!("data-kind=\"{kind}\"")),
            "no {kind} advice: {page}"
        );
    }
    assert!(page.contains("topology-mode: Auto"), "{page}");
    assert!(page.contains("run shop/db replicas in a"), "{page}");
    screenshot(&url, "cross-zone.png");
}

#[test]
fn the_live_view_shows_every_agent_and_the_top_talkers() {
    let (store, _) = filled_store();
    let base = serve(Engine::new(Arc::new(store), PriceSheet::aws()));
    let api = get_json(&format!("{base}/api/v1/live"));
    let url = format!("{base}/?view=live");
    let page = dom(&url);
    assert_eq!(state(&page), "ready", "{page}");
    let nodes: Vec<(String, String)> = tags_with(&page, "<tr data-node=")
        .into_iter()
        .map(|t| {
            (
                attr(t, "data-node").unwrap_or_default(),
                attr(t, "data-entries").unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        nodes,
        [
            ("node-a".to_owned(), "1200".to_owned()),
            ("node-b".to_owned(), "900".to_owned())
        ]
    );
    assert!(page.contains("class=\"state-up\""), "{page}");
    // The talkers are the API's, in its order; the busiest is the batch job's 3 GB a minute.
    let talkers: Vec<String> = tags_with(&page, "<tr data-pod=")
        .into_iter()
        .filter_map(|t| attr(t, "data-pod"))
        .collect();
    let api_talkers: Vec<String> = api["talkers"]
        .as_array()
        .unwrap_or_else(|| panic!("{api}"))
        .iter()
        .map(|t| {
            format!(
                "{}/{}",
                t["namespace"].as_str().unwrap_or(""),
                t["pod"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(talkers, api_talkers);
    assert_eq!(talkers.first().map(String::as_str), Some("batch/etl-7xk2p"));
    let rate = api["talkers"][0]["bytes_per_second"]
        .as_f64()
        .unwrap_or(0.0);
    assert!((rate - 3_050_000_000.0 / 60.0).abs() < 1e-6, "{rate}");
    screenshot(&url, "live.png");
}

#[test]
fn the_cross_zone_and_live_views_explain_missing_data() {
    let empty = SharedStore(Arc::new(Mutex::new(Store::in_memory(
        DEFAULT_RETENTION_MINUTES,
    ))));
    let base = serve(Engine::new(Arc::new(empty), PriceSheet::aws()));
    let page = dom(&format!("{base}/?view=live"));
    assert_eq!(state(&page), "empty", "{page}");
    assert!(page.contains("No agents scraped"), "{page}");
    assert!(page.contains("netcost_agent_info"), "{page}");
    let page = dom(&format!("{base}/?view=edges&window=1h"));
    assert_eq!(state(&page), "empty", "{page}");
    assert!(page.contains("No workload pair data"), "{page}");
}

/// `message` as it appears in serialized HTML text: `"` stays, `&`, `<` and `>` are escaped.
fn unescape_free(message: &str) -> String {
    message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
