//! The watch cache: watcher events in, a [`Topology`] out. Pure and synchronous, so tests feed it
//! events by hand.
//!
//! It keeps parsed parts ([`PodEntry`], [`NodeInfo`], [`ServiceInfo`]), never whole
//! `k8s_openapi` objects: a `Pod` is 2,176 bytes before its first string, a `PodEntry` a few
//! hundred bytes with its strings, and successive topologies share the entries.
//!
//! Re-lists follow the reflector's rule: between `Init` and `InitDone` the new list is gathered
//! aside and the old content stays in use; at `InitDone` it replaces the old content whole, so an
//! object deleted while the watch was down leaves the index. An entry that did not change is
//! carried over rather than re-allocated, so a re-list of 150,000 pods does not double the cache.
//!
//! Pods are most of the memory (of the 64 MiB budget for 150,000 pods, see BENCHMARKS.md): they are held in a set
//! keyed by the uid inside each entry ([`PodByUid`]), 8 bytes a slot with no key of their own.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::Event;
use netcost_core::topology::{
    Interner, NodeInfo, Owner, PodByUid, PodEntry, ServiceInfo, Topology, TopologyError,
};

/// One watcher event, of any of the five watched kinds.
// Each event is moved once, from its stream into the cache; boxing the big variants would add an
// allocation per event to save a 2 KiB copy.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Update {
    /// A Node event.
    Node(Event<Node>),
    /// A Pod event.
    Pod(Event<Pod>),
    /// A Service event.
    Service(Event<Service>),
    /// A ReplicaSet event; only its metadata is watched, for its owner.
    ReplicaSet(Event<PartialObjectMeta<ReplicaSet>>),
    /// A Job event; only its metadata is watched, for its owner.
    Job(Event<PartialObjectMeta<Job>>),
}

impl Update {
    /// The API name of the event's resource.
    pub fn resource(&self) -> &'static str {
        match self {
            Update::Node(_) => "nodes",
            Update::Pod(_) => "pods",
            Update::Service(_) => "services",
            Update::ReplicaSet(_) => "replicasets",
            Update::Job(_) => "jobs",
        }
    }
}

/// Zone and region to give the local node when its labels have none (from the cloud metadata
/// endpoint, see [`crate::cloud_zone`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneFallback {
    /// The zone, e.g. `us-east-1a`.
    pub zone: String,
    /// The region, e.g. `us-east-1`, where the provider says.
    pub region: Option<String>,
}

const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
const REGION_LABEL: &str = "topology.kubernetes.io/region";
const LEGACY_ZONE_LABEL: &str = "failure-domain.beta.kubernetes.io/zone";

/// One kind's objects, with the re-list buffer.
#[derive(Debug)]
struct Relisting<K, V> {
    live: HashMap<K, V>,
    /// The list being gathered between `Init` and `InitDone`.
    next: Option<HashMap<K, V>>,
    /// True once a first `InitDone` arrived.
    synced: bool,
}

impl<K, V> Default for Relisting<K, V> {
    fn default() -> Self {
        Relisting {
            live: HashMap::new(),
            next: None,
            synced: false,
        }
    }
}

impl<K: Eq + Hash, V: Clone + PartialEq> Relisting<K, V> {
    fn init(&mut self) {
        self.next = Some(HashMap::new());
    }

    /// An object of the list being gathered (or, outside a re-list, a plain apply).
    fn init_apply(&mut self, key: K, value: V) {
        let value = match self.live.get(&key) {
            Some(old) if *old == value => old.clone(),
            _ => value,
        };
        match &mut self.next {
            Some(next) => next.insert(key, value),
            None => self.live.insert(key, value),
        };
    }

    fn init_done(&mut self) {
        if let Some(next) = self.next.take() {
            self.live = next;
        }
        self.synced = true;
    }

    /// Returns whether anything changed.
    fn apply(&mut self, key: K, value: V) -> bool {
        if self.live.get(&key) == Some(&value) {
            return false;
        }
        self.live.insert(key, value);
        true
    }

    fn delete<Q: Eq + Hash + ?Sized>(&mut self, key: &Q) -> bool
    where
        K: std::borrow::Borrow<Q>,
    {
        self.live.remove(key).is_some()
    }
}

