//! The cluster's topology from the Kubernetes API, for the agent when it runs without an
//! inventory file.
//!
//! It watches Nodes, Pods and Services (and the metadata of ReplicaSets and Jobs, to name each
//! pod's Deployment or CronJob), keeps only the fields the topology reads, and publishes a new
//! [`Topology`] at most once per [`WatchOptions::debounce`] after a change. The topology is built
//! by the same parsing as an inventory file's ([`netcost_core::topology`]).
//!
//! Main types:
//! - [`start`] connects (in-cluster config, else `KUBECONFIG` / `~/.kube/config`), waits for the
//!   first complete list and returns a [`TopologyFeed`]: the first topology and a
//!   `tokio::sync::watch` receiver of the later ones; [`connect`] returns before the wait, with
//!   the watchers' health readable meanwhile;
//! - [`ClusterCache`]: watcher events in, topology out; pure, so tests drive it by hand;
//! - [`cloud_zone`]: the opt-in zone fallback from the cloud metadata endpoint.
//!
//! ```no_run
//! let feed = netcost_k8s::start(netcost_k8s::K8sSettings::new("node-a"))?;
//! println!("{} nodes", feed.initial.nodes().count());
//! # Ok::<(), netcost_k8s::K8sError>(())
//! ```
//!
//! What it does not do: write to the API (it needs get, list and watch only), read conntrack,
//! or decide classes. After the first list, API failures never stop it: the last topology stays
//! in use while the watchers retry and re-list.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cache;
pub mod cloud_zone;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

pub use cache::{ClusterCache, Update, ZoneFallback};
use netcost_core::topology::Topology;
pub use watch::{ResourceHealth, WatchHealth, WatchOptions};

/// What [`start`] needs.
#[derive(Debug, Clone)]
pub struct K8sSettings {
    /// The node this agent runs on (its zone may come from the cloud metadata endpoint).
    pub node_name: String,
    /// Watch loop timing.
    pub options: WatchOptions,
    /// Where to ask for the zone when the node has no zone label; `None` turns the fallback off.
    pub cloud_metadata: Option<std::net::SocketAddr>,
    /// Timeout of each metadata request.
    pub cloud_metadata_timeout: Duration,
}

impl K8sSettings {
    /// Defaults for `node_name`: 1 s debounce, no metadata fallback.
    pub fn new(node_name: impl Into<String>) -> Self {
        K8sSettings {
            node_name: node_name.into(),
            options: WatchOptions::default(),
            cloud_metadata: None,
            cloud_metadata_timeout: Duration::from_millis(500),
        }
    }
}

/// Why the Kubernetes topology could not start.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    /// Neither an in-cluster config nor a kubeconfig could be loaded.
    #[error(
        "no Kubernetes API config: not in a pod with a service account, and no usable \
         KUBECONFIG or ~/.kube/config ({0}); pass --inventory to run without the API"
    )]
    Config(#[source] kube::config::InferConfigError),
    /// The client could not be built from the config (TLS, proxy).
    #[error("cannot build the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// The runtime or its thread could not be started.
    #[error("cannot start the Kubernetes watcher thread: {0}")]
    Runtime(#[source] std::io::Error),
    /// The watcher thread ended before the first topology.
    #[error("the Kubernetes watcher stopped before the first topology")]
    Stopped,
}

/// The first topology and the channel of the later ones.
#[derive(Debug)]
pub struct TopologyFeed {
    /// The topology of the first complete list.
    pub initial: Arc<Topology>,
    /// Every later topology; only the newest is kept, so a slow reader skips stale ones.
    pub updates: tokio::sync::watch::Receiver<Arc<Topology>>,
    /// The watchers' failures, by resource and reason.
    pub health: Arc<WatchHealth>,
}

/// The watchers, started, before their first complete list: their health is already readable
/// (the agent serves it while it waits), [`PendingFeed::wait`] gives the first topology.
#[derive(Debug)]
pub struct PendingFeed {
    updates: tokio::sync::watch::Receiver<Arc<Topology>>,
    /// The watchers' failures, by resource and reason, from the first request on.
    pub health: Arc<WatchHealth>,
}

impl PendingFeed {
    /// Waits for the first complete list, however long the API server takes (progress is
    /// logged, failures are on [`PendingFeed::health`]).
    pub fn wait(mut self) -> Result<TopologyFeed, K8sError> {
        // The receiver is driven from this (synchronous) thread with a throwaway runtime: the
        // watchers' own runtime lives on their thread.
        let waiter = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(K8sError::Runtime)?;
        waiter
            .block_on(self.updates.changed())
            .map_err(|_| K8sError::Stopped)?;
        let initial = self.updates.borrow_and_update().clone();
        Ok(TopologyFeed {
            initial,
            updates: self.updates,
            health: self.health,
        })
    }
}

/// Connects to the API server, starts the watchers on their own thread and waits for the first
/// complete list, however long the API server takes (progress is logged).
pub fn start(settings: K8sSettings) -> Result<TopologyFeed, K8sError> {
    connect(settings)?.wait()
}

/// [`start`] without the wait: connects and starts the watchers, and returns at once.
pub fn connect(settings: K8sSettings) -> Result<PendingFeed, K8sError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(K8sError::Runtime)?;
    let config = runtime
        .block_on(kube::Config::infer())
        .map_err(K8sError::Config)?;
    let client = {
        // The client spawns its request buffer on the current runtime.
        let _entered = runtime.enter();
        kube::Client::try_from(config).map_err(K8sError::Client)?
    };
    connect_with_client(runtime, client, settings)
}

/// [`start`] with a client of the caller's (tests point one at a fake API server). `runtime` must
/// be the one the client was built in; the watchers run on it, on their own thread.
pub fn start_with_client(
    runtime: tokio::runtime::Runtime,
    client: kube::Client,
    settings: K8sSettings,
) -> Result<TopologyFeed, K8sError> {
    connect_with_client(runtime, client, settings)?.wait()
}

/// [`connect`] with a client of the caller's; see [`start_with_client`].
pub fn connect_with_client(
    runtime: tokio::runtime::Runtime,
    client: kube::Client,
    settings: K8sSettings,
) -> Result<PendingFeed, K8sError> {
    let fallback = settings.cloud_metadata.and_then(|addr| {
        let found = cloud_zone::discover(addr, settings.cloud_metadata_timeout);
        match &found {
            Some((provider, zone)) => tracing::info!(
                provider,
                zone = %zone.zone,
                region = ?zone.region,
                "cloud metadata zone found; used only if this node has no zone label"
            ),
            None => tracing::warn!(%addr, "no cloud metadata endpoint answered with a zone"),
        }
        found.map(|(_, zone)| zone)
    });
    let cache = ClusterCache::new(settings.node_name).with_zone_fallback(fallback);
    let (publish, updates) = tokio::sync::watch::channel(Arc::new(Topology::default()));
    let options = settings.options;
    let health = Arc::new(WatchHealth::default());
    let watch_health = health.clone();
    std::thread::Builder::new()
        .name("netcost-k8s".into())
        .spawn(move || runtime.block_on(watch::run(client, cache, options, publish, watch_health)))
        .map_err(K8sError::Runtime)?;
    Ok(PendingFeed { updates, health })
}
