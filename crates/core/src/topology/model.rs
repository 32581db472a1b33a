//! The model: nodes, pods and Services as the topology keeps them, and what an IP resolves to.
//! Plain data; parsing lives in [`super::build`], indexing in [`super::index`].

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;

/// Zone and region of a node, from its `topology.kubernetes.io/*` labels (or the legacy
/// `failure-domain.beta.kubernetes.io/*` ones). Either may be missing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Locality {
    /// The zone, e.g. `us-east-1a`.
    pub zone: Option<Arc<str>>,
    /// The region, e.g. `us-east-1`.
    pub region: Option<Arc<str>>,
}

/// The workload that owns a pod, resolved as far as the objects at hand allow.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    /// Controller kind, e.g. `ReplicaSet`, `StatefulSet`, `DaemonSet`, `Job`.
    pub kind: Arc<str>,
    /// Controller name.
    pub name: Arc<str>,
}

/// A node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// `metadata.name`.
    pub name: Arc<str>,
    /// Zone and region.
    pub locality: Locality,
    /// `status.addresses` that parse as IPs (InternalIP, ExternalIP, ...).
    pub addresses: Vec<IpAddr>,
    /// `spec.podCIDRs` (or `spec.podCIDR`).
    pub pod_cidrs: Vec<ipnet::IpNet>,
}

/// A pod of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    /// `metadata.namespace`.
    pub namespace: Arc<str>,
    /// `metadata.name`.
    pub name: Arc<str>,
    /// `metadata.uid`.
    pub uid: Arc<str>,
    /// `spec.nodeName`; `None` while unscheduled.
    pub node_name: Option<Arc<str>>,
    /// `spec.hostNetwork`.
    pub host_network: bool,
    /// `status.podIPs` (or `status.podIP`). Empty for hostNetwork pods' own index entries, whose
    /// IPs are the node's.
    pub ips: PodIps,
    /// The workload that owns the pod: the controller owner reference, with a ReplicaSet named
    /// after its Deployment reported as the Deployment (see [`PodEntry::from_pod`]). Labels are not
    /// kept: at 150,000 pods a label map per pod would be most of the index.
    pub owner: Option<Owner>,
}

/// A pod's IPs: a slice, with the single IP of a single-stack pod kept inline rather than in an
/// allocation of its own (32 bytes per pod, 4.6 MiB at 150,000 pods).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodIps(IpsRepr);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum IpsRepr {
    #[default]
    None,
    One(IpAddr),
    Many(Box<[IpAddr]>),
}

impl Deref for PodIps {
    type Target = [IpAddr];

    fn deref(&self) -> &[IpAddr] {
        match &self.0 {
            IpsRepr::None => &[],
            IpsRepr::One(ip) => std::slice::from_ref(ip),
            IpsRepr::Many(ips) => ips,
        }
    }
}

impl From<Vec<IpAddr>> for PodIps {
    fn from(ips: Vec<IpAddr>) -> PodIps {
        PodIps(match ips.as_slice() {
            [] => IpsRepr::None,
            [ip] => IpsRepr::One(*ip),
            _ => IpsRepr::Many(ips.into_boxed_slice()),
        })
    }
}

/// A Service with a virtual IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// `metadata.namespace`.
    pub namespace: Arc<str>,
    /// `metadata.name`.
    pub name: Arc<str>,
    /// `spec.clusterIPs` (or `spec.clusterIP`), without `None` headless markers.
    pub cluster_ips: Vec<IpAddr>,
}

/// What an IP address is, in this cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint<'a> {
    /// A pod with its own network namespace.
    Pod(&'a PodInfo),
    /// A node address; hostNetwork pods share it and are reported as the node.
    Node(&'a NodeInfo),
    /// A Service virtual IP. Traffic must never be classified by one: after DNAT the reply tuple
    /// names the real backend.
    ServiceIp(&'a ServiceInfo),
}

/// A pod parsed once, with what indexing needs beyond its [`PodInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEntry {
    pub(super) info: PodInfo,
    /// False for pods in phase `Succeeded` or `Failed`.
    pub(super) live: bool,
    /// `metadata.creationTimestamp` in Unix seconds (the API's precision), [`NO_TIMESTAMP`] when
    /// missing, for the IP reuse rule. Eight bytes instead of an `Option<Time>`'s 24.
    pub(super) created: i64,
    /// IPs that stand for the pod's node: a hostNetwork pod's own IPs and its `status.hostIP`.
    /// Empty, without an allocation, for every other pod.
    pub(super) node_ips: Box<[IpAddr]>,
}

/// A missing `creationTimestamp` sorts before every real one, as `None` did before `Some`.
pub(super) const NO_TIMESTAMP: i64 = i64::MIN;

/// A shared pod entry that hashes and compares as its uid, so that a set of them is a map from
/// uid to pod without a key of its own: 8 bytes per slot instead of a 16-byte `Arc<str>` key
/// beside the value. Look one up with a `&str` uid.
#[derive(Debug, Clone)]
pub struct PodByUid(pub Arc<PodEntry>);

impl PodByUid {
    fn uid(&self) -> &str {
        &self.0.info.uid
    }
}

impl Hash for PodByUid {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes, which `Borrow<str>` requires.
        self.uid().hash(state);
    }
}

impl PartialEq for PodByUid {
    fn eq(&self, other: &PodByUid) -> bool {
        self.uid() == other.uid()
    }
}

impl Eq for PodByUid {}

impl Borrow<str> for PodByUid {
    fn borrow(&self) -> &str {
        self.uid()
    }
}

impl PodEntry {
    /// The pod.
    pub fn info(&self) -> &PodInfo {
        &self.info
    }

    /// The same pod with another owner, for a watch cache that learns a ReplicaSet's Deployment
    /// or a Job's CronJob after the pod.
    pub fn with_owner(&self, owner: Option<Owner>) -> PodEntry {
        let mut entry = self.clone();
        entry.info.owner = owner;
        entry
    }
}