/// The pods, with the re-list buffer: [`Relisting`]'s rules, over sets keyed by uid.
#[derive(Debug, Default)]
struct Pods {
    live: HashSet<PodByUid>,
    next: Option<HashSet<PodByUid>>,
    synced: bool,
}

impl Pods {
    fn init(&mut self) {
        self.next = Some(HashSet::new());
    }

    fn init_apply(&mut self, entry: Arc<PodEntry>) {
        let entry = match self.live.get(entry.info().uid.as_ref()) {
            Some(old) if old.0 == entry => old.clone(),
            _ => PodByUid(entry),
        };
        // `replace`, not `insert`: the set's equality is the uid's, and the entry may be newer.
        match &mut self.next {
            Some(next) => next.replace(entry),
            None => self.live.replace(entry),
        };
    }

    fn init_done(&mut self) {
        if let Some(next) = self.next.take() {
            self.live = next;
        }
        self.synced = true;
    }

    /// Returns whether anything changed.
    fn apply(&mut self, entry: Arc<PodEntry>) -> bool {
        if self
            .live
            .get(entry.info().uid.as_ref())
            .is_some_and(|old| old.0 == entry)
        {
            return false;
        }
        self.live.replace(PodByUid(entry));
        true
    }

    fn delete(&mut self, meta: &ObjectMeta) -> bool {
        match meta.uid.as_deref() {
            Some(uid) => self.live.remove(uid),
            None => false,
        }
    }
}

/// Key of a namespaced object.
type NsName = (Arc<str>, Box<str>);

/// Everything the watchers have reported, ready to become a [`Topology`].
#[derive(Debug)]
pub struct ClusterCache {
    local_node: String,
    zone_fallback: Option<ZoneFallback>,
    interner: Interner,
    nodes: Relisting<Arc<str>, Arc<NodeInfo>>,
    /// Keyed by uid: a StatefulSet pod re-created under the same name is another pod.
    pods: Pods,
    services: Relisting<NsName, ServiceInfo>,
    /// ReplicaSet → its controller (a Deployment, or another controller that makes ReplicaSets).
    replica_sets: Relisting<NsName, Owner>,
    /// Job → its controller (a CronJob).
    jobs: Relisting<NsName, Owner>,
    rejected: u64,
}

impl ClusterCache {
    /// An empty cache for the agent on `local_node`.
    pub fn new(local_node: impl Into<String>) -> Self {
        ClusterCache {
            local_node: local_node.into(),
            zone_fallback: None,
            interner: Interner::default(),
            nodes: Relisting::default(),
            pods: Pods::default(),
            services: Relisting::default(),
            replica_sets: Relisting::default(),
            jobs: Relisting::default(),
            rejected: 0,
        }
    }

    /// Gives the local node this zone when its labels name none.
    pub fn with_zone_fallback(mut self, fallback: Option<ZoneFallback>) -> Self {
        self.zone_fallback = fallback;
        self
    }

    /// True once every kind has been listed once.
    pub fn synced(&self) -> bool {
        self.owners_synced() && self.nodes.synced && self.pods.synced && self.services.synced
    }

    /// True once ReplicaSets and Jobs have been listed once.
    pub fn owners_synced(&self) -> bool {
        self.replica_sets.synced && self.jobs.synced
    }

    /// Objects skipped because the topology could not read them (an invalid IP, a missing uid).
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// How many pods are cached.
    pub fn pod_count(&self) -> usize {
        self.pods.live.len()
    }

    /// Applies one event; returns whether the topology may have changed.
    pub fn apply(&mut self, update: Update) -> bool {
        match update {
            Update::Node(event) => self.node_event(event),
            Update::Pod(event) => self.pod_event(event),
            Update::Service(event) => self.service_event(event),
            Update::ReplicaSet(event) => {
                owner_event(&mut self.replica_sets, &mut self.interner, event)
            }
            Update::Job(event) => owner_event(&mut self.jobs, &mut self.interner, event),
        }
    }

