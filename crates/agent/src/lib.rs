//! The per-node agent at run time: it drives the pipeline of `netcost-core` over a conntrack
//! source on a schedule, checkpoints its state, and serves `/metrics`, `/healthz` and `/readyz`.
//!
//! Threads: the pipeline runs on one plain thread (the netlink sockets are blocking and the work
//! is CPU-bound); HTTP runs on a small tokio runtime. They share an [`Exposition`] behind a mutex,
//! replaced after each cycle, and the scrape generation as an atomic.
//!
//! Order of a cycle, chosen so a crash never makes Prometheus see a counter go backwards:
//! dump and drain events → write the checkpoint → publish the new values. Between cycles DESTROY
//! events are drained every [`AgentSettings::event_drain_period`] so the kernel's queue does not
//! overflow; a lost event (ENOBUFS) triggers an immediate resync dump.
//!
//! Cloud provider ranges (service tags) are loaded at start and refreshed by a thread of their
//! own ([`cloud`]); a new table reaches the pipeline thread through [`cloud::CloudShared`].
//!
//! What it does not do: parse netlink (`netcost-conntrack`), decide classes (`netcost-core`),
//! or read the command line (the `netcost` binary).

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cloud;
pub mod exposition;
pub mod http;
pub mod state_file;
pub mod traffic_log;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use netcost_core::classify::Classifier;
use netcost_core::config::ClassificationConfig;
use netcost_core::flow::FlowSource;
use netcost_core::pipeline::{Pipeline, PipelineConfig, Snapshot};
use netcost_core::topology::Topology;

pub use exposition::{CycleTiming, Exposition};

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
    /// Single-host mode: keep minute-resolution history and serve the cost API from it.
    pub history: Option<HistorySettings>,
    /// Cap on `netcost_workload_traffic_bytes_total` series; pairs past it count as `__other__`.
    pub max_workload_pairs: usize,
}

/// Single-host mode, where no Prometheus runs: the agent records its counters into the
/// embedded store after every cycle and serves `/api/v1/allocation` from it on its own port.
#[derive(Debug, Clone)]
pub struct HistorySettings {
    /// The store, opened by the caller (so a bad file is reported before the agent starts).
    pub store: netcost_server::store::SharedStore,
    /// Prices for the API.
    pub sheet: netcost_cost::pricing::PriceSheet,
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
    heartbeat_ms: AtomicU64,
    /// The cloud ranges' status and a new table waiting for the pipeline thread.
    pub cloud: cloud::CloudShared,
    /// A heartbeat older than this makes `/healthz` fail.
    pub stale_after_ms: u64,
}

impl Shared {
    fn new(initial: Exposition, stale_after_ms: u64) -> Self {
        Shared {
            exposition: Mutex::new(initial),
            scraped_generation: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            heartbeat_ms: AtomicU64::new(now_ms()),
            cloud: cloud::CloudShared::default(),
            stale_after_ms,
        }
    }

