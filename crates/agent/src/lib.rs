//! The per-node agent at run time: it drives the pipeline of `netcost-core` over a conntrack
//! source on a schedule ([`run_loop`]), checkpoints its state, and serves `/metrics`, `/healthz`
//! and `/readyz`.
//!
//! Threads: DESTROY events are read by the conntrack source's own thread, which never waits
//! for anything here; the pipeline runs on one plain thread (the dump socket is blocking and
//! the work is CPU-bound); HTTP runs on a small tokio runtime. They share an [`Exposition`]
//! behind a mutex, replaced after each cycle, and the scrape generation as an atomic.
//!
//! Cloud provider ranges (service tags) are loaded at start and refreshed by a thread of their
//! own ([`cloud`]); a new table reaches the pipeline thread through [`cloud::CloudShared`].
//!
//! What it does not do: parse netlink (`netcost-conntrack`), decide classes (`netcost-core`),
//! keep history or serve the cost API (the binary plugs those in through [`Hooks`]), or read
//! the command line (the `netcost` binary).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cloud;
pub mod exposition;
pub mod http;
pub mod run_loop;
pub mod state_file;
pub mod traffic_log;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use netcost_conntrack::sock_owner::{LookupMode, SocketOwnerResolver, SocketOwnerSettings};
use netcost_conntrack::{EventStatus, NetlinkConfig, ReliableEvents};
use netcost_core::classify::Classifier;
use netcost_core::config::ClassificationConfig;
use netcost_core::flow::FlowSource;
use netcost_core::pipeline::{Pipeline, PipelineConfig};
use netcost_core::topology::Topology;

pub use exposition::{CycleTiming, Exposition, HostNetworkStatus};
pub use run_loop::{AgentLoop, Checkpointer, CycleObserver, PublishedCycle, StateFileCheckpointer};

/// Where conntrack entries are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// ctnetlink dumps and DESTROY events (the default).
    Netlink,
    /// The text file `/proc/net/nf_conntrack` (Kubecost's input), at this path.
    Proc(PathBuf),
}

/// Everything the agent needs, validated by the caller.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// The node this agent runs on.
    pub node_name: String,
    /// Where the HTTP endpoints listen.
    pub listen: SocketAddr,
    /// Period of full dumps.
    pub interval: Duration,
    /// Period of event draining between dumps.
    pub event_drain_period: Duration,
    /// Where entries come from.
    pub source: SourceKind,
    /// Restart checkpoint.
    pub state_file: Option<PathBuf>,
    /// Traffic log period; `None` turns the log off.
    pub traffic_log_interval: Option<Duration>,
    /// The cluster.
    pub topology: Arc<Topology>,
    /// Classification config.
    pub config: ClassificationConfig,
    /// Later topologies (from the Kubernetes API watchers); `None` keeps `topology` for good.
    /// A watch channel, not a queue: only the newest topology matters.
    pub topology_updates: Option<tokio::sync::watch::Receiver<Arc<Topology>>>,
    /// Cloud provider ranges: current files or URLs, and the refresh period.
    pub cloud: cloud::CloudSettings,
    /// Cap on `netcost_workload_traffic_bytes_total` series; pairs past it count as `__other__`.
    pub max_workload_pairs: usize,
    /// Reliable delivery of DESTROY events (netlink source only).
    pub reliable_events: ReliableEvents,
    /// Telling hostNetwork pods' bytes from the node's by socket; `None` books them to the node.
    pub host_network_sockets: Option<HostNetworkSockets>,
}

/// How hostNetwork pods' bytes are told from the node's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostNetworkSockets {
    /// Where the host's cgroup hierarchy is mounted: a cgroup2 mount, or a directory whose
    /// `unified/` is one.
    pub cgroup_root: PathBuf,
    /// How node ends without an answer from their NEW event are looked up.
    pub mode: LookupMode,
    /// Look sockets up on conntrack NEW events (the only way to catch short flows).
    pub new_events: bool,
}