    fn node_event(&mut self, event: Event<Node>) -> bool {
        match event {
            Event::Init => self.nodes.init(),
            Event::InitDone => self.nodes.init_done(),
            Event::InitApply(node) => {
                if let Some((key, info)) = self.node_info(&node) {
                    self.nodes.init_apply(key, info);
                }
            }
            Event::Apply(node) => {
                return match self.node_info(&node) {
                    Some((key, info)) => self.nodes.apply(key, info),
                    None => delete_by_name(&mut self.nodes, &node.metadata),
                };
            }
            Event::Delete(node) => return delete_by_name(&mut self.nodes, &node.metadata),
        }
        true
    }

    fn node_info(&mut self, node: &Node) -> Option<(Arc<str>, Arc<NodeInfo>)> {
        let local = node.metadata.name.as_deref() == Some(self.local_node.as_str());
        let patched;
        let node = match &self.zone_fallback {
            Some(fallback) if local && !has_zone(&node.metadata) => {
                patched = with_zone(node, fallback);
                &patched
            }
            _ => node,
        };
        match NodeInfo::from_node(node, &mut self.interner) {
            Ok(info) => Some((info.name.clone(), Arc::new(info))),
            Err(e) => {
                self.reject(&e);
                None
            }
        }
    }

    fn pod_event(&mut self, event: Event<Pod>) -> bool {
        match event {
            Event::Init => self.pods.init(),
            Event::InitDone => self.pods.init_done(),
            Event::InitApply(pod) => {
                if let Some(entry) = self.pod_entry(&pod) {
                    self.pods.init_apply(entry);
                }
            }
            Event::Apply(pod) => {
                return match self.pod_entry(&pod) {
                    Some(entry) => self.pods.apply(entry),
                    // Never leave a stale IP behind an object that no longer reads.
                    None => self.pods.delete(&pod.metadata),
                };
            }
            Event::Delete(pod) => return self.pods.delete(&pod.metadata),
        }
        true
    }

    fn pod_entry(&mut self, pod: &Pod) -> Option<Arc<PodEntry>> {
        let mut entry = match PodEntry::from_pod(pod, &mut self.interner) {
            Ok(entry) => entry,
            Err(e) => {
                self.reject(&e);
                return None;
            }
        };
        // The pod names its ReplicaSet or Job; the workload is that object's own controller.
        let controller = pod.metadata.owner_references.as_deref().and_then(|refs| {
            refs.iter()
                .find(|r| r.controller == Some(true))
                .or_else(|| refs.first())
        });
        if let Some(parent) = controller.and_then(|r| {
            self.parent_of(&r.kind, &entry.info().namespace, &r.name)
                .cloned()
        }) {
            entry = entry.with_owner(Some(parent));
        }
        Some(Arc::new(entry))
    }

    fn service_event(&mut self, event: Event<Service>) -> bool {
        match event {
            Event::Init => self.services.init(),
            Event::InitDone => self.services.init_done(),
            Event::InitApply(service) => {
                if let Some((key, info)) = self.service_info(&service) {
                    self.services.init_apply(key, info);
                }
            }
            Event::Apply(service) => {
                return match self.service_info(&service) {
                    Some((key, info)) => self.services.apply(key, info),
                    None => {
                        delete_namespaced(&mut self.services, &mut self.interner, &service.metadata)
                    }
                };
            }
            Event::Delete(service) => {
                return delete_namespaced(
                    &mut self.services,
                    &mut self.interner,
                    &service.metadata,
                );
            }
        }
        true
    }

    fn service_info(&mut self, service: &Service) -> Option<(NsName, ServiceInfo)> {
        match ServiceInfo::from_service(service, &mut self.interner) {
            Ok(info) => Some(((info.namespace.clone(), Box::from(&*info.name)), info)),
            Err(e) => {
                self.reject(&e);
                None
            }
        }
    }

    fn reject(&mut self, error: &TopologyError) {
        self.rejected += 1;
        tracing::warn!(%error, "Kubernetes object left out of the topology");
    }

    /// The controller of a ReplicaSet or Job, when one is known.
    fn parent_of(&self, kind: &str, namespace: &Arc<str>, name: &str) -> Option<&Owner> {
        let owners = match kind {
            "ReplicaSet" => &self.replica_sets,
            "Job" => &self.jobs,
            _ => return None,
        };
        owners.live.get(&(namespace.clone(), Box::from(name)))
    }

