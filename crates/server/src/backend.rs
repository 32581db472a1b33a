//! Where byte counts over time come from: a trait with two implementations, Prometheus (any
//! engine that speaks its HTTP API) and the embedded store.

use netcost_cost::allocate::SegmentUsage;
use netcost_cost::edges::PairUsage;
use netcost_cost::window::Segment;
use serde::Serialize;

/// Why usage could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The backend did not answer.
    #[error("Prometheus unreachable at {url}: {reason}")]
    Unreachable {
        /// The base URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The backend answered with an error.
    #[error("Prometheus at {url} refused the query {query:?}: {reason}")]
    Query {
        /// The base URL.
        url: String,
        /// The PromQL.
        query: String,
        /// Its error message.
        reason: String,
    },
    /// The embedded store could not answer.
    #[error("embedded store: {0}")]
    Store(String),
}

impl BackendError {
    /// A short, fixed label for this error, for metrics and API error codes.
    pub fn code(&self) -> &'static str {
        match self {
            BackendError::Unreachable { .. } => "backend_unreachable",
            BackendError::Query { .. } => "backend_query_failed",
            BackendError::Store(_) => "store_failed",
        }
    }
}

/// The state of one agent, for the live view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentStatus {
    /// The node it runs on.
    pub node: String,
    /// Where it is scraped (`host:port`), empty for an in-process agent.
    pub instance: String,
    /// False when the last scrape of it failed.
    pub up: bool,
    /// Seconds since its last dump cycle ended; `None` before the first.
    pub last_cycle_age_seconds: Option<f64>,
    /// Duration of the last cycle, in milliseconds.
    pub cycle_ms: f64,
    /// Conntrack entries in the last dump.
    pub entries: u64,
    /// Dump cycles that failed, since the agent started.
    pub cycle_failures: u64,
    /// Malformed entries skipped, since the agent started.
    pub malformed_entries: u64,
    /// Times the kernel dropped conntrack events, since the agent started.
    pub events_lost: u64,
    /// Workload pair series it exports.
    pub workload_pairs: u64,
}

impl AgentStatus {
    /// The state of an in-process agent of `node` after the cycle that gave `snapshot`, which
    /// took `cycle_ms`; `cycle_failures` cycles failed so far.
    pub fn of_snapshot(
        snapshot: &netcost_core::pipeline::Snapshot,
        cycle_ms: f64,
        cycle_failures: u64,
    ) -> AgentStatus {
        let stats = &snapshot.stats;
        AgentStatus {
            node: snapshot.node_name.to_string(),
            instance: String::new(),
            up: true,
            last_cycle_age_seconds: None,
            cycle_ms,
            entries: stats.last_dump_entries,
            cycle_failures,
            malformed_entries: stats.malformed,
            events_lost: stats.events_lost,
            workload_pairs: stats.workload_pairs,
        }
    }
}

/// A pod (or node) and how fast it is sending and receiving right now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Talker {
    /// Namespace (empty for a node).
    pub namespace: String,
    /// Pod name, or `node/<name>`.
    pub pod: String,
    /// Bytes per second, both directions.
    pub bytes_per_second: f64,
    /// Bytes per second by class (`in-zone`, `cross-zone`, `cross-region`, `internet`).
    pub by_class: std::collections::BTreeMap<&'static str, f64>,
}

/// What the live view shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveStatus {
    /// Every agent the backend knows.
    pub agents: Vec<AgentStatus>,
    /// The busiest pods and nodes, busiest first.
    pub talkers: Vec<Talker>,
    /// The period the rates are averaged over, in seconds.
    pub rate_seconds: i64,
}

/// How many talkers the live view lists.
pub const TOP_TALKERS: usize = 10;

/// The period live rates are averaged over: five minutes.
pub const RATE_SECONDS: i64 = 300;

/// Rates per pod and class summed into talkers, for both backends.
#[derive(Debug, Default)]
pub struct TalkerTally(std::collections::HashMap<(String, String), Talker>);

impl TalkerTally {
    /// Adds `rate` bytes per second of `class` to the pod (or `node/<name>`).
    pub fn add(
        &mut self,
        namespace: &str,
        pod: &str,
        class: netcost_core::class::TrafficClass,
        rate: f64,
    ) {
        let talker = self
            .0
            .entry((namespace.to_owned(), pod.to_owned()))
            .or_insert_with(|| Talker {
                namespace: namespace.to_owned(),
                pod: pod.to_owned(),
                bytes_per_second: 0.0,
                by_class: Default::default(),
            });
        talker.bytes_per_second += rate;
        *talker.by_class.entry(class.as_str()).or_default() += rate;
    }

    /// The busiest [`TOP_TALKERS`], busiest first.
    pub fn top(self) -> Vec<Talker> {
        let mut talkers: Vec<Talker> = self
            .0
            .into_values()
            .filter(|t| t.bytes_per_second > 0.0)
            .collect();
        talkers.sort_by(|a, b| {
            b.bytes_per_second
                .total_cmp(&a.bytes_per_second)
                .then_with(|| (&a.namespace, &a.pod).cmp(&(&b.namespace, &b.pod)))
        });
        talkers.truncate(TOP_TALKERS);
        talkers
    }
}

/// A source of byte counts per pod, direction, class and service over a time range.
pub trait UsageBackend: Send + Sync {
    /// A human-readable description, e.g. `Prometheus at http://…`.
    fn describe(&self) -> String;

    /// The usage during `segment`, and the cluster's internet egress from the segment's month
    /// start to its start (for tiered pricing).
    fn usage(&self, segment: &Segment) -> Result<SegmentUsage, BackendError>;

    /// The growth of every workload pair counter during `segment`, by counting agent (agents of
    /// one region may be summed), with that agent's region and each end's where known: an
    /// agent counts what its end sent, so these say which region sent the bytes and where to.
    fn pairs(&self, segment: &Segment) -> Result<Vec<PairUsage>, BackendError>;

    /// The agents' state and the busiest pods now.
    fn live(&self) -> Result<LiveStatus, BackendError>;

    /// The value of pod label `key` per `(namespace, pod)` during `segment`, for aggregation by
    /// label. Backends without pod labels return none, and every row is `__unallocated__`.
    fn pod_labels(
        &self,
        _segment: &Segment,
        _key: &str,
    ) -> Result<std::collections::HashMap<(String, String), String>, BackendError> {
        Ok(Default::default())
    }
}