    /// The values to serve now.
    pub fn exposition(&self) -> Exposition {
        self.exposition
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn publish(&self, exposition: Exposition) {
        *self
            .exposition
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = exposition;
    }

    fn publish_timing(&self, timing: CycleTiming) {
        self.exposition
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .timing = timing;
    }

    fn beat(&self) {
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
pub fn run(settings: AgentSettings) -> Result<(), AgentError> {
    match &settings.source {
        SourceKind::Netlink => {
            ensure_accounting()?;
            // Opening subscribes to DESTROY events before the first dump: with
            // nf_conntrack_events=2 only entries created while a listener exists get events.
            let source = netcost_conntrack::NetlinkSource::open()?;
            run_with_source(settings, source)
        }
        SourceKind::Proc(path) => {
            ensure_accounting()?;
            let source = netcost_conntrack::ProcSource::with_path(path.clone());
            run_with_source(settings, source)
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
pub fn run_with_source<S>(settings: AgentSettings, source: S) -> Result<(), AgentError>
where
    S: FlowSource + Send + 'static,
{
    let mut pipeline = build_pipeline(&settings)?;
    let cloud_tables = cloud::CloudTables::load(&settings.cloud, &settings.config);
    if let Some(ranges) = cloud_tables.ranges() {
        pipeline.set_classifier(pipeline.classifier().clone().with_provider_ranges(ranges));
    }
    let stale_after = (settings.interval * 3).max(Duration::from_secs(30));
    let shared = Arc::new(Shared::new(
        Exposition {
            snapshot: Arc::new(pipeline.snapshot()),
            timing: CycleTiming::default(),
            pods: Arc::new(exposition::pod_metadata(
                &settings.topology,
                &settings.node_name,
            )),
        },
        stale_after.as_millis() as u64,
    ));
    shared.cloud.set_status(cloud_tables.status());
    cloud::spawn_refresher(
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

    let settings_history = settings.history.clone();
    let worker = {
        let shared = shared.clone();
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("netcost-pipeline".into())
            .spawn(move || pipeline_loop(settings, pipeline, source, &shared, &stop))
            .map_err(AgentError::Server)?
    };

    let server_stop = stop.clone();
    let cost_api = settings_history.map(|h| {
        netcost_server::api::router(netcost_server::engine::Engine::new(
            Arc::new(h.store),
            h.sheet,
        ))
    });
    let served = runtime.block_on(async move {
        let mut app = http::router(shared);
        if let Some(api) = cost_api {
            app = app.merge(api);
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

async fn shutdown_signal() {
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

fn build_pipeline(settings: &AgentSettings) -> Result<Pipeline, AgentError> {
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
        return Ok(Pipeline::new(config, topology, classifier));
    };
    match state_file::load(path, &settings.node_name) {
        Ok(Some(checkpoint)) => {
            tracing::info!(
                path = %path.display(),
                flows = checkpoint.baselines.len(),
                series = checkpoint.series.len(),
                "continuing from checkpoint"
            );
            Ok(Pipeline::restore(
                config,
                topology,
                classifier,
                checkpoint,
                now_ms(),
            ))
        }
        Ok(None) => {
            tracing::info!(path = %path.display(), "no checkpoint yet: counting starts now");
            Ok(Pipeline::new(config, topology, classifier))
        }
        Err(e @ state_file::StateFileError::Corrupt { .. }) => {
            // Crash-looping on a damaged file would stop all counting; keep it for inspection
            // and start over, which Prometheus sees as one counter reset.
            let aside = state_file::quarantine(path);
            tracing::error!(error = %e, moved_to = ?aside, "damaged checkpoint: counting restarts from zero");
            Ok(Pipeline::new(config, topology, classifier))
        }
        Err(e) => Err(e.into()),
    }
}

fn nodes_without_zone(topology: &Topology) -> u64 {
    topology
        .nodes()
        .filter(|n| n.locality.zone.is_none())
        .count() as u64
}

/// Records the counters of `snapshot` at the current minute. The store keeps one point per
/// series per minute, so recording every cycle just keeps the current minute up to date.
fn record_history(
    history: &HistorySettings,
    snapshot: &Snapshot,
    topology: &Topology,
    timing: &CycleTiming,
) {
    let now = now_ms();
    let minute = (now / 60_000) as i64;
    let status = netcost_server::backend::AgentStatus::of_snapshot(
        snapshot,
        timing.cycle_seconds * 1000.0,
        timing.cycle_failures,
    );
    let recorded = match history.store.0.lock() {
        Ok(mut store) => {
            store.set_agent(status, Some(now as i64));
            store.record_snapshot(minute, snapshot, topology, &snapshot.node_name)
        }
        Err(_) => return tracing::error!("history store lock poisoned; history stops"),
    };
    if let Err(e) = recorded {
        tracing::error!(error = %e, "history not recorded");
    }
}

fn pipeline_loop<S: FlowSource>(
    settings: AgentSettings,
    mut pipeline: Pipeline,
    mut source: S,
    shared: &Shared,
    stop: &AtomicBool,
) {
    let mut timing = CycleTiming {
        nodes_without_zone: nodes_without_zone(&settings.topology),
        ..CycleTiming::default()
    };
    let mut next_dump = Instant::now();
    let mut next_traffic_log = settings.traffic_log_interval.map(|d| Instant::now() + d);
    let mut topology_updates = settings.topology_updates.clone();
    let mut pods = Arc::new(exposition::pod_metadata(
        &settings.topology,
        &settings.node_name,
    ));
    let mut topology = settings.topology.clone();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        // A closed channel (the watchers are gone) keeps the last topology: counting goes on.
        if let Some(updates) = &mut topology_updates
            && updates.has_changed().unwrap_or(false)
        {
            topology = updates.borrow_and_update().clone();
            timing.nodes_without_zone = nodes_without_zone(&topology);
            timing.topology_updates += 1;
            pods = Arc::new(exposition::pod_metadata(&topology, &settings.node_name));
            pipeline.set_topology(topology.clone(), now_ms());
        }
        if let Some(ranges) = shared.cloud.take_ranges() {
            pipeline.set_classifier(pipeline.classifier().clone().with_provider_ranges(ranges));
        }
        let now = Instant::now();
        if now >= next_dump || stopping {
            pipeline.note_scraped(shared.scraped_generation.load(Ordering::Relaxed));
            let started = Instant::now();
            let result = pipeline.dump_cycle(&mut source, now_ms());
            timing.cycle_seconds = started.elapsed().as_secs_f64();
            timing.last_cycle_unix_seconds = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            next_dump = now + settings.interval;
            let cycle_ok = result.is_ok();
            if !cycle_ok {
                timing.cycle_failures += 1;
            }
            match result {
                // This dump already resynced: entries whose events were lost are gone from it.
                Ok(read) if read.events_lost > 0 => {
                    tracing::warn!(
                        lost = read.events_lost,
                        "conntrack events were lost (ENOBUFS) during the cycle"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "conntrack dump failed; retrying next cycle"),
            }
            let saved = match &settings.state_file {
                Some(path) => state_file::save(path, &pipeline.checkpoint()),
                None => Ok(()),
            };
            match saved {
                Ok(()) => {
                    let snapshot = Arc::new(pipeline.snapshot());
                    if let Some(history) = &settings.history {
                        record_history(history, &snapshot, &topology, &timing);
                    }
                    shared.publish(Exposition {
                        snapshot,
                        timing,
                        pods: pods.clone(),
                    });
                    if cycle_ok {
                        shared.ready.store(true, Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    // Publishing values the checkpoint does not hold would let a crash take the
                    // counters backwards, which Prometheus reads as a reset and counts twice.
                    // Keep serving the last checkpointed values; counting goes on in memory.
                    timing.checkpoint_failures += 1;
                    shared.publish_timing(timing);
                    tracing::error!(error = %e, "checkpoint not written; /metrics keeps the last checkpointed values until a write succeeds");
                }
            }
            tracing::debug!(seconds = timing.cycle_seconds, "cycle done");
        } else {
            match pipeline.drain_events(&mut source, now_ms()) {
                Ok(read) if read.events_lost > 0 => {
                    tracing::warn!(
                        lost = read.events_lost,
                        "conntrack events were lost (ENOBUFS); resyncing with a dump"
                    );
                    next_dump = Instant::now();
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "reading conntrack events failed"),
            }
        }
        shared.beat();
        if let Some(at) = next_traffic_log
            && Instant::now() >= at
        {
            traffic_log::write(&pipeline.take_traffic_log(traffic_log::TOP_DESTINATIONS));
            next_traffic_log = settings.traffic_log_interval.map(|d| at + d);
        }
        if stopping {
            tracing::info!("last cycle and checkpoint done");
            return;
        }
        let wait = next_dump
            .saturating_duration_since(Instant::now())
            .min(settings.event_drain_period);
        std::thread::sleep(wait);
    }
}