    /// Builds the topology of what the cache holds now.
    ///
    /// Pods seen before their ReplicaSet or Job get their workload here, once the owner is known.
    pub fn topology(&mut self) -> Result<Topology, TopologyError> {
        let mut late = Vec::new();
        for entry in &self.pods.live {
            let info = entry.0.info();
            if let Some(owner) = &info.owner
                && let Some(parent) = self.parent_of(&owner.kind, &info.namespace, &owner.name)
            {
                late.push(entry.0.with_owner(Some(parent.clone())));
            }
        }
        for entry in late {
            self.pods.live.replace(PodByUid(Arc::new(entry)));
        }
        let nodes = self.nodes.live.values().cloned().collect();
        let pods = self.pods.live.iter().map(|entry| entry.0.clone()).collect();
        let services = self.services.live.values().cloned().collect();
        // Strings of deleted namespaces, nodes and Jobs go once no entry holds them.
        self.interner.prune();
        Topology::from_parts(nodes, pods, services)
    }
}

fn owner_event<K>(
    owners: &mut Relisting<NsName, Owner>,
    interner: &mut Interner,
    event: Event<PartialObjectMeta<K>>,
) -> bool {
    let parsed = |interner: &mut Interner, meta: &ObjectMeta| -> Option<(NsName, Owner)> {
        let name = meta.name.as_deref().filter(|n| !n.is_empty())?;
        let controller = meta
            .owner_references
            .as_deref()?
            .iter()
            .find(|r| r.controller == Some(true))?;
        let key = (namespace(interner, meta), Box::from(name));
        let owner = Owner {
            kind: interner.intern(&controller.kind),
            name: interner.intern(&controller.name),
        };
        Some((key, owner))
    };
    match event {
        Event::Init => owners.init(),
        Event::InitDone => owners.init_done(),
        // A bare ReplicaSet or Job (no controller) needs no entry: the pod's own reference is it.
        Event::InitApply(object) => {
            if let Some((key, owner)) = parsed(interner, &object.metadata) {
                owners.init_apply(key, owner);
            }
        }
        Event::Apply(object) => {
            return match parsed(interner, &object.metadata) {
                Some((key, owner)) => owners.apply(key, owner),
                None => delete_namespaced(owners, interner, &object.metadata),
            };
        }
        Event::Delete(object) => return delete_namespaced(owners, interner, &object.metadata),
    }
    true
}

fn namespace(interner: &mut Interner, meta: &ObjectMeta) -> Arc<str> {
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => interner.intern(ns),
        _ => interner.intern("default"),
    }
}

fn delete_by_name<V: Clone + PartialEq>(
    objects: &mut Relisting<Arc<str>, V>,
    meta: &ObjectMeta,
) -> bool {
    match meta.name.as_deref() {
        Some(name) => objects.delete(name),
        None => false,
    }
}

fn delete_namespaced<V: Clone + PartialEq>(
    objects: &mut Relisting<NsName, V>,
    interner: &mut Interner,
    meta: &ObjectMeta,
) -> bool {
    match meta.name.as_deref() {
        Some(name) => objects.delete(&(namespace(interner, meta), Box::from(name))),
        None => false,
    }
}

fn has_zone(meta: &ObjectMeta) -> bool {
    meta.labels.as_ref().is_some_and(|labels| {
        [ZONE_LABEL, LEGACY_ZONE_LABEL]
            .iter()
            .any(|k| labels.get(*k).is_some_and(|v| !v.is_empty()))
    })
}

