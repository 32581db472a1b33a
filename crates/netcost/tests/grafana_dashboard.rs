#![cfg(feature = "prometheus-tests")]
//! Every query of the Grafana dashboard (`deploy/grafana/netcost.json`) runs against a real
//! Prometheus scraping the real agent on the simulator (`netcost simulate --agent`), and returns
//! data. This catches a panel that names a metric or label the agent does not export, or PromQL
//! that Prometheus refuses.
//!
//! What it does not test: Grafana itself (how panels look), or that the dashboard's list prices
//! equal `netcost serve`'s (they are editable variables; the server prices exactly).

use std::process::{Child, Command, Stdio};

use netcost_server::testing::{Prometheus, free_port, wait_until};

/// Kills the agent when the test ends, pass or fail.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The dashboard's queries, with Grafana's variables replaced the way Grafana would: the
/// textbox variables by their defaults, `$namespace` by its "All" value, and the intervals by
/// spans that hold enough one-second scrapes.
fn queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut values: Vec<(String, String)> = vec![
        ("$__rate_interval".into(), "20s".into()),
        ("$__range".into(), "1m".into()),
        ("$namespace".into(), ".*".into()),
    ];
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] == "textbox" {
            let name = var["name"].as_str().unwrap_or_default();
            let value = var["query"].as_str().unwrap_or_default();
            values.push((format!("${name}"), value.to_owned()));
        }
    }
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        let title = panel["title"].as_str().unwrap_or_default();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let mut expr = target["expr"].as_str().unwrap_or_default().to_owned();
            for (name, value) in &values {
                expr = expr.replace(name.as_str(), value);
            }
            assert!(!expr.contains('$'), "{title}: a variable is left in {expr}");
            out.push((title.to_owned(), expr));
        }
    }
    out
}

/// The number of series (or 1 for a scalar) an instant query returns; fails on an error.
fn series(prometheus: &Prometheus, title: &str, expr: &str) -> usize {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let body = agent
        .get(format!("{}/api/v1/query", prometheus.url))
        .query("query", expr)
        .call()
        .and_then(|mut r| r.body_mut().read_to_string())
        .unwrap_or_else(|e| panic!("{title}: {e}"));
    let json: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{title}: {e}: {body}"));
    assert_eq!(json["status"], "success", "{title}: {expr}: {body}");
    match &json["data"]["result"] {
        serde_json::Value::Array(rows) => rows.len(),
        _ => 1,
    }
}

#[test]
fn every_dashboard_query_returns_data_from_the_agent_on_the_simulator() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana/netcost.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let dashboard: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let queries = queries(&dashboard);
    assert!(queries.len() >= 15, "only {} queries", queries.len());

    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let _agent = Agent(
        Command::new(env!("CARGO_BIN_EXE_netcost"))
            .args([
                "simulate",
                "--agent",
                "--entries",
                "3000",
                "--interval",
                "1s",
            ])
            .args(["--churn-per-min", "50%", "--listen"])
            .arg(addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("netcost simulate: {e}")),
    );
    let prometheus = Prometheus::start("grafana", &[addr]);
    // Rates need two scrapes after the agent's first bytes, and internet and cross-region
    // traffic must have shown up; then every panel has something to draw.
    wait_until("the dashboard's queries to return data", || {
        queries
            .iter()
            .all(|(title, expr)| series(&prometheus, title, expr) > 0)
    });
    for (title, expr) in &queries {
        assert!(
            series(&prometheus, title, expr) > 0,
            "{title}: no data for {expr}"
        );
    }
}
