//! The cost API: `GET /api/v1/allocation?window=&aggregate=&filter=` as JSON, or as CSV with
//! `format=csv` (or at `/api/v1/allocation.csv`); `GET /api/v1/allocation/timeseries?window=&step=&filter=`,
//! cost per class per time step, for charts; `GET /api/v1/edges?window=&limit=`, the costliest
//! cross-zone and cross-region workload edges with recommendations;
//! `GET /api/v1/endpoint-advice?window=`, what VPC endpoints would save on traffic to cloud
//! services through the NAT gateway; `GET /api/v1/live`, the
//! agents' state and the busiest pods; `GET /api/v1/info`, where data and prices come from;
//! `GET /api/v1/zones` and `GET /api/v1/peers` (see [`crate::drill`]).
//! Errors are JSON
//! `{"error": {"code", "message"}}`: 400 for a bad window, aggregate or filter, 502 when the
//! backend is unreachable or refuses the query.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;

use crate::engine::{Engine, EngineError};
use crate::query::{Aggregate, Filter, QueryError, Step, Window, parse_limit};
use crate::render;

/// The API routes over `engine`, to merge into a server that has its own health checks (the
/// agent's).
pub fn router(engine: Engine) -> Router {
    Router::new()
        .route("/api/v1/allocation", get(allocation_json))
        .route("/api/v1/allocation.csv", get(allocation_csv))
        .route("/api/v1/allocation/timeseries", get(timeseries_json))
        .route("/api/v1/edges", get(edges_json))
        .route("/api/v1/endpoint-advice", get(endpoint_advice_json))
        .route("/api/v1/live", get(live_json))
        .route("/api/v1/info", get(info_json))
        .merge(crate::drill::routes())
        .with_state(engine)
}

/// The API routes plus the web UI at `/` and `/healthz`, for `netcost serve` and `netcost demo`.
pub fn standalone(engine: Engine) -> Router {
    router(engine)
        .merge(crate::ui::router())
        .route("/healthz", get(|| async { "ok\n" }))
}

/// A JSON error response.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message } });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub(crate) fn engine_error(e: &EngineError) -> Response {
    let status = if e.is_client_error() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::BAD_GATEWAY
    };
    error_response(status, e.code(), &e.to_string())
}

/// A 400 naming the first parameter not in `known`, if any.
pub(crate) fn unknown_parameter(
    params: &HashMap<String, String>,
    known: &[&str],
) -> Option<Response> {
    let unknown = params.keys().find(|k| !known.contains(&k.as_str()))?;
    Some(error_response(
        StatusCode::BAD_REQUEST,
        "bad_parameter",
        &if known.is_empty() {
            format!("unknown parameter {unknown:?}: this endpoint takes none")
        } else {
            format!("unknown parameter {unknown:?}: use {}", known.join(", "))
        },
    ))
}

/// The 400 that says what is wrong with a request's text.
pub(crate) fn bad_request(e: QueryError) -> Response {
    engine_error(&EngineError::Query(e))
}

/// The `window` parameter (or `default`), relative to now.
pub(crate) fn window_of(
    params: &HashMap<String, String>,
    default: &str,
) -> Result<Window, QueryError> {
    let text = params.get("window").map_or(default, String::as_str);
    Ok(Window::parse(text, Timestamp::now())?)
}

/// The `filter` parameter; none matches everything.
fn filter_of(params: &HashMap<String, String>) -> Result<Filter, QueryError> {
    Ok(Filter::parse(
        params.get("filter").map_or("", String::as_str),
    )?)
}

/// Runs blocking engine work off the async workers and answers with its result as JSON, or
/// with the error's response.
pub(crate) async fn answer_json<T: serde::Serialize + Send + 'static>(
    work: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Response {
    match blocking(work).await {
        Ok(result) => json_response(&result),
        Err(response) => response,
    }
}

/// Runs blocking engine work (backend queries) off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(e)) => Err(engine_error(&e)),
        Err(e) => Err(error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &format!("the allocation task failed: {e}"),
        )),
    }
}