/// The node with the fallback's zone (and region, unless it has one) as labels, so that it goes
/// through the same parsing as a labelled node.
fn with_zone(node: &Node, fallback: &ZoneFallback) -> Node {
    let mut node = node.clone();
    let labels = node.metadata.labels.get_or_insert_with(Default::default);
    labels.insert(ZONE_LABEL.to_owned(), fallback.zone.clone());
    if let Some(region) = &fallback.region {
        labels
            .entry(REGION_LABEL.to_owned())
            .or_insert_with(|| region.clone());
    }
    node
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: serde_json::Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn pod(name: &str, ip: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("u-{name}")},
            "spec": {"nodeName": "node-a"},
            "status": {"phase": "Running", "podIP": ip},
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn synced(cache: &mut ClusterCache) {
        for (init, done) in [
            (
                Update::ReplicaSet(Event::Init),
                Update::ReplicaSet(Event::InitDone),
            ),
            (Update::Job(Event::Init), Update::Job(Event::InitDone)),
            (
                Update::Service(Event::Init),
                Update::Service(Event::InitDone),
            ),
        ] {
            cache.apply(init);
            cache.apply(done);
        }
    }

    #[test]
    fn the_local_node_without_zone_labels_takes_the_cloud_metadata_zone_and_others_do_not() {
        let fallback = ZoneFallback {
            zone: "us-east-1c".into(),
            region: Some("us-east-1".into()),
        };
        let mut cache = ClusterCache::new("node-a").with_zone_fallback(Some(fallback));
        synced(&mut cache);
        cache.apply(Update::Node(Event::Apply(node("node-a", json!({})))));
        cache.apply(Update::Node(Event::Apply(node("node-b", json!({})))));
        cache.apply(Update::Node(Event::Apply(node(
            "node-c",
            json!({"topology.kubernetes.io/zone": "us-east-1a"}),
        ))));
        let topology = cache.topology().unwrap_or_else(|e| panic!("{e}"));
        let zone = |n: &str| {
            topology
                .node(n)
                .and_then(|n| n.locality.zone.as_deref().map(str::to_owned))
        };
        assert_eq!(zone("node-a").as_deref(), Some("us-east-1c"));
        assert_eq!(zone("node-b"), None);
        assert_eq!(zone("node-c").as_deref(), Some("us-east-1a"));
        let region = topology
            .node("node-a")
            .and_then(|n| n.locality.region.clone());
        assert_eq!(region.as_deref(), Some("us-east-1"));
    }

    #[test]
    fn a_relist_keeps_unchanged_pods_without_copying_them_and_drops_vanished_ones() {
        let mut cache = ClusterCache::new("node-a");
        synced(&mut cache);
        cache.apply(Update::Pod(Event::Init));
        cache.apply(Update::Pod(Event::InitApply(pod("kept", "10.0.0.1"))));
        cache.apply(Update::Pod(Event::InitApply(pod("gone", "10.0.0.2"))));
        cache.apply(Update::Pod(Event::InitDone));
        let before = cache.pods.live.get("u-kept").map(|p| p.0.clone());

        cache.apply(Update::Pod(Event::Init));
        cache.apply(Update::Pod(Event::InitApply(pod("kept", "10.0.0.1"))));
        // Until InitDone the old list is still what the topology sees.
        assert_eq!(cache.pod_count(), 2);
        cache.apply(Update::Pod(Event::InitDone));

        let after = cache.pods.live.get("u-kept").map(|p| p.0.clone());
        assert!(matches!((&before, &after), (Some(b), Some(a)) if Arc::ptr_eq(b, a)));
        let topology = cache.topology().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            topology
                .lookup("10.0.0.2".parse().unwrap_or_else(|e| panic!("{e}")))
                .is_none()
        );
        assert_eq!(topology.pods().count(), 1);
    }

    #[test]
    fn a_changed_pod_replaces_the_cached_one_with_the_same_uid() {
        let mut cache = ClusterCache::new("node-a");
        synced(&mut cache);
        cache.apply(Update::Pod(Event::Apply(pod("web", "10.0.0.1"))));
        assert!(cache.apply(Update::Pod(Event::Apply(pod("web", "10.0.0.9")))));
        assert!(!cache.apply(Update::Pod(Event::Apply(pod("web", "10.0.0.9")))));
        let topology = cache.topology().unwrap_or_else(|e| panic!("{e}"));
        let at = |ip: &str| topology.lookup(ip.parse().unwrap_or_else(|e| panic!("{e}")));
        assert!(at("10.0.0.1").is_none());
        assert!(at("10.0.0.9").is_some());
        assert_eq!(topology.pods().count(), 1);
    }

    #[test]
    fn a_pod_with_an_invalid_ip_is_left_out_and_counted_not_fatal() {
        let mut cache = ClusterCache::new("node-a");
        synced(&mut cache);
        cache.apply(Update::Pod(Event::Apply(pod("bad", "10.0.0.x"))));
        cache.apply(Update::Pod(Event::Apply(pod("good", "10.0.0.3"))));
        assert_eq!(cache.rejected(), 1);
        let topology = cache.topology().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(topology.pods().count(), 1);
    }
}