/// What the binary plugs into the agent: observers of every published cycle (the single-host
/// history recorder) and more HTTP routes on the agent's port (the cost API from that history).
#[derive(Default)]
pub struct Hooks {
    /// Told of every cycle after it was checkpointed and published.
    pub observers: Vec<Box<dyn CycleObserver>>,
    /// Merged into the agent's router.
    pub routes: Option<axum::Router>,
    /// More metrics on `/metrics`, read at every scrape (the Kubernetes watchers' health).
    pub collectors: Vec<Arc<dyn prometheus_client::collector::Collector>>,
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The conntrack source could not be opened or prepared.
    #[error(transparent)]
    Conntrack(#[from] netcost_conntrack::Error),
    /// The state file is unusable in a way that must not be papered over.
    #[error(transparent)]
    StateFile(#[from] state_file::StateFileError),
    /// The HTTP listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP server or runtime failed.
    #[error("HTTP server: {0}")]
    Server(std::io::Error),
    /// The pipeline thread panicked.
    #[error("the pipeline thread panicked")]
    PipelinePanicked,
}

/// State shared between the pipeline thread and the HTTP handlers.
#[derive(Debug)]
pub struct Shared {
    exposition: Mutex<Exposition>,
    /// Highest snapshot generation a scrape has served.
    pub scraped_generation: AtomicU64,
    /// True once the first cycle completed.
    pub ready: AtomicBool,
    /// Why the agent is not ready yet, when something went wrong (for `/readyz`).
    not_ready_because: Mutex<Option<String>>,
    heartbeat_ms: AtomicU64,
    /// The cloud ranges' status and a new table waiting for the pipeline thread.
    pub cloud: cloud::CloudShared,
    /// A heartbeat older than this makes `/healthz` fail.
    pub stale_after_ms: u64,
    /// The hooks' metrics, encoded after the agent's own at every scrape.
    pub collectors: Vec<Arc<dyn prometheus_client::collector::Collector>>,
}

impl Shared {
    fn new(initial: Exposition, stale_after_ms: u64) -> Self {
        Shared {
            exposition: Mutex::new(initial),
            scraped_generation: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            not_ready_because: Mutex::new(None),
            heartbeat_ms: AtomicU64::new(now_ms()),
            cloud: cloud::CloudShared::default(),
            stale_after_ms,
            collectors: Vec::new(),
        }
    }

    /// The values to serve now.
    pub fn exposition(&self) -> Exposition {
        self.exposition
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn publish(&self, exposition: Exposition) {
        *self
            .exposition
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = exposition;
    }

    pub(crate) fn publish_timing(&self, timing: CycleTiming) {
        self.exposition
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .timing = timing;
    }

    /// Records why the agent cannot become ready (`None`: nothing wrong, just not done yet).
    pub(crate) fn set_not_ready_because(&self, reason: Option<String>) {
        *self
            .not_ready_because
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = reason;
    }

    /// Why the agent is not ready, if something went wrong.
    pub fn not_ready_because(&self) -> Option<String> {
        self.not_ready_because
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn beat(&self) {
        self.heartbeat_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Milliseconds since the pipeline thread last beat.
    pub fn heartbeat_age_ms(&self) -> u64 {
        now_ms().saturating_sub(self.heartbeat_ms.load(Ordering::Relaxed))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs the agent until SIGTERM or SIGINT, then finishes a last cycle and checkpoint.
pub fn run(settings: AgentSettings, hooks: Hooks) -> Result<(), AgentError> {
    match &settings.source {
        SourceKind::Netlink => {
            ensure_accounting()?;
            // Opening subscribes to DESTROY events before the first dump: with
            // nf_conntrack_events=2 only entries created while a listener exists get events.
            let mut config = NetlinkConfig::default();
            config.reliable_events = settings.reliable_events;
            let source = netcost_conntrack::NetlinkSource::open_with(&config)?;
            let events = source.event_status();
            run_source(settings, hooks, source, Some(events))
        }
        SourceKind::Proc(path) => {
            ensure_accounting()?;
            let source = netcost_conntrack::ProcSource::with_path(path.clone());
            run_source(settings, hooks, source, None)
        }
    }
}

fn ensure_accounting() -> Result<(), AgentError> {
    let path = std::path::Path::new(netcost_conntrack::ACCOUNTING_SYSCTL_PATH);
    if netcost_conntrack::ensure_accounting(path)? == netcost_conntrack::Accounting::TurnedOn {
        tracing::warn!("flows created before accounting was turned on carry no byte counters");
    }
    Ok(())
}

/// Runs the agent over any source; the simulator and tests use this.
pub fn run_with_source<S>(
    settings: AgentSettings,
    hooks: Hooks,
    source: S,
) -> Result<(), AgentError>
where
    S: FlowSource + Send + 'static,
{
    run_source(settings, hooks, source, None)
}

fn run_source<S>(
    settings: AgentSettings,
    hooks: Hooks,
    source: S,
    events: Option<Arc<EventStatus>>,
) -> Result<(), AgentError>
where
    S: FlowSource + Send + 'static,
{
    let (mut pipeline, restored_checkpoint) = build_pipeline(&settings)?;
    let host_network = match &settings.host_network_sockets {
        None => HostNetworkStatus::Off("off"),
        Some(wanted) => match socket_owners(wanted) {
            Ok(resolver) => {
                let status = resolver.status();
                pipeline.set_socket_owners(Box::new(resolver), now_ms());
                HostNetworkStatus::On(status)
            }
            Err(reason) => HostNetworkStatus::Off(reason),
        },
    };
    let cloud_tables = cloud::CloudTables::load(&settings.cloud, &settings.config);
    if let Some(ranges) = cloud_tables.ranges() {
        pipeline.set_classifier(pipeline.classifier().clone().with_provider_ranges(ranges));
    }
    let stale_after = (settings.interval * 3).max(Duration::from_secs(30));
    let Hooks {
        observers,
        routes,
        collectors,
    } = hooks;
    let mut shared = Shared::new(
        Exposition {
            snapshot: Arc::new(pipeline.snapshot()),
            timing: CycleTiming::default(),
            pods: Arc::new(exposition::pod_metadata(
                &settings.topology,
                &settings.node_name,
            )),
            events: events.clone(),
            host_network: host_network.clone(),
        },
        stale_after.as_millis() as u64,
    );
    shared.collectors = collectors;
    let shared = Arc::new(shared);
    shared.cloud.set_status(cloud_tables.status());
    // Held until the agent returns: dropping it stops the refresh thread.
    let _refresher = cloud::spawn_refresher(
        cloud_tables,
        settings.cloud.refresh,
        Arc::downgrade(&shared),
    )
    .map_err(AgentError::Server)?;
    let stop = Arc::new(AtomicBool::new(false));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AgentError::Server)?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(settings.listen))
        .map_err(|source| AgentError::Listen {
            addr: settings.listen,
            source,
        })?;
    tracing::info!(listen = %settings.listen, node = %settings.node_name, "serving /metrics, /healthz, /readyz");

    let mut agent = AgentLoop::new(
        run_loop::LoopSettings {
            node_name: settings.node_name.clone(),
            interval: settings.interval,
            drain_period: settings.event_drain_period,
            traffic_log_interval: settings.traffic_log_interval,
        },
        pipeline,
        source,
        StateFileCheckpointer {
            path: settings.state_file.clone(),
            checkpoint: restored_checkpoint,
        },
        shared.clone(),
        settings.topology.clone(),
        settings.topology_updates.clone(),
        (Instant::now(), now_ms()),
    )
    .with_event_status(events)
    .with_host_network(host_network);
    for observer in observers {
        agent.observe(observer);
    }
    let worker = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("netcost-pipeline".into())
            .spawn(move || drive(agent, &stop))
            .map_err(AgentError::Server)?
    };

    let server_stop = stop.clone();
    let served = runtime.block_on(async move {
        let mut app = http::router(shared);
        if let Some(extra) = routes {
            app = app.merge(extra);
        }
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown_signal().await;
                tracing::info!("shutting down: finishing the last cycle");
                server_stop.store(true, Ordering::Relaxed);
            })
            .await
    });
    stop.store(true, Ordering::Relaxed);
    let joined = worker.join();
    served.map_err(AgentError::Server)?;
    joined.map_err(|_| AgentError::PipelinePanicked)
}

/// Runs the loop on the real clock until `stop`, then a last cycle and checkpoint.
fn drive<S: FlowSource, C: Checkpointer>(mut agent: AgentLoop<S, C>, stop: &AtomicBool) {
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let next = agent.tick(Instant::now(), stopping);
        if stopping {
            tracing::info!("last cycle and checkpoint done");
            return;
        }
        // The event reader queues while this thread sleeps; a short sleep also notices a
        // stop request quickly.
        let wait = next
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(200));
        std::thread::sleep(wait);
    }
}

