//! An in-process Kubernetes API server that speaks just enough list+watch for kube's watcher:
//! cluster-wide lists (one page), watches that replay events after the requested
//! `resourceVersion` and then stream live ones, a `410 Gone` on demand, and dropped connections.
//! This is the only thing the tests mock.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// One resource kind's objects, history and open watches.
#[derive(Default)]
struct Kind {
    /// Keyed by `namespace/name`.
    items: BTreeMap<String, Value>,
    /// (resourceVersion, event) of every change, for watches that resume.
    log: Vec<(u64, Value)>,
    watches: Vec<mpsc::UnboundedSender<Bytes>>,
}

#[derive(Default)]
struct Inner {
    rv: u64,
    kinds: HashMap<String, Kind>,
    /// Watch requests served, per plural, so tests can wait for a reconnect.
    watch_requests: HashMap<String, usize>,
    list_requests: HashMap<String, usize>,
}

/// The fake API server; clone it to share.
#[derive(Clone, Default)]
pub struct ApiServer(Arc<Mutex<Inner>>);

fn key(object: &Value) -> String {
    let meta = &object["metadata"];
    format!(
        "{}/{}",
        meta["namespace"].as_str().unwrap_or(""),
        meta["name"].as_str().unwrap_or("")
    )
}

fn line(event: &Value) -> Bytes {
    let mut text = event.to_string();
    text.push('\n');
    Bytes::from(text)
}

impl ApiServer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates or replaces an object and tells the open watches (`ADDED`/`MODIFIED`).
    pub fn apply(&self, plural: &str, mut object: Value) {
        let mut inner = self.lock();
        inner.rv += 1;
        let rv = inner.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let kind = inner.kinds.entry(plural.to_owned()).or_default();
        let existed = kind.items.insert(key(&object), object.clone()).is_some();
        let event = json!({"type": if existed {"MODIFIED"} else {"ADDED"}, "object": object});
        kind.log.push((rv, event.clone()));
        kind.watches.retain(|w| w.send(line(&event)).is_ok());
    }

    /// Deletes an object and tells the open watches (`DELETED`).
    pub fn delete(&self, plural: &str, namespace: &str, name: &str) {
        let mut inner = self.lock();
        inner.rv += 1;
        let rv = inner.rv;
        let kind = inner.kinds.entry(plural.to_owned()).or_default();
        if let Some(mut object) = kind.items.remove(&format!("{namespace}/{name}")) {
            object["metadata"]["resourceVersion"] = json!(rv.to_string());
            let event = json!({"type": "DELETED", "object": object});
            kind.log.push((rv, event.clone()));
            kind.watches.retain(|w| w.send(line(&event)).is_ok());
        }
    }

    /// Changes the objects with no event at all, as if the events were compacted away, and
    /// forgets the history: only a re-list can see this.
    pub fn replace_silently(&self, plural: &str, objects: Vec<Value>) {
        let mut inner = self.lock();
        inner.rv += 1;
        let kind = inner.kinds.entry(plural.to_owned()).or_default();
        kind.items = objects.into_iter().map(|o| (key(&o), o)).collect();
        kind.log.clear();
    }

    /// Sends `410 Gone` (resource version too old) on the open watches and ends them, as the
    /// API server does after its watch cache moved past them.
    pub fn expire_watches(&self, plural: &str) {
        let gone = json!({"type": "ERROR", "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "too old resource version", "reason": "Expired", "code": 410,
        }});
        let mut inner = self.lock();
        let kind = inner.kinds.entry(plural.to_owned()).or_default();
        for watch in kind.watches.drain(..) {
            let _ = watch.send(line(&gone));
        }
    }

    /// Drops the open watch connections of `plural` without a word.
    pub fn disconnect(&self, plural: &str) {
        let mut inner = self.lock();
        inner
            .kinds
            .entry(plural.to_owned())
            .or_default()
            .watches
            .clear();
    }

    /// Watch requests served so far for `plural`.
    pub fn watch_requests(&self, plural: &str) -> usize {
        self.lock().watch_requests.get(plural).copied().unwrap_or(0)
    }

    /// Waits (up to 10 s) until `n` watches of `plural` have connected: the first topology is
    /// published after the lists, before the watches are open.
    pub fn wait_for_watches(&self, plural: &str, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.watch_requests(plural) < n {
            assert!(
                std::time::Instant::now() < deadline,
                "no watch of {plural} within 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// List requests served so far for `plural`.
    pub fn list_requests(&self, plural: &str) -> usize {
        self.lock().list_requests.get(plural).copied().unwrap_or(0)
    }

    /// Serves on 127.0.0.1 from a runtime of its own, on its own thread; returns the base URL.
    pub fn start(&self) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("{e}"));
        let state = self.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("{e}"));
            runtime.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).unwrap_or_else(|e| panic!("{e}"));
                let app = axum::Router::new().fallback(handle).with_state(state);
                let _ = axum::serve(listener, app).await;
            });
        });
        format!("http://{addr}")
    }
}

/// `/api/v1/pods`, `/apis/apps/v1/replicasets`, ... → the plural, for cluster-wide requests.
fn plural_of(path: &str) -> Option<&str> {
    ["/api/v1/", "/apis/apps/v1/", "/apis/batch/v1/"]
        .iter()
        .find_map(|prefix| path.strip_prefix(prefix))
        .filter(|rest| !rest.contains('/'))
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

async fn handle(State(server): State<ApiServer>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let Some(plural) = plural_of(&path) else {
        return (StatusCode::NOT_FOUND, format!("no route {path}")).into_response();
    };
    // kube asks for metadata only with this Accept header (PartialObjectMeta).
    let metadata_only = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("PartialObjectMetadata"));
    let shape = move |object: &Value| -> Value {
        if metadata_only {
            json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": object["metadata"]})
        } else {
            object.clone()
        }
    };
    if query_param(&query, "watch") == Some("true") || query_param(&query, "watch") == Some("1") {
        let since: u64 = query_param(&query, "resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
        {
            let mut inner = server.lock();
            *inner.watch_requests.entry(plural.to_owned()).or_default() += 1;
            let kind = inner.kinds.entry(plural.to_owned()).or_default();
            for (rv, event) in &kind.log {
                if *rv > since {
                    let event = json!({"type": event["type"], "object": shape(&event["object"])});
                    let _ = tx.send(line(&event));
                }
            }
            // Live events are shaped when sent; metadata-only watches get full objects, which
            // PartialObjectMeta reads just as well (it only reads metadata).
            kind.watches.push(tx);
        }
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            let bytes = rx.recv().await?;
            Some((Ok::<Bytes, std::convert::Infallible>(bytes), rx))
        });
        return Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(stream))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let mut inner = server.lock();
    *inner.list_requests.entry(plural.to_owned()).or_default() += 1;
    let rv = inner.rv;
    let items: Vec<Value> = inner
        .kinds
        .get(plural)
        .map(|k| k.items.values().map(shape).collect())
        .unwrap_or_default();
    let body = json!({
        "apiVersion": "v1", "kind": "List",
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
