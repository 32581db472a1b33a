//! The web UI driven in headless Chromium (Debian's `chromium`), behind the `browser-tests`
//! feature. The server runs in this process over an embedded store filled with known bytes, so
//! the expected rows come from the API itself and from the bytes put in. Two ways in:
//! - each view loaded by address with `--dump-dom` (after the page's scripts ran, under
//!   `--virtual-time-budget`), the test reading the rows the page drew: a bookmark's way;
//! - clicks and key presses, by `tests/browser/clickthrough.js` with playwright-core (from npm,
//!   installed by `scripts/install-test-deps.sh`) driving the same Chromium: overview →
//!   namespace → workload → pod → its peers → edges, and the keyboard alone. The script reports
//!   what each view showed; the figures are checked here, against the API and against the
//!   bytes put in, priced by hand at AWS's prices.
//!
//! Screenshots go to `test-artifacts/browser/`.
#![cfg(feature = "browser-tests")]

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netcost_core::class::{Direction, TrafficClass};
use netcost_cost::pricing::PriceSheet;
use netcost_server::backend::AgentStatus;
use netcost_server::engine::Engine;
use netcost_server::prometheus::PrometheusBackend;
use netcost_server::store::StoredWorkload as Workload;
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

/// Node → node traffic (the nodes' own, or host-network pods'), from node-a in zone a to node-b
/// in zone b, per minute: an edge with no workload to move. A pair counter names every node end
/// `Node/node`.
const NODE_PAIR_PER_MINUTE: u64 = 80_000_000;

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
                direction: Direction::from_label(f.direction)
                    .unwrap_or_else(|| panic!("direction {}", f.direction)),
                class: TrafficClass::from_label(f.class)
                    .unwrap_or_else(|| panic!("class {}", f.class)),
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
                    class: TrafficClass::from_label(class)
                        .unwrap_or_else(|| panic!("class {class}")),
                };
                (key, per_minute * (i as u64 + 1))
            })
            .chain(std::iter::once({
                let node = Workload {
                    namespace: String::new(),
                    kind: "Node".into(),
                    name: "node".into(),
                };
                let key = PairSeriesKey {
                    pair_node: "node-a".into(),
                    client: node.clone(),
                    client_zone: "a".into(),
                    server: node,
                    server_zone: "b".into(),
                    class: TrafficClass::CrossZone,
                };
                (key, NODE_PAIR_PER_MINUTE * (i as u64 + 1))
            }));
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
    let url = format!("{base}/?view=allocation&window=1h&aggregate=namespace");
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
    let url = format!("{base}/?view=allocation&window=1h&aggregate=workload");
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
        let page = dom(&format!(
            "{base}/?view=allocation&window=1h&aggregate={aggregate}"
        ));
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
    let page = dom(&format!(
        "{base}/?view=allocation&window=1h&filter=namespace:nothing-here"
    ));
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
    let page = dom(&format!("{base}/?view=allocation&window=1h&filter=nope"));
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
    // The other views say the same.
    for view in ["allocation", "edges", "live"] {
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
        ("node → node", NODE_PAIR_PER_MINUTE * minutes),
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
    assert!(edges[1]["recommendation"].is_null(), "{}", edges[1]);
    assert_eq!(edges[2]["recommendation"]["kind"], "co-location");

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
    // Workload edges lead (those with advice first); the node → node edge comes last, in its
    // own folded table.
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "shop/web (Deployment) → shop/api (Deployment)",
            "shop/web (Deployment) → shop/db (Deployment)",
            "node → node",
        ]
    );
    assert_eq!(tags_with(&page, "data-group=\"other\"").len(), 1, "{page}");
    for (row, name) in rows.iter().zip(["web → api", "web → db", "node → node"]) {
        let at = got.iter().position(|g| g.0 == name);
        let edge = &edges[at.unwrap_or_else(|| panic!("no {name} in {got:?}"))];
        assert_eq!(row.1, edge["bytes"].as_u64().unwrap_or(0));
        assert!((row.2 - edge["monthly_cost"].as_f64().unwrap_or(f64::NAN)).abs() < 1e-9);
    }
    for kind in ["topology-aware-routing", "co-location"] {
        assert!(
            page.contains(&format!("data-kind=\"{kind}\"")),
            "no {kind} advice: {page}"
        );
    }
    assert!(page.contains("topology-mode: Auto"), "{page}");
    assert!(page.contains("run shop/db replicas in a"), "{page}");
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
    // The overview says there is nothing yet, and has nothing to advise.
    let page = dom(&format!("{base}/?window=1h"));
    assert_eq!(state(&page), "empty", "{page}");
    assert!(page.contains("No traffic in this window"), "{page}");
    assert!(
        page.contains("No workload pair data in this window"),
        "{page}"
    );
}

