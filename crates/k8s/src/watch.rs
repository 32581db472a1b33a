//! The watchers: five `kube` watch streams folded into a [`ClusterCache`], and a debounced rebuild
//! of the topology published on a `tokio::sync::watch` channel.
//!
//! ReplicaSets and Jobs are watched first, metadata only ( a few hundred bytes
//! per object instead of the pod template; `Api<PartialObjectMeta<_>>` asks for metadata only): their `ownerReferences` name the Deployment or
//! CronJob. Nodes, Pods and Services start once both are listed, so that pods are resolved to
//! their workload from the first topology on. A ReplicaSet or Job seen after its pods still
//! resolves them, at the next rebuild.
//!
//! Failures: every stream has kube's default backoff (exponential, capped), so an API server
//! that restarts, errors or cannot be reached is retried forever; a `410 Gone` makes the watcher
//! re-list. Meanwhile the last topology stays published and the agent keeps counting with it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::stream::{BoxStream, SelectAll};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use netcost_core::topology::Topology;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cache::{ClusterCache, Update};

/// Each stream's errors carry the resource they are about.
type Updates = BoxStream<'static, Result<Update, (&'static str, watcher::Error)>>;

/// How the watch loop behaves.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Shortest time between two rebuilds: a burst of events (a rollout, a re-list) makes one
    /// topology, not thousands.
    pub debounce: Duration,
    /// How often a missing first sync is logged.
    pub waiting_log_period: Duration,
    /// How long one watch request lasts before the server ends it and the watcher resumes from
    /// its last resourceVersion. A permission revoked meanwhile shows at the next one.
    pub watch_timeout: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: Duration::from_secs(1),
            waiting_log_period: Duration::from_secs(15),
            // kube's default; left to itself the API server picks 30 to 60 minutes.
            watch_timeout: Duration::from_secs(290),
        }
    }
}

/// Watches the cluster through `client` forever, publishing each new topology on `publish`.
///
/// Nothing is published before every kind has been listed once. Returns only when every
/// receiver is gone.
pub async fn run(
    client: Client,
    mut cache: ClusterCache,
    options: WatchOptions,
    publish: watch::Sender<Arc<Topology>>,
    health: Arc<WatchHealth>,
) {
    // Listing from the API server's watch cache in pages of 500 keeps both the server's and this
    // agent's memory flat; 5,000 agents re-listing 150,000 pods is the load to design for.
    let timeout = u32::try_from(options.watch_timeout.as_secs().max(1)).unwrap_or(u32::MAX);
    let config = watcher::Config::default().page_size(500).timeout(timeout);
    let mut streams: SelectAll<Updates> = SelectAll::new();
    streams.push(
        watcher(
            Api::<PartialObjectMeta<ReplicaSet>>::all(client.clone()),
            config.clone(),
        )
        .default_backoff()
        .map_ok(Update::ReplicaSet)
        .map_err(|e| ("replicasets", e))
        .boxed(),
    );
    streams.push(
        watcher(
            Api::<PartialObjectMeta<Job>>::all(client.clone()),
            config.clone(),
        )
        .default_backoff()
        .map_ok(Update::Job)
        .map_err(|e| ("jobs", e))
        .boxed(),
    );
    let mut objects_started = false;
    let mut dirty = false;
    let mut last_build: Option<Instant> = None;
    let mut nodes_without_zone: Option<usize> = None;
    let started = Instant::now();
    let mut waiting_log = tokio::time::interval_at(
        started + options.waiting_log_period,
        options.waiting_log_period,
    );
    loop {
        if !objects_started && cache.owners_synced() {
            streams.push(objects::<Node>(&client, &config, "nodes", Update::Node));
            streams.push(objects::<Pod>(&client, &config, "pods", Update::Pod));
            streams.push(objects::<Service>(
                &client,
                &config,
                "services",
                Update::Service,
            ));
            objects_started = true;
        }
        let build_at = last_build.map_or(started, |at| at + options.debounce);
        let can_build = dirty && cache.synced();
        tokio::select! {
            next = streams.next() => match next {
                Some(Ok(update)) => {
                    health.succeeded(update.resource());
                    dirty |= cache.apply(update);
                }
                Some(Err((resource, error))) => health.failed(resource, &error),
                // The watch streams never end on their own.
                None => return,
            },
            _ = tokio::time::sleep_until(build_at), if can_build => {
                let began = Instant::now();
                match cache.topology() {
                    Ok(topology) => {
                        report_missing_zones(&topology, &mut nodes_without_zone);
                        tracing::debug!(
                            nodes = topology.nodes().count(),
                            pods = cache.pod_count(),
                            seconds = began.elapsed().as_secs_f64(),
                            "topology rebuilt"
                        );
                        if publish.send(Arc::new(topology)).is_err() {
                            return;
                        }
                    }
                    Err(error) => tracing::error!(
                        %error,
                        "the cluster's objects do not make a topology; keeping the last one"
                    ),
                }
                dirty = false;
                last_build = Some(Instant::now());
            },
            _ = waiting_log.tick(), if last_build.is_none() => tracing::warn!(
                waited_seconds = started.elapsed().as_secs(),
                "still waiting for the first list of Nodes, Pods, Services, ReplicaSets and Jobs \
                 from the Kubernetes API"
            ),
        }
    }
}

fn objects<K>(
    client: &Client,
    config: &watcher::Config,
    resource: &'static str,
    wrap: fn(watcher::Event<K>) -> Update,
) -> Updates
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    watcher(Api::<K>::all(client.clone()), config.clone())
        .default_backoff()
        .map_ok(wrap)
        .map_err(move |e| (resource, e))
        .boxed()
}

