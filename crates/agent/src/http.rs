//! The agent's HTTP endpoints: `/metrics`, `/healthz` and `/readyz`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::Shared;
use crate::exposition;

/// The router serving the agent's endpoints from `shared`.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(shared)
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let exposition = shared.exposition();
    let generation = exposition.snapshot.generation;
    match exposition::render_all(exposition, shared.cloud.status(), &shared.collectors) {
        Ok(body) => {
            // Only now has a scraper seen the series of this generation at their current values.
            shared
                .scraped_generation
                .fetch_max(generation, Ordering::Relaxed);
            (
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                body,
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed to encode metrics\n",
        )
            .into_response(),
    }
}

/// Alive while the pipeline thread keeps beating; a wedged dump makes the kubelet restart us.
async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    match shared.heartbeat_age_ms() {
        age if age <= shared.stale_after_ms => (StatusCode::OK, "ok\n").into_response(),
        age => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("pipeline stalled: last heartbeat {age} ms ago\n"),
        )
            .into_response(),
    }
}

/// Ready once the first cycle completed and was checkpointed, so the first scrape already has
/// every pod's series; until then it says what it waits for, or what went wrong.
async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.ready.load(Ordering::Relaxed) {
        return (StatusCode::OK, "ready\n").into_response();
    }
    let body = match shared.not_ready_because() {
        Some(reason) => format!("not ready: {reason}\n"),
        None => "first conntrack cycle not done yet\n".to_owned(),
    };
    (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
}