/// `message` as it appears in serialized HTML text: `"` stays, `&`, `<` and `>` are escaped.
fn unescape_free(message: &str) -> String {
    message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Where `scripts/install-test-deps.sh` installed playwright-core.
fn node_modules() -> PathBuf {
    let dir = std::env::var_os("NETCOST_TEST_NODE")
        .map_or_else(|| PathBuf::from("/opt/netcost-test-node"), PathBuf::from);
    dir.join("node_modules")
}

/// Runs `tests/browser/clickthrough.js` against `base` and returns what it saw; killed after
/// 5 minutes so that a hung browser fails the test, not CI.
fn click_through(base: &str) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/clickthrough.js");
    let modules = node_modules();
    assert!(
        modules.join("playwright-core").is_dir(),
        "no playwright-core in {}: run scripts/install-test-deps.sh",
        modules.display()
    );
    let mut child = Command::new("node")
        .arg(&script)
        .arg(base)
        .arg(artifacts())
        .env("NODE_PATH", &modules)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start node (apt-get install nodejs): {e}"));
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = read(Box::new(
        child.stdout.take().unwrap_or_else(|| panic!("no stdout")),
    ));
    let stderr = read(Box::new(
        child.stderr.take().unwrap_or_else(|| panic!("no stderr")),
    ));
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("clickthrough.js did not finish within 5 minutes");
            }
        }
    };
    let (stdout, stderr) = (
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    );
    assert!(
        status.success(),
        "clickthrough.js failed ({status}): {stderr}"
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("clickthrough.js said {e}: {stdout}"))
}

const GIB: f64 = 1_073_741_824.0;

/// `bytes` at AWS's cross-zone price on both ends ($0.01/GB each; AWS's GB is 2^30 bytes).
fn cross_zone_both_ends(bytes: u64) -> f64 {
    bytes as f64 / GIB * 0.02
}

fn number(value: &serde_json::Value) -> f64 {
    value
        .as_str()
        .and_then(|t| t.parse().ok())
        .or_else(|| value.as_f64())
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

fn assert_close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1.0),
        "{what}: {got} != {want}"
    );
}