/// Logs the nodes without a zone label whenever their number changes.
fn report_missing_zones(topology: &Topology, last: &mut Option<usize>) {
    let missing: Vec<&str> = topology
        .nodes()
        .filter(|n| n.locality.zone.is_none())
        .map(|n| &*n.name)
        .collect();
    if *last == Some(missing.len()) {
        return;
    }
    *last = Some(missing.len());
    if missing.is_empty() {
        tracing::info!("every node has a zone label");
        return;
    }
    let examples: Vec<&str> = missing.iter().take(5).copied().collect();
    tracing::warn!(
        count = missing.len(),
        examples = %examples.join(", "),
        "nodes without a topology.kubernetes.io/zone label: traffic with them still counts, but is \
         classified by the config's address lists instead of by zone (netcost_nodes_without_zone)"
    );
}

/// What went wrong with each watched resource: counts of failures by reason and whether its
/// stream is failing now (its last answer was an error). Read by the agent's `/metrics`.
#[derive(Debug, Default)]
pub struct WatchHealth {
    resources: Mutex<BTreeMap<&'static str, ResourceHealth>>,
}

/// One resource's watch health; see [`WatchHealth`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceHealth {
    /// Failed list or watch requests, by reason ([`failure_reason`]).
    pub failures: BTreeMap<&'static str, u64>,
    /// True from a failure until the stream delivers again.
    pub failing: bool,
    /// The reason of the last failure, if any.
    pub last_reason: Option<&'static str>,
}

/// The five watched resources, by their API names.
pub const RESOURCES: [&str; 5] = ["nodes", "pods", "services", "replicasets", "jobs"];

impl WatchHealth {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, ResourceHealth>> {
        self.resources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Every watched resource's health, the ones that never failed included.
    pub fn snapshot(&self) -> Vec<(&'static str, ResourceHealth)> {
        let resources = self.lock();
        RESOURCES
            .iter()
            .map(|r| (*r, resources.get(r).cloned().unwrap_or_default()))
            .collect()
    }

    /// The failing resources and why, as `pods: forbidden, nodes: unreachable`; empty when
    /// none fails. For the agent's `/readyz` while it waits for the first list.
    pub fn failing_summary(&self) -> String {
        self.snapshot()
            .into_iter()
            .filter(|(_, health)| health.failing)
            .map(|(resource, health)| {
                format!("{resource}: {}", health.last_reason.unwrap_or("other"))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn succeeded(&self, resource: &'static str) {
        let mut resources = self.lock();
        let Some(health) = resources.get_mut(resource) else {
            return;
        };
        if health.failing {
            health.failing = false;
            tracing::info!(resource, "the Kubernetes watch of {resource} works again");
        }
    }

    fn failed(&self, resource: &'static str, error: &watcher::Error) {
        let reason = failure_reason(error);
        {
            let mut resources = self.lock();
            let health = resources.entry(resource).or_default();
            *health.failures.entry(reason).or_default() += 1;
            health.failing = true;
            health.last_reason = Some(reason);
        }
        if reason == "forbidden" {
            // RBAC: retrying cannot help until someone fixes the ClusterRole, and the topology
            // silently ages meanwhile, so this is an error, not a warning.
            tracing::error!(
                resource,
                %error,
                "the Kubernetes API forbids this agent's ServiceAccount to list or watch \
                 {resource}: its ClusterRole must grant get, list and watch on it (the chart's \
                 clusterrole.yaml does); until then {resource} keep their last known state \
                 (netcost_kubernetes_watch_failing)"
            );
        } else {
            tracing::warn!(
                resource,
                reason,
                %error,
                "Kubernetes watch failed; counting goes on with the last topology, retrying"
            );
        }
    }
}

/// A bounded label for a failed list or watch: `forbidden` and `unauthorized` (RBAC and
/// credentials), `gone` (a `410`, answered by a re-list), `api_error` (any other status from the
/// server), `unreachable` (no answer: connection refused, TLS, timeouts) or `other`.
pub fn failure_reason(error: &watcher::Error) -> &'static str {
    let status = match error {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => match e {
            kube::Error::Api(status) => Some(status.code),
            kube::Error::HyperError(_) | kube::Error::Service(_) => return "unreachable",
            _ => return "other",
        },
        watcher::Error::WatchError(status) => Some(status.code),
        _ => None,
    };
    match status {
        Some(403) => "forbidden",
        Some(401) => "unauthorized",
        Some(410) => "gone",
        Some(_) => "api_error",
        None => "other",
    }
}

/// `netcost_kubernetes_watch_failing` and `netcost_kubernetes_watch_failures_total`, for the
/// agent's `/metrics`. Labels are bounded: five resources, six reasons.
impl Collector for WatchHealth {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.snapshot();
        {
            let mut metric = encoder.encode_descriptor(
                "netcost_kubernetes_watch_failing",
                "1 while the list or watch of a resource fails (RBAC, credentials, an unreachable API server): its objects keep their last known state meanwhile.",
                None,
                MetricType::Gauge,
            )?;
            for (resource, health) in &snapshot {
                ConstGauge::new(i64::from(health.failing))
                    .encode(metric.encode_family(&[("resource", *resource)])?)?;
            }
        }
        let mut metric = encoder.encode_descriptor(
            "netcost_kubernetes_watch_failures",
            "Failed list or watch requests to the Kubernetes API, by resource and reason (forbidden, unauthorized, gone, api_error, unreachable, other).",
            None,
            MetricType::Counter,
        )?;
        for (resource, health) in &snapshot {
            for (reason, count) in &health.failures {
                let labels = [("resource", *resource), ("reason", *reason)];
                ConstCounter::new(*count).encode(metric.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
