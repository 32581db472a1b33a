//! Shared by the HTTP tests: the server in-process on loopback, and a plain GET.

use std::time::Duration;

use netcost_server::api::standalone;
use netcost_server::engine::Engine;

/// Serves `engine` with [`standalone`] (the API and the UI) on a free loopback port, in a
/// background thread for the rest of the test; returns the base URL.
pub fn serve(engine: Engine) -> String {
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
            let _ = axum::serve(listener, standalone(engine)).await;
        });
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    format!("http://{addr}")
}

/// GETs `url`: status, content type and body; an error status is an answer, not a failure.
pub fn get(url: &str) -> (u16, String, String) {
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
