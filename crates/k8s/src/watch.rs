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

use std::sync::Arc;
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
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cache::{ClusterCache, Update};

type Updates = BoxStream<'static, Result<Update, watcher::Error>>;

/// How the watch loop behaves.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Shortest time between two rebuilds: a burst of events (a rollout, a re-list) makes one
    /// topology, not thousands.
    pub debounce: Duration,
    /// How often a missing first sync is logged.
    pub waiting_log_period: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: Duration::from_secs(1),
            waiting_log_period: Duration::from_secs(15),
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
) {
    // Listing from the API server's watch cache in pages of 500 keeps both the server's and this
    // agent's memory flat; 5,000 agents re-listing 150,000 pods is the load to design for.
    let config = watcher::Config::default().page_size(500);
    let mut streams: SelectAll<Updates> = SelectAll::new();
    streams.push(
        watcher(
            Api::<PartialObjectMeta<ReplicaSet>>::all(client.clone()),
            config.clone(),
        )
        .default_backoff()
        .map_ok(Update::ReplicaSet)
        .boxed(),
    );
    streams.push(
        watcher(
            Api::<PartialObjectMeta<Job>>::all(client.clone()),
            config.clone(),
        )
        .default_backoff()
        .map_ok(Update::Job)
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
            streams.push(objects::<Node>(&client, &config, Update::Node));
            streams.push(objects::<Pod>(&client, &config, Update::Pod));
            streams.push(objects::<Service>(&client, &config, Update::Service));
            objects_started = true;
        }
        let build_at = last_build.map_or(started, |at| at + options.debounce);
        let can_build = dirty && cache.synced();
        tokio::select! {
            next = streams.next() => match next {
                Some(Ok(update)) => dirty |= cache.apply(update),
                Some(Err(error)) => tracing::warn!(
                    %error,
                    "Kubernetes watch failed; counting goes on with the last topology, retrying"
                ),
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
