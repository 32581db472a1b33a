//! The agent's HTTP endpoints: `/metrics`, `/healthz` and `/readyz`; and the same three while
//! the agent waits for what it needs to start ([`serve_while`]), so that a cluster whose RBAC
//! forbids the agent its first list sees why on `/readyz` and on `/metrics`, not only in a log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::exposition;
use crate::{AgentError, Shared};

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
    match exposition::render(exposition, shared.cloud.status(), &shared.collectors) {
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

/// Why the agent is not ready yet, asked at each `/readyz` while [`serve_while`] waits.
pub type NotReady = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves on `listen`, while `wait` runs on this thread: `/metrics` with `collectors` alone,
/// `/healthz` ok (the process is alive and waiting, not wedged) and `/readyz` 503 with
/// `not_ready()`. The listener is closed before `wait`'s result is returned, so that the agent
/// can bind the address again.
pub fn serve_while<T>(
    listen: SocketAddr,
    collectors: Vec<Arc<dyn Collector>>,
    not_ready: NotReady,
    wait: impl FnOnce() -> T,
) -> Result<T, AgentError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AgentError::Server)?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(listen))
        .map_err(|source| AgentError::Listen {
            addr: listen,
            source,
        })?;
    let collectors = Arc::new(collectors);
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let collectors = collectors.clone();
                async move {
                    match exposition::render_collectors(&collectors) {
                        Ok(body) => (
                            [(
                                header::CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8",
                            )],
                            body,
                        )
                            .into_response(),
                        Err(_) => (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "failed to encode metrics\n",
                        )
                            .into_response(),
                    }
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let reason = not_ready();
                async move {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: {reason}\n"),
                    )
                }
            }),
        );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::Builder::new()
        .name("netcost-http-waiting".into())
        .spawn(move || {
            runtime.block_on(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
            })
        })
        .map_err(AgentError::Server)?;
    let result = wait();
    let _ = stop.send(());
    match server.join() {
        Ok(served) => served.map_err(AgentError::Server)?,
        Err(_) => {
            return Err(AgentError::Server(std::io::Error::other(
                "HTTP thread panicked",
            )));
        }
    }
    Ok(result)
}