/// Resolves on SIGTERM or SIGINT. A container's first process gets no default action for
/// SIGTERM (the kernel ignores it for PID 1 without a handler), so a pod stopped by Kubernetes
/// would otherwise wait out its grace period.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; stop with SIGINT");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// The socket owner resolver, or why there is none (a label for the metric). Either way the
/// agent runs: without it, hostNetwork pods' bytes stay the node's, as the log line says.
fn socket_owners(wanted: &HostNetworkSockets) -> Result<SocketOwnerResolver, &'static str> {
    let mount = netcost_conntrack::cgroup::find_cgroup2(&wanted.cgroup_root).map_err(|e| {
        tracing::warn!(error = %e, "hostNetwork pods' bytes stay with the node: no cgroup v2 hierarchy to tell their sockets apart");
        e.metric_label()
    })?;
    let mut settings = SocketOwnerSettings::new(mount);
    settings.mode = wanted.mode;
    settings.new_events = wanted.new_events;
    SocketOwnerResolver::open(settings).map_err(|e| {
        tracing::warn!(error = %e, "hostNetwork pods' bytes stay with the node: the kernel's socket table cannot be read (inet_diag)");
        "sock_diag_unavailable"
    })
}

/// The pipeline to start with, and the checksum of the checkpoint it continues, if any.
fn build_pipeline(settings: &AgentSettings) -> Result<(Pipeline, Option<u64>), AgentError> {
    let mut config = PipelineConfig::new(settings.node_name.as_str());
    if settings.traffic_log_interval.is_none() {
        config.talkers_per_source = 0;
    }
    config.max_workload_pairs = settings.max_workload_pairs;
    let classifier = Classifier::new(settings.config.clone());
    let topology = settings.topology.clone();
    match topology.node(&settings.node_name) {
        None => tracing::warn!(
            node = %settings.node_name,
            "this node is not in the topology: its pods cannot be found and its zone is unknown"
        ),
        Some(node) if node.locality.zone.is_none() => tracing::warn!(
            node = %settings.node_name,
            "this node has no topology.kubernetes.io/zone label: traffic still counts, but \
             in-cluster peers are classified by the config's address lists instead of by zone \
             (netcost_node_zone_known is 0)"
        ),
        Some(_) => {}
    }
    let Some(path) = &settings.state_file else {
        return Ok((Pipeline::new(config, topology, classifier), None));
    };
    match state_file::restore(
        path,
        config.clone(),
        topology.clone(),
        classifier.clone(),
        now_ms(),
    ) {
        Ok(Some(restored)) => {
            tracing::info!(
                path = %path.display(),
                flows = restored.pipeline.tracked_flows(),
                interim = restored.used_interim,
                "continuing from checkpoint"
            );
            Ok((restored.pipeline, Some(restored.checkpoint)))
        }
        Ok(None) => {
            tracing::info!(path = %path.display(), "no checkpoint yet: counting starts now");
            Ok((Pipeline::new(config, topology, classifier), None))
        }
        Err(e @ state_file::StateFileError::Corrupt { .. }) => {
            // Crash-looping on a damaged file would stop all counting; keep it for inspection
            // and start over, which Prometheus sees as one counter reset.
            let aside = state_file::quarantine(path);
            tracing::error!(error = %e, moved_to = ?aside, "damaged checkpoint: counting restarts from zero");
            Ok((Pipeline::new(config, topology, classifier), None))
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn nodes_without_zone(topology: &Topology) -> u64 {
    topology
        .nodes()
        .filter(|n| n.locality.zone.is_none())
        .count() as u64
}
