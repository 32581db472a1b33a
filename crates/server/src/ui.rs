//! The web UI: one page at `/` with five views (`?view=`): the overview (the default: the month
//! so far and at the window's rate, the five changes that would save the most, cost by class and
//! by namespace, the zone × zone matrix), the allocation (a cost table by namespace, workload, pod
//! or node, a stacked chart of cost by class over time, and drill-down from a namespace to its
//! workloads and pods), a workload's peers (its edges of every class, priced), the cross-zone
//! edges (workload pairs across zones or regions with recommendations, node and outside ends
//! grouped apart), and live (each agent's state and the top talkers, refreshed every 10 s).
//!
//! The HTML, CSS and JavaScript live in `crates/server/ui/` and are compiled into the binary with
//! `include_str!`, so the UI works offline and behind an air gap: no CDN, no web fonts, no build
//! step. What it does not do: work out figures. Every figure on the page comes from
//! `/api/v1/allocation`, `/api/v1/allocation/timeseries`, `/api/v1/edges`,
//! `/api/v1/endpoint-advice`, `/api/v1/zones`, `/api/v1/peers`, `/api/v1/live` or `/api/v1/info`,
//! so the page can never disagree with the API or the CSV; it only ranks the changes by their
//! saving and works out a class's share of the total.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX_HTML: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const STYLE_CSS: &str = include_str!("../ui/style.css");

/// The UI's routes: `/` and its two static files under `/ui/`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { file("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/ui/app.js",
            get(|| async { file("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/ui/style.css",
            get(|| async { file("text/css; charset=utf-8", STYLE_CSS) }),
        )
}

fn file(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    // `no-cache` rather than a long max-age: the files are tiny, and a browser must not keep an
    // old page's script after netcost is upgraded.
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}