async fn run(
    engine: Engine,
    params: HashMap<String, String>,
) -> Result<crate::engine::AllocationResult, Response> {
    if let Some(response) = unknown_parameter(&params, &["window", "aggregate", "filter", "format"])
    {
        return Err(response);
    }
    let parts = || -> Result<_, QueryError> {
        let aggregate = params.get("aggregate").map_or("namespace", String::as_str);
        Ok((
            window_of(&params, "24h")?,
            Aggregate::parse(aggregate)?,
            filter_of(&params)?,
        ))
    };
    let (window, aggregate, filter) = parts().map_err(bad_request)?;
    blocking(move || engine.allocate(&window, &aggregate, &filter, &mut |_, _| {})).await
}

async fn timeseries_json(
    State(engine): State<Engine>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Some(response) = unknown_parameter(&params, &["window", "step", "filter"]) {
        return response;
    }
    let parts = || -> Result<_, QueryError> {
        let step = params.get("step").map_or("auto", String::as_str);
        Ok((
            window_of(&params, "24h")?,
            Step::parse(step)?,
            filter_of(&params)?,
        ))
    };
    let (window, step, filter) = match parts() {
        Ok(parts) => parts,
        Err(e) => return bad_request(e),
    };
    answer_json(move || engine.timeseries(&window, step, &filter)).await
}

/// Most edges one request may ask for.
const MAX_EDGES: usize = 1_000;

async fn edges_json(
    State(engine): State<Engine>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Some(response) = unknown_parameter(&params, &["window", "limit"]) {
        return response;
    }
    let parts = || -> Result<_, QueryError> {
        let limit = params.get("limit").map(String::as_str);
        Ok((
            window_of(&params, "7d")?,
            parse_limit(limit, 50, MAX_EDGES)?,
        ))
    };
    let (window, limit) = match parts() {
        Ok(parts) => parts,
        Err(e) => return bad_request(e),
    };
    answer_json(move || engine.edges(&window, limit)).await
}

async fn endpoint_advice_json(
    State(engine): State<Engine>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Some(response) = unknown_parameter(&params, &["window"]) {
        return response;
    }
    let window = match window_of(&params, "7d") {
        Ok(window) => window,
        Err(e) => return bad_request(e),
    };
    answer_json(move || engine.endpoint_advice(&window)).await
}

async fn live_json(
    State(engine): State<Engine>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Some(response) = unknown_parameter(&params, &[]) {
        return response;
    }
    answer_json(move || engine.live()).await
}

/// Where the data and the prices come from, for the UI's header.
async fn info_json(State(engine): State<Engine>) -> Response {
    let sheet = engine.sheet();
    json_response(&serde_json::json!({
        "backend": engine.backend(),
        "provider": sheet.provider,
        "pricing_source": sheet.source,
        "unit": sheet.unit.as_str(),
    }))
}

pub(crate) fn json_response(value: &impl serde::Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &format!("cannot encode the answer: {e}"),
        ),
    }
}

async fn allocation_json(
    State(engine): State<Engine>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let csv = params.get("format").is_some_and(|f| f == "csv");
    match params.get("format").map(String::as_str) {
        None | Some("json") | Some("csv") => {}
        Some(other) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "bad_format",
                &format!("unknown format {other:?}: use json or csv"),
            );
        }
    }
    match run(engine, params).await {
        Ok(result) if csv => csv_response(&result),
        Ok(result) => (
            [(header::CONTENT_TYPE, "application/json")],
            render::json(&result),
        )
            .into_response(),
        Err(response) => response,
    }
}

async fn allocation_csv(
    State(engine): State<Engine>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    match run(engine, params).await {
        Ok(result) => csv_response(&result),
        Err(response) => response,
    }
}

fn csv_response(result: &crate::engine::AllocationResult) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"netcost-allocation.csv\"",
            ),
        ],
        render::csv(result),
    )
        .into_response()
}