fn texts(rows: &serde_json::Value, key: &str) -> Vec<String> {
    rows.as_array()
        .unwrap_or_else(|| panic!("not rows: {rows}"))
        .iter()
        .map(|r| r[key].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn clicking_from_the_overview_down_to_a_pods_peers_shows_the_priced_bytes_put_in() {
    let (store, _) = filled_store();
    let base = serve(Engine::new(Arc::new(store), PriceSheet::aws()));
    let seen = click_through(&base);
    assert_eq!(
        seen["errors"],
        serde_json::json!([]),
        "script errors on the page"
    );
    assert_eq!(
        seen["refused"],
        serde_json::json!([]),
        "requests the server refused"
    );
    let minutes = MINUTES as u64;
    let bytes = |per_minute: u64| per_minute * minutes;
    let per_minute_of = |class: &str| -> u64 {
        FLOWS
            .iter()
            .filter(|f| f.class == class)
            .map(|f| f.per_minute)
            .sum()
    };

    // The overview: the rate of the last hour, by class, priced by hand. Each pod counter is one
    // side of its bytes: cross-zone $0.01/GB, cross-region (to an unknown region) $0.02/GB
    // egress, internet $0.09/GB past the month's first 100 GB (the store holds nothing earlier).
    let o = &seen["overview"];
    assert_eq!(o["state"], "ready", "{o}");
    let cross_zone = bytes(per_minute_of("cross-zone")) as f64 / GIB * 0.01;
    let cross_region = bytes(per_minute_of("cross-region")) as f64 / GIB * 0.02;
    let internet_gib = bytes(per_minute_of("internet")) as f64 / GIB;
    let internet = (internet_gib - 100.0) * 0.09;
    let total = cross_zone + cross_region + internet;
    // A 1 h window is 1/730 of a month.
    assert_close(
        number(&o["rate"]),
        total * 730.0,
        "a month at the last hour's rate",
    );
    let classes: Vec<(String, u64, f64)> = o["classes"]
        .as_array()
        .unwrap_or_else(|| panic!("{o}"))
        .iter()
        .map(|c| {
            (
                c["class"].as_str().unwrap_or_default().to_owned(),
                number(&c["bytes"]) as u64,
                number(&c["cost"]),
            )
        })
        .collect();
    let want = [
        ("in_zone", bytes(per_minute_of("in-zone")), 0.0),
        ("cross_zone", bytes(per_minute_of("cross-zone")), cross_zone),
        (
            "cross_region",
            bytes(per_minute_of("cross-region")),
            cross_region,
        ),
        ("internet", bytes(per_minute_of("internet")), internet),
    ];
    assert_eq!(classes.len(), want.len(), "{classes:?}");
    for ((class, b, cost), (want_class, want_bytes, want_cost)) in classes.iter().zip(want) {
        assert_eq!((class.as_str(), *b), (want_class, want_bytes));
        assert_close(*cost, want_cost, class);
    }
    // The month so far is the API's; when the month began before the store's first minute, it is
    // the same bytes as the last hour's.
    let month_api = get_json(&format!("{base}/api/v1/allocation?window=month"));
    let month = number(&o["month"]);
    assert_close(
        month,
        number(&month_api["total"]["total_cost"]),
        "month so far",
    );
    let first_minute = jiff::Timestamp::now().as_second() - (MINUTES + 2) * 60;
    let month_start = number(&serde_json::json!(
        month_api["start"]
            .as_str()
            .and_then(|s| s.parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_second())
    ));
    if month_start as i64 <= first_minute {
        assert_close(month, total, "month so far, by hand");
    }

    // The top changes: the two workload edges with advice, the larger saving first; the saving
    // is the edge's whole cost at the hour's rate.
    let changes = o["changes"].as_array().unwrap_or_else(|| panic!("{o}"));
    let kinds: Vec<&str> = changes
        .iter()
        .map(|c| c["kind"].as_str().unwrap_or(""))
        .collect();
    let api_saving = cross_zone_both_ends(bytes(300_000_000)) * 730.0;
    let db_saving = cross_zone_both_ends(bytes(60_000_000)) * 730.0;
    // No bytes went through a NAT gateway: the endpoint advice has nothing, and its notes are
    // shown as the API gave them.
    let advice = get_json(&format!("{base}/api/v1/endpoint-advice?window=1h"));
    assert_eq!(advice["advice"], serde_json::json!([]), "{advice}");
    let notes: Vec<&str> = advice["notes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str())
        .collect();
    assert_eq!(
        o["adviceNote"].as_str().unwrap_or(""),
        notes.join(" "),
        "{o}"
    );
    assert_eq!(
        kinds,
        ["topology-aware-routing", "co-location"],
        "{changes:?}"
    );
    assert_close(
        number(&o["saving"]),
        api_saving + db_saving,
        "the top changes' saving",
    );
    assert_close(
        number(&changes[0]["saving"]),
        api_saving,
        "first change's saving",
    );
    let savings: Vec<f64> = changes.iter().map(|c| number(&c["saving"])).collect();
    assert!(
        savings.windows(2).all(|w| w[0] >= w[1]),
        "not ranked: {savings:?}"
    );
    assert!(changes.len() <= 5);

    // The namespaces are the API's, and lead to the drill-down.
    let ns_api = get_json(&format!(
        "{base}/api/v1/allocation?window=1h&aggregate=namespace"
    ));
    assert_eq!(
        texts(&o["namespaces"], "name"),
        texts(&ns_api["allocations"], "name")
    );
    assert!(
        o["allocationLink"]
            .as_str()
            .unwrap_or("")
            .contains("view=allocation")
            && o["allocationLink"]
                .as_str()
                .unwrap_or("")
                .contains("window=today"),
        "{o}"
    );

    // The zone matrix: the pair counters by client zone → server zone, node → node included.
    let cells: Vec<(String, String, u64, f64)> = o["zoneCells"]
        .as_array()
        .unwrap_or_else(|| panic!("{o}"))
        .iter()
        .map(|c| {
            (
                c["clientZone"].as_str().unwrap_or("").to_owned(),
                c["serverZone"].as_str().unwrap_or("").to_owned(),
                number(&c["bytes"]) as u64,
                number(&c["cost"]),
            )
        })
        .collect();
    let a_to_b = bytes(200_000_000 + 60_000_000 + NODE_PAIR_PER_MINUTE);
    let want_cells = [
        ("a", "a", bytes(500_000_000), 0.0),
        ("a", "b", a_to_b, cross_zone_both_ends(a_to_b)),
        (
            "b",
            "a",
            bytes(100_000_000),
            cross_zone_both_ends(bytes(100_000_000)),
        ),
        ("b", "b", bytes(60_000_000), 0.0),
    ];
    assert_eq!(cells.len(), 4, "{cells:?}");
    for (got, want) in cells.iter().zip(want_cells) {
        assert_eq!(
            (got.0.as_str(), got.1.as_str(), got.2),
            (want.0, want.1, want.2)
        );
        assert_close(got.3, want.3, &format!("{} → {}", want.0, want.1));
    }
    let zones_api = get_json(&format!("{base}/api/v1/zones?window=1h"));
    assert_eq!(zones_api["zones"], serde_json::json!(["a", "b"]));
    // The table has column and row headers; the picture's numbers show on hover.
    let scopes = &o["zoneHeaders"];
    for scope in ["col", "row"] {
        assert!(
            scopes
                .as_array()
                .is_some_and(|h| h.iter().any(|s| s == scope)),
            "no {scope} header: {scopes}"
        );
    }
    let tip = o["hoverTip"].as_str().unwrap_or("");
    let gib_text = format!("{:.3} GiB", a_to_b as f64 / GIB);
    assert!(
        tip.contains("a → b") && tip.contains(&gib_text),
        "{tip:?} lacks {gib_text}"
    );

    // Clicked namespace shop: its workloads, as the API gives them, with a breadcrumb back.
    let n = &seen["namespace"];
    assert_eq!(n["state"], "ready", "{n}");
    assert!(
        n["url"]
            .as_str()
            .unwrap_or("")
            .contains("aggregate=workload"),
        "{n}"
    );
    assert_eq!(n["crumbs"], serde_json::json!(["All namespaces", "shop"]));
    let api = get_json(&format!(
        "{base}/api/v1/allocation?window=1h&aggregate=workload&filter=namespace:shop"
    ));
    assert_eq!(
        texts(&n["rows"], "name"),
        texts(&api["allocations"], "name")
    );
    assert_eq!(
        texts(&n["rows"], "name"),
        ["shop/Deployment/web", "shop/StatefulSet/db"]
    );

    // Clicked the web Deployment: its pods; web-0 sent 300 MB a minute across zones.
    let w = &seen["workload"];
    assert_eq!(
        w["crumbs"],
        serde_json::json!(["All namespaces", "shop", "Deployment/web"])
    );
    let pods = w["rows"].as_array().unwrap_or_else(|| panic!("{w}"));
    let api = get_json(&format!(
        "{base}/api/v1/allocation?window=1h&aggregate=pod&filter=namespace:shop,workload:Deployment/web"
    ));
    assert_eq!(
        texts(&w["rows"], "name"),
        texts(&api["allocations"], "name")
    );
    let mut names = texts(&w["rows"], "name");
    names.sort();
    assert_eq!(names, ["shop/web-0", "shop/web-1"]);
    let web0 = pods
        .iter()
        .find(|r| r["name"] == "shop/web-0")
        .unwrap_or_else(|| panic!("no web-0: {w}"));
    assert_close(
        number(&web0["cost"]),
        bytes(300_000_000) as f64 / GIB * 0.01,
        "web-0",
    );

    // Clicked web-0: the peers of its workload, priced, and the page says they are the workload's.
    let p = &seen["pod"];
    assert_eq!(p["state"], "ready", "{p}");
    assert!(
        p["url"].as_str().unwrap_or("").contains("view=peers"),
        "{p}"
    );
    assert!(p["heading"].as_str().unwrap_or("").contains("web-0"), "{p}");
    assert!(
        p["note"]
            .as_str()
            .unwrap_or("")
            .contains("not of the pod alone"),
        "{p}"
    );
    assert_eq!(
        p["crumbs"],
        serde_json::json!(["All namespaces", "shop", "Deployment/web", "web-0", "peers"])
    );
    let rows: Vec<(String, String, u64, f64)> = p["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("{p}"))
        .iter()
        .map(|r| {
            (
                r["peer"].as_str().unwrap_or("").to_owned(),
                r["class"].as_str().unwrap_or("").to_owned(),
                number(&r["bytes"]) as u64,
                number(&r["cost"]),
            )
        })
        .collect();
    let want_peers = [
        ("shop/api (Deployment)", "cross-zone", bytes(300_000_000)),
        ("shop/db (Deployment)", "cross-zone", bytes(60_000_000)),
        ("shop/api (Deployment)", "in-zone", bytes(500_000_000)),
        ("shop/db (Deployment)", "in-zone", bytes(60_000_000)),
    ];
    assert_eq!(rows.len(), want_peers.len(), "{rows:?}");
    for (got, want) in rows.iter().zip(want_peers) {
        assert_eq!((got.0.as_str(), got.1.as_str(), got.2), want);
        let price = if want.1 == "cross-zone" {
            cross_zone_both_ends(want.2)
        } else {
            0.0
        };
        assert_close(got.3, price, &format!("{} {}", want.0, want.1));
    }
    let peers_api = get_json(&format!(
        "{base}/api/v1/peers?window=1h&workload=shop/Deployment/web"
    ));
    assert_close(
        number(&p["total"]),
        number(&peers_api["total_cost"]),
        "peers total",
    );
    assert_close(
        number(&p["total"]),
        cross_zone_both_ends(bytes(360_000_000)),
        "peers total, by hand",
    );

    // The breadcrumb "shop" led back to the namespace's workloads.
    let back = &seen["back"];
    assert!(
        back["url"]
            .as_str()
            .unwrap_or("")
            .contains("aggregate=workload"),
        "{back}"
    );
    assert_eq!(
        back["crumbs"],
        serde_json::json!(["All namespaces", "shop"])
    );

    // The edges page: workload edges lead, with advice; node → node is folded away below.
    let e = &seen["edges"];
    assert_eq!(e["state"], "ready", "{e}");
    assert_eq!(
        texts(&e["rows"], "client"),
        ["shop/web (Deployment)", "shop/web (Deployment)"]
    );
    assert_eq!(texts(&e["others"], "client"), ["node"]);
    assert_eq!(
        number(&e["others"][0]["bytes"]) as u64,
        bytes(NODE_PAIR_PER_MINUTE)
    );
    assert_eq!(e["othersOpen"], false);

    // The keyboard alone reached the zone matrix (its figures showed), went back to the
    // namespace link and followed it, sorted a column and unfolded the node edges.
    let k = &seen["keyboard"];
    assert!(
        k["zoneTip"].as_str().unwrap_or("").contains(" GiB, $"),
        "{k}"
    );
    assert!(
        k["afterEnter"]["url"]
            .as_str()
            .unwrap_or("")
            .contains("filter=namespace%3Ashop"),
        "{k}"
    );
    assert!(k["sortBefore"].is_null(), "{k}");
    assert_eq!(k["sortAfter"], "ascending", "{k}");
    let sorted: Vec<&str> = k["rowsAfterSort"]
        .as_array()
        .unwrap_or_else(|| panic!("{k}"))
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    assert_eq!(
        sorted,
        ["shop/Deployment/web", "shop/StatefulSet/db"],
        "A→Z"
    );
    assert_eq!(k["detailsOpen"], true, "{k}");
}
