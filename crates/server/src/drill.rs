//! What the UI's overview and drill-down need beyond the allocation and the edges:
//! `GET /api/v1/zones?window=`, the zone × zone matrix of bytes and cost, and
//! `GET /api/v1/peers?window=&workload=NAMESPACE/KIND/NAME`, every edge of one workload (any
//! class), priced.
//!
//! Both read the workload pair counters through [`Engine::pair_usage`] and leave the arithmetic
//! to `netcost-cost` ([`zone_matrix`], [`workload_peers`]). What they do not give: a pod's own
//! peers. The counters are per workload, so `peers` answers for the pod's workload and says so
//! in its `note`.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use netcost_cost::edges::{Edge, PairUsage, Workload};
use netcost_cost::peers::workload_peers;
use netcost_cost::zones::{ZoneMatrix, zone_matrix};
use serde::Serialize;

use crate::api::{answer_json, bad_request, error_response, unknown_parameter, window_of};
use crate::engine::{Engine, EngineError};
use crate::query::Window;

/// The window, the sheet and whether there was any pair data: what every answer here carries.
#[derive(Debug, Clone, Serialize)]
pub struct PairWindow {
    /// Window start, RFC 3339.
    pub start: String,
    /// Window end, RFC 3339.
    pub end: String,
    /// The price sheet's provider.
    pub provider: String,
    /// The billing unit of the prices.
    pub unit: String,
    /// Always `USD`.
    pub currency: &'static str,
    /// False when no agent exported workload pairs in the window.
    pub has_pair_data: bool,
}

/// The answer to `/api/v1/zones`.
#[derive(Debug, Clone, Serialize)]
pub struct ZonesResult {
    /// The window and prices.
    #[serde(flatten)]
    pub window: PairWindow,
    /// The matrix.
    #[serde(flatten)]
    pub matrix: ZoneMatrix,
}

/// The answer to `/api/v1/peers`.
#[derive(Debug, Clone, Serialize)]
pub struct PeersResult {
    /// The window and prices.
    #[serde(flatten)]
    pub window: PairWindow,
    /// The workload asked about.
    pub workload: Workload,
    /// Its edges, any class, costliest first.
    pub edges: Vec<Edge>,
    /// The edges' cost over the window.
    pub total_cost: f64,
    /// The edges' cost projected to a month.
    pub total_monthly_cost: f64,
    /// Why these are the workload's edges and not a pod's.
    pub note: &'static str,
}

/// What a page showing a pod's peers must say.
pub const PER_WORKLOAD_NOTE: &str = "The agents count bytes per pair of workloads, not per pair \
    of pods: these are the edges of the whole workload, shared by all its pods.";

impl Engine {
    fn pair_window(
        &self,
        window: &Window,
    ) -> Result<(PairWindow, Vec<PairUsage>, i64), EngineError> {
        let usages = self.pair_usage(window)?;
        let sheet = self.sheet();
        Ok((
            PairWindow {
                start: window.start.to_string(),
                end: window.end.to_string(),
                provider: sheet.provider.clone(),
                unit: sheet.unit.as_str().to_owned(),
                currency: "USD",
                has_pair_data: !usages.is_empty(),
            },
            usages,
            window.seconds(),
        ))
    }

    /// The zone × zone matrix over `window`.
    pub fn zones(&self, window: &Window) -> Result<ZonesResult, EngineError> {
        let (window, usages, seconds) = self.pair_window(window)?;
        let matrix = zone_matrix(&usages, self.sheet(), seconds);
        Ok(ZonesResult { window, matrix })
    }

    /// Every edge of `workload` over `window`.
    pub fn peers(&self, window: &Window, workload: &Workload) -> Result<PeersResult, EngineError> {
        let (window, usages, seconds) = self.pair_window(window)?;
        let edges = workload_peers(&usages, self.sheet(), seconds, workload);
        Ok(PeersResult {
            window,
            workload: workload.clone(),
            total_cost: edges.iter().map(|e| e.cost).sum(),
            total_monthly_cost: edges.iter().map(|e| e.monthly_cost).sum(),
            edges,
            note: PER_WORKLOAD_NOTE,
        })
    }
}

/// The routes, to merge into the API's router.
pub fn routes() -> Router<Engine> {
    Router::new()
        .route("/api/v1/zones", get(zones_json))
        .route("/api/v1/peers", get(peers_json))
}

async fn zones_json(
    State(engine): State<Engine>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Some(response) = unknown_parameter(&params, &["window"]) {
        return response;
    }
    let window = match window_of(&params, "24h") {
        Ok(window) => window,
        Err(e) => return bad_request(e),
    };
    answer_json(move || engine.zones(&window)).await
}

/// `NAMESPACE/KIND/NAME`, as the allocation names a workload row.
fn parse_workload(text: &str) -> Result<Workload, String> {
    let mut parts = text.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(namespace), Some(kind), Some(name))
            if !namespace.is_empty() && !kind.is_empty() && !name.is_empty() =>
        {
            Ok(Workload {
                namespace: namespace.into(),
                kind: kind.into(),
                name: name.into(),
            })
        }
        _ => Err(format!(
            "workload {text:?} is not NAMESPACE/KIND/NAME (e.g. shop/Deployment/web)"
        )),
    }
}

async fn peers_json(
    State(engine): State<Engine>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Some(response) = unknown_parameter(&params, &["window", "workload"]) {
        return response;
    }
    let workload = match parse_workload(params.get("workload").map_or("", String::as_str)) {
        Ok(w) => w,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, "bad_workload", &message),
    };
    let window = match window_of(&params, "24h") {
        Ok(window) => window,
        Err(e) => return bad_request(e),
    };
    answer_json(move || engine.peers(&window, &workload)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workload_is_namespace_kind_name_and_anything_else_is_refused() {
        let w = parse_workload("shop/Deployment/web").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (w.namespace.as_str(), w.kind.as_str(), w.name.as_str()),
            ("shop", "Deployment", "web")
        );
        for bad in [
            "",
            "shop",
            "shop/Deployment",
            "shop//web",
            "/Deployment/web",
        ] {
            let e = parse_workload(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(e.contains("NAMESPACE/KIND/NAME"), "{e}");
        }
    }
}
